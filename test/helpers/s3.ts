/**
 * S3 test helpers: an AWS SDK client for a test node, and a raw SigV4 request signer (built on
 * `@smithy/signature-v4`, never on our own signer) for the requests the SDK cannot produce:
 * wrong digests, truncated bodies, other regions, skewed clocks, virtual-hosted Host headers.
 */
import { createHash, createHmac, type Hash, type Hmac, randomBytes } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { request as httpRequest } from 'node:http'
import { connect } from 'node:net'
import { GetObjectCommand, HeadObjectCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3'
import { SignatureV4 } from '@smithy/signature-v4'
import { after, before } from 'node:test'
import { startTestNode, type TestNode, type TestNodeOptions } from '../../lib/testing.ts'

export interface Credentials {
  accessKeyId: string
  secretAccessKey: string
}

/** An SDK client for `node` (path-style, no retries so errors surface at once). */
/**
 * Starts a test node and an SDK client for the whole file (before / after hooks), handing both
 * to `set` once started; stops them at the end.
 */
export function useTestNode(options: TestNodeOptions, set: (node: TestNode, s3: S3Client) => void): void {
  let started: { node: TestNode; s3: S3Client } | undefined
  before(async () => {
    const node = await startTestNode(options)
    started = { node, s3: s3Client(node) }
    set(started.node, started.s3)
  })
  after(async () => {
    started?.s3.destroy()
    await started?.node.close()
  })
}

export function s3Client(node: TestNode, overrides: Partial<S3ClientConfig> = {}): S3Client {
  return new S3Client({ ...node.s3Config, maxAttempts: 1, ...overrides })
}

/** An `assert.rejects` validator: the SDK error carries `code` (and `status` when given). */
export function s3Error(code: string, status?: number): (err: unknown) => boolean {
  return (err: unknown) => {
    const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } } | null
    const got = e?.Code ?? e?.name
    if (got !== code) throw new Error(`expected S3 error ${code}, got ${got}`, { cause: err })
    const st = e?.$metadata?.httpStatusCode
    if (status !== undefined && st !== status) throw new Error(`expected HTTP ${status}, got ${st}`, { cause: err })
    return true
  }
}

export const md5Hex = (b: string | Uint8Array): string => createHash('md5').update(b).digest('hex')
export const md5Base64 = (b: string | Uint8Array): string => createHash('md5').update(b).digest('base64')
export const sha256Hex = (b: string | Uint8Array): string => createHash('sha256').update(b).digest('hex')

/** node:crypto's SHA-256 (and HMAC-SHA-256 when given a secret) in smithy's Checksum shape. */
export class Sha256 {
  readonly #secret: string | Uint8Array | undefined
  #h: Hash | Hmac
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#secret =
      secret === undefined || typeof secret === 'string'
        ? secret
        : secret instanceof ArrayBuffer
          ? new Uint8Array(secret)
          : new Uint8Array(secret.buffer, secret.byteOffset, secret.byteLength)
    this.#h = this.#fresh()
  }
  #fresh(): Hash | Hmac {
    return this.#secret === undefined ? createHash('sha256') : createHmac('sha256', this.#secret)
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#h.update(
      typeof data === 'string'
        ? data
        : data instanceof ArrayBuffer
          ? new Uint8Array(data)
          : new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    )
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#h.digest())
  }
  reset(): void {
    this.#h = this.#fresh()
  }
}

/** AWS's URI encoding of one query component (RFC 3986 unreserved characters kept). */
export function uriEscape(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}

/** Encodes an object key for a path (slashes kept). */
export function encodeKey(key: string): string {
  return key.split('/').map(uriEscape).join('/')
}

export interface RawRequest {
  method: string
  /** The already-encoded path, e.g. `/bucket/my%20key`. */
  path: string
  /** Decoded parameters; an array repeats the parameter. */
  query?: Record<string, string | string[]>
  headers?: Record<string, string>
  body?: string | Uint8Array
  /** Credentials to sign with; `null` sends the request anonymously. Default: the node's key. */
  credentials?: Credentials | null
  /** Region of the signing scope. Default: the node's region. */
  region?: string
  /** Date of the signature. Default: now. */
  signingDate?: Date
  /** `x-amz-content-sha256`. Default: the hex SHA-256 of the body. */
  payloadHash?: string
  /** Host header (virtual-hosted style). Default: the endpoint's host:port. */
  host?: string
}

export interface RawResponse {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
  text: string
}

/**
 * What signing needs from a node: its S3 endpoint, region and credentials. A {@link TestNode}
 * is one; so is a node running in a child process.
 */
export interface SigningTarget {
  endpoint: string
  region: string
  s3Config: { credentials: Credentials }
}

export interface SignedRequest {
  url: URL
  method: string
  headers: Record<string, string>
  body: Uint8Array
}

function queryString(query: Record<string, string | string[]>): string {
  return Object.entries(query)
    .flatMap(([k, vs]) =>
      (Array.isArray(vs) ? vs : [vs]).map((v) => (v === '' ? uriEscape(k) : `${uriEscape(k)}=${uriEscape(v)}`)),
    )
    .join('&')
}

/** Builds and signs (SigV4, header form) a request for `node`. */
export async function signRequest(node: SigningTarget, r: RawRequest): Promise<SignedRequest> {
  const endpoint = new URL(node.endpoint)
  const body = r.body === undefined ? new Uint8Array(0) : typeof r.body === 'string' ? Buffer.from(r.body) : r.body
  const headers: Record<string, string> = {
    host: r.host ?? endpoint.host,
    'x-amz-content-sha256': r.payloadHash ?? sha256Hex(body),
    ...r.headers,
  }
  const query = r.query ?? {}
  const credentials = r.credentials === undefined ? node.s3Config.credentials : r.credentials
  if (credentials !== null) {
    const signer = new SignatureV4({
      credentials,
      region: r.region ?? node.region,
      service: 's3',
      sha256: Sha256,
      uriEscapePath: false,
      applyChecksum: false,
    })
    const signed = await signer.sign(
      {
        method: r.method,
        protocol: 'http:',
        hostname: endpoint.hostname,
        port: Number(endpoint.port),
        path: r.path,
        query,
        headers,
        body,
      },
      { signingDate: r.signingDate ?? new Date() },
    )
    for (const [k, v] of Object.entries(signed.headers)) headers[k] = v
  }
  const qs = queryString(query)
  const url = new URL(`${endpoint.origin}${r.path}${qs === '' ? '' : `?${qs}`}`)
  return { url, method: r.method, headers, body }
}

/** Sends a signed request built by {@link signRequest} and reads the whole answer. */
export async function sendRequest(s: SignedRequest): Promise<RawResponse> {
  return new Promise<RawResponse>((resolve, reject) => {
    const headers: Record<string, string> = { ...s.headers }
    if (headers['transfer-encoding'] === undefined && headers['content-length'] === undefined) {
      headers['content-length'] = String(s.body.length)
    }
    const req = httpRequest(s.url, { method: s.method, headers, agent: false, setHost: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const body = Buffer.concat(chunks)
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8') })
      })
    })
    req.on('error', reject)
    req.end(s.body.length > 0 ? s.body : undefined)
  })
}

/** Signs and sends one request. */
export async function rawRequest(node: SigningTarget, r: RawRequest): Promise<RawResponse> {
  return sendRequest(await signRequest(node, r))
}

/**
 * Writes a request's head and `bodyPart` on a plain socket, then ends the socket; resolves with
 * whatever the server answered before closing (possibly nothing).
 */
export async function sendTruncated(s: SignedRequest, bodyPart: Uint8Array): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const socket = connect(Number(s.url.port), s.url.hostname)
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') resolve(Buffer.concat(chunks).toString('utf8'))
      else reject(err)
    })
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')))
    socket.on('connect', () => {
      const head = [`${s.method} ${s.url.pathname}${s.url.search} HTTP/1.1`]
      for (const [k, v] of Object.entries(s.headers)) head.push(`${k}: ${v}`)
      socket.write(`${head.join('\r\n')}\r\n\r\n`)
      socket.end(bodyPart)
    })
  })
}

export interface PresignOptions {
  method: string
  /** The already-encoded path. */
  path: string
  query?: Record<string, string>
  expiresIn: number
  signingDate?: Date
  credentials?: Credentials
  headers?: Record<string, string>
}

/** A presigned URL (query-string SigV4), as `@aws-sdk/s3-request-presigner` would build it. */
export async function presignUrl(node: SigningTarget, o: PresignOptions): Promise<URL> {
  const endpoint = new URL(node.endpoint)
  const signer = new SignatureV4({
    credentials: o.credentials ?? node.s3Config.credentials,
    region: node.region,
    service: 's3',
    sha256: Sha256,
    uriEscapePath: false,
  })
  const presigned = await signer.presign(
    {
      method: o.method,
      protocol: 'http:',
      hostname: endpoint.hostname,
      port: Number(endpoint.port),
      path: o.path,
      query: o.query ?? {},
      headers: { host: endpoint.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', ...o.headers },
    },
    { expiresIn: o.expiresIn, signingDate: o.signingDate ?? new Date() },
  )
  const query: Record<string, string> = {}
  for (const [k, v] of Object.entries(presigned.query ?? {})) {
    if (typeof v === 'string') query[k] = v
  }
  return new URL(`${endpoint.origin}${o.path}?${queryString(query)}`)
}

/** The text of the first `<tag>` in an XML document. */
export function xmlField(xml: string, tag: string): string | undefined {
  const m = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml)
  return m?.[1]
}

/** Random bytes (incompressible, so sizes and block counts are what the test says). */
export function randomBuffer(size: number): Buffer {
  return randomBytes(size)
}

const CRC32_TABLE = (() => {
  const t = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    t[n] = c >>> 0
  }
  return t
})()

/** CRC-32 (IEEE) of `data`, base64 of its 4 big-endian bytes, as in `x-amz-checksum-crc32`. */
export function crc32Base64(data: Uint8Array): string {
  let c = 0xffffffff
  for (const byte of data) c = (CRC32_TABLE[(c ^ byte) & 0xff] as number) ^ (c >>> 8)
  const out = Buffer.alloc(4)
  out.writeUInt32BE((c ^ 0xffffffff) >>> 0)
  return out.toString('base64')
}

export interface CapturedRequest {
  method: string
  hostname: string
  path: string
  headers: Record<string, string>
}

/** Records every request `client` sends, as signed (a middleware in the deserialize step). */
export function captureRequests(client: S3Client): CapturedRequest[] {
  const seen: CapturedRequest[] = []
  client.middlewareStack.add(
    (next) => async (args) => {
      const r = args.request as { method?: string; hostname?: string; path?: string; headers?: Record<string, string> }
      seen.push({ method: r.method ?? '', hostname: r.hostname ?? '', path: r.path ?? '', headers: { ...r.headers } })
      return next(args)
    },
    { step: 'deserialize', name: 'testCaptureRequests' },
  )
  return seen
}

/** Whether `key` exists (HeadObject answers 200). */
export async function objectExists(client: S3Client, bucket: string, key: string): Promise<boolean> {
  try {
    await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
    return true
  } catch (err) {
    const e = err as { $metadata?: { httpStatusCode?: number } }
    if (e.$metadata?.httpStatusCode === 404) return false
    throw err
  }
}

/** The body of `key` as bytes. */
export async function getBytes(client: S3Client, bucket: string, key: string): Promise<Buffer> {
  const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  return Buffer.from((await r.Body?.transformToByteArray()) ?? new Uint8Array(0))
}
