/**
 * A concurrent PUT/DELETE/GET workload against a replicated cluster, with random node kills, and
 * a checker of the history it records (a small Jepsen-style register check, per key).
 *
 * Writers PUT (random sizes, inline to multi-block, unique content per write) or DELETE keys of
 * a small set, retrying on another node after a 5xx or a connection error; each logical write is
 * recorded with its start and end times (client clock) and whether some attempt was
 * acknowledged (2xx). Readers GET random keys and record what they saw. At the end, every node
 * is asked for every key and for a listing.
 *
 * The checker knows Garage's rules: every write carries a timestamp taken while it runs
 * (`max(now, newest seen + 1)`), and the version with the highest timestamp wins. So a write
 * acknowledged before another write started is older than it, whatever reached which replica;
 * a write that failed may still land later, with its own (old) timestamp; a DELETE that found
 * nothing visible writes nothing (no `x-amz-version-id` in its answer), so it only hides what
 * it could see: the writes acknowledged before it started.
 */
import { createHash, randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { ListObjectsV2Command } from '@aws-sdk/client-s3'
import type { ReplicatedCluster } from './cluster.ts'
import { pick, rng } from './random.ts'
import { type S3Target, signV4 } from './server-process.ts'

// ---------------------------------------------------------------------------------------------
// History and checker (pure)

/** One logical write (all its attempts on the various nodes). */
export interface WriteRecord {
  id: number
  key: string
  kind: 'put' | 'delete'
  /** Content id of a PUT (sha256 hex of its body); null for a DELETE. */
  value: string | null
  /** Client clock (ms) when the first attempt was sent. */
  start: number
  /**
   * Client clock when the last attempt answered or failed; Infinity when some attempt timed
   * out on the client side (the server may still apply it later).
   */
  end: number
  /** Some attempt answered 2xx. */
  acked: boolean
  /** A DELETE whose answer carried `x-amz-version-id`: it wrote a delete marker. */
  marker?: boolean
  /** One line per attempt: node and outcome. */
  attempts?: string[]
}

/** One successful GET: the content id seen, or null for 404. */
export interface ReadRecord {
  key: string
  start: number
  end: number
  value: string | null
  source: string
}

/** What a node answered for a key once the workload stopped. */
export interface FinalRead {
  source: string
  key: string
  value: string | null
}

/** A listing (ListObjectsV2 over the workload's prefix) once the workload stopped. */
export interface Listing {
  source: string
  keys: string[]
}

/**
 * A listing taken while the workload ran (Jepsen's set2 read): it must contain every key whose
 * acknowledged PUT ended before it started and that no DELETE may have hidden since, and must
 * lack every key an acknowledged DELETE hid for good before it started.
 */
export interface TimedListing extends Listing {
  start: number
  end: number
}

export interface History {
  writes: WriteRecord[]
  reads: ReadRecord[]
  finals?: FinalRead[]
  listings?: Listing[]
  /** Listings taken during the run (the final ones are `listings`). */
  liveListings?: TimedListing[]
}

export interface CheckOptions {
  /**
   * How far a write's timestamp may run ahead of the client's clock at its end (ms): Garage
   * bumps a timestamp to `newest + 1` when several writes land in the same millisecond.
   * Default 10.
   */
  slackMs?: number
  /** Also require every source to answer the same for every key, and equal listings. */
  requireAgreement?: boolean
  /**
   * The quorums the cluster ran with (`consistency_mode`): default consistent RF 3 (read 2,
   * write 2 of 3). When `read + write <= replicas` (degraded: read 1; dangerous: read 1, write
   * 1) a read may be served by replicas that all missed a write acknowledged by a quorum that
   * did not include them: Garage's documented relaxation. Then a read older than a write
   * acknowledged before it started, and a live listing lacking (or still showing) such a write,
   * are not violations but `allowed` (classifyHistory), counted separately; and a DELETE that
   * wrote no marker hides nothing (its read may have missed what was acknowledged before it).
   * Everything else stays strict: values no write produced, values written only after the read,
   * lost writes, final disagreement.
   */
  quorums?: { read: number; write: number; replicas: number }
}

/** Whether every read quorum meets every write quorum (no stale read possible). */
const overlapping = (o: CheckOptions): boolean => {
  const q = o.quorums
  return q === undefined || q.read + q.write > q.replicas
}

const INIT_ID = -1

/** The state before any write: absent, "acknowledged" since the beginning of time. */
const initOf = (key: string): WriteRecord => ({
  id: INIT_ID,
  key,
  kind: 'delete',
  value: null,
  start: Number.NEGATIVE_INFINITY,
  end: Number.NEGATIVE_INFINITY,
  acked: true,
  marker: true,
})

/**
 * Whether acknowledged write `a` certainly carries a newer timestamp than `x` and hides it: `a`
 * started after `x` ended, and `a` wrote something (a PUT, a DELETE that wrote a marker), or `x`
 * was itself acknowledged (then a later DELETE saw `x` or something newer, and hid it).
 */
function supersedes(a: WriteRecord, x: WriteRecord, slackMs: number, quorumReads = true): boolean {
  if (!a.acked || a === x) return false
  if (!(a.start > x.end + slackMs)) return false
  // A DELETE without a marker saw nothing visible: with quorum reads, x (acknowledged before
  // it started) was hidden already; with single-node reads it may simply have missed x.
  return a.kind === 'put' || a.marker === true || (x.acked && quorumReads)
}

const show = (v: string | null): string => (v === null ? 'absent' : v.slice(0, 12))
const describe = (w: WriteRecord): string =>
  w.id === INIT_ID
    ? 'the initial absent state'
    : `write #${w.id} (${w.kind} ${show(w.value)}, ${w.acked ? 'acked' : 'not acked'}, [${w.start}, ${w.end}])`

/** The values `key` may hold once every write has ended. */
export function finalCandidates(h: History, key: string, o: CheckOptions = {}): Array<string | null> {
  const slack = o.slackMs ?? 10
  const q = overlapping(o)
  const ops = [initOf(key), ...h.writes.filter((w) => w.key === key)]
  const acked = ops.filter((w) => w.acked)
  return ops.filter((x) => !acked.some((a) => supersedes(a, x, slack, q))).map((x) => x.value)
}

/**
 * Checks a history; returns the violations found (empty: the history is consistent).
 * - Every read returned a value some write produced, and none older than a write acknowledged
 *   before the read started (a stale read), nor one written only after the read ended.
 * - Every final read returns a value the key may hold after all writes: the last acknowledged
 *   write's, or one of a write that was concurrent with it or came after it (a lost write
 *   otherwise).
 * - Every listing contains each key that must exist, and no key that must be absent.
 */
export function checkHistory(h: History, o: CheckOptions = {}): string[] {
  return classifyHistory(h, o).violations
}

/**
 * checkHistory's verdicts, split: `violations` break the consistency mode's guarantees;
 * `allowed` are the stale reads and stale live listings that `o.quorums` permits (always empty
 * with overlapping quorums, where they are violations).
 */
export function classifyHistory(h: History, o: CheckOptions = {}): { violations: string[]; allowed: string[] } {
  const slack = o.slackMs ?? 10
  const q = overlapping(o)
  const out: string[] = []
  const allowed: string[] = []
  /** Where staleness goes: a violation with overlapping quorums, allowed otherwise. */
  const stale = q ? out : allowed
  const byKey = new Map<string, WriteRecord[]>()
  for (const w of h.writes) {
    const l = byKey.get(w.key)
    if (l === undefined) byKey.set(w.key, [w])
    else l.push(w)
  }
  const opsOf = (key: string): WriteRecord[] => [initOf(key), ...(byKey.get(key) ?? [])]

  for (const r of h.reads) {
    const ops = opsOf(r.key)
    const producers = ops.filter((x) => x.value === r.value)
    const where = `read of ${r.key} on ${r.source} during [${r.start}, ${r.end}] returned ${show(r.value)}`
    if (producers.length === 0) {
      out.push(`${where}, which no write produced`)
      continue
    }
    const started = producers.filter((x) => x.start <= r.end)
    if (started.length === 0) {
      out.push(`${where}, written only by writes that started after the read ended`)
      continue
    }
    const ackedBefore = ops.filter((a) => a.acked && a.end < r.start)
    const fresh = started.some((x) => !ackedBefore.some((a) => supersedes(a, x, slack, q)))
    if (!fresh) {
      const x = started[started.length - 1] as WriteRecord
      const a = ackedBefore.find((b) => supersedes(b, x, slack, q)) as WriteRecord
      stale.push(`stale read: ${where}, from ${describe(x)}, but ${describe(a)} was acknowledged before the read started`)
    }
  }

  const keys = new Set<string>([...byKey.keys(), ...(h.finals ?? []).map((f) => f.key)])
  const candidates = new Map<string, Array<string | null>>()
  for (const key of keys) candidates.set(key, finalCandidates(h, key, o))

  for (const f of h.finals ?? []) {
    const c = candidates.get(f.key) ?? [null]
    if (!c.includes(f.value)) {
      const ops = opsOf(f.key)
      const lastAcked = ops.filter((w) => w.acked).sort((a, b) => a.end - b.end)[ops.filter((w) => w.acked).length - 1]
      const produced = ops.find((x) => x.value === f.value)
      out.push(
        `lost write: ${f.key} on ${f.source} ends as ${show(f.value)}` +
          `${produced === undefined ? ' (which no write produced)' : ` from ${describe(produced)}`}` +
          `; allowed: ${c.map(show).join(', ')}; last acknowledged: ${lastAcked === undefined ? 'none' : describe(lastAcked)}`,
      )
    }
  }

  for (const l of h.listings ?? []) {
    const listed = new Set(l.keys)
    for (const k of listed) if (!keys.has(k)) out.push(`listing on ${l.source} has ${k}, which was never written`)
    for (const key of keys) {
      const c = candidates.get(key) ?? [null]
      if (listed.has(key) && !c.some((v) => v !== null)) out.push(`listing on ${l.source} has ${key}, which must be absent`)
      if (!listed.has(key) && !c.includes(null))
        out.push(`listing on ${l.source} lacks ${key}, whose acknowledged write must be visible`)
    }
  }

  for (const l of h.liveListings ?? []) {
    const v = checkLiveListing(l, keys, opsOf, slack, q)
    out.push(...v.never)
    stale.push(...v.stale)
  }

  if (o.requireAgreement === true) out.push(...disagreements(h.finals ?? [], h.listings ?? []))
  return { violations: out, allowed }
}

/**
 * A listing taken during the run, against the writes of each key: a key is certainly present
 * when an acknowledged PUT ended before the listing started and supersedes every DELETE that may
 * have landed before the listing ended; certainly absent in the mirror case.
 */
function checkLiveListing(
  l: TimedListing,
  keys: Set<string>,
  opsOf: (key: string) => WriteRecord[],
  slack: number,
  quorumReads: boolean,
): { never: string[]; stale: string[] } {
  const never: string[] = []
  const stale: string[] = []
  const listed = new Set(l.keys)
  const where = `listing on ${l.source} during [${l.start}, ${l.end}]`
  for (const k of listed) if (!keys.has(k)) never.push(`${where} has ${k}, which was never written`)
  for (const key of keys) {
    const ops = opsOf(key)
    const before = ops.filter((a) => a.acked && a.end < l.start)
    const mayLand = (kind: 'put' | 'delete'): WriteRecord[] => ops.filter((x) => x.kind === kind && x.start <= l.end)
    const present = before.find((a) => a.kind === 'put' && mayLand('delete').every((x) => supersedes(a, x, slack, quorumReads)))
    const absent = before.find((a) => a.kind === 'delete' && mayLand('put').every((x) => supersedes(a, x, slack, quorumReads)))
    if (present !== undefined && !listed.has(key))
      stale.push(`${where} lacks ${key}, although ${describe(present)} was acknowledged before it started`)
    if (absent !== undefined && listed.has(key))
      stale.push(`${where} has ${key}, although ${describe(absent)} was acknowledged before it started`)
  }
  return { never, stale }
}

/** Where the sources disagree: a key answered differently, or listings that differ. */
export function disagreements(finals: FinalRead[], listings: Listing[]): string[] {
  const out: string[] = []
  const seen = new Map<string, FinalRead>()
  for (const f of finals) {
    const first = seen.get(f.key)
    if (first === undefined) seen.set(f.key, f)
    else if (first.value !== f.value)
      out.push(`${f.key}: ${first.source} answers ${show(first.value)}, ${f.source} answers ${show(f.value)}`)
  }
  const ref = listings[0]
  const norm = (l: Listing): string => [...l.keys].sort().join('\n')
  for (const l of listings.slice(1)) {
    if (ref !== undefined && norm(l) !== norm(ref))
      out.push(`listings differ: ${ref.source} has ${ref.keys.length} keys, ${l.source} has ${l.keys.length}`)
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Raw S3 requests (a few hashes per request, no SDK retries or checksums in the way)

export interface RawResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}

/** Thrown when the client gave up waiting: the server may still apply the request. */
export class ClientTimeoutError extends Error {
  override name = 'ClientTimeoutError'
}

/**
 * One signed request with a body written whole; resolves with the full response, rejects on
 * a connection error, a truncated body, or after `timeoutMs` without progress.
 */
export function rawS3(
  target: S3Target,
  method: string,
  path: string,
  body?: Buffer,
  timeoutMs = 20_000,
  query: Record<string, string> = {},
): Promise<RawResponse> {
  const headers = signV4(target, method, path, body === undefined ? {} : { 'content-length': String(body.length) }, query)
  const qs = new URLSearchParams(query).toString()
  return new Promise<RawResponse>((resolve, reject) => {
    const url = `${target.endpoint}${path}${qs === '' ? '' : `?${qs}`}`
    const req = httpRequest(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.once('error', reject)
      res.once('aborted', () => reject(new Error('response aborted')))
      res.once('end', () => {
        const data = Buffer.concat(chunks)
        const declared = res.headers['content-length']
        if (declared !== undefined && Number(declared) !== data.length) {
          reject(new Error(`truncated body: ${data.length} of ${declared} bytes`))
          return
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data })
      })
    })
    req.setTimeout(timeoutMs, () => req.destroy(new ClientTimeoutError(`no progress for ${timeoutMs} ms`)))
    req.once('error', reject)
    req.end(body)
  })
}

// ---------------------------------------------------------------------------------------------
// The workload

/** Size classes: inline (< 3 KiB), one block, several blocks (with the cluster's block size). */
export interface SizeClass {
  weight: number
  min: number
  max: number
}

export interface WorkloadOptions {
  cluster: ReplicatedCluster
  /** Key prefix; keys are `<prefix>k00` … Default `wl/`. */
  prefix?: string
  /** Default 6. */
  keys?: number
  /** Default 4. */
  writers?: number
  /** Default 2. */
  readers?: number
  durationMs: number
  /** The cluster's `block_size` (to compute the block hashes of each PUT). Default 1 MiB. */
  blockSize?: number
  sizes?: SizeClass[]
  /** Fraction of writes that are DELETEs. Default 0.25. */
  deleteRatio?: number
  seed?: number
  /** Attempts per write, each on another node. Default 5. */
  maxAttempts?: number
  /** Client timeout of one request. Default 20 s. */
  requestTimeoutMs?: number
  /** Kill and restart nodes at random, never more than one down at a time. */
  chaos?: { upMs: [number, number]; downMs: [number, number] }
  /**
   * Runs alongside the writers (layout changes, say); the writers and readers keep going until
   * both `durationMs` has passed and this has resolved.
   */
  during?: () => Promise<void>
  /** Tasks that take listings of the prefix during the run (checked like Jepsen's set2). Default 0. */
  listers?: number
  /**
   * Multipart writers: each writes keys `<prefix>m00` … with CreateMultipartUpload, `parts`
   * UploadParts and CompleteMultipartUpload (each step retried on another node), recorded as one
   * write acknowledged by the Complete. Parts but the last must be 5 MiB (S3's minimum).
   */
  multipart?: { writers: number; keys: number; parts: number; lastPartSize: [number, number] }
  /**
   * More workloads run alongside (K2V items once the API exists): each gets `running()` and the
   * request log to append to, and loops until `running()` turns false.
   */
  extra?: Array<(ctx: { running: () => boolean; log: (r: RequestLog) => void }) => Promise<void>>
}

/** One HTTP request of the workload: which node, when, and how it ended. */
export interface RequestLog {
  op: 'put' | 'delete' | 'get' | 'list' | 'mpu-create' | 'mpu-part' | 'mpu-complete' | (string & {})
  node: number
  start: number
  end: number
  /** HTTP status, or 'error' (connection failure), or 'timeout' (the client gave up). */
  status: number | 'error' | 'timeout'
}

export interface WorkloadResult {
  history: History
  /** Block hashes (hex) of each PUT content id. */
  blocksOf: Map<string, string[]>
  /** Node kills and restarts, with times. */
  events: string[]
  /** 4xx answers (other than a GET's 404): each one is a bug somewhere. */
  clientErrors: string[]
  /** Every request sent, in the order they ended. */
  requests: RequestLog[]
  /** Every key the workload wrote or read (register keys, then multipart keys). */
  keys: string[]
  stats: {
    writes: number
    acked: number
    reads: number
    failedReads: number
    kills: number
    listings: number
    failedListings: number
    multipartAcked: number
  }
}

const INLINE_LIMIT = 3072

export const DEFAULT_SIZES: SizeClass[] = [
  { weight: 4, min: 16, max: 2_000 },
  { weight: 3, min: 10_000, max: 100_000 },
  { weight: 2, min: 300_000, max: 700_000 },
]

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const between = (r: () => number, [a, b]: [number, number]): number => a + Math.floor(r() * (b - a + 1))

/** The block hashes a PUT of `body` produces (none when it is stored inline). */
export function putBlockHashes(body: Buffer, blockSize: number, inlineLimit = INLINE_LIMIT): string[] {
  if (body.length < inlineLimit) return []
  const out: string[] = []
  for (let i = 0; i < body.length; i += blockSize) {
    out.push(
      createHash('blake2b512')
        .update(body.subarray(i, i + blockSize))
        .digest()
        .subarray(0, 32)
        .toString('hex'),
    )
  }
  return out
}

/** Runs writers, readers and (optionally) chaos for `durationMs`; never throws for S3 errors. */
export async function runWorkload(o: WorkloadOptions): Promise<WorkloadResult> {
  const cluster = o.cluster
  const prefix = o.prefix ?? 'wl/'
  const keys = workloadKeys(prefix, o.keys ?? 6)
  const mpuKeys = Array.from({ length: o.multipart?.keys ?? 0 }, (_, i) => `${prefix}m${String(i).padStart(2, '0')}`)
  const readKeys = [...keys, ...mpuKeys]
  const requests: RequestLog[] = []
  const liveListings: TimedListing[] = []
  let failedListings = 0
  const sizes = o.sizes ?? DEFAULT_SIZES
  const totalWeight = sizes.reduce((s, c) => s + c.weight, 0)
  const blockSize = o.blockSize ?? 1024 * 1024
  const maxAttempts = o.maxAttempts ?? 5
  const timeoutMs = o.requestTimeoutMs ?? 20_000
  const r = rng(o.seed ?? 1)
  const writes: WriteRecord[] = []
  const reads: ReadRecord[] = []
  const blocksOf = new Map<string, string[]>()
  const events: string[] = []
  const t0 = Date.now()
  const endAt = t0 + o.durationMs
  let duringDone = o.during === undefined
  const running = (): boolean => Date.now() < endAt || !duringDone
  let failedReads = 0
  const clientErrors: string[] = []
  let kills = 0
  let nextId = 0
  const path = (key: string): string => `/${cluster.bucket}/${key}`
  /** rawS3 on node `i`, logged in `requests`. */
  const send = async (
    op: RequestLog['op'],
    i: number,
    method: string,
    p: string,
    body?: Buffer,
    query: Record<string, string> = {},
  ): Promise<RawResponse> => {
    const start = Date.now()
    try {
      const res = await rawS3(cluster.target(i), method, p, body, timeoutMs, query)
      requests.push({ op, node: i, start, end: Date.now(), status: res.status })
      return res
    } catch (err) {
      requests.push({ op, node: i, start, end: Date.now(), status: err instanceof ClientTimeoutError ? 'timeout' : 'error' })
      throw err
    }
  }

  const sampleSize = (): number => {
    let x = r() * totalWeight
    for (const c of sizes) {
      if (x < c.weight) return between(r, [c.min, c.max])
      x -= c.weight
    }
    return (sizes[0] as SizeClass).min
  }
  /** Node order for one operation: the running nodes first (a client's retry list), from a random one. */
  const nodeOrder = (): number[] => {
    const all = cluster.clientIndexes()
    const start = Math.floor(r() * all.length)
    const rotated = [...all.slice(start), ...all.slice(0, start)]
    return [...rotated.filter((i) => !cluster.isDown(i)), ...rotated.filter((i) => cluster.isDown(i))]
  }

  const writer = async (): Promise<void> => {
    while (running()) {
      const key = pick(r, keys)
      const isDelete = r() < (o.deleteRatio ?? 0.25)
      let body: Buffer | undefined
      let value: string | null = null
      if (!isDelete) {
        body = randomBytes(sampleSize())
        value = createHash('sha256').update(body).digest('hex')
        blocksOf.set(value, putBlockHashes(body, blockSize))
      }
      const w: WriteRecord = {
        id: nextId++,
        key,
        kind: isDelete ? 'delete' : 'put',
        value,
        start: Date.now(),
        end: Number.NaN,
        acked: false,
        attempts: [],
      }
      writes.push(w)
      let timedOut = false
      const order = nodeOrder()
      for (let attempt = 0; attempt < maxAttempts && !w.acked; attempt++) {
        const i = order[attempt % order.length] as number
        try {
          const res = await send(isDelete ? 'delete' : 'put', i, isDelete ? 'DELETE' : 'PUT', path(key), body)
          w.attempts?.push(`node ${i}: ${res.status}`)
          if (res.status >= 200 && res.status < 300) {
            w.acked = true
            if (isDelete) w.marker = res.headers['x-amz-version-id'] !== undefined
          } else if (res.status < 500) {
            // A client error: retrying elsewhere would not help, and it should never happen here.
            clientErrors.push(`write #${w.id} ${w.kind} ${key} on node ${i}: ${res.status} ${res.body.toString().slice(0, 200)}`)
            break
          }
        } catch (err) {
          if (err instanceof ClientTimeoutError) timedOut = true
          w.attempts?.push(`node ${i}: ${(err as Error).message}`)
        }
        if (!w.acked) await sleep(50 + Math.floor(r() * 150))
      }
      w.end = timedOut ? Number.POSITIVE_INFINITY : Date.now()
    }
  }

  const reader = async (): Promise<void> => {
    while (running()) {
      const key = pick(r, readKeys)
      const up = cluster.servingIndexes()
      const i = up.length === 0 ? 0 : pick(r, up)
      const start = Date.now()
      try {
        const res = await send('get', i, 'GET', path(key))
        const end = Date.now()
        if (res.status === 200) {
          reads.push({ key, start, end, value: createHash('sha256').update(res.body).digest('hex'), source: `node ${i}` })
        } else if (res.status === 404) {
          reads.push({ key, start, end, value: null, source: `node ${i}` })
        } else {
          failedReads++
          if (res.status < 500) clientErrors.push(`GET ${key} on node ${i}: ${res.status} ${res.body.toString().slice(0, 200)}`)
        }
      } catch {
        failedReads++ // a node killed under the read: no observation, nothing to check
      }
      await sleep(20 + Math.floor(r() * 60))
    }
  }

  const lister = async (): Promise<void> => {
    while (running()) {
      const up = cluster.servingIndexes()
      const i = up.length === 0 ? 0 : pick(r, up)
      const start = Date.now()
      try {
        const listed = await listKeys(cluster, i, prefix, timeoutMs)
        const end = Date.now()
        requests.push({ op: 'list', node: i, start, end, status: 200 })
        liveListings.push({ source: `node ${i}`, start, end, keys: listed })
      } catch (err) {
        failedListings++ // no observation; a 4xx would be a bug, a 5xx or a timeout is availability
        const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
        requests.push({ op: 'list', node: i, start, end: Date.now(), status: status ?? 'error' })
        if (status !== undefined && status < 500)
          clientErrors.push(`ListObjectsV2 on node ${i}: ${status} ${(err as Error).message}`)
      }
      await sleep(100 + Math.floor(r() * 200))
    }
  }

  const multipartWriter = async (m: NonNullable<WorkloadOptions['multipart']>): Promise<void> => {
    while (running()) {
      const key = pick(r, mpuKeys)
      const parts = Array.from({ length: m.parts }, (_, n) =>
        randomBytes(n === m.parts - 1 ? between(r, m.lastPartSize) : 5 * 1024 * 1024),
      )
      const value = createHash('sha256').update(Buffer.concat(parts)).digest('hex')
      blocksOf.set(
        value,
        parts.flatMap((b) => putBlockHashes(b, blockSize, 0)),
      )
      const w: WriteRecord = {
        id: nextId++,
        key,
        kind: 'put',
        value,
        start: Date.now(),
        end: Number.NaN,
        acked: false,
        attempts: [],
      }
      writes.push(w)
      const order = nodeOrder()
      let attempt = 0
      let timedOut = false
      /** One step, retried on the next node until it answers 2xx; undefined if it never does. */
      const step = async (op: RequestLog['op'], method: string, query: Record<string, string>, body?: Buffer) => {
        for (; attempt < maxAttempts * 2; attempt++) {
          const i = order[attempt % order.length] as number
          try {
            const res = await send(op, i, method, path(key), body, query)
            w.attempts?.push(`${op} node ${i}: ${res.status}`)
            if (res.status >= 200 && res.status < 300) return res
            if (res.status < 500) {
              // A Complete retried after an attempt whose answer was lost finds the upload gone
              // (NoSuchUpload): that earlier attempt may have completed it, so the write stays
              // unacknowledged (it may or may not be there), and the 404 is no client error.
              const retried = op === 'mpu-complete' && (w.attempts?.filter((a) => a.startsWith('mpu-complete')).length ?? 0) > 1
              if (!(retried && res.status === 404))
                clientErrors.push(`write #${w.id} ${op} ${key} on node ${i}: ${res.status} ${res.body.toString().slice(0, 200)}`)
              return undefined
            }
          } catch (err) {
            if (err instanceof ClientTimeoutError) timedOut = true
            w.attempts?.push(`${op} node ${i}: ${(err as Error).message}`)
          }
          await sleep(50 + Math.floor(r() * 150))
        }
        return undefined
      }
      const created = await step('mpu-create', 'POST', { uploads: '' })
      const uploadId = created === undefined ? undefined : /<UploadId>([^<]+)<\/UploadId>/.exec(created.body.toString())?.[1]
      const etags: string[] = []
      if (uploadId !== undefined) {
        for (const [n, part] of parts.entries()) {
          const res = await step('mpu-part', 'PUT', { partNumber: String(n + 1), uploadId }, part)
          const etag = res?.headers.etag
          if (typeof etag !== 'string') break
          etags.push(etag)
        }
      }
      if (uploadId !== undefined && etags.length === parts.length) {
        const xml = `<CompleteMultipartUpload>${etags.map((e, n) => `<Part><PartNumber>${n + 1}</PartNumber><ETag>${e}</ETag></Part>`).join('')}</CompleteMultipartUpload>`
        const done = await step('mpu-complete', 'POST', { uploadId }, Buffer.from(xml))
        // A retried Complete after a lost answer finds the upload gone (NoSuchUpload): that is
        // the first attempt's success, which the read checks then judge like any unacked write.
        if (done !== undefined) w.acked = true
      }
      w.end = timedOut ? Number.POSITIVE_INFINITY : Date.now()
    }
  }

  const chaos = async (c: { upMs: [number, number]; downMs: [number, number] }): Promise<void> => {
    for (;;) {
      await sleep(between(r, c.upMs))
      if (Date.now() + c.downMs[0] > endAt) return
      const candidates = cluster.servingIndexes()
      if (cluster.upIndexes().length < cluster.nodes.length) return // never two down at once
      const i = pick(r, candidates)
      events.push(`${Date.now() - t0} ms: kill node ${i}`)
      kills++
      await cluster.kill(i)
      await sleep(between(r, c.downMs))
      events.push(`${Date.now() - t0} ms: restart node ${i}`)
      await cluster.restart(i)
      events.push(`${Date.now() - t0} ms: node ${i} up and seen by all`)
    }
  }

  const tasks: Array<Promise<void>> = [
    ...Array.from({ length: o.writers ?? 4 }, () => writer()),
    ...Array.from({ length: o.readers ?? 2 }, () => reader()),
  ]
  if (o.chaos !== undefined) tasks.push(chaos(o.chaos))
  for (let n = 0; n < (o.listers ?? 0); n++) tasks.push(lister())
  const mpu = o.multipart
  if (mpu !== undefined) for (let n = 0; n < mpu.writers; n++) tasks.push(multipartWriter(mpu))
  for (const x of o.extra ?? []) tasks.push(x({ running, log: (q) => requests.push(q) }))
  if (o.during !== undefined) {
    tasks.push(
      o.during().finally(() => {
        duringDone = true
      }),
    )
  }
  const settled = await Promise.allSettled(tasks)
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')
  if (failed !== undefined)
    throw new Error(`a workload task failed (not an S3 error): ${(failed.reason as Error)?.stack ?? String(failed.reason)}`, {
      cause: failed.reason,
    })
  return {
    history: { writes, reads, liveListings },
    blocksOf,
    events,
    clientErrors,
    requests,
    keys: readKeys,
    stats: {
      writes: writes.length,
      acked: writes.filter((w) => w.acked).length,
      reads: reads.length,
      failedReads,
      kills,
      listings: liveListings.length,
      failedListings,
      multipartAcked: writes.filter((w) => w.acked && mpuKeys.includes(w.key)).length,
    },
  }
}

/** Lists every key under `prefix` through node `i` (ListObjectsV2, all pages). */
export async function listKeys(cluster: ReplicatedCluster, i: number, prefix: string, timeoutMs?: number): Promise<string[]> {
  const out: string[] = []
  let token: string | undefined
  do {
    const page = await cluster.client(i).send(
      new ListObjectsV2Command({
        Bucket: cluster.bucket,
        Prefix: prefix,
        ...(token === undefined ? {} : { ContinuationToken: token }),
      }),
      timeoutMs === undefined ? {} : { abortSignal: AbortSignal.timeout(timeoutMs) },
    )
    for (const c of page.Contents ?? []) if (c.Key !== undefined) out.push(c.Key)
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined
  } while (token !== undefined)
  return out
}

/**
 * Reads every key and a listing through every running node clients may use, once. Throws if a node fails to
 * answer (the cluster is expected to be whole and quiet here).
 */
export async function observeFinal(
  cluster: ReplicatedCluster,
  keys: string[],
  prefix: string,
): Promise<{ finals: FinalRead[]; listings: Listing[] }> {
  const finals: FinalRead[] = []
  const listings: Listing[] = []
  for (const i of cluster.servingIndexes()) {
    for (const key of keys) {
      // A 503 (a quorum call that timed out on a loaded machine) is retried a few times.
      let res = await rawS3(cluster.target(i), 'GET', `/${cluster.bucket}/${key}`)
      for (let retry = 0; retry < 3 && res.status === 503; retry++) {
        await sleep(1_000)
        res = await rawS3(cluster.target(i), 'GET', `/${cluster.bucket}/${key}`)
      }
      if (res.status !== 200 && res.status !== 404)
        throw new Error(`final GET ${key} on node ${i} answered ${res.status}: ${res.body}`)
      finals.push({
        source: `node ${i}`,
        key,
        value: res.status === 404 ? null : createHash('sha256').update(res.body).digest('hex'),
      })
    }
    listings.push({ source: `node ${i}`, keys: await listKeys(cluster, i, prefix) })
  }
  return { finals, listings }
}

/**
 * Observes the final state until every node agrees (anti-entropy and read repair carry the
 * writes that reached a single replica) or `timeoutMs` passes; returns the last observation.
 */
export async function settleFinal(
  cluster: ReplicatedCluster,
  keys: string[],
  prefix: string,
  timeoutMs = 30_000,
): Promise<{ finals: FinalRead[]; listings: Listing[]; agreed: boolean }> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const obs = await observeFinal(cluster, keys, prefix)
    const agreed = disagreements(obs.finals, obs.listings).length === 0
    if (agreed || Date.now() > deadline) return { ...obs, agreed }
    await sleep(500)
  }
}

/** The keys a workload used (same naming as runWorkload). */
export function workloadKeys(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}k${String(i).padStart(2, '0')}`)
}
