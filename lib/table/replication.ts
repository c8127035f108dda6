/**
 * Where a table's entries live and how many copies an operation needs (port of
 * garage_table::replication). {@link LocalReplication} keeps everything on this node (a node
 * without `rpc_secret`); {@link ShardedReplication} and {@link FullCopyReplication} place
 * entries by the cluster layout.
 */
import type { LayoutHelper } from '../rpc/layout/helper.ts'
import type { Hash } from '../util/data.ts'

/** A node id, as hex. */
export type NodeId = string

/** One unit of anti-entropy: a range of partition hashes and the node sets that store it. */
export interface SyncPartition {
  /** Merkle tree partition number (the ring partition; 0 for full-copy tables). */
  partition: number
  /** First partition hash of the range (inclusive). */
  first: Hash
  /** End of the range (exclusive, except the all-0xff hash of the last partition: inclusive). */
  last: Hash
  /** The nodes storing the range, one set per layout version writes go to. */
  storageSets: NodeId[][]
}

export interface SyncPartitions {
  /** Layout version these partitions were computed from (reported when the sync completes). */
  layoutVersion: number
  partitions: SyncPartition[]
}

export interface TableReplication {
  /** Every node that stores `hash` (union of the write sets). */
  storageNodes(hash: Hash): NodeId[]
  /** Nodes that store the partition of `hash`, to read from, closest first. */
  readNodes(hash: Hash): NodeId[]
  readQuorum(): number
  /** Sets of nodes to write to; each set must reach the write quorum. */
  writeSets(hash: Hash): NodeId[][]
  writeQuorum(): number
  /** Merkle partition of a hash (0 for tables stored whole on every node). */
  partitionOf(hash: Hash): number
  /** The partitions anti-entropy walks, with their holders. */
  syncPartitions(): SyncPartitions
  /** How often a full anti-entropy pass runs, in ms. */
  readonly antiEntropyIntervalMs: number
  /** Takes a write lock on the current layout version; returns its release (see LayoutHelper.lockWrite). */
  lockWrites?(): () => void
  /** How long a read waits for `node` before asking the next node too (LayoutHelper.hedgeDelayOf). */
  hedgeDelayOf?(node: NodeId): number | undefined
  /** `nodes` as reads try them: this node, its zone, the others by ping, unresponsive and down peers last (LayoutHelper.orderByCloseness). */
  orderByCloseness?(nodes: readonly NodeId[]): NodeId[]
  /** The peer's last ping failed, its ping is overdue, or our calls to it go unanswered (LayoutHelper.isUnresponsive). */
  isUnresponsive?(node: NodeId): boolean
}

/** Every entry lives on this node only. */
export class LocalReplication implements TableReplication {
  readonly #self: NodeId
  readonly antiEntropyIntervalMs = Number.POSITIVE_INFINITY
  constructor(self: NodeId) {
    this.#self = self
  }
  storageNodes(): NodeId[] {
    return [this.#self]
  }
  readNodes(): NodeId[] {
    return [this.#self]
  }
  readQuorum(): number {
    return 1
  }
  writeSets(): NodeId[][] {
    return [[this.#self]]
  }
  writeQuorum(): number {
    return 1
  }
  partitionOf(): number {
    return 0
  }
  syncPartitions(): SyncPartitions {
    return { layoutVersion: 0, partitions: [] }
  }
}

/** Garage's anti-entropy periods: 10 minutes for sharded tables, 10 seconds for full-copy ones. */
export const SHARDED_ANTI_ENTROPY_MS = 10 * 60_000
export const FULL_COPY_ANTI_ENTROPY_MS = 10_000

/**
 * Entries placed by the hash of their partition key on that partition's `replication_factor`
 * nodes (object, version, block_ref, multipart upload tables). Port of
 * garage_table::replication::sharded.
 */
export class ShardedReplication implements TableReplication {
  readonly #layout: LayoutHelper
  readonly antiEntropyIntervalMs: number
  constructor(layout: LayoutHelper, antiEntropyIntervalMs = SHARDED_ANTI_ENTROPY_MS) {
    this.#layout = layout
    this.antiEntropyIntervalMs = antiEntropyIntervalMs
  }
  storageNodes(hash: Hash): NodeId[] {
    return this.#layout.storageNodesOf(hash)
  }
  lockWrites(): () => void {
    return this.#layout.lockWrite()
  }
  hedgeDelayOf(node: NodeId): number | undefined {
    return this.#layout.hedgeDelayOf(node)
  }
  orderByCloseness(nodes: readonly NodeId[]): NodeId[] {
    return this.#layout.orderByCloseness(nodes)
  }
  isUnresponsive(node: NodeId): boolean {
    return this.#layout.isUnresponsive(node)
  }
  readNodes(hash: Hash): NodeId[] {
    return this.#layout.orderByCloseness(this.#layout.readNodesOf(hash))
  }
  readQuorum(): number {
    return this.#layout.readQuorum()
  }
  writeSets(hash: Hash): NodeId[][] {
    return this.#layout.storageSetsOf(hash)
  }
  writeQuorum(): number {
    return this.#layout.writeQuorum()
  }
  partitionOf(hash: Hash): number {
    return hash[0] ?? 0
  }
  syncPartitions(): SyncPartitions {
    // As Garage: the version every node acknowledged, so that no write with an older one is missed.
    const layoutVersion = this.#layout.ackMapMin()
    if (!this.#layout.hasRing()) return { layoutVersion, partitions: [] }
    return { layoutVersion, partitions: this.#layout.shardedPartitions() }
  }
}

/**
 * Entries stored on every node with a role (buckets, aliases, keys, admin tokens). Reads and
 * writes need a majority of those nodes (Garage v2's garage_table::replication::fullcopy); hot
 * paths read the local copy directly.
 */
export class FullCopyReplication implements TableReplication {
  readonly #layout: LayoutHelper
  readonly antiEntropyIntervalMs: number
  constructor(layout: LayoutHelper, antiEntropyIntervalMs = FULL_COPY_ANTI_ENTROPY_MS) {
    this.#layout = layout
    this.antiEntropyIntervalMs = antiEntropyIntervalMs
  }
  #nodes(): NodeId[] {
    return this.#layout.allNodes()
  }
  lockWrites(): () => void {
    return this.#layout.lockWrite()
  }
  storageNodes(): NodeId[] {
    return this.#nodes()
  }
  hedgeDelayOf(node: NodeId): number | undefined {
    return this.#layout.hedgeDelayOf(node)
  }
  isUnresponsive(node: NodeId): boolean {
    return this.#layout.isUnresponsive(node)
  }
  readNodes(): NodeId[] {
    return this.#layout.orderByCloseness(this.#nodes())
  }
  readQuorum(): number {
    return majority(this.#nodes().length)
  }
  writeSets(): NodeId[][] {
    return [this.#nodes()]
  }
  writeQuorum(): number {
    return this.#layout.consistencyMode === 'dangerous' ? 1 : majority(this.#nodes().length)
  }
  partitionOf(): number {
    return 0
  }
  syncPartitions(): SyncPartitions {
    // As Garage: the version every node acknowledged, so that no write with an older one is missed.
    const layoutVersion = this.#layout.ackMapMin()
    if (!this.#layout.hasRing()) return { layoutVersion, partitions: [] }
    const first = new Uint8Array(32)
    const last = new Uint8Array(32).fill(0xff)
    return { layoutVersion, partitions: [{ partition: 0, first, last, storageSets: [this.#nodes()] }] }
  }
}

const majority = (n: number): number => Math.floor(n / 2) + 1
