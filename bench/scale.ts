/**
 * `npm run bench:scale`: how one node behaves as its object count grows (issue 21).
 *
 * The node is a `garage server` child process (test/helpers/server-process.ts). Between
 * measurement steps it is stopped and objects are loaded straight into its lmdb through the
 * model layer (`TableData.updateMany` on the object table, with the same hooks as a real write:
 * bucket counters, Merkle todo), in transactions of 10,000 rows: minutes for millions of
 * objects instead of hours over HTTP. Half of each step's objects go to one bucket (`test-bucket`,
 * keys `DDDDD/NNNNNNNNN`, 1,000 per "directory"), half are spread over 1,000 buckets with shared
 * prefixes (`logs/2026/12/DD/host-HH/NNNNNNNNN`). Every object is inline (64 bytes).
 *
 * At each step (0, then every count in SCALE_STEPS) the node is restarted and measured through
 * S3 on loopback (raw SigV4 requests, concurrency 16): 4 KiB PUT, GET and HEAD (ops/s and p99 ms),
 * ListObjectsV2 keys/s from the start, the middle and the end of the key space (5 pages of
 * 1,000, after a first page timed on its own: `list_first_page_ms`, the restarted node's first listing)
 * and with a delimiter (common prefixes/s), DeleteObjects of 1,000 keys; then, in the
 * loader: the Merkle fold rate of the step's new rows, bytes of metadata per object (lmdb file
 * size / objects) and the child's RSS (current and peak during the step). At the last step, the
 * tombstone GC of SCALE_GC deletions (model layer, GC delay 0).
 *
 * One JSON line per step on stdout; progress on stderr. Environment: SCALE_STEPS (comma-separated
 * cumulative object counts, default `100000`), SCALE_GC (default 100000), SCALE_OPS (requests per
 * rate figure, default 2000), SCALE_KEEP=1 (keep the store and its credentials at the end; see
 * SCALE_REUSE below).
 */
import { createHash } from 'node:crypto'
import { readFile, rm, stat, writeFile } from 'node:fs/promises'
import { Agent } from 'node:http'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { openLmdb } from '../lib/db/lmdb.ts'
import type { Garage } from '../lib/model/garage.ts'
import type { ObjectEntry } from '../lib/model/s3/object-table.ts'
import { MerkleUpdater } from '../lib/table/merkle.ts'
import { TableGc } from '../lib/table/gc.ts'
import { BucketsApi } from '../lib/model/helper/admin.ts'
import { LocalReplication, type TableReplication } from '../lib/table/replication.ts'
import { genUuid, type Hash } from '../lib/util/data.ts'
import { silentLogger } from '../lib/util/logger.ts'
import {
  type Credentials,
  readPeakRss,
  resetPeakRss,
  type S3Target,
  sendSigned,
  startServerProcess,
} from '../test/helpers/server-process.ts'
import { loaderGarage } from './model-loader.ts'

const STEPS = (process.env.SCALE_STEPS ?? '100000').split(',').map(Number)
const GC_COUNT = Number(process.env.SCALE_GC ?? 100_000)
const OPS = Number(process.env.SCALE_OPS ?? 2000)
const CONCURRENCY = 16
const BUCKETS = Number(process.env.SCALE_BUCKETS ?? 1000)
const MAIN = 'test-bucket'
const BATCH = 10_000

const log = (s: string): void => {
  process.stderr.write(`[scale ${new Date().toISOString().slice(11, 19)}] ${s}\n`)
}
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d

const mainKey = (i: number): string => `${String(Math.floor(i / 1000)).padStart(5, '0')}/${String(i).padStart(9, '0')}`
const spreadBucket = (i: number): string => `scale-b${String(i % BUCKETS).padStart(3, '0')}`
const spreadKey = (i: number): string =>
  `logs/2026/12/${String(1 + (Math.floor(i / BUCKETS) % 28)).padStart(2, '0')}/host-${String(Math.floor(i / (BUCKETS * 28)) % 16).padStart(2, '0')}/${String(i).padStart(9, '0')}`

/**
 * The loader's view of the node's placement: one node holding everything, with the object
 * table's items assigned to Merkle partitions as the node's sharded tables assign them (first
 * byte of the partition hash), so the trees the loader folds are the ones the node keeps.
 */
function loaderReplication(): TableReplication {
  return Object.assign(new LocalReplication('loader'), { partitionOf: (hash: Hash): number => hash[0] ?? 0 })
}

interface State {
  dir: string
  credentials: Credentials
  /** Objects loaded so far in the main bucket and in the spread buckets. */
  main: number
  spread: number
  /** Keys written by S3 PUT in the main bucket (also GET/HEAD targets). */
  putKeys: string[]
}

async function withModel<T>(dir: string, fn: (g: Garage) => Promise<T> | T): Promise<T> {
  const db = await openLmdb(join(dir, 'meta'), { fsync: false })
  try {
    const g = loaderGarage(db, dir)
    return await fn(g)
  } finally {
    await db.close()
  }
}

function bucketIds(g: Garage): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>()
  for (const a of g.bucketAliasTable.data.readRange(new Uint8Array(0), { limit: Number.MAX_SAFE_INTEGER })) {
    if (a.state.v !== null) out.set(a.name, a.state.v)
  }
  // S3 CreateBucket makes a local alias (`<key id>:<name>`), as Garage does.
  for (const b of g.bucketTable.data.readRange(new Uint8Array(0), { limit: Number.MAX_SAFE_INTEGER })) {
    if (b.state.deleted) continue
    for (const [name, , active] of b.state.value.localAliases) if (active) out.set(name.slice(name.indexOf(':') + 1), b.id)
  }
  if (!out.has(MAIN) || !out.has(spreadBucket(BUCKETS - 1))) {
    throw new Error(`bucket aliases missing from the store: found ${out.size} (${[...out.keys()].slice(0, 5).join(', ')})`)
  }
  return out
}

const BODY = new Uint8Array(64).fill(42)
const ETAG = createHash('md5').update(BODY).digest('hex')

function row(bucketId: Uint8Array, key: string, ts: number): ObjectEntry {
  return {
    bucketId,
    key,
    versions: [
      {
        uuid: genUuid(),
        ts,
        state: {
          t: 'complete',
          data: {
            t: 'inline',
            meta: { size: 64, etag: ETAG, headers: [['content-type', 'application/octet-stream']] },
            bytes: BODY,
          },
        },
      },
    ],
  }
}

/** Loads objects up to `total` (half main, half spread); returns the Merkle fold figures. */
async function load(
  s: State,
  total: number,
): Promise<{ loadS: number; rowsPerS: number; merkleS: number; merkleRowsPerS: number }> {
  return withModel(s.dir, (g) => {
    const ids = bucketIds(g)
    const main = ids.get(MAIN) as Uint8Array
    const targetMain = Math.ceil(total / 2)
    const targetSpread = total - targetMain
    const added = targetMain - s.main + (targetSpread - s.spread)
    const t0 = performance.now()
    const ts = Date.now()
    let batch: ObjectEntry[] = []
    const flush = (): void => {
      g.objectTable.data.updateMany(batch)
      batch = []
    }
    let done = 0
    while (s.main < targetMain || s.spread < targetSpread) {
      if (s.main < targetMain) batch.push(row(main, mainKey(s.main++), ts))
      if (s.spread < targetSpread) {
        batch.push(row(ids.get(spreadBucket(s.spread)) as Uint8Array, spreadKey(s.spread), ts))
        s.spread++
      }
      if (batch.length >= BATCH) {
        done += batch.length
        flush()
        if (done % 500_000 < BATCH) log(`loaded ${done} / ${added}`)
      }
    }
    if (batch.length > 0) flush()
    const loadS = (performance.now() - t0) / 1000
    const fold = process.env.SCALE_FOLD === 'per-item' ? 'per-item' : 'batched'
    const merkle = new MerkleUpdater({ data: g.objectTable.data, replication: loaderReplication(), log: silentLogger, fold })
    const todo = merkle.todoLength()
    const m0 = performance.now()
    merkle.updateAll()
    const merkleS = (performance.now() - m0) / 1000
    return { loadS, rowsPerS: added / Math.max(loadS, 1e-9), merkleS, merkleRowsPerS: todo / Math.max(merkleS, 1e-9) }
  })
}

/** Deletes `count` spread objects at the model layer and times their tombstone GC. */
async function gcDeletions(s: State, count: number): Promise<{ deleteS: number; gcS: number; perS: number }> {
  return withModel(s.dir, async (g) => {
    const ids = bucketIds(g)
    const ts = Date.now() + 1000
    const t0 = performance.now()
    let batch: ObjectEntry[] = []
    // The spread buckets' objects first, then the main bucket's from its start.
    for (let i = 0; i < count && i < s.spread + s.main; i++) {
      const spread = i < s.spread
      batch.push({
        bucketId: spread ? (ids.get(spreadBucket(i)) as Uint8Array) : (ids.get(MAIN) as Uint8Array),
        key: spread ? spreadKey(i) : mainKey(i - s.spread),
        versions: [{ uuid: genUuid(), ts, state: { t: 'complete', data: { t: 'delete' } } }],
      })
      if (batch.length >= BATCH) {
        g.objectTable.data.updateMany(batch)
        batch = []
      }
    }
    if (batch.length > 0) g.objectTable.data.updateMany(batch)
    const deleteS = (performance.now() - t0) / 1000
    const gc = new TableGc({
      data: g.objectTable.data,
      replication: new LocalReplication('loader'),
      self: 'loader',
      delayMs: 0,
      log: silentLogger,
    })
    const stop = new AbortController()
    const g0 = performance.now()
    while (gc.todoLength() > 0) await gc.work(stop.signal)
    const gcS = (performance.now() - g0) / 1000
    return { deleteS, gcS, perS: count / Math.max(gcS, 1e-9) }
  })
}

/** Full Merkle rebuild of the object table (tree cleared, every row queued and folded again). */
async function merkleRebuild(s: State): Promise<{ queueS: number; foldS: number; rows: number }> {
  return withModel(s.dir, async (g) => {
    const merkle = new MerkleUpdater({ data: g.objectTable.data, replication: loaderReplication(), log: silentLogger })
    const t0 = performance.now()
    await merkle.rebuild()
    const rows = merkle.todoLength()
    const t1 = performance.now()
    merkle.updateAll()
    return { queueS: (t1 - t0) / 1000, foldS: (performance.now() - t1) / 1000, rows }
  })
}

async function readBody(res: import('node:http').IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of res) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

async function request(
  t: S3Target,
  agent: Agent,
  method: string,
  path: string,
  opts: { body?: Buffer; query?: Record<string, string>; headers?: Record<string, string> } = {},
): Promise<Buffer> {
  let res: import('node:http').IncomingMessage
  let body: Buffer
  for (let attempt = 1; ; attempt++) {
    try {
      res = await sendSigned(t, method, path, { agent, ...opts })
      body = await readBody(res)
      break
    } catch (err) {
      // A keep-alive socket the server closed as it was reused: every request here is idempotent.
      if ((err as { code?: string }).code !== 'ECONNRESET' || attempt >= 3) throw err
    }
  }
  if ((res.statusCode ?? 0) >= 300) throw new Error(`${method} ${path}: ${res.statusCode} ${body.toString().slice(0, 300)}`)
  return body
}

async function rate(n: number, op: (i: number) => Promise<unknown>): Promise<{ ops: number; p99: number }> {
  const lat: number[] = []
  let next = 0
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) {
        const i = next++
        const s = performance.now()
        await op(i)
        lat.push(performance.now() - s)
      }
    }),
  )
  const secs = (performance.now() - t0) / 1000
  lat.sort((a, b) => a - b)
  return { ops: round(n / secs), p99: round(lat[Math.floor(lat.length * 0.99)] ?? 0, 2) }
}

/** keys/s of up to 5 pages of ListObjectsV2 from `startAfter` (or prefixes/s with a delimiter). */
async function listRate(t: S3Target, agent: Agent, bucket: string, q: Record<string, string>): Promise<number> {
  let count = 0
  let token: string | undefined
  const t0 = performance.now()
  for (let page = 0; page < 5; page++) {
    const body = (
      await request(t, agent, 'GET', `/${bucket}`, {
        query: { 'list-type': '2', 'max-keys': '1000', ...q, ...(token === undefined ? {} : { 'continuation-token': token }) },
      })
    ).toString()
    count += (body.match(/<Key>/g)?.length ?? 0) + (body.match(/<CommonPrefixes>/g)?.length ?? 0)
    token = /<NextContinuationToken>([^<]+)</.exec(body)?.[1]
    if (token === undefined) break
    delete q['start-after']
  }
  return round(count / ((performance.now() - t0) / 1000))
}

async function measure(s: State, step: number): Promise<Record<string, unknown>> {
  // SCALE_SERVER_PROF=<dir>: a CPU profile of the node per step (written when it stops).
  const prof = process.env.SCALE_SERVER_PROF
  const proc = await startServerProcess({
    reuse: { dir: s.dir, credentials: s.credentials },
    startTimeoutMs: 600_000,
    ...(prof === undefined ? {} : { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${prof}`] }),
  })
  const t: S3Target = { endpoint: proc.endpoint, region: proc.region, credentials: s.credentials }
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY })
  try {
    await resetPeakRss(proc.pid)
    const body4k = Buffer.alloc(4096, 7)
    const base = s.putKeys.length
    const put = await rate(OPS, async (i) => {
      const key = `put/${step}/${String(i).padStart(6, '0')}`
      await request(t, agent, 'PUT', `/${MAIN}/${key}`, { body: body4k, headers: { 'content-length': '4096' } })
      s.putKeys[base + i] = key
    })
    const pick = (i: number): string => {
      const all = s.main + s.putKeys.length
      const j = (i * 7919 + step * 104_729) % all
      return j < s.main ? mainKey(j) : (s.putKeys[j - s.main] as string)
    }
    const get = await rate(OPS, (i) => request(t, agent, 'GET', `/${MAIN}/${pick(i)}`))
    const head = await rate(OPS, (i) => request(t, agent, 'HEAD', `/${MAIN}/${pick(i)}`))
    const dirs = Math.max(1, Math.ceil(s.main / 1000))
    // The node was just started: its first listing page runs through code V8 has not compiled
    // yet. That page is timed on its own (a restarted node's first listing), then the figures
    // below are the node's listing rate.
    const w0 = performance.now()
    await request(t, agent, 'GET', `/${MAIN}`, { query: { 'list-type': '2', 'max-keys': '1000' } })
    const listFirstPageMs = round(performance.now() - w0)
    const listStart = await listRate(t, agent, MAIN, {})
    const listMiddle = await listRate(t, agent, MAIN, { 'start-after': `${String(Math.floor(dirs / 2)).padStart(5, '0')}/` })
    const listEnd = await listRate(t, agent, MAIN, {
      'start-after': s.main > 5000 ? mainKey(s.main - 5000) : '',
    })
    const listDelimiter = await listRate(t, agent, MAIN, { delimiter: '/' })
    const listSpreadDelimiter = await listRate(t, agent, spreadBucket(0), { prefix: 'logs/2026/12/', delimiter: '/' })
    // DeleteObjects of 1,000 of the keys PUT in this step's first 1,000 writes... or all if fewer.
    const victims = s.putKeys.slice(base, base + Math.min(1000, OPS))
    const xml = `<Delete><Quiet>true</Quiet>${victims.map((k) => `<Object><Key>${k}</Key></Object>`).join('')}</Delete>`
    const d0 = performance.now()
    await request(t, agent, 'POST', `/${MAIN}`, {
      query: { delete: '' },
      body: Buffer.from(xml),
      headers: {
        'content-md5': createHash('md5').update(xml).digest('base64'),
        'content-length': String(Buffer.byteLength(xml)),
      },
    })
    const deleteMs = round(performance.now() - d0)
    s.putKeys.splice(base, victims.length)
    const status = await readFile(`/proc/${proc.pid}/status`, 'utf8')
    const rssMb = round(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024)
    // lmdb is memory-mapped: the pages it touched count in VmRSS as file-backed memory.
    const rssAnonMb = round(Number(/RssAnon:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024)
    const rssFileMb = round(Number(/RssFile:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024)
    const peakMb = round((await readPeakRss(proc.pid)) / 1024 / 1024)
    return {
      put_ops: put.ops,
      put_p99_ms: put.p99,
      get_ops: get.ops,
      get_p99_ms: get.p99,
      head_ops: head.ops,
      head_p99_ms: head.p99,
      list_start_keys_s: listStart,
      list_middle_keys_s: listMiddle,
      list_end_keys_s: listEnd,
      list_delimiter_prefixes_s: listDelimiter,
      list_spread_delimiter_prefixes_s: listSpreadDelimiter,
      list_first_page_ms: listFirstPageMs,
      delete_objects_1000_ms: deleteMs,
      rss_mb: rssMb,
      rss_anon_mb: rssAnonMb,
      rss_file_mb: rssFileMb,
      peak_rss_mb: peakMb,
    }
  } finally {
    agent.destroy()
    await proc.stop(30_000, { keepDir: true })
  }
}

/**
 * `SCALE_REUSE=<dir>:<objects>`: runs only the GC (then the rebuild) on the store a stopped run
 * left in `<dir>` after loading `<objects>` (half main, half spread); with `SCALE_MEASURE=1`, first
 * the S3 measurements of a step, on a store a run kept with `SCALE_KEEP=1` (its credentials are
 * saved there).
 */
async function reuse(spec: string): Promise<void> {
  const [dir, count] = spec.split(':') as [string, string]
  const n = Number(count)
  const saved = await readFile(join(dir, 'bench-credentials.json'), 'utf8').catch(() => undefined)
  const s: State = {
    dir,
    credentials: saved === undefined ? { accessKeyId: '', secretAccessKey: '' } : (JSON.parse(saved) as State['credentials']),
    main: Math.ceil(n / 2),
    spread: n - Math.ceil(n / 2),
    putKeys: [],
  }
  if (process.env.SCALE_MEASURE === '1') {
    if (saved === undefined) throw new Error(`SCALE_MEASURE needs ${dir}/bench-credentials.json (a run with SCALE_KEEP=1)`)
    log(`measuring at ${n} objects (reused store)`)
    const m = await measure(s, Date.now() % 1000)
    process.stdout.write(
      `${JSON.stringify({ bench: 'scale', objects: n, reused: true, ...m, load_avg_1m: round(loadavg()[0] ?? 0) })}\n`,
    )
  }
  await finalSteps(s)
}

async function finalSteps(s: State): Promise<void> {
  if (GC_COUNT > 0) {
    log(`deleting ${GC_COUNT} objects and collecting their tombstones`)
    const gc = await gcDeletions(s, GC_COUNT)
    process.stdout.write(
      `${JSON.stringify({ bench: 'scale', objects: s.main + s.spread, gc_deletions: Math.min(GC_COUNT, s.spread + s.main), delete_s: round(gc.deleteS), gc_s: round(gc.gcS), gc_per_s: round(gc.perS), load_avg_1m: round(loadavg()[0] ?? 0) })}\n`,
    )
  }
  if (process.env.SCALE_REBUILD !== '0') {
    log("rebuilding the object table's Merkle tree")
    const r = await merkleRebuild(s)
    process.stdout.write(
      `${JSON.stringify({ bench: 'scale', objects: r.rows, merkle_rebuild_queue_s: round(r.queueS), merkle_rebuild_fold_s: round(r.foldS), merkle_rebuild_rows_s: round(r.rows / Math.max(r.foldS, 1e-9)), load_avg_1m: round(loadavg()[0] ?? 0) })}\n`,
    )
  }
}

async function main(): Promise<void> {
  const first = await startServerProcess({ bucket: MAIN, startTimeoutMs: 600_000 })
  const s: State = { dir: first.dir, credentials: first.credentials, main: 0, spread: 0, putKeys: [] }
  try {
    await first.stop(30_000, { keepDir: true })
    log(`creating ${BUCKETS} buckets`)
    // Through the model layer (as the admin API does): over S3 this took more than 10 minutes at
    // the machine's load.
    await withModel(s.dir, async (g) => {
      const api = new BucketsApi(g)
      for (let i = 0; i < BUCKETS; i++) {
        await api.create(spreadBucket(i))
        await api.allowKey(spreadBucket(i), s.credentials.accessKeyId, { read: true, write: true, owner: true })
      }
    })
    for (const [index, target] of [0, ...STEPS].entries()) {
      let loaded: Record<string, unknown> = {}
      if (target > 0) {
        log(`loading to ${target} objects`)
        const l = await load(s, target)
        loaded = {
          load_s: round(l.loadS),
          load_rows_s: round(l.rowsPerS),
          merkle_fold_s: round(l.merkleS),
          merkle_rows_s: round(l.merkleRowsPerS),
          merkle_full_rebuild_s_est: round((s.main + s.spread) / Math.max(l.merkleRowsPerS, 1)),
        }
      }
      log(`measuring at ${s.main + s.spread} objects`)
      const m = await measure(s, index)
      const size = (await stat(join(s.dir, 'meta', 'db.lmdb'))).size
      const objects = s.main + s.spread + s.putKeys.length
      const out = {
        bench: 'scale',
        objects,
        ...m,
        ...loaded,
        lmdb_mb: round(size / 1024 / 1024),
        load_avg_1m: round(loadavg()[0] ?? 0),
        meta_bytes_per_object: objects === 0 ? null : Math.round(size / objects),
      }
      process.stdout.write(`${JSON.stringify(out)}\n`)
    }
    await finalSteps(s)
  } finally {
    await first.stop()
    if (process.env.SCALE_KEEP === '1') {
      await writeFile(join(s.dir, 'bench-credentials.json'), JSON.stringify(s.credentials))
      log(`store kept in ${s.dir} (SCALE_REUSE=${s.dir}:${s.main + s.spread} SCALE_MEASURE=1 measures it again)`)
    } else await rm(s.dir, { recursive: true, force: true })
  }
}

if (process.env.SCALE_REUSE !== undefined) await reuse(process.env.SCALE_REUSE)
else await main()
