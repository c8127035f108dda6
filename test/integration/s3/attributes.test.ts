/** GetObjectAttributes through the AWS SDK: a single-part object, a multipart one with pagination. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectAttributesCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import type { TestNode } from '../../../lib/testing.ts'
import { md5Hex, randomBuffer, rawRequest, s3Error, useTestNode, xmlField } from '../../helpers/s3.ts'

let node: TestNode
let s3: S3Client

useTestNode({}, (n, c) => {
  node = n
  s3 = c
})

const ALL = ['ETag', 'Checksum', 'ObjectParts', 'StorageClass', 'ObjectSize'] as const

describe('GetObjectAttributes', () => {
  test('a single-part object: ETag, checksum, storage class and size; no ObjectParts', async () => {
    const body = Buffer.from('attributes of a small object')
    const put = await s3.send(
      new PutObjectCommand({ Bucket: node.bucket, Key: 'attr/small', Body: body, ChecksumAlgorithm: 'SHA256' }),
    )
    const r = await s3.send(
      new GetObjectAttributesCommand({ Bucket: node.bucket, Key: 'attr/small', ObjectAttributes: [...ALL] }),
    )
    assert.equal(r.ETag, md5Hex(body))
    assert.equal(r.ObjectSize, body.length)
    assert.equal(r.StorageClass, 'STANDARD')
    assert.equal(r.Checksum?.ChecksumSHA256, put.ChecksumSHA256)
    assert.equal(r.Checksum?.ChecksumType, 'FULL_OBJECT')
    assert.equal(r.ObjectParts, undefined)
    assert.equal(r.VersionId, put.VersionId)
    assert.ok(r.LastModified instanceof Date)
    // Only what was asked for.
    const some = await s3.send(
      new GetObjectAttributesCommand({ Bucket: node.bucket, Key: 'attr/small', ObjectAttributes: ['ObjectSize'] }),
    )
    assert.equal(some.ObjectSize, body.length)
    assert.equal(some.ETag, undefined)
    // By version id, and an unknown one.
    const byVersion = await s3.send(
      new GetObjectAttributesCommand({
        Bucket: node.bucket,
        Key: 'attr/small',
        VersionId: put.VersionId,
        ObjectAttributes: ['ETag'],
      }),
    )
    assert.equal(byVersion.ETag, md5Hex(body))
    await assert.rejects(
      s3.send(
        new GetObjectAttributesCommand({
          Bucket: node.bucket,
          Key: 'attr/small',
          VersionId: '00'.repeat(32),
          ObjectAttributes: ['ETag'],
        }),
      ),
      s3Error('NoSuchVersion', 404),
    )
  })

  test('a multipart object: parts listed with sizes, paginated by MaxParts and PartNumberMarker', async () => {
    const key = 'attr/multi'
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: node.bucket, Key: key }))
    const sizes = [5 * 1024 * 1024, 5 * 1024 * 1024, 1234]
    const parts = []
    for (const [i, size] of sizes.entries()) {
      const up = await s3.send(
        new UploadPartCommand({ Bucket: node.bucket, Key: key, UploadId, PartNumber: i + 1, Body: randomBuffer(size) }),
      )
      parts.push({ PartNumber: i + 1, ETag: up.ETag })
    }
    const done = await s3.send(
      new CompleteMultipartUploadCommand({ Bucket: node.bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }),
    )
    const first = await s3.send(
      new GetObjectAttributesCommand({ Bucket: node.bucket, Key: key, ObjectAttributes: [...ALL], MaxParts: 2 }),
    )
    assert.equal(`"${first.ETag}"`, done.ETag)
    assert.match(first.ETag ?? '', /-3$/)
    assert.equal(
      first.ObjectSize,
      sizes.reduce((a, b) => a + b, 0),
    )
    assert.equal(first.ObjectParts?.TotalPartsCount, 3)
    assert.equal(first.ObjectParts?.PartNumberMarker, '0')
    assert.equal(first.ObjectParts?.MaxParts, 2)
    assert.equal(first.ObjectParts?.IsTruncated, true)
    assert.equal(first.ObjectParts?.NextPartNumberMarker, '2')
    assert.deepEqual(
      first.ObjectParts?.Parts?.map((p) => [p.PartNumber, p.Size]),
      [
        [1, sizes[0]],
        [2, sizes[1]],
      ],
    )
    const second = await s3.send(
      new GetObjectAttributesCommand({
        Bucket: node.bucket,
        Key: key,
        ObjectAttributes: ['ObjectParts'],
        MaxParts: 2,
        PartNumberMarker: first.ObjectParts?.NextPartNumberMarker,
      }),
    )
    assert.equal(second.ObjectParts?.IsTruncated, false)
    assert.deepEqual(
      second.ObjectParts?.Parts?.map((p) => [p.PartNumber, p.Size]),
      [[3, sizes[2]]],
    )
  })

  test('a missing or unknown attribute is InvalidArgument; a missing key NoSuchKey', async () => {
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'attr/x', Body: 'x' }))
    const none = await rawRequest(node, { method: 'GET', path: `/${node.bucket}/attr/x`, query: { attributes: '' } })
    assert.equal(none.status, 400, none.text)
    assert.equal(xmlField(none.text, 'Code'), 'InvalidArgument')
    const bad = await rawRequest(node, {
      method: 'GET',
      path: `/${node.bucket}/attr/x`,
      query: { attributes: '' },
      headers: { 'x-amz-object-attributes': 'ETag,Colour' },
    })
    assert.equal(xmlField(bad.text, 'Code'), 'InvalidArgument')
    await assert.rejects(
      s3.send(new GetObjectAttributesCommand({ Bucket: node.bucket, Key: 'attr/nope', ObjectAttributes: ['ETag'] })),
      s3Error('NoSuchKey', 404),
    )
  })
  test('an SSE-S3 object answers without any key from the client', async () => {
    const body = Buffer.from('attributes of an object encrypted at rest')
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'attr/sse-s3', Body: body, ServerSideEncryption: 'AES256' }))
    const r = await s3.send(
      new GetObjectAttributesCommand({ Bucket: node.bucket, Key: 'attr/sse-s3', ObjectAttributes: ['ETag', 'ObjectSize'] }),
    )
    assert.equal(r.ETag, md5Hex(body), 'the ETag of SSE-S3 data is its MD5, as on AWS')
    assert.equal(r.ObjectSize, body.length)
  })

  test('an SSE-C object needs its key, as for HEAD', async () => {
    const key = Buffer.alloc(32, 7).toString('base64')
    const sse = { SSECustomerAlgorithm: 'AES256', SSECustomerKey: key }
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'attr/sse', Body: 'secret', ...sse }))
    await assert.rejects(
      s3.send(new GetObjectAttributesCommand({ Bucket: node.bucket, Key: 'attr/sse', ObjectAttributes: ['ObjectSize'] })),
      (err: { $metadata?: { httpStatusCode?: number } }) => err.$metadata?.httpStatusCode === 400,
    )
    const r = await s3.send(
      new GetObjectAttributesCommand({ Bucket: node.bucket, Key: 'attr/sse', ObjectAttributes: ['ObjectSize', 'ETag'], ...sse }),
    )
    assert.equal(r.ObjectSize, 6)
    assert.ok(r.ETag)
  })
})
