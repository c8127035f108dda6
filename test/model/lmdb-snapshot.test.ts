/**
 * Opening the model leaves no lmdb read snapshot open (issue 21). lmdb reuses a freed page only
 * once no reader still sees the snapshot that freed it; the block manager's start used to take
 * one entry of a range iterator and drop it half-read, which kept its snapshot for the process's
 * life as soon as the node held one block reference: every page freed afterwards was lost, and a
 * bulk load grew the file to 3-5 times its pages in use (and slowed down on the free list).
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { openLmdb } from '../../lib/db/lmdb.ts'
import { loaderGarage } from '../../bench/model-loader.ts'

test('a model opened on a store with block references lets lmdb reuse the pages it frees', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'garage-snapshot-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const db = await openLmdb(join(dir, 'meta'), { fsync: false })
  try {
    // One block reference, as on any node that stored a block.
    const rc = db.openTree('block_local_rc')
    db.transaction((tx) => tx.insert(rc, new Uint8Array(32).fill(7), new Uint8Array([1])))
    // Building the model runs the block manager's start, which used to leave its iterator open.
    const garage = loaderGarage(db, dir)
    assert.ok(garage.blockManager !== undefined)
    // 60 generations of the same 1 MB of rows, one transaction each, all in the same tick (no
    // timer runs in between, as in a bulk load): with a snapshot held, each generation's pages
    // stay allocated and the file grows by ~1 MB per generation.
    const scratch = db.openTree('scratch')
    const value = new Uint8Array(2000)
    for (let gen = 0; gen < 60; gen++) {
      value.fill(gen)
      db.transaction((tx) => {
        for (let i = 0; i < 500; i++) tx.insert(scratch, Uint8Array.from([i >> 8, i & 255]), value)
      })
    }
    const size = (await stat(join(dir, 'meta', 'db.lmdb'))).size
    assert.ok(size < 16 * 1024 * 1024, `the file holds ~1 MB of rows in ${(size / 2 ** 20).toFixed(1)} MB`)
  } finally {
    await db.close()
  }
})
