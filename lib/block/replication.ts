/**
 * Blocks over the cluster (the replicated half of garage_block::manager: `rpc_put_block`,
 * `rpc_get_block` and the `block/*` handlers): a put goes to the block's storage nodes at the
 * write quorum, the other copies finishing in the background with the bytes they hold bounded; a
 * get reads the local copy, else the closest holder, then the next. Without a cluster, puts and
 * gets are local. What a miss or a received block means for the resync queue is the caller's
 * (`ReplicationEvents`).
 * @internal
 */
import type { RpcPriority } from '../net/endpoint.ts'
import type { NetApp } from '../net/netapp.ts'
import { SharedBodySeal } from '../net/frame.ts'
import { RpcHelper } from '../rpc/rpc-helper.ts'
import { type Hash, toHex } from '../util/data.ts'
import { CorruptDataError, GarageError, QuorumError } from '../util/errors.ts'
import type { Logger } from '../util/logger.ts'
import type { BlockMetrics } from './metrics.ts'
import type { BlockRc } from './rc.ts'
import { type BlockNeedRes, BlockRpcClient, serveBlockRpc } from './rpc.ts'
import type { BlockData, LocalBlockStore } from './store.ts'
import type { LocalWrites, PlannedBatch } from '../table/batch.ts'
import type { TableBatchRequest } from '../table/table.ts'

/** Default of `block_ram_buffer_max`: bytes held for replicas still receiving a block. @internal */
export const DEFAULT_BLOCK_RAM_BUFFER_MAX = 256 * 1024 * 1024

/** Deadline of one node's answer when a block is fetched from the others (then the next is tried). */
const FETCH_PER_NODE_TIMEOUT_MS = 30_000

/** What the block manager needs to know of the cluster layout (LayoutHelper satisfies it). @internal */
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

/** The cluster as the block manager sees it (a subset of the model's ClusterContext). @internal */
export interface BlockCluster {
  netApp: NetApp
  layout: BlockLayoutView
  /** Aborted when the node stops (ends background transfers). */
  signal: AbortSignal
}

/** What replicated I/O tells the resync side. @internal */
export interface ReplicationEvents {
  /** A read (this node's, or another's `block/get`) found no copy of `hash` here. */
  missed(hash: Hash): void
  /** A block sent by another node was stored here. */
  received(hash: Hash): void
}

/** @internal */
export interface BlockReplicationOptions {
  store: LocalBlockStore
  rc: BlockRc
  /** Set on a node in a cluster; the `block/*` endpoints are then served on its NetApp. */
  cluster?: BlockCluster
  /** `block_ram_buffer_max`. Default {@link DEFAULT_BLOCK_RAM_BUFFER_MAX}. */
  ramBufferMax?: number
  /** Deadline of one block transfer. */
  rpcTimeoutMs: number
  log: Logger
  metrics: BlockMetrics
  events: ReplicationEvents
}

/** @internal */
export class BlockReplication {
  /**
   * Merges table rows that came with a block (the node's {@link TableBatch}, set once the
   * tables exist): see {@link putWithRows}.
   */
  rowsHandler: ((rows: TableBatchRequest, local?: LocalWrites) => Uint8Array[]) | undefined
  readonly #o: BlockReplicationOptions
  readonly #store: LocalBlockStore
  readonly #cluster: BlockCluster | undefined
  readonly #rpc: BlockRpcClient | undefined
  readonly #helper: RpcHelper
  readonly #buffer: ByteSemaphore

  constructor(o: BlockReplicationOptions) {
    this.#o = o
    this.#store = o.store
    this.#cluster = o.cluster
    this.#helper = new RpcHelper({ log: o.log, timeoutMs: o.rpcTimeoutMs })
    this.#buffer = new ByteSemaphore(o.ramBufferMax ?? DEFAULT_BLOCK_RAM_BUFFER_MAX)
    if (o.cluster !== undefined) {
      this.#rpc = new BlockRpcClient(o.cluster.netApp)
      serveBlockRpc(o.cluster.netApp, {
        put: (hash, data, rows) => this.#receive(hash, data, rows),
        get: (hash) => this.#handleGet(hash),
        need: (hash) => this.#handleNeed(hash),
      })
    }
  }

  /** The cluster, when this node is part of one. */
  get cluster(): BlockCluster | undefined {
    return this.#cluster
  }

  /** Nodes storing `hash` in the current layout ([] without a cluster). */
  storageNodesOf(hash: Hash): string[] {
    const c = this.#cluster
    return c === undefined ? [] : c.layout.currentStorageNodesOf(hash)
  }

  /** Whether this node stores `hash` in the current layout (always, without a cluster). */
  isStorageNode(hash: Hash): boolean {
    const c = this.#cluster
    return c === undefined || c.layout.currentStorageNodesOf(hash).includes(c.layout.self)
  }

  /**
   * Stores a block: locally on a lone node; on a cluster, on the block's storage nodes (this
   * one included if listed), returning once a write quorum has it while the other copies finish
   * in the background.
   * @throws QuorumError when the write quorum cannot be reached.
   */
  async put(hash: Hash, data: Uint8Array): Promise<void> {
    const cluster = this.#cluster
    if (cluster === undefined) return this.#store.write(hash, data)
    const unlock = cluster.layout.lockWrite?.()
    try {
      await this.#putReplicated(cluster, hash, data)
    } finally {
      unlock?.()
    }
  }

  /**
   * Stores a block as {@link put} does with, on each node, that node's rows of `planned` (the
   * block and the rows in one request per node): every row is merged in one transaction once
   * the block is written there, so a node never holds them without the block, nor some of them
   * without the others (see {@link #storeWithRows}). Only when the rows go to exactly the block's
   * storage nodes, at the same quorum (RF = number of nodes, outside layout changes); answers
   * undefined otherwise, having sent nothing. Resolves at the write quorum with each answering
   * node's `prev` copies; each node's request is added to `planned.calls`.
   * @throws QuorumError when the write quorum cannot be reached.
   */
  async putWithRows(hash: Hash, data: Uint8Array, planned: PlannedBatch): Promise<Map<string, Uint8Array[]> | undefined> {
    const answers = new Map<string, Uint8Array[]>()
    const cluster = this.#cluster
    if (cluster === undefined) {
      const [only, ...others] = planned.byNode
      if (only === undefined || others.length > 0) return undefined
      const p = this.#storeWithRows(hash, data, only[1])
      planned.calls.push(p)
      answers.set(only[0], await p)
      return answers
    }
    const unlock = cluster.layout.lockWrite?.()
    try {
      const nodes = cluster.layout.currentStorageNodesOf(hash)
      const set = planned.sets[0]
      if (
        planned.sets.length !== 1 ||
        set === undefined ||
        set.length !== nodes.length ||
        !nodes.every((n) => set.includes(n) && planned.byNode.has(n)) ||
        planned.byNode.size !== nodes.length ||
        planned.quorum !== cluster.layout.writeQuorum()
      ) {
        return undefined
      }
      await this.#putReplicated(
        cluster,
        hash,
        data,
        (node, rows) => {
          const p = rows.then((prev) => {
            answers.set(node, prev)
          })
          planned.calls.push(p)
          return p
        },
        planned.byNode,
      )
      return answers
    } finally {
      unlock?.()
    }
  }

  async #putReplicated(
    cluster: BlockCluster,
    hash: Hash,
    data: Uint8Array,
    onAnswer?: (node: string, answer: Promise<Uint8Array[]>) => Promise<void>,
    rowsByNode?: ReadonlyMap<string, TableBatchRequest>,
  ): Promise<void> {
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
    // Encrypted once for all the other replicas instead of once per replica (lib/net/frame.ts).
    const sharedSeal = new SharedBodySeal(data)
    const send = async (node: string, signal: AbortSignal): Promise<Uint8Array[]> => {
      const rows = rowsByNode?.get(node)
      if (node !== self) {
        return rpc.put(node, hash, data, { priority: 'normal', timeoutMs: this.#o.rpcTimeoutMs, signal, sharedSeal }, rows)
      }
      if (rows !== undefined) return this.#storeWithRows(hash, data, rows)
      await this.#store.write(hash, data)
      return []
    }
    const call = async (node: string, signal: AbortSignal): Promise<void> => {
      started++
      try {
        const answer = send(node, signal)
        await (onAnswer === undefined ? answer : onAnswer(node, answer))
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
   * the nodes that may hold it, closest first. A corrupt local copy is moved aside (by the store).
   * @throws CorruptDataError (lone node) when the local copy is corrupt; QuorumError when no
   * node returned it.
   */
  async get(hash: Hash, priority: RpcPriority, sizeGuess?: number): Promise<Buffer> {
    try {
      const data = await this.#store.readFirst(hash, sizeGuess)
      if (data !== undefined) return data
      this.#o.events.missed(hash)
    } catch (err) {
      if (!(err instanceof CorruptDataError) || this.#cluster === undefined) throw err
      this.#o.log.warn(`${err.message}; reading it from another node`)
    }
    if (this.#cluster === undefined) {
      throw new GarageError('GARAGE_ERR_INTERNAL', `block ${toHex(hash)} is not stored on this node`)
    }
    return this.fetchRemote(hash, priority)
  }

  /** Fetches a block from the other nodes that may hold it, closest first. */
  async fetchRemote(hash: Hash, priority: RpcPriority): Promise<Buffer> {
    const cluster = this.#cluster
    if (cluster === undefined) {
      throw new GarageError('GARAGE_ERR_INTERNAL', `block ${toHex(hash)} is not stored on this node`)
    }
    const self = cluster.layout.self
    const nodes = cluster.layout.orderByCloseness(cluster.layout.blockReadNodesOf(hash)).filter((n) => n !== self)
    const errors: Error[] = []
    for (const node of nodes) {
      if (cluster.signal.aborted) break
      try {
        const data = await (this.#rpc as BlockRpcClient).get(node, hash, {
          priority,
          // One stuck holder must not hold a read for the whole RPC timeout: try the next.
          timeoutMs: Math.min(this.#o.rpcTimeoutMs, FETCH_PER_NODE_TIMEOUT_MS),
          signal: cluster.signal,
        })
        this.#o.metrics.read(data.byteLength)
        return data
      } catch (err) {
        errors.push(err as Error)
        this.#o.log.debug(`block ${toHex(hash)} not read from node ${node.slice(0, 16)}: ${(err as Error).message}`)
      }
    }
    throw new QuorumError(1, 0, errors.length > 0 ? errors : [new Error(`no other node may hold block ${toHex(hash)}`)])
  }

  /** Asks each of `nodes` whether it has and references `hash` (background priority). */
  askNeed(nodes: readonly string[], hash: Hash): Promise<Array<{ node: string; r: BlockNeedRes }>> {
    const rpc = this.#rpc as BlockRpcClient
    const opts = this.#backgroundOpts()
    return Promise.all(nodes.map(async (node) => ({ node, r: await rpc.need(node, hash, opts) })))
  }

  /** Sends a block to each of `nodes` (background priority); throws unless all took it. */
  async pushTo(nodes: readonly string[], hash: Hash, data: Uint8Array): Promise<void> {
    const rpc = this.#rpc as BlockRpcClient
    const opts = this.#backgroundOpts()
    await Promise.all(nodes.map((node) => rpc.put(node, hash, data, opts)))
  }

  #backgroundOpts(): { priority: 'background'; timeoutMs: number; signal: AbortSignal } {
    const cluster = this.#cluster
    if (cluster === undefined) throw new GarageError('GARAGE_ERR_INTERNAL', 'no cluster to exchange blocks with')
    return { priority: 'background', timeoutMs: this.#o.rpcTimeoutMs, signal: cluster.signal }
  }

  // ---- RPC handlers ------------------------------------------------------------------------------

  async #handleGet(hash: Hash): Promise<Buffer> {
    const path = await this.#store.find(hash)
    const data = path === undefined ? undefined : await this.#store.readVerified(hash, path)
    if (data !== undefined) return data
    // Not here although asked: maybe we should have it; check later (Garage does the same).
    this.#o.events.missed(hash)
    throw new GarageError('GARAGE_ERR_INTERNAL', `block ${toHex(hash)} is not stored on this node`)
  }

  /** Stores a block another node sent, with the rows that came with it. */
  async #receive(hash: Hash, data: BlockData, rows?: TableBatchRequest): Promise<Uint8Array[]> {
    if (rows === undefined) {
      await this.#store.write(hash, data)
      this.#o.events.received(hash)
      return []
    }
    return this.#storeWithRows(hash, data, rows)
  }

  /**
   * Stores a block with rows (see {@link putWithRows}): the block is written, then every row is
   * merged in one transaction, in order (the version row, the block's reference, the object row
   * that makes the version visible), answering the previous copies of `rows.prev`'s. A node thus
   * never holds the rows without the block, nor some of them without the others: one commit per
   * node and request. A crash between the block and the commit leaves a block file nothing
   * references, as a block that arrived before its reference does: the next start queues such
   * files written since the previous one (ResyncControl.startupCheck), and resync deletes them
   * after the GC delay if still unreferenced.
   * A concurrent deletion of an older copy cannot take this one: resync deletes under the
   * block's lock, only past that delay, and only while the count says unreferenced. A commit
   * that fails (a full metadata disk, an entry that does not decode) leaves the block as a block
   * received before its reference: checked again after the GC delay, deleted if still
   * unreferenced then.
   */
  async #storeWithRows(hash: Hash, data: BlockData, rows: TableBatchRequest): Promise<Uint8Array[]> {
    const handler = this.rowsHandler
    if (handler === undefined) throw new GarageError('GARAGE_ERR_INTERNAL', 'block put with rows: no table batch to merge them')
    let stored = false
    try {
      // The reference is not counted yet (it is in `rows`): only a block with no count is new.
      const prev = await this.#store.write(
        hash,
        data,
        () => {
          stored = true
          return handler(rows)
        },
        { counted: false },
      )
      return prev as Uint8Array[]
    } catch (err) {
      if (stored) this.#releaseUncommitted(hash)
      throw err
    }
  }

  /** Queues a block whose rows did not commit (see {@link #storeWithRows}); the error is the caller's. */
  #releaseUncommitted(hash: Hash): void {
    try {
      this.#o.events.received(hash)
    } catch (err) {
      this.#o.log.warn(
        `block ${toHex(hash)} stored without its rows could not be queued for a later check: ${(err as Error).message}`,
      )
    }
  }

  async #handleNeed(hash: Hash): Promise<BlockNeedRes> {
    const present = await this.#store.has(hash)
    const referenced = this.#o.rc.get(hash) > 0
    return { needed: !present && referenced, present, referenced }
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
