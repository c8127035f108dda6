/**
 * S3 request router: turns (method, bucket, key, query, headers) into one typed {@link Endpoint},
 * which `handler.ts` dispatches with an exhaustive `switch` on `kind`. Port of
 * garage_api_s3::router (`src/api/s3/router.rs`) and the bucket/key split of
 * garage_api_common::helpers.
 *
 * Pure: no I/O, no authentication and no bucket lookup. Parameters a handler reads from headers
 * (ranges, conditions, `response-*` overrides, `x-amz-*`) are left in the request.
 *
 * Differences from Garage, on purpose:
 * - The object key is the path after the bucket's own slash, without trimming further slashes, as
 *   AWS S3 does (`/bucket//a` names key `/a`; Garage trims it to `a`).
 * - An unknown method or method/subresource combination is `MethodNotAllowed` (405), as AWS
 *   answers, where Garage answers a generic 400.
 * - A PUT on a key carrying `uploadId` but no `partNumber` is refused instead of being taken for a
 *   plain PutObject that would overwrite the object.
 * - `list-type` must be `2`.
 * @module
 */
import { ApiError } from '../common/errors.ts'
import { authorityToHost, hostToBucket } from '../common/host.ts'

// ---------------------------------------------------------------------------------------------
// Endpoint types
// ---------------------------------------------------------------------------------------------

/** Endpoints whose only parameter is the bucket. */
type BucketOnlyKind =
  | 'CreateBucket'
  | 'DeleteBucket'
  | 'DeleteBucketCors'
  | 'DeleteBucketEncryption'
  | 'DeleteBucketLifecycle'
  | 'DeleteBucketOwnershipControls'
  | 'DeleteBucketPolicy'
  | 'DeleteBucketReplication'
  | 'DeleteBucketTagging'
  | 'DeleteBucketWebsite'
  | 'DeleteObjects'
  | 'DeletePublicAccessBlock'
  | 'GetBucketAccelerateConfiguration'
  | 'GetBucketAcl'
  | 'GetBucketCors'
  | 'GetBucketEncryption'
  | 'GetBucketLifecycleConfiguration'
  | 'GetBucketLocation'
  | 'GetBucketLogging'
  | 'GetBucketNotificationConfiguration'
  | 'GetBucketOwnershipControls'
  | 'GetBucketPolicy'
  | 'GetBucketPolicyStatus'
  | 'GetBucketReplication'
  | 'GetBucketRequestPayment'
  | 'GetBucketTagging'
  | 'GetBucketVersioning'
  | 'GetBucketWebsite'
  | 'GetObjectLockConfiguration'
  | 'GetPublicAccessBlock'
  | 'HeadBucket'
  | 'PostObject'
  | 'PutBucketAccelerateConfiguration'
  | 'PutBucketAcl'
  | 'PutBucketCors'
  | 'PutBucketEncryption'
  | 'PutBucketLifecycleConfiguration'
  | 'PutBucketLogging'
  | 'PutBucketNotificationConfiguration'
  | 'PutBucketOwnershipControls'
  | 'PutBucketPolicy'
  | 'PutBucketReplication'
  | 'PutBucketRequestPayment'
  | 'PutBucketTagging'
  | 'PutBucketVersioning'
  | 'PutBucketWebsite'
  | 'PutObjectLockConfiguration'
  | 'PutPublicAccessBlock'

/** Bucket configurations addressed by `?<config>&id=<id>`. */
type ConfigWithIdKind =
  | 'DeleteBucketAnalyticsConfiguration'
  | 'DeleteBucketIntelligentTieringConfiguration'
  | 'DeleteBucketInventoryConfiguration'
  | 'DeleteBucketMetricsConfiguration'
  | 'GetBucketAnalyticsConfiguration'
  | 'GetBucketIntelligentTieringConfiguration'
  | 'GetBucketInventoryConfiguration'
  | 'GetBucketMetricsConfiguration'
  | 'PutBucketAnalyticsConfiguration'
  | 'PutBucketIntelligentTieringConfiguration'
  | 'PutBucketInventoryConfiguration'
  | 'PutBucketMetricsConfiguration'

/** Listings of bucket configurations (`?<config>` without `id`). */
type ConfigListKind =
  | 'ListBucketAnalyticsConfigurations'
  | 'ListBucketIntelligentTieringConfigurations'
  | 'ListBucketInventoryConfigurations'
  | 'ListBucketMetricsConfigurations'

/** Object subresources that take an optional `versionId`. */
type VersionedObjectKind =
  | 'DeleteObject'
  | 'DeleteObjectTagging'
  | 'GetObjectAcl'
  | 'GetObjectAttributes'
  | 'GetObjectLegalHold'
  | 'GetObjectRetention'
  | 'GetObjectTagging'
  | 'PutObjectAcl'
  | 'PutObjectLegalHold'
  | 'PutObjectRetention'
  | 'PutObjectTagging'
  | 'RestoreObject'

/** Object endpoints whose only parameters are the bucket and the key. */
type ObjectOnlyKind = 'CopyObject' | 'CreateMultipartUpload' | 'GetObjectTorrent' | 'PutObject'

/** Flattens an intersection so editors show one object type. */
type Simplify<T> = { [P in keyof T]: T[P] }
/** One union member per kind in `K`, each with the parameters `P`, so `switch (ep.kind)` narrows. */
type Variant<K extends string, P> = { [k in K]: Simplify<{ readonly kind: k } & P> }[K]

interface OnBucket {
  readonly bucket: string
}
interface OnObject extends OnBucket {
  readonly key: string
}
interface OnVersion extends OnObject {
  readonly versionId?: string
}

/**
 * Every S3 operation the router recognises, implemented or not, with the parameters it takes from
 * the URL. Absent optional parameters are absent properties (never `undefined` values).
 * Integers are validated but not clamped (`maxKeys: 5000` stays 5000; handlers clamp).
 */
export type Endpoint =
  | { readonly kind: 'ListBuckets' }
  /** CORS preflight; authenticated by nobody, so `bucket` may be absent (request on `/`). */
  | { readonly kind: 'Options'; readonly bucket?: string; readonly key: string }
  | Variant<BucketOnlyKind, OnBucket>
  | Variant<ConfigWithIdKind, OnBucket & { readonly id: string }>
  | Variant<ConfigListKind, OnBucket & { readonly continuationToken?: string }>
  | Variant<VersionedObjectKind, OnVersion>
  | Variant<ObjectOnlyKind, OnObject>
  | {
      readonly kind: 'ListObjects'
      readonly bucket: string
      readonly delimiter?: string
      readonly encodingType?: string
      readonly marker?: string
      readonly maxKeys?: number
      readonly prefix?: string
    }
  | {
      readonly kind: 'ListObjectsV2'
      readonly bucket: string
      readonly continuationToken?: string
      readonly delimiter?: string
      readonly encodingType?: string
      readonly fetchOwner?: boolean
      readonly maxKeys?: number
      readonly prefix?: string
      readonly startAfter?: string
    }
  | {
      readonly kind: 'ListObjectVersions'
      readonly bucket: string
      readonly delimiter?: string
      readonly encodingType?: string
      readonly keyMarker?: string
      readonly maxKeys?: number
      readonly prefix?: string
      readonly versionIdMarker?: string
    }
  | {
      readonly kind: 'ListMultipartUploads'
      readonly bucket: string
      readonly delimiter?: string
      readonly encodingType?: string
      readonly keyMarker?: string
      readonly maxUploads?: number
      readonly prefix?: string
      readonly uploadIdMarker?: string
    }
  | Variant<'GetObject' | 'HeadObject', OnVersion & { readonly partNumber?: number }>
  | {
      readonly kind: 'ListParts'
      readonly bucket: string
      readonly key: string
      readonly uploadId: string
      readonly maxParts?: number
      readonly partNumberMarker?: number
    }
  | Variant<'UploadPart' | 'UploadPartCopy', OnObject & { readonly partNumber: number; readonly uploadId: string }>
  | Variant<'AbortMultipartUpload' | 'CompleteMultipartUpload', OnObject & { readonly uploadId: string }>
  | {
      readonly kind: 'SelectObjectContent'
      readonly bucket: string
      readonly key: string
      /** Always `2` in practice; not checked, as in Garage. */
      readonly selectType: string
    }

/** The name of an S3 operation (`'GetObject'`, `'ListObjectsV2'`, …). */
export type EndpointKind = Endpoint['kind']

/** The endpoint variant for one kind, for handler signatures: `EndpointOf<'GetObject'>`. */
export type EndpointOf<K extends EndpointKind> = Extract<Endpoint, { readonly kind: K }>

// ---------------------------------------------------------------------------------------------
// Bucket and key
// ---------------------------------------------------------------------------------------------

/**
 * Splits a request into bucket and object key. With `rootDomain` set and a `Host` that is a
 * subdomain of it, the request is virtual-hosted style (`bucket.s3.garage.tld/key`): the bucket
 * comes from the host and the whole path is the key. Otherwise it is path style
 * (`s3.garage.tld/bucket/key`): leading slashes are skipped and the first segment is the bucket.
 *
 * The key is percent-decoded (`+` stays a plus: this is a path, not a form). `rawPath` is the path
 * as sent, without the query string. `bucket` is absent for `/` (ListBuckets).
 *
 * @example
 * parseBucketAndKey({ host: 'localhost:3900', rawPath: '/photos/2024/a%20b.jpg' })
 * // { bucket: 'photos', key: '2024/a b.jpg' }
 * parseBucketAndKey({ host: 'photos.s3.garage.tld', rawPath: '/a.jpg', rootDomain: '.s3.garage.tld' })
 * // { bucket: 'photos', key: 'a.jpg' }
 * @throws {ApiError} `InvalidArgument` for a malformed percent-encoding, `InvalidRequest` for a
 *   malformed `Host`.
 * @internal
 */
export function parseBucketAndKey(opts: { host: string | undefined; rawPath: string; rootDomain?: string }): {
  bucket?: string
  key: string
} {
  const q = opts.rawPath.indexOf('?')
  const path = q < 0 ? opts.rawPath : opts.rawPath.slice(0, q)

  if (opts.host !== undefined && opts.host.length > 0 && opts.rootDomain !== undefined) {
    const vhostBucket = hostToBucket(authorityToHost(opts.host), opts.rootDomain)
    if (vhostBucket !== undefined) {
      return { bucket: vhostBucket, key: decodeKey(path.startsWith('/') ? path.slice(1) : path) }
    }
  }

  const rest = path.replace(/^\/+/, '')
  if (rest.length === 0) return { key: '' }
  const slash = rest.indexOf('/')
  if (slash < 0) return { bucket: rest, key: '' }
  return { bucket: rest.slice(0, slash), key: decodeKey(rest.slice(slash + 1)) }
}

/** The object key of a path; a path that does not decode (`%ZZ`, not UTF-8) is InvalidURI, as AWS answers. */
function decodeKey(raw: string): string {
  try {
    return decodeURIComponent(raw)
  } catch (err) {
    throw new ApiError('InvalidURI', "Couldn't parse the specified URI.", { cause: err })
  }
}

// ---------------------------------------------------------------------------------------------
// Query parameters
// ---------------------------------------------------------------------------------------------

/** Subresource flags (`?acl`, `?uploads`, …); at most one per request. */
const KEYWORDS = new Set([
  'accelerate',
  'acl',
  'analytics',
  'attributes',
  'cors',
  'delete',
  'encryption',
  'intelligent-tiering',
  'inventory',
  'legal-hold',
  'lifecycle',
  'location',
  'logging',
  'metrics',
  'notification',
  'object-lock',
  'ownershipControls',
  'policy',
  'policyStatus',
  'publicAccessBlock',
  'replication',
  'requestPayment',
  'restore',
  'retention',
  'select',
  'tagging',
  'torrent',
  'uploads',
  'versioning',
  'versions',
  'website',
] as const)
type Keyword = typeof KEYWORDS extends Set<infer T> ? T : never

/** Query parameters the router reads; each may appear once. Empty values count as absent. */
const FIELDS = new Set([
  'continuation-token',
  'delimiter',
  'encoding-type',
  'fetch-owner',
  'id',
  'key-marker',
  'list-type',
  'marker',
  'max-keys',
  'max-parts',
  'max-uploads',
  'partNumber',
  'part-number-marker',
  'prefix',
  'select-type',
  'start-after',
  'uploadId',
  'upload-id-marker',
  'versionId',
  'version-id-marker',
] as const)
type Field = typeof FIELDS extends Set<infer T> ? T : never

const isKeyword = (k: string): k is Keyword => (KEYWORDS as Set<string>).has(k)
const isField = (k: string): k is Field => (FIELDS as Set<string>).has(k)

interface ParsedQuery {
  readonly keyword: Keyword | ''
  readonly fields: ReadonlyMap<Field, string>
}

function parseQuery(query: URLSearchParams): ParsedQuery {
  let keyword: Keyword | '' = ''
  const fields = new Map<Field, string>()
  for (const [k, v] of query) {
    if (isKeyword(k)) {
      if (keyword !== '') {
        throw new ApiError('InvalidArgument', `Multiple subresources: '${keyword}' and '${k}'`)
      }
      keyword = k
    } else if (isField(k) && v.length > 0) {
      if (fields.has(k)) throw new ApiError('InvalidArgument', `Query parameter repeated: '${k}'`)
      fields.set(k, v)
    }
    // Anything else (response-*, X-Amz-*, x-id, …) is for the handler or the signature check.
  }
  return { keyword, fields }
}

const UNSIGNED_INT = /^[0-9]+$/

/** What a routing rule sees: the bucket, the key and typed accessors for the query. */
interface Ctx {
  readonly bucket: string
  readonly key: string
  has(name: Field): boolean
  hasHeader(name: string): boolean
  opt(name: Field): string | undefined
  req(name: Field): string
  optInt(name: Field): number | undefined
  int(name: Field): number
  optBool(name: Field): boolean | undefined
}

type Headers = Readonly<Record<string, string | string[] | undefined>>

function makeCtx(bucket: string, key: string, q: ParsedQuery, headers: Headers): Ctx {
  const opt = (name: Field): string | undefined => q.fields.get(name)
  const req = (name: Field): string => {
    const v = q.fields.get(name)
    if (v === undefined) throw new ApiError('InvalidArgument', `Missing query parameter '${name}'`)
    return v
  }
  const toInt = (name: Field, v: string): number => {
    const n = Number(v)
    if (!UNSIGNED_INT.test(v) || !Number.isSafeInteger(n)) {
      throw new ApiError('InvalidArgument', `Query parameter '${name}' must be a non-negative integer`)
    }
    return n
  }
  return {
    bucket,
    key,
    has: (name) => q.fields.has(name),
    hasHeader: (name) => headers[name] !== undefined,
    opt,
    req,
    optInt: (name) => {
      const v = opt(name)
      return v === undefined ? undefined : toInt(name, v)
    },
    int: (name) => toInt(name, req(name)),
    optBool: (name) => {
      const v = opt(name)
      if (v === undefined) return undefined
      if (v === 'true') return true
      if (v === 'false') return false
      throw new ApiError('InvalidArgument', `Query parameter '${name}' must be 'true' or 'false'`)
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Routing tables
// ---------------------------------------------------------------------------------------------

/** One row of a routing table: the subresource, an extra condition, and the endpoint it builds. */
interface Rule {
  readonly keyword: Keyword | ''
  readonly when?: (c: Ctx) => boolean
  readonly build: (c: Ctx) => Endpoint
}

interface MethodRules {
  /** Rules for requests naming an object key. */
  readonly object: readonly Rule[]
  /** Rules for requests on the bucket itself (empty key). */
  readonly bucket: readonly Rule[]
}

const COPY_SOURCE = 'x-amz-copy-source'

const GET: MethodRules = {
  object: [
    {
      keyword: '',
      when: (c) => c.has('uploadId'),
      build: (c) => ({
        kind: 'ListParts',
        bucket: c.bucket,
        key: c.key,
        uploadId: c.req('uploadId'),
        maxParts: c.optInt('max-parts'),
        partNumberMarker: c.optInt('part-number-marker'),
      }),
    },
    {
      keyword: '',
      build: (c) => ({
        kind: 'GetObject',
        bucket: c.bucket,
        key: c.key,
        partNumber: c.optInt('partNumber'),
        versionId: c.opt('versionId'),
      }),
    },
    { keyword: 'acl', build: (c) => ({ kind: 'GetObjectAcl', bucket: c.bucket, key: c.key, versionId: c.opt('versionId') }) },
    {
      keyword: 'attributes',
      build: (c) => ({ kind: 'GetObjectAttributes', bucket: c.bucket, key: c.key, versionId: c.opt('versionId') }),
    },
    {
      keyword: 'legal-hold',
      build: (c) => ({ kind: 'GetObjectLegalHold', bucket: c.bucket, key: c.key, versionId: c.opt('versionId') }),
    },
    {
      keyword: 'retention',
      build: (c) => ({ kind: 'GetObjectRetention', bucket: c.bucket, key: c.key, versionId: c.opt('versionId') }),
    },
    {
      keyword: 'tagging',
      build: (c) => ({ kind: 'GetObjectTagging', bucket: c.bucket, key: c.key, versionId: c.opt('versionId') }),
    },
    { keyword: 'torrent', build: (c) => ({ kind: 'GetObjectTorrent', bucket: c.bucket, key: c.key }) },
  ],
  bucket: [
    {
      keyword: '',
      when: (c) => c.has('list-type'),
      build: (c) => {
        if (c.req('list-type') !== '2') throw new ApiError('InvalidArgument', "Query parameter 'list-type' must be 2")
        return {
          kind: 'ListObjectsV2',
          bucket: c.bucket,
          continuationToken: c.opt('continuation-token'),
          delimiter: c.opt('delimiter'),
          encodingType: c.opt('encoding-type'),
          fetchOwner: c.optBool('fetch-owner'),
          maxKeys: c.optInt('max-keys'),
          prefix: c.opt('prefix'),
          startAfter: c.opt('start-after'),
        }
      },
    },
    {
      keyword: '',
      build: (c) => ({
        kind: 'ListObjects',
        bucket: c.bucket,
        delimiter: c.opt('delimiter'),
        encodingType: c.opt('encoding-type'),
        marker: c.opt('marker'),
        maxKeys: c.optInt('max-keys'),
        prefix: c.opt('prefix'),
      }),
    },
    { keyword: 'accelerate', build: (c) => ({ kind: 'GetBucketAccelerateConfiguration', bucket: c.bucket }) },
    { keyword: 'acl', build: (c) => ({ kind: 'GetBucketAcl', bucket: c.bucket }) },
    {
      keyword: 'analytics',
      when: (c) => c.has('id'),
      build: (c) => ({ kind: 'GetBucketAnalyticsConfiguration', bucket: c.bucket, id: c.req('id') }),
    },
    {
      keyword: 'analytics',
      build: (c) => ({
        kind: 'ListBucketAnalyticsConfigurations',
        bucket: c.bucket,
        continuationToken: c.opt('continuation-token'),
      }),
    },
    { keyword: 'cors', build: (c) => ({ kind: 'GetBucketCors', bucket: c.bucket }) },
    { keyword: 'encryption', build: (c) => ({ kind: 'GetBucketEncryption', bucket: c.bucket }) },
    {
      keyword: 'intelligent-tiering',
      when: (c) => c.has('id'),
      build: (c) => ({ kind: 'GetBucketIntelligentTieringConfiguration', bucket: c.bucket, id: c.req('id') }),
    },
    {
      keyword: 'intelligent-tiering',
      build: (c) => ({
        kind: 'ListBucketIntelligentTieringConfigurations',
        bucket: c.bucket,
        continuationToken: c.opt('continuation-token'),
      }),
    },
    {
      keyword: 'inventory',
      when: (c) => c.has('id'),
      build: (c) => ({ kind: 'GetBucketInventoryConfiguration', bucket: c.bucket, id: c.req('id') }),
    },
    {
      keyword: 'inventory',
      build: (c) => ({
        kind: 'ListBucketInventoryConfigurations',
        bucket: c.bucket,
        continuationToken: c.opt('continuation-token'),
      }),
    },
    { keyword: 'lifecycle', build: (c) => ({ kind: 'GetBucketLifecycleConfiguration', bucket: c.bucket }) },
    { keyword: 'location', build: (c) => ({ kind: 'GetBucketLocation', bucket: c.bucket }) },
    { keyword: 'logging', build: (c) => ({ kind: 'GetBucketLogging', bucket: c.bucket }) },
    {
      keyword: 'metrics',
      when: (c) => c.has('id'),
      build: (c) => ({ kind: 'GetBucketMetricsConfiguration', bucket: c.bucket, id: c.req('id') }),
    },
    {
      keyword: 'metrics',
      build: (c) => ({
        kind: 'ListBucketMetricsConfigurations',
        bucket: c.bucket,
        continuationToken: c.opt('continuation-token'),
      }),
    },
    { keyword: 'notification', build: (c) => ({ kind: 'GetBucketNotificationConfiguration', bucket: c.bucket }) },
    { keyword: 'object-lock', build: (c) => ({ kind: 'GetObjectLockConfiguration', bucket: c.bucket }) },
    { keyword: 'ownershipControls', build: (c) => ({ kind: 'GetBucketOwnershipControls', bucket: c.bucket }) },
    { keyword: 'policy', build: (c) => ({ kind: 'GetBucketPolicy', bucket: c.bucket }) },
    { keyword: 'policyStatus', build: (c) => ({ kind: 'GetBucketPolicyStatus', bucket: c.bucket }) },
    { keyword: 'publicAccessBlock', build: (c) => ({ kind: 'GetPublicAccessBlock', bucket: c.bucket }) },
    { keyword: 'replication', build: (c) => ({ kind: 'GetBucketReplication', bucket: c.bucket }) },
    { keyword: 'requestPayment', build: (c) => ({ kind: 'GetBucketRequestPayment', bucket: c.bucket }) },
    { keyword: 'tagging', build: (c) => ({ kind: 'GetBucketTagging', bucket: c.bucket }) },
    {
      keyword: 'uploads',
      build: (c) => ({
        kind: 'ListMultipartUploads',
        bucket: c.bucket,
        delimiter: c.opt('delimiter'),
        encodingType: c.opt('encoding-type'),
        keyMarker: c.opt('key-marker'),
        maxUploads: c.optInt('max-uploads'),
        prefix: c.opt('prefix'),
        uploadIdMarker: c.opt('upload-id-marker'),
      }),
    },
    { keyword: 'versioning', build: (c) => ({ kind: 'GetBucketVersioning', bucket: c.bucket }) },
    {
      keyword: 'versions',
      build: (c) => ({
        kind: 'ListObjectVersions',
        bucket: c.bucket,
        delimiter: c.opt('delimiter'),
        encodingType: c.opt('encoding-type'),
        keyMarker: c.opt('key-marker'),
        maxKeys: c.optInt('max-keys'),
        prefix: c.opt('prefix'),
        versionIdMarker: c.opt('version-id-marker'),
      }),
    },
    { keyword: 'website', build: (c) => ({ kind: 'GetBucketWebsite', bucket: c.bucket }) },
  ],
}

const HEAD: MethodRules = {
  object: [
    {
      keyword: '',
      build: (c) => ({
        kind: 'HeadObject',
        bucket: c.bucket,
        key: c.key,
        partNumber: c.optInt('partNumber'),
        versionId: c.opt('versionId'),
      }),
    },
  ],
  bucket: [{ keyword: '', build: (c) => ({ kind: 'HeadBucket', bucket: c.bucket }) }],
}

const POST: MethodRules = {
  object: [
    {
      keyword: '',
      when: (c) => c.has('uploadId'),
      build: (c) => ({ kind: 'CompleteMultipartUpload', bucket: c.bucket, key: c.key, uploadId: c.req('uploadId') }),
    },
    {
      keyword: 'restore',
      build: (c) => ({ kind: 'RestoreObject', bucket: c.bucket, key: c.key, versionId: c.opt('versionId') }),
    },
    {
      keyword: 'select',
      build: (c) => ({ kind: 'SelectObjectContent', bucket: c.bucket, key: c.key, selectType: c.req('select-type') }),
    },
    { keyword: 'uploads', build: (c) => ({ kind: 'CreateMultipartUpload', bucket: c.bucket, key: c.key }) },
  ],
  bucket: [
    { keyword: '', build: (c) => ({ kind: 'PostObject', bucket: c.bucket }) },
    { keyword: 'delete', build: (c) => ({ kind: 'DeleteObjects', bucket: c.bucket }) },
  ],
}

const isPartUpload = (c: Ctx): boolean => c.has('partNumber') || c.has('uploadId')

const PUT: MethodRules = {
  object: [
    {
      keyword: '',
      when: (c) => isPartUpload(c) && c.hasHeader(COPY_SOURCE),
      build: (c) => ({
        kind: 'UploadPartCopy',
        bucket: c.bucket,
        key: c.key,
        partNumber: c.int('partNumber'),
        uploadId: c.req('uploadId'),
      }),
    },
    { keyword: '', when: (c) => c.hasHeader(COPY_SOURCE), build: (c) => ({ kind: 'CopyObject', bucket: c.bucket, key: c.key }) },
    {
      keyword: '',
      when: isPartUpload,
      build: (c) => ({
        kind: 'UploadPart',
        bucket: c.bucket,
        key: c.key,
        partNumber: c.int('partNumber'),
        uploadId: c.req('uploadId'),
      }),
    },
    { keyword: '', build: (c) => ({ kind: 'PutObject', bucket: c.bucket, key: c.key }) },
    { keyword: 'acl', build: (c) => ({ kind: 'PutObjectAcl', bucket: c.bucket, key: c.key, versionId: c.opt('versionId') }) },
    {
      keyword: 'legal-hold',
      build: (c) => ({ kind: 'PutObjectLegalHold', bucket: c.bucket, key: c.key, versionId: c.opt('versionId') }),
    },
    {
      keyword: 'retention',
      build: (c) => ({ kind: 'PutObjectRetention', bucket: c.bucket, key: c.key, versionId: c.opt('versionId') }),
    },
    {
      keyword: 'tagging',
      build: (c) => ({ kind: 'PutObjectTagging', bucket: c.bucket, key: c.key, versionId: c.opt('versionId') }),
    },
  ],
  bucket: [
    { keyword: '', build: (c) => ({ kind: 'CreateBucket', bucket: c.bucket }) },
    { keyword: 'accelerate', build: (c) => ({ kind: 'PutBucketAccelerateConfiguration', bucket: c.bucket }) },
    { keyword: 'acl', build: (c) => ({ kind: 'PutBucketAcl', bucket: c.bucket }) },
    {
      keyword: 'analytics',
      build: (c) => ({ kind: 'PutBucketAnalyticsConfiguration', bucket: c.bucket, id: c.req('id') }),
    },
    { keyword: 'cors', build: (c) => ({ kind: 'PutBucketCors', bucket: c.bucket }) },
    { keyword: 'encryption', build: (c) => ({ kind: 'PutBucketEncryption', bucket: c.bucket }) },
    {
      keyword: 'intelligent-tiering',
      build: (c) => ({ kind: 'PutBucketIntelligentTieringConfiguration', bucket: c.bucket, id: c.req('id') }),
    },
    {
      keyword: 'inventory',
      build: (c) => ({ kind: 'PutBucketInventoryConfiguration', bucket: c.bucket, id: c.req('id') }),
    },
    { keyword: 'lifecycle', build: (c) => ({ kind: 'PutBucketLifecycleConfiguration', bucket: c.bucket }) },
    { keyword: 'logging', build: (c) => ({ kind: 'PutBucketLogging', bucket: c.bucket }) },
    { keyword: 'metrics', build: (c) => ({ kind: 'PutBucketMetricsConfiguration', bucket: c.bucket, id: c.req('id') }) },
    { keyword: 'notification', build: (c) => ({ kind: 'PutBucketNotificationConfiguration', bucket: c.bucket }) },
    { keyword: 'object-lock', build: (c) => ({ kind: 'PutObjectLockConfiguration', bucket: c.bucket }) },
    { keyword: 'ownershipControls', build: (c) => ({ kind: 'PutBucketOwnershipControls', bucket: c.bucket }) },
    { keyword: 'policy', build: (c) => ({ kind: 'PutBucketPolicy', bucket: c.bucket }) },
    { keyword: 'publicAccessBlock', build: (c) => ({ kind: 'PutPublicAccessBlock', bucket: c.bucket }) },
    { keyword: 'replication', build: (c) => ({ kind: 'PutBucketReplication', bucket: c.bucket }) },
    { keyword: 'requestPayment', build: (c) => ({ kind: 'PutBucketRequestPayment', bucket: c.bucket }) },
    { keyword: 'tagging', build: (c) => ({ kind: 'PutBucketTagging', bucket: c.bucket }) },
    { keyword: 'versioning', build: (c) => ({ kind: 'PutBucketVersioning', bucket: c.bucket }) },
    { keyword: 'website', build: (c) => ({ kind: 'PutBucketWebsite', bucket: c.bucket }) },
  ],
}

const DELETE: MethodRules = {
  object: [
    {
      keyword: '',
      when: (c) => c.has('uploadId'),
      build: (c) => ({ kind: 'AbortMultipartUpload', bucket: c.bucket, key: c.key, uploadId: c.req('uploadId') }),
    },
    { keyword: '', build: (c) => ({ kind: 'DeleteObject', bucket: c.bucket, key: c.key, versionId: c.opt('versionId') }) },
    {
      keyword: 'tagging',
      build: (c) => ({ kind: 'DeleteObjectTagging', bucket: c.bucket, key: c.key, versionId: c.opt('versionId') }),
    },
  ],
  bucket: [
    { keyword: '', build: (c) => ({ kind: 'DeleteBucket', bucket: c.bucket }) },
    {
      keyword: 'analytics',
      build: (c) => ({ kind: 'DeleteBucketAnalyticsConfiguration', bucket: c.bucket, id: c.req('id') }),
    },
    { keyword: 'cors', build: (c) => ({ kind: 'DeleteBucketCors', bucket: c.bucket }) },
    { keyword: 'encryption', build: (c) => ({ kind: 'DeleteBucketEncryption', bucket: c.bucket }) },
    {
      keyword: 'intelligent-tiering',
      build: (c) => ({ kind: 'DeleteBucketIntelligentTieringConfiguration', bucket: c.bucket, id: c.req('id') }),
    },
    {
      keyword: 'inventory',
      build: (c) => ({ kind: 'DeleteBucketInventoryConfiguration', bucket: c.bucket, id: c.req('id') }),
    },
    { keyword: 'lifecycle', build: (c) => ({ kind: 'DeleteBucketLifecycle', bucket: c.bucket }) },
    {
      keyword: 'metrics',
      build: (c) => ({ kind: 'DeleteBucketMetricsConfiguration', bucket: c.bucket, id: c.req('id') }),
    },
    { keyword: 'ownershipControls', build: (c) => ({ kind: 'DeleteBucketOwnershipControls', bucket: c.bucket }) },
    { keyword: 'policy', build: (c) => ({ kind: 'DeleteBucketPolicy', bucket: c.bucket }) },
    { keyword: 'publicAccessBlock', build: (c) => ({ kind: 'DeletePublicAccessBlock', bucket: c.bucket }) },
    { keyword: 'replication', build: (c) => ({ kind: 'DeleteBucketReplication', bucket: c.bucket }) },
    { keyword: 'tagging', build: (c) => ({ kind: 'DeleteBucketTagging', bucket: c.bucket }) },
    { keyword: 'website', build: (c) => ({ kind: 'DeleteBucketWebsite', bucket: c.bucket }) },
  ],
}

const RULES: Readonly<Record<string, MethodRules>> = { GET, HEAD, POST, PUT, DELETE }

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/**
 * Determines the S3 operation of a request whose bucket and key come from
 * {@link parseBucketAndKey}. `headers` is Node's `IncomingHttpHeaders` (lowercase names); only
 * `x-amz-copy-source` is looked at, to tell CopyObject and UploadPartCopy apart.
 *
 * @example
 * parseEndpoint({ method: 'GET', bucket: 'b', key: '', query: new URLSearchParams('list-type=2&max-keys=10'), headers: {} })
 * // { kind: 'ListObjectsV2', bucket: 'b', maxKeys: 10 }
 * @throws {ApiError} `MethodNotAllowed` for an unknown method or method/subresource combination;
 *   `InvalidArgument` for a missing, repeated or malformed parameter or two subresources at once.
 * @internal
 */
export function parseEndpoint(req: {
  method: string
  bucket?: string
  key: string
  query: URLSearchParams
  headers: Headers
}): Endpoint {
  const { method, bucket, key } = req
  if (method === 'OPTIONS') {
    return bucket === undefined ? { kind: 'Options', key } : { kind: 'Options', bucket, key }
  }
  if (bucket === undefined) {
    if (key !== '') throw new ApiError('InvalidRequest', 'An object key requires a bucket')
    if (method === 'GET') return { kind: 'ListBuckets' }
    throw new ApiError('MethodNotAllowed', `Method ${method} is not allowed on the service`)
  }

  const rules = Object.hasOwn(RULES, method) ? RULES[method] : undefined
  if (rules === undefined) throw new ApiError('MethodNotAllowed', `Unknown method ${method}`)

  const query = parseQuery(req.query)
  const ctx = makeCtx(bucket, key, query, req.headers)
  const candidates = key === '' ? rules.bucket : rules.object
  for (const rule of candidates) {
    if (rule.keyword === query.keyword && (rule.when === undefined || rule.when(ctx))) {
      return withoutUndefined(rule.build(ctx))
    }
  }
  const target = key === '' ? 'a bucket' : 'an object'
  const sub = query.keyword === '' ? '' : ` with subresource '${query.keyword}'`
  throw new ApiError('MethodNotAllowed', `Method ${method} is not allowed on ${target}${sub}`)
}

function withoutUndefined<T extends object>(o: T): T {
  const rec = o as Record<string, unknown>
  for (const k of Object.keys(rec)) if (rec[k] === undefined) delete rec[k]
  return o
}

/**
 * The permission an access key needs on the bucket. `'none'` means no bucket permission: a valid
 * key is enough (ListBuckets, CreateBucket) or no authentication happens at all (Options, the CORS
 * preflight). Port of `Endpoint::authorization_type`.
 */
export type Authorization = 'none' | 'read' | 'write' | 'owner'

/**
 * Garage's rule: reads (every Get/Head/List, and SelectObjectContent) need `read`; DeleteBucket
 * and the website and CORS configurations need `owner`; the rest needs `write`. Here the other
 * bucket-configuration writes (ACL, policy, tagging, …; all answered NotImplemented) also need
 * `owner`, while versioning and lifecycle stay `write`. Typed as a record so a new kind fails
 * to compile until it is classified.
 */
const AUTHORIZATION: { readonly [K in EndpointKind]: Authorization } = {
  ListBuckets: 'none',
  CreateBucket: 'none',
  Options: 'none',

  GetBucketAccelerateConfiguration: 'read',
  GetBucketAcl: 'read',
  GetBucketAnalyticsConfiguration: 'read',
  GetBucketEncryption: 'read',
  GetBucketIntelligentTieringConfiguration: 'read',
  GetBucketInventoryConfiguration: 'read',
  GetBucketLifecycleConfiguration: 'read',
  GetBucketLocation: 'read',
  GetBucketLogging: 'read',
  GetBucketMetricsConfiguration: 'read',
  GetBucketNotificationConfiguration: 'read',
  GetBucketOwnershipControls: 'read',
  GetBucketPolicyStatus: 'read',
  GetBucketReplication: 'read',
  GetBucketRequestPayment: 'read',
  GetBucketTagging: 'read',
  GetBucketVersioning: 'read',
  GetObject: 'read',
  GetObjectAcl: 'read',
  GetObjectAttributes: 'read',
  GetObjectLegalHold: 'read',
  GetObjectLockConfiguration: 'read',
  GetObjectRetention: 'read',
  GetObjectTagging: 'read',
  GetObjectTorrent: 'read',
  GetPublicAccessBlock: 'read',
  HeadBucket: 'read',
  HeadObject: 'read',
  ListBucketAnalyticsConfigurations: 'read',
  ListBucketIntelligentTieringConfigurations: 'read',
  ListBucketInventoryConfigurations: 'read',
  ListBucketMetricsConfigurations: 'read',
  ListMultipartUploads: 'read',
  ListObjects: 'read',
  ListObjectsV2: 'read',
  ListObjectVersions: 'read',
  ListParts: 'read',
  SelectObjectContent: 'read',

  DeleteBucket: 'owner',
  GetBucketWebsite: 'owner',
  PutBucketWebsite: 'owner',
  DeleteBucketWebsite: 'owner',
  GetBucketCors: 'owner',
  PutBucketCors: 'owner',
  DeleteBucketCors: 'owner',
  PutBucketAccelerateConfiguration: 'owner',
  PutBucketAcl: 'owner',
  PutBucketAnalyticsConfiguration: 'owner',
  DeleteBucketAnalyticsConfiguration: 'owner',
  PutBucketEncryption: 'owner',
  DeleteBucketEncryption: 'owner',
  PutBucketIntelligentTieringConfiguration: 'owner',
  DeleteBucketIntelligentTieringConfiguration: 'owner',
  PutBucketInventoryConfiguration: 'owner',
  DeleteBucketInventoryConfiguration: 'owner',
  PutBucketLogging: 'owner',
  PutBucketMetricsConfiguration: 'owner',
  DeleteBucketMetricsConfiguration: 'owner',
  PutBucketNotificationConfiguration: 'owner',
  PutBucketOwnershipControls: 'owner',
  DeleteBucketOwnershipControls: 'owner',
  GetBucketPolicy: 'owner',
  PutBucketPolicy: 'owner',
  DeleteBucketPolicy: 'owner',
  PutBucketReplication: 'owner',
  DeleteBucketReplication: 'owner',
  PutBucketRequestPayment: 'owner',
  PutBucketTagging: 'owner',
  DeleteBucketTagging: 'owner',
  PutObjectLockConfiguration: 'owner',
  PutPublicAccessBlock: 'owner',
  DeletePublicAccessBlock: 'owner',

  PutBucketLifecycleConfiguration: 'write',
  DeleteBucketLifecycle: 'write',
  PutBucketVersioning: 'write',
  PutObject: 'write',
  CopyObject: 'write',
  PostObject: 'write',
  DeleteObject: 'write',
  DeleteObjects: 'write',
  CreateMultipartUpload: 'write',
  UploadPart: 'write',
  UploadPartCopy: 'write',
  CompleteMultipartUpload: 'write',
  AbortMultipartUpload: 'write',
  PutObjectAcl: 'write',
  PutObjectLegalHold: 'write',
  PutObjectRetention: 'write',
  PutObjectTagging: 'write',
  DeleteObjectTagging: 'write',
  RestoreObject: 'write',
}

/** Every endpoint kind the router can produce, for metrics and exhaustiveness tests. */
export const ENDPOINT_KINDS: readonly EndpointKind[] = Object.freeze(Object.keys(AUTHORIZATION) as EndpointKind[])

/**
 * The permission `ep` requires on its bucket. CopyObject and UploadPartCopy need `write` here;
 * the handler separately checks `read` on the copy source.
 *
 * @example
 * authorizationType({ kind: 'DeleteBucket', bucket: 'b' }) // 'owner'
 */
export function authorizationType(ep: Endpoint): Authorization {
  return AUTHORIZATION[ep.kind]
}

/** The operation name used in metrics and logs (Garage's `Endpoint::name`). */
export function endpointName(ep: Endpoint): EndpointKind {
  return ep.kind
}

/** The bucket the endpoint addresses, or `undefined` for ListBuckets and an Options on `/`. */
export function endpointBucket(ep: Endpoint): string | undefined {
  return 'bucket' in ep ? ep.bucket : undefined
}

/** The object key the endpoint addresses, or `undefined` for bucket-level endpoints. */
export function endpointKey(ep: Endpoint): string | undefined {
  return 'key' in ep && ep.kind !== 'Options' ? ep.key : undefined
}
