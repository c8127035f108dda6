/**
 * PostObject: browser uploads with an HTML form (port of garage_api_s3::post_object).
 *
 * The request is not signed in its headers: the form carries a base64 JSON policy and its SigV4
 * signature (HMAC of the base64 text with the key's signing key), or, for forms signed the V2
 * way, `AWSAccessKeyId` and `signature` (base64 HMAC-SHA1 of the base64 policy with the secret). The fields before the `file`
 * field are read (each at most 16 KiB); then the policy is checked: its expiration, and every
 * field but `policy`, `x-amz-signature`, `file` and `x-ignore-*` must be allowed by at least one
 * of its conditions (`eq`, `starts-with`), and every condition must be met. The file is then
 * streamed into the object store as a PutObject would be, within the policy's
 * `content-length-range` and at most 5 GiB. Fields after the file are ignored, as on AWS.
 */
import { createHash, createHmac } from 'node:crypto'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { Readable } from 'node:stream'
import type { BucketParams } from '../../model/bucket-table.ts'
import type { Garage } from '../../model/garage.ts'
import { toHex } from '../../util/data.ts'
import type { Logger } from '../../util/logger.ts'
import { ApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import type { ChecksumResult } from '../common/signature/body.ts'
import { signatureMatchesV2 } from '../common/signature/sigv2.ts'
import { AWS4_HMAC_SHA256, hmacSha256, parseAmzDate, signatureMatches, signingKey } from '../common/signature/sigv4.ts'
import type { S3Settings } from './context.ts'
import { type PostForm, readPostForm } from './form-data.ts'
import { checkKey, extractMetadataHeaders, saveStream } from './put.ts'
import { writeEncryption, writeEncryptionHeaders } from './sse-s3.ts'
import { newVersionKeep } from './versioning.ts'
import { renderXml } from './xml.ts'

/** Largest file a form may upload (as a single PutObject). */
export const MAX_POST_FILE_SIZE = 5 * 1024 * 1024 * 1024
/** Largest value of a field before the file. */
const MAX_FIELD_SIZE = 16 * 1024
/** Bytes after the file read (and ignored) before answering. */
const MAX_TRAILING_BYTES = 64 * 1024
/** At most this many fields before the file. */
const MAX_FIELDS = 1000

/** Fields that the policy need not mention. */
const EXEMPT_FIELDS = new Set(['policy', 'x-amz-signature', 'file'])
/** Fields of a form signed the V2 way that the policy need not mention either. */
const V2_EXEMPT_FIELDS = ['awsaccesskeyid', 'signature']

export interface PostObjectRequest {
  garage: Garage
  settings: S3Settings
  req: IncomingMessage
  log: Logger
  bucketName: string
  rawPath: string
}

/** One condition of a policy on a form field. */
type Operation = { op: 'eq' | 'starts-with'; value: string; text: string }

export interface PostPolicy {
  expiration: number
  /** Lowercase field name → conditions. */
  conditions: Map<string, Operation[]>
  contentLength: { min: number; max: number }
}

function policyDenied(message: string): ApiError {
  return new ApiError('AccessDenied', `Invalid according to Policy: ${message}`)
}

function invalidPolicy(message: string): ApiError {
  return new ApiError('InvalidPolicyDocument', `Invalid Policy: ${message}`)
}

/** Decodes and parses a base64 policy document. @internal */
export function parsePostPolicy(base64: string): PostPolicy {
  let doc: unknown
  try {
    doc = JSON.parse(Buffer.from(base64, 'base64').toString('utf8'))
  } catch (err) {
    throw new ApiError('InvalidPolicyDocument', 'Invalid Policy: Invalid JSON.', { cause: err })
  }
  const d = doc as { expiration?: unknown; conditions?: unknown } | null
  if (typeof d !== 'object' || d === null) throw invalidPolicy('the policy must be a JSON object')
  if (typeof d.expiration !== 'string') throw invalidPolicy('Policy missing expiration.')
  const expiration = Date.parse(d.expiration)
  if (!/^\d{4}-\d{2}-\d{2}T/.test(d.expiration) || Number.isNaN(expiration)) {
    throw invalidPolicy(`Invalid 'expiration' value: '${d.expiration.slice(0, 40)}'`)
  }
  if (!Array.isArray(d.conditions)) throw invalidPolicy('Policy missing conditions.')
  const conditions = new Map<string, Operation[]>()
  const add = (field: string, op: Operation) => {
    const name = field.toLowerCase()
    const list = conditions.get(name)
    if (list === undefined) conditions.set(name, [op])
    else list.push(op)
  }
  const contentLength = { min: 0, max: Number.MAX_SAFE_INTEGER }
  for (const c of d.conditions as unknown[]) {
    if (Array.isArray(c)) {
      const [op, field, value] = c as unknown[]
      if (c.length !== 3 || typeof op !== 'string') throw invalidPolicy(`Invalid condition: ${JSON.stringify(c)}`)
      const opName = op.toLowerCase()
      if (opName === 'content-length-range') {
        if (!Number.isSafeInteger(field) || !Number.isSafeInteger(value) || (field as number) < 0) {
          throw invalidPolicy(`Invalid content-length-range: ${JSON.stringify(c)}`)
        }
        contentLength.min = Math.max(contentLength.min, field as number)
        contentLength.max = Math.min(contentLength.max, value as number)
        continue
      }
      if ((opName !== 'eq' && opName !== 'starts-with') || typeof field !== 'string' || typeof value !== 'string') {
        throw invalidPolicy(`Invalid condition: ${JSON.stringify(c)}`)
      }
      if (!field.startsWith('$')) throw invalidPolicy(`Invalid condition: ${JSON.stringify(c)}`)
      add(field.slice(1), { op: opName, value, text: JSON.stringify(c) })
    } else if (typeof c === 'object' && c !== null) {
      const entries = Object.entries(c)
      const [entry] = entries
      if (entries.length !== 1 || entry === undefined || typeof entry[1] !== 'string') {
        throw invalidPolicy(`Invalid condition: ${JSON.stringify(c)}`)
      }
      add(entry[0], { op: 'eq', value: entry[1], text: JSON.stringify(['eq', `$${entry[0]}`, entry[1]]) })
    } else {
      throw invalidPolicy(`Invalid condition: ${JSON.stringify(c)}`)
    }
  }
  return { expiration, conditions, contentLength }
}

function holds(op: Operation, field: string, value: string): boolean {
  if (op.op === 'eq') return value === op.value
  // A Content-Type may list several types; each must match (as Garage and AWS do).
  if (field === 'content-type') return value.split(',').every((v) => v.trim().startsWith(op.value))
  return value.startsWith(op.value)
}

/**
 * Checks the form fields against the policy (the bucket against the request's bucket). Every
 * non-exempt field needs a condition, and every condition needs its field. @internal
 */
export function checkPostPolicy(policy: PostPolicy, fields: ReadonlyMap<string, string>, bucketName: string, now: number): void {
  if (now > policy.expiration) throw policyDenied('Policy expired.')
  const pending = new Map(policy.conditions)
  const bucketConds = pending.get('bucket')
  pending.delete('bucket')
  for (const op of bucketConds ?? []) {
    if (!holds(op, 'bucket', bucketName)) throw policyDenied(`Policy Condition failed: ${op.text}`)
  }
  for (const [name, value] of fields) {
    if (EXEMPT_FIELDS.has(name) || name.startsWith('x-ignore-')) continue
    if (name === 'bucket' && bucketConds !== undefined) continue
    const ops = pending.get(name)
    if (ops === undefined) throw policyDenied(`Extra input fields: ${name}`)
    pending.delete(name)
    for (const op of ops) if (!holds(op, name, value)) throw policyDenied(`Policy Condition failed: ${op.text}`)
  }
  const [missing] = pending.values()
  if (missing !== undefined && missing[0] !== undefined) throw policyDenied(`Policy Condition failed: ${missing[0].text}`)
}

function required(fields: ReadonlyMap<string, string>, name: string): string {
  const v = fields.get(name)
  if (v === undefined) throw new ApiError('InvalidArgument', `Bucket POST must contain a field named '${name}'.`)
  return v
}

/** Checks the policy's signature; returns the access key that signed it. */
async function verifyPolicySignature(r: PostObjectRequest, fields: ReadonlyMap<string, string>) {
  const credential = fields.get('x-amz-credential')
  if (credential === undefined && fields.has('awsaccesskeyid')) return verifyPolicySignatureV2(r, fields)
  if (credential === undefined) throw new ApiError('AccessDenied', 'Garage does not support anonymous access yet')
  const algorithm = required(fields, 'x-amz-algorithm')
  if (algorithm !== AWS4_HMAC_SHA256) {
    throw new ApiError('InvalidArgument', `Unsupported x-amz-algorithm '${algorithm.slice(0, 40)}': expected ${AWS4_HMAC_SHA256}`)
  }
  const policy = required(fields, 'policy')
  const signature = required(fields, 'x-amz-signature')
  const date = required(fields, 'x-amz-date')
  if (parseAmzDate(date) === undefined) throw new ApiError('InvalidArgument', `Invalid x-amz-date '${date.slice(0, 40)}'`)
  const parts = credential.split('/')
  if (parts.length !== 5 || parts[4] !== 'aws4_request' || (parts[0] as string) === '') {
    throw new ApiError('InvalidArgument', `Invalid x-amz-credential '${credential.slice(0, 100)}'`)
  }
  const [accessKeyId, day, region, service] = parts as [string, string, string, string, string]
  if (day !== date.slice(0, 8)) throw new ApiError('InvalidArgument', 'The credential date does not match x-amz-date')
  if (region !== r.settings.region) {
    throw new ApiError('AuthorizationHeaderMalformed', `The region '${region}' is wrong; expecting '${r.settings.region}'`, {
      extra: { Region: r.settings.region },
    })
  }
  if (service !== 's3') throw new ApiError('InvalidArgument', `Invalid credential service '${service}'`)
  const key = await formKey(r, accessKeyId)
  const expected = hmacSha256(signingKey(key.state.value.secret, day, region, 's3'), policy)
  if (!signatureMatches(expected, signature)) throw signatureMismatch()
  r.garage.access.checkKeyActive(key)
  return key
}

/**
 * Checks a form signed the Signature V2 way: `signature` is base64(HMAC-SHA1(secret, policy)),
 * the key is `AWSAccessKeyId`.
 */
async function verifyPolicySignatureV2(r: PostObjectRequest, fields: ReadonlyMap<string, string>) {
  const accessKeyId = required(fields, 'awsaccesskeyid')
  const policy = required(fields, 'policy')
  const signature = required(fields, 'signature')
  const key = await formKey(r, accessKeyId)
  const expected = createHmac('sha1', key.state.value.secret).update(policy, 'utf8').digest()
  if (!signatureMatchesV2(expected, signature)) throw signatureMismatch()
  r.garage.access.checkKeyActive(key)
  return key
}

/** The access key a form names (resolved with the model's policy), or InvalidAccessKeyId. */
async function formKey(r: PostObjectRequest, accessKeyId: string) {
  const key = await r.garage.access.resolveKey(accessKeyId)
  if (key === undefined) {
    throw new ApiError('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.', {
      extra: { AWSAccessKeyId: accessKeyId.slice(0, 200) },
    })
  }
  return key
}

function signatureMismatch(): ApiError {
  return new ApiError(
    'SignatureDoesNotMatch',
    'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
  )
}

/** Counts, hashes and limits the file's bytes. */
async function* limitedFile(
  content: AsyncIterable<Buffer>,
  range: { min: number; max: number },
  md5: ReturnType<typeof createHash>,
): AsyncGenerator<Buffer> {
  let size = 0
  const max = Math.min(range.max, MAX_POST_FILE_SIZE)
  for await (const chunk of content) {
    size += chunk.length
    if (size > max) {
      throw new ApiError('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size', {
        extra: { MaxSizeAllowed: String(max) },
      })
    }
    md5.update(chunk)
    yield chunk
  }
  if (size < range.min) {
    throw new ApiError('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed size', {
      extra: { ProposedSize: String(size), MinSizeAllowed: String(range.min) },
    })
  }
}

function fieldsAsHeaders(fields: ReadonlyMap<string, string>): IncomingHttpHeaders {
  const h: IncomingHttpHeaders = {}
  for (const [k, v] of fields) h[k] = v
  return h
}

/** `onBucket` receives the bucket's parameters once it is resolved (for CORS headers). */
export async function handlePostObject(
  r: PostObjectRequest,
  onBucket: (params: BucketParams) => void = () => {},
): Promise<ApiResponse> {
  const form = await readPostForm(r.req as AsyncIterable<Buffer>, r.req.headers['content-type'], {
    maxFieldSize: MAX_FIELD_SIZE,
    maxFields: MAX_FIELDS,
  })
  try {
    return await storePostedFile(r, form, onBucket)
  } catch (err) {
    // The rest of the body stays unread; the server closes the connection after answering.
    form.close()
    throw err
  }
}

async function storePostedFile(
  r: PostObjectRequest,
  form: PostForm,
  onBucket: (params: BucketParams) => void,
): Promise<ApiResponse> {
  const { garage, req } = r
  const { fields, filename } = form
  const rawKey = required(fields, 'key')
  // Without a file name, `${filename}` stays as it is (AWS's behaviour).
  // biome-ignore lint/suspicious/noTemplateCurlyInString: S3's literal ${filename} placeholder
  const key = filename === undefined ? rawKey : rawKey.replaceAll('${filename}', filename)
  checkKey(key)
  const apiKey = await verifyPolicySignature(r, fields)
  const { id: bucketId, params: bucketParams } = await garage.access.resolveBucket(r.bucketName, apiKey)
  onBucket(bucketParams)
  garage.access.checkBucketPermission(apiKey, bucketId, 'write', 'Operation is not allowed for this key.')

  const policy = parsePostPolicy(required(fields, 'policy'))
  const checked = new Map([...fields, ['key', key]])
  // A V2 form's credentials need no condition (AWS: AWSAccessKeyId and signature are exempt).
  if (!fields.has('x-amz-credential')) for (const f of V2_EXEMPT_FIELDS) checked.delete(f)
  checkPostPolicy(policy, checked, r.bucketName, Date.now())

  const headers = extractMetadataHeaders(fieldsAsHeaders(fields), fields.get('content-encoding'))
  // Encryption may be asked for in form fields too (x-amz-server-side-encryption,
  // x-amz-server-side-encryption-customer-*); otherwise the bucket's default applies.
  const encryption = writeEncryption(fieldsAsHeaders(fields), {
    bucketDefault: bucketParams.encryption.v,
    keyring: r.settings.sseKeyring,
  })
  const md5 = createHash('md5')
  let settle: { resolve: (v: ChecksumResult) => void; reject: (e: unknown) => void } | undefined
  const result = new Promise<ChecksumResult>((resolve, reject) => {
    settle = { resolve, reject }
  })
  // saveStream awaits `result` only once the file was read whole; an early failure reaches it
  // through the body instead.
  result.catch(() => {})
  const file = limitedFile(form.file, policy.contentLength, md5)
  const body = Readable.from(
    (async function* () {
      try {
        yield* file
        settle?.resolve({ md5: md5.digest(), checksums: {}, trailers: {} })
      } catch (err) {
        settle?.reject(err)
        throw err
      }
    })(),
    { objectMode: false },
  )
  const saved = await saveStream(garage, bucketId, key, headers, body, result, {
    quotas: bucketParams.quotas.v,
    encryption,
    // A versioned bucket keeps the version (object lock fields of forms are not read here).
    stamp: { fields: newVersionKeep(bucketParams), params: bucketParams },
  })
  // The fields after the file are not used, but reading them lets the connection be reused.
  await form.drain(MAX_TRAILING_BYTES)
  const etag = `"${saved.meta.etag}"`

  const redirect = fields.get('success_action_redirect') ?? fields.get('redirect')
  const target = redirect === undefined ? undefined : parseHttpUrl(redirect)
  if (target !== undefined) {
    target.searchParams.append('bucket', r.bucketName)
    target.searchParams.append('key', key)
    target.searchParams.append('etag', etag)
    return { status: 303, headers: { location: target.toString(), etag } }
  }
  const host = req.headers.host ?? 'localhost'
  const proto = req.headers['x-forwarded-proto']?.toString().split(',')[0]?.trim() || 'http'
  const base = r.rawPath.endsWith('/') ? r.rawPath : `${r.rawPath}/`
  const location = `${proto}://${host}${base}${key.split('/').map(encodeURIComponent).join('/')}`
  const out: Record<string, string> = { location, etag, 'x-amz-version-id': saved.versionIdText ?? toHex(saved.versionId) }
  Object.assign(out, writeEncryptionHeaders(encryption))
  switch (fields.get('success_action_status')) {
    case '200':
      return { status: 200, headers: out }
    case '201': {
      const xml = renderXml('PostResponse', { Location: location, Bucket: r.bucketName, Key: key, ETag: etag })
      return { status: 201, headers: { ...out, 'content-type': 'application/xml' }, body: xml }
    }
    default:
      return { status: 204, headers: out }
  }
}

function parseHttpUrl(s: string): URL | undefined {
  try {
    const u = new URL(s)
    return u.protocol === 'http:' || u.protocol === 'https:' ? u : undefined
  } catch {
    // Not a URL: AWS then answers as if no redirect had been asked for.
    return undefined
  }
}
