import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { prefixEnd } from '../../lib/db/db.ts'
import { openLmdb } from '../../lib/db/lmdb.ts'
import { dbConformance } from './conformance.ts'

dbConformance('lmdb', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'garage-db-'))
  const db = await openLmdb(dir, { fsync: false })
  return {
    db,
    cleanup: async () => {
      await db.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
})

test('lmdb: data survives closing and reopening', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'garage-db-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const db = await openLmdb(dir, { fsync: true })
  db.transaction((tx) => tx.insert(db.openTree('x'), new Uint8Array([1]), new Uint8Array([42])))
  await db.close()
  await db.close() // closing twice is harmless
  const again = await openLmdb(dir, { fsync: true })
  t.after(() => again.close())
  assert.deepEqual(again.openTree('x').get(new Uint8Array([1])), new Uint8Array([42]))
})

test('prefixEnd', () => {
  assert.deepEqual(prefixEnd(new Uint8Array([1, 2])), new Uint8Array([1, 3]))
  assert.deepEqual(prefixEnd(new Uint8Array([1, 255])), new Uint8Array([2]))
  assert.equal(prefixEnd(new Uint8Array([255, 255])), undefined)
})
