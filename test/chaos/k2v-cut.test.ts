/**
 * K2V inserts when a node is cut off (every link through the chaos suite's proxies,
 * test/helpers/links.ts), right at the cut, before any ping has noticed it:
 * - through a connected node, an insert whose item's first node by id is the cut-off one is
 *   written through the node itself at the quorum, without waiting for the far node's deadline;
 * - through the cut-off node, an insert answers its 503 after one `rpc_timeout_msec`, not after
 *   a call to a peer's deadline followed by its own write quorum's (the chaos run saw 10 s at 5 s).
 * Garage's try_call_many orders the nodes of an insert this way (this node first).
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'
import { K2vClient, K2vError } from '../../lib/k2v/client.ts'
import { type ReplicatedCluster, startReplicatedCluster } from '../helpers/cluster.ts'
import { eventually } from '../helpers/eventually.ts'
import { type LinkMesh, startLinkMesh } from '../helpers/links.ts'

const RPC_TIMEOUT_MS = 3_000
/** Scheduling on a loaded 2-core machine; far below the extra deadline each bound guards against. */
const MARGIN_MS = 1_500

describe('K2V inserts at the moment a node is cut off', { timeout: 180_000 }, () => {
  let mesh: LinkMesh
  let cluster: ReplicatedCluster
  /** Node indexes by node id: inserts went to the first one before this node itself. */
  let byId: number[]
  before(async () => {
    mesh = await startLinkMesh(3)
    cluster = await startReplicatedCluster({
      nodes: 3,
      configLines: [`rpc_timeout_msec = ${RPC_TIMEOUT_MS}`, '[k2v_api]', 'api_bind_addr = "127.0.0.1:0"'],
      nodeOptions: (i) => mesh.nodeOptions(i),
    })
    mesh.setRtt(10, 0)
    byId = cluster.nodes
      .map((n, i) => ({ id: n.id, i }))
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .map((x) => x.i)
  })
  after(async () => {
    await cluster?.stop()
    await mesh?.close()
  })

  const client = (i: number): K2vClient => {
    const endpoint = /k2v API listening on (http:\/\/\S+)/.exec(cluster.node(i).proc.output())?.[1]
    assert.ok(endpoint !== undefined, `node ${i} reported no K2V endpoint`)
    return new K2vClient({ endpoint, region: 'garage', bucket: cluster.bucket, ...cluster.credentials })
  }

  /** Milliseconds `fn` took, and its error if it failed. */
  const timed = async (fn: () => Promise<unknown>): Promise<{ ms: number; err?: Error }> => {
    const t0 = Date.now()
    try {
      await fn()
      return { ms: Date.now() - t0 }
    } catch (err) {
      return { ms: Date.now() - t0, err: err as Error }
    }
  }

  /** Every node answers an insert quickly again (pings fresh, no peer unresponsive). */
  const healed = async (): Promise<void> => {
    mesh.heal()
    await eventually(
      'every node inserts in under a second',
      async () => {
        for (let i = 0; i < 3; i++) {
          const r = await timed(() => client(i).insertItem('cut', `warm-${i}-${Date.now()}`, 'w'))
          assert.equal(r.err, undefined)
          assert.ok(r.ms < 1_000, `node ${i}: ${r.ms} ms`)
        }
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    )
    // Two ping rounds, so no ping started during the cut is still pending.
    await sleep(2_000)
  }

  test('through the cut-off node, an insert answers 503 after one deadline', async () => {
    // First, on a cluster that has seen no cut: no peer has a failed ping yet, so only the
    // silence of the calls (callsSilentMs) can tell that the peers stopped answering (pings go
    // every 10 s). Before that, the insert waited for its write quorum, then for a peer's deadline.
    await healed()
    // Not the first node by id: its insert went first to that peer, then to itself.
    const cut = byId[1] as number
    mesh.isolate([cut])
    const r = await timed(() => client(cut).insertItem('cut', 'through-cut-off', 'v'))
    assert.ok(r.err instanceof K2vError, `no write quorum without the two peers: ${r.err}`)
    assert.equal(r.err.status, 503, r.err.message)
    assert.ok(
      r.ms <= RPC_TIMEOUT_MS + MARGIN_MS,
      `the cut-off node answered after ${r.ms} ms (one deadline: ${RPC_TIMEOUT_MS} ms)`,
    )
    await healed()
  })

  test('through a connected node, an insert does not wait for a cut-off first node', async () => {
    await healed()
    const [first, , last] = byId as [number, number, number]
    mesh.isolate([first])
    const r = await timed(() => client(last).insertItem('cut', 'through-connected', 'v'))
    assert.equal(r.err, undefined, `insert through node ${last} with node ${first} cut off: ${r.err?.message}`)
    assert.ok(r.ms < MARGIN_MS, `insert through node ${last} took ${r.ms} ms (a deadline is ${RPC_TIMEOUT_MS} ms)`)
    await healed()
    const [page] = await client(first).readBatch([{ partitionKey: 'cut', start: 'through-connected', limit: 1 }])
    assert.equal(page?.items[0]?.sortKey, 'through-connected', 'read through the node that was cut off, after the heal')
  })
})
