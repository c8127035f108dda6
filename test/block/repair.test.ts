import assert from 'node:assert/strict'
import { setMaxListeners } from 'node:events'
import { mkdir, mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { type TestContext, test } from 'node:test'
import { pathExists } from '../../lib/block/layout.ts'
import { BlockManager, type BlockManagerOptions } from '../../lib/block/manager.ts'
import { walkBlockStore } from '../../lib/block/scrub.ts'
import type { Db } from '../../lib/db/db.ts'
import { openLmdb } from '../../lib/db/lmdb.ts'
import { BackgroundRunner } from '../../lib/util/background/worker.ts'
import { blake2sum, toHex } from '../../lib/util/data.ts'
import { ModelError } from '../../lib/util/errors.ts'
import { recordingLogger } from '../net/net-fixtures.ts'
import { eventually } from '../helpers/eventually.ts'

interface Lone {
  bm: BlockManager
  db: Db
  dataDir: string
  log: ReturnType<typeof recordingLogger>
  /** Starts the block workers; stopped at the end of the test. */
  spawn(): void
  close(): Promise<void>
}

/** A block manager without a cluster, on lmdb in `dir` (created when absent). */
async function lone(t: TestContext, dir?: string, extra: Partial<BlockManagerOptions> = {}): Promise<Lone & { dir: string }> {
  const root = dir ?? (await mkdtemp(join(tmpdir(), 'garage-block-repair-')))
  if (dir === undefined) t.after(() => rm(root, { recursive: true, force: true }))
  const db = await openLmdb(join(root, 'meta'), { fsync: false })
  const log = recordingLogger()
  const dataDir = join(root, 'data')
  const bm = new BlockManager({
    db,
    dataDir,
    fsync: false,
    gcDelayMsec: 100,
    log,
    resyncDelayMsec: 50,
    resyncRetryDelayMsec: 5000,
    ...extra,
  })
  const stop = new AbortController()
  setMaxListeners(0, stop.signal) // one listener per waiting worker
  let runner: BackgroundRunner | undefined
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    stop.abort()
    await runner?.join()
    await db.close()
  }
  t.after(close)
  return {
    bm,
    db,
    dataDir,
    log,
    dir: root,
    spawn() {
      runner = new BackgroundRunner(log, stop.signal)
      for (const w of bm.workers()) runner.spawn(w)
    },
    close,
  }
}

/**
 * A lone node that ran once: it holds `data` as a referenced block and wrote its data directory
 * marker, then stopped. Answers the stopped node (its `dir` to start again) and the block's hash.
 */
async function ranOnceWith(t: TestContext, data: Buffer): Promise<{ first: Lone & { dir: string }; hash: Uint8Array }> {
  const first = await lone(t)
  first.spawn()
  const hash = blake2sum(data)
  first.db.transaction((tx) => first.bm.incref(tx, hash))
  await first.bm.putBlock(hash, data)
  await eventually('the marker', () => pathExists(join(first.dataDir, 'garage-marker')), { timeoutMs: 3000 })
  await first.close()
  return { first, hash }
}

test('the first start writes the data directory marker and queues nothing', async (t) => {
  const n = await lone(t)
  n.spawn()
  await eventually('the marker', () => pathExists(join(n.dataDir, 'garage-marker')), { timeoutMs: 3000 })
  assert.equal(n.bm.resync.length(), 0, 'nothing queued')
  assert.equal(n.log.warnings.length, 0, 'no warning')
})

test('a data directory wiped while blocks are referenced is detected at start and every block queued', async (t) => {
  const { first, hash } = await ranOnceWith(t, Buffer.from('referenced block'))
  await rm(first.dataDir, { recursive: true, force: true })
  const again = await lone(t, first.dir)
  again.spawn()
  await eventually('the warning', () => again.log.warnings.some((w) => /wiped/.test(w)), { timeoutMs: 3000 })
  // Lone node: nobody to fetch from, so the block shows up as a resync error.
  await eventually('the block to be tried', () => again.bm.listErrors().length === 1, { timeoutMs: 3000 })
  assert.equal(toHex((again.bm.listErrors()[0] as { hash: Uint8Array }).hash), toHex(hash))
})

test('temporary files left by an interrupted write are removed at start, recent ones kept', async (t) => {
  const n = await lone(t)
  const old = `${n.bm.blockPath(blake2sum('x'))}.tmp0a0b0c0d`
  const fresh = `${n.bm.blockPath(blake2sum('y'))}.tmp01020304`
  await mkdir(dirname(old), { recursive: true })
  await mkdir(dirname(fresh), { recursive: true })
  await writeFile(old, 'partial')
  const past = new Date(Date.now() - 3600_000)
  await utimes(old, past, past)
  await new Promise((r) => setTimeout(r, 20))
  await writeFile(fresh, 'in progress')
  n.spawn()
  await eventually('the old temporary file to go', async () => !(await pathExists(old)), { timeoutMs: 3000 })
  await stat(fresh)
})

test('a block file nothing references, written since the previous start (a crash between a block and its rows), is deleted after the GC delay at the next start', async (t) => {
  const kept = Buffer.from('a referenced block')
  const { first, hash: keptHash } = await ranOnceWith(t, kept)
  // What a crash leaves when it comes after a block written with its rows, before their commit.
  const orphan = Buffer.from('a block whose rows never committed')
  const orphanPath = first.bm.blockPath(blake2sum(orphan))
  await mkdir(dirname(orphanPath), { recursive: true })
  await writeFile(orphanPath, orphan)
  // One from before the previous start: not a crash's leftover (metadata restored from an older
  // copy would not reference it either), so the start leaves it to `garage repair blocks`.
  const older = Buffer.from('an unreferenced block older than the previous start')
  const olderPath = first.bm.blockPath(blake2sum(older))
  await mkdir(dirname(olderPath), { recursive: true })
  await writeFile(olderPath, older)
  const past = new Date(Date.now() - 3600_000)
  await utimes(olderPath, past, past)
  const again = await lone(t, first.dir)
  again.spawn()
  await eventually('the unreferenced block file to go', async () => !(await pathExists(orphanPath)), { timeoutMs: 5000 })
  assert.ok(await pathExists(again.bm.blockPath(keptHash)), 'the referenced block stays')
  assert.ok(await pathExists(olderPath), 'the older unreferenced file stays')
  assert.deepEqual(await again.bm.getBlock(keptHash), kept)
})

test('a block stored with rows that fail to commit stays queued for a check, and goes after the GC delay', async (t) => {
  const n = await lone(t)
  n.bm.rowsHandler = () => {
    throw new Error('metadata disk full')
  }
  const data = Buffer.from('a block whose rows could not commit')
  const hash = blake2sum(data)
  const planned = { byNode: new Map([['self', { items: [] }]]), sets: [['self']], quorum: 1, calls: [] }
  await assert.rejects(n.bm.putBlockWithRows(hash, data, planned), /metadata disk full/)
  const path = n.bm.blockPath(hash)
  await stat(path) // written before its rows
  assert.equal(n.bm.resync.length(), 1, 'queued for a check')
  n.spawn()
  await eventually('the block file to go', async () => !(await pathExists(path)), { timeoutMs: 5000 })
})

test('scrub commands: start, pause, resume, cancel, refusals, and persisted settings', async (t) => {
  const n = await lone(t)
  n.bm.workers() // builds the scrub worker without running it: commands only change its state
  const s = n.bm.scrub
  assert.ok(s !== undefined, 'the scrub worker exists')
  const now = Date.now()
  const first = s.status()
  assert.equal(first.state, 'finished')
  assert.ok(first.nextRun >= now + 25 * 86400_000 && first.nextRun <= now + 35 * 86400_000, 'next run in 25 to 35 days')
  assert.equal(first.tranquility, 4)
  for (const cmd of ['resume', 'cancel', 'pause'] as const) assert.throws(() => n.bm.scrubCommand(cmd), ModelError, cmd)
  n.bm.scrubCommand('start')
  assert.equal(s.status().state, 'running')
  assert.throws(() => n.bm.scrubCommand('start'), ModelError)
  n.bm.scrubCommand('pause')
  const paused = s.status()
  assert.equal(paused.state, 'paused')
  assert.ok(Math.abs((paused.resumeAt ?? 0) - (Date.now() + 86400_000)) < 5000, 'resumes in 24 h')
  n.bm.scrubCommand('resume')
  assert.equal(s.status().state, 'running')
  n.bm.scrubCommand('cancel')
  assert.equal(s.status().state, 'finished')
  s.tranquility = 7
  n.bm.resyncTranquility = 5
  n.bm.resync.workerCount = 3
  assert.throws(() => {
    n.bm.resync.workerCount = 0
  }, ModelError)
  assert.throws(() => {
    n.bm.resync.workerCount = 9
  }, ModelError)
  await n.close()
  const again = await lone(t, n.dir)
  again.bm.workers()
  assert.equal(again.bm.scrub?.tranquility, 7, 'scrub tranquility persisted')
  assert.equal(again.bm.resyncTranquility, 5, 'resync tranquility persisted')
  assert.equal(again.bm.resync.workerCount, 3, 'resync worker count persisted')
  assert.equal(again.bm.scrub?.status().nextRun, first.nextRun, 'the schedule is persisted')
})

test('a lone node scrub moves a corrupt block aside, counts it and lists it as a resync error', async (t) => {
  const n = await lone(t)
  n.spawn()
  const blocks = ['one', 'two', 'three'].map((s) => Buffer.from(`block ${s}`))
  for (const b of blocks) {
    n.db.transaction((tx) => n.bm.incref(tx, blake2sum(b)))
    await n.bm.putBlock(blake2sum(b), b)
  }
  const bad = blake2sum(blocks[1] as Buffer)
  await writeFile(n.bm.blockPath(bad), 'damaged')
  n.bm.scrubCommand('start')
  await eventually('the scrub to finish', () => n.bm.scrubStatus()?.state === 'finished')
  assert.equal(n.bm.scrubStatus()?.corruptionsDetected, 1)
  assert.equal(n.bm.scrubStatus()?.checked, 3)
  await stat(`${n.bm.blockPath(bad)}.corrupted`)
  assert.equal(await n.bm.hasBlock(bad), false, 'the corrupt file is no longer served')
  await eventually('the resync error', () => n.bm.listErrors().length === 1, { timeoutMs: 20_000 })
  for (const b of [blocks[0], blocks[2]] as Buffer[]) assert.deepEqual(await n.bm.getBlock(blake2sum(b)), b)
})

test('the block store walk resumes after a checkpoint, in hash order', async (t) => {
  const n = await lone(t)
  const hashes = Array.from({ length: 6 }, (_, i) => blake2sum(`walk ${i}`))
  for (const h of hashes) await n.bm.putBlock(h, Buffer.from('not verified here'))
  const names: string[] = []
  for await (const f of walkBlockStore([n.dataDir])) names.push(f.name)
  assert.deepEqual(names, hashes.map(toHex).sort())
  const rest: string[] = []
  for await (const f of walkBlockStore([n.dataDir], { dir: 0, after: names[2] as string })) rest.push(f.name)
  assert.deepEqual(rest, names.slice(3))
})
