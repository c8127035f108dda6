/** S3 Object Lock through the AWS SDK: configuration, retention, legal hold, refused deletes. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  GetObjectLegalHoldCommand,
  GetObjectLockConfigurationCommand,
  GetObjectRetentionCommand,
  HeadObjectCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  PutObjectLegalHoldCommand,
  PutObjectLockConfigurationCommand,
  PutObjectRetentionCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import type { TestNode } from '../../../lib/testing.ts'
import { md5Base64, rawRequest, s3Error, useTestNode } from '../../helpers/s3.ts'

let node: TestNode
let s3: S3Client

useTestNode({}, (n, c) => {
  node = n
  s3 = c
})

let count = 0
async function lockedBucket(): Promise<string> {
  const name = `lock-${process.pid}-${count++}`
  await s3.send(new CreateBucketCommand({ Bucket: name, ObjectLockEnabledForBucket: true }))
  return name
}

const inDays = (d: number): Date => new Date(Date.now() + d * 86_400_000)

describe('object lock configuration', () => {
  test('CreateBucket with object lock enables versioning and an empty lock configuration', async () => {
    const b = await lockedBucket()
    assert.equal((await s3.send(new GetBucketVersioningCommand({ Bucket: b }))).Status, 'Enabled')
    const c = await s3.send(new GetObjectLockConfigurationCommand({ Bucket: b }))
    assert.equal(c.ObjectLockConfiguration?.ObjectLockEnabled, 'Enabled')
    assert.equal(c.ObjectLockConfiguration?.Rule, undefined)
    // Versioning cannot be suspended any more.
    await assert.rejects(
      s3.send(new PutBucketVersioningCommand({ Bucket: b, VersioningConfiguration: { Status: 'Suspended' } })),
      s3Error('InvalidBucketState', 409),
    )
  })

  test('a bucket without object lock: not found, and refused unless versioned', async () => {
    const b = `lock-plain-${process.pid}`
    await s3.send(new CreateBucketCommand({ Bucket: b }))
    await assert.rejects(
      s3.send(new GetObjectLockConfigurationCommand({ Bucket: b })),
      s3Error('ObjectLockConfigurationNotFoundError', 404),
    )
    const cfg = { ObjectLockEnabled: 'Enabled' as const }
    await assert.rejects(
      s3.send(new PutObjectLockConfigurationCommand({ Bucket: b, ObjectLockConfiguration: cfg })),
      s3Error('InvalidBucketState', 409),
    )
    await s3.send(new PutObjectCommand({ Bucket: b, Key: 'k', Body: 'x' }))
    await assert.rejects(
      s3.send(
        new PutObjectRetentionCommand({ Bucket: b, Key: 'k', Retention: { Mode: 'GOVERNANCE', RetainUntilDate: inDays(1) } }),
      ),
      s3Error('InvalidRequest', 400),
    )
  })

  test('default retention applies to new versions; both Days and Years is MalformedXML', async () => {
    const b = await lockedBucket()
    await s3.send(
      new PutObjectLockConfigurationCommand({
        Bucket: b,
        ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 2 } } },
      }),
    )
    const c = await s3.send(new GetObjectLockConfigurationCommand({ Bucket: b }))
    assert.deepEqual(c.ObjectLockConfiguration?.Rule?.DefaultRetention, { Mode: 'GOVERNANCE', Days: 2 })
    const put = await s3.send(new PutObjectCommand({ Bucket: b, Key: 'k', Body: 'x' }))
    const r = await s3.send(new GetObjectRetentionCommand({ Bucket: b, Key: 'k', VersionId: put.VersionId }))
    assert.equal(r.Retention?.Mode, 'GOVERNANCE')
    const until = r.Retention?.RetainUntilDate?.getTime() ?? 0
    assert.ok(
      until > inDays(1.9).getTime() && until < inDays(2.1).getTime(),
      `retained about 2 days: ${r.Retention?.RetainUntilDate}`,
    )
    const body =
      '<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days><Years>1</Years></DefaultRetention></Rule></ObjectLockConfiguration>'
    const bad = await rawRequest(node, {
      method: 'PUT',
      path: `/${b}`,
      query: { 'object-lock': '' },
      body,
      headers: { 'content-md5': md5Base64(body) },
    })
    assert.equal(bad.status, 400)
    assert.match(bad.text, /MalformedXML/)
  })
})

describe('retention and legal hold', () => {
  test('COMPLIANCE: the version cannot be deleted, nor its retention shortened, even with bypass', async () => {
    const b = await lockedBucket()
    const put = await s3.send(
      new PutObjectCommand({
        Bucket: b,
        Key: 'k',
        Body: 'kept',
        ObjectLockMode: 'COMPLIANCE',
        ObjectLockRetainUntilDate: inDays(3),
      }),
    )
    const head = await s3.send(new HeadObjectCommand({ Bucket: b, Key: 'k' }))
    assert.equal(head.ObjectLockMode, 'COMPLIANCE')
    await assert.rejects(
      s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'k', VersionId: put.VersionId, BypassGovernanceRetention: true })),
      s3Error('AccessDenied', 403),
    )
    await assert.rejects(
      s3.send(
        new PutObjectRetentionCommand({
          Bucket: b,
          Key: 'k',
          VersionId: put.VersionId,
          Retention: { Mode: 'COMPLIANCE', RetainUntilDate: inDays(1) },
          BypassGovernanceRetention: true,
        }),
      ),
      s3Error('AccessDenied', 403),
    )
    // Extending is allowed.
    await s3.send(
      new PutObjectRetentionCommand({
        Bucket: b,
        Key: 'k',
        VersionId: put.VersionId,
        Retention: { Mode: 'COMPLIANCE', RetainUntilDate: inDays(5) },
      }),
    )
    // A delete without version id only writes a delete marker: allowed, the version stays.
    const marker = await s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'k' }))
    assert.equal(marker.DeleteMarker, true)
    const r = await s3.send(new GetObjectCommand({ Bucket: b, Key: 'k', VersionId: put.VersionId }))
    assert.equal(await r.Body?.transformToString(), 'kept')
  })

  test('GOVERNANCE: refused without bypass, allowed with x-amz-bypass-governance-retention', async () => {
    const b = await lockedBucket()
    const put = await s3.send(
      new PutObjectCommand({
        Bucket: b,
        Key: 'g',
        Body: 'x',
        ObjectLockMode: 'GOVERNANCE',
        ObjectLockRetainUntilDate: inDays(3),
      }),
    )
    await assert.rejects(
      s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'g', VersionId: put.VersionId })),
      s3Error('AccessDenied', 403),
    )
    await assert.rejects(
      s3.send(new PutObjectRetentionCommand({ Bucket: b, Key: 'g', VersionId: put.VersionId, Retention: {} })),
      s3Error('AccessDenied', 403),
    )
    await s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'g', VersionId: put.VersionId, BypassGovernanceRetention: true }))
    await assert.rejects(
      s3.send(new GetObjectCommand({ Bucket: b, Key: 'g', VersionId: put.VersionId })),
      s3Error('NoSuchVersion', 404),
    )
  })

  test('legal hold blocks deletion until released', async () => {
    const b = await lockedBucket()
    const put = await s3.send(new PutObjectCommand({ Bucket: b, Key: 'h', Body: 'x' }))
    await assert.rejects(
      s3.send(new GetObjectLegalHoldCommand({ Bucket: b, Key: 'h' })),
      s3Error('NoSuchObjectLockConfiguration', 404),
    )
    await s3.send(new PutObjectLegalHoldCommand({ Bucket: b, Key: 'h', VersionId: put.VersionId, LegalHold: { Status: 'ON' } }))
    assert.equal((await s3.send(new GetObjectLegalHoldCommand({ Bucket: b, Key: 'h' }))).LegalHold?.Status, 'ON')
    await assert.rejects(
      s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'h', VersionId: put.VersionId, BypassGovernanceRetention: true })),
      s3Error('AccessDenied', 403),
    )
    await s3.send(new PutObjectLegalHoldCommand({ Bucket: b, Key: 'h', VersionId: put.VersionId, LegalHold: { Status: 'OFF' } }))
    await s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'h', VersionId: put.VersionId }))
  })

  test('lock headers need an object lock bucket, both mode and date, a future date, and a digest', async () => {
    const plain = `lock-hdr-${process.pid}`
    await s3.send(new CreateBucketCommand({ Bucket: plain }))
    await assert.rejects(
      s3.send(new PutObjectCommand({ Bucket: plain, Key: 'k', Body: 'x', ObjectLockLegalHoldStatus: 'ON' })),
      s3Error('InvalidRequest', 400),
    )
    const b = await lockedBucket()
    await assert.rejects(
      s3.send(new PutObjectCommand({ Bucket: b, Key: 'k', Body: 'x', ObjectLockMode: 'GOVERNANCE' })),
      s3Error('InvalidArgument', 400),
    )
    await assert.rejects(
      s3.send(
        new PutObjectCommand({
          Bucket: b,
          Key: 'k',
          Body: 'x',
          ObjectLockMode: 'GOVERNANCE',
          ObjectLockRetainUntilDate: inDays(-1),
        }),
      ),
      s3Error('InvalidArgument', 400),
    )
    const headers = { 'x-amz-object-lock-mode': 'GOVERNANCE', 'x-amz-object-lock-retain-until-date': inDays(1).toISOString() }
    const noDigest = await rawRequest(node, { method: 'PUT', path: `/${b}/raw`, body: 'x', headers })
    assert.equal(noDigest.status, 400)
    assert.match(noDigest.text, /Content-MD5/)
    const ok = await rawRequest(node, {
      method: 'PUT',
      path: `/${b}/raw`,
      body: 'x',
      headers: { ...headers, 'content-md5': md5Base64('x') },
    })
    assert.equal(ok.status, 200)
    // The refused writes stored nothing.
    await assert.rejects(s3.send(new HeadObjectCommand({ Bucket: b, Key: 'k' })), s3Error('NotFound', 404))
  })
})
