/**
 * Content-addressed block store (port of garage_block::manager): blocks are files named by the
 * BLAKE2 hash of their content, written atomically, counted by references. On a node in a
 * cluster, blocks are written to the nodes of their hash's partition (write quorum, the rest in
 * the background with bounded memory) and read from the closest holder; the resync queue
 * fetches what this node lacks, offloads what it should no longer hold and deletes unreferenced
 * blocks after `gcDelayMsec`; the scrub re-verifies every file.
 *
 * `BlockManager` is the facade the model and the APIs use. It builds and composes:
 * - `LocalBlockStore` (store.ts): the files, their locks, verified reads, corruption, markers;
 * - `BlockReplication` (replication.ts): puts at quorum, gets from the closest holder, `block/*`;
 * - `ResyncControl` (resync-control.ts): what to fetch, offload or delete, errors, scrub, workers;
 * - `BlockRc` (rc.ts) and `BlockResync` (resync.ts): the counts and the persisted queue.
 */
import type { Db, Transaction } from '../db/db.ts'
import type { Worker } from '../util/background/worker.ts'
import type { Hash } from '../util/data.ts'
import { GarageError } from '../util/errors.ts'
import type { Logger } from '../util/logger.ts'
import { type BlockPaths, SingleDirPaths } from './layout.ts'
import { BlockMetrics } from './metrics.ts'
import { BlockRc } from './rc.ts'
import { type BlockCluster, BlockReplication } from './replication.ts'
import { type BlockInfo, ResyncControl } from './resync-control.ts'
import { type BlockResyncErrorInfo, BlockResync } from './resync.ts'
import type { ScrubCheck, ScrubStatus, ScrubWorker } from './scrub.ts'
import { LocalBlockStore } from './store.ts'
import type { LocalWrites, PlannedBatch } from '../table/batch.ts'
import type { TableBatchRequest } from '../table/table.ts'

export { type BlockCluster, type BlockLayoutView, DEFAULT_BLOCK_RAM_BUFFER_MAX } from './replication.ts'
export type { BlockInfo } from './resync-control.ts'
export { DATA_DIR_MARKER } from './store.ts'

/** Objects smaller than this are stored inline in the object table (Garage's INLINE_THRESHOLD). @internal */
export const INLINE_THRESHOLD = 3072

/** @internal */
export interface BlockManagerOptions {
  db: Db
  /** Where block files live. Default: one directory, `dataDir`. */
  paths?: BlockPaths
  /** Single data directory, when `paths` is not given. */
  dataDir?: string
  /** fsync block files and their directory before a write is acknowledged. */
  fsync: boolean
  /** Delay before an unreferenced block is deleted. */
  gcDelayMsec: number
  log: Logger
  /** Set on a node in a cluster: blocks are replicated over it. */
  cluster?: BlockCluster
  /** `block_ram_buffer_max`: bytes of blocks held for slow replicas. Default 256 MiB. */
  ramBufferMax?: number
  /** `block_max_concurrent_reads`: block files read from disk at once. Default 16. */
  maxConcurrentReads?: number
  /** Deadline of one block transfer. Default 300 s (`rpc_timeout_msec`). */
  rpcTimeoutMs?: number
  /**
   * Delay after a new reference before checking that the block arrived (Garage: 2 × the RPC
   * timeout). Default 3 min.
   */
  resyncDelayMsec?: number
  /** Base of the resync retry backoff. Default 60 s. */
  resyncRetryDelayMsec?: number
  /** Do not run the scrub worker (`disable_scrub`). */
  disableScrub?: boolean
  /** Scrub schedule (tests). Defaults: 25 days + 0-10 days. */
  scrubIntervalMs?: number
  scrubJitterMs?: number
}

/** The settings the model passes through from the config and test knobs. @internal */
export type BlockSettings = Pick<
  BlockManagerOptions,
  | 'ramBufferMax'
  | 'maxConcurrentReads'
  | 'resyncDelayMsec'
  | 'resyncRetryDelayMsec'
  | 'disableScrub'
  | 'scrubIntervalMs'
  | 'scrubJitterMs'
>

/** Block files and resync state of this node, for stats. @internal */
export interface BlockManagerStats {
  bytesWritten: number
  bytesRead: number
  rcEntries: number
  resyncQueueLength: number
  resyncErrors: number
  corruptionsDetected: number
}

/** @internal */
export class BlockManager {
  readonly paths: BlockPaths
  readonly db: Db
  readonly rc: BlockRc
  readonly resync: BlockResync
  readonly #metrics = new BlockMetrics()
  readonly #store: LocalBlockStore
  readonly #replication: BlockReplication
  readonly #control: ResyncControl

  constructor(options: BlockManagerOptions) {
    if (options.paths === undefined && options.dataDir === undefined) {
      throw new GarageError('GARAGE_ERR_INVALID_CONFIG', 'the block manager needs `paths` or `dataDir`')
    }
    this.paths = options.paths ?? new SingleDirPaths(options.dataDir as string)
    this.db = options.db
    const log = options.log
    const resyncDelayMsec = options.resyncDelayMsec ?? 180_000
    this.resync = new BlockResync({
      db: options.db,
      log,
      ...(options.resyncRetryDelayMsec === undefined ? {} : { retryDelayMs: options.resyncRetryDelayMsec }),
    })
    this.rc = new BlockRc(options.db.openTree('block_local_rc'), options.gcDelayMsec, {
      // Just after the delay, so the check finds it passed.
      onZero: (tx, hash, at) => this.resync.schedule(tx, hash, at + 1),
      // Urgent: a block referenced here for the first time may be missing (a block_ref synced
      // to a node back from a crash or a partition); checked before any backlog.
      onFirstRef: (tx, hash) => this.resync.schedule(tx, hash, Date.now() + resyncDelayMsec, true),
    })
    // Iterated to its end (or broken out of), never left half-read: an lmdb range iterator left
    // open keeps its read snapshot, and lmdb can then reuse no page freed after it for the
    // process's whole life (the file grew to 4-5 times its pages in use, issue 21).
    let hadRefsAtStart = false
    for (const _ of this.rc.tree.range({ limit: 1 })) {
      hadRefsAtStart = true
      break
    }
    this.#store = new LocalBlockStore({
      paths: this.paths,
      fsync: options.fsync,
      log,
      metrics: this.#metrics,
      touchExisting: (hash) => this.rc.state(hash).kind !== 'present',
      // A PUT of several blocks references them before writing them (`counted`): a count of 1
      // is that reference alone. A block written with its rows (one-round writes) is referenced
      // after it is written: only a block with no count at all is new.
      isNew: (hash, counted) => (counted ? this.rc.get(hash) === 1 : this.rc.state(hash).kind === 'absent'),
      onCorrupt: (hash) => this.resync.put(hash, Date.now(), true),
      ...(options.maxConcurrentReads === undefined ? {} : { maxConcurrentReads: options.maxConcurrentReads }),
    })
    this.#replication = new BlockReplication({
      store: this.#store,
      rc: this.rc,
      ...(options.cluster === undefined ? {} : { cluster: options.cluster }),
      ...(options.ramBufferMax === undefined ? {} : { ramBufferMax: options.ramBufferMax }),
      rpcTimeoutMs: options.rpcTimeoutMs ?? 300_000,
      log,
      metrics: this.#metrics,
      // Called only once requests arrive, after #control is set below.
      events: { missed: (hash) => this.#control.missed(hash), received: (hash) => this.#control.received(hash) },
    })
    this.#control = new ResyncControl({
      db: options.db,
      store: this.#store,
      replication: this.#replication,
      rc: this.rc,
      resync: this.resync,
      log,
      gcDelayMsec: options.gcDelayMsec,
      resyncDelayMsec,
      hadRefsAtStart,
      ...(options.disableScrub === undefined ? {} : { disableScrub: options.disableScrub }),
      ...(options.scrubIntervalMs === undefined ? {} : { scrubIntervalMs: options.scrubIntervalMs }),
      ...(options.scrubJitterMs === undefined ? {} : { scrubJitterMs: options.scrubJitterMs }),
    })
  }

  /** The primary path of a block (where a new copy is written). */
  blockPath(hash: Hash): string {
    return this.#store.primaryPath(hash)
  }

  /** Increments the reference count of `hash` (called from block_ref's updated hook). */
  incref(tx: Transaction, hash: Hash): void {
    this.rc.incref(tx, hash)
  }

  decref(tx: Transaction, hash: Hash): void {
    this.rc.decref(tx, hash)
  }

  /** Garage's resync tranquility (persisted): idle this many times each step's duration. */
  get resyncTranquility(): number {
    return this.resync.tranquility
  }
  set resyncTranquility(n: number) {
    this.resync.tranquility = n
  }

  // ---- writing and reading (replication.ts, store.ts) --------------------------------------------

  /**
   * Stores a block: locally on a lone node; on a cluster, on the block's storage nodes (this
   * one included if listed), returning once a write quorum has it while the other copies finish
   * in the background. The caller references the block (block_ref) before calling this, so the
   * resync cannot delete it concurrently. Identical blocks are stored once.
   * @throws QuorumError when the write quorum cannot be reached.
   */
  putBlock(hash: Hash, data: Uint8Array): Promise<void> {
    return this.#replication.put(hash, data)
  }

  /**
   * Stores a block together with the table rows that must not exist anywhere without it (see
   * BlockReplication.putWithRows): undefined, having sent nothing, when the rows do not go to
   * exactly the block's storage nodes.
   * @throws QuorumError when the write quorum cannot be reached.
   */
  putBlockWithRows(hash: Hash, data: Uint8Array, planned: PlannedBatch): Promise<Map<string, Uint8Array[]> | undefined> {
    return this.#replication.putWithRows(hash, data, planned)
  }

  /** Merges the rows that come with a block (set by the node once its tables exist). @internal */
  set rowsHandler(fn: ((rows: TableBatchRequest, local?: LocalWrites) => Uint8Array[]) | undefined) {
    this.#replication.rowsHandler = fn
  }

  /**
   * Reads a block, verified: the local copy when present and sound, else (on a cluster) from
   * the nodes that may hold it, closest first. A corrupt local copy is moved aside and queued
   * to be fetched again.
   * `sizeGuess`, the block's size if known (its version row), reads the local copy in fewer
   * steps; a wrong guess only costs time.
   * @throws CorruptDataError (lone node) when the local copy is corrupt; QuorumError when no
   * node returned it.
   */
  getBlock(hash: Hash, sizeGuess?: number): Promise<Buffer> {
    return this.#replication.get(hash, 'normal', sizeGuess)
  }

  /** True when a local copy exists (not verified). */
  hasBlock(hash: Hash): Promise<boolean> {
    return this.#store.has(hash)
  }

  /**
   * Runs `fn` while no other write, move or delete of `hash` runs on this node (the per-hash
   * lock every block file change takes; `garage repair rebalance` uses it too).
   */
  withBlockLock<T>(hash: Hash, fn: () => Promise<T>): Promise<T> {
    return this.#store.withLock(hash, fn)
  }

  // ---- resync, repair and admin info (resync-control.ts) -----------------------------------------

  /**
   * @internal Brings the local state of a block in line with its references and the layout
   * (Garage's `resync_block`); see {@link ResyncControl.resyncBlock}.
   */
  async resyncBlock(hash: Hash): Promise<void> {
    await this.#control.resyncBlock(hash)
  }

  /** Every block in a resync error state, with its reference count. */
  listErrors(): Array<BlockResyncErrorInfo & { refcount: number }> {
    return this.#control.listErrors()
  }

  /** What this node knows of a block (`garage block info`). */
  blockInfo(hash: Hash): Promise<BlockInfo> {
    return this.#control.blockInfo(hash)
  }

  /** Retries errored blocks now (`garage block retry-now`); returns how many were queued. */
  retryNow(hashes: readonly Hash[] | 'all'): number {
    return this.resync.retryNow(hashes)
  }

  /** Forgets the error state of a block (after `garage block purge`). */
  clearError(hash: Hash): boolean {
    return this.resync.clearError(hash)
  }

  /**
   * Queues every block this node references or holds (`garage repair blocks`): the rc tree, then
   * the files of every data directory. Returns how many entries were queued.
   */
  queueAll(signal?: AbortSignal): Promise<number> {
    return this.#control.queueAll(signal)
  }

  /** @internal Verifies one block file for the scrub. */
  scrubFile(hash: Hash, path: string): Promise<ScrubCheck> {
    return this.#store.check(hash, path)
  }

  /** The scrub worker, if it runs (`disable_scrub` unset and workers spawned). */
  get scrub(): ScrubWorker | undefined {
    return this.#control.scrub
  }

  /** Scrub commands (`garage repair scrub start|pause|resume|cancel`). @throws ModelError when refused. */
  scrubCommand(cmd: 'start' | 'pause' | 'resume' | 'cancel', pauseMs?: number): void {
    this.#control.scrubCommand(cmd, pauseMs)
  }

  scrubStatus(): ScrubStatus | undefined {
    return this.#control.scrubStatus()
  }

  /**
   * The block workers: a start-up check (data directory markers, stale temporary files), the
   * resync workers (1..8, only `resync-worker-count` of them active) and the scrub.
   */
  workers(): Worker[] {
    return this.#control.workers()
  }

  /** @internal Consumes the "layout changed" flag. */
  takeLayoutChange(): boolean {
    return this.#control.takeLayoutChange()
  }

  /** @internal */
  waitLayoutChange(signal: AbortSignal): Promise<void> {
    return this.#control.waitLayoutChange(signal)
  }

  /** @deprecated Use {@link workers}; kept for callers spawning only the first resync worker. */
  resyncWorker(): Worker {
    return this.resync.worker(0, this.#control)
  }

  /**
   * Start-up checks: a data directory without its marker file while metadata references blocks
   * was wiped or replaced, so every referenced block is queued to be fetched back; then the
   * marker is written. Temporary files left by an interrupted write are removed.
   */
  startupCheck(signal?: AbortSignal): Promise<void> {
    return this.#control.startupCheck(signal)
  }

  stats(): BlockManagerStats {
    return {
      bytesWritten: this.#metrics.bytesWritten,
      bytesRead: this.#metrics.bytesRead,
      rcEntries: this.rc.tree.count(),
      resyncQueueLength: this.resync.length(),
      resyncErrors: this.resync.erroredCount(),
      corruptionsDetected: this.#metrics.corruptions,
    }
  }
}
