/**
 * The multipart upload table: one row per part upload beside the upload row, so a part costs the
 * same whatever the number of parts before it; deleting the upload reaches every part row and
 * part version, including rows that arrive after the deletion; rows written when the upload row
 * held every part are still read.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Garage } from '../../../lib/model/garage.ts'
import {
  deletedMpu,
  foldMpuRows,
  type MpuEntry,
  type MpuPart,
  mpuCodec,
  mpuPartRow,
  mpuPartSortKey,
  mpuTableSchema,
  parseMpuPartSortKey,
} from '../../../lib/model/s3/mpu-table.ts'
import { genUuid } from '../../../lib/util/data.ts'
import { eventually } from '../../helpers/eventually.ts'
import { startModel } from '../../helpers/model.ts'

const EMPTY = new Uint8Array(0)

function upload(): MpuEntry {
  return { uploadId: genUuid(), deleted: false, parts: [], ts: 1000, bucketId: genUuid(), key: 'k' }
}

function part(partNumber: number, ts: number, done = true): MpuPart {
  return {
    partNumber,
    ts,
    version: genUuid(),
    etag: done ? `e${partNumber}-${ts}` : null,
    size: done ? 10 : null,
    checksum: null,
  }
}

/** Writes a part row and its part version, as UploadPart does. */
async function addPart(garage: Garage, u: MpuEntry, p: MpuPart): Promise<void> {
  await garage.mpuTable.insert(mpuPartRow(u, p))
  await garage.versionTable.insert({
    uuid: p.version,
    deleted: false,
    blocks: [],
    partsEtags: [],
    backlink: { t: 'mpu', uploadId: u.uploadId },
  })
}

const drained = (garage: Garage) =>
  eventually('insert queues drained', () => garage.tables.every((tb) => tb.data.insertQueue.count() === 0))

test('part rows sort by part number, then timestamp, after the upload row', () => {
  const keys = [
    mpuPartSortKey({ partNumber: 2, ts: 5 }),
    mpuPartSortKey({ partNumber: 1, ts: 2 ** 40 }),
    mpuPartSortKey({ partNumber: 10_000, ts: 1 }),
    mpuPartSortKey({ partNumber: 1, ts: 7 }),
  ]
  const sorted = [...keys].sort(Buffer.compare).map((k) => Buffer.from(k).toString('hex'))
  assert.deepEqual(
    sorted,
    [keys[3], keys[1], keys[0], keys[2]].map((k) => Buffer.from(k as Uint8Array).toString('hex')),
  )
  assert.ok(
    keys.every((k) => k.length > 0),
    'the upload row (empty sort key) comes first',
  )
})

test('a part leaves the upload row as it was: the row does not grow with the parts', async (t) => {
  const { garage } = await startModel(t)
  const u = upload()
  await garage.mpuTable.insert(u)
  const rowKey = garage.mpuTable.data.treeKey(u.uploadId, EMPTY)
  const before = garage.mpuTable.data.store.get(rowKey)
  for (let n = 1; n <= 300; n++) await garage.mpuTable.insert(mpuPartRow(u, part(n, 2000 + n)))
  assert.deepEqual(garage.mpuTable.data.store.get(rowKey), before, 'the upload row is byte for byte unchanged')
  const rows = await garage.mpuTable.getRange(u.uploadId, { limit: 1000 })
  assert.equal(rows.length, 301)
  const folded = foldMpuRows(rows)
  assert.equal(folded?.parts.length, 300)
  assert.deepEqual(
    folded?.parts.map((p) => p.partNumber),
    Array.from({ length: 300 }, (_, i) => i + 1),
  )
})

test('a part row merges its begin and finish writes into one part', async (t) => {
  const { garage } = await startModel(t)
  const u = upload()
  await garage.mpuTable.insert(u)
  const started = part(4, 3000, false)
  await garage.mpuTable.insert(mpuPartRow(u, started))
  await garage.mpuTable.insert(mpuPartRow(u, { ...started, etag: 'abc', size: 42 }))
  const row = await garage.mpuTable.get(u.uploadId, mpuPartSortKey({ partNumber: 4, ts: 3000 }))
  assert.deepEqual(row?.parts, [{ ...started, etag: 'abc', size: 42 }])
})

test('two uploads of a part number at the same timestamp merge to the same part in either order (replicas converge)', () => {
  const u = upload()
  const a = part(2, 5000)
  const b = part(2, 5000)
  const schema = mpuTableSchema({ queueVersion() {}, queueMpu() {}, localUpload: () => undefined, localPartKeys: () => [] })
  const ab = schema.merge(mpuPartRow(u, a), mpuPartRow(u, b))
  const ba = schema.merge(mpuPartRow(u, b), mpuPartRow(u, a))
  assert.deepEqual(ab.parts, ba.parts, 'the same part whatever the order of arrival')
  assert.equal(ab.parts.length, 1)
  // The larger version id wins, whole (its ETag with its version).
  const winner = Buffer.compare(Buffer.from(a.version), Buffer.from(b.version)) >= 0 ? a : b
  assert.deepEqual(ab.parts[0], winner)
})

test('deleting an upload tombstones its part rows and deletes their part versions', async (t) => {
  const { garage } = await startModel(t)
  const u = upload()
  await garage.mpuTable.insert(u)
  const parts = [part(1, 2001), part(2, 2002), part(2, 2003)]
  for (const p of parts) await addPart(garage, u, p)
  await garage.mpuTable.insert(deletedMpu(u.uploadId, u.ts, u.bucketId, u.key))
  await drained(garage)
  for (const p of parts) {
    const row = await garage.mpuTable.get(u.uploadId, mpuPartSortKey(p))
    assert.equal(row?.deleted, true, `part row ${p.partNumber}@${p.ts} tombstoned`)
    assert.equal((await garage.versionTable.get(p.version, EMPTY))?.deleted, true, `part version ${p.partNumber}@${p.ts}`)
  }
  assert.equal(foldMpuRows(await garage.mpuTable.getRange(u.uploadId, { limit: 10 }))?.deleted, true)
})

test('a part row written after its upload was deleted is deleted with its version', async (t) => {
  const { garage } = await startModel(t)
  const u = upload()
  await garage.mpuTable.insert(u)
  await garage.mpuTable.insert(deletedMpu(u.uploadId, u.ts, u.bucketId, u.key))
  const late = part(7, 5000)
  await addPart(garage, u, late)
  await drained(garage)
  assert.equal((await garage.mpuTable.get(u.uploadId, mpuPartSortKey(late)))?.deleted, true, 'late part row tombstoned')
  assert.equal((await garage.versionTable.get(late.version, EMPTY))?.deleted, true, 'late part version deleted')
})

test('an upload row that holds its parts (the earlier format) is folded with part rows, and its deletion still reaches them', async (t) => {
  const { garage } = await startModel(t)
  const old = part(1, 2001)
  const u: MpuEntry = { ...upload(), parts: [old] }
  // Stored exactly as the earlier code wrote it: same marker, no partRow field.
  assert.equal('partRow' in mpuCodec.decode(mpuCodec.encode(u)), false)
  await garage.mpuTable.insert(u)
  await garage.versionTable.insert({
    uuid: old.version,
    deleted: false,
    blocks: [],
    partsEtags: [],
    backlink: { t: 'mpu', uploadId: u.uploadId },
  })
  const newer = part(1, 2005)
  const other = part(3, 2006)
  await addPart(garage, u, newer)
  await addPart(garage, u, other)
  const folded = foldMpuRows(await garage.mpuTable.getRange(u.uploadId, { limit: 10 }))
  assert.deepEqual(
    folded?.parts.map((p) => [p.partNumber, p.ts]),
    [
      [1, 2001],
      [1, 2005],
      [3, 2006],
    ],
  )
  await garage.mpuTable.insert(deletedMpu(u.uploadId, u.ts, u.bucketId, u.key))
  await drained(garage)
  for (const p of [old, newer, other]) {
    assert.equal((await garage.versionTable.get(p.version, EMPTY))?.deleted, true, `part version ${p.partNumber}@${p.ts}`)
  }
})
