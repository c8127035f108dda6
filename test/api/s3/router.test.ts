import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ApiError, type ApiErrorCode } from '../../../lib/api/common/errors.ts'
import {
  type Authorization,
  authorizationType,
  ENDPOINT_KINDS,
  type Endpoint,
  type EndpointKind,
  endpointBucket,
  endpointKey,
  endpointName,
  parseBucketAndKey,
  parseEndpoint,
} from '../../../lib/api/s3/router.ts'

const ROOT = '.s3.garage.tld'
const BUCKET = 'my-bucket'

type Headers = Record<string, string>

/** Routes `target` (path plus query) as the HTTP server will: split, then parse. */
function route(
  method: string,
  target: string,
  opts: { headers?: Headers; host?: string | undefined; rootDomain?: string } = {},
): Endpoint {
  const q = target.indexOf('?')
  const rawPath = q < 0 ? target : target.slice(0, q)
  const query = new URLSearchParams(q < 0 ? '' : target.slice(q + 1))
  const host = 'host' in opts ? opts.host : 'localhost:3900'
  const { bucket, key } = parseBucketAndKey({ host, rawPath, rootDomain: opts.rootDomain ?? ROOT })
  return parseEndpoint({ method, bucket, key, query, headers: opts.headers ?? {} })
}

/** Routes `target` (relative to the bucket) in both path style and virtual-hosted style. */
function routeBothStyles(method: string, target: string, headers: Headers = {}): [Endpoint, Endpoint] {
  const pathStyle = route(method, `/${BUCKET}${target}`, { headers })
  const vhostStyle = route(method, target, { headers, host: `${BUCKET}${ROOT}:3900` })
  return [pathStyle, vhostStyle]
}

function assertApiError(fn: () => unknown, code: ApiErrorCode): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ApiError, `expected an ApiError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    return true
  })
}

// [method, target relative to the bucket, expected endpoint without `bucket`, request headers]
type Case = readonly [string, string, Record<string, unknown> & { kind: EndpointKind }, Headers?]

const COPY = { 'x-amz-copy-source': '/src-bucket/src-key' }

// Mostly the examples of the AWS documentation, as in Garage's router tests.
const CASES: readonly Case[] = [
  // --- multipart uploads
  ['POST', '/example-object?uploads', { kind: 'CreateMultipartUpload', key: 'example-object' }],
  [
    'PUT',
    '/my-movie.m2ts?partNumber=1&uploadId=VCVsb2Fk',
    { kind: 'UploadPart', key: 'my-movie.m2ts', partNumber: 1, uploadId: 'VCVsb2Fk' },
  ],
  ['PUT', '/Key+?partNumber=2&uploadId=UploadId', { kind: 'UploadPart', key: 'Key+', partNumber: 2, uploadId: 'UploadId' }],
  [
    'PUT',
    '/Key+?partNumber=2&uploadId=UploadId',
    { kind: 'UploadPartCopy', key: 'Key+', partNumber: 2, uploadId: 'UploadId' },
    COPY,
  ],
  ['POST', '/example-object?uploadId=AAAsb2Fk', { kind: 'CompleteMultipartUpload', key: 'example-object', uploadId: 'AAAsb2Fk' }],
  ['DELETE', '/example-object?uploadId=VXBsb2Fk', { kind: 'AbortMultipartUpload', key: 'example-object', uploadId: 'VXBsb2Fk' }],
  [
    'GET',
    '/example-object?uploadId=XXBsb2Fk&max-parts=2&part-number-marker=1',
    { kind: 'ListParts', key: 'example-object', uploadId: 'XXBsb2Fk', maxParts: 2, partNumberMarker: 1 },
  ],
  ['GET', '/Key+?uploadId=UploadId', { kind: 'ListParts', key: 'Key+', uploadId: 'UploadId' }],
  ['GET', '/?uploads', { kind: 'ListMultipartUploads' }],
  ['GET', '/?uploads&max-uploads=3', { kind: 'ListMultipartUploads', maxUploads: 3 }],
  [
    'GET',
    '/?uploads&delimiter=D&encoding-type=url&key-marker=KeyMarker&max-uploads=1&prefix=Prefix&upload-id-marker=UploadIdMarker',
    {
      kind: 'ListMultipartUploads',
      delimiter: 'D',
      encodingType: 'url',
      keyMarker: 'KeyMarker',
      maxUploads: 1,
      prefix: 'Prefix',
      uploadIdMarker: 'UploadIdMarker',
    },
  ],

  // --- objects
  ['GET', '/my-image.jpg', { kind: 'GetObject', key: 'my-image.jpg' }],
  [
    'GET',
    '/myObject?versionId=3/L4kqtJlcpXroDTDmpUMLUo',
    { kind: 'GetObject', key: 'myObject', versionId: '3/L4kqtJlcpXroDTDmpUMLUo' },
  ],
  [
    'GET',
    '/Key+?partNumber=1&response-cache-control=No-cache&response-content-disposition=attachment%3B%20filename%3Dtesting.txt&versionId=VersionId',
    { kind: 'GetObject', key: 'Key+', partNumber: 1, versionId: 'VersionId' },
  ],
  ['HEAD', '/my-image.jpg', { kind: 'HeadObject', key: 'my-image.jpg' }],
  ['HEAD', '/Key+?partNumber=3&versionId=VersionId', { kind: 'HeadObject', key: 'Key+', partNumber: 3, versionId: 'VersionId' }],
  ['PUT', '/my-image.jpg', { kind: 'PutObject', key: 'my-image.jpg' }],
  ['PUT', '/Key+', { kind: 'CopyObject', key: 'Key+' }, COPY],
  ['DELETE', '/my-second-image.jpg', { kind: 'DeleteObject', key: 'my-second-image.jpg' }],
  ['DELETE', '/Key+?versionId=VersionId', { kind: 'DeleteObject', key: 'Key+', versionId: 'VersionId' }],
  ['POST', '/?delete', { kind: 'DeleteObjects' }],
  ['POST', '/', { kind: 'PostObject' }],
  ['GET', '/my-image.jpg?acl', { kind: 'GetObjectAcl', key: 'my-image.jpg' }],
  ['GET', '/my-image.jpg?versionId=3/L4kq&acl', { kind: 'GetObjectAcl', key: 'my-image.jpg', versionId: '3/L4kq' }],
  ['PUT', '/my-image.jpg?acl&versionId=3HL4+kq', { kind: 'PutObjectAcl', key: 'my-image.jpg', versionId: '3HL4 kq' }],
  ['GET', '/Key+?attributes&versionId=V', { kind: 'GetObjectAttributes', key: 'Key+', versionId: 'V' }],
  ['GET', '/Key+?legal-hold&versionId=V', { kind: 'GetObjectLegalHold', key: 'Key+', versionId: 'V' }],
  ['PUT', '/Key+?legal-hold', { kind: 'PutObjectLegalHold', key: 'Key+' }],
  ['GET', '/Key+?retention&versionId=V', { kind: 'GetObjectRetention', key: 'Key+', versionId: 'V' }],
  ['PUT', '/Key+?retention', { kind: 'PutObjectRetention', key: 'Key+' }],
  ['GET', '/example-object?tagging', { kind: 'GetObjectTagging', key: 'example-object' }],
  ['PUT', '/object-key?tagging&versionId=V', { kind: 'PutObjectTagging', key: 'object-key', versionId: 'V' }],
  ['DELETE', '/exampleobject?tagging', { kind: 'DeleteObjectTagging', key: 'exampleobject' }],
  ['GET', '/quotes/Nelson?torrent', { kind: 'GetObjectTorrent', key: 'quotes/Nelson' }],
  ['POST', '/object-one.csv?restore', { kind: 'RestoreObject', key: 'object-one.csv' }],
  ['POST', '/Key+?restore&versionId=V', { kind: 'RestoreObject', key: 'Key+', versionId: 'V' }],
  ['POST', '/Key+?select&select-type=2', { kind: 'SelectObjectContent', key: 'Key+', selectType: '2' }],

  // --- buckets
  ['PUT', '/', { kind: 'CreateBucket' }],
  ['PUT', '', { kind: 'CreateBucket' }],
  ['HEAD', '/', { kind: 'HeadBucket' }],
  ['DELETE', '/', { kind: 'DeleteBucket' }],
  ['GET', '/', { kind: 'ListObjects' }],
  ['GET', '', { kind: 'ListObjects' }],
  ['GET', '/?prefix=N&marker=Ned&max-keys=40', { kind: 'ListObjects', prefix: 'N', marker: 'Ned', maxKeys: 40 }],
  [
    'GET',
    '/?delimiter=D&encoding-type=url&marker=Marker&max-keys=1&prefix=Prefix',
    { kind: 'ListObjects', delimiter: 'D', encodingType: 'url', marker: 'Marker', maxKeys: 1, prefix: 'Prefix' },
  ],
  ['GET', '/?list-type=2', { kind: 'ListObjectsV2' }],
  ['GET', '/?list-type=2&prefix=photos/2006/&delimiter=/', { kind: 'ListObjectsV2', prefix: 'photos/2006/', delimiter: '/' }],
  [
    'GET',
    '/?list-type=2&continuation-token=1ueGcxLPRx1Tr%2FXYExHnhbYLgveDs2J%2Fwm36Hy4vbOwM%3D&delimiter=%2F&encoding-type=url&fetch-owner=true&max-keys=5000&prefix=Prefix&start-after=StartAfter',
    {
      kind: 'ListObjectsV2',
      continuationToken: '1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=',
      delimiter: '/',
      encodingType: 'url',
      fetchOwner: true,
      maxKeys: 5000,
      prefix: 'Prefix',
      startAfter: 'StartAfter',
    },
  ],
  ['GET', '/?list-type=2&fetch-owner=false&max-keys=0', { kind: 'ListObjectsV2', fetchOwner: false, maxKeys: 0 }],
  ['GET', '/?versions', { kind: 'ListObjectVersions' }],
  [
    'GET',
    '/?versions&delimiter=D&encoding-type=url&key-marker=KeyMarker&max-keys=2&prefix=Prefix&version-id-marker=VersionIdMarker',
    {
      kind: 'ListObjectVersions',
      delimiter: 'D',
      encodingType: 'url',
      keyMarker: 'KeyMarker',
      maxKeys: 2,
      prefix: 'Prefix',
      versionIdMarker: 'VersionIdMarker',
    },
  ],
  ['GET', '/?location', { kind: 'GetBucketLocation' }],
  ['GET', '/?versioning', { kind: 'GetBucketVersioning' }],
  ['PUT', '/?versioning', { kind: 'PutBucketVersioning' }],
  ['GET', '/?website', { kind: 'GetBucketWebsite' }],
  ['PUT', '/?website', { kind: 'PutBucketWebsite' }],
  ['DELETE', '/?website', { kind: 'DeleteBucketWebsite' }],
  ['GET', '/?cors', { kind: 'GetBucketCors' }],
  ['PUT', '/?cors', { kind: 'PutBucketCors' }],
  ['DELETE', '/?cors', { kind: 'DeleteBucketCors' }],
  ['GET', '/?lifecycle', { kind: 'GetBucketLifecycleConfiguration' }],
  ['PUT', '/?lifecycle', { kind: 'PutBucketLifecycleConfiguration' }],
  ['DELETE', '/?lifecycle', { kind: 'DeleteBucketLifecycle' }],
  ['GET', '/?policy', { kind: 'GetBucketPolicy' }],
  ['PUT', '/?policy', { kind: 'PutBucketPolicy' }],
  ['DELETE', '/?policy', { kind: 'DeleteBucketPolicy' }],
  ['GET', '/?policyStatus', { kind: 'GetBucketPolicyStatus' }],
  ['GET', '/?acl', { kind: 'GetBucketAcl' }],
  ['PUT', '/?acl', { kind: 'PutBucketAcl' }],
  ['GET', '/?tagging', { kind: 'GetBucketTagging' }],
  ['PUT', '/?tagging', { kind: 'PutBucketTagging' }],
  ['DELETE', '/?tagging', { kind: 'DeleteBucketTagging' }],
  ['GET', '/?encryption', { kind: 'GetBucketEncryption' }],
  ['PUT', '/?encryption', { kind: 'PutBucketEncryption' }],
  ['DELETE', '/?encryption', { kind: 'DeleteBucketEncryption' }],
  ['GET', '/?replication', { kind: 'GetBucketReplication' }],
  ['PUT', '/?replication', { kind: 'PutBucketReplication' }],
  ['DELETE', '/?replication', { kind: 'DeleteBucketReplication' }],
  ['GET', '/?logging', { kind: 'GetBucketLogging' }],
  ['PUT', '/?logging', { kind: 'PutBucketLogging' }],
  ['GET', '/?notification', { kind: 'GetBucketNotificationConfiguration' }],
  ['PUT', '/?notification', { kind: 'PutBucketNotificationConfiguration' }],
  ['GET', '/?requestPayment', { kind: 'GetBucketRequestPayment' }],
  ['PUT', '/?requestPayment', { kind: 'PutBucketRequestPayment' }],
  ['GET', '/?accelerate', { kind: 'GetBucketAccelerateConfiguration' }],
  ['PUT', '/?accelerate', { kind: 'PutBucketAccelerateConfiguration' }],
  ['GET', '/?analytics&id=Id', { kind: 'GetBucketAnalyticsConfiguration', id: 'Id' }],
  ['PUT', '/?analytics&id=report1', { kind: 'PutBucketAnalyticsConfiguration', id: 'report1' }],
  ['DELETE', '/?analytics&id=list1', { kind: 'DeleteBucketAnalyticsConfiguration', id: 'list1' }],
  ['GET', '/?analytics', { kind: 'ListBucketAnalyticsConfigurations' }],
  ['GET', '/?analytics&continuation-token=CT', { kind: 'ListBucketAnalyticsConfigurations', continuationToken: 'CT' }],
  ['GET', '/?inventory&id=list1', { kind: 'GetBucketInventoryConfiguration', id: 'list1' }],
  ['PUT', '/?inventory&id=report1', { kind: 'PutBucketInventoryConfiguration', id: 'report1' }],
  ['DELETE', '/?inventory&id=Id', { kind: 'DeleteBucketInventoryConfiguration', id: 'Id' }],
  ['GET', '/?inventory&continuation-token=CT', { kind: 'ListBucketInventoryConfigurations', continuationToken: 'CT' }],
  ['GET', '/?metrics&id=Documents', { kind: 'GetBucketMetricsConfiguration', id: 'Documents' }],
  ['PUT', '/?metrics&id=EntireBucket', { kind: 'PutBucketMetricsConfiguration', id: 'EntireBucket' }],
  ['DELETE', '/?metrics&id=ExampleMetrics', { kind: 'DeleteBucketMetricsConfiguration', id: 'ExampleMetrics' }],
  ['GET', '/?metrics', { kind: 'ListBucketMetricsConfigurations' }],
  ['GET', '/?intelligent-tiering&id=Id', { kind: 'GetBucketIntelligentTieringConfiguration', id: 'Id' }],
  ['PUT', '/?intelligent-tiering&id=Id', { kind: 'PutBucketIntelligentTieringConfiguration', id: 'Id' }],
  ['DELETE', '/?intelligent-tiering&id=Id', { kind: 'DeleteBucketIntelligentTieringConfiguration', id: 'Id' }],
  ['GET', '/?intelligent-tiering', { kind: 'ListBucketIntelligentTieringConfigurations' }],
  ['GET', '/?ownershipControls', { kind: 'GetBucketOwnershipControls' }],
  ['PUT', '/?ownershipControls', { kind: 'PutBucketOwnershipControls' }],
  ['DELETE', '/?ownershipControls', { kind: 'DeleteBucketOwnershipControls' }],
  ['GET', '/?publicAccessBlock', { kind: 'GetPublicAccessBlock' }],
  ['PUT', '/?publicAccessBlock', { kind: 'PutPublicAccessBlock' }],
  ['DELETE', '/?publicAccessBlock', { kind: 'DeletePublicAccessBlock' }],
  ['GET', '/?object-lock', { kind: 'GetObjectLockConfiguration' }],
  ['PUT', '/?object-lock', { kind: 'PutObjectLockConfiguration' }],
]

describe('parseEndpoint: every method and subresource', () => {
  for (const [method, target, expected, headers] of CASES) {
    const label = `${method} ${target || '(empty)'}${headers ? ' +x-amz-copy-source' : ''} → ${expected.kind}`
    test(label, () => {
      const [pathStyle, vhostStyle] = routeBothStyles(method, target, headers)
      assert.deepEqual(pathStyle, { ...expected, bucket: BUCKET })
      assert.deepEqual(vhostStyle, { ...expected, bucket: BUCKET })
    })
  }

  test('the table covers every endpoint kind', () => {
    const covered = new Set<string>([...CASES.map((c) => c[2].kind), 'ListBuckets', 'Options'])
    const missing = ENDPOINT_KINDS.filter((k) => !covered.has(k))
    assert.deepEqual(missing, [])
  })
})

describe('parseEndpoint: service-level requests', () => {
  test('GET / is ListBuckets, ignoring the query', () => {
    assert.deepEqual(route('GET', '/'), { kind: 'ListBuckets' })
    assert.deepEqual(route('GET', ''), { kind: 'ListBuckets' })
    assert.deepEqual(route('GET', '/?x-id=ListBuckets&max-buckets=10&acl&tagging'), { kind: 'ListBuckets' })
  })

  test('GET / on the bare root domain is ListBuckets', () => {
    assert.deepEqual(route('GET', '/', { host: 's3.garage.tld' }), { kind: 'ListBuckets' })
  })

  test('OPTIONS is Options with or without a bucket, whatever the query', () => {
    assert.deepEqual(route('OPTIONS', '/'), { kind: 'Options', key: '' })
    assert.deepEqual(route('OPTIONS', `/${BUCKET}`), { kind: 'Options', bucket: BUCKET, key: '' })
    assert.deepEqual(route('OPTIONS', `/${BUCKET}/a%20b?acl&tagging&max-keys=x`), {
      kind: 'Options',
      bucket: BUCKET,
      key: 'a b',
    })
    assert.deepEqual(route('OPTIONS', '/dir/k', { host: `${BUCKET}${ROOT}` }), {
      kind: 'Options',
      bucket: BUCKET,
      key: 'dir/k',
    })
  })

  for (const method of ['PUT', 'POST', 'DELETE', 'HEAD', 'PATCH']) {
    test(`${method} / is MethodNotAllowed`, () => assertApiError(() => route(method, '/'), 'MethodNotAllowed'))
  }

  test('a key without a bucket is refused', () => {
    assertApiError(() => parseEndpoint({ method: 'GET', key: 'k', query: new URLSearchParams(), headers: {} }), 'InvalidRequest')
  })
})

describe('parseEndpoint: copy source header and multipart', () => {
  test('x-amz-copy-source turns PutObject into CopyObject and UploadPart into UploadPartCopy', () => {
    assert.equal(route('PUT', '/b/k').kind, 'PutObject')
    assert.equal(route('PUT', '/b/k', { headers: COPY }).kind, 'CopyObject')
    assert.equal(route('PUT', '/b/k?partNumber=1&uploadId=u').kind, 'UploadPart')
    assert.equal(route('PUT', '/b/k?partNumber=1&uploadId=u', { headers: COPY }).kind, 'UploadPartCopy')
  })

  test('x-amz-copy-source is ignored on a bucket PUT', () => {
    assert.deepEqual(route('PUT', '/b', { headers: COPY }), { kind: 'CreateBucket', bucket: 'b' })
  })

  test('a part upload needs both partNumber and uploadId', () => {
    assertApiError(() => route('PUT', '/b/k?partNumber=1'), 'InvalidArgument')
    assertApiError(() => route('PUT', '/b/k?uploadId=u'), 'InvalidArgument')
    assertApiError(() => route('PUT', '/b/k?uploadId=u', { headers: COPY }), 'InvalidArgument')
  })

  test('partNumber is kept raw (range checks belong to handlers)', () => {
    assert.deepEqual(route('PUT', '/b/k?partNumber=0&uploadId=u'), {
      kind: 'UploadPart',
      bucket: 'b',
      key: 'k',
      partNumber: 0,
      uploadId: 'u',
    })
    assert.deepEqual(route('PUT', '/b/k?partNumber=10001&uploadId=u').kind, 'UploadPart')
    assert.deepEqual(route('GET', '/b/k?uploadId=u&max-parts=100000').kind, 'ListParts')
  })

  test('uploadId and versionId keep their exact value', () => {
    assert.deepEqual(route('POST', '/b/k?uploadId=a%2Bb%2F%3D'), {
      kind: 'CompleteMultipartUpload',
      bucket: 'b',
      key: 'k',
      uploadId: 'a+b/=',
    })
  })
})

describe('parseEndpoint: query parameters', () => {
  test('unknown parameters (response-*, X-Amz-*, x-id) are ignored', () => {
    const ep = route(
      'GET',
      '/b/k?response-content-type=text%2Fplain&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc&x-id=GetObject&foo=bar',
    )
    assert.deepEqual(ep, { kind: 'GetObject', bucket: 'b', key: 'k' })
  })

  test('empty values count as absent', () => {
    assert.deepEqual(route('GET', '/b/k?versionId=&partNumber='), { kind: 'GetObject', bucket: 'b', key: 'k' })
    assert.deepEqual(route('GET', '/b?prefix=&delimiter=&max-keys='), { kind: 'ListObjects', bucket: 'b' })
    assert.deepEqual(route('GET', '/b/k?uploadId='), { kind: 'GetObject', bucket: 'b', key: 'k' })
  })

  test('subresource flags may carry a value', () => {
    assert.equal(route('GET', '/b?acl=').kind, 'GetBucketAcl')
    assert.equal(route('GET', '/b?versioning=whatever').kind, 'GetBucketVersioning')
  })

  test("query values are form-decoded ('+' is a space, %2B a plus)", () => {
    assert.deepEqual(route('GET', '/b?prefix=a+b%2Bc%20d%C3%A9'), { kind: 'ListObjects', bucket: 'b', prefix: 'a b+c dé' })
  })

  test('max-keys, max-uploads and max-parts are kept raw, not clamped', () => {
    assert.deepEqual(route('GET', '/b?max-keys=100000'), { kind: 'ListObjects', bucket: 'b', maxKeys: 100000 })
    assert.deepEqual(route('GET', '/b?uploads&max-uploads=0'), { kind: 'ListMultipartUploads', bucket: 'b', maxUploads: 0 })
  })

  const badInts: Array<[string, string]> = [
    ['GET', '/b?max-keys=abc'],
    ['GET', '/b?max-keys=-1'],
    ['GET', '/b?max-keys=1.5'],
    ['GET', '/b?max-keys=1e3'],
    ['GET', '/b?max-keys=0x10'],
    ['GET', '/b?max-keys=%201'],
    ['GET', '/b?max-keys=+1'],
    ['GET', '/b?max-keys=99999999999999999999'],
    ['GET', '/b?list-type=2&max-keys=ten'],
    ['GET', '/b?versions&max-keys=x'],
    ['GET', '/b?uploads&max-uploads=x'],
    ['GET', '/b/k?partNumber=one'],
    ['HEAD', '/b/k?partNumber=-3'],
    ['GET', '/b/k?uploadId=u&max-parts=x'],
    ['GET', '/b/k?uploadId=u&part-number-marker=x'],
    ['PUT', '/b/k?partNumber=x&uploadId=u'],
    ['PUT', '/b/k?partNumber=1.0&uploadId=u'],
  ]
  for (const [method, target] of badInts) {
    test(`${method} ${target} is InvalidArgument`, () => assertApiError(() => route(method, target), 'InvalidArgument'))
  }

  const badOther: Array<[string, string, string]> = [
    ['GET', '/b?list-type=2&fetch-owner=yes', 'fetch-owner must be true or false'],
    ['GET', '/b?list-type=1', 'list-type must be 2'],
    ['GET', '/b?acl&tagging', 'two subresources'],
    ['GET', '/b?acl&acl', 'a repeated subresource'],
    ['GET', '/b/k?versionId=a&versionId=b', 'a repeated parameter'],
    ['PUT', '/b?analytics', 'missing id'],
    ['PUT', '/b?inventory', 'missing id'],
    ['PUT', '/b?metrics', 'missing id'],
    ['PUT', '/b?intelligent-tiering', 'missing id'],
    ['DELETE', '/b?analytics', 'missing id'],
    ['POST', '/b/k?select', 'missing select-type'],
  ]
  for (const [method, target, why] of badOther) {
    test(`${method} ${target} is InvalidArgument (${why})`, () => assertApiError(() => route(method, target), 'InvalidArgument'))
  }
})

describe('parseEndpoint: unknown combinations', () => {
  const cases: Array<[string, string, Headers?]> = [
    ['GET', '/b/k?website'],
    ['GET', '/b/k?versions'],
    ['GET', '/b/k?uploads'],
    ['GET', '/b?restore'],
    ['GET', '/b?torrent'],
    ['HEAD', '/b?acl'],
    ['HEAD', '/b/k?tagging'],
    ['POST', '/b/k'],
    ['POST', '/b/k?delete'],
    ['POST', '/b?uploads'],
    ['POST', '/b?acl'],
    ['PUT', '/b?versions'],
    ['PUT', '/b?uploads'],
    ['PUT', '/b/k?cors'],
    ['DELETE', '/b?acl'],
    ['DELETE', '/b?location'],
    ['DELETE', '/b/k?acl'],
    ['PATCH', '/b/k'],
    ['TRACE', '/b'],
    ['get', '/b/k'],
    ['CONNECT', '/b/k'],
    ['constructor', '/b/k'],
    ['__proto__', '/b/k'],
  ]
  for (const [method, target] of cases) {
    test(`${method} ${target} is MethodNotAllowed`, () => assertApiError(() => route(method, target), 'MethodNotAllowed'))
  }
})

describe('parseBucketAndKey: path style', () => {
  const cases: Array<[rawPath: string, expected: { bucket?: string; key: string }]> = [
    ['', { key: '' }],
    ['/', { key: '' }],
    ['///', { key: '' }],
    ['/bucket', { bucket: 'bucket', key: '' }],
    ['/bucket/', { bucket: 'bucket', key: '' }],
    ['//bucket/key', { bucket: 'bucket', key: 'key' }],
    ['/bucket/a/super/file.jpg', { bucket: 'bucket', key: 'a/super/file.jpg' }],
    ['/bucket/dir/', { bucket: 'bucket', key: 'dir/' }],
    ['/bucket//', { bucket: 'bucket', key: '/' }],
    ['/bucket//a', { bucket: 'bucket', key: '/a' }],
    ['/bucket/a//b/', { bucket: 'bucket', key: 'a//b/' }],
    ['/bucket/%2Fa', { bucket: 'bucket', key: '/a' }],
    ['/bucket/a%20b.txt', { bucket: 'bucket', key: 'a b.txt' }],
    ['/bucket/a+b', { bucket: 'bucket', key: 'a+b' }],
    ['/bucket/a%2Bb', { bucket: 'bucket', key: 'a+b' }],
    ['/bucket/100%25', { bucket: 'bucket', key: '100%' }],
    ['/bucket/100%2525', { bucket: 'bucket', key: '100%25' }],
    ['/bucket/caf%C3%A9', { bucket: 'bucket', key: 'café' }],
    ['/bucket/café', { bucket: 'bucket', key: 'café' }],
    ['/bucket/%E6%97%A5%E6%9C%AC', { bucket: 'bucket', key: '日本' }],
    ['/bucket/%F0%9F%98%80.txt', { bucket: 'bucket', key: '😀.txt' }],
    ['/bucket/%26%2B%3F%25%C3%A9/something', { bucket: 'bucket', key: '&+?%é/something' }],
    ['/bucket/a%3Fb%23c', { bucket: 'bucket', key: 'a?b#c' }],
    ['/bucket/key?acl', { bucket: 'bucket', key: 'key' }],
    ['/bucket/%7BKey%2B%7D', { bucket: 'bucket', key: '{Key+}' }],
    ['/bucket/.', { bucket: 'bucket', key: '.' }],
    ['/bucket/../x', { bucket: 'bucket', key: '../x' }],
  ]
  for (const [rawPath, expected] of cases) {
    test(`${JSON.stringify(rawPath)} → ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(parseBucketAndKey({ host: 'localhost:3900', rawPath }), expected)
      assert.deepEqual(parseBucketAndKey({ host: 'localhost', rawPath, rootDomain: ROOT }), expected)
      assert.deepEqual(parseBucketAndKey({ host: undefined, rawPath, rootDomain: ROOT }), expected)
    })
  }

  for (const rawPath of ['/bucket/%', '/bucket/%zz', '/bucket/a%2', '/bucket/%C3', '/bucket/%FF', '/bucket/%ED%A0%80']) {
    test(`${rawPath} (bad percent-encoding) is InvalidURI, as AWS answers`, () =>
      assertApiError(() => parseBucketAndKey({ host: 'localhost', rawPath }), 'InvalidURI'))
  }
})

describe('parseBucketAndKey: virtual-hosted style', () => {
  const cases: Array<
    [host: string | undefined, rootDomain: string | undefined, rawPath: string, expected: { bucket?: string; key: string }]
  > = [
    ['photos.s3.garage.tld', '.s3.garage.tld', '/2024/a.jpg', { bucket: 'photos', key: '2024/a.jpg' }],
    ['photos.s3.garage.tld', 's3.garage.tld', '/2024/a.jpg', { bucket: 'photos', key: '2024/a.jpg' }],
    ['photos.s3.garage.tld:3900', '.s3.garage.tld', '/a', { bucket: 'photos', key: 'a' }],
    ['Photos.S3.Garage.TLD:3900', '.s3.garage.tld', '/a', { bucket: 'photos', key: 'a' }],
    ['photos.s3.garage.tld', '.S3.Garage.TLD', '/a', { bucket: 'photos', key: 'a' }],
    ['john.doe.s3.garage.tld', '.s3.garage.tld', '/a', { bucket: 'john.doe', key: 'a' }],
    ['photos.s3.garage.tld', '.s3.garage.tld', '/', { bucket: 'photos', key: '' }],
    ['photos.s3.garage.tld', '.s3.garage.tld', '', { bucket: 'photos', key: '' }],
    ['photos.s3.garage.tld', '.s3.garage.tld', '//a', { bucket: 'photos', key: '/a' }],
    ['photos.s3.garage.tld', '.s3.garage.tld', '/dir/', { bucket: 'photos', key: 'dir/' }],
    ['photos.s3.garage.tld', '.s3.garage.tld', '/a%20b+c%25%F0%9F%8E%89', { bucket: 'photos', key: 'a b+c%🎉' }],
    ['photos.s3.garage.tld', '.s3.garage.tld', '/other-bucket/key', { bucket: 'photos', key: 'other-bucket/key' }],
    // Not a subdomain of the root domain: path style.
    ['s3.garage.tld', '.s3.garage.tld', '/bucket/key', { bucket: 'bucket', key: 'key' }],
    ['s3.garage.tld:3900', 's3.garage.tld', '/bucket/key', { bucket: 'bucket', key: 'key' }],
    ['not-s3.garage.tld', 's3.garage.tld', '/bucket/key', { bucket: 'bucket', key: 'key' }],
    ['photos.example.com', '.s3.garage.tld', '/bucket/key', { bucket: 'bucket', key: 'key' }],
    ['[::1]:3900', '.s3.garage.tld', '/bucket/key', { bucket: 'bucket', key: 'key' }],
    ['127.0.0.1:3900', '.s3.garage.tld', '/bucket/key', { bucket: 'bucket', key: 'key' }],
    // No root domain configured: always path style.
    ['photos.s3.garage.tld', undefined, '/bucket/key', { bucket: 'bucket', key: 'key' }],
    // No Host header: path style.
    [undefined, '.s3.garage.tld', '/bucket/key', { bucket: 'bucket', key: 'key' }],
    ['', '.s3.garage.tld', '/bucket/key', { bucket: 'bucket', key: 'key' }],
  ]
  for (const [host, rootDomain, rawPath, expected] of cases) {
    test(`${String(host)} under ${String(rootDomain)} ${JSON.stringify(rawPath)} → ${JSON.stringify(expected)}`, () => {
      const opts = rootDomain === undefined ? { host, rawPath } : { host, rawPath, rootDomain }
      assert.deepEqual(parseBucketAndKey(opts), expected)
    })
  }

  test('a malformed Host is InvalidRequest when a root domain is set', () => {
    assertApiError(() => parseBucketAndKey({ host: '[::1', rawPath: '/b/k', rootDomain: ROOT }), 'InvalidRequest')
  })

  test('a bad percent-encoding is InvalidURI in virtual-hosted style too', () => {
    assertApiError(() => parseBucketAndKey({ host: `photos${ROOT}`, rawPath: '/%E0%A4%A', rootDomain: ROOT }), 'InvalidURI')
  })
})

describe('authorizationType', () => {
  const cases: Array<[string, string, Authorization, Headers?]> = [
    ['GET', '/', 'none'],
    ['PUT', '/b', 'none'],
    ['OPTIONS', '/b/k', 'none'],
    ['GET', '/b', 'read'],
    ['GET', '/b?list-type=2', 'read'],
    ['GET', '/b?versions', 'read'],
    ['GET', '/b?uploads', 'read'],
    ['GET', '/b?location', 'read'],
    ['GET', '/b?versioning', 'read'],
    ['GET', '/b?lifecycle', 'read'],
    ['GET', '/b?policy', 'owner'],
    ['HEAD', '/b', 'read'],
    ['GET', '/b/k', 'read'],
    ['HEAD', '/b/k', 'read'],
    ['GET', '/b/k?tagging', 'read'],
    ['GET', '/b/k?uploadId=u', 'read'],
    ['POST', '/b/k?select&select-type=2', 'read'],
    ['DELETE', '/b', 'owner'],
    ['GET', '/b?website', 'owner'],
    ['PUT', '/b?website', 'owner'],
    ['DELETE', '/b?website', 'owner'],
    ['GET', '/b?cors', 'owner'],
    ['PUT', '/b?cors', 'owner'],
    ['DELETE', '/b?cors', 'owner'],
    ['PUT', '/b?policy', 'owner'],
    ['PUT', '/b?acl', 'owner'],
    ['PUT', '/b?tagging', 'owner'],
    ['PUT', '/b?lifecycle', 'write'],
    ['DELETE', '/b?lifecycle', 'write'],
    ['PUT', '/b?versioning', 'write'],
    ['PUT', '/b/k', 'write'],
    ['PUT', '/b/k', 'write', COPY],
    ['POST', '/b', 'write'],
    ['DELETE', '/b/k', 'write'],
    ['POST', '/b?delete', 'write'],
    ['POST', '/b/k?uploads', 'write'],
    ['PUT', '/b/k?partNumber=1&uploadId=u', 'write'],
    ['PUT', '/b/k?partNumber=1&uploadId=u', 'write', COPY],
    ['POST', '/b/k?uploadId=u', 'write'],
    ['DELETE', '/b/k?uploadId=u', 'write'],
    ['PUT', '/b/k?tagging', 'write'],
    ['DELETE', '/b/k?tagging', 'write'],
  ]
  for (const [method, target, expected, headers] of cases) {
    test(`${method} ${target}${headers ? ' +copy' : ''} needs ${expected}`, () => {
      const ep = route(method, target, headers ? { headers } : {})
      assert.equal(authorizationType(ep), expected, ep.kind)
    })
  }

  test('every Get/Head/List other than website, CORS and policy needs read', () => {
    for (const kind of ENDPOINT_KINDS) {
      if (!/^(Get|Head|List)/.test(kind) || kind === 'ListBuckets') continue
      // A policy may name keys: only owners read it (as AWS keeps it to the bucket owner's account).
      const expected = kind === 'GetBucketWebsite' || kind === 'GetBucketCors' || kind === 'GetBucketPolicy' ? 'owner' : 'read'
      // authorizationType only looks at the kind, so a minimal object is enough here.
      assert.equal(authorizationType({ kind, bucket: 'b' } as Endpoint), expected, kind)
    }
  })
})

describe('endpoint accessors', () => {
  test('endpointName is the kind', () => {
    assert.equal(endpointName(route('GET', '/b?list-type=2')), 'ListObjectsV2')
    assert.equal(endpointName(route('GET', '/')), 'ListBuckets')
  })

  test('endpointBucket', () => {
    assert.equal(endpointBucket(route('GET', '/')), undefined)
    assert.equal(endpointBucket(route('OPTIONS', '/')), undefined)
    assert.equal(endpointBucket(route('OPTIONS', '/b')), 'b')
    assert.equal(endpointBucket(route('GET', '/b/k')), 'b')
    assert.equal(endpointBucket(route('PUT', '/b?cors')), 'b')
  })

  test('endpointKey', () => {
    assert.equal(endpointKey(route('GET', '/b/dir/k%20')), 'dir/k ')
    assert.equal(endpointKey(route('GET', '/b')), undefined)
    assert.equal(endpointKey(route('GET', '/')), undefined)
    assert.equal(endpointKey(route('OPTIONS', '/b/k')), undefined)
  })

  test('ENDPOINT_KINDS lists each kind once', () => {
    assert.equal(new Set(ENDPOINT_KINDS).size, ENDPOINT_KINDS.length)
    // Garage's 93 operations, plus GetObjectAttributes.
    assert.equal(ENDPOINT_KINDS.length, 94)
  })
})
