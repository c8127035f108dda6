/**
 * GetObject and HeadObject through the AWS SDK: ranges, conditional requests and `response-*`
 * overrides, on an inline object and on a multi-block one.
 */
import assert from 'node:assert/strict'
import { readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { md5Hex, randomBuffer, rawRequest, s3Client, s3Error, xmlField } from '../../helpers/s3.ts'

let node: TestNode
let s3: S3Client
const SMALL = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz')
const LARGE = randomBuffer(2 * 1024 * 1024 + 100)
let lastModified: Date

before(async () => {
  node = await startTestNode()
  s3 = s3Client(node)
  await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'small', Body: SMALL, ContentType: 'text/plain' }))
  await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'large', Body: LARGE }))
  const h = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: 'small' }))
  lastModified = h.LastModified as Date
})
after(async () => {
  s3.destroy()
  await node.close()
})

async function getRange(key: string, range: string): Promise<{ status: number; contentRange?: string; body: Buffer }> {
  const r = await s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: key, Range: range }))
  return {
    status: r.$metadata.httpStatusCode ?? 0,
    contentRange: r.ContentRange,
    body: Buffer.from((await r.Body?.transformToByteArray()) ?? []),
  }
}

/** Status of a GetObject, whether it succeeds or not (304 and 412 come back as SDK errors). */
async function getStatus(input: Omit<ConstructorParameters<typeof GetObjectCommand>[0], 'Bucket'>): Promise<number> {
  try {
    const r = await s3.send(new GetObjectCommand({ Bucket: node.bucket, ...input }))
    await r.Body?.transformToByteArray()
    return r.$metadata.httpStatusCode ?? 0
  } catch (err) {
    return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? 0
  }
}

describe('Range', () => {
  for (const [key, body] of [
    ['small', SMALL],
    ['large', LARGE],
  ] as const) {
    test(`${key}: bytes=0-9 answers the first ten bytes with 206`, async () => {
      const r = await getRange(key, 'bytes=0-9')
      assert.equal(r.status, 206)
      assert.equal(r.contentRange, `bytes 0-9/${body.length}`)
      assert.ok(r.body.equals(body.subarray(0, 10)), 'first ten bytes')
    })

    test(`${key}: bytes=10- answers the rest`, async () => {
      const r = await getRange(key, 'bytes=10-')
      assert.equal(r.status, 206)
      assert.equal(r.contentRange, `bytes 10-${body.length - 1}/${body.length}`)
      assert.ok(r.body.equals(body.subarray(10)), 'from byte 10 to the end')
    })

    test(`${key}: bytes=-5 answers the last five bytes`, async () => {
      const r = await getRange(key, 'bytes=-5')
      assert.equal(r.status, 206)
      assert.equal(r.contentRange, `bytes ${body.length - 5}-${body.length - 1}/${body.length}`)
      assert.ok(r.body.equals(body.subarray(body.length - 5)), 'last five bytes')
    })

    test(`${key}: a range ending past the end is clamped`, async () => {
      const r = await getRange(key, `bytes=${body.length - 3}-${body.length + 1000}`)
      assert.equal(r.status, 206)
      assert.ok(r.body.equals(body.subarray(body.length - 3)), 'last three bytes')
    })

    test(`${key}: a range starting past the end is InvalidRange (416)`, async () => {
      await assert.rejects(
        s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: key, Range: `bytes=${body.length}-` })),
        s3Error('InvalidRange', 416),
      )
    })
  }

  test('a range crossing a block boundary is exact', async () => {
    const from = 1024 * 1024 - 7
    const r = await getRange('large', `bytes=${from}-${from + 20}`)
    assert.ok(r.body.equals(LARGE.subarray(from, from + 21)), 'bytes across the first block boundary')
  })

  test('the 416 answer names the object size in Content-Range', async () => {
    const r = await rawRequest(node, {
      method: 'GET',
      path: `/${node.bucket}/small`,
      headers: { range: 'bytes=1000-2000' },
    })
    assert.equal(r.status, 416)
    assert.equal(xmlField(r.text, 'Code'), 'InvalidRange')
    assert.equal(r.headers['content-range'], `bytes */${SMALL.length}`)
  })

  test('an unparseable Range is ignored (whole object, 200)', async () => {
    const r = await rawRequest(node, { method: 'GET', path: `/${node.bucket}/small`, headers: { range: 'lines=1-2' } })
    assert.equal(r.status, 200)
    assert.ok(r.body.equals(SMALL), 'the whole object')
  })

  test('HeadObject with a Range answers 206 with the range length', async () => {
    const h = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: 'small', Range: 'bytes=2-4' }))
    assert.equal(h.$metadata.httpStatusCode, 206)
    assert.equal(h.ContentLength, 3)
    assert.equal(h.ContentRange, `bytes 2-4/${SMALL.length}`)
  })
})

describe('conditional requests', () => {
  const etag = `"${md5Hex(SMALL)}"`

  test('If-Match with the ETag answers 200', async () => {
    assert.equal(await getStatus({ Key: 'small', IfMatch: etag }), 200)
    assert.equal(await getStatus({ Key: 'small', IfMatch: '*' }), 200)
  })

  test('If-Match with another ETag is PreconditionFailed (412)', async () => {
    await assert.rejects(
      s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: 'small', IfMatch: '"0000"' })),
      s3Error('PreconditionFailed', 412),
    )
  })

  test('If-None-Match with the ETag answers 304 without a body', async () => {
    assert.equal(await getStatus({ Key: 'small', IfNoneMatch: etag }), 304)
    const r = await rawRequest(node, { method: 'GET', path: `/${node.bucket}/small`, headers: { 'if-none-match': etag } })
    assert.equal(r.status, 304)
    assert.equal(r.body.length, 0)
    assert.equal(r.headers.etag, etag)
  })

  test('If-None-Match with another ETag answers 200', async () => {
    assert.equal(await getStatus({ Key: 'small', IfNoneMatch: '"0000"' }), 200)
  })

  test('If-Modified-Since at or after Last-Modified answers 304', async () => {
    assert.equal(await getStatus({ Key: 'small', IfModifiedSince: lastModified }), 304)
    assert.equal(await getStatus({ Key: 'small', IfModifiedSince: new Date(Date.now() + 3_600_000) }), 304)
  })

  test('If-Modified-Since before Last-Modified answers 200', async () => {
    assert.equal(await getStatus({ Key: 'small', IfModifiedSince: new Date(lastModified.getTime() - 3_600_000) }), 200)
  })

  test('If-Unmodified-Since before Last-Modified is PreconditionFailed (412)', async () => {
    await assert.rejects(
      s3.send(
        new GetObjectCommand({
          Bucket: node.bucket,
          Key: 'small',
          IfUnmodifiedSince: new Date(lastModified.getTime() - 3_600_000),
        }),
      ),
      s3Error('PreconditionFailed', 412),
    )
  })

  test('If-Unmodified-Since at Last-Modified answers 200', async () => {
    assert.equal(await getStatus({ Key: 'small', IfUnmodifiedSince: lastModified }), 200)
  })

  test('If-Match wins over a failing If-Unmodified-Since; If-None-Match over If-Modified-Since', async () => {
    const old = new Date(lastModified.getTime() - 3_600_000)
    assert.equal(await getStatus({ Key: 'small', IfMatch: etag, IfUnmodifiedSince: old }), 200)
    assert.equal(await getStatus({ Key: 'small', IfNoneMatch: '"0000"', IfModifiedSince: new Date() }), 200)
  })

  test('HeadObject honours the same conditions', async () => {
    await assert.rejects(
      s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: 'small', IfMatch: '"0000"' })),
      (err: unknown) => (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 412,
    )
    await assert.rejects(
      s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: 'small', IfNoneMatch: etag })),
      (err: unknown) => (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 304,
    )
  })
})

describe('response-* overrides', () => {
  test('each response-* parameter replaces its header', async () => {
    const expires = new Date('2030-01-01T00:00:00Z')
    const r = await s3.send(
      new GetObjectCommand({
        Bucket: node.bucket,
        Key: 'small',
        ResponseContentType: 'application/x-override',
        ResponseContentDisposition: 'attachment; filename="o.txt"',
        ResponseContentLanguage: 'de',
        ResponseCacheControl: 'no-store',
        ResponseContentEncoding: 'identity',
        ResponseExpires: expires,
      }),
    )
    assert.equal(r.ContentType, 'application/x-override')
    assert.equal(r.ContentDisposition, 'attachment; filename="o.txt"')
    assert.equal(r.ContentLanguage, 'de')
    assert.equal(r.CacheControl, 'no-store')
    assert.equal(r.ContentEncoding, 'identity')
    assert.equal(r.Expires?.getTime(), expires.getTime())
    assert.equal(await r.Body?.transformToString(), SMALL.toString())
  })

  test('overrides do not change the stored metadata', async () => {
    const h = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: 'small' }))
    assert.equal(h.ContentType, 'text/plain')
    assert.equal(h.ContentDisposition, undefined)
  })
})

describe('missing objects', () => {
  test('GetObject of a missing key is NoSuchKey (404)', async () => {
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: 'missing' })), s3Error('NoSuchKey', 404))
  })

  test('HeadObject of a missing key answers 404 without a body', async () => {
    const r = await rawRequest(node, { method: 'HEAD', path: `/${node.bucket}/missing` })
    assert.equal(r.status, 404)
    assert.equal(r.body.length, 0)
    assert.ok(typeof r.headers['x-amz-request-id'] === 'string', 'the answer carries a request id')
  })

  test('GetObject in a missing bucket is NoSuchBucket (404)', async () => {
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: 'no-such-bucket', Key: 'small' })), s3Error('NoSuchBucket', 404))
  })
})

describe('missing blocks', () => {
  test('a GET whose first block is gone answers an error status instead of dropping the connection', async () => {
    const body = randomBuffer(1024 * 1024 + 10)
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'lost-blocks', Body: body }))
    const before = new Set(await blockFiles(join(node.dir, 'data')))
    // A second object's blocks are the only ones that appear; remove them all.
    const other = randomBuffer(1024 * 1024 + 20)
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'lost-blocks-2', Body: other }))
    const added = (await blockFiles(join(node.dir, 'data'))).filter((f) => !before.has(f))
    assert.equal(added.length, 2, `two new block files: ${added.join(', ')}`)
    await Promise.all(added.map((f) => rm(f)))
    const r = await rawRequest(node, { method: 'GET', path: `/${node.bucket}/lost-blocks-2` })
    // A block no node holds any more is our failure, answered in S3's format before any header
    // of a 200 went out (the client can tell the GET failed and retry or report it).
    assert.equal(r.status, 500, r.text)
    assert.equal(xmlField(r.text, 'Code'), 'InternalError', r.text)
    // The object that still has its blocks reads whole.
    const ok = await s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: 'lost-blocks' }))
    assert.equal(md5Hex(Buffer.from((await ok.Body?.transformToByteArray()) ?? [])), md5Hex(body))
  })
})

async function blockFiles(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && /^[0-9a-f]{64}(\.zst)?$/.test(e.name)) out.push(join(e.parentPath ?? e.path, e.name))
  }
  return out
}
