/**
 * The chaos suite, bounded run (CHAOS_SECONDS=600 for a long one): a 3-zone, RF 3 cluster of
 * `garage server` processes whose every inter-node link goes through a fault-injecting proxy
 * with 100–200 ms RTT (150 ± 50 ms), under a workload of register overwrites through every node,
 * live listings and multipart uploads, while the schedule flaps a node's links every 5 s, cuts
 * one direction of a link, partitions two nodes from each other, cuts a whole zone off, pauses a
 * node (SIGSTOP) and kills one (SIGKILL).
 *
 * Required strictly: no acknowledged write lost, no stale read, no listing missing an
 * acknowledged object, no 4xx, convergence after the heal. Availability is required with
 * margins that hold on a loaded 2-core machine; the exact figures are printed (and recorded in
 * docs/design/chaos.md).
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { applyLayout, waitBucketUsable } from '../helpers/cluster.ts'
import { type ChaosContext, chaosSeconds, runChaos } from './scenario.ts'

const RPC_TIMEOUT_MS = 5_000
const RTT_MS = 150
const JITTER_MS = 100
/** Scheduling on a loaded 2-core machine: what a request may take beyond its own bound. */
const MARGIN_MS = 3_000

const SECONDS = chaosSeconds(60)
const CLOCK_SKEW_MS = 120_000

/** Flaps node `i`'s links (down `downMs`) every `periodMs` until `untilMs` has passed. */
async function flapFor(ctx: ChaosContext, i: number, periodMs: number, downMs: number, untilMs: number): Promise<void> {
  const end = Date.now() + untilMs
  while (Date.now() + downMs < end) {
    await ctx.mesh.flap(i, downMs)
    await sleep(periodMs - downMs)
  }
}

/** The 3-zone schedule: one fault at a time, healed between faults; repeated in long runs. */
async function schedule3(ctx: ChaosContext, totalMs: number): Promise<void> {
  const { cluster, mesh } = ctx
  const phase = Math.max(6_000, Math.floor(totalMs / 7))
  const pause = (): Promise<void> => sleep(1_500)
  const end = Date.now() + totalMs
  do {
    await sleep(phase / 2) // latency and jitter only
    if (cluster.nodes.length === 3) {
      // Once per run (the mesh has one spare slot): a node joins zone z1, serves clients for a
      // while, then leaves again, each change applied while the workload runs.
      await ctx.window('layout-change', async () => {
        const added = await cluster.addNode('z1', { meshTimeoutMs: 90_000 })
        const v = await applyLayout(cluster.node(0), { roles: [{ id: cluster.node(added).id, zone: 'z1' }] }, cluster.nodes)
        ctx.note(`node ${added} (clock ${CLOCK_SKEW_MS / 1000} s ahead) added in zone z1 (layout v${v} everywhere)`)
        await waitBucketUsable(cluster, 30_000, [added])
        cluster.serve(added)
        await sleep(phase / 2)
        cluster.retire(added)
        const v2 = await applyLayout(cluster.node(0), { remove: [cluster.node(added).id] }, cluster.nodes)
        ctx.note(`node ${added} removed (layout v${v2} everywhere)`)
      })
      await pause()
    }
    const before = mesh.counts()
    await ctx.window('flapping', () => flapFor(ctx, 1, 5_000, 1_000, Math.max(phase * 1.5, 10_000)))
    const after = mesh.counts()
    ctx.note(
      `flapping node 1: ${after.flaps - before.flaps} flaps, ${after.connections - before.connections} new connections on all links, ` +
        `${after.droppedConnections - before.droppedConnections} dropped, ${after.refusedConnections - before.refusedConnections} refused`,
    )
    await pause()
    await ctx.window('one-way', async () => {
      mesh.cut(0, 1, 'one-way') // packets from node 1 to node 0 are lost
      await sleep(phase)
      mesh.heal()
    })
    await pause()
    await ctx.window('partition', async () => {
      mesh.cut(1, 2)
      mesh.cut(2, 1)
      await sleep(phase)
      mesh.heal()
    })
    await pause()
    await ctx.window('zone-cut', async () => {
      mesh.isolate([2]) // zone z3, black hole both ways
      await sleep(phase * 1.5)
      mesh.heal()
    })
    await pause()
    await ctx.window('sigstop', async () => {
      cluster.freeze(1)
      await sleep(phase / 2)
      cluster.thaw(1)
    })
    await pause()
    await ctx.window('sigkill', async () => {
      await cluster.kill(2)
      await sleep(phase / 2)
      await cluster.restart(2, { waitMesh: false })
      ctx.note('node 2 restarted')
    })
    await pause()
  } while (Date.now() + totalMs / 2 < end)
}

describe('chaos: 3 zones, RF 3, every link through a faulty proxy', { timeout: (3 * SECONDS + 300) * 1000 }, () => {
  test('no acknowledged write lost, no stale read, listings complete; availability and convergence figures', async (t) => {
    const report = await runChaos({
      cluster: { nodes: 3, zones: ['z1', 'z2', 'z3'], configLines: ['block_gc_delay_msec = 2000'] },
      slots: 4,
      rttMs: RTT_MS,
      jitterMs: JITTER_MS,
      rpcTimeoutMs: RPC_TIMEOUT_MS,
      blockSize: 64 * 1024,
      workload: {
        prefix: 'chaos/',
        keys: 6,
        writers: 3,
        readers: 2,
        listers: 1,
        multipart: { writers: 1, keys: 2, parts: 1, lastPartSize: [1_000, 150_000] },
        durationMs: SECONDS * 1000,
        sizes: [
          { weight: 5, min: 16, max: 2_000 },
          { weight: 3, min: 10_000, max: 100_000 },
          { weight: 1, min: 150_000, max: 300_000 },
        ],
        seed: 12,
        requestTimeoutMs: 30_000,
      },
      schedule: (ctx) => schedule3(ctx, SECONDS * 1000),
      // The node added by the layout change runs 2 minutes ahead: writes through it carry
      // timestamps from the future, and later writes through the others must still win.
      clockSkewMs: (i) => (i === 3 ? CLOCK_SKEW_MS : undefined),
      convergeTimeoutMs: 60_000,
    })
    for (const line of report.lines()) t.diagnostic(line)
    const zoneCutOk = report.availability('zone-cut', [0, 1])
    const zoneCutCutOff = report.availability('zone-cut', [2])
    const flapping = report.availability('flapping', [1])
    const others = report.availability('flapping', [0, 2])
    for (const f of [zoneCutOk, zoneCutCutOff, flapping, others]) t.diagnostic(`availability ${JSON.stringify(f)}`)
    for (const line of report.convergence.timeline) t.diagnostic(`convergence ${line}`)

    const { result, violations } = report
    const s = result.stats
    // The run means something.
    assert.ok(s.acked >= 50, `enough acknowledged writes (${s.acked})`)
    assert.ok(s.reads >= 50, `enough reads (${s.reads})`)
    assert.ok(s.listings >= 10, `enough live listings (${s.listings})`)
    assert.ok(s.multipartAcked >= 2, `multipart uploads completed (${s.multipartAcked})`)
    assert.ok(report.faults.flaps >= 2 && report.faults.cuts >= 4, `faults were injected: ${JSON.stringify(report.faults)}`)

    // Correctness, strictly.
    assert.deepEqual(result.clientErrors, [], 'no request was refused with a 4xx')
    assert.deepEqual(violations, [], 'no lost write, no stale read, no listing missing an acknowledged object')
    // Failures are 503 (retry), never 500: a GET that raced an overwrite answered 500 before
    // handleGetObject started over on a vanished version.
    const internal = result.requests.filter((r) => r.status === 500)
    assert.deepEqual(internal, [], 'no request answered 500 InternalError')
    assert.ok(
      report.convergence.answersMs >= 0 && report.convergence.tablesMs >= 0,
      `every node answers alike and stores the same table entries after the heal: ${report.convergence.timeline.join('\n')}`,
    )
    // Live blocks on every node: reported, not required yet. In the recorded runs the node that
    // was cut off then SIGKILLed lacked 1–3 live blocks a minute after the heal (open item in
    // docs/design/chaos.md, not root-caused).
    if (report.convergence.blocksMs < 0) t.diagnostic('OPEN: live blocks still missing on some node at the end of the wait')

    // Availability, with margins for a loaded machine.
    assert.ok(zoneCutOk.requests >= 20, `requests through the connected zones during the cut (${zoneCutOk.requests})`)
    assert.ok(zoneCutOk.okPct >= 95, `reads and writes through the connected zones succeed: ${JSON.stringify(zoneCutOk)}`)
    assert.ok(
      zoneCutOk.maxMs <= RPC_TIMEOUT_MS + RTT_MS + JITTER_MS + MARGIN_MS,
      `no request through the connected zones waits past rpc_timeout_msec + 1 RTT: ${JSON.stringify(zoneCutOk)}`,
    )
    assert.equal(
      zoneCutCutOff.statuses.timeout,
      undefined,
      `the cut-off node never leaves a client hanging: ${JSON.stringify(zoneCutCutOff)}`,
    )
    assert.ok(
      zoneCutCutOff.maxMs <= RPC_TIMEOUT_MS + RTT_MS + JITTER_MS + MARGIN_MS,
      `the cut-off node answers within rpc_timeout_msec: ${JSON.stringify(zoneCutCutOff)}`,
    )
  })
})
