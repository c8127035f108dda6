/**
 * Bucket endpoints through the AWS SDK: ListBuckets, CreateBucket (location constraints, names,
 * ownership), HeadBucket, DeleteBucket, GetBucketLocation and GetBucketVersioning.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import {
  type BucketLocationConstraint,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetBucketLocationCommand,
  GetBucketVersioningCommand,
  HeadBucketCommand,
  ListBucketsCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import type { KeyInfo } from '../../../lib/model/helper/admin.ts'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { rawRequest, s3Client, s3Error, xmlField } from '../../helpers/s3.ts'

let node: TestNode
let s3: S3Client
let other: KeyInfo
let otherS3: S3Client

before(async () => {
  node = await startTestNode()
  s3 = s3Client(node)
  other = await node.node.keys.create({ name: 'other', allowCreateBucket: true })
  otherS3 = s3Client(node, { credentials: { accessKeyId: other.accessKeyId, secretAccessKey: other.secretAccessKey } })
})
after(async () => {
  s3.destroy()
  otherS3.destroy()
  await node.close()
})

async function bucketNames(client: S3Client): Promise<string[]> {
  const r = await client.send(new ListBucketsCommand({}))
  return (r.Buckets ?? []).map((b) => b.Name ?? '')
}

async function headStatus(client: S3Client, bucket: string): Promise<number> {
  try {
    const r = await client.send(new HeadBucketCommand({ Bucket: bucket }))
    return r.$metadata.httpStatusCode ?? 0
  } catch (err) {
    return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? 0
  }
}

describe('ListBuckets', () => {
  test('lists the buckets the key may use, with their creation date and the owner', async () => {
    const r = await s3.send(new ListBucketsCommand({}))
    const mine = r.Buckets?.find((b) => b.Name === node.bucket)
    assert.ok(mine !== undefined, 'the test bucket is listed')
    assert.ok(mine.CreationDate instanceof Date, 'CreationDate is a date')
    assert.ok(Math.abs(Date.now() - mine.CreationDate.getTime()) < 60_000, 'CreationDate is recent')
    assert.equal(r.Owner?.DisplayName, 'test')
  })

  test("does not list another key's buckets", async () => {
    await otherS3.send(new CreateBucketCommand({ Bucket: 'others-only' }))
    assert.ok((await bucketNames(otherS3)).includes('others-only'), 'the owner sees it')
    assert.ok(!(await bucketNames(s3)).includes('others-only'), 'another key does not see it')
  })
})

describe('CreateBucket', () => {
  test('creates a bucket that is listed, headable and writable', async () => {
    const r = await s3.send(new CreateBucketCommand({ Bucket: 'created-plain' }))
    assert.equal(r.Location, '/created-plain')
    assert.ok((await bucketNames(s3)).includes('created-plain'), 'listed after creation')
    assert.equal(await headStatus(s3, 'created-plain'), 200)
    await s3.send(new PutObjectCommand({ Bucket: 'created-plain', Key: 'k', Body: 'v' }))
  })

  test('accepts the LocationConstraint of its own region', async () => {
    await s3.send(
      new CreateBucketCommand({
        Bucket: 'created-located',
        CreateBucketConfiguration: { LocationConstraint: 'garage' as BucketLocationConstraint },
      }),
    )
    assert.equal(await headStatus(s3, 'created-located'), 200)
  })

  test('refuses another LocationConstraint and creates nothing', async () => {
    await assert.rejects(
      s3.send(
        new CreateBucketCommand({
          Bucket: 'created-elsewhere',
          CreateBucketConfiguration: { LocationConstraint: 'eu-west-1' },
        }),
      ),
      s3Error('InvalidLocationConstraint', 400),
    )
    assert.equal(await headStatus(s3, 'created-elsewhere'), 404)
  })

  test('refuses a malformed configuration document', async () => {
    const r = await rawRequest(node, { method: 'PUT', path: '/created-malformed', body: '<CreateBucketConfiguration>' })
    assert.equal(r.status, 400)
    assert.equal(xmlField(r.text, 'Code'), 'MalformedXML')
    assert.equal(await headStatus(s3, 'created-malformed'), 404)
  })

  test('is BucketAlreadyOwnedByYou for a bucket of ours', async () => {
    await assert.rejects(s3.send(new CreateBucketCommand({ Bucket: node.bucket })), s3Error('BucketAlreadyOwnedByYou', 409))
  })

  test("is BucketAlreadyExists for another key's global bucket", async () => {
    await node.node.buckets.create({ globalAlias: 'taken-globally' })
    await node.node.buckets.allowKey('taken-globally', other.accessKeyId, { read: true, write: true, owner: true })
    await otherS3.send(new PutObjectCommand({ Bucket: 'taken-globally', Key: 'theirs', Body: 'x' }))
    await assert.rejects(s3.send(new CreateBucketCommand({ Bucket: 'taken-globally' })), s3Error('BucketAlreadyExists', 409))
    assert.equal(await headStatus(s3, 'taken-globally'), 403)
  })

  test('a local alias of another key does not take the name: each key has its own bucket', async () => {
    await node.node.buckets.create({ localAlias: { accessKeyId: other.accessKeyId, alias: 'private-name' } })
    await otherS3.send(new PutObjectCommand({ Bucket: 'private-name', Key: 'theirs', Body: 'x' }))
    await s3.send(new CreateBucketCommand({ Bucket: 'private-name' }))
    await s3.send(new PutObjectCommand({ Bucket: 'private-name', Key: 'mine', Body: 'y' }))
    const mine = await rawRequest(node, { method: 'GET', path: '/private-name', query: { 'list-type': '2' } })
    assert.match(mine.text, /<Key>mine<\/Key>/)
    assert.doesNotMatch(mine.text, /<Key>theirs<\/Key>/)
  })

  for (const bad of ['ab', 'Upper-Case', 'under_score', 'a'.repeat(64), '-leading-dash', 'ends-with-dash-', '192.168.1.1']) {
    test(`refuses the name ${JSON.stringify(bad)} with InvalidBucketName`, async () => {
      const r = await rawRequest(node, { method: 'PUT', path: `/${bad}` })
      assert.equal(r.status, 400, r.text)
      assert.equal(xmlField(r.text, 'Code'), 'InvalidBucketName')
      assert.ok(!(await bucketNames(s3)).includes(bad), 'no bucket was created')
    })
  }

  test('a key without the right to create buckets gets AccessDenied', async () => {
    const k = await node.node.keys.create({ name: 'no-create' })
    const client = s3Client(node, { credentials: { accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey } })
    await assert.rejects(client.send(new CreateBucketCommand({ Bucket: 'not-allowed' })), s3Error('AccessDenied', 403))
    client.destroy()
    assert.equal(
      (await node.node.buckets.list()).some((b) => b.localAliases.some((a) => a.alias === 'not-allowed')),
      false,
    )
  })
})

describe('HeadBucket', () => {
  test('answers 200 with the region for an existing bucket', async () => {
    const r = await s3.send(new HeadBucketCommand({ Bucket: node.bucket }))
    assert.equal(r.$metadata.httpStatusCode, 200)
    assert.equal(r.BucketRegion, 'garage')
  })

  test('answers 404 for a missing bucket', async () => {
    assert.equal(await headStatus(s3, 'no-such-bucket'), 404)
  })
})

describe('DeleteBucket', () => {
  test('refuses a non-empty bucket, then deletes it once empty', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'to-delete' }))
    await s3.send(new PutObjectCommand({ Bucket: 'to-delete', Key: 'obj', Body: 'x' }))
    await assert.rejects(s3.send(new DeleteBucketCommand({ Bucket: 'to-delete' })), s3Error('BucketNotEmpty', 409))
    assert.equal(await headStatus(s3, 'to-delete'), 200)
    await s3.send(new DeleteObjectCommand({ Bucket: 'to-delete', Key: 'obj' }))
    const r = await s3.send(new DeleteBucketCommand({ Bucket: 'to-delete' }))
    assert.equal(r.$metadata.httpStatusCode, 204)
    assert.equal(await headStatus(s3, 'to-delete'), 404)
    assert.ok(!(await bucketNames(s3)).includes('to-delete'), 'no longer listed')
  })

  test('the name can be reused after deletion', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'reused' }))
    await s3.send(new DeleteBucketCommand({ Bucket: 'reused' }))
    await s3.send(new CreateBucketCommand({ Bucket: 'reused' }))
    assert.equal(await headStatus(s3, 'reused'), 200)
  })

  test('is NoSuchBucket for a missing bucket', async () => {
    await assert.rejects(s3.send(new DeleteBucketCommand({ Bucket: 'never-existed' })), s3Error('NoSuchBucket', 404))
  })

  test("is AccessDenied for another key's bucket, which survives", async () => {
    await assert.rejects(s3.send(new DeleteBucketCommand({ Bucket: 'taken-globally' })), s3Error('AccessDenied', 403))
    assert.equal(await headStatus(otherS3, 'taken-globally'), 200)
  })
})

describe('bucket configuration', () => {
  test('GetBucketLocation answers the region', async () => {
    const r = await s3.send(new GetBucketLocationCommand({ Bucket: node.bucket }))
    assert.equal(r.LocationConstraint, 'garage')
  })

  test('GetBucketVersioning answers an empty (never enabled) configuration', async () => {
    const r = await s3.send(new GetBucketVersioningCommand({ Bucket: node.bucket }))
    assert.equal(r.$metadata.httpStatusCode, 200)
    assert.equal(r.Status, undefined)
    assert.equal(r.MFADelete, undefined)
  })

  test('GetBucketLocation of a missing bucket is NoSuchBucket', async () => {
    await assert.rejects(s3.send(new GetBucketLocationCommand({ Bucket: 'no-such-bucket' })), s3Error('NoSuchBucket', 404))
  })
})
