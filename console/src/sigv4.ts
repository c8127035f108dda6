/**
 * AWS Signature Version 4 for the console's S3 requests (header signing and presigned URLs),
 * with WebCrypto, so the browser signs with the access key the operator picked and the S3 handler
 * checks it as it checks any client. Pure apart from WebCrypto (present in browsers and in
 * Node.js ≥ 20, where test/console/sigv4.test.ts compares it with the AWS SDK's signer).
 */

export interface SigningKey {
  accessKeyId: string
  secretAccessKey: string
}

export interface SignInput {
  method: string
  /** `host[:port]` the request is sent to (the browser's `location.host`). */
  host: string
  /** The URI-encoded path the S3 handler sees, e.g. `/bucket/a%20b.txt`. */
  path: string
  /** Query parameters, not encoded. */
  query?: ReadonlyArray<readonly [string, string]>
  /** Extra headers to sign (lower-case names), e.g. `content-type`. */
  headers?: Readonly<Record<string, string>>
  /** Hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`. */
  payloadHash: string
  key: SigningKey
  region: string
  /** Signing time; default now. */
  date?: Date
}

export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD'
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

const enc = new TextEncoder()
const toHex = (b: ArrayBuffer): string => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, '0')).join('')

/** Hex SHA-256 of a string or bytes. */
export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  const bytes = typeof data === 'string' ? enc.encode(data) : data
  return toHex(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>))
}

async function hmac(key: Uint8Array | ArrayBuffer, data: string): Promise<ArrayBuffer> {
  const k = await crypto.subtle.importKey('raw', key as Uint8Array<ArrayBuffer>, { name: 'HMAC', hash: 'SHA-256' }, false, [
    'sign',
  ])
  return crypto.subtle.sign('HMAC', k, enc.encode(data))
}

/** RFC 3986 encoding as SigV4 wants it: unreserved characters kept, `/` kept unless asked. */
export function uriEncode(s: string, encodeSlash = true): string {
  let out = ''
  for (const b of enc.encode(s)) {
    const c = String.fromCharCode(b)
    if (/[A-Za-z0-9\-._~]/.test(c) || (c === '/' && !encodeSlash)) out += c
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

/** `/bucket/key with spaces` → the path a request carries and signs. */
export const objectPath = (bucket: string, key?: string): string =>
  `/${uriEncode(bucket)}${key === undefined ? '' : `/${uriEncode(key, false)}`}`

/** The sorted, encoded query string (also the canonical query of the request). */
export function canonicalQuery(query: ReadonlyArray<readonly [string, string]>): string {
  return query
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&')
}

/** `20260102T030405Z` and `20260102`. */
export function amzDate(d: Date): { long: string; short: string } {
  const long = d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '')
  return { long, short: long.slice(0, 8) }
}

async function signingKey(secret: string, short: string, region: string): Promise<ArrayBuffer> {
  const kDate = await hmac(enc.encode(`AWS4${secret}`), short)
  const kRegion = await hmac(kDate, region)
  const kService = await hmac(kRegion, 's3')
  return hmac(kService, 'aws4_request')
}

async function signature(
  input: SignInput,
  date: { long: string; short: string },
  headers: Record<string, string>,
  query: string,
): Promise<{ signature: string; signedHeaders: string; scope: string }> {
  const names = Object.keys(headers).sort()
  const signedHeaders = names.join(';')
  const canonicalHeaders = names.map((n) => `${n}:${(headers[n] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('')
  const canonical = [input.method, input.path, query, canonicalHeaders, signedHeaders, input.payloadHash].join('\n')
  const scope = `${date.short}/${input.region}/s3/aws4_request`
  const toSign = ['AWS4-HMAC-SHA256', date.long, scope, await sha256Hex(canonical)].join('\n')
  const key = await signingKey(input.key.secretAccessKey, date.short, input.region)
  return { signature: toHex(await hmac(key, toSign)), signedHeaders, scope }
}

/**
 * Signs a request in its headers. Returns the headers to send (`authorization`, `x-amz-date`,
 * `x-amz-content-sha256` and the given ones; not `host`, which the browser sets) and the query
 * string to append to the path.
 */
export async function signRequest(input: SignInput): Promise<{ headers: Record<string, string>; query: string }> {
  const date = amzDate(input.date ?? new Date())
  const headers: Record<string, string> = {
    ...input.headers,
    host: input.host,
    'x-amz-content-sha256': input.payloadHash,
    'x-amz-date': date.long,
  }
  const query = canonicalQuery(input.query ?? [])
  const s = await signature(input, date, headers, query)
  const { host: _host, ...send } = headers
  send.authorization = `AWS4-HMAC-SHA256 Credential=${input.key.accessKeyId}/${s.scope}, SignedHeaders=${s.signedHeaders}, Signature=${s.signature}`
  return { headers: send, query }
}

/** A presigned URL's query string (without `?`), valid `expiresSecs` seconds. */
export async function presignQuery(input: Omit<SignInput, 'payloadHash' | 'headers'> & { expiresSecs: number }): Promise<string> {
  const date = amzDate(input.date ?? new Date())
  const scope = `${date.short}/${input.region}/s3/aws4_request`
  const query: Array<readonly [string, string]> = [
    ...(input.query ?? []),
    ['X-Amz-Algorithm', 'AWS4-HMAC-SHA256'],
    ['X-Amz-Credential', `${input.key.accessKeyId}/${scope}`],
    ['X-Amz-Date', date.long],
    ['X-Amz-Expires', String(input.expiresSecs)],
    ['X-Amz-SignedHeaders', 'host'],
  ]
  const q = canonicalQuery(query)
  const s = await signature({ ...input, payloadHash: UNSIGNED_PAYLOAD }, date, { host: input.host }, q)
  return `${q}&X-Amz-Signature=${s.signature}`
}
