/**
 * Key, bucket, permission and alias endpoints of the admin API, checked against S3 behaviour
 * where it matters (a key created here can use a bucket allowed here).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import type { TestNode } from '../../../lib/testing.ts'
import { v2 } from '../../helpers/admin.ts'
import { s3Client, useTestNode } from '../../helpers/s3.ts'

let node: TestNode
let s3: S3Client

useTestNode({ admin: { api_bind_addr: '127.0.0.1:0', admin_token: 'tok' } }, (n, c) => {
  node = n
  s3 = c
})

function expectError(r: { status: number; json: unknown; text: string }, status: number, code: string): void {
  assert.equal(r.status, status, r.text)
  assert.equal((r.json as { code: string }).code, code)
}

describe('keys', () => {
  test('CreateKey returns the secret; GetKeyInfo hides it unless asked', async () => {
    const c = await v2(node, 'CreateKey', { body: { name: 'app', allow: { createBucket: true } } })
    assert.equal(c.status, 200, c.text)
    const id = c.data.accessKeyId as string
    assert.match(id, /^GK[0-9a-f]{24}$/)
    assert.match(c.data.secretAccessKey as string, /^[0-9a-f]{64}$/)
    assert.deepEqual(c.data.permissions, { createBucket: true })
    assert.equal(c.data.expired, false)
    assert.equal(c.data.expiration, null)

    const hidden = await v2(node, 'GetKeyInfo', { query: { id } })
    assert.equal(hidden.data.secretAccessKey, null)
    const shown = await v2(node, 'GetKeyInfo', { query: { id, showSecretKey: 'true' } })
    assert.equal(shown.data.secretAccessKey, c.data.secretAccessKey)
    const searched = await v2(node, 'GetKeyInfo', { query: { search: 'app' } })
    assert.equal(searched.data.accessKeyId, id)
    const byPrefix = await v2(node, 'GetKeyInfo', { query: { search: id.slice(0, 10) } })
    assert.equal(byPrefix.data.accessKeyId, id)

    const list = await v2(node, 'ListKeys')
    assert.ok(
      list.list.some((k) => k.id === id && k.name === 'app'),
      'ListKeys lists the key with its name',
    )
  })

  test('CreateKey defaults: name "Unnamed key", no bucket creation', async () => {
    const c = await v2(node, 'CreateKey', { body: {} })
    assert.equal(c.data.name, 'Unnamed key')
    assert.deepEqual(c.data.permissions, { createBucket: false })
  })

  test('UpdateKey: name, allow/deny createBucket, expiration, neverExpires', async () => {
    const c = await v2(node, 'CreateKey', { body: { name: 'upd' } })
    const id = c.data.accessKeyId as string
    let u = await v2(node, 'UpdateKey', { query: { id }, body: { name: 'renamed', allow: { createBucket: true } } })
    assert.equal(u.data.name, 'renamed')
    assert.deepEqual(u.data.permissions, { createBucket: true })
    assert.equal(u.data.secretAccessKey, null)
    u = await v2(node, 'UpdateKey', { query: { id }, body: { deny: { createBucket: true } } })
    assert.deepEqual(u.data.permissions, { createBucket: false })
    const past = new Date(Date.now() - 1000).toISOString()
    u = await v2(node, 'UpdateKey', { query: { id }, body: { expiration: past } })
    assert.equal(u.data.expired, true)
    assert.equal(u.data.expiration, past)
    u = await v2(node, 'UpdateKey', { query: { id }, body: { neverExpires: true } })
    assert.equal(u.data.expired, false)
    assert.equal(u.data.expiration, null)
    expectError(
      await v2(node, 'UpdateKey', { query: { id }, body: { expiration: past, neverExpires: true } }),
      400,
      'InvalidRequest',
    )
  })

  test('ImportKey; importing an existing id is a conflict', async () => {
    const accessKeyId = `GK${'ab'.repeat(12)}`
    const secretAccessKey = 'cd'.repeat(32)
    const r = await v2(node, 'ImportKey', { body: { accessKeyId, secretAccessKey, name: 'imported' } })
    assert.equal(r.status, 200, r.text)
    assert.equal(r.data.accessKeyId, accessKeyId)
    assert.equal(r.data.name, 'imported')
    expectError(await v2(node, 'ImportKey', { body: { accessKeyId, secretAccessKey } }), 409, 'KeyAlreadyExists')
    expectError(await v2(node, 'ImportKey', { body: { accessKeyId: 'GKnothex', secretAccessKey } }), 400, 'InvalidRequest')
    expectError(await v2(node, 'ImportKey', { body: { accessKeyId } }), 400, 'InvalidRequest')
  })

  test('DeleteKey; unknown keys are 404', async () => {
    const c = await v2(node, 'CreateKey', { body: { name: 'doomed' } })
    const id = c.data.accessKeyId as string
    assert.equal((await v2(node, 'DeleteKey', { method: 'POST', query: { id } })).status, 200)
    expectError(await v2(node, 'GetKeyInfo', { query: { id } }), 404, 'NoSuchAccessKey')
    expectError(await v2(node, 'DeleteKey', { method: 'POST', query: { id } }), 404, 'NoSuchAccessKey')
    expectError(await v2(node, 'UpdateKey', { query: { id }, body: {} }), 404, 'NoSuchAccessKey')
    expectError(await v2(node, 'GetKeyInfo', { query: { search: 'no-such-key-name' } }), 404, 'NoSuchAccessKey')
    expectError(await v2(node, 'GetKeyInfo'), 400, 'InvalidRequest')
    expectError(await v2(node, 'GetKeyInfo', { query: { id, search: 'x' } }), 400, 'InvalidRequest')
  })
})

describe('buckets', () => {
  test('CreateBucket with a global alias; GetBucketInfo by id, alias and search; ListBuckets', async () => {
    const c = await v2(node, 'CreateBucket', { body: { globalAlias: 'admin-made' } })
    assert.equal(c.status, 200, c.text)
    const id = c.data.id as string
    assert.match(id, /^[0-9a-f]{64}$/)
    assert.deepEqual(c.data.globalAliases, ['admin-made'])
    assert.equal(c.data.objects, 0)
    assert.deepEqual(c.data.quotas, { maxSize: null, maxObjects: null })
    assert.equal((await v2(node, 'GetBucketInfo', { query: { id } })).data.id, id)
    assert.equal((await v2(node, 'GetBucketInfo', { query: { globalAlias: 'admin-made' } })).data.id, id)
    assert.equal((await v2(node, 'GetBucketInfo', { query: { search: id.slice(0, 12) } })).data.id, id)
    const list = await v2(node, 'ListBuckets')
    assert.ok(
      list.list.some((b) => b.id === id),
      'ListBuckets lists it',
    )
    expectError(await v2(node, 'CreateBucket', { body: { globalAlias: 'admin-made' } }), 409, 'BucketAlreadyExists')
    expectError(await v2(node, 'CreateBucket', { body: { globalAlias: 'Bad_Name' } }), 400, 'InvalidBucketName')
    expectError(await v2(node, 'GetBucketInfo', { query: { globalAlias: 'nope-nope' } }), 404, 'NoSuchBucket')
    expectError(await v2(node, 'GetBucketInfo', { query: { id: 'ab'.repeat(32) } }), 404, 'NoSuchBucket')
    expectError(await v2(node, 'GetBucketInfo'), 400, 'InvalidRequest')
  })

  test('CreateBucket with a local alias; permissions and aliases', async () => {
    const k = await v2(node, 'CreateKey', { body: { name: 'owner' } })
    const keyId = k.data.accessKeyId as string
    const c = await v2(node, 'CreateBucket', {
      body: { localAlias: { accessKeyId: keyId, alias: 'mine', allow: { read: true, write: true } } },
    })
    assert.equal(c.status, 200, c.text)
    const id = c.data.id as string
    assert.deepEqual(c.data.globalAliases, [])
    const keys = c.data.keys as Array<Record<string, unknown>>
    assert.deepEqual(keys[0], {
      accessKeyId: keyId,
      name: 'owner',
      permissions: { read: true, write: true, owner: false },
      bucketLocalAliases: ['mine'],
    })
    expectError(
      await v2(node, 'CreateBucket', { body: { localAlias: { accessKeyId: 'GK000000000000000000000000', alias: 'x-y-z' } } }),
      404,
      'NoSuchAccessKey',
    )

    let r = await v2(node, 'AllowBucketKey', { body: { bucketId: id, accessKeyId: keyId, permissions: { owner: true } } })
    assert.deepEqual((r.data.keys as Array<{ permissions: unknown }>)[0]?.permissions, { read: true, write: true, owner: true })
    r = await v2(node, 'DenyBucketKey', { body: { bucketId: id, accessKeyId: keyId, permissions: { write: true, read: false } } })
    assert.deepEqual((r.data.keys as Array<{ permissions: unknown }>)[0]?.permissions, { read: true, write: false, owner: true })
    expectError(await v2(node, 'AllowBucketKey', { body: { bucketId: id, accessKeyId: keyId } }), 400, 'InvalidRequest')
    expectError(
      await v2(node, 'AllowBucketKey', { body: { bucketId: 'cd'.repeat(32), accessKeyId: keyId, permissions: {} } }),
      404,
      'NoSuchBucket',
    )

    r = await v2(node, 'AddBucketAlias', { body: { bucketId: id, globalAlias: 'shared-name' } })
    assert.deepEqual(r.data.globalAliases, ['shared-name'])
    r = await v2(node, 'AddBucketAlias', { body: { bucketId: id, localAlias: 'second', accessKeyId: keyId } })
    const info = await v2(node, 'GetKeyInfo', { query: { id: keyId } })
    const kb = (info.data.buckets as Array<{ id: string; localAliases: string[]; globalAliases: string[] }>).find(
      (b) => b.id === id,
    )
    assert.deepEqual(kb?.localAliases.sort(), ['mine', 'second'])
    assert.deepEqual(kb?.globalAliases, ['shared-name'])
    r = await v2(node, 'RemoveBucketAlias', { body: { bucketId: id, globalAlias: 'shared-name' } })
    assert.deepEqual(r.data.globalAliases, [])
    r = await v2(node, 'RemoveBucketAlias', { body: { bucketId: id, localAlias: 'second', accessKeyId: keyId } })
    assert.equal(r.status, 200, r.text)
    expectError(await v2(node, 'AddBucketAlias', { body: { bucketId: id } }), 400, 'InvalidRequest')
    expectError(
      await v2(node, 'AddBucketAlias', { body: { bucketId: id, globalAlias: 'test-bucket' } }),
      409,
      'BucketAlreadyExists',
    )
    expectError(
      await v2(node, 'RemoveBucketAlias', { body: { bucketId: id, globalAlias: 'not-its-alias' } }),
      400,
      'InvalidRequest',
    )
  })

  test('UpdateBucket: website access and quotas', async () => {
    const c = await v2(node, 'CreateBucket', { body: { globalAlias: 'site' } })
    const id = c.data.id as string
    let u = await v2(node, 'UpdateBucket', {
      query: { id },
      body: {
        websiteAccess: { enabled: true, indexDocument: 'index.html', errorDocument: 'err.html' },
        quotas: { maxSize: 1000, maxObjects: 3 },
      },
    })
    assert.equal(u.status, 200, u.text)
    assert.equal(u.data.websiteAccess, true)
    assert.deepEqual(u.data.websiteConfig, { indexDocument: 'index.html', errorDocument: 'err.html' })
    assert.deepEqual(u.data.quotas, { maxSize: 1000, maxObjects: 3 })
    u = await v2(node, 'UpdateBucket', { query: { id }, body: { websiteAccess: { enabled: false } } })
    assert.equal(u.data.websiteAccess, false)
    assert.equal(u.data.websiteConfig, null)
    assert.deepEqual(u.data.quotas, { maxSize: 1000, maxObjects: 3 }, 'quotas are left as they are')
    u = await v2(node, 'UpdateBucket', { query: { id }, body: { quotas: {} } })
    assert.deepEqual(u.data.quotas, { maxSize: null, maxObjects: null })
    expectError(
      await v2(node, 'UpdateBucket', { query: { id }, body: { websiteAccess: { enabled: true } } }),
      400,
      'InvalidRequest',
    )
    expectError(
      await v2(node, 'UpdateBucket', { query: { id }, body: { websiteAccess: { enabled: false, indexDocument: 'i.html' } } }),
      400,
      'InvalidRequest',
    )
    expectError(await v2(node, 'UpdateBucket', { query: { id }, body: { quotas: { maxSize: -1 } } }), 400, 'InvalidRequest')
    expectError(await v2(node, 'UpdateBucket', { query: { id: 'ef'.repeat(32) }, body: {} }), 404, 'NoSuchBucket')
  })

  test('DeleteBucket refuses a non-empty bucket (409) and deletes an empty one', async () => {
    const c = await v2(node, 'CreateBucket', { body: { globalAlias: 'to-delete' } })
    const id = c.data.id as string
    await v2(node, 'AllowBucketKey', {
      body: { bucketId: id, accessKeyId: node.key.accessKeyId, permissions: { read: true, write: true } },
    })
    await s3.send(new PutObjectCommand({ Bucket: 'to-delete', Key: 'a.txt', Body: 'hello' }))
    const info = await v2(node, 'GetBucketInfo', { query: { id } })
    assert.equal(info.data.objects, 1)
    assert.equal(info.data.bytes, 5)
    expectError(await v2(node, 'DeleteBucket', { method: 'POST', query: { id } }), 409, 'BucketNotEmpty')
    const empty = await v2(node, 'CreateBucket', { body: { globalAlias: 'empty-one' } })
    assert.equal((await v2(node, 'DeleteBucket', { method: 'POST', query: { id: empty.data.id as string } })).status, 200)
    expectError(await v2(node, 'GetBucketInfo', { query: { globalAlias: 'empty-one' } }), 404, 'NoSuchBucket')
    expectError(await v2(node, 'DeleteBucket', { method: 'POST', query: { id: empty.data.id as string } }), 404, 'NoSuchBucket')
  })

  test('InspectObject shows versions and blocks', async () => {
    const body = Buffer.alloc(10_000, 7)
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'big.bin', Body: body }))
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'small.txt', Body: 'tiny' }))
    const bucketId = (await v2(node, 'GetBucketInfo', { query: { globalAlias: node.bucket } })).data.id as string
    const big = await v2(node, 'InspectObject', { query: { bucketId, key: 'big.bin' } })
    assert.equal(big.status, 200, big.text)
    const v = (big.data.versions as Array<Record<string, unknown>>).at(-1) as Record<string, unknown>
    assert.equal(v.size, 10_000)
    assert.equal(v.inline, false)
    assert.equal(v.uploading, false)
    assert.ok((v.blocks as unknown[]).length >= 1, 'a large object has blocks')
    const small = await v2(node, 'InspectObject', { query: { bucketId, key: 'small.txt' } })
    const sv = (small.data.versions as Array<Record<string, unknown>>).at(-1) as Record<string, unknown>
    assert.equal(sv.inline, true)
    assert.deepEqual(sv.blocks, [])
    expectError(await v2(node, 'InspectObject', { query: { bucketId, key: 'missing' } }), 404, 'NoSuchKey')
    expectError(await v2(node, 'InspectObject', { query: { bucketId } }), 400, 'InvalidRequest')
  })

  test('CleanupIncompleteUploads aborts multipart uploads older than the limit', async () => {
    const up = await s3.send(new CreateMultipartUploadCommand({ Bucket: node.bucket, Key: 'mpu.bin' }))
    await s3.send(
      new UploadPartCommand({
        Bucket: node.bucket,
        Key: 'mpu.bin',
        UploadId: up.UploadId,
        PartNumber: 1,
        Body: Buffer.alloc(1000, 1),
      }),
    )
    const bucketId = (await v2(node, 'GetBucketInfo', { query: { globalAlias: node.bucket } })).data.id as string
    let info = await v2(node, 'GetBucketInfo', { query: { id: bucketId } })
    assert.equal(info.data.unfinishedMultipartUploads, 1)
    assert.equal(info.data.unfinishedMultipartUploadParts, 1)
    assert.equal(info.data.unfinishedMultipartUploadBytes, 1000)
    // Too recent for a one-hour limit.
    let r = await v2(node, 'CleanupIncompleteUploads', { body: { bucketId, olderThanSecs: 3600 } })
    assert.deepEqual(r.data, { uploadsDeleted: 0 })
    r = await v2(node, 'CleanupIncompleteUploads', { body: { bucketId, olderThanSecs: 0 } })
    assert.deepEqual(r.data, { uploadsDeleted: 1 })
    info = await v2(node, 'GetBucketInfo', { query: { id: bucketId } })
    assert.equal(info.data.unfinishedMultipartUploads, 0)
    await assert.rejects(
      s3.send(new AbortMultipartUploadCommand({ Bucket: node.bucket, Key: 'mpu.bin', UploadId: up.UploadId })),
      (err: { name?: string }) => err.name === 'NoSuchUpload',
    )
    expectError(await v2(node, 'CleanupIncompleteUploads', { body: { bucketId } }), 400, 'InvalidRequest')
    expectError(
      await v2(node, 'CleanupIncompleteUploads', { body: { bucketId: '12'.repeat(32), olderThanSecs: 1 } }),
      404,
      'NoSuchBucket',
    )
  })

  test('a key created and allowed through the admin API works over S3', async () => {
    const k = await v2(node, 'CreateKey', { body: { name: 's3-user' } })
    const bucketId = (await v2(node, 'GetBucketInfo', { query: { globalAlias: node.bucket } })).data.id as string
    await v2(node, 'AllowBucketKey', { body: { bucketId, accessKeyId: k.data.accessKeyId, permissions: { write: true } } })
    const client = s3Client(node, {
      credentials: { accessKeyId: k.data.accessKeyId as string, secretAccessKey: k.data.secretAccessKey as string },
    })
    try {
      const r = await client.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'via-admin.txt', Body: 'x' }))
      assert.equal(r.$metadata.httpStatusCode, 200)
    } finally {
      client.destroy()
    }
  })
})
