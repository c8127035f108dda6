/** Online repairs on a single node: inconsistent rows are made through the tables, then repaired. */
import assert from 'node:assert/strict'
import { setMaxListeners } from 'node:events'
import { test, type TestContext } from 'node:test'
import type { Garage } from '../../lib/model/garage.ts'
import { launchRepair, parseRepairType, type RepairType } from '../../lib/model/repair.ts'
import type { ObjectEntry } from '../../lib/model/s3/object-table.ts'
import { type VersionEntry, versionBlock } from '../../lib/model/s3/version-table.ts'
import { BackgroundRunner } from '../../lib/util/background/worker.ts'
import { blake2sum, genUuid } from '../../lib/util/data.ts'
import { silentLogger } from '../../lib/util/logger.ts'
import { eventually } from '../helpers/eventually.ts'
import { startModel } from '../helpers/model.ts'

const EMPTY = new Uint8Array(0)

function runner(t: TestContext): BackgroundRunner {
  const stop = new AbortController()
  setMaxListeners(64, stop.signal)
  const r = new BackgroundRunner(silentLogger, stop.signal)
  t.after(async () => {
    stop.abort()
    await r.join()
  })
  return r
}

async function repair(t: TestContext, garage: Garage, op: RepairType): Promise<void> {
  const r = runner(t)
  // No grace: an unreferenced version is looked at again as soon as the walk ends.
  await launchRepair({ garage, spawn: (w) => r.spawn(w), log: silentLogger, versionGraceMs: 0 }, op)
  await eventually(`repair ${JSON.stringify(op)} done`, () => r.list().every((w) => w.state === 'done'))
  await drained(garage)
}

/** Waits until every cross-table insert queue is empty. */
async function drained(garage: Garage): Promise<void> {
  await eventually('insert queues drained', () => garage.tables.every((tb) => tb.data.insertQueue.count() === 0))
}

function version(bucketId: Uint8Array, key: string, block: Uint8Array): VersionEntry {
  return {
    uuid: genUuid(),
    deleted: false,
    blocks: [versionBlock(1, 0, block, 10)],
    partsEtags: [],
    backlink: { t: 'object', bucketId, key },
  }
}

test('parseRepairType accepts Garage names and scrub commands only', () => {
  assert.equal(parseRepairType('versions'), 'versions')
  assert.deepEqual(parseRepairType({ scrub: 'pause' }), { scrub: 'pause' })
  assert.equal(parseRepairType('mpu'), undefined)
  assert.equal(parseRepairType({ scrub: 'later' }), undefined)
  assert.equal(parseRepairType(3), undefined)
})

test('versions: a version no object references is tombstoned, with its block references', async (t) => {
  const { garage } = await startModel(t)
  const bucket = genUuid()
  const orphanBlock = blake2sum('orphan')
  const liveBlock = blake2sum('live')
  const orphan = version(bucket, 'gone', orphanBlock)
  const live = version(bucket, 'here', liveBlock)
  const object: ObjectEntry = {
    bucketId: bucket,
    key: 'here',
    versions: [{ uuid: live.uuid, ts: Date.now(), state: { t: 'uploading', multipart: false, headers: [] } }],
  }
  await garage.objectTable.insert(object)
  await garage.versionTable.insert(orphan)
  await garage.versionTable.insert(live)
  // As the PUT path does: each version's blocks are referenced.
  await garage.blockRefTable.insert({ block: orphanBlock, version: orphan.uuid, deleted: false })
  await garage.blockRefTable.insert({ block: liveBlock, version: live.uuid, deleted: false })
  await drained(garage)
  assert.equal(garage.blockManager.rc.get(orphanBlock), 1, 'the orphan version references its block')

  await repair(t, garage, 'versions')
  assert.equal((await garage.versionTable.get(orphan.uuid, EMPTY))?.deleted, true, 'orphan version deleted')
  assert.equal((await garage.versionTable.get(live.uuid, EMPTY))?.deleted, false, 'referenced version kept')
  const ref = await garage.blockRefTable.get(orphanBlock, orphan.uuid)
  assert.equal(ref?.deleted, true, 'its block reference is deleted by the cascade')
  assert.equal(garage.blockManager.rc.get(orphanBlock), 0, 'its block is no longer referenced')
  assert.equal(garage.blockManager.rc.get(liveBlock), 1, 'the live block still is')
})

test('versions: the last look before a tombstone asks every replica; a row on one replica only, or one that does not answer, keeps the version', async (t) => {
  const { garage } = await startModel(t)
  const bucket = genUuid()
  // A one-round PUT that failed: its `complete` row reached one replica, not this node nor a
  // quorum (its writer will complete it). Reads at quorum miss it; a read of every replica does not.
  const minority = version(bucket, 'minority', blake2sum('minority'))
  const unreachable = version(bucket, 'unreachable', blake2sum('unreachable'))
  const gone = version(bucket, 'gone', blake2sum('gone'))
  for (const v of [minority, unreachable, gone]) await garage.versionTable.insert(v)
  const get = garage.objectTable.get.bind(garage.objectTable)
  const asked: string[] = []
  garage.objectTable.get = async (bucketId, sortKey, opts = {}) => {
    const key = Buffer.from(sortKey).toString()
    asked.push(`${key}${opts.everyReplica === true ? ' (every replica)' : ''}`)
    if (opts.everyReplica === true && key === 'minority')
      return {
        bucketId,
        key,
        versions: [{ uuid: minority.uuid, ts: Date.now(), state: { t: 'uploading', multipart: false, headers: [] } }],
      }
    if (opts.everyReplica === true && key === 'unreachable') throw new Error('a replica did not answer')
    return get(bucketId, sortKey, opts)
  }
  await repair(t, garage, 'versions')
  assert.equal((await garage.versionTable.get(minority.uuid, EMPTY))?.deleted, false, 'found on one replica: kept')
  assert.equal((await garage.versionTable.get(unreachable.uuid, EMPTY))?.deleted, false, 'cannot tell: kept')
  assert.equal((await garage.versionTable.get(gone.uuid, EMPTY))?.deleted, true, 'referenced nowhere: deleted')
  assert.ok(asked.includes('gone (every replica)'), 'the second look read every replica')
})

test('versions: a version unreferenced for less than the grace is kept (its object row may still be on its way)', async (t) => {
  const { garage } = await startModel(t)
  const bucket = genUuid()
  const hash = blake2sum('young')
  // What a small PUT leaves between its data round and its commit (put.ts saveOneBlock).
  const young = version(bucket, 'young', hash)
  await garage.versionTable.insert(young)
  await garage.blockRefTable.insert({ block: hash, version: young.uuid, deleted: false })
  const r = runner(t)
  await launchRepair({ garage, spawn: (w) => r.spawn(w), log: silentLogger, versionGraceMs: 3_600_000 }, 'versions')
  // The walk is over and the version waits for its second look.
  await eventually('walk done', () => r.list().some((w) => w.state === 'idle' && w.info.waiting === 1 && w.info.done === 1))
  await drained(garage)
  assert.equal((await garage.versionTable.get(young.uuid, EMPTY))?.deleted, false, 'the young version is kept')
  assert.equal(garage.blockManager.rc.get(hash), 1, 'its block is still referenced')
  assert.equal(
    r.list().every((w) => w.state !== 'done'),
    true,
    'the repair is not over while a version waits',
  )
})

test('versions: a version referenced by the time of the second look is kept', async (t) => {
  const { garage } = await startModel(t)
  const bucket = genUuid()
  const late = version(bucket, 'late', blake2sum('late'))
  await garage.versionTable.insert(late)
  const r = runner(t)
  await launchRepair({ garage, spawn: (w) => r.spawn(w), log: silentLogger, versionGraceMs: 3_600_000 }, 'versions')
  await eventually('walk done', () => r.list().some((w) => w.state === 'idle' && w.info.waiting === 1))
  // The commit lands; the second look (made here at once by a worker with no grace) finds it.
  await garage.objectTable.insert({
    bucketId: bucket,
    key: 'late',
    versions: [
      {
        uuid: late.uuid,
        ts: Date.now(),
        state: { t: 'complete', data: { t: 'firstBlock', meta: { size: 10, etag: 'e', headers: [] }, hash: blake2sum('late') } },
      },
    ],
  })
  await repair(t, garage, 'versions')
  assert.equal((await garage.versionTable.get(late.uuid, EMPTY))?.deleted, false, 'the committed version is kept')
})

test('multipartUploads: an upload whose object version is not uploading is tombstoned', async (t) => {
  const { garage } = await startModel(t)
  const bucket = genUuid()
  const orphan = { uploadId: genUuid(), deleted: false, parts: [], ts: Date.now(), bucketId: bucket, key: 'k' }
  const live = { uploadId: genUuid(), deleted: false, parts: [], ts: Date.now(), bucketId: bucket, key: 'k' }
  await garage.objectTable.insert({
    bucketId: bucket,
    key: 'k',
    versions: [{ uuid: live.uploadId, ts: Date.now(), state: { t: 'uploading', multipart: true, headers: [] } }],
  })
  await garage.mpuTable.insert(orphan)
  await garage.mpuTable.insert(live)
  await repair(t, garage, 'multipartUploads')
  assert.equal((await garage.mpuTable.get(orphan.uploadId, EMPTY))?.deleted, true, 'orphan upload deleted')
  assert.equal((await garage.mpuTable.get(live.uploadId, EMPTY))?.deleted, false, 'live upload kept')
})

test('blockRefs: a reference to a deleted or missing version is tombstoned', async (t) => {
  const { garage } = await startModel(t)
  const hash = blake2sum('block')
  const missing = { block: hash, version: genUuid(), deleted: false }
  const deletedV = version(genUuid(), 'x', blake2sum('other'))
  await garage.versionTable.insert({ ...deletedV, deleted: true, blocks: [] })
  const toDeleted = { block: hash, version: deletedV.uuid, deleted: false }
  const liveV = version(genUuid(), 'y', hash)
  await garage.versionTable.insert(liveV)
  await garage.blockRefTable.insert(missing)
  await garage.blockRefTable.insert(toDeleted)
  await garage.blockRefTable.insert({ block: hash, version: liveV.uuid, deleted: false })
  await drained(garage)
  assert.equal(garage.blockManager.rc.get(hash), 3, 'three live references before the repair')
  await repair(t, garage, 'blockRefs')
  assert.equal((await garage.blockRefTable.get(hash, missing.version))?.deleted, true, 'reference to a missing version')
  assert.equal((await garage.blockRefTable.get(hash, toDeleted.version))?.deleted, true, 'reference to a deleted version')
  assert.equal((await garage.blockRefTable.get(hash, liveV.uuid))?.deleted, false, 'reference to a live version kept')
  assert.equal(garage.blockManager.rc.get(hash), 1)
})

test('blockRc: reference counts are recomputed from the block_ref rows', async (t) => {
  const { garage } = await startModel(t)
  const a = blake2sum('a')
  const b = blake2sum('b')
  const ghost = blake2sum('ghost')
  await garage.blockRefTable.insert({ block: a, version: genUuid(), deleted: false })
  await garage.blockRefTable.insert({ block: a, version: genUuid(), deleted: false })
  await garage.blockRefTable.insert({ block: b, version: genUuid(), deleted: false })
  const bm = garage.blockManager
  // Damage the counters: a too high, b too low (zero), a ghost count with no reference.
  garage.db.transaction((tx) => {
    bm.incref(tx, a)
    bm.decref(tx, b)
    bm.incref(tx, ghost)
    bm.incref(tx, ghost)
  })
  assert.deepEqual([bm.rc.get(a), bm.rc.get(b), bm.rc.get(ghost)], [3, 0, 2])
  await repair(t, garage, 'blockRc')
  assert.deepEqual([bm.rc.get(a), bm.rc.get(b), bm.rc.get(ghost)], [2, 1, 0], 'counts match the references')
  assert.equal(bm.rc.state(ghost).kind === 'present', false, 'the ghost block is no longer counted as referenced')
})

test('rebalance without several data directories and scrub without a scrub worker are refused clearly', async (t) => {
  const { garage } = await startModel(t)
  const r = runner(t)
  // The model helper uses a single directory through the default SingleDirPaths.
  await assert.rejects(launchRepair({ garage, spawn: (w) => r.spawn(w), log: silentLogger }, 'rebalance'), /not available/)
})
