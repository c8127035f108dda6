/**
 * GetBucketAcl (a view of the key's permissions; ACL writes in policy.test.ts) and bucket quotas (maximum objects and
 * bytes) enforced on PutObject, CopyObject and CompleteMultipartUpload.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetBucketAclCommand,
  PutBucketAclCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import type { TestNode } from '../../../lib/testing.ts'
import { getBytes, objectExists, randomBuffer, s3Client, s3Error, useTestNode } from '../../helpers/s3.ts'

let node: TestNode
let s3: S3Client

useTestNode({ block_gc_delay_msec: 200 }, (n, c) => {
  node = n
  s3 = c
})

/** A fresh bucket (local alias of the test key) with the given quotas. */
async function bucketWithQuotas(name: string, quotas: { maxObjects?: number; maxSize?: number }): Promise<string> {
  await s3.send(new CreateBucketCommand({ Bucket: name }))
  const info = (await node.node.buckets.list()).find((b) =>
    b.localAliases.some((a) => a.alias === name && a.accessKeyId === node.key.accessKeyId),
  )
  assert.ok(info !== undefined, `bucket ${name} was created`)
  await node.node.buckets.setQuotas(info.id, quotas)
  return name
}

function put(bucket: string, key: string, body: string | Uint8Array): Promise<unknown> {
  return s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }))
}

describe('GetBucketAcl', () => {
  test('the owner sees FULL_CONTROL for its own key', async () => {
    const r = await s3.send(new GetBucketAclCommand({ Bucket: node.bucket }))
    assert.equal(r.Owner?.ID, node.key.accessKeyId)
    assert.equal(r.Grants?.length, 1)
    assert.equal(r.Grants?.[0]?.Permission, 'FULL_CONTROL')
    assert.equal(r.Grants?.[0]?.Grantee?.Type, 'CanonicalUser')
    assert.equal(r.Grants?.[0]?.Grantee?.ID, node.key.accessKeyId)
  })

  test('a read/write key sees READ, READ_ACP and WRITE', async () => {
    const key = await node.node.keys.create({ name: 'rw' })
    await node.node.buckets.allowKey(node.bucket, key.accessKeyId, { read: true, write: true })
    const rw = s3Client(node, { credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey } })
    try {
      const r = await rw.send(new GetBucketAclCommand({ Bucket: node.bucket }))
      assert.deepEqual(
        r.Grants?.map((g) => g.Permission),
        ['READ', 'READ_ACP', 'WRITE'],
      )
    } finally {
      rw.destroy()
    }
  })

  test('ACL writes other than the canned private and public-read are AccessControlListNotSupported', async () => {
    await s3.send(new PutBucketAclCommand({ Bucket: node.bucket, ACL: 'private' }))
    await assert.rejects(
      s3.send(new PutBucketAclCommand({ Bucket: node.bucket, ACL: 'authenticated-read' })),
      s3Error('AccessControlListNotSupported', 400),
    )
  })
})

describe('quotas', () => {
  test('maximum objects: a new key past the limit is refused, overwrites are not', async () => {
    const b = await bucketWithQuotas('quota-objects', { maxObjects: 2 })
    await put(b, 'a', 'a')
    await put(b, 'b', 'b')
    await assert.rejects(put(b, 'c', 'c'), s3Error('QuotaExceeded', 403))
    assert.equal(await objectExists(s3, b, 'c'), false, 'nothing stored')
    await put(b, 'a', 'a again')
    assert.equal((await getBytes(s3, b, 'a')).toString(), 'a again')
    await s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'a' }))
    await put(b, 'c', 'c')
    assert.equal(await objectExists(s3, b, 'c'), true, 'deleting frees room')
  })

  test('maximum size: bytes are counted, an overwrite counts the difference', async () => {
    const b = await bucketWithQuotas('quota-bytes', { maxSize: 100 })
    await put(b, 'x', 'x'.repeat(60))
    await assert.rejects(put(b, 'y', 'y'.repeat(50)), s3Error('QuotaExceeded', 403))
    assert.equal(await objectExists(s3, b, 'y'), false, 'nothing stored')
    await put(b, 'x', 'x'.repeat(90))
    await assert.rejects(put(b, 'x', 'x'.repeat(101)), s3Error('QuotaExceeded', 403))
    assert.equal((await getBytes(s3, b, 'x')).length, 90, 'the previous version stays')
    await put(b, 'z', 'z'.repeat(10))
  })

  test('a large object over the limit is refused before any block is stored', async () => {
    const b = await bucketWithQuotas('quota-large', { maxSize: 1024 * 1024 })
    const before = node.node.status().blocks.bytesWritten
    await assert.rejects(put(b, 'big', randomBuffer(2 * 1024 * 1024)), s3Error('QuotaExceeded', 403))
    assert.equal(await objectExists(s3, b, 'big'), false)
    assert.equal(node.node.status().blocks.bytesWritten, before, 'no block written')
    const ok = randomBuffer(512 * 1024)
    await put(b, 'medium', ok)
    assert.deepEqual(await getBytes(s3, b, 'medium'), ok)
  })

  test('CopyObject is checked against the destination bucket', async () => {
    const b = await bucketWithQuotas('quota-copy', { maxSize: 1000 })
    await put(node.bucket, 'copy-src', 's'.repeat(800))
    await put(b, 'first', 'f'.repeat(300))
    await assert.rejects(
      s3.send(new CopyObjectCommand({ Bucket: b, Key: 'copy', CopySource: `${node.bucket}/copy-src` })),
      s3Error('QuotaExceeded', 403),
    )
    assert.equal(await objectExists(s3, b, 'copy'), false)
    await s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'first' }))
    await s3.send(new CopyObjectCommand({ Bucket: b, Key: 'copy', CopySource: `${node.bucket}/copy-src` }))
    assert.equal((await getBytes(s3, b, 'copy')).length, 800)
  })

  test('CompleteMultipartUpload is refused when the assembled object does not fit', async () => {
    const b = await bucketWithQuotas('quota-mpu', { maxSize: 4096, maxObjects: 10 })
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: b, Key: 'mpu' }))
    const part = await s3.send(
      new UploadPartCommand({ Bucket: b, Key: 'mpu', UploadId, PartNumber: 1, Body: randomBuffer(5000) }),
    )
    await assert.rejects(
      s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: b,
          Key: 'mpu',
          UploadId,
          MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] },
        }),
      ),
      s3Error('QuotaExceeded', 403),
    )
    assert.equal(await objectExists(s3, b, 'mpu'), false, 'nothing visible')
    await s3.send(new AbortMultipartUploadCommand({ Bucket: b, Key: 'mpu', UploadId }))
    await put(b, 'small', 'fits')
  })

  test('quotas can be lifted', async () => {
    const b = await bucketWithQuotas('quota-lifted', { maxObjects: 1 })
    await put(b, 'one', '1')
    await assert.rejects(put(b, 'two', '2'), s3Error('QuotaExceeded'))
    const info = (await node.node.buckets.list()).find((x) => x.localAliases.some((a) => a.alias === b))
    assert.ok(info !== undefined, 'bucket found')
    const updated = await node.node.buckets.setQuotas(info.id, {})
    assert.deepEqual(updated.quotas, { maxSize: null, maxObjects: null })
    await put(b, 'two', '2')
  })
})
