/**
 * Where block files live among the data directories (port of garage_block::layout). The block
 * manager asks this for the path to write a new block to and the paths to look for an existing
 * one; it never builds block paths itself.
 *
 * A block file is `<dir>/<hex hash[0]>/<hex hash[1]>/<64-hex hash>`. With several directories
 * (Garage's `data_dir` list), bytes 2–3 of the hash pick one of 1024 drive partitions; each
 * partition has one primary directory, chosen in proportion to the capacities, where its blocks
 * are written, and secondary directories where older copies may still be (after a change of the
 * list, or a directory that held data before the layout existed). Read-only directories are
 * never written, only read. The layout is persisted in `metadata_dir/data_layout` so that a
 * change of the list moves as few partitions as possible and old locations are remembered until
 * `garage repair rebalance` has moved their blocks.
 */
import { existsSync, readdirSync } from 'node:fs'
import { mkdir, open, readFile, rename } from 'node:fs/promises'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { defineCodec } from '../util/codec.ts'
import type { Hash } from '../util/data.ts'
import { toHex } from '../util/data.ts'
import { GarageError, InvalidConfigError } from '../util/errors.ts'

export interface BlockPaths {
  /** Path a new copy of `hash` is written to (its primary directory). */
  primaryPath(hash: Hash): string
  /** Every path where `hash` may already be stored, primary first. */
  candidatePaths(hash: Hash): string[]
  /** Every data directory, to scan (scrub, repair blocks). */
  readonly dirs: readonly string[]
}

/** The path of a block file inside one data directory. */
export function blockPathIn(dir: string, hash: Hash): string {
  const hex = toHex(hash)
  return join(dir, hex.slice(0, 2), hex.slice(2, 4), hex)
}

/** One data directory. */
export class SingleDirPaths implements BlockPaths {
  readonly dirs: readonly string[]
  constructor(dir: string) {
    this.dirs = [dir]
  }
  primaryPath(hash: Hash): string {
    return blockPathIn(this.dirs[0] as string, hash)
  }
  candidatePaths(hash: Hash): string[] {
    return [this.primaryPath(hash)]
  }
}

/** Number of drive partitions (Garage's DRIVE_NPART). */
export const DRIVE_NPART = 1024

/** Capacity given to a single `data_dir` (any positive value does: it is the only one). */
const SINGLE_DIR_CAPACITY = 1_000_000_000

/** A data directory as the configuration gives it (`ResolvedDataDir` of the config). */
export interface DataDirSpec {
  path: string
  /** Bytes; required for a writable directory of a list, absent for a single `data_dir`. */
  capacity?: number
  readOnly: boolean
}

/** A directory of the layout: a capacity when writable, null when read-only. */
export interface LayoutDir {
  path: string
  capacity: number | null
}

/** Which directory holds each drive partition. Plain data, persisted as is. */
export interface DataLayout {
  dirs: LayoutDir[]
  /** Per partition: index in `dirs` of the directory blocks are written to. */
  primary: number[]
  /** Per partition: indexes of other directories that may still hold its blocks. */
  secondary: number[][]
}

const layoutCodec = defineCodec<DataLayout>('GTdlay1')

/** The drive partition of a block: bytes 2 and 3 of its hash, modulo 1024. */
export function drivePartition(hash: Hash): number {
  return (((hash[2] ?? 0) << 8) | (hash[3] ?? 0)) % DRIVE_NPART
}

function layoutDirs(specs: readonly DataDirSpec[]): LayoutDir[] {
  if (specs.length === 0) throw new InvalidConfigError('data_dir', 'no data directory')
  if (specs.length === 1 && !(specs[0] as DataDirSpec).readOnly && (specs[0] as DataDirSpec).capacity === undefined) {
    return [{ path: (specs[0] as DataDirSpec).path, capacity: SINGLE_DIR_CAPACITY }]
  }
  const seen = new Set<string>()
  const dirs = specs.map((d, i): LayoutDir => {
    if (seen.has(d.path)) throw new InvalidConfigError(`data_dir[${i}]`, `directory ${d.path} is listed twice`)
    seen.add(d.path)
    if (d.readOnly) return { path: d.path, capacity: null }
    if (d.capacity === undefined || !(d.capacity > 0)) {
      throw new InvalidConfigError(`data_dir[${i}].capacity`, `data directory ${d.path} must have a non-zero capacity`)
    }
    return { path: d.path, capacity: d.capacity }
  })
  if (!dirs.some((d) => d.capacity !== null)) {
    throw new InvalidConfigError('data_dir', 'at least one data directory must not be read_only')
  }
  return dirs
}

/** Number of partitions each directory should hold: proportional to capacity, summing to 1024. */
function targetCounts(dirs: readonly LayoutDir[]): number[] {
  const total = dirs.reduce((s, d) => s + (d.capacity ?? 0), 0)
  let cum = 0
  return dirs.map((d) => {
    if (d.capacity === null) return 0
    const begin = Math.floor((cum * DRIVE_NPART) / total)
    cum += d.capacity
    const end = Math.floor((cum * DRIVE_NPART) / total)
    return end - begin
  })
}

/**
 * The first layout of a node: partitions split in proportion to capacities. A directory that
 * already holds block directories (`hasBlocks`) becomes a secondary location of every partition
 * it is not primary for, so blocks written before are still found.
 */
export function initialLayout(specs: readonly DataDirSpec[], hasBlocks: (path: string) => boolean): DataLayout {
  const dirs = layoutDirs(specs)
  const counts = targetCounts(dirs)
  const primary: number[] = []
  counts.forEach((n, i) => {
    for (let k = 0; k < n; k++) primary.push(i)
  })
  const secondary: number[][] = primary.map(() => [])
  dirs.forEach((d, i) => {
    if (!hasBlocks(d.path)) return
    primary.forEach((p, part) => {
      if (p !== i) (secondary[part] as number[]).push(i)
    })
  })
  return { dirs, primary, secondary }
}

const sameDirs = (a: readonly LayoutDir[], b: readonly LayoutDir[]): boolean =>
  a.length === b.length && a.every((d, i) => d.path === b[i]?.path && d.capacity === b[i]?.capacity)

/**
 * The layout after a change of the directory list: each directory keeps as many of its
 * partitions as its new share allows; the partitions it gives up remember it as a secondary
 * location; freed partitions go to directories below their share. Returns `old` itself when the
 * list did not change.
 */
export function updateLayout(old: DataLayout, specs: readonly DataDirSpec[], hasBlocks: (path: string) => boolean): DataLayout {
  const dirs = layoutDirs(specs)
  if (sameDirs(dirs, old.dirs)) return old
  const oldToNew = old.dirs.map((d) => {
    const i = dirs.findIndex((x) => x.path === d.path)
    return i < 0 ? undefined : i
  })
  const secondary = old.secondary.map((list) => {
    const out: number[] = []
    for (const o of list) {
      const n = oldToNew[o]
      if (n !== undefined && !out.includes(n)) out.push(n)
    }
    return out
  })
  const dirParts: number[][] = dirs.map(() => [])
  old.primary.forEach((p, part) => {
    const n = oldToNew[p]
    if (n !== undefined) (dirParts[n] as number[]).push(part)
  })
  const counts = targetCounts(dirs)
  // Directories above their share give partitions up (the last ones), remembering themselves.
  dirParts.forEach((parts, i) => {
    while (parts.length > (counts[i] ?? 0)) {
      const part = parts.pop() as number
      const sec = secondary[part] as number[]
      if (!sec.includes(i)) sec.push(i)
    }
  })
  const primary: Array<number | undefined> = new Array(DRIVE_NPART).fill(undefined)
  dirParts.forEach((parts, i) => {
    for (const part of parts) primary[part] = i
  })
  const unassigned: number[] = []
  primary.forEach((p, part) => {
    if (p === undefined) unassigned.push(part)
  })
  dirParts.forEach((parts, i) => {
    let missing = (counts[i] ?? 0) - parts.length
    while (missing > 0) {
      const part = unassigned.pop()
      if (part === undefined) throw new GarageError('GARAGE_ERR_INTERNAL', 'data layout: not enough partitions to assign')
      primary[part] = i
      secondary[part] = (secondary[part] as number[]).filter((x) => x !== i)
      missing--
    }
  })
  if (unassigned.length > 0 || primary.some((p) => p === undefined)) {
    throw new GarageError('GARAGE_ERR_INTERNAL', 'data layout: some partitions have no directory')
  }
  const prim = primary as number[]
  // A directory new to the list that already holds blocks (removed, then added back) may have
  // any partition's blocks: remember it everywhere.
  dirs.forEach((d, i) => {
    if (old.dirs.some((x) => x.path === d.path) || !hasBlocks(d.path)) return
    prim.forEach((p, part) => {
      const sec = secondary[part] as number[]
      if (p !== i && !sec.includes(i)) sec.push(i)
    })
  })
  return { dirs, primary: prim, secondary }
}

/** The same layout without secondary locations (once every block is in its primary directory). */
export function withoutSecondaryLocations(layout: DataLayout): DataLayout {
  return { dirs: layout.dirs, primary: layout.primary, secondary: layout.primary.map(() => []) }
}

/** True when `path` holds at least one block directory (a 2-hex-digit subdirectory). */
export function dirHasBlocks(path: string): boolean {
  if (!existsSync(path)) return false
  for (const e of readdirSync(path, { withFileTypes: true })) {
    if (e.isDirectory() && /^[0-9a-f]{2}$/.test(e.name)) return true
  }
  return false
}

/** Block paths over several data directories, from a {@link DataLayout}. */
export class MultiDirPaths implements BlockPaths {
  #layout: DataLayout
  readonly dirs: readonly string[]
  constructor(layout: DataLayout) {
    this.#layout = layout
    this.dirs = layout.dirs.map((d) => d.path)
  }

  get layout(): DataLayout {
    return this.#layout
  }

  /** Replaces the layout by one over the same directories (secondary locations dropped, say). */
  replaceLayout(layout: DataLayout): void {
    if (!sameDirs(layout.dirs, this.#layout.dirs)) {
      throw new GarageError('GARAGE_ERR_INTERNAL', 'data layout: a replacement must keep the same directories')
    }
    this.#layout = layout
  }

  /** Data directories that new blocks may be written to. */
  get writableDirs(): string[] {
    return this.#layout.dirs.filter((d) => d.capacity !== null).map((d) => d.path)
  }

  /** The directory new copies of `hash` go to. */
  primaryDir(hash: Hash): string {
    const l = this.#layout
    return (l.dirs[l.primary[drivePartition(hash)] as number] as LayoutDir).path
  }

  primaryPath(hash: Hash): string {
    return blockPathIn(this.primaryDir(hash), hash)
  }

  /**
   * Primary first, then the partition's secondary directories, then every other directory
   * (read-only ones included), so a block is found wherever an older layout put it.
   */
  candidatePaths(hash: Hash): string[] {
    const l = this.#layout
    const part = drivePartition(hash)
    const order = [l.primary[part] as number, ...(l.secondary[part] ?? [])]
    for (let i = 0; i < l.dirs.length; i++) if (!order.includes(i)) order.push(i)
    return order.map((i) => blockPathIn((l.dirs[i] as LayoutDir).path, hash))
  }

  /** Share of the 1024 partitions each directory is primary for, in order. */
  partitionCounts(): number[] {
    const counts = this.#layout.dirs.map(() => 0)
    for (const p of this.#layout.primary) counts[p] = (counts[p] ?? 0) + 1
    return counts
  }
}

export interface OpenBlockPathsOptions {
  /** The configured data directories (`dataDirs` of the resolved config). */
  dirs: readonly DataDirSpec[]
  /** Where the layout is persisted (`data_layout`). */
  metadataDir: string
}

/**
 * Loads the persisted layout (or computes the first one), adapts it to the configured
 * directories and persists the result. (The block manager's start-up check handles the
 * `garage-marker` file of each directory.)
 */
export async function openBlockPaths(o: OpenBlockPathsOptions): Promise<MultiDirPaths> {
  const file = join(o.metadataDir, 'data_layout')
  let previous: DataLayout | undefined
  try {
    previous = layoutCodec.decode(await readFile(file))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const layout = previous === undefined ? initialLayout(o.dirs, dirHasBlocks) : updateLayout(previous, o.dirs, dirHasBlocks)
  if (previous === undefined || layout !== previous) await persist(file, o.metadataDir, layout)
  return new MultiDirPaths(layout)
}

/** Writes the layout with secondary locations dropped (after a complete rebalance). */
export async function forgetSecondaryLocations(metadataDir: string, layout: DataLayout): Promise<DataLayout> {
  const next = withoutSecondaryLocations(layout)
  await persist(join(metadataDir, 'data_layout'), metadataDir, next)
  return next
}

async function persist(file: string, dir: string, layout: DataLayout): Promise<void> {
  await mkdir(dir, { recursive: true })
  const tmp = `${file}.tmp`
  const fh = await open(tmp, 'w')
  try {
    await fh.writeFile(layoutCodec.encode(layout))
    await fh.sync()
  } finally {
    await fh.close()
  }
  await rename(tmp, file)
}

/** Whether a file exists (false only for ENOENT; other errors are thrown). */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}
