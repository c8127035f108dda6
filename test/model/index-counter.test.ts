/** Bucket object counters: what one row counts, and the object table hook keeping them exact. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { countObject } from '../../lib/model/index-counter.ts'
import type { ObjectEntry, ObjectVersion } from '../../lib/model/s3/object-table.ts'
import { genUuid } from '../../lib/util/data.ts'
import { startModel } from '../helpers/model.ts'

const meta = (size: number) => ({ size, etag: 'e', headers: [] })
const inline = (ts: number, size: number): ObjectVersion => ({
  uuid: genUuid(),
  ts,
  state: { t: 'complete', data: { t: 'inline', meta: meta(size), bytes: new Uint8Array(size) } },
})
const uploading = (ts: number): ObjectVersion => ({
  uuid: genUuid(),
  ts,
  state: { t: 'uploading', multipart: true, headers: [] },
})
const deleted = (ts: number): ObjectVersion => ({ uuid: genUuid(), ts, state: { t: 'complete', data: { t: 'delete' } } })

test('a row counts its newest complete version and its uploads', () => {
  const b = genUuid()
  const row = (versions: ObjectVersion[]): ObjectEntry => ({ bucketId: b, key: 'k', versions })
  assert.deepEqual(countObject(undefined), { objects: 0, bytes: 0, unfinishedUploads: 0 })
  assert.deepEqual(countObject(row([inline(1, 10)])), { objects: 1, bytes: 10, unfinishedUploads: 0 })
  assert.deepEqual(countObject(row([inline(1, 10), uploading(2)])), { objects: 1, bytes: 10, unfinishedUploads: 1 })
  assert.deepEqual(countObject(row([inline(1, 10), deleted(2)])), { objects: 0, bytes: 0, unfinishedUploads: 0 })
  assert.deepEqual(countObject(row([uploading(1)])), { objects: 0, bytes: 0, unfinishedUploads: 1 })
})

test('the object table keeps the counters of each bucket, and a recount agrees', async (t) => {
  const { garage } = await startModel(t)
  const a = genUuid()
  const b = genUuid()
  const up = uploading(1)
  await garage.objectTable.insert({ bucketId: a, key: 'x', versions: [up] })
  assert.deepEqual(garage.objectCounter.get(a), { objects: 0, bytes: 0, unfinishedUploads: 1 })
  await garage.objectTable.insert({ bucketId: a, key: 'x', versions: [{ ...up, state: inline(1, 5).state }] })
  await garage.objectTable.insert({ bucketId: a, key: 'y', versions: [inline(2, 7)] })
  await garage.objectTable.insert({ bucketId: b, key: 'x', versions: [inline(3, 100)] })
  assert.deepEqual(garage.objectCounter.get(a), { objects: 2, bytes: 12, unfinishedUploads: 0 })
  await garage.objectTable.insert({ bucketId: a, key: 'y', versions: [inline(4, 1)] })
  await garage.objectTable.insert({ bucketId: a, key: 'x', versions: [deleted(5)] })
  assert.deepEqual(garage.objectCounter.get(a), { objects: 1, bytes: 1, unfinishedUploads: 0 })
  assert.deepEqual(garage.objectCounter.get(b), { objects: 1, bytes: 100, unfinishedUploads: 0 })

  const data = garage.objectTable.data
  const ran = garage.objectCounter.initialize(data.store, (raw) => data.schema.codec.decode(raw))
  assert.equal(ran, true, 'a first initialization recounts')
  assert.deepEqual(garage.objectCounter.get(a), { objects: 1, bytes: 1, unfinishedUploads: 0 })
  assert.deepEqual(garage.objectCounter.get(b), { objects: 1, bytes: 100, unfinishedUploads: 0 })
  assert.equal(
    garage.objectCounter.initialize(data.store, (raw) => data.schema.codec.decode(raw)),
    false,
    'only once',
  )
})
