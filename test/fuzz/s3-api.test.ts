/**
 * No request can crash a node (issue 10): a seeded fuzzer sends raw-socket requests, built from
 * valid signed requests of every endpoint family and mutated at the header, query, path, body
 * and framing level, to a node running as a child process (S3, admin with a metrics token, and
 * the website endpoint). After every request the process must be alive; every few requests and
 * at the end its `/health` must answer 200; no answer may be a 5xx (but 501 NotImplemented); a
 * fully sent request must get an answer; and at the end every key in the bucket must have been
 * acknowledged by a successful write.
 *
 * Bounded in `npm test` (a fixed seed and count). Long runs: `FUZZ_COUNT=20000 FUZZ_SEED=7 node
 * --import tsx --test test/fuzz/s3-api.test.ts`; the counts are printed as test diagnostics.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { int, pick, rng } from '../helpers/random.ts'
import { encodeKey, sendRequest, signRequest, xmlField } from '../helpers/s3.ts'
import { startServerProcess } from '../helpers/server-process.ts'
import { FRAMING, POST_MUTATORS, PRE_MUTATORS } from './mutate.ts'
import { type FuzzTarget, type Logical, materialize, md5Hex, SEEDS } from './requests.ts'
import { type Outcome, send, serialize } from '../helpers/raw-http.ts'

const SEED = Number(process.env.FUZZ_SEED ?? 20_240_610)
const COUNT = Number(process.env.FUZZ_COUNT ?? 2000)
/** `FUZZ_TRACE=1` prints one line per request on stderr. */
const TRACE = process.env.FUZZ_TRACE === '1'
/** `/health` is fetched every this many requests (and at the end). */
const HEALTH_EVERY = 25
/** A fully sent request must be answered within this time. */
const ANSWER_TIMEOUT_MS = 15_000

const ADMIN_TOKEN = 'fuzz-admin-token'
const METRICS_TOKEN = 'fuzz-metrics-token'

/** The features of a sent request, reported with a failure. */
interface Sent {
  family: string
  method: string
  /** The decoded object key (bytes), when the target names one. */
  keyBytes: number
  bucketBytes: number
  /** The Host header (bytes): on the website endpoint it names the bucket. */
  hostBytes: number
  /** The longest decoded query value (bytes). */
  longestQueryValue: number
  /** Decoded `response-*` override values. */
  responseOverrides: string[]
  /** The request body was mutated (or replaced). */
  bodyMutated: boolean
  /** The node's log lines for this request's id (for a 500). */
  log: string
}

interface Stats {
  requests: number
  mutated: number
  /** Requests sent as built (no mutation), and how many of them answered 2xx or 3xx. */
  clean: number
  cleanOk: number
  statuses: Record<string, number>
  families: Record<string, number>
  noAnswer: number
  crashes: number
  serverErrors: number
  healthChecks: number
  failures: string[]
}

function decodeLoose(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '))
  } catch {
    return s // invalid percent-encoding: the raw text is reported
  }
}

/** The request target as node:http parses it: up to the first space of the request line. */
const parsedTarget = (target: string): string => target.split(' ')[0] ?? ''

function features(rawTarget: string, family: string, method: string, bodyMutated: boolean, hostBytes: number): Omit<Sent, 'log'> {
  const target = parsedTarget(rawTarget)
  const q = target.indexOf('?')
  const path = q < 0 ? target : target.slice(0, q)
  const rest = path.replace(/^\/+/, '')
  const slash = rest.indexOf('/')
  const bucket = slash < 0 ? rest : rest.slice(0, slash)
  const key = slash < 0 ? '' : decodeLoose(rest.slice(slash + 1))
  const params = (q < 0 ? '' : target.slice(q + 1)).split('&').map((p) => {
    const eq = p.indexOf('=')
    return [decodeLoose(eq < 0 ? p : p.slice(0, eq)), decodeLoose(eq < 0 ? '' : p.slice(eq + 1))] as const
  })
  return {
    family,
    method,
    keyBytes: Buffer.byteLength(key),
    bucketBytes: Buffer.byteLength(bucket),
    hostBytes,
    longestQueryValue: Math.max(0, ...params.map(([, v]) => Buffer.byteLength(v))),
    responseOverrides: params.filter(([k]) => k.startsWith('response-')).map(([, v]) => v),
    bodyMutated,
  }
}

/** The object key a successful write stored, if the request was one. */
function writtenKey(rawTarget: string, method: string, o: Outcome, bucket: string): string | undefined {
  if (method !== 'PUT' && method !== 'POST') return undefined
  const target = parsedTarget(rawTarget)
  const q = target.indexOf('?')
  const path = q < 0 ? target : target.slice(0, q)
  const prefix = `/${bucket}/`
  if (path.startsWith(prefix)) {
    try {
      return decodeURIComponent(path.slice(prefix.length))
    } catch {
      return undefined
    }
  }
  // PostObject: the key is in the form; the answer names it (XML with 201, else Location, or the
  // redirect's `key` parameter). The Location's host echoes the request's Host, which may be garbage.
  const xmlKey = xmlField(o.excerpt, 'Key')
  if (xmlKey !== undefined) return unxml(xmlKey)
  const location = /^location: *(.*)$/im.exec(o.head)?.[1]?.trim()
  if (location === undefined) return undefined
  const fromQuery = /[?&]key=([^&]*)/.exec(location)?.[1]
  if (fromQuery !== undefined) return decodeLoose(fromQuery)
  const at = location.indexOf(prefix, location.indexOf('//') + 2)
  return at < 0 ? undefined : decodeLoose(location.slice(at + prefix.length).split('?')[0] ?? '')
}

test('fuzzing every endpoint family never crashes the node, never answers 5xx and stores only what it acknowledged', async (t) => {
  const proc = await startServerProcess({
    configLines: [
      '[admin]',
      'api_bind_addr = "127.0.0.1:0"',
      `admin_token = "${ADMIN_TOKEN}"`,
      `metrics_token = "${METRICS_TOKEN}"`,
      '[s3_web]',
      'bind_addr = "127.0.0.1:0"',
      'root_domain = ".web.garage"',
    ],
  })
  t.after(() => proc.stop())
  const port = (api: string): number => {
    const url = new RegExp(`${api} API listening on (http://[^\\s]+)`).exec(proc.output())?.[1]
    assert.ok(url !== undefined, `no '${api} API listening' line in:\n${proc.output()}`)
    return Number(new URL(url).port)
  }
  const s3Url = new URL(proc.endpoint)
  const target: FuzzTarget = {
    endpoint: proc.endpoint,
    region: proc.region,
    s3Config: { credentials: proc.credentials },
    bucket: proc.bucket,
    host: s3Url.hostname,
    ports: { s3: Number(s3Url.port), web: port('web'), admin: port('admin') },
    adminToken: ADMIN_TOKEN,
    metricsToken: METRICS_TOKEN,
    uploads: [],
    existing: [],
  }
  const alive = (): boolean => proc.child.exitCode === null && proc.child.signalCode === null
  const acked = new Set<string>()
  /** Keys of writes delivered whole but left unanswered because the client went away first. */
  const unanswered = new Set<string>()
  const stats: Stats = {
    requests: 0,
    mutated: 0,
    clean: 0,
    cleanOk: 0,
    statuses: {},
    families: {},
    noAnswer: 0,
    crashes: 0,
    serverErrors: 0,
    healthChecks: 0,
    failures: [],
  }

  const clean = async (l: Logical): Promise<Outcome> =>
    send(target.host, target.ports[l.port], await materialize(target, l), ANSWER_TIMEOUT_MS)
  const put = async (key: string, body: string): Promise<void> => {
    const o = await clean({
      family: 'setup',
      port: 's3',
      method: 'PUT',
      path: `/${target.bucket}/${key}`,
      query: {},
      headers: {},
      body: Buffer.from(body),
      auth: { kind: 'header' },
    })
    assert.equal(o.status, 200, o.excerpt)
    acked.add(key)
    target.existing.push(key)
  }
  const r = rng(SEED)
  /** Keeps a few multipart uploads open, each with part 1 uploaded. */
  const refillUploads = async (): Promise<void> => {
    while (target.uploads.length < 3) {
      const created = await clean(SEEDS.CreateMultipartUpload?.(target, r) as Logical)
      const uploadId = xmlField(created.excerpt, 'UploadId')
      const keyXml = xmlField(created.excerpt, 'Key')
      const createdKey = keyXml === undefined ? undefined : unxml(keyXml)
      assert.ok(uploadId !== undefined && createdKey !== undefined, `CreateMultipartUpload: ${created.excerpt}`)
      const body = Buffer.from(`part one of ${createdKey}`)
      const part = await clean({
        family: 'setup',
        port: 's3',
        method: 'PUT',
        path: `/${target.bucket}/${encodeKey(createdKey)}`,
        query: { partNumber: '1', uploadId },
        headers: {},
        body,
        auth: { kind: 'header' },
      })
      assert.equal(part.status, 200, part.excerpt)
      target.uploads.push({ key: createdKey, uploadId, etag: `"${md5Hex(body)}"` })
    }
  }
  const health = async (): Promise<void> => {
    stats.healthChecks++
    const res = await fetch(`http://${target.host}:${target.ports.admin}/health`)
    await res.arrayBuffer()
    assert.equal(res.status, 200, 'the node answers /health')
  }

  // A key no seed names keeps the bucket non-empty (a mutated DELETE may become DeleteBucket).
  await put('sentinel-never-deleted', 'keep the bucket')
  await put('index.html', '<h1>index</h1>')
  await put('error.html', '<h1>error</h1>')
  const website = await clean(SEEDS.PutBucketWebsite?.(target, r) as Logical)
  assert.equal(website.status, 200, website.excerpt)

  const families = Object.keys(SEEDS)
  const pre = Object.entries(PRE_MUTATORS)
  const post = Object.entries(POST_MUTATORS)
  const framing = Object.entries(FRAMING)
  const started = Date.now()
  for (let i = 0; i < COUNT; i++) {
    const iterAt = Date.now()
    const family = pick(r, families)
    if (/Multipart|UploadPart|ListParts/.test(family)) await refillUploads()
    const l = (SEEDS[family] as (t: FuzzTarget, r: () => number) => Logical)(target, r)
    const done: string[] = []
    const roll = r()
    const nPre = roll < 0.15 ? 0 : roll < 0.6 ? 1 + int(r, 2) : int(r, 2)
    for (let k = 0; k < nPre; k++) {
      const [name, m] = pick(r, pre)
      done.push(`${name}: ${m(l, r)}`)
    }
    if (TRACE) console.error(`#${i} building ${family} [${done.join('; ').slice(0, 200)}]`)
    const builtAt = Date.now()
    const raw = await materialize(target, l)
    if (TRACE && Date.now() - builtAt > 200) console.error(`#${i} materialize took ${Date.now() - builtAt} ms`)
    if (roll >= 0.6 && roll < 0.85) {
      const [name, m] = pick(r, post)
      done.push(`${name}: ${m(raw, r)}`)
    }
    // A framing already chosen by a mutator (a body shorter than its announced length is cut
    // off by the client, or the server would rightly wait for the rest) is kept.
    if ((roll >= 0.85 || (roll >= 0.15 && r() < 0.1)) && raw.framing.kind === 'whole') {
      const [name, m] = pick(r, framing)
      done.push(`${name}: ${m(raw, r)}`)
    }
    const sentAt = Date.now()
    const o = await send(target.host, target.ports[l.port], raw, ANSWER_TIMEOUT_MS)
    if (TRACE)
      console.error(
        `#${i} ${Date.now() - sentAt}ms +${sentAt - iterAt}ms ${o.status} ${o.code ?? ''} ${family} ${raw.method} ${raw.target.slice(0, 80)} [${done.join('; ').slice(0, 300)}]`,
      )
    stats.requests++
    if (done.length > 0) stats.mutated++
    else {
      // An unmutated request is a valid one: it must pass authentication, and most must succeed
      // (some legitimately answer 404, e.g. an object an earlier request deleted). Without this,
      // a broken signer would turn the whole run into auth refusals and still pass.
      stats.clean++
      if (o.status > 0 && o.status < 400) stats.cleanOk++
      if (o.status === 401 || o.status === 403) {
        stats.failures.push(
          `an unmutated request was refused (${o.status} ${o.code ?? ''}): #${i} ${family} ${raw.method} ${raw.target.slice(0, 120)}`,
        )
      }
    }
    stats.families[family] = (stats.families[family] ?? 0) + 1
    const statusKey = o.status === 0 ? (o.timedOut ? 'timeout' : 'none') : String(o.status)
    stats.statuses[statusKey] = (stats.statuses[statusKey] ?? 0) + 1
    const where = `#${i} (seed ${SEED}) ${family} ${raw.method} ${raw.target.slice(0, 120)} [${done.join('; ')}]`

    if (!alive()) {
      // Give the process a moment to flush its last words.
      await new Promise((resolve) => setTimeout(resolve, 200))
      stats.crashes++
      stats.failures.push(`the node died after ${where}\n--- node output (tail) ---\n${proc.output().slice(-4000)}`)
      break
    }
    const bodyMutated = done.some((d) => d.startsWith('body:') || d.startsWith('raw: chunked'))
    const requestId = /^x-amz-request-id: *(\S+)/im.exec(o.head)?.[1]
    const sent = (): Sent => ({
      ...features(
        raw.target,
        family,
        raw.method,
        bodyMutated,
        Math.max(0, ...raw.headers.filter(([n]) => n.toLowerCase() === 'host').map(([, v]) => v.length)),
      ),
      log:
        requestId === undefined
          ? ''
          : proc
              .output()
              .split('\n')
              .filter(
                (line, n, lines) =>
                  line.includes(requestId) || lines.slice(Math.max(0, n - 30), n).some((p) => p.includes(requestId)),
              )
              .join('\n'),
    })
    if (o.status >= 500) {
      const s = sent()
      if (o.status === 501 && o.code === 'NotImplemented') {
        // An operation we do not implement.
      } else {
        stats.serverErrors++
        stats.failures.push(`${o.status} ${o.code ?? ''} for ${where}\n${o.excerpt}\n${s.log.slice(0, 3000)}`)
      }
    } else if (o.status === 0) {
      stats.noAnswer++
      // The client cut the request short; or the head is over node:http's 16 KiB limit: the
      // server answers 431 and closes with the rest of the request unread, and the TCP reset
      // this causes may destroy the answer before the client reads it.
      const clientCut =
        raw.framing.kind === 'truncate' ||
        raw.framing.kind === 'reset' ||
        raw.framing.kind === 'half-close' ||
        serialize(raw).head.length > 16 * 1024
      if (o.timedOut) stats.failures.push(`no answer within ${ANSWER_TIMEOUT_MS} ms for ${where}`)
      else if (!clientCut) stats.failures.push(`the connection was dropped without an answer for ${where}`)
    }
    // A request delivered whole whose answer the client did not wait for (it reset or half-closed
    // the connection) may have been carried out: its key may exist without an acknowledgement.
    const delivered = (raw.framing.kind !== 'truncate' && raw.framing.kind !== 'reset') || raw.framing.at >= raw.body.length
    if (o.status === 0 && delivered && l.port === 's3') {
      const key = writtenKey(raw.target, raw.method, o, target.bucket)
      if (key !== undefined) unanswered.add(key)
    }
    if (o.status >= 200 && o.status < 400 && l.port === 's3') {
      const key = writtenKey(raw.target, raw.method, o, target.bucket)
      if (key !== undefined) {
        acked.add(key)
        if (!target.existing.includes(key) && target.existing.length < 200) target.existing.push(key)
      }
      const uploadId = /[?&]uploadId=([^&]*)/.exec(raw.target)?.[1]
      if (uploadId !== undefined && (raw.method === 'POST' || raw.method === 'DELETE')) {
        const id = decodeLoose(uploadId)
        target.uploads = target.uploads.filter((u) => u.uploadId !== id)
      }
    }
    if (stats.failures.length >= 20) break
    if ((i + 1) % HEALTH_EVERY === 0) {
      const h0 = Date.now()
      await health()
      if (TRACE) console.error(`health ${Date.now() - h0} ms`)
    }
  }

  // Internal errors the node logged for requests whose answer never reached the client (it left
  // first) are failures too: bad input must be answered as such, not as an internal error.
  const output = proc.output()
  for (const m of output.matchAll(/^.* ([A-Z]+) (\S+) → (InternalError|ServiceUnavailable) \[([0-9A-F]+)\].*$/gm)) {
    const [line, , , code] = m as unknown as [string, string, string, string, string]
    // The stack trace follows the line, up to the next log line.
    const rest = output.slice((m.index as number) + line.length)
    const next = rest.search(/\n\[garage/)
    const log = `${line}${next < 0 ? rest : rest.slice(0, next)}`
    stats.serverErrors++
    stats.failures.push(`the node logged a ${code} for an answer the client did not see: ${log.slice(0, 600)}`)
  }

  if (alive()) {
    await health()
    // Every key in the bucket was acknowledged by a successful write.
    const listed: string[] = []
    let token: string | undefined
    do {
      const query: Record<string, string> = { 'list-type': '2', 'max-keys': '1000' }
      if (token !== undefined) query['continuation-token'] = token
      const res = await sendRequest(await signRequest(target, { method: 'GET', path: `/${target.bucket}`, query }))
      assert.equal(res.status, 200, res.text)
      for (const m of res.text.matchAll(/<Key>([^<]*)<\/Key>/g)) listed.push(unxml(m[1] as string))
      token = xmlField(res.text, 'IsTruncated') === 'true' ? unxml(xmlField(res.text, 'NextContinuationToken') ?? '') : undefined
    } while (token !== undefined)
    const unacknowledged = listed.filter((k) => !acked.has(k) && !unanswered.has(k))
    if (unacknowledged.length > 0) {
      stats.failures.push(`objects stored without a successful answer: ${JSON.stringify(unacknowledged.slice(0, 20))}`)
    }
    const maybe = listed.filter((k) => !acked.has(k) && unanswered.has(k)).length
    t.diagnostic(
      `objects in the bucket at the end: ${listed.length}, of which ${maybe} written by a whole request whose client left before the answer; unacknowledged: ${unacknowledged.length}`,
    )
  }

  if (TRACE) console.error(`--- node output ---\n${proc.output()}`)
  const secs = ((Date.now() - started) / 1000).toFixed(1)
  t.diagnostic(`seed ${SEED}, ${stats.requests} requests (${stats.mutated} mutated) in ${secs} s`)
  t.diagnostic(`statuses: ${JSON.stringify(sortKeys(stats.statuses))}`)
  t.diagnostic(`families: ${JSON.stringify(sortKeys(stats.families))}`)
  t.diagnostic(
    `crashes: ${stats.crashes}, unexpected 5xx: ${stats.serverErrors}, no answer: ${stats.noAnswer}, ` +
      `health checks: ${stats.healthChecks}`,
  )
  t.diagnostic(`unmutated requests: ${stats.clean}, of which ${stats.cleanOk} answered 2xx/3xx`)
  assert.deepEqual(stats.failures, [], `the fuzzer found problems:\n${stats.failures.join('\n\n')}`)
  assert.ok(stats.clean > 0 && stats.cleanOk >= stats.clean / 2, 'most unmutated requests succeed (the seeds are valid)')
  assert.equal(stats.requests, COUNT, 'every request was sent')
})

function sortKeys(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)))
}

function unxml(s: string): string {
  return s
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&quot;', '"')
    .replaceAll('&apos;', "'")
    .replace(/&#x([0-9a-fA-F]+);/g, (_, h: string) => String.fromCodePoint(Number.parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replaceAll('&amp;', '&')
}
