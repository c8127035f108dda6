/**
 * K2V on a 3-node cluster (in-process nodes over real sockets, one zone each, replication
 * factor 3): siblings seen through every node, a poll on one node woken by a write through
 * another, index counts converging on every node, and no acknowledged item lost when a node
 * stops in the middle of inserts.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { K2vClient } from '../../../lib/k2v/client.ts'
import { startTestCluster, type TestCluster } from '../../../lib/testing.ts'
import { CLUSTER_WAIT, eventually } from '../../helpers/eventually.ts'

const text = (v: Uint8Array | null): string | null => (v === null ? null : Buffer.from(v).toString())

async function k2vCluster(t: { after(fn: () => Promise<void>): void }): Promise<{ cluster: TestCluster; clients: K2vClient[] }> {
  const cluster = await startTestCluster({ nodeOptions: { k2v_api: { api_bind_addr: '127.0.0.1:0' } } })
  t.after(() => cluster.stop())
  const clients = cluster.nodes.map(
    (n) =>
      new K2vClient({
        endpoint: n.node.k2vEndpoint as string,
        region: cluster.region,
        bucket: cluster.bucket,
        ...cluster.credentials,
      }),
  )
  return { cluster, clients }
}

describe('K2V on a 3-node cluster', () => {
  test('two writers without tokens make siblings, seen through every node; a token resolves them everywhere', async (t) => {
    const { clients } = await k2vCluster(t)
    const [c1, c2, c3] = clients as [K2vClient, K2vClient, K2vClient]
    await Promise.all([c1.insertItem('p', 's', 'from-1'), c3.insertItem('p', 's', 'from-3')])
    for (const c of clients) {
      const r = await c.readItem('p', 's')
      assert.deepEqual(r.values.map(text).sort(), ['from-1', 'from-3'])
    }
    const seen = await c2.readItem('p', 's')
    await c2.insertItem('p', 's', 'resolved', seen.causality)
    for (const c of clients) assert.deepEqual((await c.readItem('p', 's')).values.map(text), ['resolved'])
  })

  test('a poll through node 1 is woken by a write through node 3', async (t) => {
    const { clients } = await k2vCluster(t)
    const [c1, , c3] = clients as [K2vClient, K2vClient, K2vClient]
    await c1.insertItem('inbox', 'm', 'v1')
    const { causality } = await c1.readItem('inbox', 'm')
    const poll = c1.pollItem('inbox', 'm', causality, { timeoutSeconds: 60 })
    const range = await c1.pollRange('inbox')
    assert.ok(range !== undefined)
    const rangePoll = c1.pollRange('inbox', {}, range.seenMarker, { timeoutSeconds: 60 })
    await c3.insertItem('inbox', 'm', 'v2', causality)
    const got = await poll
    assert.deepEqual(got?.values.map(text), ['v2'])
    const r = await rangePoll
    assert.deepEqual(
      [...(r?.items ?? [])].map(([k, v]) => [k, v.values.map(text)]),
      [['m', ['v2']]],
    )
  })

  test('index counts after inserts and deletes converge on every node', async (t) => {
    const { clients } = await k2vCluster(t)
    const [c1, c2, c3] = clients as [K2vClient, K2vClient, K2vClient]
    await c1.insertBatch(Array.from({ length: 20 }, (_, i) => ({ partitionKey: `pk${i % 4}`, sortKey: `s${i}`, value: 'abcd' })))
    await c2.insertItem('pk0', 's0', 'sibling')
    await c3.deleteBatch([{ partitionKey: 'pk3' }])
    const want = [
      { partitionKey: 'pk0', entries: 5, conflicts: 1, values: 6, bytes: 5 * 4 + 7 },
      { partitionKey: 'pk1', entries: 5, conflicts: 0, values: 5, bytes: 20 },
      { partitionKey: 'pk2', entries: 5, conflicts: 0, values: 5, bytes: 20 },
    ]
    for (const [i, c] of clients.entries()) {
      await eventually(
        `index through node ${i + 1}`,
        async () => assert.deepEqual((await c.readIndex()).items, want),
        CLUSTER_WAIT,
      )
    }
  })

  test('a node stopped in the middle of inserts loses no acknowledged item', async (t) => {
    const { cluster, clients } = await k2vCluster(t)
    const [c1, c2] = clients as [K2vClient, K2vClient, K2vClient]
    const acked: string[] = []
    let failed = 0
    let stopped = false
    const writer = async (c: K2vClient, w: number): Promise<void> => {
      for (let i = 0; i < 60; i++) {
        const sk = `w${w}-${String(i).padStart(3, '0')}`
        try {
          await c.insertItem('crash', sk, sk)
          acked.push(sk)
        } catch (err) {
          // Only a write in flight while the node stops may fail; none after.
          failed++
          assert.ok(stopped, `write ${sk} failed before any node stopped: ${(err as Error).message}`)
        }
        if (w === 1 && i === 20) {
          stopped = true
          await (cluster.nodes[2] as TestCluster['nodes'][number]).stop()
        }
      }
    }
    await Promise.all([writer(c1, 1), writer(c2, 2)])
    assert.ok(acked.length >= 100, `only ${acked.length} writes acknowledged (${failed} failed)`)
    for (const c of [c1, c2]) {
      const [page] = await c.readBatch([{ partitionKey: 'crash' }])
      const stored = new Set(page?.items.map((i) => i.sortKey))
      const lost = acked.filter((sk) => !stored.has(sk))
      assert.deepEqual(lost, [])
    }
  })
})
