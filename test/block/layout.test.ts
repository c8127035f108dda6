/** Data directory layout: proportional partitions, stable updates, read-only dirs, persistence, rebalance. */
import assert from 'node:assert/strict'
import { mkdtemp, mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { type Dirent, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import {
  blockPathIn,
  DRIVE_NPART,
  type DataDirSpec,
  type DataLayout,
  drivePartition,
  initialLayout,
  MultiDirPaths,
  openBlockPaths,
  updateLayout,
} from '../../lib/block/layout.ts'
import { RebalanceWorker } from '../../lib/block/rebalance.ts'
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { createGarageNode } from '../../lib/node.ts'
import type { TestNode } from '../../lib/testing.ts'
import { blake2sum, toHex } from '../../lib/util/data.ts'
import { silentLogger } from '../../lib/util/logger.ts'
import { v2 } from '../helpers/admin.ts'
import { eventually } from '../helpers/eventually.ts'

const none = (): boolean => false
const counts = (l: DataLayout): number[] => new MultiDirPaths(l).partitionCounts()

function checkWellFormed(l: DataLayout): void {
  assert.equal(l.primary.length, DRIVE_NPART, 'one primary per partition')
  assert.equal(l.secondary.length, DRIVE_NPART, 'one secondary list per partition')
  l.primary.forEach((p, part) => {
    assert.ok(l.dirs[p]?.capacity != null, `partition ${part} has a writable primary`)
    assert.ok(!(l.secondary[part] ?? []).includes(p), `partition ${part}: primary is not also secondary`)
  })
}

describe('initialLayout', () => {
  test('splits the 1024 partitions in proportion to the capacities', () => {
    const l = initialLayout(
      [
        { path: '/a', capacity: 1e12, readOnly: false },
        { path: '/b', capacity: 3e12, readOnly: false },
      ],
      none,
    )
    checkWellFormed(l)
    assert.deepEqual(counts(l), [256, 768])
  })
  test('a single data_dir holds every partition', () => {
    const l = initialLayout([{ path: '/a', readOnly: false }], none)
    assert.deepEqual(counts(l), [DRIVE_NPART])
  })
  test('read-only directories get no partition; non-empty ones are secondary everywhere', () => {
    const specs: DataDirSpec[] = [
      { path: '/old', readOnly: true },
      { path: '/a', capacity: 5, readOnly: false },
      { path: '/b', capacity: 5, readOnly: false },
    ]
    const l = initialLayout(specs, (p) => p === '/old')
    checkWellFormed(l)
    assert.deepEqual(counts(l), [0, 512, 512])
    assert.ok(
      l.secondary.every((s) => s.includes(0)),
      'the non-empty read-only directory is a secondary location of every partition',
    )
  })
  test('refuses a list without a writable directory or with a zero capacity', () => {
    assert.throws(() => initialLayout([{ path: '/old', readOnly: true }], none), /read_only/)
    assert.throws(
      () =>
        initialLayout(
          [
            { path: '/a', capacity: 0, readOnly: false },
            { path: '/b', capacity: 1, readOnly: false },
          ],
          none,
        ),
      /capacity/,
    )
  })
})

describe('updateLayout', () => {
  const two: DataDirSpec[] = [
    { path: '/a', capacity: 1, readOnly: false },
    { path: '/b', capacity: 1, readOnly: false },
  ]
  test('an unchanged list keeps the same layout object', () => {
    const l = initialLayout(two, none)
    assert.equal(updateLayout(l, two, none), l)
  })
  test('adding a directory moves only the partitions it takes, and remembers their old primary', () => {
    const l = initialLayout(two, none)
    const three = [...two, { path: '/c', capacity: 1, readOnly: false }]
    const n = updateLayout(l, three, none)
    checkWellFormed(n)
    const c = counts(n)
    assert.ok(
      c.every((x) => Math.abs(x - DRIVE_NPART / 3) <= 1),
      `balanced: ${c.join(',')}`,
    )
    let moved = 0
    n.primary.forEach((p, part) => {
      const before = l.primary[part] as number
      if (p === before) return
      moved++
      assert.equal(p, 2, `partition ${part} moved only to the new directory`)
      assert.ok(n.secondary[part]?.includes(before), `partition ${part} remembers its old primary`)
    })
    assert.equal(moved, c[2], 'exactly the new directory share moved')
    // The candidate paths of a moved block include the old primary.
    const paths = new MultiDirPaths(n)
    const part = n.primary.findIndex((p, i) => p !== l.primary[i])
    const hash = new Uint8Array(32)
    hash[2] = part >> 8
    hash[3] = part & 0xff
    assert.equal(drivePartition(hash), part)
    const cands = paths.candidatePaths(hash)
    assert.equal(cands[0], blockPathIn('/c', hash))
    assert.ok(cands.includes(blockPathIn(l.primary[part] === 0 ? '/a' : '/b', hash)), 'old primary is a candidate')
  })
  test('a directory turned read-only gives its partitions up and stays a secondary location', () => {
    const l = initialLayout(two, none)
    const n = updateLayout(l, [two[0] as DataDirSpec, { path: '/b', readOnly: true }], none)
    checkWellFormed(n)
    assert.deepEqual(counts(n), [DRIVE_NPART, 0])
    l.primary.forEach((p, part) => {
      if (p === 1) assert.ok(n.secondary[part]?.includes(1), `partition ${part} still looks in /b`)
    })
    const paths = new MultiDirPaths(n)
    assert.deepEqual(paths.writableDirs, ['/a'])
  })
  test('removing a directory reassigns its partitions; a re-added non-empty directory is secondary everywhere', () => {
    const l = initialLayout(two, none)
    const n = updateLayout(l, [two[0] as DataDirSpec], none)
    checkWellFormed(n)
    assert.deepEqual(counts(n), [DRIVE_NPART])
    const back = updateLayout(n, two, (p) => p === '/b')
    checkWellFormed(back)
    back.primary.forEach((p, part) => {
      if (p !== 1) assert.ok(back.secondary[part]?.includes(1), `partition ${part} looks in the re-added /b`)
    })
  })
})

describe('openBlockPaths', () => {
  test('persists the layout in metadata_dir and keeps it stable across a restart with one more directory', async (t) => {
    const root = await mkdtemp(join(tmpdir(), 'garage-layout-'))
    t.after(() => rm(root, { recursive: true, force: true }))
    const meta = join(root, 'meta')
    const a = { path: join(root, 'a'), capacity: 1e9, readOnly: false }
    const b = { path: join(root, 'b'), capacity: 1e9, readOnly: false }
    const first = await openBlockPaths({ dirs: [a, b], metadataDir: meta })
    assert.ok(existsSync(join(meta, 'data_layout')), 'the layout is persisted')
    const again = await openBlockPaths({ dirs: [a, b], metadataDir: meta })
    assert.deepEqual(again.layout, first.layout, 'reopening gives the same layout')
    const c = { path: join(root, 'c'), capacity: 2e9, readOnly: false }
    const more = await openBlockPaths({ dirs: [a, b, c], metadataDir: meta })
    assert.deepEqual(more.partitionCounts(), [256, 256, 512])
    const kept = more.layout.primary.filter((p, i) => p !== 2 && p === first.layout.primary[i]).length
    assert.equal(kept, 512, 'partitions not taken by the new directory stay where they were')
  })
})

describe('RebalanceWorker', () => {
  test('moves every block to its primary directory, then forgets secondary locations', async (t) => {
    const root = await mkdtemp(join(tmpdir(), 'garage-rebalance-'))
    t.after(() => rm(root, { recursive: true, force: true }))
    const meta = join(root, 'meta')
    const a = { path: join(root, 'a'), capacity: 1e9, readOnly: false }
    const old = { path: join(root, 'old'), readOnly: true }
    // Blocks written before, in what is now a read-only directory.
    const blocks = Array.from({ length: 40 }, (_, i) => Buffer.from(`block ${i}`))
    for (const data of blocks) {
      const p = blockPathIn(old.path, blake2sum(data))
      await mkdir(join(p, '..'), { recursive: true })
      await writeFile(p, data)
    }
    const b = { path: join(root, 'b'), capacity: 1e9, readOnly: false }
    const paths = await openBlockPaths({ dirs: [old, a, b], metadataDir: meta })
    const h0 = blake2sum(blocks[0] as Buffer)
    assert.ok(paths.candidatePaths(h0).includes(blockPathIn(old.path, h0)), 'old copies are found')
    // One block already has a copy in its primary directory: the extra copy is dropped.
    const dup = paths.primaryPath(h0)
    await mkdir(join(dup, '..'), { recursive: true })
    await writeFile(dup, blocks[0] as Buffer)
    const w = new RebalanceWorker({ paths, metadataDir: meta, log: silentLogger })
    const signal = new AbortController().signal
    let state = await w.work(signal)
    for (let i = 0; state !== 'done' && i < 100; i++) state = await w.work(signal)
    assert.equal(state, 'done', 'the worker finishes')
    assert.equal(w.progress.moved, blocks.length - 1)
    assert.equal(w.progress.dropped, 1)
    for (const data of blocks) {
      const h = blake2sum(data)
      assert.ok(existsSync(paths.primaryPath(h)), `block ${toHex(h).slice(0, 8)} is in its primary directory`)
      assert.ok(!existsSync(blockPathIn(old.path, h)), 'the old copy is gone')
    }
    assert.ok(
      paths.layout.secondary.every((s) => s.length === 0),
      'secondary locations are forgotten after a complete pass',
    )
    const reopened = await openBlockPaths({ dirs: [old, a, b], metadataDir: meta })
    assert.ok(
      reopened.layout.secondary.every((s) => s.length === 0),
      'and that is persisted',
    )
    const left = await readdir(old.path)
    assert.ok(
      left.every((n) => /^[0-9a-f]{2}$/.test(n)),
      'only empty block directories remain in the old dir',
    )
  })
})

describe('a node with several data directories', () => {
  test('spreads blocks over them, finds them after a directory is added, and rebalance moves them', async (t) => {
    const root = await mkdtemp(join(tmpdir(), 'garage-multidir-'))
    t.after(() => rm(root, { recursive: true, force: true }))
    const [a, b, c] = ['a', 'b', 'c'].map((n) => join(root, n)) as [string, string, string]
    const config = (dirs: Array<{ path: string; capacity: string }>) => ({
      metadata_dir: join(root, 'meta'),
      data_dir: dirs,
      env: {},
      s3_api: { api_bind_addr: '127.0.0.1:0', s3_region: 'garage' },
      admin: { api_bind_addr: '127.0.0.1:0', admin_token: 'tok' },
    })
    const bodies = Array.from({ length: 24 }, (_, i) => Buffer.alloc(8 * 1024, i + 1))
    const countFiles = async (dir: string): Promise<number> => {
      let n = 0
      for await (const _ of walk(dir)) n++
      return n
    }

    const first = createGarageNode(
      config([
        { path: a, capacity: '1G' },
        { path: b, capacity: '1G' },
      ]),
    )
    t.after(() => first.stop())
    await first.start()
    const key = await first.keys.create({ name: 'k', allowCreateBucket: true })
    await first.buckets.create('bkt')
    await first.buckets.allowKey('bkt', key.accessKeyId, { read: true, write: true, owner: true })
    const s3Of = (endpoint: string) =>
      new S3Client({
        endpoint,
        region: 'garage',
        forcePathStyle: true,
        credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey },
      })
    let s3 = s3Of(first.s3Endpoint as string)
    for (const [i, body] of bodies.entries()) await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: `o${i}`, Body: body }))
    s3.destroy()
    await first.stop()
    const [inA, inB] = [await countFiles(a), await countFiles(b)]
    assert.equal(inA + inB, bodies.length, 'one file per block')
    assert.ok(inA > 0 && inB > 0, `blocks are spread over both directories (${inA}, ${inB})`)

    const second = createGarageNode(
      config([
        { path: a, capacity: '1G' },
        { path: b, capacity: '1G' },
        { path: c, capacity: '2G' },
      ]),
    )
    t.after(() => second.stop())
    await second.start()
    s3 = s3Of(second.s3Endpoint as string)
    t.after(() => s3.destroy())
    const readAll = async (): Promise<void> => {
      for (const [i, body] of bodies.entries()) {
        const got = await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: `o${i}` }))
        assert.deepEqual(Buffer.from((await got.Body?.transformToByteArray()) ?? []), body, `o${i} reads back`)
      }
    }
    await readAll()
    assert.equal(await countFiles(c), 0, 'nothing moved yet')
    const admin = { adminEndpoint: second.adminEndpoint, adminToken: 'tok' } as TestNode
    const r = await v2(admin, 'LaunchRepairOperation', { query: { node: 'self' }, body: { repairType: 'rebalance' } })
    assert.equal(r.status, 200, r.text)
    await eventually(
      'the rebalance worker is done',
      async () => {
        const w = await v2(admin, 'ListWorkers', { query: { node: 'self' }, body: {} })
        const list = (w.data.success as Record<string, Array<{ name: string; state: string }>>)[second.nodeId] ?? []
        return list.some((x) => x.name === 'Block rebalance worker' && x.state === 'done')
      },
      { timeoutMs: 10_000 },
    )
    const inC = await countFiles(c)
    assert.ok(inC > 0, 'blocks moved to the new directory')
    assert.equal((await countFiles(a)) + (await countFiles(b)) + inC, bodies.length, 'no block lost or duplicated')
    await readAll()
  })
})

async function* walk(dir: string): AsyncGenerator<string> {
  let entries: Dirent[]
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw err
  }
  for (const e of entries) {
    const p = join(dir, e.name)
    if (e.isDirectory()) yield* walk(p)
    else if (/^[0-9a-f]{64}$/.test(e.name)) yield p
  }
}
