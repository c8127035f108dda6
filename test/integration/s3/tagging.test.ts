/** Object and bucket tagging through the AWS SDK and raw requests, on one node. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteBucketTaggingCommand,
  DeleteObjectTaggingCommand,
  GetBucketTaggingCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  PutBucketTaggingCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import type { TestNode } from '../../../lib/testing.ts'
import { randomBuffer, s3Error, useTestNode } from '../../helpers/s3.ts'

let node: TestNode
let s3: S3Client

useTestNode({}, (n, c) => {
  node = n
  s3 = c
})

const tagsOf = async (key: string) =>
  (await s3.send(new GetObjectTaggingCommand({ Bucket: node.bucket, Key: key }))).TagSet?.map((t) => [t.Key, t.Value])

describe('object tagging', () => {
  test('x-amz-tagging on PUT, x-amz-tagging-count on GET and HEAD, Put/Get/DeleteObjectTagging', async () => {
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 't/a', Body: 'a', Tagging: 'team=storage&env=a%20b' }))
    assert.deepEqual(await tagsOf('t/a'), [
      ['team', 'storage'],
      ['env', 'a b'],
    ])
    const head = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: 't/a' }))
    assert.equal(head.$metadata.httpStatusCode, 200)
    const get = await s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: 't/a' }))
    assert.equal(get.TagCount, 2)
    await get.Body?.transformToByteArray()
    await s3.send(
      new PutObjectTaggingCommand({ Bucket: node.bucket, Key: 't/a', Tagging: { TagSet: [{ Key: 'only', Value: 'one' }] } }),
    )
    assert.deepEqual(await tagsOf('t/a'), [['only', 'one']])
    const get2 = await s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: 't/a' }))
    assert.equal(get2.TagCount, 1)
    assert.equal(await get2.Body?.transformToString(), 'a', 'retagging keeps the data')
    await s3.send(new DeleteObjectTaggingCommand({ Bucket: node.bucket, Key: 't/a' }))
    assert.deepEqual(await tagsOf('t/a'), [])
    const get3 = await s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: 't/a' }))
    assert.equal(get3.TagCount, undefined, 'no x-amz-tagging-count without tags')
    await get3.Body?.transformToByteArray()
  })

  test('tags on a multi-block object, a multipart upload and copies (COPY and REPLACE directives)', async () => {
    await s3.send(
      new PutObjectCommand({ Bucket: node.bucket, Key: 't/big', Body: randomBuffer(2 * 1024 * 1024 + 5), Tagging: 'k=big' }),
    )
    assert.deepEqual(await tagsOf('t/big'), [['k', 'big']])
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: node.bucket, Key: 't/mpu', Tagging: 'k=mpu' }))
    const part = await s3.send(new UploadPartCommand({ Bucket: node.bucket, Key: 't/mpu', UploadId, PartNumber: 1, Body: 'p' }))
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: node.bucket,
        Key: 't/mpu',
        UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag as string }] },
      }),
    )
    assert.deepEqual(await tagsOf('t/mpu'), [['k', 'mpu']])
    await s3.send(new CopyObjectCommand({ Bucket: node.bucket, Key: 't/copy', CopySource: `${node.bucket}/t/big` }))
    assert.deepEqual(await tagsOf('t/copy'), [['k', 'big']])
    await s3.send(
      new CopyObjectCommand({
        Bucket: node.bucket,
        Key: 't/copy2',
        CopySource: `${node.bucket}/t/mpu`,
        TaggingDirective: 'REPLACE',
        Tagging: 'new=yes',
      }),
    )
    assert.deepEqual(await tagsOf('t/copy2'), [['new', 'yes']])
  })

  test('limits and errors as AWS: InvalidTag, and nothing changes', async () => {
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 't/lim', Body: 'x', Tagging: 'a=1' }))
    const put = (TagSet: Array<{ Key: string; Value: string }>) =>
      s3.send(new PutObjectTaggingCommand({ Bucket: node.bucket, Key: 't/lim', Tagging: { TagSet } }))
    const many = Array.from({ length: 11 }, (_, i) => ({ Key: `k${i}`, Value: 'v' }))
    for (const [what, set] of [
      ['11 tags', many],
      ['a 129-character key', [{ Key: 'k'.repeat(129), Value: 'v' }]],
      ['a 257-character value', [{ Key: 'k', Value: 'v'.repeat(257) }]],
      [
        'duplicate keys',
        [
          { Key: 'k', Value: '1' },
          { Key: 'k', Value: '2' },
        ],
      ],
      ['the aws: prefix', [{ Key: 'aws:cloudformation', Value: 'x' }]],
      ['an empty key', [{ Key: '', Value: 'x' }]],
    ] as const) {
      await assert.rejects(put([...set]), s3Error('InvalidTag', 400), what)
    }
    await put(Array.from({ length: 10 }, (_, i) => ({ Key: `k${i}`, Value: 'v'.repeat(256) })))
    assert.equal((await tagsOf('t/lim'))?.length, 10)
    await assert.rejects(
      s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 't/lim2', Body: 'x', Tagging: 'a=1&a=2' })),
      s3Error('InvalidTag', 400),
    )
    await assert.rejects(tagsOf('t/missing'), s3Error('NoSuchKey', 404))
  })
})

describe('bucket tagging', () => {
  test('Put/Get/DeleteBucketTagging, NoSuchTagSet, 50 tags at most', async () => {
    await assert.rejects(s3.send(new GetBucketTaggingCommand({ Bucket: node.bucket })), s3Error('NoSuchTagSet', 404))
    await s3.send(
      new PutBucketTaggingCommand({ Bucket: node.bucket, Tagging: { TagSet: [{ Key: 'cost-center', Value: '42' }] } }),
    )
    const got = await s3.send(new GetBucketTaggingCommand({ Bucket: node.bucket }))
    assert.deepEqual(got.TagSet, [{ Key: 'cost-center', Value: '42' }])
    const fifty = Array.from({ length: 51 }, (_, i) => ({ Key: `k${i}`, Value: 'v' }))
    await assert.rejects(
      s3.send(new PutBucketTaggingCommand({ Bucket: node.bucket, Tagging: { TagSet: fifty } })),
      s3Error('InvalidTag', 400),
    )
    await s3.send(new PutBucketTaggingCommand({ Bucket: node.bucket, Tagging: { TagSet: fifty.slice(0, 50) } }))
    assert.equal((await s3.send(new GetBucketTaggingCommand({ Bucket: node.bucket }))).TagSet?.length, 50)
    await s3.send(new DeleteBucketTaggingCommand({ Bucket: node.bucket }))
    await assert.rejects(s3.send(new GetBucketTaggingCommand({ Bucket: node.bucket })), s3Error('NoSuchTagSet', 404))
  })
})
