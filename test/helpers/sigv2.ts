/**
 * A small AWS Signature Version 2 signer for tests, written from AWS's "Signing and
 * Authenticating REST Requests" page independently of lib/api/common/signature/sigv2.ts, and
 * checked against that page's worked examples (test/api/common/signature/sigv2.test.ts).
 */
import { createHmac } from 'node:crypto'
import type { Credentials, SignedRequest, SigningTarget } from './s3.ts'

/** The sub-resources that go into the CanonicalizedResource (AWS's list plus the newer ones). */
const SUB_RESOURCES = [
  'acl',
  'cors',
  'delete',
  'lifecycle',
  'location',
  'logging',
  'notification',
  'partNumber',
  'policy',
  'requestPayment',
  'response-cache-control',
  'response-content-disposition',
  'response-content-encoding',
  'response-content-language',
  'response-content-type',
  'response-expires',
  'tagging',
  'torrent',
  'uploadId',
  'uploads',
  'versionId',
  'versioning',
  'versions',
  'website',
]

export interface V2Parts {
  method: string
  contentMd5?: string
  contentType?: string
  /** The Date line: the Date header, '' when x-amz-date is used, or the Expires value. */
  date: string
  /** Headers; only `x-amz-*` ones are used (any case, arrays for repeats). */
  headers?: Record<string, string | string[]>
  /** The path as sent, percent-encoded. */
  path: string
  /** Decoded query parameters. */
  query?: Record<string, string>
  /** The bucket, when the Host header names it (virtual-hosted style). */
  virtualHostBucket?: string
  /** Sub-resources signed beyond AWS's list (MinIO and s3cmd sign `encryption`, `retention`...). */
  extraSubResources?: readonly string[]
}

/** StringToSign = Verb \n MD5 \n Type \n Date \n CanonicalizedAmzHeaders CanonicalizedResource */
export function v2StringToSign(p: V2Parts): string {
  const amz = new Map<string, string[]>()
  for (const [k, v] of Object.entries(p.headers ?? {})) {
    const name = k.toLowerCase()
    if (!name.startsWith('x-amz-')) continue
    amz.set(name, [...(amz.get(name) ?? []), ...(Array.isArray(v) ? v : [v]).map((x) => x.trim())])
  }
  const amzBlock = [...amz.keys()]
    .sort()
    .map((k) => `${k}:${(amz.get(k) as string[]).join(',')}\n`)
    .join('')
  const subs = Object.entries(p.query ?? {})
    .filter(([k]) => SUB_RESOURCES.includes(k) || (p.extraSubResources ?? []).includes(k))
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => (v === '' ? k : `${k}=${v}`))
  const resource =
    (p.virtualHostBucket === undefined ? '' : `/${p.virtualHostBucket}`) + p.path + (subs.length > 0 ? `?${subs.join('&')}` : '')
  return `${p.method}\n${p.contentMd5 ?? ''}\n${p.contentType ?? ''}\n${p.date}\n${amzBlock}${resource}`
}

/** base64(HMAC-SHA1(secret, text)) */
export function v2Signature(secret: string, text: string): string {
  return createHmac('sha1', secret).update(text, 'utf8').digest('base64')
}

function queryString(query: Record<string, string>): string {
  return Object.entries(query)
    .map(([k, v]) => (v === '' ? encodeURIComponent(k) : `${encodeURIComponent(k)}=${encodeURIComponent(v)}`))
    .join('&')
}

export interface V2Request {
  method: string
  /** The already-encoded path. */
  path: string
  query?: Record<string, string>
  /** Extra headers (Content-Type, Content-MD5, x-amz-*). */
  headers?: Record<string, string>
  body?: string | Uint8Array
  credentials?: Credentials
  /** Request time (default now). */
  date?: Date
  /** Send the time as x-amz-date (signed with an empty Date line) instead of Date. */
  amzDate?: boolean
  /** Leave out both Date and x-amz-date. */
  noDate?: boolean
  /** Host header (default the endpoint's). */
  host?: string
  virtualHostBucket?: string
  /** Replace the Authorization header with this value. */
  authorization?: string
  extraSubResources?: readonly string[]
}

/** Builds a request signed with `Authorization: AWS <key>:<signature>`, for {@link sendRequest}. */
export function signV2Request(node: SigningTarget, r: V2Request): SignedRequest {
  const endpoint = new URL(node.endpoint)
  const credentials = r.credentials ?? node.s3Config.credentials
  const body = r.body === undefined ? new Uint8Array(0) : typeof r.body === 'string' ? Buffer.from(r.body) : r.body
  const when = (r.date ?? new Date()).toUTCString()
  const headers: Record<string, string> = { host: r.host ?? endpoint.host, ...r.headers }
  if (!r.noDate) {
    if (r.amzDate) headers['x-amz-date'] = when
    else headers.date = when
  }
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]))
  const toSign = v2StringToSign({
    method: r.method,
    contentMd5: lower['content-md5'],
    contentType: lower['content-type'],
    date: r.noDate || r.amzDate ? '' : when,
    headers,
    path: r.path,
    query: r.query,
    virtualHostBucket: r.virtualHostBucket,
    extraSubResources: r.extraSubResources,
  })
  headers.authorization = r.authorization ?? `AWS ${credentials.accessKeyId}:${v2Signature(credentials.secretAccessKey, toSign)}`
  const qs = queryString(r.query ?? {})
  return { url: new URL(`${endpoint.origin}${r.path}${qs === '' ? '' : `?${qs}`}`), method: r.method, headers, body }
}

export interface V2Presign {
  method: string
  path: string
  query?: Record<string, string>
  /** Epoch seconds. */
  expires: number
  credentials?: Credentials
  contentType?: string
}

/** A presigned V2 URL (`AWSAccessKeyId`, `Expires`, `Signature`). */
export function presignV2Url(node: SigningTarget, p: V2Presign): URL {
  const endpoint = new URL(node.endpoint)
  const credentials = p.credentials ?? node.s3Config.credentials
  const toSign = v2StringToSign({
    method: p.method,
    contentType: p.contentType,
    date: String(p.expires),
    path: p.path,
    query: p.query,
  })
  const query = {
    ...p.query,
    AWSAccessKeyId: credentials.accessKeyId,
    Expires: String(p.expires),
    Signature: v2Signature(credentials.secretAccessKey, toSign),
  }
  return new URL(`${endpoint.origin}${p.path}?${queryString(query)}`)
}
