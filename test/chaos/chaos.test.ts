/**
 * The chaos suite, bounded run (CHAOS_SECONDS=600 for a long one): a 3-zone, RF 3 cluster of
 * `garage server` processes whose every inter-node link goes through a fault-injecting proxy
 * with 100–200 ms RTT (150 ± 50 ms), under a workload of register overwrites through every node,
 * live listings, multipart uploads and K2V inserts with causality tokens (an added node's clock 2
 * minutes ahead, node 1's 2 minutes behind), while the schedule flaps a node's links every 5 s, cuts
 * one direction of a link, partitions two nodes from each other, cuts a whole zone off, pauses a
 * node (SIGSTOP) and kills one (SIGKILL).
 *
 * Required strictly: no acknowledged write lost, no stale read, no listing missing an
 * acknowledged object, no acknowledged K2V insert lost, no 4xx, convergence after the heal
 * (answers, tables, and every live block on every node). Availability is required with
 * margins that hold on a loaded 2-core machine; the exact figures are printed (and recorded in
 * docs/design/chaos.md).
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { applyLayout, waitBucketUsable } from '../helpers/cluster.ts'
import { checkK2v, k2vWorkload } from '../helpers/k2v-workload.ts'
import { type ChaosContext, chaosSeconds, runChaos, standardWorkload } from './scenario.ts'

const RPC_TIMEOUT_MS = 5_000
const RTT_MS = 150
const JITTER_MS = 100
/** Scheduling on a loaded 2-core machine: what a request may take beyond its own bound. */
const MARGIN_MS = 3_000

const SECONDS = chaosSeconds(60)
const CLOCK_SKEW_MS = 120_000
/** Node 1 runs 2 minutes behind unless CHAOS_CLOCK_BEHIND=0 (docs/design/chaos.md, clock skew). */
const CLOCK_BEHIND = process.env.CHAOS_CLOCK_BEHIND !== '0'

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
    const k2v = k2vWorkload({ items: 3, writers: 2, readers: 1, seed: 12, requestTimeoutMs: 30_000 })
    const report = await runChaos({
      cluster: {
        nodes: 3,
        zones: ['z1', 'z2', 'z3'],
        env: { GARAGE_LOG_LEVEL: process.env.CHAOS_NODE_LOG_LEVEL ?? 'info' },
        configLines: ['block_gc_delay_msec = 2000', '[k2v_api]', 'api_bind_addr = "127.0.0.1:0"'],
      },
      slots: 4,
      rttMs: RTT_MS,
      jitterMs: JITTER_MS,
      rpcTimeoutMs: RPC_TIMEOUT_MS,
      blockSize: 64 * 1024,
      workload: {
        ...standardWorkload({ prefix: 'chaos/', seed: 12, durationMs: SECONDS * 1000 }),
        // K2V items with causality tokens through every node (test/helpers/k2v-workload.ts).
        extra: [k2v.task],
      },
      schedule: (ctx) => schedule3(ctx, SECONDS * 1000),
      // The node added by the layout change runs 2 minutes ahead: writes through it carry
      // timestamps from the future, and later writes through the others must still win. Node 1
      // runs 2 minutes behind for the whole run: its writes must still win over the writes
      // acknowledged before them, and over failed writes stored on a node cut off (the lost
      // DELETE of docs/design/chaos.md, fixed by the cluster clock). CHAOS_CLOCK_BEHIND=0 leaves
      // node 1 on time.
      clockSkewMs: (i) => (i === 3 ? CLOCK_SKEW_MS : i === 1 && CLOCK_BEHIND ? -CLOCK_SKEW_MS : undefined),
      convergeTimeoutMs: 60_000,
      onCluster: (c) => k2v.bind(c),
      afterHeal: async (c) => {
        await k2v.final(c)
        return checkK2v(k2v.history)
      },
    })
    for (const line of report.lines()) t.diagnostic(line)
    const k2vAcked = k2v.history.inserts.filter((w) => w.acked).length
    t.diagnostic(
      `k2v: ${k2v.history.inserts.length} inserts (${k2vAcked} acked), ${k2v.history.reads.length} reads, ${k2v.history.finals.length} final reads`,
    )
    const s3 = (r: { op: string }): boolean => !r.op.startsWith('k2v-')
    const k2vOps = (r: { op: string }): boolean => r.op.startsWith('k2v-')
    const zoneCutOk = report.availability('zone-cut', [0, 1], 0, s3)
    const zoneCutK2v = report.availability('zone-cut', [0, 1], 0, k2vOps)
    const zoneCutCutOff = report.availability('zone-cut', [2])
    const flapping = report.availability('flapping', [1])
    const others = report.availability('flapping', [0, 2])
    for (const f of [zoneCutOk, zoneCutK2v, zoneCutCutOff, flapping, others]) t.diagnostic(`availability ${JSON.stringify(f)}`)
    const zoneCut = report.windows.find((w) => w.name === 'zone-cut')
    const slowest = report.result.requests
      .filter((r) => zoneCut !== undefined && r.start >= zoneCut.start && r.start <= zoneCut.end)
      .sort((a, b) => b.end - b.start - (a.end - a.start))
      .slice(0, 5)
      .map((r) => `${r.op}@${r.node} ${r.status} ${r.end - r.start} ms`)
    t.diagnostic(`zone-cut: slowest requests ${slowest.join(', ')}`)
    for (const line of report.convergence.timeline) t.diagnostic(`convergence ${line}`)

    const { result, violations } = report
    const s = result.stats
    // The run means something.
    assert.ok(s.acked >= 50, `enough acknowledged writes (${s.acked})`)
    assert.ok(s.reads >= 50, `enough reads (${s.reads})`)
    assert.ok(s.listings >= 10, `enough live listings (${s.listings})`)
    assert.ok(s.multipartAcked >= 2, `multipart uploads completed (${s.multipartAcked})`)
    assert.ok(
      k2vAcked >= 15 && k2v.history.reads.length >= 10,
      `enough K2V inserts and reads (${k2vAcked}, ${k2v.history.reads.length})`,
    )
    assert.ok(report.faults.flaps >= 2 && report.faults.cuts >= 4, `faults were injected: ${JSON.stringify(report.faults)}`)

    // Correctness, strictly.
    assert.deepEqual(result.clientErrors, [], 'no request was refused with a 4xx')
    assert.deepEqual(
      violations,
      [],
      'no lost write, no stale read, no listing missing an acknowledged object, no lost K2V insert',
    )
    // Failures are 503 (retry), never 500: a GET that raced an overwrite answered 500 before
    // handleGetObject started over on a vanished version.
    const internal = result.requests.filter((r) => r.status === 500)
    assert.deepEqual(internal, [], 'no request answered 500 InternalError')
    // Every node answers alike, stores the same table entries and holds every live block within
    // the wait. Live blocks were only reported until the restarted node's table sync ran several
    // partitions at once and its resync stopped pausing after fetches (docs/design/chaos.md,
    // "live blocks on a restarted node after the heal").
    assert.ok(
      report.convergence.answersMs >= 0 && report.convergence.tablesMs >= 0,
      `every node answers alike and stores the same table entries after the heal: ${report.convergence.timeline.join('\n')}`,
    )
    assert.ok(report.convergence.blocksMs >= 0, `every live block on every node: ${report.convergence.timeline.join('\n')}`)

    // Availability, with margins for a loaded machine.
    assert.ok(zoneCutOk.requests >= 20, `requests through the connected zones during the cut (${zoneCutOk.requests})`)
    assert.ok(zoneCutOk.okPct >= 95, `reads and writes through the connected zones succeed: ${JSON.stringify(zoneCutOk)}`)
    assert.ok(
      zoneCutOk.maxMs <= RPC_TIMEOUT_MS + RTT_MS + JITTER_MS + MARGIN_MS,
      `no request through the connected zones waits past rpc_timeout_msec + 1 RTT: ${JSON.stringify(zoneCutOk)}`,
    )
    // K2V too, since an insert goes to the node it came through first (as Garage orders it): it
    // used to go to the first storage node by id, and behind a cut-off first node it answered
    // 503 (docs/design/chaos.md).
    assert.ok(zoneCutK2v.okPct >= 95, `K2V through the connected zones succeeds: ${JSON.stringify(zoneCutK2v)}`)
    assert.ok(
      zoneCutK2v.maxMs <= RPC_TIMEOUT_MS + RTT_MS + JITTER_MS + MARGIN_MS,
      `no K2V request through the connected zones waits past rpc_timeout_msec + 1 RTT: ${JSON.stringify(zoneCutK2v)}`,
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
