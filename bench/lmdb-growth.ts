/**
 * How big the lmdb file grows against the pages in use when objects are loaded in bulk (issue 21):
 * loads GROWTH_OBJECTS rows (half in one bucket in key order, half spread over 1,000 buckets as
 * bench/scale.ts does) in transactions of GROWTH_BATCH rows, folds their Merkle todo in batches,
 * then reports the file size, the pages in use (every tree's branch, leaf and overflow pages) and
 * the time of each phase. GROWTH_FREE_LOAD / GROWTH_FREE_RETAIN set lmdb-js's free-list limits.
 * One JSON line on stdout.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { open } from 'lmdb'
import { openLmdb } from '../lib/db/lmdb.ts'
import { MerkleUpdater } from '../lib/table/merkle.ts'
import { LocalReplication } from '../lib/table/replication.ts'
import { genUuid } from '../lib/util/data.ts'
import { silentLogger } from '../lib/util/logger.ts'
import { inlineObjectRow, loaderGarage } from './model-loader.ts'

const N = Number(process.env.GROWTH_OBJECTS ?? 300_000)
const BATCH = Number(process.env.GROWTH_BATCH ?? 10_000)
const FOLD_BATCH = Number(process.env.GROWTH_FOLD_BATCH ?? 1000)
const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v))
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d
const mainKey = (i: number): string => `${String(Math.floor(i / 1000)).padStart(5, '0')}/${String(i).padStart(9, '0')}`
const spreadKey = (i: number): string =>
  `logs/2026/12/${String(1 + (Math.floor(i / 1000) % 28)).padStart(2, '0')}/host-${String(Math.floor(i / 28_000) % 16).padStart(2, '0')}/${String(i).padStart(9, '0')}`

async function pagesInUse(path: string): Promise<{ inUse: number; free: number; lastPage: number; pageSize: number }> {
  const root = open({ path, maxDbs: 64, readOnly: true, compression: false })
  try {
    const names = [...root.getKeys()].map(String)
    let inUse = 0
    for (const name of names) {
      const s = root.openDB({ name, encoding: 'binary', keyEncoding: 'binary' }).getStats() as Record<string, number>
      inUse += (s.treeBranchPageCount ?? 0) + (s.treeLeafPageCount ?? 0) + (s.overflowPages ?? 0)
    }
    const all = root.getStats() as Record<string, number> & { root: Record<string, number>; free: Record<string, number> }
    inUse += (all.root.treeBranchPageCount ?? 0) + (all.root.treeLeafPageCount ?? 0) + (all.root.overflowPages ?? 0)
    const free = (all.free.treeBranchPageCount ?? 0) + (all.free.treeLeafPageCount ?? 0) + (all.free.overflowPages ?? 0)
    return { inUse, free, lastPage: all.lastPageNumber ?? 0, pageSize: all.root.pageSize ?? 4096 }
  } finally {
    await root.close()
  }
}

const dir = await mkdtemp(join(tmpdir(), 'lmdb-growth-'))
try {
  const load = num(process.env.GROWTH_FREE_LOAD)
  const retain = num(process.env.GROWTH_FREE_RETAIN)
  const db = await openLmdb(join(dir, 'meta'), {
    fsync: false,
    ...(load === undefined ? {} : { maxFreeSpaceToLoad: load }),
    ...(retain === undefined ? {} : { maxFreeSpaceToRetain: retain }),
  })
  if (process.env.GROWTH_PIN === '1') {
    // A block reference, as a node that stored one block has: what the block manager's start
    // looked at with an iterator it never finished (issue 21).
    const rc = db.openTree('block_local_rc')
    db.transaction((tx) => tx.insert(rc, new Uint8Array(32).fill(1), new Uint8Array([1])))
  }
  const g = loaderGarage(db, dir)
  const main = genUuid()
  const buckets = Array.from({ length: 1000 }, () => genUuid())
  const ts = Date.now()
  const t0 = performance.now()
  let batch = []
  const sizes: number[] = []
  for (let i = 0; i < N / 2; i++) {
    batch.push(inlineObjectRow(main, mainKey(i), genUuid(), ts))
    batch.push(inlineObjectRow(buckets[i % 1000] as Uint8Array, spreadKey(i), genUuid(), ts))
    if (batch.length >= BATCH) {
      g.objectTable.data.updateMany(batch)
      batch = []
    }
  }
  if (batch.length > 0) g.objectTable.data.updateMany(batch)
  const loadS = (performance.now() - t0) / 1000
  sizes.push((await stat(join(dir, 'meta', 'db.lmdb'))).size)
  const merkle = new MerkleUpdater({
    data: g.objectTable.data,
    replication: Object.assign(new LocalReplication('loader'), { partitionOf: (h: Uint8Array): number => h[0] ?? 0 }),
    log: silentLogger,
  })
  const m0 = performance.now()
  while (merkle.updateBatch(FOLD_BATCH) > 0) {}
  const foldS = (performance.now() - m0) / 1000
  await db.close()
  const file = (await stat(join(dir, 'meta', 'db.lmdb'))).size
  const p = await pagesInUse(join(dir, 'meta', 'db.lmdb'))
  process.stdout.write(
    `${JSON.stringify({
      bench: 'lmdb-growth',
      objects: N,
      pin: process.env.GROWTH_PIN === '1',
      batch: BATCH,
      fold_batch: FOLD_BATCH,
      free_load: load ?? 'default',
      free_retain: retain ?? 'default',
      load_s: round(loadS),
      fold_s: round(foldS),
      file_after_load_mb: round((sizes[0] as number) / 2 ** 20),
      file_mb: round(file / 2 ** 20),
      in_use_mb: round((p.inUse * p.pageSize) / 2 ** 20),
      freelist_tree_mb: round((p.free * p.pageSize) / 2 ** 20),
      bytes_per_object: Math.round(file / N),
      file_over_in_use: round(file / (p.inUse * p.pageSize), 2),
      load_avg_1m: round(loadavg()[0] ?? 0),
    })}\n`,
  )
} finally {
  await rm(dir, { recursive: true, force: true })
}
