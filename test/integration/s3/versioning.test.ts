/** Object versioning through the AWS SDK: bucket state, version ids, delete markers, list versions. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import type { TestNode } from '../../../lib/testing.ts'
import { randomBuffer, rawRequest, s3Error, useTestNode } from '../../helpers/s3.ts'

let node: TestNode
let s3: S3Client

useTestNode({}, (n, c) => {
  node = n
  s3 = c
})

let bucketCount = 0
/** A fresh bucket, versioned unless `status` is null. */
async function bucket(status: 'Enabled' | 'Suspended' | null = 'Enabled'): Promise<string> {
  const name = `ver-${process.pid}-${bucketCount++}`
  await s3.send(new CreateBucketCommand({ Bucket: name }))
  if (status !== null) {
    await s3.send(new PutBucketVersioningCommand({ Bucket: name, VersioningConfiguration: { Status: status } }))
  }
  return name
}

async function put(b: string, key: string, body: string | Uint8Array): Promise<string | undefined> {
  return (await s3.send(new PutObjectCommand({ Bucket: b, Key: key, Body: body }))).VersionId
}

async function get(b: string, key: string, versionId?: string): Promise<string> {
  const r = await s3.send(new GetObjectCommand({ Bucket: b, Key: key, VersionId: versionId }))
  return (await r.Body?.transformToString()) ?? ''
}

describe('PutBucketVersioning / GetBucketVersioning', () => {
  test('a bucket never versioned answers an empty configuration; the state then reads back', async () => {
    const b = await bucket(null)
    const empty = await s3.send(new GetBucketVersioningCommand({ Bucket: b }))
    assert.equal(empty.Status, undefined)
    const raw = await rawRequest(node, { method: 'GET', path: `/${b}`, query: { versioning: '' } })
    assert.match(
      raw.body.toString(),
      /<VersioningConfiguration[^>]*\/>|<VersioningConfiguration[^>]*><\/VersioningConfiguration>/,
    )
    await s3.send(new PutBucketVersioningCommand({ Bucket: b, VersioningConfiguration: { Status: 'Enabled' } }))
    assert.equal((await s3.send(new GetBucketVersioningCommand({ Bucket: b }))).Status, 'Enabled')
    await s3.send(new PutBucketVersioningCommand({ Bucket: b, VersioningConfiguration: { Status: 'Suspended' } }))
    assert.equal((await s3.send(new GetBucketVersioningCommand({ Bucket: b }))).Status, 'Suspended')
  })

  test('MFA delete is refused and a bad status is MalformedXML, changing nothing', async () => {
    const b = await bucket(null)
    await assert.rejects(
      s3.send(
        new PutBucketVersioningCommand({ Bucket: b, VersioningConfiguration: { Status: 'Enabled', MFADelete: 'Enabled' } }),
      ),
      s3Error('InvalidRequest', 400),
    )
    const body = '<VersioningConfiguration><Status>On</Status></VersioningConfiguration>'
    const r = await rawRequest(node, { method: 'PUT', path: `/${b}`, query: { versioning: '' }, body })
    assert.equal(r.status, 400)
    assert.match(r.body.toString(), /MalformedXML/)
    assert.equal((await s3.send(new GetBucketVersioningCommand({ Bucket: b }))).Status, undefined)
  })
})

describe('versions', () => {
  test('overwrites keep every version, readable by id; the latest is served without one', async () => {
    const b = await bucket()
    const ids: string[] = []
    for (const body of ['one', 'two', 'three']) ids.push((await put(b, 'k', body)) as string)
    assert.equal(new Set(ids).size, 3)
    for (const id of ids) assert.match(id, /^[0-9a-f]{64}$/)
    assert.equal(await get(b, 'k'), 'three')
    assert.equal(await get(b, 'k', ids[0]), 'one')
    assert.equal(await get(b, 'k', ids[1]), 'two')
    const head = await s3.send(new HeadObjectCommand({ Bucket: b, Key: 'k', VersionId: ids[0] }))
    assert.equal(head.VersionId, ids[0])
    assert.equal(head.ContentLength, 3)
    const latest = await s3.send(new GetObjectCommand({ Bucket: b, Key: 'k' }))
    assert.equal(latest.VersionId, ids[2])
    await latest.Body?.transformToString()
  })

  test('multi-block versions stay readable after overwrites', async () => {
    const b = await bucket()
    const big1 = randomBuffer(2 * 1024 * 1024 + 7)
    const big2 = randomBuffer(1024 * 1024 + 3)
    const v1 = await put(b, 'big', big1)
    await put(b, 'big', big2)
    const r = await s3.send(new GetObjectCommand({ Bucket: b, Key: 'big', VersionId: v1 }))
    assert.deepEqual(Buffer.from(await (r.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray()), big1)
  })

  test('a bad version id is InvalidArgument, an unknown one NoSuchVersion', async () => {
    const b = await bucket()
    await put(b, 'k', 'x')
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: b, Key: 'k', VersionId: 'not-a-version' })), (err: unknown) => {
      assert.ok(s3Error('InvalidArgument', 400)(err))
      assert.match((err as Error).message, /Invalid version id specified/)
      return true
    })
    await assert.rejects(
      s3.send(new GetObjectCommand({ Bucket: b, Key: 'k', VersionId: 'ab'.repeat(32) })),
      s3Error('NoSuchVersion', 404),
    )
    await assert.rejects(
      s3.send(new HeadObjectCommand({ Bucket: b, Key: 'k', VersionId: 'ab'.repeat(32) })),
      s3Error('NotFound', 404),
    )
  })

  test('DELETE writes a delete marker; GET is 404 with x-amz-delete-marker, the marker by id 405', async () => {
    const b = await bucket()
    const v1 = await put(b, 'k', 'data')
    const del = await s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'k' }))
    assert.equal(del.DeleteMarker, true)
    assert.match(del.VersionId ?? '', /^[0-9a-f]{64}$/)
    const raw = await rawRequest(node, { method: 'GET', path: `/${b}/k` })
    assert.equal(raw.status, 404)
    assert.equal(raw.headers['x-amz-delete-marker'], 'true')
    assert.equal(raw.headers['x-amz-version-id'], del.VersionId)
    assert.match(raw.body.toString(), /NoSuchKey/)
    const byId = await rawRequest(node, { method: 'GET', path: `/${b}/k`, query: { versionId: del.VersionId ?? '' } })
    assert.equal(byId.status, 405)
    assert.equal(byId.headers['x-amz-delete-marker'], 'true')
    const headById = await rawRequest(node, { method: 'HEAD', path: `/${b}/k`, query: { versionId: del.VersionId ?? '' } })
    assert.equal(headById.status, 405)
    assert.equal(await get(b, 'k', v1), 'data')
    // The key is gone from ordinary listings.
    const list = await s3.send(new ListObjectsV2Command({ Bucket: b }))
    assert.equal(list.KeyCount, 0)
    // Deleting the marker by id brings the object back.
    const undel = await s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'k', VersionId: del.VersionId }))
    assert.equal(undel.DeleteMarker, true)
    assert.equal(undel.VersionId, del.VersionId)
    assert.equal(await get(b, 'k'), 'data')
  })

  test('deleting a version by id removes only that version; the previous one becomes latest', async () => {
    const b = await bucket()
    const v1 = await put(b, 'k', 'one')
    const v2 = await put(b, 'k', 'two')
    const r = await s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'k', VersionId: v2 }))
    assert.equal(r.VersionId, v2)
    assert.equal(r.DeleteMarker, undefined)
    assert.equal(await get(b, 'k'), 'one')
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: b, Key: 'k', VersionId: v2 })), s3Error('NoSuchVersion', 404))
    await s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'k', VersionId: v1 }))
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: b, Key: 'k' })), s3Error('NoSuchKey', 404))
    const versions = await s3.send(new ListObjectVersionsCommand({ Bucket: b }))
    assert.equal(versions.Versions, undefined)
    assert.equal(versions.DeleteMarkers, undefined)
  })

  test('the null version: written before versioning, kept when enabled, replaced when suspended', async () => {
    const b = await bucket(null)
    await put(b, 'k', 'before')
    await s3.send(new PutBucketVersioningCommand({ Bucket: b, VersioningConfiguration: { Status: 'Enabled' } }))
    const v2 = await put(b, 'k', 'enabled')
    assert.equal(await get(b, 'k', 'null'), 'before')
    await s3.send(new PutBucketVersioningCommand({ Bucket: b, VersioningConfiguration: { Status: 'Suspended' } }))
    const v3 = await put(b, 'k', 'suspended-1')
    assert.equal(v3, 'null')
    await put(b, 'k', 'suspended-2')
    assert.equal(await get(b, 'k', 'null'), 'suspended-2')
    assert.equal(await get(b, 'k', v2), 'enabled')
    const list = await s3.send(new ListObjectVersionsCommand({ Bucket: b, Prefix: 'k' }))
    assert.deepEqual(
      list.Versions?.map((v) => [v.VersionId, v.IsLatest]),
      [
        ['null', true],
        [v2, false],
      ],
    )
    // A suspended DELETE writes a null delete marker, replacing the null version.
    const del = await s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'k' }))
    assert.equal(del.DeleteMarker, true)
    assert.equal(del.VersionId, 'null')
    const after = await s3.send(new ListObjectVersionsCommand({ Bucket: b, Prefix: 'k' }))
    assert.deepEqual(
      after.Versions?.map((v) => v.VersionId),
      [v2],
    )
    assert.deepEqual(
      after.DeleteMarkers?.map((m) => [m.VersionId, m.IsLatest]),
      [['null', true]],
    )
  })

  test('CopyObject from a version, and CompleteMultipartUpload, answer version ids', async () => {
    const b = await bucket()
    const v1 = await put(b, 'src', 'first')
    await put(b, 'src', 'second')
    const copy = await s3.send(new CopyObjectCommand({ Bucket: b, Key: 'dst', CopySource: `${b}/src?versionId=${v1}` }))
    assert.equal(copy.CopySourceVersionId, v1)
    assert.match(copy.VersionId ?? '', /^[0-9a-f]{64}$/)
    assert.equal(await get(b, 'dst'), 'first')
    // Restoring an old version onto its own key.
    await s3.send(new CopyObjectCommand({ Bucket: b, Key: 'src', CopySource: `${b}/src?versionId=${v1}` }))
    assert.equal(await get(b, 'src'), 'first')
    await assert.rejects(
      s3.send(new CopyObjectCommand({ Bucket: b, Key: 'dst', CopySource: `${b}/src?versionId=${'cd'.repeat(32)}` })),
      s3Error('NoSuchVersion', 404),
    )

    const mpu = await s3.send(new CreateMultipartUploadCommand({ Bucket: b, Key: 'mp' }))
    const part = await s3.send(
      new UploadPartCommand({ Bucket: b, Key: 'mp', UploadId: mpu.UploadId, PartNumber: 1, Body: 'multipart body' }),
    )
    const done = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: b,
        Key: 'mp',
        UploadId: mpu.UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] },
      }),
    )
    assert.match(done.VersionId ?? '', /^[0-9a-f]{64}$/)
    await put(b, 'mp', 'overwritten')
    assert.equal(await get(b, 'mp', done.VersionId), 'multipart body')
  })

  test('DeleteObjects with version ids and delete markers', async () => {
    const b = await bucket()
    const v1 = await put(b, 'a', 'a1')
    await put(b, 'a', 'a2')
    await put(b, 'b', 'b1')
    const r = await s3.send(
      new DeleteObjectsCommand({ Bucket: b, Delete: { Objects: [{ Key: 'a', VersionId: v1 }, { Key: 'b' }] } }),
    )
    const byKey = new Map(r.Deleted?.map((d) => [d.Key, d]))
    assert.equal(byKey.get('a')?.VersionId, v1)
    assert.equal(byKey.get('a')?.DeleteMarker, undefined)
    assert.equal(byKey.get('b')?.DeleteMarker, true)
    assert.match(byKey.get('b')?.DeleteMarkerVersionId ?? '', /^[0-9a-f]{64}$/)
    assert.equal(await get(b, 'a'), 'a2')
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: b, Key: 'a', VersionId: v1 })), s3Error('NoSuchVersion', 404))
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: b, Key: 'b' })), s3Error('NoSuchKey', 404))
  })

  test('DeleteObjects naming a key several times deletes as one request after the other would', async () => {
    const b = await bucket()
    const v1 = await put(b, 'k', 'k1')
    await put(b, 'k', 'k2')
    await put(b, 'other', 'o')
    const r = await s3.send(
      new DeleteObjectsCommand({
        Bucket: b,
        Delete: { Objects: [{ Key: 'k' }, { Key: 'other' }, { Key: 'k' }, { Key: 'k', VersionId: v1 }] },
      }),
    )
    assert.deepEqual(r.Errors ?? [], [])
    // Answered in the request's order, each key's entry as a lone DeleteObject would answer it.
    assert.deepEqual(
      r.Deleted?.map((d) => [d.Key, d.DeleteMarker ?? false, d.VersionId === v1]),
      [
        ['k', true, false],
        ['other', true, false],
        ['k', true, false],
        ['k', false, true],
      ],
    )
    const markers = [r.Deleted?.[0]?.DeleteMarkerVersionId, r.Deleted?.[2]?.DeleteMarkerVersionId]
    assert.notEqual(markers[0], markers[1])
    const v = await s3.send(new ListObjectVersionsCommand({ Bucket: b, Prefix: 'k' }))
    // Two markers, the second written after (so newer than) the first; v1 purged, k2 kept.
    assert.deepEqual(
      v.DeleteMarkers?.map((m) => [m.VersionId, m.IsLatest]),
      [
        [markers[1], true],
        [markers[0], false],
      ],
    )
    assert.deepEqual(
      v.Versions?.map((x) => x.VersionId === v1),
      [false],
    )
    const [newer, older] = (v.DeleteMarkers ?? []).map((m) => m.LastModified?.getTime() ?? 0)
    assert.ok((newer ?? 0) > (older ?? 0), `the second marker's time ${newer} follows the first's ${older}`)
  })
})

describe('ListObjectVersions', () => {
  test('keys ascending, versions newest first, with delete markers and IsLatest', async () => {
    const b = await bucket()
    const a1 = await put(b, 'a', '1')
    const a2 = await put(b, 'a', '22')
    const b1 = await put(b, 'b', '333')
    const marker = (await s3.send(new DeleteObjectCommand({ Bucket: b, Key: 'b' }))).VersionId
    const r = await s3.send(new ListObjectVersionsCommand({ Bucket: b }))
    assert.deepEqual(
      r.Versions?.map((v) => [v.Key, v.VersionId, v.IsLatest, v.Size]),
      [
        ['a', a2, true, 2],
        ['a', a1, false, 1],
        ['b', b1, false, 3],
      ],
    )
    assert.deepEqual(
      r.DeleteMarkers?.map((m) => [m.Key, m.VersionId, m.IsLatest]),
      [['b', marker, true]],
    )
    assert.equal(r.IsTruncated, false)
  })

  test('pages with max-keys through key-marker and version-id-marker, each entry once', async () => {
    const b = await bucket()
    const expected: string[] = []
    for (const key of ['p/1', 'p/2', 'p/3']) {
      const ids = []
      for (let i = 0; i < 3; i++) ids.push(await put(b, key, `${key}-${i}`))
      for (const id of ids.reverse()) expected.push(`${key}@${id}`)
    }
    const seen: string[] = []
    let keyMarker: string | undefined
    let versionIdMarker: string | undefined
    let pages = 0
    for (;;) {
      const r = await s3.send(
        new ListObjectVersionsCommand({ Bucket: b, MaxKeys: 2, KeyMarker: keyMarker, VersionIdMarker: versionIdMarker }),
      )
      pages++
      for (const v of r.Versions ?? []) seen.push(`${v.Key}@${v.VersionId}`)
      assert.ok((r.Versions?.length ?? 0) <= 2)
      if (r.IsTruncated !== true) break
      keyMarker = r.NextKeyMarker
      versionIdMarker = r.NextVersionIdMarker
      assert.ok(pages < 20, 'pagination ends')
    }
    assert.deepEqual(seen, expected)
    assert.equal(pages, 5)
  })

  test('prefix and delimiter group keys into common prefixes', async () => {
    const b = await bucket()
    await put(b, 'dir/x', '1')
    await put(b, 'dir/y', '1')
    await put(b, 'top', '1')
    await put(b, 'top', '2')
    const r = await s3.send(new ListObjectVersionsCommand({ Bucket: b, Delimiter: '/' }))
    assert.deepEqual(
      r.CommonPrefixes?.map((c) => c.Prefix),
      ['dir/'],
    )
    assert.deepEqual(
      r.Versions?.map((v) => v.Key),
      ['top', 'top'],
    )
    const p = await s3.send(new ListObjectVersionsCommand({ Bucket: b, Prefix: 'dir/' }))
    assert.deepEqual(
      p.Versions?.map((v) => v.Key),
      ['dir/x', 'dir/y'],
    )
  })

  test('a version-id-marker without a key-marker, or malformed, is InvalidArgument', async () => {
    const b = await bucket()
    await assert.rejects(
      s3.send(new ListObjectVersionsCommand({ Bucket: b, VersionIdMarker: 'ab'.repeat(32) })),
      s3Error('InvalidArgument', 400),
    )
    await assert.rejects(
      s3.send(new ListObjectVersionsCommand({ Bucket: b, KeyMarker: 'k', VersionIdMarker: 'bad' })),
      s3Error('InvalidArgument', 400),
    )
  })
})
