/**
 * The fuzzer's seeds: one valid request of every endpoint family (S3 object, multipart, listing,
 * bucket configuration, DeleteObjects, PostObject, aws-chunked bodies, presigned URLs, the
 * website endpoint, the admin API), as a logical request that mutators can change before it is
 * signed, and a `materialize` step that signs it (with @smithy/signature-v4 through
 * test/helpers/s3.ts, never our own signer) and lays it out as raw bytes.
 */
import { createHash, createHmac } from 'node:crypto'
import { encodeAwsChunked, type StreamingMode } from '../helpers/aws-chunked.ts'
import { crc32Base64, encodeKey, presignUrl, type SigningTarget, signRequest, uriEscape } from '../helpers/s3.ts'
import { int, pick } from '../helpers/random.ts'
import type { RawHttp } from '../helpers/raw-http.ts'

export type Port = 's3' | 'web' | 'admin'

export interface FuzzTarget extends SigningTarget {
  bucket: string
  host: string
  ports: Record<Port, number>
  adminToken: string
  metricsToken: string
  /** Multipart uploads open on the node, each with part 1 uploaded. */
  uploads: Array<{ key: string; uploadId: string; etag: string }>
  /** Keys known to exist (acknowledged writes), for reads and copies. */
  existing: string[]
}

/** How the request is authenticated once mutated. */
export type Auth =
  | { kind: 'header' }
  /** `x-amz-content-sha256: UNSIGNED-PAYLOAD` */
  | { kind: 'unsigned-payload' }
  | { kind: 'chunked'; mode: StreamingMode; chunkSizes: number[]; trailer?: { name: string; value: string } }
  | { kind: 'presign'; expiresIn: number }
  | { kind: 'none' }

/** A request before signing: every part can still be changed and the signature will cover it. */
export interface Logical {
  family: string
  port: Port
  method: string
  /** Already-encoded path (whatever bytes a mutator put there are sent as they are). */
  path: string
  query: Record<string, string | string[]>
  headers: Record<string, string>
  body: Buffer
  auth: Auth
}

const r32 = (r: () => number): string => int(r, 0x7fffffff).toString(36)

function s3(family: string, method: string, path: string, extra: Partial<Logical> = {}): Logical {
  return { family, port: 's3', method, path, query: {}, headers: {}, body: Buffer.alloc(0), auth: { kind: 'header' }, ...extra }
}

/** Small bodies with varied content (text, binary, empty). */
function payload(r: () => number): Buffer {
  const n = pick(r, [0, 1, 17, 100, 1000, 5000, 70_000])
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = r() < 0.7 ? 0x61 + int(r, 26) : int(r, 256)
  return b
}

const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('base64')
const md5Hex = (b: Uint8Array): string => createHash('md5').update(b).digest('hex')

const objectKey = (r: () => number, area: string): string =>
  pick(r, [`fz/${area}/${int(r, 8)}`, `fz/${area}/dir/${int(r, 4)}.txt`, `fz/${area}/é ü+&=?#${int(r, 3)}`, `fz/${area}//x`])

function existingKey(r: () => number, t: FuzzTarget): string {
  return t.existing.length === 0 || r() < 0.2 ? objectKey(r, 'put') : pick(r, t.existing)
}

function upload(r: () => number, t: FuzzTarget): { key: string; uploadId: string; etag: string } {
  return t.uploads.length === 0 ? { key: 'fz/mpu/none', uploadId: 'no-such-upload', etag: '"00"' } : pick(r, t.uploads)
}

export const CORS_XML = `<CORSConfiguration><CORSRule><AllowedOrigin>https://example.com</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod><AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3000</MaxAgeSeconds></CORSRule></CORSConfiguration>`
export const LIFECYCLE_XML = `<LifecycleConfiguration><Rule><ID>fz</ID><Filter><Prefix>fz/lc/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>30</Days></Expiration><AbortIncompleteMultipartUpload><DaysAfterInitiation>7</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule></LifecycleConfiguration>`
export const WEBSITE_XML = `<WebsiteConfiguration><IndexDocument><Suffix>index.html</Suffix></IndexDocument><ErrorDocument><Key>error.html</Key></ErrorDocument></WebsiteConfiguration>`

function deleteXml(r: () => number): string {
  const objs = Array.from({ length: 1 + int(r, 4) }, () => `<Object><Key>${objectKey(r, 'del')}</Key></Object>`)
  return `<Delete><Quiet>${r() < 0.5}</Quiet>${objs.join('')}</Delete>`.replaceAll('&', '&amp;')
}

function completeXml(u: { etag: string }, extraParts: number): string {
  const parts = [`<Part><PartNumber>1</PartNumber><ETag>${u.etag}</ETag></Part>`]
  for (let i = 0; i < extraParts; i++)
    parts.push(`<Part><PartNumber>${i + 2}</PartNumber><ETag>"${'0'.repeat(32)}"</ETag></Part>`)
  return `<CompleteMultipartUpload>${parts.join('')}</CompleteMultipartUpload>`
}

const hmac = (key: string | Buffer, data: string): Buffer => createHmac('sha256', key).update(data).digest()

/** A PostObject form with a policy signed for `t`'s key (the signature covers the policy only). */
export function postForm(t: FuzzTarget, r: () => number, key: string, file: Buffer): { body: Buffer; contentType: string } {
  const date = new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '')
  const day = date.slice(0, 8)
  const { accessKeyId, secretAccessKey } = t.s3Config.credentials
  const credential = `${accessKeyId}/${day}/${t.region}/s3/aws4_request`
  const conditions: unknown[] = [
    { bucket: t.bucket },
    ['starts-with', '$key', 'fz/'],
    { 'x-amz-credential': credential },
    ['eq', '$x-amz-algorithm', 'AWS4-HMAC-SHA256'],
    ['starts-with', '$x-amz-date', day],
    ['starts-with', '$Content-Type', ''],
    ['content-length-range', 0, 1_000_000],
  ]
  if (r() < 0.3) conditions.push({ success_action_status: '201' })
  const policy = Buffer.from(JSON.stringify({ expiration: new Date(Date.now() + 3_600_000).toISOString(), conditions })).toString(
    'base64',
  )
  const sk = hmac(hmac(hmac(hmac(`AWS4${secretAccessKey}`, day), t.region), 's3'), 'aws4_request')
  const boundary = `----fz${r32(r)}`
  const parts: Buffer[] = []
  const field = (name: string, value: string): void => {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`))
  }
  field('key', key)
  field('Content-Type', 'text/plain')
  if (conditions.some((c) => (c as Record<string, string>).success_action_status === '201')) field('success_action_status', '201')
  field('X-Amz-Credential', credential)
  field('X-Amz-Algorithm', 'AWS4-HMAC-SHA256')
  field('X-Amz-Date', date)
  field('Policy', policy)
  field('X-Amz-Signature', hmac(sk, policy).toString('hex'))
  parts.push(
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.txt"\r\nContent-Type: text/plain\r\n\r\n`,
    ),
    file,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  )
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` }
}

type Seed = (t: FuzzTarget, r: () => number) => Logical

/** One entry per endpoint family. */
export const SEEDS: Record<string, Seed> = {
  PutObject: (t, r) => {
    const body = payload(r)
    const headers: Record<string, string> = { 'content-type': pick(r, ['text/plain', 'application/octet-stream']) }
    if (r() < 0.4) headers['content-md5'] = md5(body)
    if (r() < 0.3) headers['x-amz-meta-fz'] = `v${int(r, 100)}`
    if (r() < 0.3) headers['x-amz-checksum-crc32'] = crc32Base64(body)
    return s3('PutObject', 'PUT', `/${t.bucket}/${encodeKey(objectKey(r, 'put'))}`, { headers, body })
  },
  PutObjectUnsignedPayload: (t, r) =>
    s3('PutObjectUnsignedPayload', 'PUT', `/${t.bucket}/${encodeKey(objectKey(r, 'put'))}`, {
      body: payload(r),
      auth: { kind: 'unsigned-payload' },
    }),
  GetObject: (t, r) => {
    const headers: Record<string, string> = {}
    const query: Record<string, string> = {}
    if (r() < 0.4) headers.range = pick(r, ['bytes=0-9', 'bytes=5-', 'bytes=-3', 'bytes=100000-'])
    if (r() < 0.2) headers['if-none-match'] = '"abc"'
    if (r() < 0.2) headers['if-modified-since'] = new Date(0).toUTCString()
    if (r() < 0.3) query['response-content-type'] = 'text/x-fuzz'
    if (r() < 0.2) query['response-content-disposition'] = 'attachment; filename="a.txt"'
    if (r() < 0.1) query.partNumber = '1'
    return s3('GetObject', 'GET', `/${t.bucket}/${encodeKey(existingKey(r, t))}`, { headers, query })
  },
  HeadObject: (t, r) => s3('HeadObject', 'HEAD', `/${t.bucket}/${encodeKey(existingKey(r, t))}`),
  DeleteObject: (t, r) => s3('DeleteObject', 'DELETE', `/${t.bucket}/${encodeKey(objectKey(r, 'del'))}`),
  CopyObject: (t, r) => {
    const headers: Record<string, string> = { 'x-amz-copy-source': `/${t.bucket}/${encodeKey(existingKey(r, t))}` }
    if (r() < 0.3) headers['x-amz-metadata-directive'] = 'REPLACE'
    if (r() < 0.2) headers['x-amz-copy-source-if-none-match'] = '"nope"'
    return s3('CopyObject', 'PUT', `/${t.bucket}/${encodeKey(objectKey(r, 'copy'))}`, { headers })
  },
  CreateMultipartUpload: (t, r) =>
    s3('CreateMultipartUpload', 'POST', `/${t.bucket}/${encodeKey(objectKey(r, 'mpu'))}`, { query: { uploads: '' } }),
  UploadPart: (t, r) => {
    const u = upload(r, t)
    return s3('UploadPart', 'PUT', `/${t.bucket}/${encodeKey(u.key)}`, {
      query: { partNumber: String(1 + int(r, 3)), uploadId: u.uploadId },
      body: payload(r),
    })
  },
  UploadPartCopy: (t, r) => {
    const u = upload(r, t)
    const headers: Record<string, string> = { 'x-amz-copy-source': `/${t.bucket}/${encodeKey(existingKey(r, t))}` }
    if (r() < 0.5) headers['x-amz-copy-source-range'] = pick(r, ['bytes=0-0', 'bytes=0-3', 'bytes=2-1'])
    return s3('UploadPartCopy', 'PUT', `/${t.bucket}/${encodeKey(u.key)}`, {
      query: { partNumber: String(2 + int(r, 2)), uploadId: u.uploadId },
      headers,
    })
  },
  CompleteMultipartUpload: (t, r) => {
    const u = upload(r, t)
    return s3('CompleteMultipartUpload', 'POST', `/${t.bucket}/${encodeKey(u.key)}`, {
      query: { uploadId: u.uploadId },
      body: Buffer.from(completeXml(u, int(r, 2))),
    })
  },
  AbortMultipartUpload: (t, r) => {
    const u = upload(r, t)
    return s3('AbortMultipartUpload', 'DELETE', `/${t.bucket}/${encodeKey(u.key)}`, { query: { uploadId: u.uploadId } })
  },
  ListParts: (t, r) => {
    const u = upload(r, t)
    const query: Record<string, string> = { uploadId: u.uploadId }
    if (r() < 0.5) query['max-parts'] = String(int(r, 5))
    if (r() < 0.3) query['part-number-marker'] = String(int(r, 3))
    return s3('ListParts', 'GET', `/${t.bucket}/${encodeKey(u.key)}`, { query })
  },
  ListObjects: (t, r) => {
    const query: Record<string, string> = {}
    if (r() < 0.6) query.prefix = pick(r, ['fz/', 'fz/put/', 'fz/put/dir/', 'no'])
    if (r() < 0.5) query.delimiter = '/'
    if (r() < 0.3) query.marker = 'fz/m'
    if (r() < 0.4) query['max-keys'] = String(int(r, 4))
    if (r() < 0.3) query['encoding-type'] = 'url'
    return s3('ListObjects', 'GET', `/${t.bucket}`, { query })
  },
  ListObjectsV2: (t, r) => {
    const query: Record<string, string> = { 'list-type': '2' }
    if (r() < 0.6) query.prefix = pick(r, ['fz/', 'fz/copy/', 'x'])
    if (r() < 0.5) query.delimiter = pick(r, ['/', 'dir'])
    if (r() < 0.3) query['start-after'] = 'fz/put/3'
    if (r() < 0.3) query['continuation-token'] = Buffer.from('fz/put/1').toString('base64')
    if (r() < 0.4) query['max-keys'] = String(int(r, 4))
    if (r() < 0.3) query['fetch-owner'] = 'true'
    if (r() < 0.3) query['encoding-type'] = 'url'
    return s3('ListObjectsV2', 'GET', `/${t.bucket}`, { query })
  },
  ListMultipartUploads: (t, r) => {
    const query: Record<string, string> = { uploads: '' }
    if (r() < 0.5) query.prefix = 'fz/mpu/'
    if (r() < 0.3) query.delimiter = '/'
    if (r() < 0.3) query['key-marker'] = 'fz/mpu/1'
    if (r() < 0.2) query['upload-id-marker'] = upload(r, t).uploadId
    if (r() < 0.4) query['max-uploads'] = String(int(r, 4))
    return s3('ListMultipartUploads', 'GET', `/${t.bucket}`, { query })
  },
  BucketQueries: (t, r) =>
    s3('BucketQueries', pick(r, ['GET', 'HEAD']), `/${t.bucket}`, {
      query: pick<Record<string, string>>(r, [
        {},
        { location: '' },
        { versioning: '' },
        { acl: '' },
        { cors: '' },
        { lifecycle: '' },
        { website: '' },
      ]),
    }),
  ListBuckets: () => s3('ListBuckets', 'GET', '/'),
  PutBucketCors: (t) => s3('PutBucketCors', 'PUT', `/${t.bucket}`, { query: { cors: '' }, body: Buffer.from(CORS_XML) }),
  PutBucketLifecycle: (t) =>
    s3('PutBucketLifecycle', 'PUT', `/${t.bucket}`, { query: { lifecycle: '' }, body: Buffer.from(LIFECYCLE_XML) }),
  PutBucketWebsite: (t) =>
    s3('PutBucketWebsite', 'PUT', `/${t.bucket}`, { query: { website: '' }, body: Buffer.from(WEBSITE_XML) }),
  DeleteBucketConfig: (t, r) =>
    s3('DeleteBucketConfig', 'DELETE', `/${t.bucket}`, {
      query: pick<Record<string, string>>(r, [{ cors: '' }, { lifecycle: '' }]),
    }),
  DeleteObjects: (t, r) => {
    const body = Buffer.from(deleteXml(r))
    return s3('DeleteObjects', 'POST', `/${t.bucket}`, { query: { delete: '' }, headers: { 'content-md5': md5(body) }, body })
  },
  PostObject: (t, r) => {
    const form = postForm(t, r, objectKey(r, 'post'), payload(r))
    return s3('PostObject', 'POST', `/${t.bucket}`, {
      headers: { 'content-type': form.contentType },
      body: form.body,
      auth: { kind: 'none' },
    })
  },
  AwsChunked: (t, r) => {
    const data = payload(r)
    const mode = pick(r, [
      'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
      'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
      'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
    ] as const)
    const trailer =
      mode === 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD' ? undefined : { name: 'x-amz-checksum-crc32', value: crc32Base64(data) }
    const headers: Record<string, string> = {
      'content-encoding': 'aws-chunked',
      'x-amz-decoded-content-length': String(data.length),
    }
    if (trailer !== undefined) headers['x-amz-trailer'] = trailer.name
    return s3('AwsChunked', 'PUT', `/${t.bucket}/${encodeKey(objectKey(r, 'chunked'))}`, {
      headers,
      body: data,
      auth: {
        kind: 'chunked',
        mode,
        chunkSizes: [1 + int(r, 40), 1 + int(r, 4000)],
        ...(trailer === undefined ? {} : { trailer }),
      },
    })
  },
  Presigned: (t, r) => {
    const put = r() < 0.4
    return s3(
      'Presigned',
      put ? 'PUT' : 'GET',
      `/${t.bucket}/${encodeKey(put ? objectKey(r, 'presigned') : existingKey(r, t))}`,
      {
        body: put ? payload(r) : Buffer.alloc(0),
        query: !put && r() < 0.3 ? { 'response-content-type': 'text/plain' } : {},
        auth: { kind: 'presign', expiresIn: pick(r, [60, 3600, 604800]) },
      },
    )
  },
  Website: (t, r) => ({
    family: 'Website',
    port: 'web',
    method: pick(r, ['GET', 'HEAD', 'OPTIONS']),
    path: pick(r, ['/', '/index.html', '/fz/', `/${encodeKey(existingKey(r, t))}`, '/missing']),
    query: {},
    headers: { host: pick(r, [t.bucket, `${t.bucket}.web.garage`]), ...(r() < 0.3 ? { origin: 'https://example.com' } : {}) },
    body: Buffer.alloc(0),
    auth: { kind: 'none' },
  }),
  Admin: (t, r) => {
    const admin = `Bearer ${t.adminToken}`
    const choices: Array<[string, string, Record<string, string>, string, string | undefined]> = [
      ['GET', '/health', {}, '', undefined],
      ['GET', '/metrics', {}, '', `Bearer ${t.metricsToken}`],
      ['GET', '/check', { domain: t.bucket }, '', undefined],
      ['GET', '/v2/GetClusterStatus', {}, '', admin],
      ['GET', '/v2/GetClusterHealth', {}, '', admin],
      ['GET', '/v2/ListBuckets', {}, '', admin],
      ['GET', '/v2/ListKeys', {}, '', admin],
      ['GET', '/v2/GetBucketInfo', { globalAlias: t.bucket }, '', admin],
      ['GET', '/v2/GetKeyInfo', { search: 'test' }, '', admin],
      ['GET', '/v2/GetNodeInfo', { node: 'self' }, '', admin],
      ['POST', '/v2/CreateBucket', {}, JSON.stringify({ globalAlias: `fz-admin-${int(r, 4)}` }), admin],
      ['POST', '/v2/CreateKey', {}, JSON.stringify({ name: 'fz-admin' }), admin],
      ['POST', '/v2/GetWorkerVariable', { node: 'self' }, JSON.stringify({ variable: null }), admin],
    ]
    const [method, path, query, body, authorization] = pick(r, choices)
    return {
      family: 'Admin',
      port: 'admin',
      method,
      path,
      query,
      headers: {
        ...(authorization === undefined ? {} : { authorization }),
        ...(body === '' ? {} : { 'content-type': 'application/json' }),
      },
      body: Buffer.from(body),
      auth: { kind: 'none' },
    }
  },
}

export const FAMILIES = Object.keys(SEEDS)

function queryString(query: Record<string, string | string[]>): string {
  return Object.entries(query)
    .flatMap(([k, vs]) =>
      (Array.isArray(vs) ? vs : [vs]).map((v) => (v === '' ? uriEscape(k) : `${uriEscape(k)}=${uriEscape(v)}`)),
    )
    .join('&')
}

/** Signs `l` for `t` (as its `auth` says) and lays it out as raw HTTP, framed whole. */
export async function materialize(t: FuzzTarget, l: Logical): Promise<RawHttp> {
  const hostHeader = `${t.host}:${t.ports[l.port]}`
  let target = `${l.path}${Object.keys(l.query).length === 0 ? '' : `?${queryString(l.query)}`}`
  let headers: Record<string, string> = { ...l.headers }
  let body = l.body
  const a = l.auth
  if (l.port === 's3' && (a.kind === 'header' || a.kind === 'unsigned-payload' || a.kind === 'chunked')) {
    const payloadHash = a.kind === 'unsigned-payload' ? 'UNSIGNED-PAYLOAD' : a.kind === 'chunked' ? a.mode : undefined
    const signed = await signRequest(t, {
      method: l.method,
      path: l.path,
      query: l.query,
      headers: { host: hostHeader, ...l.headers },
      body: a.kind === 'chunked' ? Buffer.alloc(0) : body,
      ...(payloadHash === undefined ? {} : { payloadHash }),
    })
    headers = { ...signed.headers }
    if (a.kind === 'chunked') {
      body = encodeAwsChunked(signed, t.s3Config.credentials.secretAccessKey, {
        mode: a.mode,
        data: l.body,
        chunkSizes: a.chunkSizes,
        ...(a.trailer === undefined ? {} : { trailer: a.trailer }),
      })
    }
  } else if (l.port === 's3' && a.kind === 'presign') {
    const url = await presignUrl(t, { method: l.method, path: l.path, query: flatQuery(l.query), expiresIn: a.expiresIn })
    target = `${l.path}${url.search}`
    headers = { host: hostHeader, ...l.headers }
  } else {
    headers = { host: hostHeader, ...l.headers }
  }
  const list: Array<[string, string]> = Object.entries(headers)
  if (body.length > 0 || l.method === 'PUT' || l.method === 'POST') list.push(['content-length', String(body.length)])
  list.push(['connection', 'close'])
  return { method: l.method, target, headers: list, body, framing: { kind: 'whole' } }
}

function flatQuery(q: Record<string, string | string[]>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(q)) out[k] = Array.isArray(v) ? (v[0] ?? '') : v
  return out
}

export { md5Hex }
