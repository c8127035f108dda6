/**
 * Anti-entropy of a table (port of garage_table::sync). A {@link TableSyncer} worker walks every
 * partition of the table, in random order:
 * - for a partition this node stores, it compares its Merkle root with each other holder's,
 *   walks down the nodes that differ and pushes its items there (push only, as Garage: each
 *   holder's own sync pushes what it has that we lack);
 * - for a partition this node no longer stores but still holds items of, it hands them over to
 *   every holder (all must acknowledge), then deletes them locally if they did not change.
 *
 * A full pass runs every `replication.antiEntropyIntervalMs`, at once when the layout version
 * changes, soon after a peer comes up, and on demand ({@link TableSyncer.addFullSync}). A pass
 * in which every partition succeeded reports the layout version it used to the layout helper,
 * which lets old layout versions retire.
 *
 * Unlike Garage (one partition at a time), a pass syncs up to `concurrency` partitions at once:
 * each partition's sync is a few sequential round trips (root, the Merkle nodes that differ, the
 * push), so over 150 ms links a serial pass over a few hundred partitions took a minute, and a
 * node back from a crash got its rows "a few per 5 s" (docs/design/chaos.md).
 * @internal
 */
import { setMaxListeners } from 'node:events'
import type { RpcEndpoint } from '../net/endpoint.ts'
import { defineEndpoint } from '../net/endpoint.ts'
import type { NetApp } from '../net/netapp.ts'
import type { LayoutHelper } from '../rpc/layout/helper.ts'
import { Notify, type Worker, type WorkerState } from '../util/background/worker.ts'
import { bytesEqual, concatBytes } from '../util/data.ts'
import { GarageError, unreachable } from '../util/errors.ts'
import type { Logger } from '../util/logger.ts'
import type { TableData } from './data.ts'
import { TableGc } from './gc.ts'
import { decodeMerkleNode, MerkleUpdater, merkleNodeHash, merkleNodeKey } from './merkle.ts'
import type { NodeId, SyncPartition, TableReplication } from './replication.ts'

/** Messages of the sync protocol. @internal */
export type SyncRequest =
  /** Is your root hash of `partition` different from `hash`? */
  | { op: 'root'; partition: number; hash: Uint8Array }
  /** Your Merkle node at `key` (stored form; null when empty). */
  | { op: 'node'; key: Uint8Array }
  /** Merge these entries (encoded with the table's codec). */
  | { op: 'items'; items: Uint8Array[] }

/** @internal */
export type SyncResponse = { different: boolean } | { node: Uint8Array | null } | { ok: true }

/** The sync endpoint of a table. Never renamed once shipped. @internal */
/** Merkle todo batches folded before each partition's comparison (1,000 items each). */
const MERKLE_FOLD_BATCHES_PER_STEP = 16

export const tableSyncEndpoint = (table: string): RpcEndpoint<SyncRequest, SyncResponse> =>
  defineEndpoint<SyncRequest, SyncResponse>(`table-sync/${table}`)

/** Partitions a pass syncs at once (Garage: 1). */
export const SYNC_CONCURRENCY = 8

/** Items pushed per RPC while syncing (Garage: 256). */
const PUSH_BATCH = 256
/** Items handed over per RPC when offloading a partition (Garage: 1024). */
const OFFLOAD_BATCH = 1024

/** @internal */
export interface TableSyncerOptions<E> {
  data: TableData<E>
  merkle: MerkleUpdater<E>
  replication: TableReplication
  netApp: NetApp
  /** Receives the sync reports; absent: nothing gates on this table. */
  layout?: LayoutHelper
  self: NodeId
  log: Logger
  /** First full pass this long after start. Default min(interval, 20 s). */
  initialDelayMs?: number
  /** Full pass this long after a peer came up. Default 2 s. */
  peerUpDelayMs?: number
  /** Ids of the peers up: a node known down fails its part at once instead of timing out. */
  upPeers?: () => string[]
  /** Partitions synced at once. Default {@link SYNC_CONCURRENCY}. */
  concurrency?: number
}

interface Todo {
  layoutVersion: number
  partitions: SyncPartition[]
  /** Partitions of this pass being synced now. */
  inFlight: number
  /** Partitions in the pass, and when it started (for the debug log). */
  total: number
  started: number
  failed: number
  firstError?: string
}

/** The anti-entropy worker of one table. @internal */
export class TableSyncer<E> implements Worker {
  readonly name: string
  readonly #o: TableSyncerOptions<E>
  readonly #endpoint: RpcEndpoint<SyncRequest, SyncResponse>
  readonly #notify = new Notify()
  #todo: Todo | undefined
  #nextFullSync: number
  #passes = 0
  #failedPartitions = 0
  #registered = false
  /** Sync versions (active layout versions, ack minimum) when the last pass started; a change starts a new pass. */
  #versions = ''

  constructor(o: TableSyncerOptions<E>) {
    this.#o = o
    this.name = `${o.data.schema.tableName} sync`
    this.#endpoint = tableSyncEndpoint(o.data.schema.tableName)
    const interval = o.replication.antiEntropyIntervalMs
    this.#nextFullSync = Date.now() + (o.initialDelayMs ?? Math.min(interval, 20_000))
    this.#versions = this.#activeVersions()
  }

  get tableName(): string {
    return this.#o.data.schema.tableName
  }

  /** Registers the RPC handler and the triggers (layout changes). Call once. */
  register(): void {
    if (this.#registered) return
    this.#registered = true
    this.#o.netApp.handle(this.#endpoint, (req) => this.handle(req))
    this.#o.layout?.registerTable(this.tableName)
    this.#o.layout?.onVersionChange(() => this.addFullSync())
  }

  /** A peer came up: run a full pass soon, so a restarted node converges fast. */
  peerUp(): void {
    this.#nextFullSync = Math.min(this.#nextFullSync, Date.now() + (this.#o.peerUpDelayMs ?? 2_000))
    this.#notify.notify()
  }

  /** Starts a full pass now (replacing one in progress), as Garage's `add_full_sync`. */
  addFullSync(): void {
    this.#versions = this.#activeVersions()
    const { layoutVersion, partitions } = this.#o.replication.syncPartitions()
    this.#todo = {
      layoutVersion,
      partitions: shuffle([...partitions]),
      inFlight: 0,
      total: partitions.length,
      started: Date.now(),
      failed: 0,
    }
    this.#nextFullSync = Date.now() + this.#o.replication.antiEntropyIntervalMs
    this.#notify.notify()
  }

  async work(signal: AbortSignal): Promise<WorkerState> {
    // As Garage (sync digest): an old layout version retiring changes which partitions this node
    // holds; a node that lost some hands them over at once.
    if (this.#activeVersions() !== this.#versions) this.addFullSync()
    if (this.#todo === undefined && Date.now() >= this.#nextFullSync) this.addFullSync()
    if (this.#todo === undefined) return 'idle'
    // Wait for a Merkle rebuild to finish: the pass resumes then (checked at least every second).
    if (this.#o.merkle.rebuilding) return 'idle'
    // The lanes take partitions until the pass is done (or replaced: they go on with the new
    // one), a Merkle rebuild starts, or the worker stops.
    const lanes = Math.max(1, this.#o.concurrency ?? SYNC_CONCURRENCY)
    // The lanes' calls listen on a signal of their own (each call in flight adds a listener:
    // lanes × holders of a partition), so the worker's shared signal keeps Node's leak warning.
    const stop = new AbortController()
    setMaxListeners(lanes * 16, stop.signal)
    const onAbort = (): void => stop.abort(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      await Promise.all(Array.from({ length: lanes }, () => this.#lane(stop.signal)))
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
    const todo = this.#todo
    if (todo === undefined || todo.partitions.length > 0 || todo.inFlight > 0) return 'idle'
    this.#todo = undefined
    this.#passes++
    this.#o.log.debug(`sync pass of ${this.tableName}: ${todo.total} partition(s) in ${Date.now() - todo.started} ms`)
    if (todo.failed > 0) {
      this.#o.log.warn(`sync pass of ${this.tableName}: ${todo.failed} partition(s) failed, e.g. ${todo.firstError}`)
    } else if (!signal.aborted) {
      this.#o.layout?.markTableSynced(this.tableName, todo.layoutVersion)
    }
    return 'idle'
  }

  /** One of the pass's lanes: syncs partitions one after the other while the pass has some. */
  async #lane(signal: AbortSignal): Promise<void> {
    for (;;) {
      if (signal.aborted || this.#o.merkle.rebuilding) return
      if (this.#activeVersions() !== this.#versions) this.addFullSync()
      const todo = this.#todo
      if (todo === undefined) return
      // Writes not folded into the Merkle trees yet would be invisible to the comparison: fold
      // what is pending first (bounded, so a write storm cannot stall the pass).
      this.#foldPending()
      const p = todo.partitions.pop()
      if (p === undefined) return
      todo.inFlight++
      try {
        await this.syncPartition(p, signal)
      } catch (err) {
        // Counted and reported once per pass: the pass is then not reported as complete to the
        // layout, and the next pass retries the partition.
        todo.failed++
        todo.firstError ??= `partition ${p.partition}: ${(err as Error).message}`
        this.#failedPartitions++
        this.#o.log.debug(`sync of ${this.tableName} partition ${p.partition} failed: ${(err as Error).message}`)
      } finally {
        todo.inFlight--
      }
    }
  }

  waitForWork(signal: AbortSignal): Promise<void> {
    // Wakes at least every second to notice a retired layout version (no event for it).
    const untilNext = Math.max(1, this.#nextFullSync - Date.now())
    return this.#notify.wait(signal, this.#o.layout === undefined ? untilNext : Math.min(untilNext, 1_000))
  }

  /**
   * Garage's sync versions: the active layout versions and the lowest acknowledged one. A change
   * of either starts a new pass (a retirement changes what this node holds; a higher ack minimum
   * lets the next pass report a newer version).
   */
  #activeVersions(): string {
    const layout = this.#o.layout
    if (layout === undefined) return ''
    return `${layout
      .history()
      .versions.map((v) => v.version)
      .join(',')}/${layout.ackMapMin()}`
  }

  info(): Record<string, number> {
    return {
      partitionsLeft: this.#todo?.partitions.length ?? 0,
      passes: this.#passes,
      failedPartitions: this.#failedPartitions,
      nextFullSyncInMs: Math.max(0, this.#nextFullSync - Date.now()),
    }
  }

  /** Folds up to MERKLE_FOLD_BATCHES_PER_STEP batches of the pending Merkle todo. */
  #foldPending(): void {
    for (let i = 0; i < MERKLE_FOLD_BATCHES_PER_STEP && this.#o.merkle.updateBatch() > 0; i++);
  }

  /** Answers a peer's sync request. */
  handle(req: SyncRequest): SyncResponse {
    switch (req.op) {
      case 'root':
        // The asker folded its pending writes before comparing (#lane); so does this side, or
        // the writes of the last gathering second (MERKLE_GATHER_MSEC) would show as differences
        // and be sent again for nothing.
        this.#foldPending()
        return { different: !bytesEqual(this.#o.merkle.rootHash(req.partition), req.hash) }
      case 'node':
        return { node: this.#o.merkle.readNodeRaw(req.key) ?? null }
      case 'items':
        this.#o.data.updateManyRaw(req.items)
        return { ok: true }
      default:
        throw unreachable(req)
    }
  }

  /** Syncs one partition: with its other holders, or hands it over if we are not one. */
  async syncPartition(p: SyncPartition, signal: AbortSignal): Promise<void> {
    // A tree being rebuilt does not cover every item: comparing it would skip some, and the pass
    // would then be reported complete. Fail this partition; the next pass retries it.
    if (this.#o.merkle.rebuilding) throw new Error('the Merkle tree is being rebuilt')
    const self = this.#o.self
    if (p.storageSets.some((s) => s.includes(self))) {
      const others = [...new Set(p.storageSets.flat())].filter((n) => n !== self)
      const up = this.#upFilter()
      const results = await Promise.allSettled(
        others.map((n) => (up(n) ? this.#syncWith(p.partition, n, signal) : Promise.reject(nodeDown(n)))),
      )
      const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason)
      if (failures.length > 0) {
        throw new GarageError('GARAGE_ERR_REMOTE', `sync failed with ${failures.length} of ${others.length} nodes`, {
          cause: new AggregateError(failures),
        })
      }
    } else {
      await this.#offload(p, signal)
    }
  }

  /** Whether a node may be called (ourselves, or a peer not known to be down). */
  #upFilter(): (n: NodeId) => boolean {
    const list = this.#o.upPeers?.()
    if (list === undefined) return () => true
    const up = new Set(list)
    return (n) => n === this.#o.self || up.has(n)
  }

  async #call(node: NodeId, req: SyncRequest, signal: AbortSignal): Promise<SyncResponse> {
    return this.#o.netApp.call(node, this.#endpoint, req, { priority: 'background', signal })
  }

  /** Compares our tree of `partition` with `who`'s and pushes the items that differ. */
  async #syncWith(partition: number, who: NodeId, signal: AbortSignal): Promise<void> {
    const merkle = this.#o.merkle
    const rootKey = merkleNodeKey(partition)
    const rootRaw = merkle.readNodeRaw(rootKey)
    // Nothing to push; what they have that we lack, their own sync pushes to us.
    if (rootRaw === undefined) return
    const r = await this.#call(who, { op: 'root', partition, hash: merkleNodeHash(rootRaw) }, signal)
    if (!('different' in r)) throw badAnswer('root', who)
    if (!r.different) return
    // `missing`: their tree has nothing under this prefix (their parent node lacks the child), so
    // the whole subtree is pushed without asking for their nodes: a joining node costs one
    // round trip per pushed page instead of one per intermediate node of ours.
    // Depth first (a stack): what is pending stays within depth × 256 keys, where a breadth-first
    // queue would hold a level of the tree (up to every leaf of a partition of millions of items,
    // e.g. one bucket's object rows) and shift() would make the walk quadratic.
    const stack: Array<{ key: Uint8Array; missing: boolean }> = [{ key: rootKey, missing: false }]
    let items: Uint8Array[] = []
    while (stack.length > 0 && !signal.aborted) {
      const { key, missing } = stack.pop() as { key: Uint8Array; missing: boolean }
      const node = merkle.readNode(key)
      if (node.t === 'leaf') {
        const raw = this.#o.data.store.get(node.key)
        // Absent: the item was deleted since (the Merkle tree lags behind); nothing to push.
        if (raw !== undefined) items.push(raw)
      } else if (node.t === 'intermediate') {
        let theirChildren: Map<number, Uint8Array> | undefined
        if (!missing) {
          const a = await this.#call(who, { op: 'node', key }, signal)
          if (!('node' in a)) throw badAnswer('node', who)
          const theirs = decodeMerkleNode(a.node ?? undefined)
          theirChildren = new Map<number, Uint8Array>(theirs.t === 'intermediate' ? theirs.children : [])
        }
        for (const [b, h] of node.children) {
          const t = theirChildren?.get(b)
          if (t === undefined || !bytesEqual(t, h))
            stack.push({ key: concatBytes(key, new Uint8Array([b])), missing: t === undefined })
        }
      }
      if (items.length >= PUSH_BATCH) {
        await this.#push(who, items, signal)
        items = []
      }
    }
    if (items.length > 0) await this.#push(who, items, signal)
  }

  async #push(who: NodeId, items: Uint8Array[], signal: AbortSignal): Promise<void> {
    const r = await this.#call(who, { op: 'items', items }, signal)
    if (!('ok' in r)) throw badAnswer('items', who)
  }

  /** Hands the items of a partition we no longer store over to its holders, then drops them. */
  async #offload(p: SyncPartition, signal: AbortSignal): Promise<void> {
    const data = this.#o.data
    const end = p.last.every((b) => b === 0xff) ? undefined : p.last
    let moved = 0
    while (!signal.aborted) {
      const batch = [...data.store.range({ start: p.first, end, limit: OFFLOAD_BATCH })]
      if (batch.length === 0) break
      const nodes = this.#o.replication.storageNodes(p.first)
      if (nodes.includes(this.#o.self)) {
        this.#o.log.info(`${this.tableName} partition ${p.partition}: offload interrupted, the layout changed`)
        return
      }
      if (nodes.length === 0) throw new GarageError('GARAGE_ERR_QUORUM', `no node to hand partition ${p.partition} over to`)
      const values = batch.map(([, v]) => v)
      const up = this.#upFilter()
      const results = await Promise.allSettled(
        nodes.map((n) => (up(n) ? this.#push(n, values, signal) : Promise.reject(nodeDown(n)))),
      )
      const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason)
      if (failures.length > 0) {
        throw new GarageError(
          'GARAGE_ERR_QUORUM',
          `offload of ${this.tableName} partition ${p.partition}: ${failures.length} of ${nodes.length} holders failed`,
          { cause: new AggregateError(failures) },
        )
      }
      let kept = 0
      for (const [k, v] of batch) if (!data.deleteIfEqual(k, v)) kept++
      moved += batch.length - kept
      if (kept > 0) this.#o.log.debug(`${this.tableName}: ${kept} item(s) changed during offload, sending again`)
    }
    if (moved > 0) this.#o.log.info(`${this.tableName} partition ${p.partition}: handed ${moved} item(s) over`)
  }
}

/** Nodes of a hash's partition in the retired layout versions (still offloading, maybe). */
function formerHoldersOf(layout: LayoutHelper): (hash: Uint8Array) => NodeId[] {
  return (hash) => {
    const old = layout.history().oldVersions
    if (old.length === 0) return []
    return layout.blockReadNodesOf(hash)
  }
}

function nodeDown(n: NodeId): GarageError {
  return new GarageError('GARAGE_ERR_REMOTE', `node ${n.slice(0, 16)} is down`)
}

function badAnswer(op: string, who: NodeId): GarageError {
  return new GarageError('GARAGE_ERR_REMOTE', `unexpected answer to sync '${op}' from node ${who.slice(0, 16)}`)
}

function shuffle<T>(a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[a[i], a[j]] = [a[j] as T, a[i] as T]
  }
  return a
}

/** What a node in a cluster gives a table's anti-entropy. @internal */
export interface AntiEntropyCluster {
  netApp: NetApp
  layout: LayoutHelper
  onPeerUp(cb: (nodeId: string) => void): void
  /** Ids of the peers currently up. */
  upPeers?(): string[]
}

/** @internal */
export interface TableAntiEntropyOptions {
  self: NodeId
  /** Absent on a node alone: no sync, and tombstones are collected locally. */
  cluster?: AntiEntropyCluster
  log: Logger
  /** Tombstone GC delay (default 24 h). */
  gcDelayMs?: number
}

/**
 * The anti-entropy parts of one table: its Merkle updater, its tombstone GC and (in a cluster)
 * its sync worker, with their RPC handlers registered. Spawn {@link TableAntiEntropy.workers}.
 * @internal
 */
export class TableAntiEntropy<E> {
  readonly merkle: MerkleUpdater<E>
  readonly gc: TableGc<E>
  readonly syncer: TableSyncer<E> | undefined
  constructor(data: TableData<E>, replication: TableReplication, o: TableAntiEntropyOptions) {
    const name = data.schema.tableName
    this.merkle = new MerkleUpdater({ data, replication, log: o.log.withTag(`merkle:${name}`) })
    if (!data.keepsMerkle) this.merkle.forget()
    this.gc = new TableGc({
      data,
      replication,
      self: o.self,
      log: o.log.withTag(`gc:${name}`),
      ...(o.cluster === undefined ? {} : { netApp: o.cluster.netApp }),
      ...(o.gcDelayMs === undefined ? {} : { delayMs: o.gcDelayMs }),
      ...(o.cluster === undefined ? {} : { formerHolders: formerHoldersOf(o.cluster.layout) }),
    })
    this.gc.register()
    const c = o.cluster
    if (c !== undefined) {
      const syncer = new TableSyncer({
        data,
        merkle: this.merkle,
        replication,
        netApp: c.netApp,
        layout: c.layout,
        self: o.self,
        log: o.log.withTag(`sync:${name}`),
        ...(c.upPeers === undefined ? {} : { upPeers: () => c.upPeers?.() ?? [] }),
      })
      syncer.register()
      c.onPeerUp(() => syncer.peerUp())
      this.syncer = syncer
    }
  }

  /** The Merkle updater and GC, and the syncer in a cluster; a node alone keeps no Merkle tree (TableDataOptions.merkle). */
  workers(): Worker[] {
    return this.syncer === undefined ? [this.gc] : [this.merkle, this.gc, this.syncer]
  }
}
