/**
 * K2V on a cluster of `garage server` child processes (3 nodes, 3 zones, RF 3): concurrent
 * writers leave siblings in every node's own k2v_item tree (read from disk), and a node killed
 * with SIGKILL in the middle of inserts loses no acknowledged item; once restarted,
 * anti-entropy gives it every one.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { K2vClient } from '../../../lib/k2v/client.ts'
import { k2vItemCodec, k2vValues } from '../../../lib/model/k2v/item-table.ts'
import { type ReplicatedCluster, readTree, startReplicatedCluster } from '../../helpers/cluster.ts'
import { CLUSTER_WAIT, eventually } from '../../helpers/eventually.ts'

const text = (v: Uint8Array | null): string | null => (v === null ? null : Buffer.from(v).toString())

describe('K2V on child-process nodes', { timeout: 240_000 }, () => {
  let cluster: ReplicatedCluster
  before(async () => {
    cluster = await startReplicatedCluster({
      nodes: 3,
      configLines: ['rpc_timeout_msec = 2000', '[k2v_api]', 'api_bind_addr = "127.0.0.1:0"'],
    })
  })
  after(async () => {
    await cluster?.stop()
  })

  const client = (i: number): K2vClient => {
    const endpoint = /k2v API listening on (http:\/\/\S+)/.exec(cluster.node(i).proc.output())?.[1]
    assert.ok(endpoint !== undefined, `node ${i} reported no K2V endpoint`)
    return new K2vClient({ endpoint, region: 'garage', bucket: cluster.bucket, ...cluster.credentials })
  }

  /** Every k2v_item row node `i` stores on disk, by sort key. */
  const storedRows = async (i: number): Promise<Map<string, Array<string | null>>> => {
    const rows = await readTree(cluster.node(i), 'k2v_item:table')
    return new Map([...rows.values()].map((raw) => k2vItemCodec.decode(raw)).map((it) => [it.sortKey, k2vValues(it).map(text)]))
  }

  test('two writers without tokens leave both values on every node', async () => {
    await Promise.all([client(0).insertItem('p', 'sib', 'from-0'), client(2).insertItem('p', 'sib', 'from-2')])
    for (let i = 0; i < 3; i++) {
      await eventually(
        `both siblings on node ${i}'s disk`,
        async () => assert.deepEqual((await storedRows(i)).get('sib')?.slice().sort(), ['from-0', 'from-2']),
        CLUSTER_WAIT,
      )
    }
  })

  test('a node killed (SIGKILL) during inserts loses no acknowledged item', async () => {
    // Kill the first storage node by id (the one every insert went to before inserts went to
    // this node first, as Garage orders them): the two others write, at the quorum with it.
    const victim = cluster.nodes.map((n, i) => ({ id: n.id, i })).sort((a, b) => (a.id < b.id ? -1 : 1))[0]?.i as number
    const writers = [0, 1, 2].filter((i) => i !== victim)
    const clients = writers.map((i) => client(i))
    const acked: string[] = []
    const failures: string[] = []
    let killed = false
    const write = async (c: K2vClient, w: number): Promise<void> => {
      for (let i = 0; i < 50; i++) {
        const sk = `w${w}-${String(i).padStart(3, '0')}`
        try {
          await c.insertItem('crash', sk, sk)
          acked.push(sk)
        } catch (err) {
          assert.ok(killed, `write ${sk} failed before the kill: ${(err as Error).message}`)
          failures.push(`${sk}: ${(err as Error).message}`)
        }
        if (w === 0 && i === 15) {
          killed = true
          await cluster.kill(victim)
        }
      }
    }
    await Promise.all(clients.map((c, w) => write(c, w)))
    assert.ok(acked.length >= 80, `only ${acked.length} writes acknowledged; failures: ${failures.slice(0, 5).join('; ')}`)
    for (const c of clients) {
      const [page] = await c.readBatch([{ partitionKey: 'crash' }])
      const stored = new Map(page?.items.map((i) => [i.sortKey, i.values.map(text)]))
      for (const sk of acked) assert.deepEqual(stored.get(sk), [sk], `${sk} after the kill`)
    }
    await cluster.restart(victim)
    await eventually(
      'every acknowledged item on the restarted node',
      async () => {
        const rows = await storedRows(victim)
        assert.deepEqual(
          acked.filter((sk) => rows.get(sk)?.[0] !== sk),
          [],
        )
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    )
  })
})
