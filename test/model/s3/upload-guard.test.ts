/**
 * The upload guard's abort at restart (lib/model/s3/upload-guard.ts) on a model with lmdb on disk:
 * a small PUT killed between its data round and its commit leaves a version row that no object
 * row lists, which the restart deletes itself (its block references and block counts follow);
 * a version whose commit landed before the crash is kept.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Garage } from '../../../lib/model/garage.ts'
import { mpuPartRow } from '../../../lib/model/s3/mpu-table.ts'
import { versionBlock } from '../../../lib/model/s3/version-table.ts'
import { blake2sum, genUuid, type Uuid } from '../../../lib/util/data.ts'
import { eventually } from '../../helpers/eventually.ts'
import { startModel } from '../../helpers/model.ts'

const EMPTY = new Uint8Array(0)

/** What a small PUT's data round leaves: the version row with its block and the block_ref. */
async function dataRound(
  garage: Garage,
  bucketId: Uuid,
  key: string,
  body: string,
): Promise<{ version: Uuid; hash: Uint8Array }> {
  const version = genUuid()
  const hash = blake2sum(body)
  await garage.versionTable.insert({
    uuid: version,
    deleted: false,
    blocks: [versionBlock(1, 0, hash, body.length)],
    partsEtags: [],
    backlink: { t: 'object', bucketId, key },
  })
  await garage.blockRefTable.insert({ block: hash, version, deleted: false })
  return { version, hash }
}

const drained = (garage: Garage) =>
  eventually('insert queues drained', () => garage.tables.every((tb) => tb.data.insertQueue.count() === 0))

test('a version written before a crash and never committed is deleted at the next start, with its block references', async (t) => {
  const { garage } = await startModel(t)
  const bucketId = genUuid()
  const a = await dataRound(garage, bucketId, 'crashed', 'crashed body')
  // No timestamp: the crash came before the key's row was read, so no object row lists it.
  garage.uploads.begin(a.version, bucketId, 'crashed')
  await drained(garage)
  assert.equal(garage.blockManager.rc.get(a.hash), 1)

  assert.equal(await garage.uploads.abortLeftovers(garage.objectTable, garage.versionTable, garage.mpuTable), 1)
  await drained(garage)
  assert.equal((await garage.versionTable.get(a.version, EMPTY))?.deleted, true, 'the version is deleted')
  assert.equal((await garage.blockRefTable.get(a.hash, a.version))?.deleted, true, 'its block reference too')
  assert.equal(garage.blockManager.rc.get(a.hash), 0, 'its block is no longer referenced')
  assert.equal(
    await garage.uploads.abortLeftovers(garage.objectTable, garage.versionTable, garage.mpuTable),
    0,
    'the record is gone',
  )
  assert.equal(await garage.objectTable.get(bucketId, Buffer.from('crashed')), undefined, 'no object row was written')
})

test('a version whose commit landed before the crash is kept', async (t) => {
  const { garage } = await startModel(t)
  const bucketId = genUuid()
  const a = await dataRound(garage, bucketId, 'done', 'done body')
  garage.uploads.begin(a.version, bucketId, 'done')
  await garage.objectTable.insert({
    bucketId,
    key: 'done',
    versions: [
      {
        uuid: a.version,
        ts: Date.now(),
        state: { t: 'complete', data: { t: 'firstBlock', meta: { size: 9, etag: 'e', headers: [] }, hash: a.hash } },
      },
    ],
  })
  assert.equal(await garage.uploads.abortLeftovers(garage.objectTable, garage.versionTable, garage.mpuTable), 1)
  await drained(garage)
  assert.equal((await garage.versionTable.get(a.version, EMPTY))?.deleted, false, 'the version is kept')
  assert.equal(garage.blockManager.rc.get(a.hash), 1, 'its block is still referenced')
  const row = await garage.objectTable.get(bucketId, Buffer.from('done'))
  assert.equal(row?.versions[0]?.state.t, 'complete')
})

test('an upload that announced itself is aborted in its row and its version deleted; a claim writes no version row', async (t) => {
  const { garage } = await startModel(t)
  const bucketId = genUuid()
  const a = await dataRound(garage, bucketId, 'large', 'large body')
  const ts = Date.now()
  await garage.objectTable.insert({
    bucketId,
    key: 'large',
    versions: [{ uuid: a.version, ts, state: { t: 'uploading', multipart: false, headers: [] } }],
  })
  garage.uploads.begin(a.version, bucketId, 'large', { ts })
  const claim = genUuid()
  await garage.objectTable.insert({
    bucketId,
    key: 'claimed',
    versions: [{ uuid: claim, ts, state: { t: 'uploading', multipart: false, headers: [], claim: true } }],
  })
  garage.uploads.begin(claim, bucketId, 'claimed', { ts, versionRow: false })

  assert.equal(await garage.uploads.abortLeftovers(garage.objectTable, garage.versionTable, garage.mpuTable), 2)
  await drained(garage)
  assert.equal((await garage.objectTable.get(bucketId, Buffer.from('large')))?.versions[0]?.state.t, 'aborted')
  assert.equal((await garage.versionTable.get(a.version, EMPTY))?.deleted, true)
  assert.equal(garage.blockManager.rc.get(a.hash), 0)
  assert.equal((await garage.objectTable.get(bucketId, Buffer.from('claimed')))?.versions[0]?.state.t, 'aborted')
  assert.equal(await garage.versionTable.get(claim, EMPTY), undefined, 'a claim has no version row to delete')
})

test('a part interrupted before its row was finished is deleted at the next start; a finished one is kept', async (t) => {
  const { garage } = await startModel(t)
  const bucketId = genUuid()
  const uploadId = genUuid()
  const upload = { uploadId, deleted: false, parts: [], ts: 1, bucketId, key: 'mpu' }
  await garage.mpuTable.insert(upload)
  const write = async (partNumber: number, finished: boolean) => {
    const body = `part ${partNumber}`
    const version = genUuid()
    const hash = blake2sum(body)
    const part = {
      partNumber,
      ts: 10 + partNumber,
      version,
      etag: finished ? 'e' : null,
      size: finished ? body.length : null,
      checksum: null,
    }
    await garage.mpuTable.insert(mpuPartRow(upload, part))
    await garage.versionTable.insert({
      uuid: version,
      deleted: false,
      blocks: [versionBlock(partNumber, 0, hash, body.length)],
      partsEtags: [],
      backlink: { t: 'mpu', uploadId },
    })
    await garage.blockRefTable.insert({ block: hash, version, deleted: false })
    garage.uploads.begin(version, bucketId, 'mpu', { part: { uploadId, partNumber, ts: part.ts } })
    return { version, hash }
  }
  const cut = await write(1, false)
  const done = await write(2, true)
  assert.equal(await garage.uploads.abortLeftovers(garage.objectTable, garage.versionTable, garage.mpuTable), 2)
  await drained(garage)
  assert.equal((await garage.versionTable.get(cut.version, EMPTY))?.deleted, true, 'the unfinished part is deleted')
  assert.equal(garage.blockManager.rc.get(cut.hash), 0)
  assert.equal((await garage.versionTable.get(done.version, EMPTY))?.deleted, false, 'the finished part is kept')
  assert.equal(garage.blockManager.rc.get(done.hash), 1)
})

test('a one-block part recorded before its timestamp was known: kept if a row of its number lists it finished, else deleted', async (t) => {
  const { garage } = await startModel(t)
  const bucketId = genUuid()
  const uploadId = genUuid()
  const upload = { uploadId, deleted: false, parts: [], ts: 1, bucketId, key: 'mpu' }
  await garage.mpuTable.insert(upload)
  /** A part's data round (multipart.ts, uploadPartWhileReading); `row`: its finished row, if written. */
  const write = async (partNumber: number, row: 'none' | 'finished') => {
    const body = `part ${partNumber}`
    const version = genUuid()
    const hash = blake2sum(body)
    garage.uploads.begin(version, bucketId, 'mpu', { part: { uploadId, partNumber } })
    await garage.versionTable.insert({
      uuid: version,
      deleted: false,
      blocks: [versionBlock(partNumber, 0, hash, body.length)],
      partsEtags: [],
      backlink: { t: 'mpu', uploadId },
    })
    await garage.blockRefTable.insert({ block: hash, version, deleted: false })
    if (row === 'finished') {
      const part = { partNumber, ts: 20, version, etag: 'e', size: body.length, checksum: null }
      await garage.mpuTable.insert(mpuPartRow(upload, part))
    }
    return { version, hash }
  }
  // Part 3 has an earlier finished upload of its own number (another version), which must not keep
  // the interrupted one; part 4 was finished (its row is not the number's first one).
  const earlier = { partNumber: 3, ts: 5, version: genUuid(), etag: 'old', size: 1, checksum: null }
  await garage.mpuTable.insert(mpuPartRow(upload, earlier))
  await garage.mpuTable.insert(mpuPartRow(upload, { ...earlier, partNumber: 4, version: genUuid() }))
  const cut = await write(3, 'none')
  const done = await write(4, 'finished')
  assert.equal(await garage.uploads.abortLeftovers(garage.objectTable, garage.versionTable, garage.mpuTable), 2)
  await drained(garage)
  assert.equal((await garage.versionTable.get(cut.version, EMPTY))?.deleted, true, 'the unfinished part is deleted')
  assert.equal(garage.blockManager.rc.get(cut.hash), 0)
  assert.equal((await garage.versionTable.get(done.version, EMPTY))?.deleted, false, 'the finished part is kept')
  assert.equal(garage.blockManager.rc.get(done.hash), 1)
})

test('a one-round PUT left unfinished where no replica has it complete is deleted at the next start; the previous version stays', async (t) => {
  const { garage } = await startModel(t)
  const bucketId = genUuid()
  const prev = await dataRound(garage, bucketId, 'one', 'previous body')
  await garage.objectTable.insert({
    bucketId,
    key: 'one',
    versions: [
      {
        uuid: prev.version,
        ts: Date.now(),
        state: { t: 'complete', data: { t: 'firstBlock', meta: { size: 13, etag: 'p', headers: [] }, hash: prev.hash } },
      },
    ],
  })
  // The one-round write: its version row and reference landed, its `complete` row did not.
  const a = await dataRound(garage, bucketId, 'one', 'one-round body')
  garage.uploads.begin(a.version, bucketId, 'one', { oneRound: true })
  assert.equal(await garage.uploads.abortLeftovers(garage.objectTable, garage.versionTable, garage.mpuTable), 1)
  await drained(garage)
  assert.equal((await garage.versionTable.get(a.version, EMPTY))?.deleted, true, 'the version is deleted')
  assert.equal(garage.blockManager.rc.get(a.hash), 0, 'its block is no longer referenced')
  const row = await garage.objectTable.get(bucketId, Buffer.from('one'))
  assert.deepEqual(
    row?.versions.map((v) => v.uuid),
    [prev.version],
    'the previous version is untouched',
  )
  assert.equal((await garage.versionTable.get(prev.version, EMPTY))?.deleted, false)
})

test('a one-round PUT found complete (here) is kept at the next start', async (t) => {
  const { garage } = await startModel(t)
  const bucketId = genUuid()
  const a = await dataRound(garage, bucketId, 'kept', 'kept body')
  const ts = Date.now()
  garage.uploads.begin(a.version, bucketId, 'kept', { oneRound: true })
  await garage.objectTable.insert({
    bucketId,
    key: 'kept',
    versions: [
      {
        uuid: a.version,
        ts,
        state: { t: 'complete', data: { t: 'firstBlock', meta: { size: 9, etag: 'k', headers: [] }, hash: a.hash } },
      },
    ],
  })
  assert.equal(await garage.uploads.abortLeftovers(garage.objectTable, garage.versionTable, garage.mpuTable), 1)
  await drained(garage)
  assert.equal((await garage.versionTable.get(a.version, EMPTY))?.deleted, false, 'the version is kept')
  assert.equal(garage.blockManager.rc.get(a.hash), 1, 'and its block')
})
