/**
 * Bad input, one row per class (issue 10): each row sends one malformed request over a raw socket
 * and expects the status and S3 code AWS gives, that nothing was stored (or changed), and that
 * the node keeps serving. The aws-chunked framing rows extend test/integration/s3/streaming.test.ts
 * ("malformed aws-chunked framing"), which checks the same bodies with the metrics observer on;
 * here each gets its exact code. Requests are signed with @smithy/signature-v4 (test/helpers/s3.ts).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { GetBucketCorsCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import type { TestNode } from '../../../lib/testing.ts'
import {
  chunkSigner,
  encodeAwsChunked,
  STREAMING_SIGNED,
  STREAMING_SIGNED_TRAILER,
  type StreamingMode,
} from '../../helpers/aws-chunked.ts'
import { type Framing, type Outcome, type RawHttp, send } from '../../helpers/raw-http.ts'
import {
  crc32Base64,
  getBytes,
  md5Base64,
  objectExists,
  presignUrl,
  type RawRequest,
  type SignedRequest,
  sha256Hex,
  signRequest,
  useTestNode,
  xmlField,
} from '../../helpers/s3.ts'

let node: TestNode
let s3: S3Client

useTestNode({}, (n, c) => {
  node = n
  s3 = c
})

/** The request target exactly as `r` names it (URL parsing would normalise some bytes). */
function targetOf(r: RawRequest, signed: SignedRequest): string {
  return `${r.path}${signed.url.search}`
}

function rawOf(r: RawRequest, signed: SignedRequest, body: Uint8Array, framing: Framing = { kind: 'whole' }): RawHttp {
  const headers: Array<[string, string]> = Object.entries(signed.headers)
  if (signed.headers['content-length'] === undefined) headers.push(['content-length', String(body.length)])
  headers.push(['connection', 'close'])
  return { method: r.method, target: targetOf(r, signed), headers, body: Buffer.from(body), framing }
}

async function sendRaw(h: RawHttp): Promise<Outcome> {
  const url = new URL(node.endpoint)
  return send(url.hostname, Number(url.port), h, 15_000)
}

/** Signs `r` and sends it on a raw socket, its body framed as `framing` says. */
async function signedSend(r: RawRequest, framing?: Framing): Promise<Outcome> {
  const signed = await signRequest(node, r)
  return sendRaw(rawOf(r, signed, signed.body, framing))
}

/** Signs `r`, then replaces (or, with `undefined`, removes) its Authorization header. */
async function withAuthorization(r: RawRequest, authorization: string | undefined): Promise<Outcome> {
  const signed = await signRequest(node, r)
  if (authorization === undefined) delete signed.headers.authorization
  else signed.headers.authorization = authorization
  return sendRaw(rawOf(r, signed, signed.body))
}

const path = (key: string): string => `/${node.bucket}/${key}`
const KiB = 1024

interface Row {
  name: string
  /** Sends the bad request. */
  run(): Promise<Outcome>
  status: number
  code: string | undefined
  /** Checks that nothing was stored or changed (throws otherwise). */
  unchanged?(): Promise<void>
}

const absent = (key: string) => async (): Promise<void> => {
  assert.equal(await objectExists(s3, node.bucket, key), false, `${key} must not exist`)
}

async function putPrevious(key: string): Promise<Buffer> {
  const v1 = Buffer.from(`previous content of ${key}`)
  await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: key, Body: v1 }))
  return v1
}

const intact = (key: string, v1: () => Buffer | undefined) => async (): Promise<void> => {
  const expected = v1()
  assert.ok(expected !== undefined)
  assert.ok((await getBytes(s3, node.bucket, key)).equals(expected), `${key} keeps its previous version`)
}

/** A row whose class is answered by the same status and code for every body of a family. */
function xmlRow(name: string, r: () => RawRequest, unchanged: () => Promise<void>): Row {
  return { name, run: async () => signedSend(r()), status: 400, code: 'MalformedXML', unchanged }
}

const MALFORMED = '<NotClosed><Still>'

async function createUpload(key: string): Promise<string> {
  const created = await signedSend({ method: 'POST', path: path(key), query: { uploads: '' } })
  const id = xmlField(created.excerpt, 'UploadId')
  assert.ok(id !== undefined, created.excerpt)
  return id
}

let uploadId = ''
let deleteSentinel: Buffer | undefined

describe('bad input: malformed XML bodies are MalformedXML 400 and change nothing', () => {
  test('setup: an upload to complete and an object DeleteObjects must leave alone', async () => {
    uploadId = await createUpload('bad/xml-complete')
    deleteSentinel = await putPrevious('bad/xml-delete')
  })
  const md5 = md5Base64(MALFORMED)
  const rows: Row[] = [
    xmlRow(
      'CompleteMultipartUpload',
      () => ({ method: 'POST', path: path('bad/xml-complete'), query: { uploadId }, body: MALFORMED }),
      absent('bad/xml-complete'),
    ),
    xmlRow(
      'DeleteObjects',
      () => ({
        method: 'POST',
        path: `/${node.bucket}`,
        query: { delete: '' },
        headers: { 'content-md5': md5 },
        body: MALFORMED,
      }),
      intact('bad/xml-delete', () => deleteSentinel),
    ),
    xmlRow(
      'PutBucketCors',
      () => ({ method: 'PUT', path: `/${node.bucket}`, query: { cors: '' }, body: MALFORMED }),
      async () => {
        await assert.rejects(s3.send(new GetBucketCorsCommand({ Bucket: node.bucket })), /NoSuchCORSConfiguration/)
      },
    ),
    xmlRow(
      'PutBucketLifecycle',
      () => ({ method: 'PUT', path: `/${node.bucket}`, query: { lifecycle: '' }, body: MALFORMED }),
      async () => {
        const o = await signedSend({ method: 'GET', path: `/${node.bucket}`, query: { lifecycle: '' } })
        assert.equal(o.code, 'NoSuchLifecycleConfiguration', o.excerpt)
      },
    ),
    xmlRow(
      'PutBucketWebsite',
      () => ({ method: 'PUT', path: `/${node.bucket}`, query: { website: '' }, body: MALFORMED }),
      async () => {
        const o = await signedSend({ method: 'GET', path: `/${node.bucket}`, query: { website: '' } })
        assert.equal(o.code, 'NoSuchWebsiteConfiguration', o.excerpt)
      },
    ),
  ]
  runRows(rows)
})

describe('bad input: headers, names, digests and bodies', () => {
  let rangeObject: Buffer | undefined
  let mismatchPrevious: Buffer | undefined
  test('setup: objects to read ranges of and to keep', async () => {
    rangeObject = await putPrevious('bad/range')
    mismatchPrevious = await putPrevious('bad/sha-mismatch')
  })
  const rows: Row[] = [
    {
      // node:http's header limit (maxHeaderSize 16 KiB): refused before any handler runs.
      name: 'a 64 KiB header',
      run: () => signedSend({ method: 'PUT', path: path('bad/header-64k'), headers: { 'x-amz-meta-big': 'h'.repeat(64 * KiB) } }),
      status: 431,
      code: undefined,
      unchanged: absent('bad/header-64k'),
    },
    {
      name: 'a 1 MiB header',
      run: () =>
        signedSend({ method: 'PUT', path: path('bad/header-1m'), headers: { 'x-amz-meta-big': 'h'.repeat(1024 * KiB) } }),
      status: 431,
      code: undefined,
      unchanged: absent('bad/header-1m'),
    },
    {
      // AWS: "Couldn't parse the specified URI." for a path that does not decode.
      name: 'an object key with invalid percent-encoding (%ZZ)',
      run: () => signedSend({ method: 'PUT', path: path('bad/%ZZ'), body: 'x' }),
      status: 400,
      code: 'InvalidURI',
      unchanged: absent('bad/%ZZ'),
    },
    {
      name: 'an object key that is not UTF-8 (%FF%FE)',
      run: () => signedSend({ method: 'PUT', path: path('bad/%FF%FE'), body: 'x' }),
      status: 400,
      code: 'InvalidURI',
      unchanged: absent('bad/\uFFFD\uFFFD'),
    },
    {
      // Path-style, an empty key names the bucket: PUT is CreateBucket on a bucket the key owns.
      name: 'an empty object key (PUT /bucket/)',
      run: () => signedSend({ method: 'PUT', path: `/${node.bucket}/`, body: '' }),
      status: 409,
      code: 'BucketAlreadyOwnedByYou',
    },
    {
      name: 'an invalid bucket name (CreateBucket Bad_Name)',
      run: () => signedSend({ method: 'PUT', path: '/Bad_Name' }),
      status: 400,
      code: 'InvalidBucketName',
    },
    {
      // s3-tests test_object_create_bad_authorization_empty: no credential at all is anonymous.
      name: 'an empty Authorization header',
      run: () => withAuthorization({ method: 'PUT', path: path('bad/auth-empty'), body: 'x' }, ''),
      status: 403,
      code: 'AccessDenied',
      unchanged: absent('bad/auth-empty'),
    },
    {
      name: 'no Authorization header',
      run: () => withAuthorization({ method: 'PUT', path: path('bad/auth-none'), body: 'x' }, undefined),
      status: 403,
      code: 'AccessDenied',
      unchanged: absent('bad/auth-none'),
    },
    {
      name: 'an Authorization scheme S3 does not know (Bearer)',
      run: () => withAuthorization({ method: 'PUT', path: path('bad/auth-bearer'), body: 'x' }, 'Bearer abc'),
      status: 400,
      code: 'InvalidArgument',
      unchanged: absent('bad/auth-bearer'),
    },
    {
      name: 'an AWS4 algorithm other than AWS4-HMAC-SHA256 (SigV4a)',
      run: () =>
        withAuthorization(
          { method: 'PUT', path: path('bad/auth-v4a'), body: 'x' },
          'AWS4-ECDSA-P256-SHA256 Credential=GK1/20260101/s3/aws4_request, SignedHeaders=host, Signature=00',
        ),
      status: 400,
      code: 'InvalidRequest',
      unchanged: absent('bad/auth-v4a'),
    },
    {
      name: 'a Content-MD5 of another body',
      run: () =>
        signedSend({ method: 'PUT', path: path('bad/md5'), headers: { 'content-md5': md5Base64('other') }, body: 'body' }),
      status: 400,
      code: 'BadDigest',
      unchanged: absent('bad/md5'),
    },
    {
      name: 'a Content-MD5 that is not a base64 MD5',
      run: () => signedSend({ method: 'PUT', path: path('bad/md5-invalid'), headers: { 'content-md5': 'abc' }, body: 'body' }),
      status: 400,
      code: 'InvalidDigest',
      unchanged: absent('bad/md5-invalid'),
    },
    {
      name: 'an x-amz-content-sha256 of another body',
      run: () => signedSend({ method: 'PUT', path: path('bad/sha-mismatch'), payloadHash: sha256Hex('other'), body: 'body' }),
      status: 400,
      code: 'XAmzContentSHA256Mismatch',
      unchanged: intact('bad/sha-mismatch', () => mismatchPrevious),
    },
    {
      name: 'a body shorter than its Content-Length (client half-closes)',
      run: async () => {
        const body = Buffer.alloc(100, 0x61)
        const r: RawRequest = { method: 'PUT', path: path('bad/truncated'), payloadHash: 'UNSIGNED-PAYLOAD' }
        const signed = await signRequest(node, r)
        return sendRaw(
          rawOf(r, { ...signed, headers: { ...signed.headers, 'content-length': '100' } }, body, { kind: 'truncate', at: 10 }),
        )
      },
      status: 400,
      code: 'IncompleteBody',
      unchanged: absent('bad/truncated'),
    },
    {
      // AWS ignores a Range it cannot parse and answers the whole object.
      name: 'an unparsable Range',
      run: () => signedSend({ method: 'GET', path: path('bad/range'), headers: { range: 'bytes=zz-' } }),
      status: 200,
      code: undefined,
    },
    {
      name: 'an unsatisfiable Range',
      run: () =>
        signedSend({ method: 'GET', path: path('bad/range'), headers: { range: `bytes=${(rangeObject?.length ?? 0) + 10}-` } }),
      status: 416,
      code: 'InvalidRange',
    },
    {
      // 10,000 parameters make a request line longer than node:http's header limit.
      name: '10,000 query parameters',
      run: async () => {
        const r: RawRequest = { method: 'GET', path: `/${node.bucket}`, query: { 'list-type': '2' } }
        const signed = await signRequest(node, r)
        const h = rawOf(r, signed, signed.body)
        h.target += `&${Array.from({ length: 10_000 }, (_, i) => `p${i}=${i}`).join('&')}`
        return sendRaw(h)
      },
      status: 431,
      code: undefined,
    },
    {
      name: 'a signature 20 minutes in the past',
      run: () =>
        signedSend({ method: 'PUT', path: path('bad/skewed'), body: 'x', signingDate: new Date(Date.now() - 20 * 60_000) }),
      status: 403,
      code: 'RequestTimeTooSkewed',
      unchanged: absent('bad/skewed'),
    },
    {
      name: 'an expired presigned URL',
      run: async () => {
        const url = await presignUrl(node, {
          method: 'PUT',
          path: path('bad/presigned-expired'),
          expiresIn: 60,
          signingDate: new Date(Date.now() - 10 * 60_000),
        })
        return sendRaw({ ...presignedRaw('PUT', url), body: Buffer.from('x') })
      },
      status: 403,
      code: 'AccessDenied',
      unchanged: absent('bad/presigned-expired'),
    },
    {
      name: 'a tampered presigned URL',
      run: async () => {
        const url = await presignUrl(node, { method: 'PUT', path: path('bad/presigned-tampered'), expiresIn: 600 })
        url.searchParams.set('X-Amz-Expires', '601')
        return sendRaw({ ...presignedRaw('PUT', url), body: Buffer.from('x') })
      },
      status: 403,
      code: 'SignatureDoesNotMatch',
      unchanged: absent('bad/presigned-tampered'),
    },
  ]
  runRows(rows)
})

function presignedRaw(method: string, url: URL): RawHttp {
  return {
    method,
    target: `${url.pathname}${url.search}`,
    headers: [
      ['host', url.host],
      ['content-length', '1'],
      ['connection', 'close'],
    ],
    body: Buffer.alloc(0),
    framing: { kind: 'whole' },
  }
}

describe('bad input: aws-chunked bodies', () => {
  const zeros = '0'.repeat(64)
  const data = Buffer.from('0123456789')
  /** A signed aws-chunked head for `key` and a body built from its signature chain. */
  async function chunked(
    key: string,
    mode: StreamingMode,
    build: (signed: SignedRequest, secret: string) => Buffer,
    decodedLength = data.length,
    trailer?: string,
  ): Promise<Outcome> {
    const r: RawRequest = {
      method: 'PUT',
      path: path(key),
      headers: {
        'content-encoding': 'aws-chunked',
        'x-amz-decoded-content-length': String(decodedLength),
        ...(trailer === undefined ? {} : { 'x-amz-trailer': trailer }),
      },
      payloadHash: mode,
    }
    const signed = await signRequest(node, r)
    const body = build(signed, node.s3Config.credentials.secretAccessKey)
    return sendRaw(rawOf(r, signed, body, { kind: 'half-close' }))
  }
  const framed =
    (key: string, body: string): (() => Promise<Outcome>) =>
    () =>
      chunked(key, STREAMING_SIGNED, () => Buffer.from(body))
  const rows: Row[] = [
    {
      name: 'a chunk size that is not hex',
      run: framed('bad/chunk-nonhex', `zz;chunk-signature=${zeros}\r\n0123456789\r\n`),
      status: 400,
      code: 'InvalidRequest',
      unchanged: absent('bad/chunk-nonhex'),
    },
    {
      // Refused at the chunk header: it announces more than x-amz-decoded-content-length.
      name: 'a chunk size larger than the data',
      run: framed('bad/chunk-larger', `ff;chunk-signature=${zeros}\r\n0123456789\r\n0;chunk-signature=${zeros}\r\n\r\n`),
      status: 400,
      code: 'InvalidRequest',
      unchanged: absent('bad/chunk-larger'),
    },
    {
      // Without the decoded length to compare with, the body ends inside the announced chunk.
      name: 'a chunk size larger than the data, the decoded length agreeing with it',
      run: () =>
        chunked(
          'bad/chunk-larger-agreed',
          STREAMING_SIGNED,
          () => Buffer.from(`ff;chunk-signature=${zeros}\r\n0123456789\r\n0;chunk-signature=${zeros}\r\n\r\n`),
          255,
        ),
      status: 400,
      code: 'IncompleteBody',
      unchanged: absent('bad/chunk-larger-agreed'),
    },
    {
      name: 'a chunk size smaller than the data',
      run: framed('bad/chunk-smaller', `2;chunk-signature=${zeros}\r\n0123456789\r\n0;chunk-signature=${zeros}\r\n\r\n`),
      status: 403,
      code: 'SignatureDoesNotMatch',
      unchanged: absent('bad/chunk-smaller'),
    },
    {
      name: 'a chunk size of ffffffffffffffff',
      run: framed('bad/chunk-64bit', `ffffffffffffffff;chunk-signature=${zeros}\r\n0123456789\r\n`),
      status: 400,
      code: 'InvalidRequest',
      unchanged: absent('bad/chunk-64bit'),
    },
    {
      name: 'a chunk size of -1',
      run: framed('bad/chunk-negative', `-1;chunk-signature=${zeros}\r\n0123456789\r\n`),
      status: 400,
      code: 'InvalidRequest',
      unchanged: absent('bad/chunk-negative'),
    },
    {
      name: 'a bad chunk signature',
      run: () =>
        chunked('bad/chunk-sig', STREAMING_SIGNED, (signed, secret) => {
          const good = chunkSigner(signed, secret)
          const sig = good.sign(data)
          return Buffer.from(
            `a;chunk-signature=${flip(sig)}\r\n0123456789\r\n0;chunk-signature=${good.sign(Buffer.alloc(0))}\r\n\r\n`,
          )
        }),
      status: 403,
      code: 'SignatureDoesNotMatch',
      unchanged: absent('bad/chunk-sig'),
    },
    {
      name: 'a bad final-chunk signature',
      run: () =>
        chunked('bad/final-sig', STREAMING_SIGNED, (signed, secret) => {
          const good = chunkSigner(signed, secret)
          return Buffer.from(
            `a;chunk-signature=${good.sign(data)}\r\n0123456789\r\n0;chunk-signature=${flip(good.sign(Buffer.alloc(0)))}\r\n\r\n`,
          )
        }),
      status: 403,
      code: 'SignatureDoesNotMatch',
      unchanged: absent('bad/final-sig'),
    },
    {
      name: 'a replayed chunk signature (the first chunk signature again on the second chunk)',
      run: () =>
        chunked('bad/replayed', STREAMING_SIGNED, (signed, secret) => {
          const good = chunkSigner(signed, secret)
          const first = good.sign(data.subarray(0, 5))
          return Buffer.from(
            `5;chunk-signature=${first}\r\n01234\r\n5;chunk-signature=${first}\r\n56789\r\n0;chunk-signature=${zeros}\r\n\r\n`,
          )
        }),
      status: 403,
      code: 'SignatureDoesNotMatch',
      unchanged: absent('bad/replayed'),
    },
    {
      name: 'a decoded length larger than the data (x-amz-decoded-content-length)',
      run: () =>
        chunked(
          'bad/decoded-longer',
          STREAMING_SIGNED,
          (s, secret) => encodeAwsChunked(s, secret, { mode: STREAMING_SIGNED, data }),
          11,
        ),
      status: 400,
      code: 'IncompleteBody',
      unchanged: absent('bad/decoded-longer'),
    },
    {
      name: 'a decoded length smaller than the data',
      run: () =>
        chunked(
          'bad/decoded-shorter',
          STREAMING_SIGNED,
          (s, secret) => encodeAwsChunked(s, secret, { mode: STREAMING_SIGNED, data }),
          9,
        ),
      status: 400,
      code: 'InvalidRequest',
      unchanged: absent('bad/decoded-shorter'),
    },
    {
      name: 'no CRLF after the chunk data',
      run: () =>
        chunked('bad/no-crlf', STREAMING_SIGNED, (signed, secret) => {
          const good = chunkSigner(signed, secret)
          return Buffer.from(
            `a;chunk-signature=${good.sign(data)}\r\n0123456789XX0;chunk-signature=${good.sign(Buffer.alloc(0))}\r\n\r\n`,
          )
        }),
      status: 400,
      code: 'InvalidRequest',
      unchanged: absent('bad/no-crlf'),
    },
    {
      name: 'a 1 MiB chunk header line without CRLF',
      run: framed('bad/long-line', `a;chunk-signature=${'f'.repeat(1024 * KiB)}`),
      status: 400,
      code: 'InvalidRequest',
      unchanged: absent('bad/long-line'),
    },
    {
      name: 'a bad trailer signature',
      run: () =>
        chunked(
          'bad/trailer-sig',
          STREAMING_SIGNED_TRAILER,
          (signed, secret) => {
            const body = encodeAwsChunked(signed, secret, {
              mode: STREAMING_SIGNED_TRAILER,
              data,
              trailer: { name: 'x-amz-checksum-crc32', value: crc32Base64(data) },
            }).toString('latin1')
            return Buffer.from(
              body.replace(/(x-amz-trailer-signature:)([0-9a-f])/, (_, p: string, c: string) => `${p}${c === '0' ? '1' : '0'}`),
              'latin1',
            )
          },
          data.length,
          'x-amz-checksum-crc32',
        ),
      status: 403,
      code: 'SignatureDoesNotMatch',
      unchanged: absent('bad/trailer-sig'),
    },
  ]
  runRows(rows)
})

const flip = (sig: string): string => `${sig[0] === '0' ? '1' : '0'}${sig.slice(1)}`

function runRows(rows: Row[]): void {
  for (const row of rows) {
    test(`${row.name}: ${row.status} ${row.code ?? ''}, nothing stored, the node keeps serving`, async () => {
      const o = await row.run()
      assert.equal(o.status, row.status, `status for ${row.name}: ${o.excerpt}`)
      assert.equal(o.code, row.code, `S3 code for ${row.name}: ${o.excerpt}`)
      await row.unchanged?.()
      const alive = await signedSend({ method: 'HEAD', path: `/${node.bucket}` })
      assert.equal(alive.status, 200, 'the node answers the next request')
    })
  }
}
