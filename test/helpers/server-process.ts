/**
 * `garage server` in a child process, for tests and benchmarks that must observe the server from
 * outside (its peak memory, a crash, a signal): `node --import tsx lib/cli/run-dev.ts server -c
 * <tmp toml>` on a fresh temporary directory and a free port, with an access key and a bucket
 * ready. Also a minimal SigV4 signer (UNSIGNED-PAYLOAD) for raw node:http requests, so a client
 * can stream bodies of any size without the AWS SDK in the way.
 */

import { type ChildProcess, spawn } from 'node:child_process'
import { createHash, createHmac, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { type Agent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const RUN_DEV = join(ROOT, 'lib/cli/run-dev.ts')
/** The built CLI (`npm run build`), as `npx garage` runs it. */
const BIN = join(ROOT, 'bin/garage.js')
/** Resolved here, since the child runs in a temp dir where `tsx` alone would not resolve. */
const TSX = import.meta.resolve('tsx')

export interface Credentials {
  accessKeyId: string
  secretAccessKey: string
}

export interface ServerProcessOptions {
  /** Bucket created for the key (global alias). Default `test-bucket`. */
  bucket?: string
  /** S3 region. Default `garage`. */
  region?: string
  /** Extra top-level lines for garage.toml (e.g. `block_size = "4M"`). */
  configLines?: string[]
  /** Extra lines of the `[s3_api]` section (e.g. `min_part_size = 0`). */
  s3ApiLines?: string[]
  /** Extra flags for the child's `node` (e.g. `--cpu-prof`), placed before the script. */
  nodeArgs?: string[]
  /** Modules the child imports (`--import`) after tsx and before the CLI: `.ts` files work. */
  preload?: string[]
  /** How long to wait for the S3 endpoint to answer. Default 60 s (a start compiles the sources with tsx: seconds on a loaded machine). */
  startTimeoutMs?: number
  /** Restart on the directory of an earlier process (kept with `kill({ keepDir: true })`). */
  reuse?: { dir: string; credentials: Credentials }
  /** Extra environment variables for the child (`GARAGE_*` of the parent are never passed). */
  env?: Record<string, string>
  /** Also serve the admin API (on a free port, with a random admin token). */
  admin?: boolean
  /**
   * What the child runs. `source` (default): lib/cli/run-dev.ts through tsx, as the tests do.
   * `package`: the built `bin/garage.js` (dist/, from `npm run build`), as users run it: the
   * benchmark's choice, since tsx's compiled sources and source maps add ≈ 50 MB to the RSS.
   * `preload` modules must then be plain JavaScript.
   */
  entry?: 'source' | 'package'
}

export interface ServerProcess extends AsyncDisposable {
  readonly child: ChildProcess
  readonly pid: number
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string
  readonly region: string
  readonly bucket: string
  readonly credentials: Credentials
  /** `http://127.0.0.1:<port>` of the admin API, with `admin: true`. */
  readonly adminEndpoint: string | undefined
  /** Its bearer token, with `admin: true`. */
  readonly adminToken: string | undefined
  /** The temporary directory (garage.toml, meta/, data/), removed by stop() and kill(). */
  readonly dir: string
  /** stdout + stderr so far. */
  output(): string
  /** The child's peak resident set size in bytes (VmHWM), since start or the last resetPeakRss(). */
  peakRss(): Promise<number>
  /** Resets the child's VmHWM to its current RSS (Linux `clear_refs` 5). */
  resetPeakRss(): Promise<void>
  /** SIGTERM, wait for a clean exit (SIGKILL after `graceMs`), remove the directory; the exit code. */
  stop(graceMs?: number, options?: { keepDir?: boolean }): Promise<number | null>
  /** SIGKILL, then remove the directory unless `keepDir` (to restart on it with `reuse`). */
  kill(options?: { keepDir?: boolean }): Promise<void>
}

/**
 * Starts a node as a child process. The key and the bucket are created beforehand by opening the
 * same metadata directory in-process (the CLI only creates a key for its embedded default), so
 * the child starts on a store that already has them.
 */
export async function startServerProcess(options: ServerProcessOptions = {}): Promise<ServerProcess> {
  const bucket = options.bucket ?? 'test-bucket'
  const region = options.region ?? 'garage'
  const dir = options.reuse?.dir ?? (await mkdtemp(join(tmpdir(), 'garage-proc-')))
  let child: ChildProcess | undefined
  try {
    const toml = [
      `metadata_dir = "${join(dir, 'meta')}"`,
      `data_dir = "${join(dir, 'data')}"`,
      ...(options.configLines ?? []),
      '[s3_api]',
      'api_bind_addr = "127.0.0.1:0"',
      `s3_region = "${region}"`,
      ...(options.s3ApiLines ?? []),
    ]
    const adminToken = options.admin === true ? randomBytes(16).toString('hex') : undefined
    if (adminToken !== undefined) toml.push('[admin]', 'api_bind_addr = "127.0.0.1:0"', `admin_token = "${adminToken}"`)
    const configFile = join(dir, 'garage.toml')
    await writeFile(configFile, `${toml.join('\n')}\n`)
    const credentials = options.reuse?.credentials ?? (await provision(dir, bucket, region))

    const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: '1' }
    for (const name of Object.keys(env)) if (name.startsWith('GARAGE_')) delete env[name]
    Object.assign(env, options.env)
    const preload = (options.preload ?? []).flatMap((m) => ['--import', m])
    const proc = spawn(
      process.execPath,
      options.entry === 'package'
        ? [...(options.nodeArgs ?? []), ...preload, BIN, 'server', '-c', configFile]
        : [...(options.nodeArgs ?? []), '--import', TSX, ...preload, RUN_DEV, 'server', '-c', configFile],
      {
        cwd: dir,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    child = proc
    let out = ''
    proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d
    })
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
      out += d
    })
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
    const alive = (): boolean => proc.exitCode === null && proc.signalCode === null

    const timeoutMs = options.startTimeoutMs ?? 60_000
    const deadline = Date.now() + timeoutMs
    let endpoint: string | undefined
    while (endpoint === undefined) {
      endpoint = /S3 API listening on (http:\/\/[^\s]+)/.exec(out)?.[1]
      if (endpoint !== undefined) break
      if (!alive()) throw new Error(`garage server exited before listening; output:\n${out}`)
      if (Date.now() > deadline) throw new Error(`garage server did not listen within ${timeoutMs} ms; output:\n${out}`)
      await sleep(25)
    }
    // The node logs where its admin API listens while starting (the CLI prints the S3 one last).
    let adminEndpoint: string | undefined
    while (adminToken !== undefined && adminEndpoint === undefined) {
      adminEndpoint = /\badmin API listening on (http:\/\/[^\s]+)/.exec(out)?.[1]
      if (adminEndpoint !== undefined) break
      if (!alive()) throw new Error(`garage server exited before serving its admin API; output:\n${out}`)
      if (Date.now() > deadline)
        throw new Error(`garage server did not report its admin API within ${timeoutMs} ms; output:\n${out}`)
      await sleep(25)
    }
    // Listening is not answering: wait until a request gets an HTTP response (403 is fine).
    while (!(await answers(endpoint))) {
      if (!alive()) throw new Error(`garage server exited while starting; output:\n${out}`)
      if (Date.now() > deadline) throw new Error(`garage server did not answer within ${timeoutMs} ms; output:\n${out}`)
      await sleep(25)
    }

    const pid = proc.pid as number
    const removeDir = (): Promise<void> => rm(dir, { recursive: true, force: true })
    let stopping: Promise<number | null> | undefined
    const stop = (graceMs = 10_000, o: { keepDir?: boolean } = {}): Promise<number | null> =>
      (stopping ??= (async () => {
        if (alive()) {
          proc.kill('SIGTERM')
          const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs)
          try {
            await exited
          } finally {
            clearTimeout(timer)
          }
        }
        if (o.keepDir !== true) await removeDir()
        return proc.exitCode
      })())
    const kill = async (o: { keepDir?: boolean } = {}): Promise<void> => {
      if (alive()) proc.kill('SIGKILL')
      await exited
      if (o.keepDir !== true) await removeDir()
    }
    return {
      child: proc,
      pid,
      endpoint,
      region,
      bucket,
      credentials,
      adminEndpoint,
      adminToken,
      dir,
      output: () => out,
      peakRss: () => readPeakRss(pid),
      resetPeakRss: () => resetPeakRss(pid),
      stop,
      kill,
      [Symbol.asyncDispose]: async () => {
        await stop()
      },
    }
  } catch (err) {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}

/** Creates the key and the bucket in `dir`'s store, then closes it. */
async function provision(dir: string, bucket: string, region: string): Promise<Credentials> {
  const { createGarageNode } = await import('../../lib/index.ts')
  const node = createGarageNode({
    metadata_dir: join(dir, 'meta'),
    data_dir: join(dir, 'data'),
    env: {},
    s3_api: { api_bind_addr: '127.0.0.1:0', s3_region: region },
  })
  try {
    await node.start()
    const key = await node.keys.create({ name: 'test', allowCreateBucket: true })
    await node.buckets.create(bucket)
    await node.buckets.allowKey(bucket, key.accessKeyId, { read: true, write: true, owner: true })
    return { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey }
  } finally {
    await node.stop()
  }
}

function answers(endpoint: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest(`${endpoint}/`, { method: 'GET', timeout: 1_000 }, (res) => {
      res.resume()
      resolve(true)
    })
    req.once('timeout', () => req.destroy())
    req.once('error', () => resolve(false))
    req.end()
  })
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Peak resident set size (VmHWM) of a Linux process, in bytes. */
export async function readPeakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1]
  if (kb === undefined) throw new Error(`no VmHWM in /proc/${pid}/status`)
  return Number(kb) * 1024
}

/** Resets a process's VmHWM to its current RSS (writes 5 to /proc/<pid>/clear_refs). */
export async function resetPeakRss(pid: number): Promise<void> {
  await writeFile(`/proc/${pid}/clear_refs`, '5')
}

// ---------------------------------------------------------------------------------------------
// Raw SigV4 (header auth, UNSIGNED-PAYLOAD): a few hashes per request, independent of lib/.

export interface S3Target {
  endpoint: string
  region: string
  credentials: Credentials
}

/** RFC 3986 encoding as SigV4 wants it (`/` kept in paths). */
function uriEncode(s: string, keepSlash: boolean): string {
  let out = ''
  for (const ch of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(ch)
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === '/')) out += c
    else out += `%${ch.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

const signingKeys = new Map<string, Buffer>()

function signingKey(secret: string, date: string, region: string): Buffer {
  const id = `${secret}/${date}/${region}`
  let key = signingKeys.get(id)
  if (key === undefined) {
    const kDate = createHmac('sha256', `AWS4${secret}`).update(date).digest()
    const kRegion = createHmac('sha256', kDate).update(region).digest()
    const kService = createHmac('sha256', kRegion).update('s3').digest()
    key = createHmac('sha256', kService).update('aws4_request').digest()
    signingKeys.set(id, key)
  }
  return key
}

/** The canonical (and sent) query string: RFC 3986-encoded pairs sorted by name. */
function canonicalQuery(query: Record<string, string>): string {
  return Object.entries(query)
    .map(([k, v]) => [uriEncode(k, false), uriEncode(v, false)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&')
}

/**
 * Headers that authenticate `method` on `path` (already the raw path, e.g. `/bucket/key`; it is
 * encoded here) and `query` (name → value, e.g. `{ 'list-type': '2' }`) with an unsigned payload.
 */
export function signV4(
  target: S3Target,
  method: string,
  path: string,
  extra: Record<string, string> = {},
  query: Record<string, string> = {},
): OutgoingHttpHeaders {
  const url = new URL(target.endpoint)
  const amzDate = new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '')
  const date = amzDate.slice(0, 8)
  const headers: Record<string, string> = {
    ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [k.toLowerCase(), v])),
    host: url.host,
    'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
    'x-amz-date': amzDate,
  }
  const names = Object.keys(headers).sort()
  const canonical = [
    method,
    uriEncode(path, true),
    canonicalQuery(query),
    ...names.map((n) => `${n}:${(headers[n] as string).trim()}`),
    '',
    names.join(';'),
    'UNSIGNED-PAYLOAD',
  ].join('\n')
  const scope = `${date}/${target.region}/s3/aws4_request`
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n')
  const signature = createHmac('sha256', signingKey(target.credentials.secretAccessKey, date, target.region))
    .update(toSign)
    .digest('hex')
  return {
    ...headers,
    authorization: `AWS4-HMAC-SHA256 Credential=${target.credentials.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`,
  }
}

/**
 * Sends a signed request; `body` is written whole (a Buffer) or piped (an async iterable, which
 * then needs a `content-length` in `headers`). Resolves with the response, unread.
 */
export function sendSigned(
  target: S3Target,
  method: string,
  path: string,
  opts: {
    headers?: Record<string, string>
    body?: Buffer | AsyncIterable<Uint8Array>
    agent?: Agent
    /** Query parameters, signed and sent (`{ uploads: '' }` for `?uploads=`). */
    query?: Record<string, string>
  } = {},
): Promise<IncomingMessage> {
  const query = opts.query ?? {}
  const headers = signV4(target, method, path, opts.headers, query)
  const qs = canonicalQuery(query)
  return new Promise<IncomingMessage>((resolve, reject) => {
    const req = httpRequest(
      `${target.endpoint}${uriEncode(path, true)}${qs === '' ? '' : `?${qs}`}`,
      { method, headers, ...(opts.agent === undefined ? {} : { agent: opts.agent }) },
      resolve,
    )
    req.once('error', reject)
    const body = opts.body
    if (body === undefined) req.end()
    else if (Buffer.isBuffer(body)) req.end(body)
    else {
      void (async () => {
        for await (const chunk of body) {
          if (!req.write(chunk)) await once(req, 'drain') // rejects if the request fails meanwhile
        }
        req.end()
      })().catch((err: unknown) => req.destroy(err as Error))
    }
  })
}
