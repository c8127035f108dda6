/**
 * Content-addressed block store on this node's disk (port of garage_block::manager): blocks are
 * files named by the BLAKE2 hash of their content, written atomically, counted by references
 * and deleted by the resync worker once unreferenced for `gcDelayMsec`.
 */
import { randomBytes } from 'node:crypto'
import { type FileHandle, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Db, Transaction, Tree } from '../db/db.ts'
import { Notify, sleep, type Worker, type WorkerState } from '../util/background/worker.ts'
import { blake2sum, bytesEqual, concatBytes, type Hash, toHex } from '../util/data.ts'
import { CorruptDataError } from '../util/errors.ts'
import type { Logger } from '../util/logger.ts'
import { BlockRc } from './rc.ts'

/** Objects smaller than this are stored inline in the object table (Garage's INLINE_THRESHOLD). */
export const INLINE_THRESHOLD = 3072

export interface BlockManagerOptions {
  db: Db
  dataDir: string
  /** fsync block files and their directory before a write is acknowledged. */
  fsync: boolean
  /** Delay before an unreferenced block is deleted. */
  gcDelayMsec: number
  log: Logger
}

export class BlockManager {
  readonly dataDir: string
  readonly db: Db
  readonly rc: BlockRc
  readonly resyncQueue: Tree
  readonly #fsync: boolean
  readonly #log: Logger
  readonly #locks = new Map<string, Promise<void>>()
  readonly #notify = new Notify()
  /** Bit `(h[0] << 8) | h[1]`: the block directory of hashes starting with h[0], h[1] exists. */
  readonly #knownDirs = new Uint8Array(65536 / 8)
  #bytesWritten = 0
  #bytesRead = 0
  /**
   * Garage's resync tranquility: after each resync step the worker idles for this many times the
   * step's duration, so background work leaves room for requests. 0: no pause.
   */
  resyncTranquility = 2

  constructor(options: BlockManagerOptions) {
    this.dataDir = options.dataDir
    this.db = options.db
    this.#fsync = options.fsync
    this.#log = options.log
    this.resyncQueue = options.db.openTree('block_local_resync_queue')
    this.rc = new BlockRc(options.db.openTree('block_local_rc'), options.gcDelayMsec, (tx, hash, at) =>
      this.#scheduleResync(tx, hash, at),
    )
  }

  blockPath(hash: Hash): string {
    const hex = toHex(hash)
    return join(this.dataDir, hex.slice(0, 2), hex.slice(2, 4), hex)
  }

  /** Increments the reference count of `hash` (called from block_ref's updated hook). */
  incref(tx: Transaction, hash: Hash): void {
    this.rc.incref(tx, hash)
  }

  decref(tx: Transaction, hash: Hash): void {
    this.rc.decref(tx, hash)
  }

  /**
   * Stores a block. The caller references it (block_ref) before calling this, so the resync
   * worker cannot delete it concurrently. Identical blocks are stored once.
   */
  async putBlock(hash: Hash, data: Uint8Array): Promise<void> {
    await this.#withLock(hash, async () => {
      const path = this.blockPath(hash)
      if (await exists(path)) return
      const tmp = `${path}.tmp${randomBytes(4).toString('hex')}`
      const fh = await this.#openInDir(hash, tmp)
      try {
        await fh.writeFile(data)
        if (this.#fsync) await fh.sync()
      } finally {
        await fh.close()
      }
      await rename(tmp, path)
      if (this.#fsync) await fsyncDir(dirname(path))
      this.#bytesWritten += data.byteLength
    })
  }

  /** Reads and verifies a block. */
  async getBlock(hash: Hash): Promise<Buffer> {
    const path = this.blockPath(hash)
    const data = await readFile(path)
    if (!bytesEqual(blake2sum(data), hash)) {
      throw new CorruptDataError(`block ${toHex(hash)} is corrupted on disk (${path})`)
    }
    this.#bytesRead += data.byteLength
    return data
  }

  async hasBlock(hash: Hash): Promise<boolean> {
    return exists(this.blockPath(hash))
  }

  stats(): { bytesWritten: number; bytesRead: number; rcEntries: number; resyncQueueLength: number } {
    return {
      bytesWritten: this.#bytesWritten,
      bytesRead: this.#bytesRead,
      rcEntries: this.rc.tree.count(),
      resyncQueueLength: this.resyncQueue.count(),
    }
  }

  #scheduleResync(tx: Transaction, hash: Hash, at: number): void {
    tx.insert(this.resyncQueue, concatBytes(u64(at), hash), new Uint8Array(0))
    queueMicrotask(() => this.#notify.notify())
  }

  /** The worker that deletes unreferenced blocks once their delay has passed. */
  resyncWorker(): Worker {
    return new ResyncWorker(this, this.#notify)
  }

  /** @internal Deletes the block if it is still unreferenced and its delay has passed. */
  async resyncBlock(hash: Hash, now: number): Promise<void> {
    await this.#withLock(hash, async () => {
      if (!this.rc.isDeletable(hash, now)) return
      await rm(this.blockPath(hash), { force: true })
      this.db.transaction((tx) => this.rc.clearDeletable(tx, hash, now))
      this.#log.debug(`deleted unreferenced block ${toHex(hash)}`)
    })
  }

  /**
   * Opens a new block file for writing. Its directory (`xx/yy`, from the first two bytes of the
   * hash) is created the first time this manager writes into it and remembered in a 64 Kibit
   * bitmap, sparing a recursive mkdir (mkdir + stat) per block afterwards; a directory removed
   * behind our back is recreated when the open fails.
   */
  async #openInDir(hash: Hash, path: string): Promise<FileHandle> {
    const dir = ((hash[0] ?? 0) << 8) | (hash[1] ?? 0)
    const known = ((this.#knownDirs[dir >> 3] ?? 0) & (1 << (dir & 7))) !== 0
    if (known) {
      try {
        return await open(path, 'wx')
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
    }
    await mkdir(dirname(path), { recursive: true })
    const fh = await open(path, 'wx')
    this.#knownDirs[dir >> 3] = (this.#knownDirs[dir >> 3] ?? 0) | (1 << (dir & 7))
    return fh
  }

  async #withLock(hash: Hash, fn: () => Promise<void>): Promise<void> {
    const key = toHex(hash)
    const prev = this.#locks.get(key) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const tail = run.then(
      () => {},
      () => {},
    )
    this.#locks.set(key, tail)
    try {
      await run
    } finally {
      if (this.#locks.get(key) === tail) this.#locks.delete(key)
    }
  }
}

class ResyncWorker implements Worker {
  readonly name = 'block resync'
  readonly #manager: BlockManager
  readonly #notify: Notify
  #nextAt = 0
  constructor(manager: BlockManager, notify: Notify) {
    this.#manager = manager
    this.#notify = notify
  }
  async work(signal: AbortSignal): Promise<WorkerState> {
    const now = Date.now()
    for (const [key] of this.#manager.resyncQueue.range({ limit: 1 })) {
      const at = readU64(key)
      if (at > now) {
        this.#nextAt = at
        return 'idle'
      }
      const hash = key.subarray(8)
      const started = performance.now()
      await this.#manager.resyncBlock(hash, now)
      this.#manager.db.transaction((tx) => tx.remove(this.#manager.resyncQueue, key))
      const pause = (performance.now() - started) * this.#manager.resyncTranquility
      if (pause >= 1) await sleep(Math.min(pause, 10_000), signal)
      return 'busy'
    }
    this.#nextAt = Number.POSITIVE_INFINITY
    return 'idle'
  }
  waitForWork(signal: AbortSignal): Promise<void> {
    const wait = Math.min(Math.max(this.#nextAt - Date.now(), 10), 60_000)
    return this.#notify.wait(signal, wait)
  }
  info(): Record<string, number> {
    return { queueLength: this.#manager.resyncQueue.count() }
  }
}

function u64(n: number): Uint8Array {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(n))))
  return new Uint8Array(b)
}

function readU64(b: Uint8Array): number {
  return Number(Buffer.from(b.buffer, b.byteOffset, 8).readBigUInt64BE())
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
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
