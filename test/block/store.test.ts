import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type TestContext, test } from 'node:test'
import { SingleDirPaths } from '../../lib/block/layout.ts'
import { BlockMetrics } from '../../lib/block/metrics.ts'
import { DATA_DIR_MARKER, LocalBlockStore } from '../../lib/block/store.ts'
import { blake2sum, blake2sumOf, type Hash, toHex } from '../../lib/util/data.ts'
import { CorruptDataError } from '../../lib/util/errors.ts'
import { recordingLogger } from '../net/net-fixtures.ts'

/** The local store alone: no metadata db, no cluster, no resync queue. */
async function store(t: TestContext, touch: (h: Hash) => boolean = () => false, maxConcurrentReads?: number) {
  const dir = await mkdtemp(join(tmpdir(), 'garage-block-store-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const metrics = new BlockMetrics()
  const corrupt: string[] = []
  const s = new LocalBlockStore({
    paths: new SingleDirPaths(dir),
    fsync: false,
    log: recordingLogger(),
    metrics,
    touchExisting: touch,
    onCorrupt: (h) => corrupt.push(toHex(h)),
    ...(maxConcurrentReads === undefined ? {} : { maxConcurrentReads }),
  })
  return { s, dir, metrics, corrupt }
}

test('the local store writes a block once, reads it back verified and counts the bytes', async (t) => {
  const { s, metrics } = await store(t)
  const data = Buffer.from('local block')
  const hash = blake2sum(data)
  assert.equal(await s.has(hash), false)
  await s.write(hash, data)
  await s.write(hash, data)
  assert.equal(await s.has(hash), true)
  assert.deepEqual(await s.readVerified(hash, s.primaryPath(hash)), data)
  assert.equal(metrics.bytesWritten, data.byteLength, 'the second write found the copy and wrote nothing')
  assert.equal(metrics.bytesRead, data.byteLength)
  assert.deepEqual(await s.findAll(hash), [s.primaryPath(hash)])
})

test('a block given in pieces is written as their concatenation and counted once', async (t) => {
  const { s, metrics } = await store(t)
  const whole = randomBytes(1024 * 1024 + 33)
  // Uneven pieces and an empty one, as a received block's opened frames may be.
  const pieces = [whole.subarray(0, 1), whole.subarray(1, 1), whole.subarray(1, 65_537), whole.subarray(65_537)]
  const hash = blake2sum(whole)
  assert.deepEqual(blake2sumOf(pieces), hash)
  await s.write(hash, pieces)
  assert.ok((await s.readVerified(hash, s.primaryPath(hash)))?.equals(whole))
  assert.equal(metrics.bytesWritten, whole.byteLength)
})

test('at most maxConcurrentReads block files are read at once; the others wait their turn (default 16)', async (t) => {
  for (const [max, expected] of [
    [2, 2],
    [undefined, 16],
  ] as const) {
    const { s } = await store(t, () => false, max)
    const blocks = Array.from({ length: 20 }, (_, i) => Buffer.from(`block ${i}`))
    for (const b of blocks) await s.write(blake2sum(b), b)
    const reads = blocks.map((b) => s.readFirst(blake2sum(b)))
    assert.deepEqual(s.reads, { running: expected, waiting: blocks.length - expected })
    const got = await Promise.all(reads)
    for (const [i, g] of got.entries()) assert.ok(g?.equals(blocks[i] as Buffer), `block ${i} read back`)
    assert.deepEqual(s.reads, { running: 0, waiting: 0 })
    // A missing block releases its turn too.
    assert.equal(await s.readFirst(blake2sum('missing')), undefined)
    assert.deepEqual(s.reads, { running: 0, waiting: 0 })
  }
})

test('the local store refreshes the time of an existing copy only when told to', async (t) => {
  let touch = false
  const { s } = await store(t, () => touch)
  const data = Buffer.from('touched block')
  const hash = blake2sum(data)
  await s.write(hash, data)
  const past = new Date(Date.now() - 3600_000)
  await utimes(s.primaryPath(hash), past, past)
  await s.write(hash, data)
  assert.ok(((await s.mtimeOf(s.primaryPath(hash))) ?? 0) < Date.now() - 60_000, 'left alone')
  touch = true
  await s.write(hash, data)
  assert.ok(((await s.mtimeOf(s.primaryPath(hash))) ?? 0) > Date.now() - 60_000, 'refreshed')
})

test('a block its caller knows to be new is written without looking for a copy (one directory only)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'garage-block-store-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const metrics = new BlockMetrics()
  const opts = { fsync: false, log: recordingLogger(), metrics, touchExisting: () => false, onCorrupt: () => {} }
  const s = new LocalBlockStore({ ...opts, paths: new SingleDirPaths(dir), isNew: () => true })
  const data = Buffer.from('an orphan copy is there already')
  const hash = blake2sum(data)
  await s.write(hash, data)
  const past = new Date(Date.now() - 3600_000)
  await utimes(s.primaryPath(hash), past, past)
  await s.write(hash, data)
  assert.ok(((await s.mtimeOf(s.primaryPath(hash))) ?? 0) > Date.now() - 60_000, 'replaced by a fresh file')
  assert.equal(metrics.bytesWritten, 2 * data.byteLength, 'written twice: no look-up')
  assert.deepEqual(await s.readVerified(hash, s.primaryPath(hash)), data)
  assert.deepEqual(
    (await readdir(join(s.primaryPath(hash), '..'))).filter((f) => f.includes('.tmp')),
    [],
  )
  // Several candidate directories: a copy elsewhere must be found (and moved), so it looks.
  const other = await mkdtemp(join(tmpdir(), 'garage-block-b-'))
  t.after(() => rm(other, { recursive: true, force: true }))
  const [inA, inB] = [new SingleDirPaths(dir), new SingleDirPaths(other)]
  await new LocalBlockStore({ ...opts, paths: inB }).write(hash, data)
  const two = new LocalBlockStore({
    ...opts,
    paths: {
      dirs: [dir, other],
      primaryPath: (h) => inA.primaryPath(h),
      candidatePaths: (h) => [inA.primaryPath(h), inB.primaryPath(h)],
    },
    isNew: () => true,
  })
  await rm(inA.primaryPath(hash))
  await two.write(hash, data)
  assert.deepEqual(await two.findAll(hash), [inA.primaryPath(hash)], 'the copy in the second directory was moved')
})

test('the local store moves a corrupt file aside, reports it and throws CorruptDataError', async (t) => {
  const { s, metrics, corrupt } = await store(t)
  const data = Buffer.from('soon corrupt')
  const hash = blake2sum(data)
  await s.write(hash, data)
  const path = s.primaryPath(hash)
  await writeFile(path, 'tampered')
  await assert.rejects(s.readVerified(hash, path), CorruptDataError)
  assert.deepEqual(corrupt, [toHex(hash)])
  assert.equal(metrics.corruptions, 1)
  assert.equal(await s.has(hash), false)
  await stat(`${path}.corrupted`)
  assert.equal(await s.check(hash, path), 'missing', 'the scrub sees the file gone')
})

test('the local store serialises changes of one block under its lock', async (t) => {
  const { s } = await store(t)
  const hash = blake2sum('locked')
  const order: string[] = []
  const slow = s.withLock(hash, async () => {
    order.push('a start')
    await new Promise((r) => setTimeout(r, 50))
    order.push('a end')
  })
  const next = s.withLock(hash, async () => {
    order.push('b')
  })
  await Promise.all([slow, next])
  assert.deepEqual(order, ['a start', 'a end', 'b'])
  await assert.rejects(
    s.withLock(hash, async () => {
      throw new Error('boom')
    }),
    /boom/,
  )
  assert.equal(await s.withLock(hash, async () => 7), 7, 'a failed holder releases the lock')
})

test('the local store writes missing markers and sweeps old temporary files', async (t) => {
  const { s, dir } = await store(t)
  assert.deepEqual(await s.ensureMarkers(), [dir])
  assert.deepEqual(await s.ensureMarkers(), [], 'written once')
  await stat(join(dir, DATA_DIR_MARKER))
  const data = Buffer.from('kept block')
  const hash = blake2sum(data)
  await s.write(hash, data)
  const old = `${s.primaryPath(hash)}.tmpdeadbeef`
  await writeFile(old, 'partial')
  const past = new Date(Date.now() - 3600_000)
  await utimes(old, past, past)
  // A write of this store begun just after its creation: file times come from the kernel's
  // coarse clock, a few milliseconds behind Date.now(), so the time can be earlier than the
  // store's start; the sweep must still leave it alone.
  const ours = s.tempPath(s.primaryPath(hash))
  await writeFile(ours, 'in progress')
  const lagging = new Date(Date.now() - 60_000)
  await utimes(ours, lagging, lagging)
  await s.sweepTempFiles()
  const left = await readdir(join(dir, toHex(hash).slice(0, 2), toHex(hash).slice(2, 4)))
  assert.deepEqual(left.sort(), [toHex(hash), ours.split('/').pop()].sort())
})

test('readFirst reads the first directory that holds the block, without looking it up first', async (t) => {
  const a = await mkdtemp(join(tmpdir(), 'garage-block-a-'))
  const b = await mkdtemp(join(tmpdir(), 'garage-block-b-'))
  t.after(() => Promise.all([rm(a, { recursive: true, force: true }), rm(b, { recursive: true, force: true })]))
  const inA = new SingleDirPaths(a)
  const inB = new SingleDirPaths(b)
  const corrupt: string[] = []
  const s = new LocalBlockStore({
    // Two directories: new copies go to the first, an older layout left some in the second.
    paths: {
      dirs: [a, b],
      primaryPath: (h) => inA.primaryPath(h),
      candidatePaths: (h) => [inA.primaryPath(h), inB.primaryPath(h)],
    },
    fsync: false,
    log: recordingLogger(),
    metrics: new BlockMetrics(),
    touchExisting: () => false,
    onCorrupt: (h) => corrupt.push(toHex(h)),
  })
  const data = Buffer.from('a block an older layout left in the second directory')
  const hash = blake2sum(data)
  assert.equal(await s.readFirst(hash), undefined)
  const second = new LocalBlockStore({
    paths: inB,
    fsync: false,
    log: recordingLogger(),
    metrics: new BlockMetrics(),
    touchExisting: () => false,
    onCorrupt: () => {},
  })
  await second.write(hash, data)
  assert.deepEqual(await s.readFirst(hash), data)
  // A corrupt copy in the first directory is reported, not skipped.
  await s.write(hash, data)
  await writeFile(inA.primaryPath(hash), 'garbage')
  await assert.rejects(s.readFirst(hash), CorruptDataError)
  assert.deepEqual(corrupt, [toHex(hash)])
})
