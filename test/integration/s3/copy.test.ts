/**
 * CopyObject and UploadPartCopy through the AWS SDK: metadata directives, copy-source
 * conditions, copying onto itself, across buckets and permissions, ranges, and that copies share
 * blocks instead of rewriting them.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { BLOCK_SIZE, blockFiles, blockHashes, expectBlocks } from '../../helpers/blocks.ts'
import { getBytes, md5Hex, rawRequest, s3Client, s3Error, useTestNode } from '../../helpers/s3.ts'

const MiB = 1024 * 1024

let node: TestNode
let s3: S3Client

useTestNode({ block_gc_delay_msec: 200 }, (n, c) => {
  node = n
  s3 = c
})

const put = (key: string, body: Buffer | string, extra: Partial<ConstructorParameters<typeof PutObjectCommand>[0]> = {}) =>
  s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: key, Body: body, ...extra }))

const copy = (key: string, source: string, extra: Partial<ConstructorParameters<typeof CopyObjectCommand>[0]> = {}) =>
  s3.send(new CopyObjectCommand({ Bucket: node.bucket, Key: key, CopySource: source, ...extra }))

describe('CopyObject', () => {
  const big = randomBytes(3 * MiB + 100)
  const small = Buffer.from('a small inline object')
  const meta = { ContentType: 'text/x-source', CacheControl: 'max-age=5', Metadata: { origin: 'source' } }

  before(async () => {
    await put('src/big', big, meta)
    await put('src/small', small, meta)
  })

  test('COPY (the default) keeps content, ETag and metadata, for block and inline objects', async () => {
    for (const [src, body] of [
      ['src/big', big],
      ['src/small', small],
    ] as const) {
      const r = await copy(`dst/copy-${src}`, `${node.bucket}/${src}`)
      assert.equal(r.CopyObjectResult?.ETag, `"${md5Hex(body)}"`)
      assert.ok(r.CopyObjectResult?.LastModified instanceof Date, 'CopyObjectResult has LastModified')
      assert.ok(r.VersionId, 'the copy has a version id')
      const got = await getBytes(s3, node.bucket, `dst/copy-${src}`)
      assert.ok(got.equals(body), `content of the copy of ${src}`)
      const h = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: `dst/copy-${src}` }))
      assert.equal(h.ContentType, 'text/x-source')
      assert.equal(h.CacheControl, 'max-age=5')
      assert.deepEqual(h.Metadata, { origin: 'source' })
      assert.equal(h.ETag, `"${md5Hex(body)}"`)
    }
  })

  test('a copy shares the source blocks: no block is written', async () => {
    const before = await blockFiles(node)
    await copy('dst/shared', `/${node.bucket}/src/big`)
    const after = await blockFiles(node)
    assert.deepEqual([...after].sort(), [...before].sort())
  })

  test('REPLACE takes the metadata from the request', async () => {
    await copy('dst/replaced', `${node.bucket}/src/big`, {
      MetadataDirective: 'REPLACE',
      ContentType: 'application/x-new',
      Metadata: { fresh: 'yes' },
    })
    const h = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: 'dst/replaced' }))
    assert.equal(h.ContentType, 'application/x-new')
    assert.equal(h.CacheControl, undefined)
    assert.deepEqual(h.Metadata, { fresh: 'yes' })
    assert.ok((await getBytes(s3, node.bucket, 'dst/replaced')).equals(big), 'content is unchanged')
  })

  test('an unknown metadata directive is InvalidArgument', async () => {
    const r = await rawRequest(node, {
      method: 'PUT',
      path: `/${node.bucket}/dst/bad-directive`,
      headers: { 'x-amz-copy-source': `${node.bucket}/src/small`, 'x-amz-metadata-directive': 'MERGE' },
    })
    assert.equal(r.status, 400)
    assert.match(r.text, /<Code>InvalidArgument<\/Code>/)
  })

  test('copy-source conditions: 412 PreconditionFailed when they do not hold', async () => {
    const etag = `"${md5Hex(small)}"`
    const past = new Date(Date.now() - 86_400_000)
    const future = new Date(Date.now() + 86_400_000)
    const fail = [
      { CopySourceIfMatch: '"00000000000000000000000000000000"' },
      { CopySourceIfNoneMatch: etag },
      { CopySourceIfNoneMatch: '*' },
      { CopySourceIfModifiedSince: future },
      { CopySourceIfUnmodifiedSince: past },
      { CopySourceIfNoneMatch: etag, CopySourceIfModifiedSince: past },
    ]
    for (const cond of fail) {
      await assert.rejects(copy('dst/cond', `${node.bucket}/src/small`, cond), s3Error('PreconditionFailed', 412))
    }
    const pass = [
      { CopySourceIfMatch: etag },
      { CopySourceIfMatch: `"x", ${etag}` },
      { CopySourceIfNoneMatch: '"00000000000000000000000000000000"' },
      { CopySourceIfModifiedSince: past },
      { CopySourceIfUnmodifiedSince: future },
      // if-match holding makes if-unmodified-since irrelevant, as on AWS.
      { CopySourceIfMatch: etag, CopySourceIfUnmodifiedSince: past },
    ]
    for (const cond of pass) {
      const r = await copy('dst/cond', `${node.bucket}/src/small`, cond)
      assert.equal(r.CopyObjectResult?.ETag, etag)
    }
  })

  test('copying an object onto itself needs REPLACE', async () => {
    await put('self/obj', big, meta)
    await assert.rejects(copy('self/obj', `${node.bucket}/self/obj`), s3Error('InvalidRequest', 400))
    await copy('self/obj', `${node.bucket}/self/obj`, { MetadataDirective: 'REPLACE', ContentType: 'text/x-updated' })
    const h = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: 'self/obj' }))
    assert.equal(h.ContentType, 'text/x-updated')
    // The previous version's references are dropped: the blocks must stay for the new one.
    await sleep(500)
    assert.ok((await getBytes(s3, node.bucket, 'self/obj')).equals(big), 'content survives the GC delay')
  })

  test('URL-encoded source keys, a leading slash and a versionId (null, the only version here) are accepted', async () => {
    const key = 'src/with space+plus/ünï.txt'
    await put(key, 'encoded')
    const encoded = key
      .split('/')
      .map((s) => encodeURIComponent(s))
      .join('/')
    await copy('dst/encoded-1', `${node.bucket}/${encoded}`)
    await copy('dst/encoded-2', `/${node.bucket}/${encoded}?versionId=null`)
    assert.equal((await getBytes(s3, node.bucket, 'dst/encoded-1')).toString(), 'encoded')
    assert.equal((await getBytes(s3, node.bucket, 'dst/encoded-2')).toString(), 'encoded')
  })

  test('a missing source is NoSuchKey, a missing bucket NoSuchBucket, no key InvalidArgument', async () => {
    await assert.rejects(copy('dst/x', `${node.bucket}/src/missing`), s3Error('NoSuchKey', 404))
    await assert.rejects(copy('dst/x', 'no-such-bucket/src/small'), s3Error('NoSuchBucket', 404))
    await assert.rejects(copy('dst/x', node.bucket), s3Error('InvalidArgument', 400))
  })
})

describe('CopyObject across buckets', () => {
  test('copies into another bucket the key may write, and needs read on the source bucket', async () => {
    const n = node.node
    await n.buckets.create('copy-second')
    await n.buckets.allowKey('copy-second', node.key.accessKeyId, { read: true, write: true, owner: true })
    const body = randomBytes(2 * MiB)
    await put('cross/src', body)
    const r = await s3.send(
      new CopyObjectCommand({ Bucket: 'copy-second', Key: 'cross/dst', CopySource: `${node.bucket}/cross/src` }),
    )
    assert.equal(r.CopyObjectResult?.ETag, `"${md5Hex(body)}"`)
    assert.ok((await getBytes(s3, 'copy-second', 'cross/dst')).equals(body), 'content in the second bucket')

    // A key that may write to the second bucket but not read the first.
    const writer = await n.keys.create({ name: 'writer' })
    await n.buckets.allowKey('copy-second', writer.accessKeyId, { read: true, write: true })
    const w = s3Client(node, { credentials: { accessKeyId: writer.accessKeyId, secretAccessKey: writer.secretAccessKey } })
    try {
      await assert.rejects(
        w.send(new CopyObjectCommand({ Bucket: 'copy-second', Key: 'cross/denied', CopySource: `${node.bucket}/cross/src` })),
        s3Error('AccessDenied', 403),
      )
      // Reading and writing the same bucket is fine.
      await w.send(new CopyObjectCommand({ Bucket: 'copy-second', Key: 'cross/again', CopySource: 'copy-second/cross/dst' }))
      assert.ok((await getBytes(w, 'copy-second', 'cross/again')).equals(body), 'content of the copy')
      // Read on the source is not enough without write on the destination.
      await n.buckets.allowKey(node.bucket, writer.accessKeyId, { read: true, write: false })
      await assert.rejects(
        w.send(new CopyObjectCommand({ Bucket: node.bucket, Key: 'cross/nope', CopySource: 'copy-second/cross/dst' })),
        s3Error('AccessDenied', 403),
      )
    } finally {
      w.destroy()
    }
  })
})

describe('UploadPartCopy', () => {
  const source = randomBytes(6 * MiB + 300 * 1024)

  before(async () => {
    await put('upc/source', source)
  })

  test('ranges re-use whole blocks and rewrite the edges; the object assembles correctly', async () => {
    const key = 'upc/assembled'
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: node.bucket, Key: key }))
    const start = 512 * 1024
    const end = start + 5 * MiB - 1
    const before = await blockFiles(node)
    const p1 = await s3.send(
      new UploadPartCopyCommand({
        Bucket: node.bucket,
        Key: key,
        UploadId,
        PartNumber: 1,
        CopySource: `${node.bucket}/upc/source`,
        CopySourceRange: `bytes=${start}-${end}`,
      }),
    )
    const slice1 = source.subarray(start, end + 1)
    assert.equal(p1.CopyPartResult?.ETag, `"${md5Hex(slice1)}"`)
    // Blocks 1..4 of the source are re-used; only the two half blocks at the edges are new.
    const added = [...(await blockFiles(node))].filter((h) => !before.has(h))
    assert.equal(added.length, 2)

    const p2 = await s3.send(
      new UploadPartCopyCommand({
        Bucket: node.bucket,
        Key: key,
        UploadId,
        PartNumber: 2,
        CopySource: `${node.bucket}/upc/source`,
        CopySourceRange: 'bytes=100-199',
      }),
    )
    const slice2 = source.subarray(100, 200)
    assert.equal(p2.CopyPartResult?.ETag, `"${md5Hex(slice2)}"`)
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: node.bucket,
        Key: key,
        UploadId,
        MultipartUpload: {
          Parts: [
            { PartNumber: 1, ETag: p1.CopyPartResult?.ETag },
            { PartNumber: 2, ETag: p2.CopyPartResult?.ETag },
          ],
        },
      }),
    )
    assert.ok((await getBytes(s3, node.bucket, key)).equals(Buffer.concat([slice1, slice2])), 'content of the copy')
  })

  test('without a range the whole object is copied, inline sources included', async () => {
    await put('upc/inline', 'tiny inline source')
    const key = 'upc/whole'
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: node.bucket, Key: key }))
    const parts = []
    for (const [n, src] of [
      [1, 'upc/source'],
      [2, 'upc/inline'],
    ] as const) {
      const r = await s3.send(
        new UploadPartCopyCommand({
          Bucket: node.bucket,
          Key: key,
          UploadId,
          PartNumber: n,
          CopySource: `${node.bucket}/${src}`,
        }),
      )
      parts.push({ PartNumber: n, ETag: r.CopyPartResult?.ETag })
    }
    await s3.send(
      new CompleteMultipartUploadCommand({ Bucket: node.bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }),
    )
    const got = await getBytes(s3, node.bucket, key)
    assert.ok(got.equals(Buffer.concat([source, Buffer.from('tiny inline source')])), 'content of the copy')
  })

  test('a malformed range is InvalidArgument, one past the source InvalidRange, an unknown upload NoSuchUpload, conditions apply', async () => {
    const key = 'upc/errors'
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: node.bucket, Key: key }))
    const send = (extra: Partial<ConstructorParameters<typeof UploadPartCopyCommand>[0]>) =>
      s3.send(
        new UploadPartCopyCommand({
          Bucket: node.bucket,
          Key: key,
          UploadId,
          PartNumber: 1,
          CopySource: `${node.bucket}/upc/source`,
          ...extra,
        }),
      )
    for (const range of ['bytes=10-5', 'bytes=abc', 'bytes=-5']) {
      await assert.rejects(send({ CopySourceRange: range }), s3Error('InvalidArgument', 400))
    }
    // s3-tests' test_multipart_copy_invalid_range: a well-formed range past the end of the source.
    for (const range of [`bytes=0-${source.length}`, `bytes=0-${source.length + 16}`]) {
      await assert.rejects(send({ CopySourceRange: range }), s3Error('InvalidRange', 416))
    }
    const parts = await s3.send(new ListPartsCommand({ Bucket: node.bucket, Key: key, UploadId }))
    assert.equal(parts.Parts?.length ?? 0, 0, 'a refused UploadPartCopy stores no part')
    await assert.rejects(send({ UploadId: randomBytes(32).toString('hex') }), s3Error('NoSuchUpload', 404))
    await assert.rejects(send({ CopySourceIfMatch: '"nope"' }), s3Error('PreconditionFailed', 412))
  })
})

describe('copies and block garbage collection', () => {
  let n: TestNode
  let c: S3Client
  before(async () => {
    n = await startTestNode({ block_gc_delay_msec: 200 })
    c = s3Client(n)
  })
  after(async () => {
    c.destroy()
    await n.close()
  })

  test('blocks live as long as one copy references them', async () => {
    const body = randomBytes(3 * MiB + 1)
    await c.send(new PutObjectCommand({ Bucket: n.bucket, Key: 'gc/source', Body: body }))
    await c.send(new CopyObjectCommand({ Bucket: n.bucket, Key: 'gc/copy', CopySource: `${n.bucket}/gc/source` }))
    await c.send(new DeleteObjectCommand({ Bucket: n.bucket, Key: 'gc/source' }))
    await expectBlocks(n, blockHashes(body))
    assert.ok((await getBytes(c, n.bucket, 'gc/copy')).equals(body), 'the copy outlives its source')

    // A part copied from a range: its new edge blocks stay with the completed object.
    const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: n.bucket, Key: 'gc/ranged' }))
    const start = BLOCK_SIZE / 2
    const end = 2 * BLOCK_SIZE + 99
    const p = await c.send(
      new UploadPartCopyCommand({
        Bucket: n.bucket,
        Key: 'gc/ranged',
        UploadId,
        PartNumber: 1,
        CopySource: `${n.bucket}/gc/copy`,
        CopySourceRange: `bytes=${start}-${end}`,
      }),
    )
    await c.send(
      new CompleteMultipartUploadCommand({
        Bucket: n.bucket,
        Key: 'gc/ranged',
        UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p.CopyPartResult?.ETag }] },
      }),
    )
    const edges = [body.subarray(start, BLOCK_SIZE), body.subarray(2 * BLOCK_SIZE, end + 1)].map(
      (b) => blockHashes(b)[0] as string,
    )
    await c.send(new DeleteObjectCommand({ Bucket: n.bucket, Key: 'gc/copy' }))
    const whole = blockHashes(body)
    await expectBlocks(n, [whole[1] as string, ...edges])
    const expected = body.subarray(start, end + 1)
    assert.ok((await getBytes(c, n.bucket, 'gc/ranged')).equals(expected), 'ranged part content')

    await c.send(new DeleteObjectCommand({ Bucket: n.bucket, Key: 'gc/ranged' }))
    await expectBlocks(n, [])
  })
})
