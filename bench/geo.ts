/**
 * The geo scenario of `npm run bench` (alone: `BENCH_ONLY=geo npm run bench`): request latency
 * of a 3-node, RF 3 cluster in 3 zones whose nodes are 100 ms RTT apart, counted in RTTs.
 *
 * - Three `garage server` child processes on loopback. In front of each node's RPC port sits a
 *   userland TCP proxy (test/helpers/tcp-proxy.ts) that delays every chunk by 50 ms each way;
 *   each node advertises its proxy as `rpc_public_addr` and is introduced to the others by it,
 *   so every inter-node RPC connection goes through the proxy of its destination: one proxy
 *   per destination node, not per (source, destination) pair (a node has a single advertised
 *   address), which still gives every pair exactly one 100 ms RTT. The bench checks that every
 *   peer address each node holds is a proxy before measuring.
 * - The client (this process, raw SigV4 over node:http keep-alive) talks to node 1's S3 API
 *   directly, without added latency.
 * - The bare RTT of the link is measured in the same run: a 1-byte TCP echo through a proxy
 *   with the same delay. Latencies are given in ms and in RTTs of that echo.
 * - Each node is started with bench/geo-trace-hook.ts preloaded, which logs every RPC it makes
 *   (the `garage:net:call` diagnostics channel of lib/net/netapp.ts); after each operation the
 *   bench reads node 1's calls during the request and reports the longest chain of remote calls
 *   that waited on one another (`rpc_rounds`), and prints the calls of the median request on
 *   stderr (docs/design/round-trips.md is written from them).
 *
 * Prints one JSON line per operation:
 * `{"scenario":"geo_put_4kib","unit":"ms","median":…,"p99":…,"median_rtt":…,"p99_rtt":…,"rpc_rounds":…,"iterations":20,…}`
 * p99 is the nearest-rank 99th percentile, i.e. the slowest of 20 samples. `load_avg` is the
 * 1-minute load average when the operation finished (the machine is shared).
 *
 * Environment: BENCH_GEO_DELAY_MS (default 50, the one-way delay), BENCH_GEO_JITTER_MS (default
 * 0: each chunk's delay is uniform in delay ± jitter, order kept), BENCH_QUICK=1 (fewer iterations),
 * BENCH_GEO_BLOCK_WRITES=<n> (the nodes' `block_max_concurrent_writes_per_request`; default: the
 * setting's default, 3; every line then says `block_writes_per_request`).
 */
import { createHash } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { Agent } from 'node:http'
import { createServer, type Server, type Socket, connect } from 'node:net'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  adminOk,
  clusterStatus,
  type LayoutHistoryAnswer,
  type ReplicatedCluster,
  startReplicatedCluster,
} from '../test/helpers/cluster.ts'
import { CLUSTER_WAIT, eventually } from '../test/helpers/eventually.ts'
import { type S3Target, sendSigned } from '../test/helpers/server-process.ts'
import { freePort } from '../test/helpers/links.ts'
import { startTcpProxy, type TcpProxy } from '../test/helpers/tcp-proxy.ts'

const KiB = 1024
const MiB = 1024 * KiB
const QUICK = process.env.BENCH_QUICK === '1'
const ITERATIONS = QUICK ? 3 : 20
const MPU_ITERATIONS = QUICK ? 1 : 5
/** Keys per DeleteObjects request of the geo_delete_objects scenario, and its requests. */
const DELETE_KEYS = 100
const DELETE_ITERATIONS = QUICK ? 1 : 5
const DELAY_MS = envNumber('BENCH_GEO_DELAY_MS', 50)
const JITTER_MS = envNumber('BENCH_GEO_JITTER_MS', 0)
const HOOK = fileURLToPath(new URL('./geo-trace-hook.ts', import.meta.url))
/** `block_max_concurrent_writes_per_request` of the nodes, when BENCH_GEO_BLOCK_WRITES sets it. */
const BLOCK_WRITES = process.env.BENCH_GEO_BLOCK_WRITES ? envNumber('BENCH_GEO_BLOCK_WRITES', 3) : undefined
const SETTINGS = BLOCK_WRITES === undefined ? {} : { block_writes_per_request: BLOCK_WRITES }
/** RPCs of membership, not of requests. */
const BACKGROUND_PATHS = /^(net\/ping|system\/|layout\/|table-sync\/|table-gc\/|admin\/)/

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name]
  const n = raw === undefined || raw === '' ? fallback : Number(raw)
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got ${raw}`)
  return n
}

const nowMs = (): number => performance.timeOrigin + performance.now()
const round = (x: number, digits = 1): number => Number(x.toFixed(digits))

function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)] as number
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

// ---------------------------------------------------------------------------------------------
// The link: proxies with delay, and its bare RTT

/** Sets each proxy's delay; with jitter, a fresh random delay for every chunk (order is kept by the proxy). */
function setDelay(proxies: readonly TcpProxy[], ms: number, jitter: number): void {
  for (const p of proxies) p.setLatency(ms, jitter)
}

/** Median and p99 RTT of a 1-byte TCP echo through a proxy with the bench's delay. */
async function bareRtt(samples: number): Promise<{ median: number; p99: number }> {
  const echo: Server = createServer((s) => s.pipe(s))
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
  const port = (echo.address() as { port: number }).port
  const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port } })
  setDelay([proxy], DELAY_MS, JITTER_MS)
  const sock: Socket = connect(proxy.port, '127.0.0.1')
  sock.setNoDelay(true)
  try {
    await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject))
    const rtts: number[] = []
    for (let i = 0; i < samples; i++) {
      const t0 = performance.now()
      const back = new Promise<void>((resolve) => sock.once('data', () => resolve()))
      sock.write('x')
      await back
      rtts.push(performance.now() - t0)
    }
    return { median: median(rtts), p99: percentile(rtts, 99) }
  } finally {
    sock.destroy()
    await proxy.close()
    await new Promise<void>((resolve) => echo.close(() => resolve()))
  }
}

// ---------------------------------------------------------------------------------------------
// RPC traces (bench/geo-trace-hook.ts)

interface Call {
  from: string
  to: string
  path: string
  op?: string
  startMs: number
  endMs: number
  ok: boolean
}

class Traces {
  readonly dir: string
  #offsets = new Map<string, number>()
  constructor(dir: string) {
    this.dir = dir
  }

  /** Calls logged since the last read, from every node. */
  async readNew(): Promise<Call[]> {
    const out: Call[] = []
    for (const name of await readdir(this.dir)) {
      const text = await readFile(join(this.dir, name), 'utf8')
      const from = this.#offsets.get(name) ?? 0
      const end = text.lastIndexOf('\n') + 1
      this.#offsets.set(name, end)
      for (const line of text.slice(from, end).split('\n')) if (line !== '') out.push(JSON.parse(line) as Call)
    }
    return out
  }
}

/**
 * The longest chain of remote calls made by `node` within [t0, t1] where each call started after
 * the previous one had answered (1 ms of slack), counting only calls that answered before t1:
 * the number of sequential round trips the request waited for.
 */
function rounds(calls: readonly Call[], node: string, t0: number, t1: number): number {
  const mine = calls
    .filter((c) => c.from === node && c.to !== node && !BACKGROUND_PATHS.test(c.path) && c.startMs >= t0 && c.endMs <= t1)
    .sort((a, b) => a.startMs - b.startMs)
  const depth: number[] = []
  let best = 0
  mine.forEach((c, i) => {
    let d = 1
    for (let j = 0; j < i; j++) if ((mine[j] as Call).endMs <= c.startMs + 1) d = Math.max(d, (depth[j] as number) + 1)
    depth.push(d)
    best = Math.max(best, d)
  })
  return best
}

/** A point in a request sequence (the start and end of each S3 request of a multipart upload). */
interface Mark {
  atMs: number
  label: string
}

/**
 * Human-readable calls of one request, for stderr: `+0 n1→n2 table/object:get 101 ms`, with the
 * marks in between and a note on calls still running when the response came.
 */
function describe(calls: readonly Call[], names: Map<string, string>, t0: number, t1: number, marks: readonly Mark[]): string[] {
  const lines = calls
    .filter((c) => !BACKGROUND_PATHS.test(c.path) && c.startMs >= t0 - 1 && c.startMs <= t1)
    .map((c) => {
      const after = c.endMs > t1 ? ' (after the response)' : ''
      const text = `  +${(c.startMs - t0).toFixed(0)} ${names.get(c.from)}→${names.get(c.to)} ${c.path}${c.op === undefined ? '' : `:${c.op}`} ${(c.endMs - c.startMs).toFixed(0)} ms${c.ok ? '' : ' FAILED'}${after}`
      return { at: c.startMs, text }
    })
  for (const m of marks) lines.push({ at: m.atMs, text: `  +${(m.atMs - t0).toFixed(0)} -- ${m.label}` })
  return lines.sort((a, b) => a.at - b.at).map((l) => l.text)
}

// ---------------------------------------------------------------------------------------------
// S3 requests

interface Target extends S3Target {
  bucket: string
  agent: Agent
}

async function request(
  t: Target,
  method: string,
  key: string,
  expect: number,
  o: { body?: Buffer; query?: Record<string, string> } = {},
): Promise<string> {
  const res = await sendSigned(t, method, `/${t.bucket}${key === '' ? '' : `/${key}`}`, {
    agent: t.agent,
    ...(o.body === undefined ? {} : { body: o.body, headers: { 'content-length': String(o.body.length) } }),
    ...(o.query === undefined ? {} : { query: o.query }),
  })
  const chunks: Buffer[] = []
  for await (const chunk of res as AsyncIterable<Buffer>) chunks.push(chunk)
  const text = Buffer.concat(chunks)
  if (res.statusCode !== expect) throw new Error(`${method} ${key}: ${res.statusCode} ${text.toString('utf8', 0, 500)}`)
  return method === 'GET' && key !== '' ? String(text.length) : (res.headers.etag ?? text.toString('utf8'))
}

let seq = 0
/** `size` bytes, distinct in every 1 MiB block (garage stores identical blocks once). */
function body(size: number): Buffer {
  const b = Buffer.alloc(size, 0x5a)
  seq++
  for (let at = 0; at < size; at += MiB) b.writeUInt32LE(seq, at)
  return b
}

// ---------------------------------------------------------------------------------------------
// The scenario

export async function benchGeo(): Promise<void> {
  const started = performance.now()
  const traceDir = await mkdtemp(join(tmpdir(), 'garage-bench-geo-'))
  const ports = [await freePort(), await freePort(), await freePort()]
  const proxies = await Promise.all(ports.map((port) => startTcpProxy({ target: { host: '127.0.0.1', port } })))
  let cluster: ReplicatedCluster | undefined
  const agent = new Agent({ keepAlive: true, maxSockets: 4 })
  try {
    // Set up without delay (fast), then measure with it.
    cluster = await startReplicatedCluster({
      nodes: 3,
      bucket: 'geo',
      ...(BLOCK_WRITES === undefined ? {} : { configLines: [`block_max_concurrent_writes_per_request = ${BLOCK_WRITES}`] }),
      env: {
        // Pings every 2 s (they take one RTT and would otherwise crowd the traces); no
        // anti-entropy, GC or resync during the measurement.
        GARAGE_TS_TEST_RPC_INTERVAL_MSEC: '2000',
        GARAGE_TS_TEST_SYNC_INTERVAL_MSEC: '600000',
        GARAGE_TS_TEST_TABLE_GC_DELAY_MSEC: '86400000',
        GARAGE_TS_TEST_RESYNC_DELAY_MSEC: '180000',
        GARAGE_TS_TEST_RESYNC_RETRY_MSEC: '60000',
        BENCH_TRACE_DIR: traceDir,
      },
      nodeOptions: (i) => ({
        rpcBindAddr: `127.0.0.1:${ports[i]}`,
        rpcPublicAddr: `127.0.0.1:${proxies[i]?.port}`,
        preload: [HOOK],
        // Three nodes starting at once on a loaded machine can take more than the default 30 s.
        startTimeoutMs: 120_000,
      }),
    })
    const c = cluster
    const names = new Map(c.nodes.map((n, i) => [n.id, `n${i + 1}`]))
    const node1 = c.node(0).id
    await checkThroughProxies(c, proxies)
    await waitLayoutSynced(c)
    process.stderr.write(`geo: cluster up and synced in ${((performance.now() - started) / 1000).toFixed(1)} s\n`)

    setDelay(proxies, DELAY_MS, JITTER_MS)
    const delayedFrom = nowMs()
    const link = await bareRtt(ITERATIONS)
    const rtt = link.median
    const t: Target = { ...c.target(0), bucket: c.bucket, agent }
    // Warm-up under delay: connection pools, JIT, the first block directories. Not measured.
    for (let i = 0; i < 3; i++) {
      await request(t, 'PUT', `warm-${i}`, 200, { body: body(MiB) })
      await request(t, 'GET', `warm-${i}`, 200)
      await request(t, 'PUT', `warm-small-${i}`, 200, { body: body(4 * KiB) })
      await request(t, 'DELETE', `warm-small-${i}`, 204)
    }
    await sleep(300)
    const traces = new Traces(traceDir)
    // The nodes' own pings (RPC `net/ping` on an established session) since the delay was set.
    const pings = (await traces.readNew())
      .filter((x) => x.path === 'net/ping' && x.ok && x.startMs > delayedFrom)
      .map((x) => x.endMs - x.startMs)
    process.stdout.write(
      `${JSON.stringify({
        scenario: 'geo_link',
        unit: 'ms',
        median: round(link.median),
        p99: round(link.p99),
        delay_ms_each_way: DELAY_MS,
        jitter_ms: JITTER_MS,
        proxies: 'one per destination node',
        rpc_ping_median_ms: pings.length === 0 ? null : round(median(pings)),
        rpc_pings: pings.length,
        load_avg: round(loadavg()[0] as number, 2),
      })}\n`,
    )

    /** Runs `op` sequentially, measures each, and prints its line; returns the latencies. */
    async function measure(
      scenario: string,
      n: number,
      op: (i: number, mark: (label: string) => void) => Promise<unknown>,
      extra: Record<string, unknown> = {},
      prepare?: (i: number) => Promise<void>,
    ) {
      const samples: Array<{ ms: number; t0: number; t1: number; marks: Mark[] }> = []
      for (let i = 0; i < n; i++) {
        // Not timed: what the request needs in place (its writes land before it starts).
        if (prepare !== undefined) {
          await prepare(i)
          await sleep(300)
        }
        const marks: Mark[] = []
        const t0 = nowMs()
        await op(i, (label) => marks.push({ atMs: nowMs(), label }))
        const t1 = nowMs()
        samples.push({ ms: t1 - t0, t0, t1, marks })
      }
      await sleep(300) // background writes (the third replica) land, hook lines are flushed
      const calls = await traces.readNew()
      const ms = samples.map((s) => s.ms)
      const counts = samples.map((s) => rounds(calls, node1, s.t0, s.t1))
      const med = [...samples].sort((a, b) => a.ms - b.ms)[Math.floor(samples.length / 2)] as (typeof samples)[number]
      const line = {
        scenario,
        unit: 'ms',
        median: round(median(ms)),
        p99: round(percentile(ms, 99)),
        median_rtt: round(median(ms) / rtt, 2),
        p99_rtt: round(percentile(ms, 99) / rtt, 2),
        rpc_rounds: median(counts),
        rpc_rounds_max: Math.max(...counts),
        iterations: n,
        rtt_ms: round(rtt),
        load_avg: round(loadavg()[0] as number, 2),
        ...SETTINGS,
        ...extra,
      }
      process.stdout.write(`${JSON.stringify(line)}\n`)
      process.stderr.write(
        `${scenario}: RPCs of the median request (${med.ms.toFixed(0)} ms, from the S3 request's start):\n${describe(calls, names, med.t0, med.t1, med.marks).join('\n')}\n`,
      )
      return { samples, calls }
    }

    const small = (i: number): string => `small-${i}`
    await measure('geo_put_4kib', ITERATIONS, (i) => request(t, 'PUT', small(i), 200, { body: body(4 * KiB) }))
    await measure('geo_get_4kib', ITERATIONS, (i) => request(t, 'GET', small(i), 200))
    await measure('geo_head_4kib', ITERATIONS, (i) => request(t, 'HEAD', small(i), 200))
    await measure(
      'geo_list_v2',
      ITERATIONS,
      () => request(t, 'GET', '', 200, { query: { 'list-type': '2', prefix: 'small-' } }),
      {
        objects: ITERATIONS,
      },
    )
    await measure('geo_delete_4kib', ITERATIONS, (i) => request(t, 'DELETE', small(i), 204))
    // DeleteObjects of DELETE_KEYS existing keys per request (written beforehand, 16 at a time).
    const doomed = (i: number, j: number): string => `doomed-${i}-${String(j).padStart(4, '0')}`
    await measure(
      'geo_delete_objects',
      DELETE_ITERATIONS,
      async (i) => {
        const xml = `<Delete><Quiet>true</Quiet>${Array.from({ length: DELETE_KEYS }, (_, j) => `<Object><Key>${doomed(i, j)}</Key></Object>`).join('')}</Delete>`
        const payload = Buffer.from(xml)
        const res = await sendSigned(t, 'POST', `/${t.bucket}`, {
          agent: t.agent,
          query: { delete: '' },
          body: payload,
          headers: {
            'content-length': String(payload.length),
            'content-md5': createHash('md5').update(payload).digest('base64'),
          },
        })
        const chunks: Buffer[] = []
        for await (const chunk of res as AsyncIterable<Buffer>) chunks.push(chunk)
        const text = Buffer.concat(chunks).toString('utf8')
        if (res.statusCode !== 200 || text.includes('<Error>'))
          throw new Error(`DeleteObjects: ${res.statusCode} ${text.slice(0, 500)}`)
      },
      { keys: DELETE_KEYS },
      async (i) => {
        for (let j = 0; j < DELETE_KEYS; j += 16) {
          const batch = Array.from({ length: Math.min(16, DELETE_KEYS - j) }, (_, k) => doomed(i, j + k))
          await Promise.all(batch.map((k) => request(t, 'PUT', k, 200, { body: body(64) })))
        }
      },
    )
    await measure('geo_put_1mib', ITERATIONS, (i) => request(t, 'PUT', `large-${i}`, 200, { body: body(MiB) }))

    // Multipart: create, two 5 MiB parts (the minimum for all but the last), a 1 MiB part, complete.
    const steps = { create: [] as number[], part5: [] as number[], part1: [] as number[], complete: [] as number[] }
    const mpu = await measure(
      'geo_mpu_3_parts',
      MPU_ITERATIONS,
      async (i, mark) => {
        const key = `mpu-${i}`
        const timed = async <T>(into: number[], label: string, fn: () => Promise<T>): Promise<T> => {
          mark(`${label} starts`)
          const t0 = performance.now()
          const r = await fn()
          into.push(performance.now() - t0)
          mark(`${label} answered`)
          return r
        }
        const xml = await timed(steps.create, 'CreateMultipartUpload', () =>
          request(t, 'POST', key, 200, { query: { uploads: '' } }),
        )
        const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(xml)?.[1]
        if (uploadId === undefined) throw new Error(`no UploadId in ${xml}`)
        const etags: string[] = []
        for (const [n, size, into] of [
          [1, 5 * MiB, steps.part5],
          [2, 5 * MiB, steps.part5],
          [3, MiB, steps.part1],
        ] as const) {
          const q = { partNumber: String(n), uploadId }
          etags.push(await timed(into, `UploadPart ${n}`, () => request(t, 'PUT', key, 200, { body: body(size), query: q })))
        }
        const done = `<CompleteMultipartUpload>${etags.map((e, j) => `<Part><PartNumber>${j + 1}</PartNumber><ETag>${e}</ETag></Part>`).join('')}</CompleteMultipartUpload>`
        await timed(steps.complete, 'CompleteMultipartUpload', () =>
          request(t, 'POST', key, 200, { body: Buffer.from(done), query: { uploadId } }),
        )
      },
      { parts: '5 MiB, 5 MiB, 1 MiB' },
    )
    /** Round trips of each request of a step, between its `starts` and `answered` marks. */
    const labels: Record<keyof typeof steps, string[]> = {
      create: ['CreateMultipartUpload'],
      part5: ['UploadPart 1', 'UploadPart 2'],
      part1: ['UploadPart 3'],
      complete: ['CompleteMultipartUpload'],
    }
    const stepRounds = (name: keyof typeof steps): number[] =>
      mpu.samples.flatMap((s) =>
        labels[name].map((label) => {
          const at = (what: string): number => s.marks.find((m) => m.label === `${label} ${what}`)?.atMs ?? Number.NaN
          return rounds(mpu.calls, node1, at('starts'), at('answered'))
        }),
      )
    for (const [name, xs] of Object.entries(steps)) {
      const counts = stepRounds(name as keyof typeof steps)
      process.stdout.write(
        `${JSON.stringify({
          scenario: `geo_mpu_${name === 'part5' ? 'part_5mib' : name === 'part1' ? 'part_1mib' : name}`,
          unit: 'ms',
          median: round(median(xs)),
          p99: round(percentile(xs, 99)),
          median_rtt: round(median(xs) / rtt, 2),
          p99_rtt: round(percentile(xs, 99) / rtt, 2),
          rpc_rounds: median(counts),
          rpc_rounds_max: Math.max(...counts),
          iterations: xs.length,
          rtt_ms: round(rtt),
          load_avg: round(loadavg()[0] as number, 2),
          ...SETTINGS,
        })}\n`,
      )
    }
  } finally {
    agent.destroy()
    await cluster?.stop()
    await Promise.all(proxies.map((p) => p.close()))
    await rm(traceDir, { recursive: true, force: true })
  }
  process.stderr.write(`geo: finished in ${((performance.now() - started) / 1000).toFixed(1)} s\n`)
}

/** Every peer address every node holds must be one of the proxies: no direct path between nodes. */
async function checkThroughProxies(c: ReplicatedCluster, proxies: readonly TcpProxy[]): Promise<void> {
  const allowed = new Set(proxies.map((p) => `127.0.0.1:${p.port}`))
  for (const n of c.nodes) {
    const others = (await clusterStatus(n)).filter((s) => s.id !== n.id)
    const direct = others.filter((s) => s.addr === null || !allowed.has(s.addr))
    if (others.length !== c.nodes.length - 1 || direct.length > 0) {
      throw new Error(`node ${n.id.slice(0, 8)} reaches peers outside the proxies: ${JSON.stringify(others)}`)
    }
  }
}

/** Waits until every node has acknowledged and synced the current layout version. */
async function waitLayoutSynced(c: ReplicatedCluster): Promise<void> {
  for (const n of c.nodes) {
    await eventually(
      `node ${n.id.slice(0, 8)} to see the layout synced everywhere`,
      async () => {
        const h = await adminOk<LayoutHistoryAnswer>(n, 'GetClusterLayoutHistory')
        // Trackers are only shown while an older version is still live (Garage's shape too).
        const trackers = Object.values(h.updateTrackers ?? {})
        const live = h.versions.filter((v) => v.status !== 'Historical')
        const synced =
          live.length === 1 &&
          trackers.every((t) => t.ack >= h.currentVersion && t.sync >= h.currentVersion && t.syncAck >= h.currentVersion)
        if (!synced) throw new Error(`layout v${h.currentVersion} not synced yet: ${JSON.stringify(h)}`)
        return true
      },
      { ...CLUSTER_WAIT, timeoutMs: 30_000 },
    )
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
