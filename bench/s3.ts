/**
 * `npm run bench`: S3 PUT/GET throughput of a garage node against the bare Node.js limit.
 *
 * Two child processes, started side by side: `garage server` (through
 * test/helpers/server-process.ts: the CLI on a temp config, data and metadata in a temp dir) and
 * bench/bare-server.ts (node:http streaming each body to a file and back). Both are driven by the
 * same raw node:http client with a keep-alive agent; every request is SigV4-signed with
 * UNSIGNED-PAYLOAD (the bare server ignores the signature), so the client costs the same for both
 * and no SDK overhead is measured. Scenarios run garage then bare, one after the other.
 *
 * Prints one JSON line per scenario on stdout (progress goes to stderr):
 * `{"scenario":"put_1mib","unit":"MB/s","value":…,"bare":…,"ratio":…,"peak_rss_mb":…,"bare_peak_rss_mb":…}`
 * MB/s is 10^6 bytes per second, the median over sequential requests; ops/s is the total over a
 * fixed duration at concurrency 16. Each scenario runs in BENCH_SLICES turns (default 3: a third
 * of its keys or of its duration each), the targets taking turns, so that a machine whose speed
 * drifts during the run weighs on all of them alike. `ratio` is garage / bare. Every scenario also runs on the
 * design floor (bench/floor-server.ts: the MD5 and per-block BLAKE2b that S3 and the block names
 * require, one file per block renamed into `xx/yy/`, one lmdb commit per PUT, nothing else):
 * `floor` is its figure, `ratio_floor` garage / floor and `floor_cpu` its CPU per unit, which
 * tell the cost of the design on this machine from our own overhead. The `cluster3_*` lines
 * compare with three floor servers, the first sending each object to the two others and
 * answering at two copies (`floor_cpu_total`: the three processes' CPU per unit). Peak RSS is each child's VmHWM,
 * reset before each scenario, so it is the peak during that scenario. `cpu` / `bare_cpu` are the
 * CPU time (user + system, all threads) each child used per unit of work (`cpu_unit`: ms per MB
 * or µs per operation): the figures least disturbed by other load on the machine.
 *
 * Environment: BENCH_TRACE_GC=1 runs the garage processes with `--trace-gc` and adds to each line
 * their full and young-generation collections during the scenario (`gc_full`, `gc_young`, node 1
 * first). BENCH_CPU_PROF=<dir> runs the garage child with `--cpu-prof` into that directory
 * (written when it stops), and each cluster node into `<dir>/cluster-node<i>`; BENCH_QUICK=1 shortens every scenario (smoke test),
 * BENCH_SMALL_SECONDS=<s> lengthens the 4 KiB ones (3 s), so that a profile is mostly about them. The `cluster3_*`
 * scenarios repeat the 1 MiB and 4 KiB ones through node 1 of a 3-node, RF 3 cluster on this
 * machine (BENCH_CLUSTER=0 skips them); their lines also give `cpu_total` (the three nodes'
 * CPU per unit), `cpu_nodes` and `peak_rss_mb_nodes` (per node, node 1 first). The `geo_*` scenarios (bench/geo.ts) measure request
 * latency in RTTs on a 3-node cluster with 100 ms between nodes (BENCH_GEO=0 skips them).
 * BENCH_ONLY=<list> runs only the named groups, comma-separated: `single` (garage vs bare),
 * `cluster`, `geo` (e.g. `BENCH_ONLY=geo npm run bench`). `put_1mib_paced` is a latency line: the
 * milliseconds from the last byte of a 1 MiB PUT sent at ≈ 64 MB/s to its answer (median, p90). BENCH_SCENARIOS=<list> runs only the
 * single-node scenarios whose names contain one of the comma-separated words (`put_4kib`, `4kib`,
 * `64mib`…); a GET scenario also runs its PUT, which writes the keys it reads.
 * BENCH_SMALL_SECONDS=<s> runs each 4 KiB scenario for that long (default 3; longer runs weigh
 * fixed costs less on a loaded machine). BENCH_LARGE_ITERATIONS=<n> sends n 1 MiB PUTs and GETs
 * (default 30; the cluster's 1 MiB scenarios too) and n / 6 of 64 MiB (default 5), e.g. to profile them.
 * Before a scenario, each target runs its operation unmeasured for BENCH_WARM_SECONDS (default 5;
 * every line says `warm_seconds`): the figures are steady-state ones, not those of a process
 * whose JIT is still compiling (see WARM_SECONDS).
 *
 * The garage processes run the built package (`bin/garage.js`, dist/), as `npx garage server`
 * does: the bench runs `npm run build` first. BENCH_ENTRY=source runs lib/ through tsx instead,
 * as the tests do (≈ 50 MB more RSS per process: tsx's compiled sources and source maps). Every
 * line says which (`entry`). The geo scenarios always run the sources (their RPC trace hook is
 * TypeScript); they measure latency, not memory.
 */

import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { Agent } from 'node:http'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  readPeakRss,
  resetPeakRss,
  type S3Target,
  type ServerProcess,
  sendSigned,
  startServerProcess,
} from '../test/helpers/server-process.ts'
import { type ReplicatedCluster, startReplicatedCluster } from '../test/helpers/cluster.ts'
import { benchGeo } from './geo.ts'

const MiB = 1024 * 1024
/** What the garage processes run (see the header). */
const ENTRY: 'package' | 'source' = process.env.BENCH_ENTRY === 'source' ? 'source' : 'package'
const QUICK = process.env.BENCH_QUICK === '1'
const LARGE_ITERATIONS = Number(process.env.BENCH_LARGE_ITERATIONS ?? 30)
const CONCURRENCY = 16
const SMALL_SECONDS = QUICK ? 0.5 : Number(process.env.BENCH_SMALL_SECONDS ?? 3)
/**
 * Seconds of each scenario's own operation every target runs, unmeasured, before its slices
 * (BENCH_WARM_SECONDS; 4 KiB scenarios at their concurrency, large ones sequentially): a server's
 * figure is its steady state, and V8 takes seconds of such load to compile a large server's hot
 * paths (garage did 645 4 KiB PUTs/s in its first second and 1,500–1,900 from the fifth on, its
 * compiler threads' CPU per PUT falling from ≈ 900 µs to ≈ 160), against a fraction of a second
 * for the bare server and the floor.
 */
const WARM_SECONDS = QUICK ? 0.5 : Number(process.env.BENCH_WARM_SECONDS ?? 5)
/** Turns each scenario runs in, the targets taking turns (see scenario()). */
const SLICES = QUICK ? 1 : Number(process.env.BENCH_SLICES ?? 3)
const GROUPS = ['single', 'cluster', 'geo'] as const
const ONLY = (process.env.BENCH_ONLY ?? '').split(',').filter((g) => g !== '')
for (const g of ONLY)
  if (!(GROUPS as readonly string[]).includes(g)) throw new Error(`BENCH_ONLY: unknown group ${g} (${GROUPS.join(', ')})`)
const SCENARIOS = (process.env.BENCH_SCENARIOS ?? '').split(',').filter((w) => w !== '')
/** True when BENCH_SCENARIOS selects the single-node scenario `name` (or is not set). */
const wanted = (name: string): boolean => SCENARIOS.length === 0 || SCENARIOS.some((w) => name.includes(w))
const runs = (group: (typeof GROUPS)[number]): boolean =>
  (ONLY.length === 0 || ONLY.includes(group)) &&
  !(group === 'cluster' && process.env.BENCH_CLUSTER === '0') &&
  !(group === 'geo' && process.env.BENCH_GEO === '0')

interface Target extends S3Target {
  name: 'garage' | 'bare' | 'floor' | 'cluster3'
  /** The process the client talks to (node 1 of the cluster). */
  pid: number
  /** Every process doing the work (the cluster's nodes, node 1 first); measured one by one. */
  pids: number[]
  bucket: string
  agent: Agent
  /** Each process's stdout + stderr so far (garage targets), for BENCH_TRACE_GC's counts. */
  outputs?: Array<() => string>
}

/** BENCH_TRACE_GC=1: the garage processes run with `--trace-gc`, and each line counts their collections. */
const TRACE_GC = process.env.BENCH_TRACE_GC === '1'
/** Node.js flags of every garage process: `--cpu-prof` into `profDir` (BENCH_CPU_PROF), `--trace-gc`. */
function garageNodeArgs(profDir: string | undefined): string[] {
  return [
    ...(profDir === undefined || profDir === '' ? [] : ['--cpu-prof', `--cpu-prof-dir=${profDir}`]),
    ...(TRACE_GC ? ['--trace-gc'] : []),
  ]
}

/** Full (mark-compact) and young-generation (scavenge) collections in `--trace-gc` output. */
function gcCounts(out: string): { full: number; young: number } {
  return { full: out.match(/: Mark-Compact /g)?.length ?? 0, young: out.match(/: Scavenge /g)?.length ?? 0 }
}

// ---------------------------------------------------------------------------------------------
// Servers

async function startGarage(): Promise<{ target: Target; server: ServerProcess }> {
  const prof = process.env.BENCH_CPU_PROF
  const server = await startServerProcess({ bucket: 'bench', entry: ENTRY, nodeArgs: garageNodeArgs(prof) })
  const target: Target = {
    name: 'garage',
    endpoint: server.endpoint,
    region: server.region,
    credentials: server.credentials,
    pid: server.pid,
    pids: [server.pid],
    bucket: server.bucket,
    agent: new Agent({ keepAlive: true, maxSockets: CONCURRENCY }),
    outputs: [() => server.output()],
  }
  return { target, server }
}

/**
 * Three `garage server` processes in three zones, replication factor 3, a layout applied; the
 * client talks to node 1, which writes every block and row to all three (quorum 2, the third in
 * the background). Production periods for anti-entropy and resync, so that they do not run
 * during the measurement.
 */
async function startCluster3(): Promise<{ target: Target; cluster: ReplicatedCluster }> {
  const prof = process.env.BENCH_CPU_PROF
  const cluster = await startReplicatedCluster({
    // Starting three nodes at once takes long on a loaded machine. With BENCH_CPU_PROF, one
    // profile directory per node: <dir>/cluster-node1, -node2, -node3.
    nodeOptions: (i: number) => ({
      startTimeoutMs: 120_000,
      entry: ENTRY,
      nodeArgs: garageNodeArgs(prof === undefined || prof === '' ? undefined : join(prof, `cluster-node${i + 1}`)),
    }),
    nodes: 3,
    bucket: 'bench',
    env: {
      GARAGE_TS_TEST_RPC_INTERVAL_MSEC: '1000',
      GARAGE_TS_TEST_SYNC_INTERVAL_MSEC: '600000',
      GARAGE_TS_TEST_TABLE_GC_DELAY_MSEC: '86400000',
      GARAGE_TS_TEST_RESYNC_DELAY_MSEC: '180000',
      GARAGE_TS_TEST_RESYNC_RETRY_MSEC: '60000',
    },
  })
  const node = cluster.nodes[0]
  if (node === undefined) throw new Error('the cluster has no node')
  const target: Target = {
    name: 'cluster3',
    ...cluster.target(0),
    pid: node.proc.pid,
    pids: cluster.nodes.map((n) => n.proc.pid),
    bucket: cluster.bucket,
    agent: new Agent({ keepAlive: true, maxSockets: CONCURRENCY }),
    outputs: cluster.nodes.map((n) => () => n.proc.output()),
  }
  return { target, cluster }
}

/**
 * The bare server (bench/bare-server.ts), or with `floor` the design floor (bench/floor-server.ts),
 * sending each object to `peers` (other floor servers) when given.
 */
async function startBare(floor = false, peers: string[] = []): Promise<{ target: Target; stop: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'garage-bench-bare-'))
  const script = fileURLToPath(new URL(floor ? './floor-server.ts' : './bare-server.ts', import.meta.url))
  const args = ['--import', import.meta.resolve('tsx'), script, dir]
  const child: ChildProcess = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, FLOOR_PEERS: peers.join(',') },
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const endpoint = await new Promise<string>((resolve, reject) => {
      let out = ''
      child.stdout?.setEncoding('utf8').on('data', (d: string) => {
        out += d
        const m = /listening on (\S+)/.exec(out)
        if (m?.[1] !== undefined) resolve(m[1])
      })
      child.once('exit', () => reject(new Error(`bare server exited before listening: ${out}`)))
    })
    const target: Target = {
      name: floor ? 'floor' : 'bare',
      endpoint,
      region: 'garage',
      credentials: { accessKeyId: 'GK000000000000000000000000', secretAccessKey: 'bare' },
      pid: child.pid as number,
      pids: [child.pid as number],
      bucket: 'bench',
      agent: new Agent({ keepAlive: true, maxSockets: CONCURRENCY }),
    }
    return { target, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

// ---------------------------------------------------------------------------------------------
// Client

let seq = 0

/** Makes every 1 MiB block of `buf` unique (garage stores identical blocks once). */
function stamp(buf: Buffer): Buffer {
  seq++
  for (let at = 0; at < buf.length; at += MiB) buf.writeUInt32LE(seq, at)
  return buf
}

async function put(t: Target, key: string, body: Buffer): Promise<void> {
  const res = await sendSigned(t, 'PUT', `/${t.bucket}/${key}`, {
    headers: { 'content-length': String(body.length) },
    body,
    agent: t.agent,
  })
  let text = ''
  for await (const chunk of res) text += chunk
  if (res.statusCode !== 200) throw new Error(`${t.name} PUT ${key}: ${res.statusCode} ${text}`)
}

async function get(t: Target, key: string): Promise<number> {
  const res = await sendSigned(t, 'GET', `/${t.bucket}/${key}`, { agent: t.agent })
  let n = 0
  for await (const chunk of res as AsyncIterable<Buffer>) n += chunk.length
  if (res.statusCode !== 200) throw new Error(`${t.name} GET ${key}: ${res.statusCode}`)
  return n
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

/**
 * The work of one slice of a scenario on one target: the MB/s of each request (MB/s scenarios,
 * whose figure is the median) or the seconds it ran (ops/s scenarios, whose figure is work / time).
 */
interface Run {
  /** MB moved (MB/s scenarios) or operations done (ops/s scenarios). */
  work: number
  rates?: number[]
  seconds?: number
}

/** One slice of a scenario: its number and how many there are (the `keys` it takes, see {@link ofSlice}). */
interface Slice {
  index: number
  of: number
}

/** The keys of slice `s`: every `s.of`-th, from the `s.index`-th. */
const ofSlice = <T>(keys: readonly T[], s: Slice): T[] => keys.filter((_, i) => i % s.of === s.index)

/** MB/s of sequential PUTs of `size` bytes, one per key. */
async function putLarge(t: Target, keys: string[], size: number): Promise<Run> {
  const body = Buffer.alloc(size)
  for (let i = 0; i < size; i += 4) body.writeUInt32LE((Math.imul(i, 2654435761) ^ (i >>> 7)) >>> 0, i)
  const rates: number[] = []
  for (const key of keys) {
    stamp(body)
    const t0 = performance.now()
    await put(t, key, body)
    rates.push(size / 1e6 / ((performance.now() - t0) / 1000))
  }
  return { rates, work: (keys.length * size) / 1e6 }
}

/** MB/s of sequential GETs. */
async function getLarge(t: Target, keys: string[], size: number): Promise<Run> {
  const rates: number[] = []
  for (const key of keys) {
    const t0 = performance.now()
    const n = await get(t, key)
    rates.push(n / 1e6 / ((performance.now() - t0) / 1000))
    if (n !== size) throw new Error(`${t.name} GET ${key}: ${n} bytes, expected ${size}`)
  }
  return { rates, work: (keys.length * size) / 1e6 }
}

/** `fn` run by CONCURRENCY workers for `seconds`: the operations done and the time taken. */
async function concurrentOps(seconds: number, fn: (n: number) => Promise<void>): Promise<Run> {
  let n = 0
  const deadline = performance.now() + seconds * 1000
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < deadline) await fn(n++)
    }),
  )
  return { seconds: (performance.now() - t0) / 1000, work: n }
}

const SMALL_TEMPLATE = Buffer.alloc(4096, 0x5a)

/** How many `small-<n>` keys each target holds (putSmall numbers its keys on from there). */
const smallKeys = new Map<Target, number>()

/** 4 KiB PUTs of distinct content to keys `small-<n>`, for one slice of SMALL_SECONDS. */
const putSmall = (t: Target, slice: Slice): Promise<Run> => putSmallFor(t, SMALL_SECONDS / slice.of)

/** 4 KiB PUTs of distinct content to keys `small-<n>` (numbered on from the last), for `seconds`. */
async function putSmallFor(t: Target, seconds: number): Promise<Run> {
  return concurrentOps(seconds, async () => {
    const i = smallKeys.get(t) ?? 0
    smallKeys.set(t, i + 1)
    const body = Buffer.from(SMALL_TEMPLATE)
    body.writeUInt32LE(i, 0)
    body.writeUInt32LE(++seq, 4)
    await put(t, `small-${i}`, body)
  })
}

/** 4 KiB GETs cycling over the keys putSmall wrote, for one slice of SMALL_SECONDS. */
const getSmall = (t: Target, slice: Slice): Promise<Run> => getSmallFor(t, SMALL_SECONDS / slice.of)

/** 4 KiB GETs cycling over the keys putSmall wrote, for `seconds`. */
async function getSmallFor(t: Target, seconds: number): Promise<Run> {
  const count = smallKeys.get(t) ?? 0
  if (count === 0) throw new Error(`${t.name}: no small keys to GET`)
  return concurrentOps(seconds, async (i) => {
    const n = await get(t, `small-${i % count}`)
    if (n !== 4096) throw new Error(`${t.name} GET small-${i % count}: ${n} bytes`)
  })
}

/** The warm-ups of the 4 KiB scenarios (WARM_SECONDS of their own operation; none at 0). */
const warmPuts = WARM_SECONDS > 0 ? (t: Target): Promise<Run> => putSmallFor(t, WARM_SECONDS) : undefined
const warmGets = WARM_SECONDS > 0 ? (t: Target): Promise<Run> => getSmallFor(t, WARM_SECONDS) : undefined

/** Keys of the large scenarios' warm-ups, of their own (overwritten at each round). */
const warmKeys = (size: number): string[] => [0, 1, 2, 3].map((i) => `warm-${size}-${i}`)

/**
 * The warm-up of a large scenario: rounds of the scenario's own PUTs (putLarge) of `size` bytes to
 * four keys of their own, for WARM_SECONDS (one round at least).
 */
function warmPutsOf(size: number): ((t: Target) => Promise<void>) | undefined {
  if (WARM_SECONDS <= 0) return undefined
  return async (t) => {
    const deadline = performance.now() + WARM_SECONDS * 1000
    do await putLarge(t, warmKeys(size), size)
    while (performance.now() < deadline)
  }
}

/** The warm-up of a large GET scenario: rounds of getLarge over what warmPutsOf wrote. */
function warmGetsOf(size: number): ((t: Target) => Promise<void>) | undefined {
  if (WARM_SECONDS <= 0) return undefined
  return async (t) => {
    const deadline = performance.now() + WARM_SECONDS * 1000
    do await getLarge(t, warmKeys(size), size)
    while (performance.now() < deadline)
  }
}

// ---------------------------------------------------------------------------------------------
// Driver

interface Measured extends Run {
  /** The scenario's figure: the median MB/s of its requests, or its operations per second. */
  value: number
  /** Peak RSS of each process of the target (`pids` order). */
  peakRssMb: number[]
  /** CPU seconds (user + system, all threads) each process of the target used during the scenario. */
  cpuS: number[]
  /** With BENCH_TRACE_GC: each process's collections during the scenario. */
  gc?: Array<{ full: number; young: number }>
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime in clock ticks (USER_HZ = 100)
}

/** What one slice cost a target: its processes' CPU, peak RSS and collections. */
async function measureSlice(t: Target, run: () => Promise<Run>): Promise<Omit<Measured, 'value'>> {
  for (const pid of t.pids) await resetPeakRss(pid)
  const cpu0 = await Promise.all(t.pids.map(cpuSeconds))
  const out0 = (t.outputs ?? []).map((o) => o().length)
  const r = await run()
  const cpu1 = await Promise.all(t.pids.map(cpuSeconds))
  const rss = await Promise.all(t.pids.map(readPeakRss))
  const gc = TRACE_GC ? (t.outputs ?? []).map((o, i) => gcCounts(o().slice(out0[i]))) : undefined
  return {
    ...r,
    peakRssMb: rss.map((b) => b / MiB),
    cpuS: cpu1.map((c, i) => c - (cpu0[i] as number)),
    ...(gc === undefined ? {} : { gc }),
  }
}

/** A target's slices together: work, CPU and collections added up, the highest peak RSS. */
function merged(slices: Array<Omit<Measured, 'value'>>): Measured {
  const add = (a: number[], b: number[]): number[] => a.map((x, i) => x + (b[i] as number))
  const first = slices[0]
  if (first === undefined) throw new Error('a scenario ran no slice')
  const all = slices.slice(1).reduce(
    (m, s) => ({
      work: m.work + s.work,
      ...(m.rates === undefined ? {} : { rates: [...m.rates, ...(s.rates ?? [])] }),
      ...(m.seconds === undefined ? {} : { seconds: m.seconds + (s.seconds ?? 0) }),
      peakRssMb: m.peakRssMb.map((r, i) => Math.max(r, s.peakRssMb[i] as number)),
      cpuS: add(m.cpuS, s.cpuS),
      ...(m.gc === undefined
        ? {}
        : { gc: m.gc.map((g, i) => ({ full: g.full + (s.gc?.[i]?.full ?? 0), young: g.young + (s.gc?.[i]?.young ?? 0) })) }),
    }),
    first,
  )
  return { ...all, value: all.rates !== undefined ? median(all.rates) : all.work / (all.seconds ?? Number.NaN) }
}

const round = (x: number, digits = 1): number => Number(x.toFixed(digits))

/** garage, the bare server, and the design floor (when run). */
type Targets = readonly [Target, Target] | readonly [Target, Target, Target]

/**
 * Runs a scenario on garage, bare and the design floor if given, never two at once, in SLICES
 * turns (garage, bare, floor, garage, bare, floor…), so that the three see the same machine
 * even when its speed drifts during the run; prints its JSON line.
 */
async function scenario(
  targets: Targets,
  name: string,
  unit: 'MB/s' | 'ops/s',
  run: (t: Target, slice: Slice) => Promise<Run>,
  extra: Record<string, unknown> = {},
  warm?: (t: Target) => Promise<unknown>,
): Promise<Measured[]> {
  // Unmeasured, each target in turn: the scenario's own load until its hot paths are compiled.
  if (warm !== undefined) for (const t of targets) await warm(t)
  const slices: Array<Array<Omit<Measured, 'value'>>> = targets.map(() => [])
  for (let index = 0; index < SLICES; index++) {
    for (const [i, t] of targets.entries()) slices[i]?.push(await measureSlice(t, () => run(t, { index, of: SLICES })))
  }
  const [g, b, h] = slices.map(merged) as [Measured, Measured, Measured | undefined]
  // CPU per unit of work: the figure least disturbed by other load on the machine.
  const perUnit = (m: Measured, cpuS: number): number => (unit === 'MB/s' ? (cpuS * 1e3) / m.work : (cpuS * 1e6) / m.work)
  const sum = (xs: number[]): number => xs.reduce((a, x) => a + x, 0)
  // A cluster also reports every node: `cpu` and `peak_rss_mb` stay node 1's (comparable with
  // earlier runs), `cpu_total` is the whole cluster's CPU per unit of work.
  const nodes = targets[0].pids.length > 1
  const line = {
    scenario: name,
    unit,
    value: round(g.value),
    bare: round(b.value),
    ratio: round(g.value / b.value, 3),
    peak_rss_mb: round(g.peakRssMb[0] as number),
    bare_peak_rss_mb: round(b.peakRssMb[0] as number),
    cpu_unit: unit === 'MB/s' ? 'ms/MB' : 'us/op',
    cpu: round(perUnit(g, g.cpuS[0] as number), 2),
    bare_cpu: round(perUnit(b, b.cpuS[0] as number), 2),
    // The design floor: what S3 and the block layout cost at the least (bench/floor-server.ts).
    ...(h === undefined
      ? {}
      : {
          floor: round(h.value),
          ratio_floor: round(g.value / h.value, 3),
          floor_cpu: round(perUnit(h, h.cpuS[0] as number), 2),
          ...(h.cpuS.length > 1 ? { floor_cpu_total: round(perUnit(h, sum(h.cpuS)), 2) } : {}),
        }),
    ...(nodes
      ? {
          cpu_total: round(perUnit(g, sum(g.cpuS)), 2),
          cpu_nodes: g.cpuS.map((c) => round(perUnit(g, c), 2)),
          peak_rss_mb_nodes: g.peakRssMb.map((r) => round(r)),
        }
      : {}),
    // The 1-minute load average when the scenario ended: throughput depends on it (shared machine).
    load_avg: round(loadavg()[0] as number, 2),
    entry: ENTRY,
    slices: SLICES,
    // BENCH_TRACE_GC: mark-compacts and scavenges of each garage process (node 1 first).
    ...(g.gc === undefined ? {} : { gc_full: g.gc.map((c) => c.full), gc_young: g.gc.map((c) => c.young) }),
    ...extra,
  }
  process.stdout.write(`${JSON.stringify(line)}\n`)
  return h === undefined ? [g, b] : [g, b, h]
}

/**
 * Milliseconds from the last byte of each 1 MiB PUT to its answer, the client sending 64 KiB
 * pieces 1 ms apart (≈ 64 MB/s, a client across a network rather than on loopback at full
 * speed): the work a node leaves for after the body has arrived (hashing, writing, metadata).
 */
async function pacedTail(t: Target, n: number): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    const body = stamp(Buffer.alloc(MiB, 7))
    let last = 0
    async function* paced(): AsyncGenerator<Buffer> {
      for (let o = 0; o < body.length; o += 64 * 1024) {
        if (o > 0) await new Promise((resolve) => setTimeout(resolve, 1))
        // The last piece: its answer may come before this generator is resumed.
        if (o + 64 * 1024 >= body.length) last = performance.now()
        yield body.subarray(o, o + 64 * 1024)
      }
    }
    const res = await sendSigned(t, 'PUT', `/${t.bucket}/paced-${i}`, {
      headers: { 'content-length': String(body.length) },
      body: paced(),
      agent: t.agent,
    })
    for await (const _ of res);
    if (res.statusCode !== 200) throw new Error(`${t.name} paced PUT: ${res.statusCode}`)
    out.push(performance.now() - last)
  }
  return out
}

/** {@link pacedTail} on garage then bare: one JSON line, median and p90 of each. */
async function pacedScenario(targets: Targets, n: number): Promise<void> {
  const sorted = async (t: Target): Promise<number[]> => (await pacedTail(t, n)).sort((a, b) => a - b)
  const [g, b] = [await sorted(targets[0]), await sorted(targets[1])]
  const at = (xs: number[], q: number): number => round(xs[Math.min(xs.length - 1, Math.floor(xs.length * q))] as number, 2)
  const line = {
    scenario: 'put_1mib_paced',
    unit: 'ms after the last byte',
    median: at(g, 0.5),
    p90: at(g, 0.9),
    bare_median: at(b, 0.5),
    bare_p90: at(b, 0.9),
    load_avg: round(loadavg()[0] as number, 2),
    entry: ENTRY,
    iterations: n,
  }
  process.stdout.write(`${JSON.stringify(line)}\n`)
}

/** `npm run build`, so that the garage processes run the package as it is now (see the header). */
async function build(): Promise<void> {
  const started = performance.now()
  const child = spawn('npm', ['run', 'build', '--silent'], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString()
  })
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString()
  })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  if (code !== 0) throw new Error(`npm run build failed (exit ${code}):\n${out}`)
  process.stderr.write(`built the package (npm run build) in ${((performance.now() - started) / 1000).toFixed(1)} s\n`)
}

async function main(): Promise<void> {
  const started = performance.now()
  if ((runs('single') || runs('cluster')) && ENTRY === 'package') await build()
  if (runs('single') || runs('cluster')) await benchSingleAndCluster()
  if (runs('geo')) await benchGeo()
  process.stderr.write(`bench finished in ${((performance.now() - started) / 1000).toFixed(1)} s\n`)
}

async function benchSingleAndCluster(): Promise<void> {
  if (!runs('single')) {
    const b = await startBare()
    await benchCluster(b.target).finally(() => b.stop())
    return
  }
  const [g, b, h] = await Promise.all([startGarage(), startBare(), startBare(true)])
  const targets = [g.target, b.target, h.target] as const
  try {
    process.stderr.write(
      `garage pid ${g.target.pid} at ${g.target.endpoint}, bare pid ${b.target.pid}, floor pid ${h.target.pid}\n`,
    )
    // Warm-up (JIT, first directory creations); not measured.
    for (const t of targets) {
      const body = Buffer.alloc(MiB, 1)
      for (let i = 0; i < 5; i++) {
        await put(t, `warmup-${i}`, stamp(body))
        await get(t, `warmup-${i}`)
      }
    }

    for (const [label, size, iterations] of [
      ['1mib', MiB, QUICK ? 3 : LARGE_ITERATIONS],
      ['64mib', 64 * MiB, QUICK ? 1 : Math.max(1, Math.round(LARGE_ITERATIONS / 6))],
    ] as const) {
      const keys = Array.from({ length: iterations }, (_, i) => `large-${label}-${i}`)
      if (!wanted(`put_${label}`) && !wanted(`get_${label}`)) continue
      const warm = { iterations, warm_seconds: WARM_SECONDS }
      await scenario(targets, `put_${label}`, 'MB/s', (t, s) => putLarge(t, ofSlice(keys, s), size), warm, warmPutsOf(size))
      if (wanted(`get_${label}`)) {
        await scenario(targets, `get_${label}`, 'MB/s', (t, s) => getLarge(t, ofSlice(keys, s), size), warm, warmGetsOf(size))
      }
    }
    if (wanted('put_1mib_paced')) await pacedScenario(targets, QUICK ? 3 : Math.max(10, Math.round(LARGE_ITERATIONS)))
    const small = { concurrency: CONCURRENCY, seconds: SMALL_SECONDS, warm_seconds: WARM_SECONDS }
    if (wanted('put_4kib') || wanted('get_4kib')) {
      await scenario(targets, 'put_4kib', 'ops/s', putSmall, small, warmPuts)
      if (wanted('get_4kib')) await scenario(targets, 'get_4kib', 'ops/s', getSmall, small, warmGets)
    }
  } finally {
    for (const t of targets) t.agent.destroy()
    await g.server.stop()
  }
  // The same scenarios through a 3-node RF 3 cluster (all on this machine: the three nodes share
  // its cores), against the same bare server.
  await h.stop()
  if (runs('cluster')) await benchCluster(b.target).finally(() => b.stop())
  else await b.stop()
}

/**
 * The design floor of the 3-node cluster: three floor servers, the first sending each object to
 * the two others and answering once two copies are stored (bench/floor-server.ts).
 */
async function startFloor3(): Promise<{ target: Target; stop: () => Promise<void> }> {
  const peers = await Promise.all([startBare(true), startBare(true)])
  try {
    const first = await startBare(
      true,
      peers.map((p) => p.target.endpoint),
    )
    return {
      target: { ...first.target, pids: [first.target.pid, ...peers.map((p) => p.target.pid)] },
      stop: async () => {
        await Promise.all([first, ...peers].map((f) => f.stop()))
      },
    }
  } catch (err) {
    await Promise.all(peers.map((p) => p.stop()))
    throw err
  }
}

async function benchCluster(bare: Target): Promise<void> {
  const started = await Promise.allSettled([startCluster3(), startFloor3()])
  const [cs, fs] = started
  if (cs.status === 'rejected' || fs.status === 'rejected') {
    await Promise.all([
      cs.status === 'fulfilled' ? cs.value.cluster.stop() : undefined,
      fs.status === 'fulfilled' ? fs.value.stop() : undefined,
    ])
    throw cs.status === 'rejected' ? cs.reason : (fs as PromiseRejectedResult).reason
  }
  const c = cs.value
  const f = fs.value
  const ct = [c.target, bare, f.target] as const
  try {
    process.stderr.write(`cluster node 1 pid ${c.target.pid} at ${c.target.endpoint}\n`)
    // Warm-up (JIT, first directory creations, connections to the peers); not measured.
    for (const t of ct) {
      for (let i = 0; i < 5; i++) {
        await put(t, `warmup-${i}`, stamp(Buffer.alloc(MiB, 1)))
        await get(t, `warmup-${i}`)
      }
    }
    const iterations = QUICK ? 3 : LARGE_ITERATIONS
    const keys = Array.from({ length: iterations }, (_, i) => `cluster-1mib-${i}`)
    const warm = { iterations, warm_seconds: WARM_SECONDS }
    await scenario(ct, 'cluster3_put_1mib', 'MB/s', (t, s) => putLarge(t, ofSlice(keys, s), MiB), warm, warmPutsOf(MiB))
    await scenario(ct, 'cluster3_get_1mib', 'MB/s', (t, s) => getLarge(t, ofSlice(keys, s), MiB), warm, warmGetsOf(MiB))
    const small = { concurrency: CONCURRENCY, seconds: SMALL_SECONDS, warm_seconds: WARM_SECONDS }
    await scenario(ct, 'cluster3_put_4kib', 'ops/s', putSmall, small, warmPuts)
    await scenario(ct, 'cluster3_get_4kib', 'ops/s', getSmall, small, warmGets)
  } finally {
    c.target.agent.destroy()
    f.target.agent.destroy()
    await Promise.all([c.cluster.stop(), f.stop()])
  }
}

await main()
