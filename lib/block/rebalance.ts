/**
 * `garage repair rebalance` (port of garage_block::repair::RebalanceWorker): walks every data
 * directory and moves each block file that is not in its primary directory there (or drops it
 * when the primary already has a copy). Once a pass ends without error, the layout forgets its
 * secondary locations, so reads stop looking in the old places.
 */
import { copyFile, open, readdir, rename, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { mkdir } from 'node:fs/promises'
import type { Worker, WorkerState } from '../util/background/worker.ts'
import { fromHex, type Hash } from '../util/data.ts'
import type { Logger } from '../util/logger.ts'
import { type DataLayout, forgetSecondaryLocations, type MultiDirPaths, pathExists, withoutSecondaryLocations } from './layout.ts'

/** Block files moved per step of the worker. */
const BATCH = 64

export interface RebalanceWorkerOptions {
  paths: MultiDirPaths
  /** Where the data layout is persisted; omitted: the layout is changed in memory only. */
  metadataDir?: string
  /**
   * Runs `fn` while no other write or delete of `hash` runs (the block manager's per-hash lock).
   * Default: no locking.
   */
  withBlockLock?: (hash: Hash, fn: () => Promise<void>) => Promise<void>
  fsync?: boolean
  log: Logger
}

export interface RebalanceProgress {
  /** Block files looked at. */
  scanned: number
  /** Block files moved to their primary directory. */
  moved: number
  /** Extra copies removed because the primary directory already had the block. */
  dropped: number
  errors: number
}

/** Every block file under the data directories, as (directory, hash, path). */
async function* blockFiles(dirs: readonly string[]): AsyncGenerator<{ dir: string; hash: Hash; path: string }> {
  for (const dir of dirs) {
    for (const a of await listDir(dir, /^[0-9a-f]{2}$/)) {
      for (const b of await listDir(join(dir, a), /^[0-9a-f]{2}$/)) {
        const sub = join(dir, a, b)
        for (const name of await listDir(sub, /^[0-9a-f]{64}$/)) {
          if (!name.startsWith(a + b)) continue
          yield { dir, hash: fromHex(name), path: join(sub, name) }
        }
      }
    }
  }
}

async function listDir(path: string, pattern: RegExp): Promise<string[]> {
  try {
    return (await readdir(path)).filter((n) => pattern.test(n)).sort()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return []
    throw err
  }
}

export class RebalanceWorker implements Worker {
  readonly name = 'Block rebalance worker'
  readonly #o: RebalanceWorkerOptions
  readonly #files: AsyncGenerator<{ dir: string; hash: Hash; path: string }>
  readonly #started = Date.now()
  readonly progress: RebalanceProgress = { scanned: 0, moved: 0, dropped: 0, errors: 0 }

  constructor(o: RebalanceWorkerOptions) {
    this.#o = o
    this.#files = blockFiles(o.paths.dirs)
  }

  async work(signal: AbortSignal): Promise<WorkerState> {
    for (let i = 0; i < BATCH && !signal.aborted; i++) {
      const next = await this.#files.next()
      if (next.done === true) {
        await this.#finish()
        return 'done'
      }
      const { dir, hash, path } = next.value
      this.progress.scanned++
      const primaryDir = this.#o.paths.primaryDir(hash)
      if (dir === primaryDir) continue
      const lock = this.#o.withBlockLock ?? ((_h: Hash, fn: () => Promise<void>) => fn())
      try {
        await lock(hash, () => this.#move(path, this.#o.paths.primaryPath(hash)))
      } catch (err) {
        // Counted and reported; the file stays where it is and is still found there (the
        // secondary locations are kept when a pass had errors).
        this.progress.errors++
        this.#o.log.warn(`rebalance: could not move ${path}: ${(err as Error).message}`)
      }
    }
    return 'busy'
  }

  async #move(from: string, to: string): Promise<void> {
    if (await pathExists(to)) {
      await rm(from, { force: true })
      this.progress.dropped++
      return
    }
    await mkdir(dirname(to), { recursive: true })
    try {
      await rename(from, to)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err
      // Another drive: copy to a temporary name, sync, rename, then remove the source.
      const tmp = `${to}.tmp-rebalance`
      await copyFile(from, tmp)
      if (this.#o.fsync === true) {
        const fh = await open(tmp, 'r+')
        try {
          await fh.sync()
        } finally {
          await fh.close()
        }
      }
      await rename(tmp, to)
      await rm(from, { force: true })
    }
    this.progress.moved++
  }

  async #finish(): Promise<void> {
    const p = this.progress
    const secs = Math.round((Date.now() - this.#started) / 1000)
    if (p.errors > 0) {
      this.#o.log.warn(`rebalance finished with ${p.errors} error(s) in ${secs}s; old locations are kept`)
      return
    }
    const layout: DataLayout =
      this.#o.metadataDir === undefined
        ? withoutSecondaryLocations(this.#o.paths.layout)
        : await forgetSecondaryLocations(this.#o.metadataDir, this.#o.paths.layout)
    this.#o.paths.replaceLayout(layout)
    this.#o.log.info(
      `rebalance finished in ${secs}s: ${p.scanned} blocks scanned, ${p.moved} moved, ${p.dropped} extra copies dropped`,
    )
  }

  waitForWork(): Promise<void> {
    // Never idle: the walk is busy until done.
    return Promise.resolve()
  }

  info(): Record<string, number> {
    return { ...this.progress }
  }
}
