/**
 * SigV4 authentication through the AWS SDK and raw signed requests: payload hashes, region,
 * clock skew, unknown keys, wrong secrets, presigned URLs and the SDK's default checksums.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Readable } from 'node:stream'
import { GetObjectCommand, ListBucketsCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import type { TestNode } from '../../../lib/testing.ts'
import {
  captureRequests,
  crc32Base64,
  getBytes,
  objectExists,
  presignUrl,
  rawRequest,
  randomBuffer,
  s3Client,
  s3Error,
  sendRequest,
  sha256Hex,
  signRequest,
  xmlField,
  useTestNode,
} from '../../helpers/s3.ts'

let node: TestNode
let s3: S3Client

useTestNode({}, (n, c) => {
  node = n
  s3 = c
})

describe('payload hash (x-amz-content-sha256)', () => {
  test('a hex digest that matches the body is accepted', async () => {
    const body = 'signed payload'
    const r = await rawRequest(node, { method: 'PUT', path: `/${node.bucket}/auth/hex`, body, payloadHash: sha256Hex(body) })
    assert.equal(r.status, 200, r.text)
    assert.equal((await getBytes(s3, node.bucket, 'auth/hex')).toString(), body)
  })

  test('a hex digest of another body is XAmzContentSHA256Mismatch and stores nothing', async () => {
    const r = await rawRequest(node, {
      method: 'PUT',
      path: `/${node.bucket}/auth/mismatch`,
      body: 'the real body',
      payloadHash: sha256Hex('another body'),
    })
    assert.equal(r.status, 400)
    assert.equal(xmlField(r.text, 'Code'), 'XAmzContentSHA256Mismatch')
    assert.equal(await objectExists(s3, node.bucket, 'auth/mismatch'), false)
  })

  test('a mismatching digest leaves the previous version intact', async () => {
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'auth/keep', Body: 'v1' }))
    const r = await rawRequest(node, {
      method: 'PUT',
      path: `/${node.bucket}/auth/keep`,
      body: 'v2',
      payloadHash: sha256Hex('v3'),
    })
    assert.equal(xmlField(r.text, 'Code'), 'XAmzContentSHA256Mismatch')
    assert.equal((await getBytes(s3, node.bucket, 'auth/keep')).toString(), 'v1')
  })

  test('UNSIGNED-PAYLOAD is accepted', async () => {
    const r = await rawRequest(node, {
      method: 'PUT',
      path: `/${node.bucket}/auth/unsigned`,
      body: 'unsigned body',
      payloadHash: 'UNSIGNED-PAYLOAD',
    })
    assert.equal(r.status, 200, r.text)
    assert.equal((await getBytes(s3, node.bucket, 'auth/unsigned')).toString(), 'unsigned body')
  })

  test('a malformed payload hash is refused', async () => {
    const r = await rawRequest(node, {
      method: 'PUT',
      path: `/${node.bucket}/auth/bad-hash`,
      body: 'x',
      payloadHash: 'not-a-hash',
    })
    assert.equal(r.status, 400, r.text)
    assert.equal(await objectExists(s3, node.bucket, 'auth/bad-hash'), false)
  })
})

describe('credentials and scope', () => {
  test('a request signed for another region is AuthorizationHeaderMalformed naming "garage"', async () => {
    const other = s3Client(node, { region: 'us-east-1' })
    await assert.rejects(other.send(new ListBucketsCommand({})), s3Error('AuthorizationHeaderMalformed', 400))
    other.destroy()
    const r = await rawRequest(node, { method: 'GET', path: '/', region: 'us-east-1' })
    assert.equal(r.status, 400)
    assert.equal(xmlField(r.text, 'Code'), 'AuthorizationHeaderMalformed')
    assert.equal(xmlField(r.text, 'Region'), 'garage')
    assert.match(xmlField(r.text, 'Message') ?? '', /garage/)
  })

  for (const [label, offsetMs] of [
    ['20 minutes late', -20 * 60_000],
    ['20 minutes early', 20 * 60_000],
  ] as const) {
    test(`a request signed ${label} is RequestTimeTooSkewed`, async () => {
      const r = await rawRequest(node, {
        method: 'PUT',
        path: `/${node.bucket}/auth/skewed`,
        body: 'x',
        signingDate: new Date(Date.now() + offsetMs),
      })
      assert.equal(r.status, 403)
      assert.equal(xmlField(r.text, 'Code'), 'RequestTimeTooSkewed')
      assert.equal(await objectExists(s3, node.bucket, 'auth/skewed'), false)
    })
  }

  test('a request signed 5 minutes off is accepted', async () => {
    const r = await rawRequest(node, { method: 'GET', path: '/', signingDate: new Date(Date.now() - 5 * 60_000) })
    assert.equal(r.status, 200, r.text)
  })

  test('an unknown access key is InvalidAccessKeyId', async () => {
    const stranger = s3Client(node, {
      credentials: { accessKeyId: 'GK000000000000000000000000', secretAccessKey: 'x'.repeat(64) },
    })
    await assert.rejects(stranger.send(new ListBucketsCommand({})), s3Error('InvalidAccessKeyId', 403))
    await assert.rejects(
      stranger.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'auth/stranger', Body: 'x' })),
      s3Error('InvalidAccessKeyId', 403),
    )
    stranger.destroy()
    assert.equal(await objectExists(s3, node.bucket, 'auth/stranger'), false)
  })

  test('a wrong secret is SignatureDoesNotMatch', async () => {
    const wrong = s3Client(node, {
      credentials: { accessKeyId: node.key.accessKeyId, secretAccessKey: `${node.key.secretAccessKey}x` },
    })
    await assert.rejects(
      wrong.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'auth/wrong-secret', Body: 'x' })),
      s3Error('SignatureDoesNotMatch', 403),
    )
    wrong.destroy()
    assert.equal(await objectExists(s3, node.bucket, 'auth/wrong-secret'), false)
  })

  test('an anonymous request is AccessDenied', async () => {
    const r = await rawRequest(node, { method: 'GET', path: `/${node.bucket}`, credentials: null })
    assert.equal(r.status, 403)
    assert.equal(xmlField(r.text, 'Code'), 'AccessDenied')
  })

  test('an x-amz-* header left out of the signature is refused', async () => {
    const s = await signRequest(node, { method: 'PUT', path: `/${node.bucket}/auth/unsigned-header`, body: 'x' })
    s.headers['x-amz-meta-sneaky'] = 'yes'
    const r = await sendRequest(s)
    assert.equal(r.status, 403, r.text)
    assert.equal(await objectExists(s3, node.bucket, 'auth/unsigned-header'), false)
  })

  test('an expired key is refused', async () => {
    const k = await node.node.keys.create({ name: 'soon-expired' })
    await node.node.buckets.allowKey(node.bucket, k.accessKeyId, { read: true })
    await node.node.keys.update(k.accessKeyId, { expiresAt: new Date(Date.now() - 1000) })
    const r = await rawRequest(node, {
      method: 'GET',
      path: `/${node.bucket}`,
      credentials: { accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey },
    })
    assert.equal(r.status, 403)
    assert.equal(xmlField(r.text, 'Code'), 'AccessDenied')
  })
})

describe('presigned URLs', () => {
  test('a presigned GET downloads the object', async () => {
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'presigned/get me', Body: 'presigned content' }))
    const url = await presignUrl(node, { method: 'GET', path: `/${node.bucket}/presigned/get%20me`, expiresIn: 60 })
    const res = await fetch(url)
    assert.equal(res.status, 200)
    assert.equal(await res.text(), 'presigned content')
  })

  test('a presigned GET honours response-* overrides it signed', async () => {
    const url = await presignUrl(node, {
      method: 'GET',
      path: `/${node.bucket}/presigned/get%20me`,
      query: { 'response-content-type': 'text/x-presigned' },
      expiresIn: 60,
    })
    const res = await fetch(url)
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('content-type'), 'text/x-presigned')
    await res.arrayBuffer()
  })

  test('a presigned PUT uploads the object', async () => {
    const url = await presignUrl(node, { method: 'PUT', path: `/${node.bucket}/presigned/put`, expiresIn: 60 })
    const res = await fetch(url, { method: 'PUT', body: 'uploaded through a presigned URL' })
    assert.equal(res.status, 200, await res.text())
    assert.equal((await getBytes(s3, node.bucket, 'presigned/put')).toString(), 'uploaded through a presigned URL')
  })

  test('an expired presigned URL is AccessDenied', async () => {
    const url = await presignUrl(node, {
      method: 'GET',
      path: `/${node.bucket}/presigned/get%20me`,
      expiresIn: 60,
      signingDate: new Date(Date.now() - 10 * 60_000),
    })
    const res = await fetch(url)
    const text = await res.text()
    assert.equal(res.status, 403)
    assert.equal(xmlField(text, 'Code'), 'AccessDenied')
    assert.match(xmlField(text, 'Message') ?? '', /expired/i)
  })

  test('an expired presigned PUT stores nothing', async () => {
    const url = await presignUrl(node, {
      method: 'PUT',
      path: `/${node.bucket}/presigned/expired-put`,
      expiresIn: 1,
      signingDate: new Date(Date.now() - 60_000),
    })
    const res = await fetch(url, { method: 'PUT', body: 'late' })
    assert.equal(res.status, 403, await res.text())
    assert.equal(await objectExists(s3, node.bucket, 'presigned/expired-put'), false)
  })

  test('a tampered presigned URL is SignatureDoesNotMatch', async () => {
    const url = await presignUrl(node, { method: 'GET', path: `/${node.bucket}/presigned/get%20me`, expiresIn: 60 })
    url.pathname = `/${node.bucket}/presigned/other`
    const res = await fetch(url)
    const text = await res.text()
    assert.equal(res.status, 403)
    assert.equal(xmlField(text, 'Code'), 'SignatureDoesNotMatch')
  })
})

describe('SDK checksums', () => {
  test('a buffer body is sent with x-amz-checksum-crc32 and the checksum is stored', async (t) => {
    const client = s3Client(node)
    t.after(() => client.destroy())
    const seen = captureRequests(client)
    const body = randomBuffer(10_000)
    const put = await client.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'checksum/buffer', Body: body }))
    const sent = seen.find((r) => r.method === 'PUT')
    assert.equal(sent?.headers['x-amz-checksum-crc32'], crc32Base64(body))
    assert.equal(put.ChecksumCRC32, crc32Base64(body))
    const got = await client.send(new GetObjectCommand({ Bucket: node.bucket, Key: 'checksum/buffer', ChecksumMode: 'ENABLED' }))
    assert.equal(got.ChecksumCRC32, crc32Base64(body))
    assert.deepEqual(Buffer.from((await got.Body?.transformToByteArray()) ?? []), body)
  })

  test('a stream body goes through aws-chunked with a CRC32 trailer', async (t) => {
    const client = s3Client(node)
    t.after(() => client.destroy())
    const seen = captureRequests(client)
    const body = randomBuffer(2 * 1024 * 1024 + 300_000)
    const parts = [body.subarray(0, 100_000), body.subarray(100_000, 1_500_000), body.subarray(1_500_000)]
    const put = await client.send(
      new PutObjectCommand({
        Bucket: node.bucket,
        Key: 'checksum/stream',
        Body: Readable.from(parts),
        ContentLength: body.length,
      }),
    )
    const sent = seen.find((r) => r.method === 'PUT')
    assert.equal(sent?.headers['x-amz-content-sha256'], 'STREAMING-UNSIGNED-PAYLOAD-TRAILER')
    assert.equal(sent?.headers['x-amz-trailer'], 'x-amz-checksum-crc32')
    assert.equal(put.ChecksumCRC32, crc32Base64(body))
    const got = await client.send(new GetObjectCommand({ Bucket: node.bucket, Key: 'checksum/stream', ChecksumMode: 'ENABLED' }))
    assert.equal(got.ChecksumCRC32, crc32Base64(body))
    assert.equal(got.ContentEncoding, undefined, 'aws-chunked must not be stored as a content encoding')
    assert.deepEqual(Buffer.from((await got.Body?.transformToByteArray()) ?? []), body)
  })

  test('a signed payload hash alone does not become the object checksum', async () => {
    const r = await rawRequest(node, { method: 'PUT', path: `/${node.bucket}/checksum/none`, body: 'plain' })
    assert.equal(r.status, 200, r.text)
    const sent = Object.keys(r.headers).filter((h) => h.startsWith('x-amz-checksum-'))
    assert.deepEqual(sent, [])
    const h = await rawRequest(node, {
      method: 'HEAD',
      path: `/${node.bucket}/checksum/none`,
      headers: { 'x-amz-checksum-mode': 'ENABLED' },
    })
    assert.equal(h.headers['x-amz-checksum-sha256'], undefined)
  })

  test('x-amz-checksum-algorithm without a value has the checksum computed and stored', async () => {
    const body = Buffer.from('compute my checksum')
    const r = await rawRequest(node, {
      method: 'PUT',
      path: `/${node.bucket}/checksum/computed`,
      body,
      headers: { 'x-amz-checksum-algorithm': 'CRC32' },
    })
    assert.equal(r.status, 200, r.text)
    assert.equal(r.headers['x-amz-checksum-crc32'], crc32Base64(body))
    const got = await s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: 'checksum/computed', ChecksumMode: 'ENABLED' }))
    assert.equal(got.ChecksumCRC32, crc32Base64(body))
    await got.Body?.transformToByteArray()
  })

  test('a wrong x-amz-checksum-crc32 is BadDigest and stores nothing', async () => {
    const r = await rawRequest(node, {
      method: 'PUT',
      path: `/${node.bucket}/checksum/wrong`,
      body: 'checksummed body',
      headers: { 'x-amz-checksum-crc32': crc32Base64(Buffer.from('another body')) },
    })
    assert.equal(r.status, 400)
    assert.equal(xmlField(r.text, 'Code'), 'BadDigest')
    assert.equal(await objectExists(s3, node.bucket, 'checksum/wrong'), false)
  })

  test('a wrong ChecksumCRC32 given to the SDK is BadDigest and keeps the previous version', async () => {
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'checksum/keep', Body: 'first' }))
    await assert.rejects(
      s3.send(
        new PutObjectCommand({
          Bucket: node.bucket,
          Key: 'checksum/keep',
          Body: 'second',
          ChecksumCRC32: crc32Base64(Buffer.from('third')),
        }),
      ),
      s3Error('BadDigest', 400),
    )
    assert.equal((await getBytes(s3, node.bucket, 'checksum/keep')).toString(), 'first')
  })
})
