/**
 * PutObject and HeadObject through the AWS SDK and raw requests: stored metadata, ETags of
 * inline and multi-block objects, Content-MD5, Content-Length rules and truncated bodies.
 */
import assert from 'node:assert/strict'
import { before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import type { TestNode } from '../../../lib/testing.ts'
import {
  getBytes,
  md5Base64,
  md5Hex,
  objectExists,
  rawRequest,
  randomBuffer,
  s3Error,
  sendRequest,
  sendTruncated,
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

const MiB = 1024 * 1024

describe('stored metadata', () => {
  const expires = new Date(Math.floor(Date.now() / 1000) * 1000 + 86_400_000)
  const meta = {
    ContentType: 'text/x-test; charset=utf-8',
    CacheControl: 'max-age=60, private',
    ContentDisposition: 'attachment; filename="report.txt"',
    ContentEncoding: 'identity',
    ContentLanguage: 'fr-CA',
    Expires: expires,
    Metadata: { color: 'blue', 'with-dash': 'Value With Spaces' },
  }

  before(async () => {
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'meta/full', Body: 'metadata body', ...meta }))
  })

  test('HeadObject returns every stored header and x-amz-meta-*', async () => {
    const h = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: 'meta/full' }))
    assert.equal(h.ContentType, meta.ContentType)
    assert.equal(h.CacheControl, meta.CacheControl)
    assert.equal(h.ContentDisposition, meta.ContentDisposition)
    assert.equal(h.ContentEncoding, meta.ContentEncoding)
    assert.equal(h.ContentLanguage, meta.ContentLanguage)
    assert.equal(h.Expires?.getTime(), expires.getTime())
    assert.deepEqual(h.Metadata, meta.Metadata)
    assert.equal(h.ContentLength, 'metadata body'.length)
    assert.equal(h.ETag, `"${md5Hex('metadata body')}"`)
    assert.equal(h.AcceptRanges, 'bytes')
    assert.ok(h.LastModified instanceof Date, 'LastModified is a date')
    assert.ok(Math.abs(Date.now() - h.LastModified.getTime()) < 60_000, 'LastModified is recent')
  })

  test('GetObject returns the same headers with the body', async () => {
    const g = await s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: 'meta/full' }))
    assert.equal(g.ContentType, meta.ContentType)
    assert.equal(g.CacheControl, meta.CacheControl)
    assert.equal(g.ContentDisposition, meta.ContentDisposition)
    assert.equal(g.ContentLanguage, meta.ContentLanguage)
    assert.equal(g.Expires?.getTime(), expires.getTime())
    assert.deepEqual(g.Metadata, meta.Metadata)
    assert.equal(await g.Body?.transformToString(), 'metadata body')
  })

  test('without Content-Type the object is binary/octet-stream', async () => {
    await rawRequest(node, { method: 'PUT', path: `/${node.bucket}/meta/untyped`, body: 'x' })
    const h = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: 'meta/untyped' }))
    assert.equal(h.ContentType, 'binary/octet-stream')
  })

  test('an overwrite replaces the metadata', async () => {
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'meta/over', Body: 'a', Metadata: { one: '1' } }))
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'meta/over', Body: 'b', Metadata: { two: '2' } }))
    const h = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: 'meta/over' }))
    assert.deepEqual(h.Metadata, { two: '2' })
  })

  test('user metadata over 2 KiB is MetadataTooLarge and stores nothing', async () => {
    await assert.rejects(
      s3.send(
        new PutObjectCommand({ Bucket: node.bucket, Key: 'meta/too-large', Body: 'x', Metadata: { big: 'v'.repeat(2100) } }),
      ),
      s3Error('MetadataTooLarge', 400),
    )
    assert.equal(await objectExists(s3, node.bucket, 'meta/too-large'), false)
  })

  test('x-amz-website-redirect-location is stored', async () => {
    await s3.send(
      new PutObjectCommand({ Bucket: node.bucket, Key: 'meta/redirect', Body: '', WebsiteRedirectLocation: '/elsewhere' }),
    )
    const h = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: 'meta/redirect' }))
    assert.equal(h.WebsiteRedirectLocation, '/elsewhere')
  })
})

describe('ETag and content', () => {
  test('the ETag of an inline object (< 3 KiB) is the MD5 of its body', async () => {
    const body = randomBuffer(2000)
    const put = await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'etag/small', Body: body }))
    assert.equal(put.ETag, `"${md5Hex(body)}"`)
    assert.deepEqual(await getBytes(s3, node.bucket, 'etag/small'), body)
  })

  test('the ETag of an empty object is the MD5 of nothing', async () => {
    const put = await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'etag/empty', Body: '' }))
    assert.equal(put.ETag, `"${md5Hex('')}"`)
    const h = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: 'etag/empty' }))
    assert.equal(h.ContentLength, 0)
    assert.equal((await getBytes(s3, node.bucket, 'etag/empty')).length, 0)
  })

  test('an object just over the inline threshold round-trips', async () => {
    const body = randomBuffer(3073)
    const put = await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'etag/threshold', Body: body }))
    assert.equal(put.ETag, `"${md5Hex(body)}"`)
    assert.deepEqual(await getBytes(s3, node.bucket, 'etag/threshold'), body)
  })

  test('a 20 MiB object (20 blocks) round-trips, with the MD5 ETag and exact ranges across blocks', async () => {
    const body = randomBuffer(20 * MiB + 12345)
    const put = await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'etag/big', Body: body }))
    assert.equal(put.ETag, `"${md5Hex(body)}"`)
    const h = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: 'etag/big' }))
    assert.equal(h.ContentLength, body.length)
    assert.equal(h.ETag, `"${md5Hex(body)}"`)
    const got = await getBytes(s3, node.bucket, 'etag/big')
    assert.equal(got.length, body.length)
    assert.equal(sha256Hex(got), sha256Hex(body))
    const from = 3 * MiB - 10
    const to = 5 * MiB + 10
    const r = await s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: 'etag/big', Range: `bytes=${from}-${to}` }))
    assert.equal(r.ContentRange, `bytes ${from}-${to}/${body.length}`)
    const part = Buffer.from((await r.Body?.transformToByteArray()) ?? [])
    assert.ok(part.equals(body.subarray(from, to + 1)), 'the range spanning three blocks is exact')
  })

  test('a multi-block object overwritten by a small one serves the small one', async () => {
    const big = randomBuffer(2 * MiB + 1)
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'etag/overwrite', Body: big }))
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'etag/overwrite', Body: 'small now' }))
    assert.equal((await getBytes(s3, node.bucket, 'etag/overwrite')).toString(), 'small now')
  })
})

describe('Content-MD5', () => {
  test('a matching Content-MD5 is accepted', async () => {
    const body = 'md5 checked'
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'md5/ok', Body: body, ContentMD5: md5Base64(body) }))
    assert.equal((await getBytes(s3, node.bucket, 'md5/ok')).toString(), body)
  })

  test('a wrong Content-MD5 is BadDigest and stores nothing', async () => {
    await assert.rejects(
      s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'md5/bad', Body: 'body', ContentMD5: md5Base64('other') })),
      s3Error('BadDigest', 400),
    )
    assert.equal(await objectExists(s3, node.bucket, 'md5/bad'), false)
  })

  test('a wrong Content-MD5 on a multi-block body keeps the previous version', async () => {
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'md5/keep', Body: 'previous' }))
    const body = randomBuffer(2 * MiB + 7)
    await assert.rejects(
      s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'md5/keep', Body: body, ContentMD5: md5Base64('nope') })),
      s3Error('BadDigest', 400),
    )
    assert.equal((await getBytes(s3, node.bucket, 'md5/keep')).toString(), 'previous')
  })

  test('a malformed Content-MD5 is InvalidDigest and stores nothing', async () => {
    const r = await rawRequest(node, {
      method: 'PUT',
      path: `/${node.bucket}/md5/malformed`,
      body: 'body',
      headers: { 'content-md5': 'not base64 at all' },
    })
    assert.equal(r.status, 400)
    assert.equal(xmlField(r.text, 'Code'), 'InvalidDigest')
    assert.equal(await objectExists(s3, node.bucket, 'md5/malformed'), false)
  })
})

describe('request body framing', () => {
  test('a chunked PUT without Content-Length is MissingContentLength (411)', async () => {
    const s = await signRequest(node, {
      method: 'PUT',
      path: `/${node.bucket}/framing/chunked`,
      body: 'chunked body',
      headers: { 'transfer-encoding': 'chunked' },
    })
    const r = await sendRequest(s)
    assert.equal(r.status, 411, r.text)
    assert.equal(xmlField(r.text, 'Code'), 'MissingContentLength')
    assert.equal(await objectExists(s3, node.bucket, 'framing/chunked'), false)
  })

  for (const [label, announced, sent] of [
    ['an inline-sized', 2000, 100],
    ['a multi-block', 3 * MiB, MiB + 500],
  ] as const) {
    test(`${label} body shorter than Content-Length is refused and stores nothing`, async () => {
      const key = `framing/truncated-${announced}`
      await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: key, Body: 'previous' }))
      const s = await signRequest(node, {
        method: 'PUT',
        path: `/${node.bucket}/${key}`,
        payloadHash: 'UNSIGNED-PAYLOAD',
        headers: { 'content-length': String(announced) },
      })
      const answer = await sendTruncated(s, randomBuffer(sent))
      if (answer !== '') {
        assert.match(answer, /^HTTP\/1\.1 400/, answer)
        assert.match(answer, /<Code>IncompleteBody<\/Code>/)
      }
      // The server may still be cleaning up when the socket closes.
      for (let i = 0; i < 20; i++) {
        if ((await getBytes(s3, node.bucket, key)).toString() !== 'previous') break
        await sleep(10)
      }
      assert.equal((await getBytes(s3, node.bucket, key)).toString(), 'previous')
      const listed = await rawRequest(node, { method: 'GET', path: `/${node.bucket}`, query: { prefix: key } })
      assert.match(listed.text, /<Size>8<\/Size>/)
    })
  }

  test('the server keeps answering after truncated uploads', async () => {
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'framing/after', Body: 'alive' }))
    assert.equal((await getBytes(s3, node.bucket, 'framing/after')).toString(), 'alive')
  })
})
