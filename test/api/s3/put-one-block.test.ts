/**
 * saveStream (lib/api/s3/put.ts) on a model without a server: a body of one block is written
 * without an `uploading` row (its version row first, then the `complete` object row), and a
 * failure after its data round deletes the version itself, so its block is released.
 */
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { test } from 'node:test'
import { saveStream } from '../../../lib/api/s3/put.ts'
import { ApiError } from '../../../lib/api/common/errors.ts'
import type { Garage } from '../../../lib/model/garage.ts'
import type { ObjectEntry } from '../../../lib/model/s3/object-table.ts'
import { type VersionEntry, versionCodec } from '../../../lib/model/s3/version-table.ts'
import { genUuid, utf8 } from '../../../lib/util/data.ts'
import { eventually } from '../../helpers/eventually.ts'
import { startModel } from '../../helpers/model.ts'

const checked = Promise.resolve({ checksums: {}, trailers: {} })

/** Every version row this node holds. */
function versionRows(garage: Garage): VersionEntry[] {
  return [...garage.versionTable.data.store.range()].map(([, v]) => versionCodec.decode(v))
}

/** Records the states of every object row this node stores, as they change (all write paths). */
function objectWrites(garage: Garage): ObjectEntry[] {
  const seen: ObjectEntry[] = []
  const schema = garage.objectTable.data.schema
  const updated = schema.updated?.bind(schema)
  schema.updated = (tx, previous, next) => {
    if (next !== undefined) seen.push(next)
    updated?.(tx, previous, next)
  }
  return seen
}

const drained = (garage: Garage) =>
  eventually('insert queues drained', () => garage.tables.every((tb) => tb.data.insertQueue.count() === 0))

test('a body of one block: its version row, then its complete row, and no uploading row', async (t) => {
  const { garage } = await startModel(t, { blockSize: 8192 })
  const bucketId = genUuid()
  const writes = objectWrites(garage)
  const body = Buffer.alloc(8192, 7)
  const saved = await saveStream(
    garage,
    bucketId,
    'one',
    [],
    Readable.from([body.subarray(0, 5000), body.subarray(5000)]),
    checked,
  )
  assert.deepEqual(
    writes.map((w) => w.versions.map((v) => v.state.t)),
    [['complete']],
    'one object row write, complete',
  )
  const [v] = versionRows(garage)
  assert.equal(v?.deleted, false)
  assert.deepEqual(
    v?.blocks.map((b) => b.size),
    [8192],
  )
  const row = await garage.objectTable.get(bucketId, utf8('one'))
  assert.equal(row?.versions[0]?.state.t, 'complete')
  assert.deepEqual(row?.versions[0]?.uuid, saved.versionId)
  await drained(garage)
  assert.equal(garage.blockManager.rc.get(v?.blocks[0]?.hash as Uint8Array), 1)
  assert.equal(
    await garage.uploads.abortLeftovers(garage.objectTable, garage.versionTable, garage.mpuTable),
    0,
    'the guard was released',
  )
})

test('a body of two blocks still announces itself first and keeps every byte', async (t) => {
  const { garage } = await startModel(t, { blockSize: 4096 })
  const bucketId = genUuid()
  const writes = objectWrites(garage)
  const body = Buffer.alloc(6000, 3)
  await saveStream(garage, bucketId, 'two', [], Readable.from([body.subarray(0, 4096), body.subarray(4096)]), checked)
  assert.deepEqual(
    writes.map((w) => w.versions.map((v) => v.state.t)),
    [['uploading'], ['complete']],
  )
  assert.deepEqual(
    versionRows(garage)[0]?.blocks.map((b) => b.size),
    [4096, 1904],
  )
})

test('a one-block body that fails verification leaves no version and releases its block', async (t) => {
  const { garage } = await startModel(t, { blockSize: 8192 })
  const bucketId = genUuid()
  const bad = Promise.reject(new ApiError('BadDigest', 'The Content-MD5 you specified did not match what we received.'))
  bad.catch(() => undefined)
  await assert.rejects(
    saveStream(garage, bucketId, 'bad', [], Readable.from([Buffer.alloc(6000, 1)]), bad),
    (e: unknown) => e instanceof ApiError && e.code === 'BadDigest',
  )
  await drained(garage)
  const rows = versionRows(garage)
  assert.equal(rows.length, 1, 'the version row was written by the data round')
  assert.equal(rows[0]?.deleted, true, 'and deleted')
  assert.equal(await garage.objectTable.get(bucketId, utf8('bad')), undefined, 'no object row')
  const refs = [...garage.blockRefTable.data.store.range()]
  assert.equal(refs.length, 1)
  await eventually('the block is released', () => garage.blockManager.rc.get(blockHashOf(garage)) === 0)
  assert.equal(
    await garage.uploads.abortLeftovers(garage.objectTable, garage.versionTable, garage.mpuTable),
    0,
    'the guard was released',
  )
})

function blockHashOf(garage: Garage): Uint8Array {
  const [first] = [...garage.blockRefTable.data.store.range()]
  const entry = garage.blockRefTable.schema.codec.decode((first as [Uint8Array, Uint8Array])[1])
  return entry.block
}

test('a large body has at most block_max_concurrent_writes_per_request blocks in flight (default 3)', async (t) => {
  for (const [setting, expected] of [
    [undefined, 3],
    [1, 1],
    [6, 6],
  ] as const) {
    const { garage } = await startModel(t, {
      blockSize: 1024,
      ...(setting === undefined ? {} : { blockWritesPerRequest: setting }),
    })
    let running = 0
    let most = 0
    const putBlock = garage.blockManager.putBlock.bind(garage.blockManager)
    garage.blockManager.putBlock = async (hash, data) => {
      most = Math.max(most, ++running)
      try {
        await new Promise((resolve) => setTimeout(resolve, 5))
        return await putBlock(hash, data)
      } finally {
        running--
      }
    }
    const body = Buffer.alloc(20 * 1024)
    for (let i = 0; i < body.length; i += 4) body.writeUInt32LE(i, i)
    await saveStream(garage, genUuid(), `k${String(setting)}`, [], Readable.from([body]), checked)
    assert.equal(most, expected, `setting ${String(setting)}`)
  }
})

test('a body that fails mid-way fails the write only once the blocks in flight have settled', async (t) => {
  const { garage } = await startModel(t, { blockSize: 1024 })
  let started = 0
  let settled = 0
  const putBlock = garage.blockManager.putBlock.bind(garage.blockManager)
  garage.blockManager.putBlock = async (hash, data) => {
    started++
    try {
      await new Promise((resolve) => setTimeout(resolve, 100))
      return await putBlock(hash, data)
    } finally {
      settled++
    }
  }
  let sent = 0
  const body = new Readable({
    read() {
      sent++
      if (sent > 2) this.destroy(new Error('the client went away'))
      else this.push(Buffer.alloc(1024, sent))
    },
  })
  const bodyResult = new Promise<never>(() => {})
  bodyResult.catch(() => {})
  await assert.rejects(saveStream(garage, genUuid(), 'cut', [], body, bodyResult), /the client went away/)
  assert.ok(started >= 2, `${started} blocks were on their way`)
  assert.equal(settled, started, 'every block write settled before the failure was reported')
})
