/**
 * Conditional writes (If-None-Match: *, If-Match) on PutObject, CopyObject and
 * CompleteMultipartUpload through the AWS SDK and raw requests, on one node.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import type { TestNode } from '../../../lib/testing.ts'
import { getBytes, md5Hex, randomBuffer, rawRequest, s3Error, useTestNode, xmlField } from '../../helpers/s3.ts'

let node: TestNode
let s3: S3Client

useTestNode({}, (n, c) => {
  node = n
  s3 = c
})

const put = (key: string, body: string | Uint8Array, extra: { IfNoneMatch?: string; IfMatch?: string } = {}) =>
  s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: key, Body: body, ...extra }))

describe('PutObject with If-None-Match: *', () => {
  test('creates a missing key, then refuses to overwrite it with 412 and keeps the first body', async () => {
    const r = await put('c/new', 'first', { IfNoneMatch: '*' })
    assert.equal(r.ETag, `"${md5Hex('first')}"`)
    await assert.rejects(put('c/new', 'second', { IfNoneMatch: '*' }), s3Error('PreconditionFailed', 412))
    assert.equal((await getBytes(s3, node.bucket, 'c/new')).toString(), 'first')
  })

  test('a multi-block body is refused the same way, and a deleted key can be created again', async () => {
    const big = randomBuffer(3 * 1024 * 1024 + 7)
    await put('c/big', big, { IfNoneMatch: '*' })
    await assert.rejects(put('c/big', randomBuffer(2 * 1024 * 1024), { IfNoneMatch: '*' }), s3Error('PreconditionFailed', 412))
    assert.ok((await getBytes(s3, node.bucket, 'c/big')).equals(big))
    await s3.send(new DeleteObjectCommand({ Bucket: node.bucket, Key: 'c/big' }))
    await put('c/big', 'after delete', { IfNoneMatch: '*' })
    assert.equal((await getBytes(s3, node.bucket, 'c/big')).toString(), 'after delete')
  })

  test('an entity tag in If-None-Match, or both headers, is 501 NotImplemented, as AWS answers', async () => {
    await assert.rejects(put('c/etag', 'x', { IfNoneMatch: '"abc"' }), s3Error('NotImplemented', 501))
    await assert.rejects(put('c/etag', 'x', { IfNoneMatch: '*', IfMatch: '"abc"' }), s3Error('NotImplemented', 501))
    const r = await rawRequest(node, { method: 'HEAD', path: `/${node.bucket}/c/etag` })
    assert.equal(r.status, 404, 'nothing was written')
  })

  test('the 412 answer names the condition (raw request)', async () => {
    await put('c/raw', 'x')
    const r = await rawRequest(node, {
      method: 'PUT',
      path: `/${node.bucket}/c/raw`,
      headers: { 'if-none-match': '*' },
      body: 'y',
    })
    assert.equal(r.status, 412)
    assert.equal(xmlField(r.body.toString(), 'Code'), 'PreconditionFailed')
    assert.equal(xmlField(r.body.toString(), 'Condition'), 'If-None-Match')
  })

  test('16 concurrent writers on one node: exactly one succeeds and its body is stored', async () => {
    const bodies = Array.from({ length: 16 }, (_, i) => `writer-${i}`)
    const results = await Promise.allSettled(bodies.map((b) => put('c/race', b, { IfNoneMatch: '*' })))
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []))
    assert.equal(won.length, 1, `exactly one writer wins, got ${won.length}`)
    for (const r of results) {
      if (r.status === 'rejected') {
        const code = (r.reason as { name?: string }).name
        assert.ok(code === 'PreconditionFailed' || code === 'ConditionalRequestConflict', `loser got ${code}`)
      }
    }
    assert.equal((await getBytes(s3, node.bucket, 'c/race')).toString(), bodies[won[0] as number])
  })
})

describe('PutObject with If-Match', () => {
  test('replaces the object when the ETag matches and refuses a stale one with 412', async () => {
    const first = await put('m/obj', 'v1')
    const second = await put('m/obj', 'v2', { IfMatch: first.ETag as string })
    assert.equal((await getBytes(s3, node.bucket, 'm/obj')).toString(), 'v2')
    await assert.rejects(put('m/obj', 'v3', { IfMatch: first.ETag as string }), s3Error('PreconditionFailed', 412))
    assert.equal((await getBytes(s3, node.bucket, 'm/obj')).toString(), 'v2')
    await put('m/obj', 'v3', { IfMatch: second.ETag as string })
    assert.equal((await getBytes(s3, node.bucket, 'm/obj')).toString(), 'v3')
  })

  test('on a missing key is 404 NoSuchKey', async () => {
    await assert.rejects(put('m/missing', 'x', { IfMatch: `"${md5Hex('x')}"` }), s3Error('NoSuchKey', 404))
  })

  test('concurrent read-modify-write with If-Match: exactly one of those that read the same ETag wins', async () => {
    const base = await put('m/counter', '0')
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => put('m/counter', `next-${i}`, { IfMatch: base.ETag as string })),
    )
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []))
    assert.equal(won.length, 1, `exactly one writer wins, got ${won.length}`)
    assert.equal((await getBytes(s3, node.bucket, 'm/counter')).toString(), `next-${won[0]}`)
  })
})

describe('CopyObject and CompleteMultipartUpload with conditions', () => {
  test('CopyObject onto an existing destination with If-None-Match: * is 412; onto a new one it copies', async () => {
    await put('cp/src', 'source')
    await put('cp/taken', 'taken')
    const copy = (dest: string) =>
      s3.send(new CopyObjectCommand({ Bucket: node.bucket, Key: dest, CopySource: `${node.bucket}/cp/src`, IfNoneMatch: '*' }))
    await assert.rejects(copy('cp/taken'), s3Error('PreconditionFailed', 412))
    assert.equal((await getBytes(s3, node.bucket, 'cp/taken')).toString(), 'taken')
    await copy('cp/free')
    assert.equal((await getBytes(s3, node.bucket, 'cp/free')).toString(), 'source')
  })

  test('CompleteMultipartUpload with If-None-Match: * is 412 when the key exists; the upload stays', async () => {
    const key = 'mpu/cond'
    await put(key, 'someone else')
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: node.bucket, Key: key }))
    const part = await s3.send(
      new UploadPartCommand({ Bucket: node.bucket, Key: key, UploadId, PartNumber: 1, Body: 'part one' }),
    )
    const complete = (cond: { IfNoneMatch?: string; IfMatch?: string }) =>
      s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: node.bucket,
          Key: key,
          UploadId,
          ...cond,
          MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag as string }] },
        }),
      )
    await assert.rejects(complete({ IfNoneMatch: '*' }), s3Error('PreconditionFailed', 412))
    await assert.rejects(complete({ IfMatch: '"0123"' }), s3Error('PreconditionFailed', 412))
    assert.equal((await getBytes(s3, node.bucket, key)).toString(), 'someone else')
    // The upload is still there: completing it when the ETag matches replaces the object.
    await complete({ IfMatch: `"${md5Hex('someone else')}"` })
    assert.equal((await getBytes(s3, node.bucket, key)).toString(), 'part one')
    const head = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: key }))
    assert.match(head.ETag ?? '', /-1"$/)
  })

  test('CompleteMultipartUpload with If-None-Match: * on a free key completes', async () => {
    const key = 'mpu/free'
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: node.bucket, Key: key }))
    const part = await s3.send(new UploadPartCommand({ Bucket: node.bucket, Key: key, UploadId, PartNumber: 1, Body: 'only' }))
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: node.bucket,
        Key: key,
        UploadId,
        IfNoneMatch: '*',
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag as string }] },
      }),
    )
    assert.equal((await getBytes(s3, node.bucket, key)).toString(), 'only')
  })
})
