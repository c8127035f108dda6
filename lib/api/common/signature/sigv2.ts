/**
 * AWS Signature Version 2 verification for the S3 API: the `Authorization: AWS <key>:<signature>`
 * header form and the presigned-URL form (`AWSAccessKeyId`, `Expires`, `Signature`). Garage has
 * no V2; AWS (in the regions opened before 2014), MinIO and Ceph still accept it, and older
 * clients (s3cmd with `signature_v2 = True`, boto 2, many appliances) only speak it.
 *
 * StringToSign = Verb \n Content-MD5 \n Content-Type \n Date \n CanonicalizedAmzHeaders CanonicalizedResource,
 * signed with HMAC-SHA1 of the secret key and base64-encoded.
 *
 * The Date line is ambiguous when `x-amz-date` is sent: AWS's text says to leave it empty (and
 * the `x-amz-date` line then appears among the amz headers, as boto 2 and s3cmd sign), AWS's own
 * worked examples put the `x-amz-date` value there and leave that header out of the amz headers,
 * and MinIO keeps the `Date` header's value. All three readings are accepted; each still covers
 * the request time.
 *
 * There is no payload hash in V2: a body is only checked through Content-MD5, when present.
 * @internal
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { ApiError } from '../errors.ts'
import { MAX_CLOCK_SKEW_MS, parseAmzDate, parseQuery, type QueryParam, type RequestHead } from './sigv4.ts'

/** The authorization scheme of a V2 `Authorization` header. @internal */
export const AWS_V2_SCHEME = 'AWS'

/**
 * Query parameters that are part of the CanonicalizedResource (AWS's list, completed with the
 * sub-resources that botocore, s3cmd and MinIO sign). Sorted by name when signed.
 * @internal
 */
export const V2_SUB_RESOURCES: ReadonlySet<string> = new Set([
  'accelerate',
  'acl',
  'analytics',
  'cors',
  'delete',
  'encryption',
  'inventory',
  'legal-hold',
  'lifecycle',
  'location',
  'logging',
  'metrics',
  'notification',
  'object-lock',
  'partNumber',
  'policy',
  'replication',
  'requestPayment',
  'response-cache-control',
  'response-content-disposition',
  'response-content-encoding',
  'response-content-language',
  'response-content-type',
  'response-expires',
  'restore',
  'retention',
  'select',
  'select-type',
  'tagging',
  'torrent',
  'uploadId',
  'uploads',
  'versionId',
  'versioning',
  'versions',
  'website',
])

/**
 * The sub-resources botocore signs (`HmacV1Auth.QSAOfInterest`), which boto3 and the AWS CLI
 * use with `signature_version = s3`. It differs from {@link V2_SUB_RESOURCES} (MinIO's and
 * s3cmd's list) on `encryption`, `legal-hold` and `retention` (not signed by botocore) and on
 * `storageClass` and `defaultObjectAcl` (signed by botocore only). A request naming one of these
 * is checked against both forms, so both families of clients work.
 * @internal
 */
export const BOTOCORE_V2_SUB_RESOURCES: ReadonlySet<string> = new Set([
  ...[...V2_SUB_RESOURCES].filter((k) => k !== 'encryption' && k !== 'legal-hold' && k !== 'retention'),
  'storageClass',
  'defaultObjectAcl',
])

/** The parts of an HTTP request that V2 covers. @internal */
export interface RequestHeadV2 extends RequestHead {
  /**
   * The request's headers with repeats kept apart (`IncomingMessage.headersDistinct`): V2 joins
   * repeated `x-amz-*` values with `,` where Node.js joins them with `', '`.
   */
  headersDistinct?: Record<string, string[] | undefined>
  /** The bucket named by the Host header (virtual-hosted style), which V2 puts in the resource. */
  virtualHostBucket?: string
}

/** @internal */
export interface VerifyV2Options {
  /** Current time in ms (default `Date.now()`). */
  now?: number
  /** The secret of an access key, or undefined if no such key exists (→ InvalidAccessKeyId). */
  lookupSecret(accessKeyId: string): string | undefined
}

/** A V2 request whose signature checked out. @internal */
export interface AuthenticatedV2 {
  accessKeyId: string
  presigned: boolean
}

/** `base64(HMAC-SHA1(secret, stringToSign))`. @internal */
export function signV2(secret: string, stringToSign: string): string {
  return createHmac('sha1', secret).update(stringToSign, 'utf8').digest('base64')
}

/**
 * Whether a request carries V2 credentials: presigned V2 parameters (and no V4 ones), or an
 * `Authorization` header in the `AWS <key>:<signature>` scheme.
 * @internal
 */
export function isSignatureV2(headers: IncomingHttpHeaders, params: readonly QueryParam[]): boolean {
  if (params.some((p) => p.key.toLowerCase() === 'x-amz-algorithm')) return false
  if (params.some((p) => p.key === 'AWSAccessKeyId' || p.key === 'Signature')) return true
  const authorization = headerValue(headers, 'authorization')
  return authorization !== undefined && /^AWS(\s|$)/.test(authorization.trim())
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v.join(',') : v
}

/** One header value as V2 signs it: folded lines unfolded, surrounding whitespace trimmed. */
function amzHeaderValue(v: string): string {
  return v.replace(/\s*\r?\n\s*/g, ' ').trim()
}

/**
 * The CanonicalizedAmzHeaders block: each `x-amz-*` header, name lowercased, repeats joined with
 * `,`, sorted by name, one `name:value\n` line each. `omit` leaves a header out.
 * @internal
 */
export function canonicalAmzHeaders(
  headers: IncomingHttpHeaders,
  headersDistinct?: Record<string, string[] | undefined>,
  omit?: string,
): string {
  const lines: [string, string][] = []
  for (const rawName of Object.keys(headersDistinct ?? headers)) {
    const name = rawName.toLowerCase()
    if (!name.startsWith('x-amz-') || name === omit) continue
    const raw = headersDistinct?.[rawName] ?? headers[rawName]
    if (raw === undefined) continue
    const values = Array.isArray(raw) ? raw : [raw]
    lines.push([name, values.map(amzHeaderValue).join(',')])
  }
  lines.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
  return lines.map(([n, v]) => `${n}:${v}\n`).join('')
}

/**
 * The CanonicalizedResource: `/<bucket>` for a virtual-hosted request, the path as received
 * (still percent-encoded), then the sub-resources present (decoded, sorted by name,
 * `name` or `name=value`, after `?` and joined with `&`).
 * @internal
 */
export function canonicalResourceV2(
  rawPath: string,
  params: readonly QueryParam[],
  virtualHostBucket?: string,
  subResources: ReadonlySet<string> = V2_SUB_RESOURCES,
): string {
  const path = rawPath === '' ? '/' : rawPath
  let out = virtualHostBucket === undefined ? path : `/${virtualHostBucket}${path}`
  const subs = params.filter((p) => subResources.has(p.key))
  subs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  if (subs.length > 0) out += `?${subs.map((p) => (p.value === '' ? p.key : `${p.key}=${p.value}`)).join('&')}`
  return out
}

/**
 * Assembles a V2 StringToSign. `date` is the Date line (the `Expires` value for presigned URLs).
 * @internal
 */
export function stringToSignV2(
  method: string,
  contentMd5: string,
  contentType: string,
  date: string,
  amzHeaders: string,
  resource: string,
): string {
  return `${method}\n${contentMd5}\n${contentType}\n${date}\n${amzHeaders}${resource}`
}

/**
 * Whether `provided` (base64, as a client sends it) is the V2 signature `expected`: strict
 * base64 of 20 bytes, compared in constant time.
 */
export function signatureMatchesV2(expected: Buffer, provided: string): boolean {
  // A presigned URL whose '+' was not escaped arrives with a space (base64 has none).
  const b64 = provided.trim().replace(/ /g, '+')
  if (!/^[A-Za-z0-9+/]{27}=$/.test(b64)) return false
  const bytes = Buffer.from(b64, 'base64')
  return bytes.length === expected.length && timingSafeEqual(bytes, expected)
}

/** Parses an HTTP date (RFC 1123 and the other forms `Date.parse` reads) or an ISO 8601 basic one. */
function parseHttpDate(s: string): number | undefined {
  const amz = parseAmzDate(s.trim())
  if (amz !== undefined) return amz
  // Date.parse accepts almost anything with digits in it; ask for at least a year and a time.
  if (!/\d{4}/.test(s) || !/\d{1,2}:\d{2}/.test(s)) return undefined
  const t = Date.parse(s)
  return Number.isNaN(t) ? undefined : t
}

function queryValue(params: readonly QueryParam[], name: string): string | undefined {
  let found: string | undefined
  for (const p of params) {
    if (p.key !== name) continue
    if (found !== undefined) {
      throw new ApiError('InvalidArgument', `Query parameter ${name} is given more than once`, {
        extra: { ArgumentName: name },
      })
    }
    found = p.value
  }
  return found
}

function invalidHeader(authorization: string): ApiError {
  return new ApiError('InvalidArgument', 'AWS authorization header is invalid.  Expected AwsAccessKeyId:signature', {
    extra: { ArgumentName: 'Authorization', ArgumentValue: authorization.slice(0, 200) },
  })
}

function unknownKey(accessKeyId: string): ApiError {
  return new ApiError('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.', {
    extra: { AWSAccessKeyId: accessKeyId },
  })
}

function mismatch(accessKeyId: string, toSign: string, provided: string): ApiError {
  return new ApiError(
    'SignatureDoesNotMatch',
    'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
    { extra: { AWSAccessKeyId: accessKeyId, StringToSign: toSign, SignatureProvided: provided.slice(0, 200) } },
  )
}

/**
 * Verifies a request's V2 signature (header or presigned form). Call it only for requests that
 * {@link isSignatureV2} recognises.
 * @throws ApiError InvalidArgument (malformed header), AccessDenied (no valid date, missing
 * presigned parameters, expired URL), RequestTimeTooSkewed, InvalidAccessKeyId,
 * SignatureDoesNotMatch
 * @example
 * const auth = verifyRequestV2(
 *   { method: 'GET', rawPath: '/photos/puppy.jpg', rawQuery: '', headers, virtualHostBucket: 'johnsmith' },
 *   { lookupSecret: (id) => keys.get(id)?.secret },
 * )
 * @internal
 */
export function verifyRequestV2(head: RequestHeadV2, opts: VerifyV2Options): AuthenticatedV2 {
  const now = opts.now ?? Date.now()
  const params = parseQuery(head.rawQuery)
  const method = head.method.toUpperCase()
  const contentMd5 = headerValue(head.headers, 'content-md5')?.trim() ?? ''
  const contentType = headerValue(head.headers, 'content-type')?.trim() ?? ''
  const resource = canonicalResourceV2(head.rawPath, params, head.virtualHostBucket)
  const amzHeaders = (omit?: string) => canonicalAmzHeaders(head.headers, head.headersDistinct, omit)

  const presigned = params.some((p) => p.key === 'AWSAccessKeyId' || p.key === 'Signature')
  let accessKeyId: string
  let signature: string
  const candidates: string[] = []
  if (presigned) {
    const id = queryValue(params, 'AWSAccessKeyId')
    const sig = queryValue(params, 'Signature')
    const expires = queryValue(params, 'Expires')
    if (id === undefined || sig === undefined || expires === undefined || id === '') {
      throw new ApiError(
        'AccessDenied',
        'Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters',
      )
    }
    if (!/^\d{1,12}$/.test(expires)) {
      throw new ApiError('AccessDenied', `Invalid date (should be seconds since epoch): ${expires.slice(0, 40)}`)
    }
    if (now > Number(expires) * 1000) {
      throw new ApiError('AccessDenied', 'Request has expired', {
        extra: { Expires: new Date(Number(expires) * 1000).toISOString(), ServerTime: new Date(now).toISOString() },
      })
    }
    accessKeyId = id
    signature = sig
    candidates.push(stringToSignV2(method, contentMd5, contentType, expires, amzHeaders(), resource))
  } else {
    const authorization = (headerValue(head.headers, 'authorization') ?? '').trim()
    const m = /^AWS\s+([^:\s]+):(\S*)$/.exec(authorization)
    if (m === null) throw invalidHeader(authorization)
    accessKeyId = m[1] as string
    signature = m[2] as string
    const amzDate = headerValue(head.headers, 'x-amz-date')?.trim()
    const date = headerValue(head.headers, 'date')?.trim()
    const time = parseHttpDate(amzDate ?? date ?? '')
    if (time === undefined) {
      throw new ApiError('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header')
    }
    if (Math.abs(now - time) > MAX_CLOCK_SKEW_MS) {
      throw new ApiError('RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.', {
        extra: {
          RequestTime: (amzDate ?? date) as string,
          ServerTime: new Date(now).toUTCString(),
          MaxAllowedSkewMilliseconds: String(MAX_CLOCK_SKEW_MS),
        },
      })
    }
    if (amzDate === undefined) {
      candidates.push(stringToSignV2(method, contentMd5, contentType, date as string, amzHeaders(), resource))
    } else {
      candidates.push(stringToSignV2(method, contentMd5, contentType, '', amzHeaders(), resource))
      candidates.push(stringToSignV2(method, contentMd5, contentType, amzDate, amzHeaders('x-amz-date'), resource))
      if (date !== undefined) candidates.push(stringToSignV2(method, contentMd5, contentType, date, amzHeaders(), resource))
    }
  }

  // botocore's canonical resource, where it differs (see BOTOCORE_V2_SUB_RESOURCES): the same
  // string to sign but for the resource line, which is always last.
  const botoResource = canonicalResourceV2(head.rawPath, params, head.virtualHostBucket, BOTOCORE_V2_SUB_RESOURCES)
  if (botoResource !== resource) {
    for (const c of [...candidates]) candidates.push(c.slice(0, c.length - resource.length) + botoResource)
  }
  const secret = opts.lookupSecret(accessKeyId)
  if (secret === undefined) throw unknownKey(accessKeyId)
  for (const toSign of candidates) {
    const expected = createHmac('sha1', secret).update(toSign, 'utf8').digest()
    if (signatureMatchesV2(expected, signature)) return { accessKeyId, presigned }
  }
  throw mismatch(accessKeyId, candidates[0] as string, signature)
}
