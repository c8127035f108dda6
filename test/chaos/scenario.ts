/**
 * The chaos suite's machinery: a replicated cluster of `garage server` processes whose every
 * inter-node link goes through a fault-injecting proxy (test/helpers/links.ts), a workload
 * recorded as a history (test/helpers/workload.ts: register overwrites through every node, live
 * listings, multipart uploads), a schedule of faults run alongside, a watcher of what each node
 * says about its peers, and the measures taken afterwards: violations of the history checker,
 * availability per fault window, convergence time after healing.
 *
 * The test files (chaos.test.ts, …) say which cluster and which schedule; CHAOS_SECONDS stretches
 * the workload (default: the bounded run of `npm test`).
 */
import { appendFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  clusterStatus,
  type ReplicatedCluster,
  type ReplicatedClusterOptions,
  startReplicatedCluster,
} from '../helpers/cluster.ts'
import { type LinkMesh, startLinkMesh } from '../helpers/links.ts'
import { diffReplicaTables, missingBlocks } from './replicas.ts'
import { readQuorumOf, writeQuorumOf } from '../../lib/rpc/layout/helper.ts'
import type { ConsistencyMode } from '../../lib/util/config.ts'
import {
  type CheckOptions,
  classifyHistory,
  type RequestLog,
  runWorkload,
  settleFinal,
  type WorkloadOptions,
  type WorkloadResult,
} from '../helpers/workload.ts'

/**
 * The S3 workload of the 3- and 5-node runs: overwrites of 6 keys by 3 writers (small, medium and
 * multi-block bodies), 2 readers, 1 lister and a multipart writer, through every node.
 */
export function standardWorkload(o: { prefix: string; seed: number; durationMs: number }): ChaosOptions['workload'] {
  return {
    prefix: o.prefix,
    keys: 6,
    writers: 3,
    readers: 2,
    listers: 1,
    multipart: { writers: 1, keys: 2, parts: 1, lastPartSize: [1_000, 150_000] },
    durationMs: o.durationMs,
    sizes: [
      { weight: 5, min: 16, max: 2_000 },
      { weight: 3, min: 10_000, max: 100_000 },
      { weight: 1, min: 150_000, max: 300_000 },
    ],
    seed: o.seed,
    requestTimeoutMs: 30_000,
  }
}

/** Seconds of workload: CHAOS_SECONDS, or `fallback` (the bounded run of npm test). */
export function chaosSeconds(fallback: number): number {
  const raw = process.env.CHAOS_SECONDS
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`CHAOS_SECONDS must be a positive number, got ${raw}`)
  return n
}

/** A named span of the run during which a fault was active (times on the test's clock). */
export interface FaultWindow {
  name: string
  start: number
  end: number
}

/** A node's view of a peer changing (from GetClusterStatus, polled). */
export interface PeerTransition {
  at: number
  observer: number
  peer: number
  up: boolean
}

export interface ChaosContext {
  cluster: ReplicatedCluster
  mesh: LinkMesh
  /** Runs `fn` as the fault window `name` (recorded with its start and end). */
  window<T>(name: string, fn: () => Promise<T>): Promise<T>
  /** Notes a line for the report. */
  note(line: string): void
  t0: number
}

export interface ChaosOptions {
  cluster: ReplicatedClusterOptions & { nodes: number; zones: string[] }
  /** Node slots of the link mesh (more than `nodes` when the schedule adds nodes). */
  slots?: number
  rttMs: number
  jitterMs: number
  rpcTimeoutMs: number
  blockSize: number
  workload: Omit<WorkloadOptions, 'cluster' | 'during' | 'blockSize'>
  /** The faults, run alongside the workload; the workload goes on until this resolves too. */
  schedule: (ctx: ChaosContext) => Promise<void>
  /** How long convergence may take after healing before the run fails. */
  convergeTimeoutMs: number
  /** Clock skew of node slot `i` in ms (test/helpers/clock-skew-hook.ts); undefined or 0: none. */
  clockSkewMs?: (i: number) => number | undefined
  /**
   * `consistency_mode` of every node (default consistent). The checker then applies the mode's
   * quorums: in degraded and dangerous modes stale reads are `allowed`, not violations.
   */
  consistencyMode?: ConsistencyMode
  /** Called once the cluster runs, before the workload (workloads of `workload.extra` bind to it here). */
  onCluster?: (cluster: ReplicatedCluster) => void
  /** Called after convergence was measured, with every node up: final reads of more checks; returns their violations. */
  afterHeal?: (cluster: ReplicatedCluster) => Promise<string[]>
}

const SKEW_HOOK = fileURLToPath(new URL('../helpers/clock-skew-hook.ts', import.meta.url))

export interface AvailabilityFigure {
  window: string
  nodes: number[]
  requests: number
  ok: number
  /** ok / requests, in %. */
  okPct: number
  maxMs: number
  medianMs: number
  statuses: Record<string, number>
}

export interface ChaosReport {
  result: WorkloadResult
  violations: string[]
  /**
   * Stale reads and stale live listings the consistency mode permits (classifyHistory's
   * `allowed`; always empty in consistent mode, where they are violations).
   */
  allowed: string[]
  windows: FaultWindow[]
  transitions: PeerTransition[]
  notes: string[]
  faults: ReturnType<LinkMesh['counts']> & { windows: number }
  /** ms from the heal to: every node answering alike (keys, listings), tables byte-equal, live blocks everywhere. */
  convergence: { answersMs: number; tablesMs: number; blocksMs: number; timeline: string[] }
  /** Requests started in the window through `nodes` (those `which` keeps, default all). */
  availability: (window: string, nodes: number[], grace?: number, which?: (r: RequestLog) => boolean) => AvailabilityFigure
  /** One-line summaries for the test's diagnostics and docs/design/chaos.md. */
  lines(): string[]
}

const isOk = (r: RequestLog): boolean =>
  typeof r.status === 'number' && ((r.status >= 200 && r.status < 300) || (r.op === 'get' && r.status === 404))

/**
 * Starts the mesh and the cluster, sets the link delay, runs workload and schedule together,
 * heals, measures convergence, checks the history, stops everything. Never asserts: the caller
 * decides what to require of the report.
 */
export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const logDir = process.env.CHAOS_LOG_DIR
  const started = Date.now()
  /** With CHAOS_LOG_DIR, a live trace of the run in `progress.log` (to see where a slow run is). */
  const progress = (line: string): void => {
    if (logDir !== undefined && logDir !== '')
      appendFileSync(
        join(logDir, 'progress.log'),
        `${new Date().toISOString()} ${((Date.now() - started) / 1000).toFixed(1)} s: ${line}\n`,
      )
  }
  if (logDir !== undefined && logDir !== '') await mkdir(logDir, { recursive: true })
  const mesh = await startLinkMesh(o.slots ?? o.cluster.nodes)
  const mode = o.consistencyMode ?? 'consistent'
  const rf = o.cluster.replicationFactor ?? 3
  const checkOptions: CheckOptions = {
    requireAgreement: true,
    quorums: { read: readQuorumOf(rf, mode), write: writeQuorumOf(rf, mode), replicas: rf },
  }
  let cluster: ReplicatedCluster | undefined
  let stopTimedLogs = (): void => {}
  try {
    cluster = await startReplicatedCluster({
      ...o.cluster,
      configLines: [
        `rpc_timeout_msec = ${o.rpcTimeoutMs}`,
        `block_size = ${o.blockSize}`,
        `consistency_mode = "${mode}"`,
        // CHAOS_LOG_LEVEL=debug: every node logs each failed call and ping (with CHAOS_LOG_DIR).
        ...(process.env.CHAOS_LOG_LEVEL ? [`log_level = "${process.env.CHAOS_LOG_LEVEL}"`] : []),
        ...(o.cluster.configLines ?? []),
      ],
      nodeOptions: (i) => {
        const m = mesh.nodeOptions(i)
        const skew = o.clockSkewMs?.(i)
        if (skew === undefined || skew === 0) return m
        return { ...m, preload: [...(m.preload ?? []), SKEW_HOOK], env: { ...m.env, CHAOS_CLOCK_SKEW_MSEC: String(skew) } }
      },
    })
    const c = cluster
    progress('cluster up')
    if (logDir !== undefined && logDir !== '') stopTimedLogs = timedLogs(c, logDir)
    // Every peer of every node must be reached through its link (the route hook works).
    await checkRouted(c, mesh)
    mesh.setRtt(o.rttMs, o.jitterMs)
    o.onCluster?.(c)

    const t0 = Date.now()
    const windows: FaultWindow[] = []
    const notes: string[] = []
    const transitions: PeerTransition[] = []
    const ctx: ChaosContext = {
      cluster: c,
      mesh,
      t0,
      note: (line) => {
        notes.push(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${line}`)
        progress(line)
      },
      async window(name, fn) {
        const w: FaultWindow = { name, start: Date.now(), end: Number.NaN }
        windows.push(w)
        progress(`${name} starts`)
        try {
          return await fn()
        } finally {
          w.end = Date.now()
          progress(`${name} ends`)
        }
      },
    }
    let watching = true
    const watcher = watchPeers(c, transitions, () => watching)
    let result: WorkloadResult
    try {
      result = await runWorkload({ ...o.workload, cluster: c, blockSize: o.blockSize, during: () => o.schedule(ctx) })
    } finally {
      watching = false
      await watcher
    }

    // Heal everything and measure convergence.
    progress(`workload done: ${JSON.stringify(result.stats)}`)
    mesh.heal()
    mesh.setRtt(o.rttMs, o.jitterMs)
    const healedAt = Date.now()
    const convergence = await measureConvergence(c, result, o, healedAt)
    progress(`convergence: ${JSON.stringify(convergence)}`)
    const final = await settleFinal(c, result.keys, o.workload.prefix ?? 'wl/', 10_000)
    const { violations, allowed } = classifyHistory({ ...result.history, ...final }, checkOptions)
    if (logDir !== undefined && logDir !== '') {
      // Every write with its attempts (node and outcome), on the test's clock: to read a
      // violation against the nodes' logs.
      const writes = result.history.writes.map((w) => ({ ...w, start: w.start - t0, end: w.end - t0 }))
      await writeFile(join(logDir, 'writes.json'), JSON.stringify({ t0, writes }, null, 1))
    }
    if (o.afterHeal !== undefined) violations.push(...(await o.afterHeal(c)))

    const availability = (
      window: string,
      nodes: number[],
      grace = 0,
      which: (r: RequestLog) => boolean = () => true,
    ): AvailabilityFigure => {
      const ws = windows.filter((w) => w.name === window)
      const rs = result.requests.filter(
        (r) => nodes.includes(r.node) && which(r) && ws.some((w) => r.start >= w.start + grace && r.start <= w.end),
      )
      const ms = rs.map((r) => r.end - r.start).sort((a, b) => a - b)
      const statuses: Record<string, number> = {}
      for (const r of rs) statuses[String(r.status)] = (statuses[String(r.status)] ?? 0) + 1
      const ok = rs.filter(isOk).length
      return {
        window,
        nodes,
        requests: rs.length,
        ok,
        okPct: rs.length === 0 ? 100 : Math.round((1000 * ok) / rs.length) / 10,
        maxMs: ms[ms.length - 1] ?? 0,
        medianMs: ms[Math.floor(ms.length / 2)] ?? 0,
        statuses,
      }
    }
    const faults = { ...mesh.counts(), windows: windows.length }
    return {
      result,
      violations,
      allowed,
      windows,
      transitions,
      notes,
      faults,
      convergence,
      availability,
      lines() {
        const s = result.stats
        const out = [
          `workload: ${s.writes} writes (${s.acked} acked, ${s.multipartAcked} multipart), ${s.reads} reads (${s.failedReads} failed), ` +
            `${s.listings} live listings (${s.failedListings} failed), ${result.requests.length} requests`,
          `faults: ${JSON.stringify(faults)}`,
          `violations: ${violations.length}; allowed by consistency_mode ${mode}: ${allowed.length}` +
            ` (${allowed.filter((a) => a.startsWith('stale read')).length} stale reads)`,
          `convergence after heal: answers ${convergence.answersMs} ms, tables byte-equal ${convergence.tablesMs} ms, blocks ${convergence.blocksMs} ms`,
          ...windows.map((w) => {
            const failed = result.requests
              .filter((r) => r.start >= w.start && r.start <= w.end && !isOk(r))
              .map((r) => `${r.op}@${r.node} ${r.status} ${r.end - r.start} ms`)
            return (
              `window ${w.name}: ${((w.start - t0) / 1000).toFixed(1)}–${((w.end - t0) / 1000).toFixed(1)} s, ` +
              `${failed.length} failed requests${failed.length === 0 ? '' : `: ${failed.slice(0, 12).join(', ')}`}`
            )
          }),
          ...notes,
          ...transitions.map(
            (x) => `${((x.at - t0) / 1000).toFixed(1)} s: node ${x.observer} sees node ${x.peer} ${x.up ? 'up' : 'down'}`,
          ),
        ]
        return out
      },
    }
  } finally {
    stopTimedLogs()
    if (logDir !== undefined && logDir !== '' && cluster !== undefined) {
      for (const [i, n] of cluster.nodes.entries()) {
        // A killed node's earlier processes first: their log would die with them otherwise.
        for (const [k, out] of cluster.killedOutputs(i).entries()) await writeFile(join(logDir, `node-${i}-killed-${k}.log`), out)
        await writeFile(join(logDir, `node-${i}.log`), n.proc.output())
      }
    }
    await cluster?.stop()
    await mesh.close()
  }
}

/**
 * With CHAOS_LOG_DIR: each node's new output every 500 ms, its lines prefixed with the time
 * (`node-<i>.timed.log`), to line the nodes' logs up with progress.log (the text log has no
 * time). Returns the stop function.
 */
function timedLogs(c: ReplicatedCluster, dir: string): () => void {
  const seen = new Map<number, { proc: unknown; length: number; partial: string }>()
  const poll = (): void => {
    const now = new Date().toISOString()
    for (const [i, n] of c.nodes.entries()) {
      let st = seen.get(i)
      if (st === undefined || st.proc !== n.proc) {
        st = { proc: n.proc, length: 0, partial: '' }
        seen.set(i, st)
      }
      const out = n.proc.output()
      const text = st.partial + out.slice(st.length)
      st.length = out.length
      const lines = text.split('\n')
      st.partial = lines.pop() ?? ''
      const kept = lines.filter((l) => l.trim() !== '')
      if (kept.length > 0) appendFileSync(join(dir, `node-${i}.timed.log`), kept.map((l) => `${now} ${l}\n`).join(''))
    }
  }
  const timer = setInterval(poll, 500)
  return () => {
    clearInterval(timer)
    poll()
  }
}

/** Every node's peers are known at their advertised ports, and every link carried a connection. */
async function checkRouted(c: ReplicatedCluster, mesh: LinkMesh): Promise<void> {
  const n = c.nodes.length
  for (let from = 0; from < n; from++) {
    for (let to = 0; to < n; to++) {
      if (from !== to && mesh.link(from, to).connections === 0)
        throw new Error(`no connection went through link ${from} → ${to}: the route hook is not in effect`)
    }
  }
}

/** Polls each node's GetClusterStatus (admin API, not behind the links) and records changes. */
async function watchPeers(c: ReplicatedCluster, out: PeerTransition[], go: () => boolean): Promise<void> {
  const last = new Map<string, boolean>()
  while (go()) {
    for (const i of c.upIndexes()) {
      let status: Awaited<ReturnType<typeof clusterStatus>>
      try {
        status = await clusterStatus(c.node(i))
      } catch {
        continue // the node is being killed or restarted: no observation this round
      }
      for (const s of status) {
        const peer = c.nodes.findIndex((n) => n.id === s.id)
        if (peer < 0 || peer === i) continue
        const k = `${i}>${peer}`
        if (last.get(k) !== s.isUp) {
          if (last.has(k)) out.push({ at: Date.now(), observer: i, peer, up: s.isUp })
          last.set(k, s.isUp)
        }
      }
    }
    await sleep(300)
  }
}

/**
 * After the heal: how long until every node answers alike for every key and listing, until the
 * storage nodes' tables are byte-equal (on the holders of each partition), and until every block
 * of the values now visible is on each of its storage nodes.
 */
async function measureConvergence(
  c: ReplicatedCluster,
  result: WorkloadResult,
  o: ChaosOptions,
  healedAt: number,
): Promise<ChaosReport['convergence']> {
  const timeline: string[] = []
  let answersMs = -1
  let tablesMs = -1
  let blocksMs = -1
  const deadline = healedAt + o.convergeTimeoutMs
  const storage = c.servingIndexes()
  let lastProblems = ''
  for (;;) {
    const now = (): number => Date.now() - healedAt
    const problems: string[] = []
    if (answersMs < 0 || blocksMs < 0) {
      let s: Awaited<ReturnType<typeof settleFinal>> | undefined
      try {
        s = await settleFinal(c, result.keys, o.workload.prefix ?? 'wl/', 0)
      } catch (err) {
        problems.push(`a node does not answer yet: ${(err as Error).message.slice(0, 120)}`)
      }
      if (s !== undefined && answersMs < 0) {
        if (s.agreed) answersMs = now()
        else problems.push('nodes answer differently')
      }
      if (s?.agreed && blocksMs < 0) {
        const live = new Set(s.finals.flatMap((f) => (f.value === null ? [] : (result.blocksOf.get(f.value) ?? []))))
        // Each block on its storage nodes (all of them with RF = number of storage nodes).
        const { missing, expected } = await missingBlocks(c, storage, live)
        if (missing.every((m) => m === 0)) blocksMs = now()
        else problems.push(`live blocks missing per node: ${missing.map((m, k) => `${m} of ${expected[k]}`).join(', ')}`)
      }
    }
    if (tablesMs < 0) {
      // Byte-equal on the holders of each partition (every storage node with RF = their number).
      const diff = await diffReplicaTables(c, storage)
      if (diff === '') tablesMs = now()
      else problems.push(`tables differ: ${diff}`)
    }
    if (answersMs >= 0 && tablesMs >= 0 && blocksMs >= 0) return { answersMs, tablesMs, blocksMs, timeline }
    const p = problems.join('; ')
    if (p !== lastProblems) timeline.push(`${now()} ms: ${p}`)
    lastProblems = p
    if (Date.now() > deadline) return { answersMs, tablesMs, blocksMs, timeline }
    await sleep(500)
  }
}

/** Flaps node `i`'s links (down `downMs`) every `periodMs` until `untilMs` has passed. */
export async function flapFor(ctx: ChaosContext, i: number, periodMs: number, downMs: number, untilMs: number): Promise<void> {
  const end = Date.now() + untilMs
  while (Date.now() + downMs < end) {
    await ctx.mesh.flap(i, downMs)
    await sleep(periodMs - downMs)
  }
}

/** Requests of `ops` through `nodes` that started during the windows named `window`. */
export function requestsIn(report: ChaosReport, window: string, nodes: number[], ops: string[]): RequestLog[] {
  const ws = report.windows.filter((w) => w.name === window)
  return report.result.requests.filter(
    (r) => nodes.includes(r.node) && ops.includes(r.op) && ws.some((w) => r.start >= w.start && r.start <= w.end),
  )
}
