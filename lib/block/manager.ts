/**
 * Content-addressed block store (port of garage_block::manager): blocks are files named by the
 * BLAKE2 hash of their content, written atomically, counted by references. On a node in a
 * cluster, blocks are written to the nodes of their hash's partition (write quorum, the rest in
 * the background with bounded memory) and read from the closest holder; the resync queue
 * (resync.ts) fetches what this node lacks, offloads what it should no longer hold and deletes
 * unreferenced blocks after `gcDelayMsec`; the scrub (scrub.ts) re-verifies every file.
 */
import { randomBytes } from 'node:crypto'
import { type FileHandle, mkdir, open, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Db, Transaction } from '../db/db.ts'
import type { RpcPriority } from '../net/endpoint.ts'
import type { NetApp } from '../net/netapp.ts'
import { RpcHelper } from '../rpc/rpc-helper.ts'
import { Notify, type Worker, type WorkerState } from '../util/background/worker.ts'
import { blake2sum, bytesEqual, type Hash, toHex } from '../util/data.ts'
import { CorruptDataError, GarageError, QuorumError } from '../util/errors.ts'
import type { Logger } from '../util/logger.ts'
import { type BlockPaths, pathExists, SingleDirPaths } from './layout.ts'
import { BlockRc, isDeletableState, type RcState } from './rc.ts'
import { type BlockResyncErrorInfo, BlockResync, MAX_RESYNC_WORKERS, OneShotWorker } from './resync.ts'
import { type BlockNeedRes, BlockRpcClient, serveBlockRpc } from './rpc.ts'
import { BLOCK_FILE_NAME, type ScrubCheck, type ScrubStatus, ScrubWorker, walkBlockStore } from './scrub.ts'

/** Objects smaller than this are stored inline in the object table (Garage's INLINE_THRESHOLD). */
export const INLINE_THRESHOLD = 3072

/** Default of `block_ram_buffer_max`: bytes held for replicas still receiving a block. */
export const DEFAULT_BLOCK_RAM_BUFFER_MAX = 256 * 1024 * 1024

/** Deadline of one node's answer when a block is fetched from the others (then the next is tried). */
const FETCH_PER_NODE_TIMEOUT_MS = 30_000

/** The marker file written in every data directory at first start. */
export const DATA_DIR_MARKER = 'garage-marker'

/** What the block manager needs to know of the cluster layout (LayoutHelper satisfies it). */
export interface BlockLayoutView {
  /** This node's id. */
  readonly self: string
  /** Nodes that store `hash` in the current layout version (where blocks are written). */
  currentStorageNodesOf(hash: Uint8Array): string[]
  /** Nodes that may hold `hash`: current version first, then older ones. */
  blockReadNodesOf(hash: Uint8Array): string[]
  /** Closest first: this node, same zone, lowest ping. */
  orderByCloseness(nodes: readonly string[]): string[]
  writeQuorum(): number
  /** Called when the current layout version changes. */
  onVersionChange?(cb: () => void): void
  /** Write lock on the current layout version, released when the put is done. */
  lockWrite?(): () => void
}

/** The cluster as the block manager sees it (a subset of the model's ClusterContext). */
export interface BlockCluster {
  netApp: NetApp
  layout: BlockLayoutView
  /** Aborted when the node stops (ends background transfers). */
  signal: AbortSignal
}

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

/** The settings the model passes through from the config and test knobs. */
export type BlockSettings = Pick<
  BlockManagerOptions,
  'ramBufferMax' | 'resyncDelayMsec' | 'resyncRetryDelayMsec' | 'disableScrub' | 'scrubIntervalMs' | 'scrubJitterMs'
>

/** What this node knows of one block (`garage block info`). */
export interface BlockInfo {
  hash: Hash
  refcount: number
  /** Unreferenced, deletable from this time. */
  deletableAt: number | undefined
  /** Local files holding it. */
  paths: string[]
  /** Nodes that should store it in the current layout. */
  storageNodes: string[]
  error: BlockResyncErrorInfo | undefined
}

/** Block files and resync state of this node, for stats. */
export interface BlockManagerStats {
  bytesWritten: number
  bytesRead: number
  rcEntries: number
  resyncQueueLength: number
  resyncErrors: number
  corruptionsDetected: number
}

export class BlockManager {
  readonly paths: BlockPaths
  readonly db: Db
  readonly rc: BlockRc
  readonly resync: BlockResync
  readonly #fsync: boolean
  readonly #log: Logger
  readonly #cluster: BlockCluster | undefined
  readonly #rpc: BlockRpcClient | undefined
  readonly #helper: RpcHelper
  readonly #rpcTimeoutMs: number
  readonly #resyncDelayMsec: number
  readonly #buffer: ByteSemaphore
  readonly #locks = new Map<string, Promise<void>>()
  /** Hex hash → due time of the missing-block checks queued by reads. */
  readonly #checksPending = new Map<string, number>()
  readonly #knownDirs = new Set<string>()
  readonly #startedAt = Date.now()
  /** Metadata referenced blocks when this manager was built (before any new write). */
  readonly #hadRefsAtStart: boolean
  readonly #o: BlockManagerOptions
  #scrub: ScrubWorker | undefined
  /** Set when the layout changed: every block is queued again (offload and fetch). */
  #layoutChanged = false
  readonly #layoutNotify = new Notify()
  #bytesWritten = 0
  #bytesRead = 0
  #corruptions = 0

  constructor(options: BlockManagerOptions) {
    this.#o = options
    if (options.paths === undefined && options.dataDir === undefined) {
      throw new GarageError('GARAGE_ERR_INVALID_CONFIG', 'the block manager needs `paths` or `dataDir`')
    }
    this.paths = options.paths ?? new SingleDirPaths(options.dataDir as string)
    this.db = options.db
    this.#fsync = options.fsync
    this.#log = options.log
    this.#cluster = options.cluster
    this.#rpcTimeoutMs = options.rpcTimeoutMs ?? 300_000
    this.#resyncDelayMsec = options.resyncDelayMsec ?? 180_000
    this.#helper = new RpcHelper({ log: options.log, timeoutMs: this.#rpcTimeoutMs })
    this.#buffer = new ByteSemaphore(options.ramBufferMax ?? DEFAULT_BLOCK_RAM_BUFFER_MAX)
    this.resync = new BlockResync({
      db: options.db,
      log: options.log,
      ...(options.resyncRetryDelayMsec === undefined ? {} : { retryDelayMs: options.resyncRetryDelayMsec }),
    })
    this.rc = new BlockRc(options.db.openTree('block_local_rc'), options.gcDelayMsec, {
      // Just after the delay, so the check finds it passed.
      onZero: (tx, hash, at) => this.resync.schedule(tx, hash, at + 1),
      onFirstRef: (tx, hash) => this.resync.schedule(tx, hash, Date.now() + this.#resyncDelayMsec),
    })
    this.#hadRefsAtStart = this.rc.tree.range({ limit: 1 })[Symbol.iterator]().next().done !== true
    if (options.cluster !== undefined) {
      this.#rpc = new BlockRpcClient(options.cluster.netApp)
      serveBlockRpc(options.cluster.netApp, {
        put: (hash, data) => this.#receive(hash, data),
        get: (hash) => this.#handleGet(hash),
        need: (hash) => this.#handleNeed(hash),
      })
      options.cluster.layout.onVersionChange?.(() => {
        this.#layoutChanged = true
        this.#layoutNotify.notify()
      })
    }
  }

  /** The primary path of a block (where a new copy is written). */
  blockPath(hash: Hash): string {
    return this.paths.primaryPath(hash)
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

  // ---- writing and reading ---------------------------------------------------------------------

  /**
   * Stores a block: locally on a lone node; on a cluster, on the block's storage nodes (this
   * one included if listed), returning once a write quorum has it while the other copies finish
   * in the background. The caller references the block (block_ref) before calling this, so the
   * resync cannot delete it concurrently. Identical blocks are stored once.
   * @throws QuorumError when the write quorum cannot be reached.
   */
  async putBlock(hash: Hash, data: Uint8Array): Promise<void> {
    const cluster = this.#cluster
    if (cluster === undefined) return this.#writeLocal(hash, data)
    const unlock = cluster.layout.lockWrite?.()
    try {
      await this.#putReplicated(cluster, hash, data)
    } finally {
      unlock?.()
    }
  }

  async #putReplicated(cluster: BlockCluster, hash: Hash, data: Uint8Array): Promise<void> {
    const nodes = cluster.layout.currentStorageNodesOf(hash)
    const self = cluster.layout.self
    const size = data.byteLength
    await this.#buffer.acquire(size)
    let pending = nodes.length
    let started = 0
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      this.#buffer.release(size)
    }
    const settled = (): void => {
      if (--pending === 0) release()
    }
    const rpc = this.#rpc as BlockRpcClient
    const call = async (node: string, signal: AbortSignal): Promise<void> => {
      started++
      try {
        if (node === self) await this.#writeLocal(hash, data)
        else await rpc.put(node, hash, data, { priority: 'normal', timeoutMs: this.#rpcTimeoutMs, signal })
      } finally {
        settled()
      }
    }
    try {
      await this.#helper.tryWriteManySets([nodes], cluster.layout.writeQuorum(), call, { signal: cluster.signal })
    } finally {
      // If no call started (aborted first, no nodes), no call will release the bytes.
      if (started === 0) release()
    }
  }

  /**
   * Reads a block, verified: the local copy when present and sound, else (on a cluster) from
   * the nodes that may hold it, closest first. A corrupt local copy is moved aside and queued
   * to be fetched again.
   * @throws CorruptDataError (lone node) when the local copy is corrupt; QuorumError when no
   * node returned it.
   */
  async getBlock(hash: Hash): Promise<Buffer> {
    return this.#getBlock(hash, 'normal')
  }

  async #getBlock(hash: Hash, priority: RpcPriority): Promise<Buffer> {
    const path = await this.#find(hash)
    if (path !== undefined) {
      try {
        const data = await this.#readVerified(hash, path)
        if (data !== undefined) return data
      } catch (err) {
        if (!(err instanceof CorruptDataError) || this.#cluster === undefined) throw err
        this.#log.warn(`${err.message}; reading it from another node`)
      }
    } else if (this.rc.get(hash) > 0) {
      // Referenced but absent: maybe a write still in flight; check later (as Garage does).
      this.#checkLater(hash)
    }
    if (this.#cluster === undefined) {
      throw new GarageError('GARAGE_ERR_INTERNAL', `block ${toHex(hash)} is not stored on this node`)
    }
    return this.#fetchRemote(hash, priority)
  }

  /** True when a local copy exists (not verified). */
  async hasBlock(hash: Hash): Promise<boolean> {
    return (await this.#find(hash)) !== undefined
  }

  /** Fetches a block from the other nodes that may hold it, closest first. */
  async #fetchRemote(hash: Hash, priority: RpcPriority): Promise<Buffer> {
    const cluster = this.#cluster as BlockCluster
    const self = cluster.layout.self
    const nodes = cluster.layout.orderByCloseness(cluster.layout.blockReadNodesOf(hash)).filter((n) => n !== self)
    const errors: Error[] = []
    for (const node of nodes) {
      if (cluster.signal.aborted) break
      try {
        const data = await (this.#rpc as BlockRpcClient).get(node, hash, {
          priority,
          // One stuck holder must not hold a read for the whole RPC timeout: try the next.
          timeoutMs: Math.min(this.#rpcTimeoutMs, FETCH_PER_NODE_TIMEOUT_MS),
          signal: cluster.signal,
        })
        this.#bytesRead += data.byteLength
        return data
      } catch (err) {
        errors.push(err as Error)
        this.#log.debug(`block ${toHex(hash)} not read from node ${node.slice(0, 16)}: ${(err as Error).message}`)
      }
    }
    throw new QuorumError(1, 0, errors.length > 0 ? errors : [new Error(`no other node may hold block ${toHex(hash)}`)])
  }

  /** Writes a block under its primary path, unless a copy is there already; moves a copy found elsewhere. */
  async #writeLocal(hash: Hash, data: Uint8Array): Promise<void> {
    await this.#withLock(hash, async () => {
      const path = this.paths.primaryPath(hash)
      const existing = await this.#find(hash)
      if (existing === path) {
        // A copy nothing references here (an orphan, or one past its deletion delay) now counts
        // for a new write: restart its grace period so resync does not delete it before the
        // block_ref rows of that write arrive.
        if (this.rc.state(hash).kind !== 'present') {
          const now = new Date()
          await utimes(path, now, now)
        }
        return
      }
      const tmp = `${path}.tmp${randomBytes(4).toString('hex')}`
      const fh = await this.#openInDir(path, tmp)
      try {
        try {
          await fh.writeFile(data)
          if (this.#fsync) await fh.sync()
        } finally {
          await fh.close()
        }
        await rename(tmp, path)
      } catch (err) {
        await rm(tmp, { force: true })
        throw err
      }
      if (this.#fsync) await fsyncDir(dirname(path))
      if (existing !== undefined) await rm(existing, { force: true })
      this.#bytesWritten += data.byteLength
    })
  }

  /**
   * Reads and verifies the file at `path`. Undefined when it vanished. A corrupt file is renamed
   * `<path>.corrupted` and the block queued for resync.
   * @throws CorruptDataError when corrupt.
   */
  async #readVerified(hash: Hash, path: string): Promise<Buffer | undefined> {
    let data: Buffer
    try {
      data = await readFile(path)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
    this.#bytesRead += data.byteLength
    if (bytesEqual(blake2sum(data), hash)) return data
    this.#corruptions++
    await this.#withLock(hash, async () => {
      try {
        await rename(path, `${path}.corrupted`)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
    })
    this.resync.put(hash, Date.now())
    this.#log.warn(`block ${toHex(hash)} is corrupted on disk (${path}): moved to .corrupted and queued for resync`)
    throw new CorruptDataError(`block ${toHex(hash)} is corrupted on disk (${path})`)
  }

  /** The first candidate path holding the block. */
  async #find(hash: Hash): Promise<string | undefined> {
    for (const p of this.paths.candidatePaths(hash)) if (await pathExists(p)) return p
    return undefined
  }

  async #findAll(hash: Hash): Promise<string[]> {
    const out: string[] = []
    for (const p of this.paths.candidatePaths(hash)) if (await pathExists(p)) out.push(p)
    return out
  }

  // ---- RPC handlers ------------------------------------------------------------------------------

  async #handleGet(hash: Hash): Promise<Buffer> {
    const path = await this.#find(hash)
    const data = path === undefined ? undefined : await this.#readVerified(hash, path)
    if (data !== undefined) return data
    // Not here although asked: maybe we should have it; check later (Garage does the same).
    if (this.rc.get(hash) > 0) this.#checkLater(hash)
    throw new GarageError('GARAGE_ERR_INTERNAL', `block ${toHex(hash)} is not stored on this node`)
  }

  /**
   * Stores a block another node sent. One that nothing references here yet (its block_ref has
   * not arrived, or it was a late copy of a block already collected) is checked again after the
   * GC delay, so it is deleted if no reference ever comes instead of staying as an orphan file.
   */
  async #receive(hash: Hash, data: Uint8Array): Promise<void> {
    await this.#writeLocal(hash, data)
    if (this.rc.state(hash).kind !== 'present') this.resync.put(hash, Date.now() + this.#o.gcDelayMsec + 1)
  }

  async #handleNeed(hash: Hash): Promise<BlockNeedRes> {
    const present = (await this.#find(hash)) !== undefined
    const referenced = this.rc.get(hash) > 0
    return { needed: !present && referenced, present, referenced }
  }

  // ---- resync ------------------------------------------------------------------------------------

  #storageNodesOf(hash: Hash): string[] {
    const c = this.#cluster
    return c === undefined ? [] : c.layout.currentStorageNodesOf(hash)
  }

  #isStorageNode(hash: Hash): boolean {
    const c = this.#cluster
    return c === undefined || c.layout.currentStorageNodesOf(hash).includes(c.layout.self)
  }

  /**
   * @internal Brings the local state of a block in line with its references and the layout
   * (Garage's `resync_block`): an unreferenced block past its delay is handed to the storage
   * nodes that need it, then deleted; a referenced block this node no longer stores is handed
   * to the storage nodes lacking it, then deleted; a referenced block this node should store
   * but lacks is fetched.
   */
  async resyncBlock(hash: Hash): Promise<void> {
    const now = Date.now()
    const path = await this.#find(hash)
    const rc = this.rc.state(hash)
    if (path !== undefined && rc.kind !== 'present') {
      // A block that arrived before its reference (replication, offload), or was written again
      // after its count dropped, gets the grace delay, from its file's time, before it may go.
      const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined
        throw err
      })
      if (st === undefined) return // deleted meanwhile
      const age = now - st.mtimeMs
      if (age < this.#o.gcDelayMsec) {
        this.resync.put(hash, now + this.#o.gcDelayMsec - age + 1)
        return
      }
    }
    if (path !== undefined && isDeletableState(rc, now)) {
      await this.#offload(hash, path, 'needed')
      await this.#deleteIf(hash, (s) => isDeletableState(s, now))
      return
    }
    if (path !== undefined && rc.kind === 'present' && !this.#isStorageNode(hash)) {
      await this.#offload(hash, path, 'absent')
      // Keep our copy until every current holder has the block and references it: until the
      // block_ref rows have moved too, a holder that only received the block could still drop it
      // as unreferenced. Once our own rows are handed over, the count drops and the deletable
      // branch above finishes the job.
      if (!(await this.#allHoldersReference(hash))) {
        this.resync.put(hash, now + Math.max(this.#resyncDelayMsec, 1_000))
        return
      }
      await this.#deleteIf(hash, (s) => s.kind !== 'present' || !this.#isStorageNode(hash))
      return
    }
    if (path === undefined && rc.kind === 'deletable' && rc.at <= now) {
      this.db.transaction((tx) => this.rc.clearDeletable(tx, hash, now))
      return
    }
    if (path === undefined && rc.kind === 'present' && this.#isStorageNode(hash)) {
      if (this.#cluster === undefined) {
        throw new GarageError('GARAGE_ERR_INTERNAL', `referenced block ${toHex(hash)} is missing and no other node has it`)
      }
      this.#log.info(`fetching missing block ${toHex(hash)}`)
      const data = await this.#fetchRemote(hash, 'background')
      await this.#writeLocal(hash, data)
    }
  }

  /**
   * Sends a local block to the other storage nodes: those that `need` it (referenced, absent),
   * or in mode 'absent' every one lacking it. Throws unless each of them answered and took it.
   */
  async #offload(hash: Hash, path: string, mode: 'needed' | 'absent'): Promise<void> {
    const cluster = this.#cluster
    if (cluster === undefined) return
    const self = cluster.layout.self
    const storage = this.#storageNodesOf(hash)
    const who = storage.filter((n) => n !== self)
    if (who.length === 0) return
    if (storage.length < cluster.layout.writeQuorum()) {
      throw new GarageError('GARAGE_ERR_INTERNAL', 'not offloading: too few storage nodes in the layout')
    }
    const rpc = this.#rpc as BlockRpcClient
    const opts = { priority: 'background' as const, timeoutMs: this.#rpcTimeoutMs, signal: cluster.signal }
    const answers = await Promise.all(who.map(async (node) => ({ node, r: await rpc.need(node, hash, opts) })))
    const to = answers.filter(({ r }) => (mode === 'needed' ? r.needed : !r.present)).map(({ node }) => node)
    if (to.length === 0) return
    const data = await this.#readVerified(hash, path)
    if (data === undefined) throw new GarageError('GARAGE_ERR_INTERNAL', `block ${toHex(hash)} vanished while offloading`)
    await Promise.all(to.map((node) => rpc.put(node, hash, data, opts)))
    this.#log.info(`offloaded block ${toHex(hash)} to ${to.length} node(s)`)
  }

  /**
   * Queues a check of a referenced block found missing by a read, once per resync delay: reads
   * of a hot object that is not here yet must not add a queue entry each.
   */
  #checkLater(hash: Hash): void {
    const key = toHex(hash)
    const now = Date.now()
    const due = this.#checksPending.get(key)
    if (due !== undefined && due > now) return
    if (this.#checksPending.size >= 10_000) {
      for (const [k, d] of this.#checksPending) if (d <= now) this.#checksPending.delete(k)
      if (this.#checksPending.size >= 10_000) this.#checksPending.clear()
    }
    this.#checksPending.set(key, now + this.#resyncDelayMsec)
    this.resync.put(hash, now + this.#resyncDelayMsec)
  }

  /** Whether every current storage node of `hash` (but us) has a copy and references it. */
  async #allHoldersReference(hash: Hash): Promise<boolean> {
    const cluster = this.#cluster
    if (cluster === undefined) return false
    const self = cluster.layout.self
    const rpc = this.#rpc as BlockRpcClient
    const opts = { priority: 'background' as const, timeoutMs: this.#rpcTimeoutMs, signal: cluster.signal }
    const who = this.#storageNodesOf(hash).filter((n) => n !== self)
    if (who.length === 0) return false
    const answers = await Promise.all(who.map((node) => rpc.need(node, hash, opts)))
    return answers.every((r) => r.present && r.referenced === true)
  }

  /** Deletes every local copy if `still(rc)` holds under the block's lock, and clears its rc entry. */
  async #deleteIf(hash: Hash, still: (s: RcState) => boolean): Promise<void> {
    await this.#withLock(hash, async () => {
      if (!still(this.rc.state(hash))) return
      for (const p of await this.#findAll(hash)) await rm(p, { force: true })
      const now = Date.now()
      this.db.transaction((tx) => this.rc.clearDeletable(tx, hash, now))
      this.#log.debug(`deleted block ${toHex(hash)}`)
    })
  }

  /** Every block in a resync error state, with its reference count. */
  listErrors(): Array<BlockResyncErrorInfo & { refcount: number }> {
    return this.resync.listErrors().map((e) => ({ ...e, refcount: this.rc.get(e.hash) }))
  }

  /** What this node knows of a block (`garage block info`). */
  async blockInfo(hash: Hash): Promise<BlockInfo> {
    const rc = this.rc.state(hash)
    return {
      hash,
      refcount: rc.kind === 'present' ? rc.count : 0,
      deletableAt: rc.kind === 'deletable' ? rc.at : undefined,
      paths: await this.#findAll(hash),
      storageNodes: this.#cluster === undefined ? [] : this.#storageNodesOf(hash),
      error: this.resync.errorOf(hash),
    }
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
  async queueAll(signal?: AbortSignal): Promise<number> {
    const now = Date.now()
    let n = 0
    let batch: Hash[] = []
    const flush = (): void => {
      this.resync.putMany(batch, now)
      n += batch.length
      batch = []
    }
    let start: Uint8Array | undefined
    for (;;) {
      let last: Uint8Array | undefined
      for (const [k] of this.rc.tree.range({ ...(start === undefined ? {} : { start }), limit: 1000 })) {
        if (start !== undefined && bytesEqual(k, start)) continue
        last = Uint8Array.from(k)
        batch.push(last)
      }
      flush()
      if (last === undefined || signal?.aborted === true) break
      start = last
      await new Promise<void>((r) => setImmediate(r))
    }
    for await (const f of walkBlockStore(this.paths.dirs)) {
      if (signal?.aborted === true) break
      if (!BLOCK_FILE_NAME.test(f.name)) continue
      batch.push(Buffer.from(f.name, 'hex'))
      if (batch.length >= 1000) flush()
    }
    flush()
    this.#log.info(`queued ${n} block(s) for resync`)
    return n
  }

  // ---- scrub -------------------------------------------------------------------------------------

  /** @internal Verifies one block file for the scrub. */
  async scrubFile(hash: Hash, path: string): Promise<ScrubCheck> {
    try {
      return (await this.#readVerified(hash, path)) === undefined ? 'missing' : 'ok'
    } catch (err) {
      if (err instanceof CorruptDataError) return 'corrupt'
      throw err
    }
  }

  /** The scrub worker, if it runs (`disable_scrub` unset and workers spawned). */
  get scrub(): ScrubWorker | undefined {
    return this.#scrub
  }

  /** Scrub commands (`garage repair scrub start|pause|resume|cancel`). @throws ModelError when refused. */
  scrubCommand(cmd: 'start' | 'pause' | 'resume' | 'cancel', pauseMs?: number): void {
    const s = this.#scrub
    if (s === undefined) throw new GarageError('GARAGE_ERR_INTERNAL', 'the scrub worker is not running (disable_scrub?)')
    if (cmd === 'start') s.start()
    else if (cmd === 'pause') s.pause(pauseMs)
    else if (cmd === 'resume') s.resume()
    else s.cancel()
  }

  scrubStatus(): ScrubStatus | undefined {
    return this.#scrub?.status()
  }

  // ---- workers -----------------------------------------------------------------------------------

  /**
   * The block workers: a start-up check (data directory markers, stale temporary files), the
   * resync workers (1..8, only `resync-worker-count` of them active) and the scrub.
   */
  workers(): Worker[] {
    const out: Worker[] = [new OneShotWorker('block startup check', (signal) => this.startupCheck(signal))]
    for (let i = 0; i < MAX_RESYNC_WORKERS; i++) out.push(this.resync.worker(i, this))
    if (this.#cluster !== undefined) out.push(new LayoutChangeWorker(this))
    if (this.#o.disableScrub !== true) {
      this.#scrub ??= new ScrubWorker({
        db: this.db,
        dirs: this.paths.dirs,
        check: (hash, path) => this.scrubFile(hash, path),
        log: this.#log.withTag('scrub'),
        ...(this.#o.scrubIntervalMs === undefined ? {} : { intervalMs: this.#o.scrubIntervalMs }),
        ...(this.#o.scrubJitterMs === undefined ? {} : { jitterMs: this.#o.scrubJitterMs }),
      })
      out.push(this.#scrub)
    }
    return out
  }

  /** @internal Consumes the "layout changed" flag. */
  takeLayoutChange(): boolean {
    const v = this.#layoutChanged
    this.#layoutChanged = false
    return v
  }

  /** @internal */
  waitLayoutChange(signal: AbortSignal): Promise<void> {
    return this.#layoutNotify.wait(signal, 60_000)
  }

  /** @deprecated Use {@link workers}; kept for callers spawning only the first resync worker. */
  resyncWorker(): Worker {
    return this.resync.worker(0, this)
  }

  /**
   * Start-up checks: a data directory without its marker file while metadata references blocks
   * was wiped or replaced, so every referenced block is queued to be fetched back; then the
   * marker is written. Temporary files left by an interrupted write are removed.
   */
  async startupCheck(signal?: AbortSignal): Promise<void> {
    let wiped = false
    // Read-only directories (a multi-directory layout lists them) are never written.
    const writable = (this.paths as { readonly writableDirs?: readonly string[] }).writableDirs ?? this.paths.dirs
    for (const dir of writable) {
      const marker = join(dir, DATA_DIR_MARKER)
      if (await pathExists(marker)) continue
      if (this.#hadRefsAtStart) {
        this.#log.warn(
          `data directory ${dir} has no ${DATA_DIR_MARKER} file although blocks are referenced: it was wiped or replaced; queueing every block for resync`,
        )
        wiped = true
      }
      await mkdir(dir, { recursive: true })
      await writeFile(marker, 'This file marks a Garage data directory; do not delete it.\n')
    }
    if (wiped) await this.queueAll(signal)
    let swept = 0
    for await (const f of walkBlockStore(this.paths.dirs)) {
      if (signal?.aborted === true) return
      if (!f.name.includes('.tmp')) continue
      const st = await stat(f.path).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined
        throw err
      })
      // Files younger than this process may be writes in progress.
      if (st === undefined || st.mtimeMs >= this.#startedAt) continue
      await rm(f.path, { force: true })
      swept++
    }
    if (swept > 0) this.#log.info(`removed ${swept} temporary block file(s) left by an interrupted write`)
  }

  stats(): BlockManagerStats {
    return {
      bytesWritten: this.#bytesWritten,
      bytesRead: this.#bytesRead,
      rcEntries: this.rc.tree.count(),
      resyncQueueLength: this.resync.length(),
      resyncErrors: this.resync.erroredCount(),
      corruptionsDetected: this.#corruptions,
    }
  }

  /**
   * Opens a new block file for writing. Its directory is created the first time this manager
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

  /**
   * Runs `fn` while no other write, move or delete of `hash` runs on this node (the per-hash
   * lock every block file change takes; `garage repair rebalance` uses it too).
   */
  withBlockLock<T>(hash: Hash, fn: () => Promise<T>): Promise<T> {
    return this.#withLock(hash, fn)
  }

  async #withLock<T>(hash: Hash, fn: () => Promise<T>): Promise<T> {
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
}

/**
 * After a layout change, queues every block for resync so this node fetches the blocks it now
 * stores and offloads those it no longer does (Garage gets there through table sync and
 * `garage repair blocks`; doing it at once moves blocks without an operator).
 */
class LayoutChangeWorker implements Worker {
  readonly name = 'block layout change'
  readonly #m: BlockManager
  constructor(m: BlockManager) {
    this.#m = m
  }
  async work(signal: AbortSignal): Promise<WorkerState> {
    if (this.#m.takeLayoutChange()) await this.#m.queueAll(signal)
    return 'idle'
  }
  waitForWork(signal: AbortSignal): Promise<void> {
    return this.#m.waitLayoutChange(signal)
  }
}

/** Bytes of block data held for replicas (Garage's `buffer_kb_semaphore`). */
class ByteSemaphore {
  readonly #max: number
  #used = 0
  readonly #waiters: Array<{ n: number; go: () => void }> = []
  constructor(max: number) {
    this.#max = Math.max(1, max)
  }
  /** Waits until `n` bytes (at most the whole budget) fit. */
  async acquire(n: number): Promise<void> {
    const want = Math.min(n, this.#max)
    if (this.#waiters.length === 0 && this.#used + want <= this.#max) {
      this.#used += want
      return
    }
    await new Promise<void>((go) => this.#waiters.push({ n: want, go }))
  }
  release(n: number): void {
    this.#used -= Math.min(n, this.#max)
    while (this.#waiters.length > 0) {
      const w = this.#waiters[0] as { n: number; go: () => void }
      if (this.#used + w.n > this.#max) break
      this.#waiters.shift()
      this.#used += w.n
      w.go()
    }
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
