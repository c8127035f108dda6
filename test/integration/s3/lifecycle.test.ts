/**
 * Bucket lifecycle: the configuration round trip and its validation through the AWS SDK and raw
 * requests, and the daily worker expiring objects (by days, date, prefix and size) and aborting
 * old multipart uploads, with the node's clock driven forward by the test.
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'
import {
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketLifecycleCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  GetBucketLifecycleConfigurationCommand,
  ListMultipartUploadsCommand,
  PutBucketLifecycleConfigurationCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { md5Base64, objectExists, rawRequest, s3Client, s3Error, xmlField } from '../../helpers/s3.ts'

const DAY = 86_400_000

let node: TestNode
let s3: S3Client
/** Added to the real time to make the node's clock. */
let offset = 0

before(async () => {
  node = await startTestNode({ block_gc_delay_msec: 200, clock: () => Date.now() + offset })
  s3 = s3Client(node)
})
after(async () => {
  s3.destroy()
  await node.close()
})

const dateOf = (ms: number): string => new Date(ms).toISOString().slice(0, 10)

function lastCompleted(): string | number | undefined {
  const w = node.node.status().workers.find((x) => x.name === 'object lifecycle worker')
  return w?.info['lifecycle-last-completed']
}

/** Moves the node's clock `days` days ahead of real time and waits for that day's pass. */
async function advanceTo(days: number): Promise<void> {
  offset = days * DAY
  const want = dateOf(Date.now() + offset)
  for (let i = 0; i < 100 && lastCompleted() !== want; i++) await sleep(50)
  assert.equal(lastCompleted(), want, `the lifecycle pass of ${want} should have completed`)
}

async function putLifecycleXml(bucket: string, xml: string) {
  return rawRequest(node, {
    method: 'PUT',
    path: `/${bucket}`,
    query: { lifecycle: '' },
    headers: { 'content-md5': md5Base64(xml), 'content-type': 'application/xml' },
    body: xml,
  })
}

describe('lifecycle configuration', () => {
  test('a configuration is stored, read back and deleted', async () => {
    const Bucket = node.bucket
    await assert.rejects(
      s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket })),
      s3Error('NoSuchLifecycleConfiguration', 404),
    )
    await s3.send(
      new PutBucketLifecycleConfigurationCommand({
        Bucket,
        LifecycleConfiguration: {
          Rules: [
            { ID: 'logs', Status: 'Enabled', Filter: { Prefix: 'logs/' }, Expiration: { Days: 30 } },
            {
              ID: 'big',
              Status: 'Disabled',
              Filter: { And: { Prefix: 'data/', ObjectSizeGreaterThan: 1000, ObjectSizeLessThan: 5000 } },
              Expiration: { Date: new Date('2030-01-01T00:00:00Z') },
            },
            { ID: 'mpu', Status: 'Enabled', Filter: {}, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 3 } },
          ],
        },
      }),
    )
    const got = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket }))
    const rules = got.Rules ?? []
    assert.equal(rules.length, 3)
    assert.deepEqual(rules[0]?.Filter, { Prefix: 'logs/' })
    assert.equal(rules[0]?.Expiration?.Days, 30)
    assert.equal(rules[1]?.Status, 'Disabled')
    assert.deepEqual(rules[1]?.Filter?.And, { Prefix: 'data/', ObjectSizeGreaterThan: 1000, ObjectSizeLessThan: 5000 })
    assert.equal(rules[1]?.Expiration?.Date?.toISOString(), '2030-01-01T00:00:00.000Z')
    assert.equal(rules[2]?.AbortIncompleteMultipartUpload?.DaysAfterInitiation, 3)

    await s3.send(new DeleteBucketLifecycleCommand({ Bucket }))
    await assert.rejects(
      s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket })),
      s3Error('NoSuchLifecycleConfiguration', 404),
    )
  })

  test('the deprecated rule-level Prefix and transitions are stored and read back in the form given', async () => {
    const Bucket = node.bucket
    const xml =
      '<LifecycleConfiguration>' +
      '<Rule><ID>old-style</ID><Prefix>logs/</Prefix><Status>Enabled</Status><Expiration><Days>7</Days></Expiration></Rule>' +
      '<Rule><ID>cold</ID><Filter><Prefix>archive/</Prefix></Filter><Status>Enabled</Status>' +
      '<Transition><Days>30</Days><StorageClass>STANDARD_IA</StorageClass></Transition>' +
      '<Transition><Date>2031-01-01T00:00:00Z</Date><StorageClass>GLACIER</StorageClass></Transition>' +
      '<NoncurrentVersionTransition><NoncurrentDays>10</NoncurrentDays><NewerNoncurrentVersions>2</NewerNoncurrentVersions><StorageClass>GLACIER</StorageClass></NoncurrentVersionTransition>' +
      '</Rule></LifecycleConfiguration>'
    const put = await putLifecycleXml(Bucket, xml)
    assert.equal(put.status, 200, put.text)
    const rules = (await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket }))).Rules ?? []
    assert.equal(rules[0]?.Prefix, 'logs/')
    assert.equal(rules[0]?.Filter, undefined, 'a rule-level Prefix is not turned into a Filter')
    assert.equal(rules[0]?.Expiration?.Days, 7)
    assert.deepEqual(rules[1]?.Filter, { Prefix: 'archive/' })
    assert.deepEqual(
      rules[1]?.Transitions?.map((t) => [t.Days, t.Date?.toISOString(), t.StorageClass]),
      [
        [30, undefined, 'STANDARD_IA'],
        [undefined, '2031-01-01T00:00:00.000Z', 'GLACIER'],
      ],
    )
    assert.deepEqual(rules[1]?.NoncurrentVersionTransitions, [
      { NoncurrentDays: 10, NewerNoncurrentVersions: 2, StorageClass: 'GLACIER' },
    ])
    await s3.send(new DeleteBucketLifecycleCommand({ Bucket }))
  })

  test('unsupported or invalid rules are refused and leave the stored configuration unchanged', async () => {
    const Bucket = node.bucket
    const good =
      '<LifecycleConfiguration><Rule><ID>keep</ID><Status>Enabled</Status><Filter><Prefix>a/</Prefix></Filter><Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>'
    assert.equal((await putLifecycleXml(Bucket, good)).status, 200)
    const rule = (body: string) => `<LifecycleConfiguration><Rule>${body}</Rule></LifecycleConfiguration>`
    const cases: Array<[string, string, number, string]> = [
      ['broken XML', '<LifecycleConfiguration><Rule>', 400, 'MalformedXML'],
      [
        'rule-level Prefix next to a Filter',
        rule('<Status>Enabled</Status><Prefix>x/</Prefix><Filter></Filter><Expiration><Days>1</Days></Expiration>'),
        400,
        'MalformedXML',
      ],
      [
        'Transition to an unknown storage class',
        rule('<Status>Enabled</Status><Filter></Filter><Transition><Days>1</Days><StorageClass>COLD</StorageClass></Transition>'),
        400,
        'MalformedXML',
      ],
      [
        'Transition without StorageClass',
        rule('<Status>Enabled</Status><Filter></Filter><Transition><Days>1</Days></Transition>'),
        400,
        'MalformedXML',
      ],
      [
        'NoncurrentVersionExpiration without NoncurrentDays',
        rule(
          '<Status>Enabled</Status><Filter></Filter><NoncurrentVersionExpiration><NewerNoncurrentVersions>1</NewerNoncurrentVersions></NoncurrentVersionExpiration>',
        ),
        400,
        'MalformedXML',
      ],
      [
        'ExpiredObjectDeleteMarker with Days',
        rule(
          '<Status>Enabled</Status><Filter></Filter><Expiration><Days>1</Days><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>',
        ),
        400,
        'InvalidRequest',
      ],
      ['bad Status', rule('<Status>On</Status><Expiration><Days>1</Days></Expiration>'), 400, 'MalformedXML'],
      [
        'date not at midnight',
        rule('<Status>Enabled</Status><Expiration><Date>2030-01-01T12:00:00Z</Date></Expiration>'),
        400,
        'InvalidArgument',
      ],
      [
        'two conditions without And',
        rule(
          '<Status>Enabled</Status><Filter><Prefix>a</Prefix><ObjectSizeLessThan>5</ObjectSizeLessThan></Filter><Expiration><Days>1</Days></Expiration>',
        ),
        400,
        'InvalidRequest',
      ],
      ['no action', rule('<Status>Enabled</Status><Filter></Filter>'), 400, 'InvalidRequest'],
      ['zero days', rule('<Status>Enabled</Status><Expiration><Days>0</Days></Expiration>'), 400, 'InvalidArgument'],
    ]
    for (const [what, xml, status, code] of cases) {
      const r = await putLifecycleXml(Bucket, xml)
      assert.equal(r.status, status, `${what}: ${r.text}`)
      assert.equal(xmlField(r.text, 'Code'), code, what)
    }
    const got = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket }))
    assert.deepEqual(
      got.Rules?.map((r) => r.ID),
      ['keep'],
    )
    await s3.send(new DeleteBucketLifecycleCommand({ Bucket }))
  })
})

describe('lifecycle worker', () => {
  test('expires objects by days, date, prefix and size, and aborts old multipart uploads', async () => {
    const Bucket = 'lifecycle-run'
    await s3.send(new CreateBucketCommand({ Bucket }))
    const put = (Key: string, size: number) => s3.send(new PutObjectCommand({ Bucket, Key, Body: Buffer.alloc(size, 'x') }))
    await put('logs/small', 100)
    await put('logs/big', 5000)
    await put('keep/a', 10)
    await put('tmp/a', 10)
    await put('other', 10)
    await put('legacy/a', 10)
    const mpu = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'mpu/file' }))
    const otherMpu = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'elsewhere/file' }))
    // A bucket without rules, whose objects must never be touched.
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'logs/small', Body: 'x' }))

    const threeDays = new Date(`${dateOf(Date.now() + 3 * DAY)}T00:00:00Z`)
    await s3.send(
      new PutBucketLifecycleConfigurationCommand({
        Bucket,
        LifecycleConfiguration: {
          Rules: [
            {
              ID: 'small-logs',
              Status: 'Enabled',
              Filter: { And: { Prefix: 'logs/', ObjectSizeLessThan: 1000 } },
              Expiration: { Days: 1 },
            },
            { ID: 'off', Status: 'Disabled', Filter: { Prefix: 'keep/' }, Expiration: { Days: 1 } },
            { ID: 'tmp', Status: 'Enabled', Filter: { Prefix: 'tmp/' }, Expiration: { Date: threeDays } },
            // The deprecated rule-level prefix selects like a Filter prefix.
            { ID: 'legacy', Status: 'Enabled', Prefix: 'legacy/', Expiration: { Days: 1 } },
            // A transition is stored, never applied: `other` stays readable.
            { ID: 'cold', Status: 'Enabled', Filter: { Prefix: 'other' }, Transitions: [{ Days: 0, StorageClass: 'GLACIER' }] },
            {
              ID: 'mpu',
              Status: 'Enabled',
              Filter: { Prefix: 'mpu/' },
              AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
            },
          ],
        },
      }),
    )

    // Created today: one day later its age is still 0 full days (counted from the next midnight).
    await advanceTo(1)
    assert.ok(await objectExists(s3, Bucket, 'logs/small'), 'logs/small is not expired after one day')
    assert.ok(await objectExists(s3, Bucket, 'legacy/a'), 'legacy/a is not expired after one day')
    const uploads1 = await s3.send(new ListMultipartUploadsCommand({ Bucket }))
    assert.equal(uploads1.Uploads?.length, 2)

    await advanceTo(2)
    assert.equal(await objectExists(s3, Bucket, 'logs/small'), false, 'logs/small expired')
    assert.ok(await objectExists(s3, Bucket, 'logs/big'), 'logs/big is too large for the rule')
    assert.ok(await objectExists(s3, Bucket, 'keep/a'), 'keep/a is under a disabled rule')
    assert.ok(await objectExists(s3, Bucket, 'tmp/a'), 'tmp/a expires on its date only')
    assert.ok(await objectExists(s3, Bucket, 'other'), 'other is only under a transition')
    assert.equal(await objectExists(s3, Bucket, 'legacy/a'), false, 'legacy/a expired by its rule-level prefix')
    assert.ok(await objectExists(s3, node.bucket, 'logs/small'), 'a bucket without rules is untouched')
    const uploads2 = await s3.send(new ListMultipartUploadsCommand({ Bucket }))
    assert.deepEqual(
      uploads2.Uploads?.map((u) => u.UploadId),
      [otherMpu.UploadId],
    )
    await assert.rejects(
      s3.send(new UploadPartCommand({ Bucket, Key: 'mpu/file', UploadId: mpu.UploadId, PartNumber: 1, Body: 'x' })),
      s3Error('NoSuchUpload', 404),
    )

    await advanceTo(3)
    assert.equal(await objectExists(s3, Bucket, 'tmp/a'), false, 'tmp/a expired on its date')
    assert.ok(await objectExists(s3, Bucket, 'logs/big'), 'logs/big still there')
    const info = node.node.status().workers.find((x) => x.name === 'object lifecycle worker')?.info
    assert.equal(info?.objectsExpired, 3)
    assert.equal(info?.uploadsAborted, 1)
  })

  test('filters on tags (Filter/Tag and Filter/And with Prefix and Tags) expire only the tagged objects', async () => {
    const Bucket = 'lifecycle-tags'
    await s3.send(new CreateBucketCommand({ Bucket }))
    const put = (Key: string, Tagging?: string) =>
      s3.send(new PutObjectCommand({ Bucket, Key, Body: 'x', ...(Tagging === undefined ? {} : { Tagging }) }))
    await put('a/tmp', 'class=tmp')
    await put('a/keep', 'class=keep')
    await put('a/none')
    await put('p/both', 'class=tmp&team=x')
    await put('p/one', 'team=x')
    await put('q/both', 'class=tmp&team=y')
    await s3.send(
      new PutBucketLifecycleConfigurationCommand({
        Bucket,
        LifecycleConfiguration: {
          Rules: [
            { ID: 'tag', Status: 'Enabled', Filter: { Tag: { Key: 'class', Value: 'tmp' } }, Expiration: { Days: 1 } },
            {
              ID: 'and',
              Status: 'Enabled',
              Filter: {
                And: {
                  Prefix: 'p/',
                  Tags: [
                    { Key: 'team', Value: 'x' },
                    { Key: 'class', Value: 'tmp' },
                  ],
                },
              },
              Expiration: { Days: 1 },
            },
          ],
        },
      }),
    )
    const got = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket }))
    assert.deepEqual(got.Rules?.[0]?.Filter, { Tag: { Key: 'class', Value: 'tmp' } })
    assert.equal(got.Rules?.[1]?.Filter?.And?.Tags?.length, 2)
    await advanceTo(6)
    assert.equal(await objectExists(s3, Bucket, 'a/tmp'), false, 'a/tmp carries class=tmp')
    assert.equal(await objectExists(s3, Bucket, 'p/both'), false, 'p/both matches both rules')
    assert.equal(await objectExists(s3, Bucket, 'q/both'), false, 'q/both carries class=tmp')
    assert.ok(await objectExists(s3, Bucket, 'a/keep'), 'another value of the tag')
    assert.ok(await objectExists(s3, Bucket, 'a/none'), 'no tags')
    assert.ok(await objectExists(s3, Bucket, 'p/one'), 'only one of the And tags')
  })

  test('versioned bucket: noncurrent versions expire beyond the newest kept; a lone delete marker goes', async () => {
    const Bucket = 'lifecycle-versions'
    await s3.send(new CreateBucketCommand({ Bucket }))
    await s3.send(new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status: 'Enabled' } }))
    const put = async (Key: string, body: string) => (await s3.send(new PutObjectCommand({ Bucket, Key, Body: body }))).VersionId
    const v1 = await put('nc/k', 'one')
    const v2 = await put('nc/k', 'two')
    const v3 = await put('nc/k', 'three')
    const other = await put('other/k', 'a')
    await put('other/k', 'b')
    const d1 = await put('dm/k', 'x')
    const marker = (await s3.send(new DeleteObjectCommand({ Bucket, Key: 'dm/k' }))).VersionId
    await s3.send(new DeleteObjectCommand({ Bucket, Key: 'dm/k', VersionId: d1 }))
    const rules = [
      '<Rule><ID>nc</ID><Filter><Prefix>nc/</Prefix></Filter><Status>Enabled</Status>',
      '<NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays><NewerNoncurrentVersions>1</NewerNoncurrentVersions></NoncurrentVersionExpiration></Rule>',
      '<Rule><ID>dm</ID><Filter><Prefix>dm/</Prefix></Filter><Status>Enabled</Status>',
      '<Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration></Rule>',
    ]
    const r = await putLifecycleXml(Bucket, `<LifecycleConfiguration>${rules.join('')}</LifecycleConfiguration>`)
    assert.equal(r.status, 200, r.text)
    const got = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket }))
    assert.deepEqual(got.Rules?.[0]?.NoncurrentVersionExpiration, { NoncurrentDays: 1, NewerNoncurrentVersions: 1 })
    assert.equal(got.Rules?.[1]?.Expiration?.ExpiredObjectDeleteMarker, true)

    const ids = async (Prefix: string) => {
      const l = await s3.send(new ListObjectVersionsCommand({ Bucket, Prefix }))
      return [...(l.Versions ?? []), ...(l.DeleteMarkers ?? [])].map((v) => v.VersionId)
    }
    assert.deepEqual(await ids('nc/'), [v3, v2, v1])
    assert.deepEqual(await ids('dm/'), [marker])
    // The other tests moved the clock 6 days ahead; the versions became noncurrent today.
    await advanceTo(8)
    assert.deepEqual(await ids('nc/'), [v3, v2], 'v1 expired; v2 is the one newer noncurrent version kept')
    assert.deepEqual(await ids('dm/'), [], `the lone delete marker ${marker} was purged`)
    assert.equal((await ids('other/')).includes(other), true, 'no rule for other/')
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket, Key: 'nc/k', VersionId: v1 })), s3Error('NoSuchVersion', 404))
    const info = node.node.status().workers.find((x) => x.name === 'object lifecycle worker')?.info
    assert.equal(info?.versionsPurged, 2)
  })
})
