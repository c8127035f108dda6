/** The object row's versioning extension: old rows, tombstones, and what the update hook deletes. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { encodeMsgpack } from '../../../lib/util/codec.ts'
import {
  isObjectTombstone,
  objectCodec,
  type ObjectEntry,
  type ObjectVersion,
  objectTableSchema,
} from '../../../lib/model/s3/object-table.ts'
import type { MpuEntry } from '../../../lib/model/s3/mpu-table.ts'
import type { VersionEntry } from '../../../lib/model/s3/version-table.ts'
import type { Transaction } from '../../../lib/db/db.ts'

const id = (n: number): Uint8Array => new Uint8Array(32).fill(n)
const data: ObjectVersion['state'] = {
  t: 'complete',
  data: { t: 'inline', meta: { size: 1, etag: 'e', headers: [] }, bytes: new Uint8Array([1]) },
}
const marker: ObjectVersion['state'] = { t: 'complete', data: { t: 'delete' } }
const row = (versions: ObjectVersion[]): ObjectEntry => ({ bucketId: id(9), key: 'k', versions })

describe('object row (versioning)', () => {
  test('a GTobj1 row decodes unchanged: all its versions are null versions', () => {
    const old = row([{ uuid: id(1), ts: 5, state: data }])
    const bytes = Buffer.concat([Buffer.from('GTobj1', 'ascii'), Buffer.from(encodeMsgpack(old))])
    const decoded = objectCodec.decode(bytes)
    // Same encoding (the decoder returns Buffers for byte strings).
    assert.deepEqual(Buffer.from(encodeMsgpack(decoded)), Buffer.from(encodeMsgpack(old)))
    assert.equal(decoded.versions[0]?.keep, undefined)
    assert.equal(Buffer.from(objectCodec.encode(decoded)).subarray(0, 6).toString(), 'GTobj2')
  })

  test('tombstones: null delete markers and purged versions only; a kept delete marker is a version', () => {
    assert.equal(isObjectTombstone(row([{ uuid: id(1), ts: 1, state: marker }])), true)
    assert.equal(isObjectTombstone(row([{ uuid: id(1), ts: 1, state: marker, keep: true }])), false)
    assert.equal(
      isObjectTombstone(
        row([
          { uuid: id(1), ts: 1, state: { t: 'purged' }, keep: true },
          { uuid: id(2), ts: 2, state: marker },
        ]),
      ),
      true,
    )
    assert.equal(
      isObjectTombstone(
        row([
          { uuid: id(1), ts: 1, state: data, keep: true },
          { uuid: id(2), ts: 2, state: marker },
        ]),
      ),
      false,
    )
  })

  test('the update hook deletes the version row of a purged version, not of a kept noncurrent one', () => {
    const deleted: string[] = []
    const schema = objectTableSchema({
      queueVersion: (_tx: Transaction, e: VersionEntry) => {
        if (e.deleted) deleted.push(Buffer.from(e.uuid).toString('hex').slice(0, 2))
      },
      queueMpu: () => {},
    })
    const tx = {} as Transaction
    const v1: ObjectVersion = { uuid: id(1), ts: 1, state: data, keep: true }
    const v2: ObjectVersion = { uuid: id(2), ts: 2, state: data, keep: true }
    const before = row([v1])
    const after = schema.merge(before, row([v2]))
    schema.updated?.(tx, before, after)
    assert.deepEqual(deleted, [], 'an overwrite in a versioned bucket deletes nothing')
    const purged = schema.merge(after, row([{ uuid: id(1), ts: 1, state: { t: 'purged' }, keep: true }]))
    schema.updated?.(tx, after, purged)
    assert.deepEqual(deleted, ['01'], 'the purged version row goes')
    // Null versions keep Garage's rule: an overwrite deletes the old one.
    const n1 = row([{ uuid: id(3), ts: 3, state: data }])
    const n2 = schema.merge(n1, row([{ uuid: id(4), ts: 4, state: data }]))
    schema.updated?.(tx, n1, n2)
    assert.deepEqual(deleted, ['01', '03'])
  })

  test('the update hook deletes the upload of a multipart version that completes, not its version row', () => {
    const versions: string[] = []
    const uploads: string[] = []
    const schema = objectTableSchema({
      queueVersion: (_tx: Transaction, e: VersionEntry) => {
        if (e.deleted) versions.push(Buffer.from(e.uuid).toString('hex').slice(0, 2))
      },
      queueMpu: (_tx: Transaction, e: MpuEntry) => {
        if (e.deleted) uploads.push(Buffer.from(e.uploadId).toString('hex').slice(0, 2))
      },
    })
    const tx = {} as Transaction
    const uploading = row([{ uuid: id(5), ts: 5, state: { t: 'uploading', multipart: true, headers: [] } }])
    const complete = schema.merge(uploading, row([{ uuid: id(5), ts: 5, state: data }]))
    schema.updated?.(tx, uploading, complete)
    assert.deepEqual(uploads, ['05'], 'CompleteMultipartUpload need not delete the upload itself')
    assert.deepEqual(versions, [], 'the final version (the upload id) stays')
    // A single-part PUT completing deletes nothing.
    const put = row([{ uuid: id(6), ts: 6, state: { t: 'uploading', multipart: false, headers: [] } }])
    schema.updated?.(tx, put, schema.merge(put, row([{ uuid: id(6), ts: 6, state: data }])))
    assert.deepEqual([uploads, versions], [['05'], []])
  })
})
