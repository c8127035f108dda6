import assert from 'node:assert/strict'
import { readdir, stat, utimes, writeFile } from 'node:fs/promises'
import { test } from 'node:test'
import { LocalBlockStore } from '../../lib/block/store.ts'
import { blake2sum } from '../../lib/util/data.ts'
import { CorruptDataError } from '../../lib/util/errors.ts'
import { eventually } from '../helpers/eventually.ts'
import { startModel } from '../helpers/model.ts'

async function countBlockFiles(dir: string): Promise<number> {
  const all = await readdir(dir, { recursive: true }).catch(() => [] as string[])
  let n = 0
  for (const f of all) if (/^[0-9a-f]{64}$/.test(f.split('/').pop() ?? '') && (await stat(`${dir}/${f}`)).isFile()) n++
  return n
}

test('a block is stored under its hash, once, and read back verified', async (t) => {
  const { garage, dir } = await startModel(t)
  const bm = garage.blockManager
  const data = Buffer.from('some block data')
  const hash = blake2sum(data)
  await bm.putBlock(hash, data)
  await bm.putBlock(hash, data)
  assert.deepEqual(await bm.getBlock(hash), data)
  assert.equal(await countBlockFiles(`${dir}/data`), 1, 'identical blocks are stored once')
})

test('a block damaged on disk is reported as corrupt, not served', async (t) => {
  const { garage } = await startModel(t)
  const bm = garage.blockManager
  const data = Buffer.from('precious')
  const hash = blake2sum(data)
  await bm.putBlock(hash, data)
  await writeFile(bm.blockPath(hash), 'tampered')
  await assert.rejects(bm.getBlock(hash), CorruptDataError)
})

test('an unreferenced block is deleted after the delay; a referenced one is kept', async (t) => {
  const { garage } = await startModel(t, { gcDelayMsec: 100 })
  const bm = garage.blockManager
  const a = Buffer.from('block a')
  const b = Buffer.from('block b')
  const ha = blake2sum(a)
  const hb = blake2sum(b)
  garage.db.transaction((tx) => {
    bm.incref(tx, ha)
    bm.incref(tx, hb)
    bm.incref(tx, hb)
  })
  await bm.putBlock(ha, a)
  await bm.putBlock(hb, b)
  garage.db.transaction((tx) => {
    bm.decref(tx, ha)
    bm.decref(tx, hb) // still one reference left
  })
  assert.equal(await bm.hasBlock(ha), true, 'not deleted before the delay')
  await eventually('deletion of the unreferenced block', async () => !(await bm.hasBlock(ha)), { timeoutMs: 3000 })
  assert.equal(await bm.hasBlock(hb), true)
  assert.equal(bm.rc.get(hb), 1)
})

test('a block referenced again before its delay ends is kept', async (t) => {
  const { garage } = await startModel(t, { gcDelayMsec: 150 })
  const bm = garage.blockManager
  const a = Buffer.from('reused block')
  const ha = blake2sum(a)
  garage.db.transaction((tx) => bm.incref(tx, ha))
  await bm.putBlock(ha, a)
  garage.db.transaction((tx) => bm.decref(tx, ha))
  garage.db.transaction((tx) => bm.incref(tx, ha))
  await new Promise((r) => setTimeout(r, 400))
  assert.equal(await bm.hasBlock(ha), true)
  assert.equal(bm.rc.get(ha), 1)
})

test('an unreferenced block received again while resync is about to delete it keeps its grace delay', async (t) => {
  const { garage } = await startModel(t, { gcDelayMsec: 60_000 })
  const bm = garage.blockManager
  const a = Buffer.from('block that arrives before its reference')
  const ha = blake2sum(a)
  await bm.putBlock(ha, a)
  const past = new Date(Date.now() - 120_000)
  await utimes(bm.blockPath(ha), past, past) // past its grace delay: resync's first check says old
  let resync: Promise<void> | undefined
  await bm.withBlockLock(ha, async () => {
    // Resync checks the file's age, then asks for this lock to delete it: wait for that request.
    const withLock = LocalBlockStore.prototype.withLock
    const queued = new Promise<void>((resolve) => {
      t.mock.method(LocalBlockStore.prototype, 'withLock', function <
        T,
      >(this: LocalBlockStore, hash: Uint8Array, fn: () => Promise<T>) {
        if (Buffer.from(hash).equals(ha)) resolve() // resync, not another worker
        return withLock.call(this, hash, fn)
      })
    })
    resync = bm.resyncBlock(ha)
    await queued
    // What a write of the same block does under the lock to an unreferenced file: a peer sends
    // it again (its block_ref row is on the way).
    const now = new Date()
    await utimes(bm.blockPath(ha), now, now)
  })
  await resync
  assert.equal(await bm.hasBlock(ha), true, 'a block received again gets its grace delay anew')
})
