/**
 * The block files of this node (the local half of garage_block::manager, Garage's
 * `BlockManagerLocked`): where a block's file is, atomic writes through a temporary file, verified
 * reads, corrupt files moved aside, the per-hash lock every change of a block file takes, the
 * data directory markers and the sweep of temporary files left by a crash. It knows nothing of
 * the cluster, the reference counts or the resync queue: what follows a corruption is the
 * caller's `onCorrupt`.
 * @internal
 */
import { randomBytes } from '../util/random.ts'
import fs from 'node:fs'
import { type FileHandle, mkdir, open, rename, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { blake2sum, byteLengthOf, bytesEqual, type Hash, toHex } from '../util/data.ts'
import { CorruptDataError } from '../util/errors.ts'
import type { Logger } from '../util/logger.ts'
import { type BlockPaths, pathExists } from './layout.ts'
import type { BlockMetrics } from './metrics.ts'
import { type ScrubCheck, walkBlockStore } from './scrub.ts'

/** The marker file written in every data directory at first start. @internal */
export const DATA_DIR_MARKER = 'garage-marker'

/**
 * A block's bytes: one buffer, or its pieces in order (a block received from another node, as
 * its frames were opened: written with one `writev` rather than copied together first).
 * @internal
 */
export type BlockData = Uint8Array | readonly Uint8Array[]

/** @internal */
export interface LocalBlockStoreOptions {
  paths: BlockPaths
  /** fsync block files and their directory before a write is acknowledged. */
  fsync: boolean
  log: Logger
  metrics: BlockMetrics
  /**
   * Whether a copy already on disk must have its time refreshed when the same block is written
   * again (the manager: when nothing references it here, so its grace period restarts).
   */
  touchExisting(hash: Hash): boolean
  /**
   * True when no copy on disk can matter to a write of `hash` (the manager: the write's own
   * reference is the only one, or, when the write's reference is not `counted` yet, there is
   * none). With a single candidate path the write then does not look for a copy first: one
   * `stat`, a thread-pool round trip, less per new block; a copy left there (an orphan) is
   * replaced by the same bytes.
   */
  isNew?(hash: Hash, counted: boolean): boolean
  /** A corrupt file of `hash` was moved aside (the manager queues a resync). */
  onCorrupt(hash: Hash): void
  /**
   * Block files read at once (`block_max_concurrent_reads`, Garage ≥ 2.0): more reads wait
   * their turn, so that a burst of GETs does not make a hard disk seek between them all.
   * Default {@link DEFAULT_MAX_CONCURRENT_READS}.
   */
  maxConcurrentReads?: number
}

/** Garage's default `block_max_concurrent_reads`. @internal */
export const DEFAULT_MAX_CONCURRENT_READS = 16

/** @internal */
export class LocalBlockStore {
  readonly paths: BlockPaths
  readonly #o: LocalBlockStoreOptions
  readonly #locks = new Map<string, Promise<void>>()
  readonly #knownDirs = new Set<string>()
  /** Reads of block files running, at most #maxReads; the others wait in #readQueue. */
  readonly #maxReads: number
  #reading = 0
  readonly #readQueue: Array<() => void> = []
  /** Temporary files older than this, not written by this store, are left by an earlier process. */
  readonly #startedAt = Date.now()
  /**
   * In the name of this store's temporary files (`<hash>.tmp<tag><random>`), which the start-up
   * sweep never removes: file times come from the kernel's coarse clock, a few milliseconds
   * behind `Date.now()` (up to 6 ms measured here), so a write begun just after the store was
   * created could carry an earlier time than {@link #startedAt} and be swept while in progress
   * (a CI run of 367605c did so).
   */
  readonly #tmpTag = randomBytes(4).toString('hex')

  constructor(o: LocalBlockStoreOptions) {
    this.#o = o
    this.paths = o.paths
    this.#maxReads = o.maxConcurrentReads ?? DEFAULT_MAX_CONCURRENT_READS
  }

  /** Block file reads running, and waiting for their turn (`maxConcurrentReads`). */
  get reads(): { running: number; waiting: number } {
    return { running: this.#reading, waiting: this.#readQueue.length }
  }

  /** The primary path of a block (where a new copy is written). */
  primaryPath(hash: Hash): string {
    return this.paths.primaryPath(hash)
  }

  /** The first candidate path holding the block. */
  async find(hash: Hash): Promise<string | undefined> {
    for (const p of this.paths.candidatePaths(hash)) if (await pathExists(p)) return p
    return undefined
  }

  /** Every candidate path holding the block. */
  async findAll(hash: Hash): Promise<string[]> {
    const out: string[] = []
    for (const p of this.paths.candidatePaths(hash)) if (await pathExists(p)) out.push(p)
    return out
  }

  /**
   * Reads and verifies the first local copy of a block, trying each candidate path in turn: a
   * directory without it costs a failed open, and a read no `stat` beforehand (one syscall of
   * the five a small GET makes on its block). Undefined when no directory holds it.
   * @throws CorruptDataError when the first copy found is corrupt (see {@link readVerified}).
   */
  async readFirst(hash: Hash, sizeGuess?: number): Promise<Buffer | undefined> {
    for (const p of this.paths.candidatePaths(hash)) {
      const data = await this.readVerified(hash, p, sizeGuess)
      if (data !== undefined) return data
    }
    return undefined
  }

  /** True when a local copy exists (not verified). */
  async has(hash: Hash): Promise<boolean> {
    return (await this.find(hash)) !== undefined
  }

  /** The modification time of the file at `path`; undefined when it vanished. */
  async mtimeOf(path: string): Promise<number | undefined> {
    const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined
      throw err
    })
    return st?.mtimeMs
  }

  /**
   * Writes a block under its primary path, unless a copy is there already; moves a copy found
   * elsewhere. `then` runs once the block is in place, still under the block's lock, and its
   * result is returned: a commit that references the block cannot be overtaken by a deletion
   * of it (resync deletes under this lock, when the count says unreferenced). `counted`: whether
   * the write's own reference is already counted (default), for {@link LocalBlockStoreOptions.isNew}.
   */
  async write<T = void>(hash: Hash, data: BlockData, then?: () => T, o: { counted?: boolean } = {}): Promise<T | undefined> {
    return this.withLock(hash, async () => {
      await this.#writeLocked(hash, data, o.counted ?? true)
      return then?.()
    })
  }

  /** {@link write}'s work, under the block's lock. */
  async #writeLocked(hash: Hash, data: BlockData, counted: boolean): Promise<void> {
    const path = this.paths.primaryPath(hash)
    const unseen = this.#o.isNew?.(hash, counted) === true && this.paths.candidatePaths(hash).length === 1
    const existing = unseen ? undefined : await this.find(hash)
    if (existing === path) {
      // A copy nothing references here (an orphan, or one past its deletion delay) now counts
      // for a new write: restart its grace period so resync does not delete it before the
      // block_ref rows of that write arrive.
      if (this.#o.touchExisting(hash)) {
        const now = new Date()
        await utimes(path, now, now)
      }
      return
    }
    const tmp = this.tempPath(path)
    const fh = await this.#openInDir(path, tmp)
    try {
      try {
        await writeData(fh, data)
        if (this.#o.fsync) await fh.sync()
      } finally {
        await fh.close()
      }
      await rename(tmp, path)
    } catch (err) {
      await rm(tmp, { force: true })
      throw err
    }
    if (this.#o.fsync) await fsyncDir(dirname(path))
    if (existing !== undefined) await rm(existing, { force: true })
    this.#o.metrics.wrote(byteLengthOf(data))
  }

  /** @internal A new temporary name next to `path` for a write of this store (never swept). */
  tempPath(path: string): string {
    return `${path}.tmp${this.#tmpTag}${randomBytes(4).toString('hex')}`
  }

  /**
   * Reads and verifies the file at `path`. Undefined when it vanished. A corrupt file is renamed
   * `<path>.corrupted` and reported to `onCorrupt`.
   * @throws CorruptDataError when corrupt.
   */
  async readVerified(hash: Hash, path: string, sizeGuess?: number): Promise<Buffer | undefined> {
    let data: Buffer
    if (this.#reading >= this.#maxReads) await new Promise<void>((resolve) => this.#readQueue.push(resolve))
    else this.#reading++
    try {
      data = await readBlockFile(path, sizeGuess)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    } finally {
      // The next read waiting takes this one's place (the count stays), or the count drops.
      const next = this.#readQueue.shift()
      if (next !== undefined) next()
      else this.#reading--
    }
    this.#o.metrics.read(data.byteLength)
    if (bytesEqual(blake2sum(data), hash)) return data
    this.#o.metrics.corruption()
    await this.withLock(hash, async () => {
      try {
        await rename(path, `${path}.corrupted`)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
    })
    this.#o.onCorrupt(hash)
    this.#o.log.warn(`block ${toHex(hash)} is corrupted on disk (${path}): moved to .corrupted and queued for resync`)
    throw new CorruptDataError(`block ${toHex(hash)} is corrupted on disk (${path})`)
  }

  /** Verifies one block file for the scrub (a corrupt one is handled as by a read). */
  async check(hash: Hash, path: string): Promise<ScrubCheck> {
    try {
      return (await this.readVerified(hash, path)) === undefined ? 'missing' : 'ok'
    } catch (err) {
      if (err instanceof CorruptDataError) return 'corrupt'
      throw err
    }
  }

  /** Removes every local copy of `hash`. The caller holds the block's lock. */
  async removeAll(hash: Hash): Promise<void> {
    for (const p of await this.findAll(hash)) await rm(p, { force: true })
  }

  /**
   * Writes the marker file in every writable data directory lacking it, and gives the others
   * the current time (so that their time is the last start, see {@link markersTime}); returns
   * the directories that lacked it (a directory that lost its marker was wiped or replaced).
   */
  async ensureMarkers(): Promise<string[]> {
    const lacking: string[] = []
    for (const dir of this.#writableDirs()) {
      const marker = join(dir, DATA_DIR_MARKER)
      if (await pathExists(marker)) {
        const now = new Date()
        await utimes(marker, now, now)
        continue
      }
      lacking.push(dir)
      await mkdir(dir, { recursive: true })
      await writeFile(marker, 'This file marks a Garage data directory; do not delete it.\n')
    }
    return lacking
  }

  /**
   * The earliest time of the writable directories' markers, before {@link ensureMarkers} runs:
   * the previous start (or the directory's creation, for a store started by an older version).
   * Undefined when one is missing.
   */
  async markersTime(): Promise<number | undefined> {
    let earliest: number | undefined
    for (const dir of this.#writableDirs()) {
      const t = await this.mtimeOf(join(dir, DATA_DIR_MARKER))
      if (t === undefined) return undefined
      earliest = Math.min(earliest ?? t, t)
    }
    return earliest
  }

  /** Read-only directories (a multi-directory layout lists them) are never written. */
  #writableDirs(): readonly string[] {
    return (this.paths as { readonly writableDirs?: readonly string[] }).writableDirs ?? this.paths.dirs
  }

  /**
   * Removes the temporary files older than this process (writes interrupted by a crash); hands
   * every other file to `onFile` (the start-up check of unreferenced blocks).
   */
  async sweepTempFiles(signal?: AbortSignal, onFile?: (name: string, path: string) => Promise<void> | undefined): Promise<void> {
    let swept = 0
    for await (const f of walkBlockStore(this.paths.dirs)) {
      if (signal?.aborted === true) return
      if (!f.name.includes('.tmp')) {
        const pending = onFile?.(f.name, f.path)
        if (pending !== undefined) await pending
        continue
      }
      // Ours are writes in progress, and so may be others younger than this process (rebalance's).
      if (f.name.includes(`.tmp${this.#tmpTag}`)) continue
      const mtime = await this.mtimeOf(f.path)
      if (mtime === undefined || mtime >= this.#startedAt) continue
      await rm(f.path, { force: true })
      swept++
    }
    if (swept > 0) this.#o.log.info(`removed ${swept} temporary block file(s) left by an interrupted write`)
  }

  /**
   * Runs `fn` while no other write, move or delete of `hash` runs on this node (the per-hash
   * lock every block file change takes; `garage repair rebalance` uses it too).
   */
  async withLock<T>(hash: Hash, fn: () => Promise<T>): Promise<T> {
    const key = toHex(hash)
    const prev = this.#locks.get(key) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const tail = run.then(
      () => {},
      () => {},
    )
    this.#locks.set(key, tail)
    try {
      return await run
    } finally {
      if (this.#locks.get(key) === tail) this.#locks.delete(key)
    }
  }

  /**
   * Opens a new block file for writing. Its directory is created the first time this store
   * writes into it and remembered, sparing a recursive mkdir per block afterwards; a directory
   * removed behind our back is recreated when the open fails.
   */
  async #openInDir(path: string, tmp: string): Promise<FileHandle> {
    const dir = dirname(path)
    if (this.#knownDirs.has(dir)) {
      try {
        return await open(tmp, 'wx')
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
    }
    await mkdir(dir, { recursive: true })
    const fh = await open(tmp, 'wx')
    this.#knownDirs.add(dir)
    return fh
  }
}

/**
 * Writes `data` at the start of a new file in one system call (short writes resumed): one
 * buffer, or its pieces with `writev`. (`FileHandle.writeFile` cuts a 1 MiB block into two
 * 512 KiB writes, each a thread-pool round trip.)
 */
async function writeData(fh: FileHandle, data: BlockData): Promise<void> {
  let parts = (data instanceof Uint8Array ? [data] : data).filter((p) => p.byteLength > 0)
  let position = 0
  while (parts.length > 0) {
    const { bytesWritten } = await fh.writev(parts, position)
    position += bytesWritten
    let n = bytesWritten
    while (parts.length > 0 && n >= (parts[0] as Uint8Array).byteLength) n -= (parts.shift() as Uint8Array).byteLength
    if (n > 0) parts = [(parts[0] as Uint8Array).subarray(n), ...parts.slice(1)]
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/**
 * A block file's bytes. With `sizeGuess` (the block's size as its version row gives it), three
 * thread-pool round trips (open, one read of up to `sizeGuess + 1` bytes at once, close) instead
 * of `readFile`'s four (it asks the size first); a file longer than guessed is read again whole,
 * so a wrong guess costs time, never bytes. The callback API, not `fs/promises`: no FileHandle
 * object and promise per step (a 4 KiB block: ≈ 20–26 µs of CPU with a guess, 36–40 without,
 * 65–86 through `fs/promises.readFile`; docs/design/performance.md).
 * @internal
 */
export function readBlockFile(path: string, sizeGuess?: number): Promise<Buffer> {
  if (sizeGuess === undefined || !Number.isSafeInteger(sizeGuess) || sizeGuess < 0 || sizeGuess > READ_GUESS_MAX) {
    return new Promise((resolve, reject) => fs.readFile(path, (err, data) => (err === null ? resolve(data) : reject(err))))
  }
  return new Promise((resolve, reject) => {
    fs.open(path, 'r', (err, fd) => {
      if (err !== null) return reject(err)
      const buf = Buffer.allocUnsafe(sizeGuess + 1)
      fs.read(fd, buf, 0, buf.length, 0, (readErr, n) => {
        fs.close(fd, (closeErr) => {
          const e = readErr ?? closeErr
          if (e !== null) return reject(e)
          if (n > sizeGuess) {
            // Longer than guessed: read it whole (the rare case of a guess off, e.g. SSE-C blocks).
            fs.readFile(path, (err2, data) => (err2 === null ? resolve(data) : reject(err2)))
            return
          }
          // A block much smaller than its buffer is copied out, so the buffer is not held.
          resolve(n * 2 < buf.length ? Buffer.from(buf.subarray(0, n)) : buf.subarray(0, n))
        })
      })
    })
  })
}

/** Largest size guess read in one go (a larger block is read by `readFile`, in pieces). */
const READ_GUESS_MAX = 16 * 1024 * 1024
