/**
 * Where data lives, from the layout history (port of garage_rpc::layout::helper): the nodes that
 * store a hash in each active version (the write sets), the version reads use while a new
 * layout settles, the quorums of the consistency mode, and the closeness order reads follow.
 * Tables and the block manager ask this; the layout manager feeds it.
 *
 * Before the first layout version is applied there is no ring: every answer is "this node only",
 * so a lone node works; anti-entropy hands that data over once a layout exists.
 * @internal
 */
import type { ConsistencyMode } from '../../util/config.ts'
import type { Logger } from '../../util/logger.ts'
import {
  allNodes,
  allStorageNodes,
  currentVersion,
  type LayoutHistory,
  type LayoutVersion,
  minStored,
  presentRoles,
  syncMapMinWithQuorum,
  trackerMinAmong,
} from './history.ts'
import { NB_PARTITIONS } from './types.ts'
import { nodesOfPartition, partitionOf } from './version.ts'

/** A read asks the next node too once one is this many average pings late. @internal */
export const HEDGE_PING_FACTOR = 4
/** Floor of the hedge delay (scheduling noise on a busy node must not double every read). @internal */
export const HEDGE_MIN_MS = 500
/** Hedge delay of a peer never pinged yet. @internal */
export const HEDGE_UNKNOWN_MS = 1_000
/**
 * Ceiling of the hedge delay. On a loaded machine the average ping grew to 1–1.5 s, so 4 pings
 * reached the RPC timeout (5 s in the chaos runs): reads that picked a peer just cut off waited
 * for its whole deadline, once per step of a GET (object, version, block: 11 s), and that peer
 * was not seen as unresponsive either (the same delay bounds a ping's age). @internal
 */
export const HEDGE_MAX_MS = 2_000
/**
 * Our calls to a peer unanswered for this long (or its hedge delay, if longer) make it
 * unresponsive: a call waits for the peer's work too (an lmdb commit on a busy node), so the
 * bar is higher than a ping's. @internal
 */
export const SILENT_CALLS_MIN_MS = 1_000

/** What the helper needs from the layout manager. @internal */
export interface LayoutSource {
  history(): LayoutHistory
  onChange(cb: (h: LayoutHistory) => void): void
  /** Records that this node finished syncing all its tables for `version`. */
  markSynced(version: number): Promise<void>
  /**
   * Gives the source the highest version this node may acknowledge (writes computed with an
   * older version are still in flight), and a way to say that limit moved up.
   */
  setAckLimit?(limit: () => number): void
  refreshAck?(): void
}

/** Read quorum of sharded data (Garage's `ReplicationFactor::read_quorum`). @internal */
export function readQuorumOf(rf: number, mode: ConsistencyMode): number {
  return mode === 'consistent' ? Math.ceil(rf / 2) : 1
}

/** Write quorum of sharded data (Garage's `ReplicationFactor::write_quorum`). @internal */
export function writeQuorumOf(rf: number, mode: ConsistencyMode): number {
  return mode === 'dangerous' ? 1 : rf - Math.ceil(rf / 2) + 1
}

/** @internal */
export interface LayoutHelperOptions {
  source: LayoutSource
  self: string
  consistencyMode: ConsistencyMode
  replicationFactor: number
  /** Average ping to each peer in ms (undefined: unknown), for the closeness order. */
  pingOf?: (nodeId: string) => number | undefined
  /** Whether membership sees a peer up; peers that are down are tried last. */
  isUp?: (nodeId: string) => boolean
  /**
   * The transport's ping state of a peer: pings failed since the last good one, and how long
   * the ping in flight has gone unanswered (ms). A peer whose last ping failed, or whose ping
   * is overdue (past its hedge delay), is *unresponsive*: tried after the responsive ones.
   */
  pingStateOf?: (
    nodeId: string,
  ) => { failedPings: number; pingPendingMs: number | undefined; callsSilentMs?: number | undefined } | undefined
  log: Logger
}

/** @internal */
export class LayoutHelper {
  readonly self: string
  readonly consistencyMode: ConsistencyMode
  readonly replicationFactor: number
  readonly #o: LayoutHelperOptions
  #history!: LayoutHistory
  #readVersion!: LayoutVersion
  #hasRing = false
  #zones = new Map<string, string>()
  readonly #listeners: Array<() => void> = []
  /** Tables that must report a full sync of a version before this node's sync tracker moves. */
  readonly #tables = new Map<string, number>()
  /** Writes in flight, by the layout version their write sets were computed with. */
  readonly #writeLocks = new Map<number, number>()

  constructor(options: LayoutHelperOptions) {
    this.#o = options
    this.self = options.self
    this.consistencyMode = options.consistencyMode
    this.replicationFactor = options.replicationFactor
    this.#update(options.source.history())
    options.source.setAckLimit?.(() => this.ackLimit())
    options.source.onChange((h) => {
      const before = currentVersion(this.#history).version
      this.#update(h)
      if (currentVersion(h).version !== before) for (const cb of this.#listeners) cb()
    })
  }

  #update(h: LayoutHistory): void {
    this.#history = h
    const cur = currentVersion(h)
    this.#hasRing = cur.ringAssignment.length > 0
    const readV = this.consistencyMode === 'consistent' ? syncMapMinWithQuorum(h, this.writeQuorum()) : cur.version
    this.#readVersion = h.versions.find((v) => v.version === readV && v.ringAssignment.length > 0) ?? cur
    const zones = new Map<string, string>()
    for (const v of h.versions) for (const [id, role] of presentRoles(v.roles)) zones.set(id, role.zone)
    this.#zones = zones
  }

  /** Called when the current layout version changes (sync then runs at once). */
  onVersionChange(cb: () => void): void {
    this.#listeners.push(cb)
  }

  history(): LayoutHistory {
    return this.#history
  }

  /** A layout with an assignment exists. */
  hasRing(): boolean {
    return this.#hasRing
  }

  currentVersion(): LayoutVersion {
    return currentVersion(this.#history)
  }

  /**
   * The lowest version every node with a role has acknowledged (Garage's `ack_map_min`): no
   * node writes with an older one any more, so a sync pass started now covers every write made
   * with versions below it. Sync passes report this version, not the current one.
   */
  ackMapMin(): number {
    const h = this.#history
    return trackerMinAmong(h.updateTrackers.ackMap, allNodes(h), minStored(h))
  }

  /** The version reads use: the newest one a write quorum of every partition has synced. */
  readVersion(): LayoutVersion {
    return this.#readVersion
  }

  /** The versions writes go to: every active one in consistent mode, else the current one. */
  writeVersions(): LayoutVersion[] {
    const withRing = this.#history.versions.filter((v) => v.ringAssignment.length > 0)
    if (this.consistencyMode !== 'consistent') return withRing.slice(-1)
    return withRing
  }

  readQuorum(): number {
    return readQuorumOf(this.replicationFactor, this.consistencyMode)
  }

  writeQuorum(): number {
    return writeQuorumOf(this.replicationFactor, this.consistencyMode)
  }

  /** The write sets of `hash`: its nodes in each version writes go to. */
  storageSetsOf(hash: Uint8Array): string[][] {
    if (!this.#hasRing) return [[this.self]]
    const p = partitionOf(hash)
    return this.writeVersions().map((v) => nodesOfPartition(v, p))
  }

  /** Every node that stores `hash` in some version writes go to (union of the write sets). */
  storageNodesOf(hash: Uint8Array): string[] {
    return [...new Set(this.storageSetsOf(hash).flat())]
  }

  /** The nodes of `hash` in the read version. */
  readNodesOf(hash: Uint8Array): string[] {
    if (!this.#hasRing) return [this.self]
    return nodesOfPartition(this.#readVersion, partitionOf(hash))
  }

  /** The nodes of `hash` in the current version (where blocks are written). */
  currentStorageNodesOf(hash: Uint8Array): string[] {
    if (!this.#hasRing) return [this.self]
    return nodesOfPartition(this.currentVersion(), partitionOf(hash))
  }

  /**
   * Where a block may be found: its nodes in the current version, then in older active
   * versions, then in retired ones (data not moved yet), without repeats.
   */
  blockReadNodesOf(hash: Uint8Array): string[] {
    if (!this.#hasRing) return [this.self]
    const p = partitionOf(hash)
    const h = this.#history
    const versions = [...h.versions].reverse().concat([...h.oldVersions].reverse())
    const out = new Set<string>()
    for (const v of versions) if (v.ringAssignment.length > 0) for (const n of nodesOfPartition(v, p)) out.add(n)
    return [...out]
  }

  /** Storage nodes of every active version. */
  allStorageNodes(): string[] {
    return this.#hasRing ? allStorageNodes(this.#history) : [this.self]
  }

  /** Nodes with a role (storage or gateway) in any active version: where full-copy tables live. */
  allNodes(): string[] {
    return this.#hasRing ? allNodes(this.#history) : [this.self]
  }

  /** Zone of a node in the layout, if it has a role. */
  zoneOf(nodeId: string): string | undefined {
    return this.#zones.get(nodeId)
  }

  /**
   * Orders nodes as reads try them (Garage's `request_order`): this node, then nodes of our
   * zone, then the others, by lowest average ping within each group; then peers that are
   * {@link isUnresponsive} (by ping), then peers that are down. Garage has no unresponsive
   * group: a peer behind a black hole keeps its last average ping, so it stays first in its
   * group until 4 pings in a row have timed out (40 s with the default ping timeout).
   */
  orderByCloseness(nodes: readonly string[]): string[] {
    const myZone = this.zoneOf(this.self)
    const rank = (n: string): [number, number] => {
      if (n === this.self) return [0, 0]
      if (this.#o.isUp !== undefined && !this.#o.isUp(n)) return [4, 0]
      const ping = this.#o.pingOf?.(n) ?? Number.MAX_SAFE_INTEGER
      if (this.isUnresponsive(n)) return [3, ping]
      const sameZone = myZone !== undefined && this.zoneOf(n) === myZone
      return [sameZone ? 1 : 2, ping]
    }
    return [...nodes]
      .map((n) => ({ n, r: rank(n) }))
      .sort((a, b) => a.r[0] - b.r[0] || a.r[1] - b.r[1] || (a.n < b.n ? -1 : a.n > b.n ? 1 : 0))
      .map((x) => x.n)
  }

  /**
   * The peer's last ping failed, its ping in flight is older than the peer's hedge delay, or our
   * calls to it have gone unanswered for longer than that (at least {@link SILENT_CALLS_MIN_MS}:
   * a call also waits for the peer's work): membership does not call it down yet (that takes 4
   * failed pings in a row), but a call to it now would likely wait for its deadline. Never this
   * node.
   */
  isUnresponsive(nodeId: string): boolean {
    if (nodeId === this.self) return false
    const st = this.#o.pingStateOf?.(nodeId)
    if (st === undefined) return false
    if (st.failedPings > 0) return true
    const hedge = this.hedgeDelayOf(nodeId) ?? Number.POSITIVE_INFINITY
    if (st.pingPendingMs !== undefined && st.pingPendingMs > hedge) return true
    return st.callsSilentMs !== undefined && st.callsSilentMs > Math.max(hedge, SILENT_CALLS_MIN_MS)
  }

  /**
   * How long a read waits for `nodeId` before asking the next node as well (RpcHelper's
   * `hedgeAfterMs`): {@link HEDGE_PING_FACTOR} times its average ping, at least
   * {@link HEDGE_MIN_MS} and at most {@link HEDGE_MAX_MS}; {@link HEDGE_UNKNOWN_MS} before any
   * ping; never for this node.
   * Not in Garage, whose reads wait for the RPC timeout on a peer not yet known down.
   */
  hedgeDelayOf(nodeId: string): number | undefined {
    if (nodeId === this.self) return undefined
    const ping = this.#o.pingOf?.(nodeId)
    if (ping === undefined) return HEDGE_UNKNOWN_MS
    return Math.min(HEDGE_MAX_MS, Math.max(HEDGE_MIN_MS, Math.ceil(HEDGE_PING_FACTOR * ping)))
  }

  /** Partitions of the ring with their write sets (for anti-entropy of sharded tables). */
  shardedPartitions(): Array<{ partition: number; first: Uint8Array; last: Uint8Array; storageSets: string[][] }> {
    const out: Array<{ partition: number; first: Uint8Array; last: Uint8Array; storageSets: string[][] }> = []
    for (let p = 0; p < NB_PARTITIONS; p++) {
      const first = new Uint8Array(32)
      first[0] = p
      const last = new Uint8Array(32)
      if (p + 1 < NB_PARTITIONS) last[0] = p + 1
      else last.fill(0xff)
      out.push({ partition: p, first, last, storageSets: this.storageSetsOf(first) })
    }
    return out
  }

  /**
   * Takes a write lock on the current version (Garage's `WriteLock`): call before computing
   * write sets, release once the write is done. While a write made with version v is in flight,
   * this node does not acknowledge versions above v, so no node reads from a newer version
   * before that write has landed where the older version put it.
   */
  lockWrite(): () => void {
    const v = this.currentVersion().version
    this.#writeLocks.set(v, (this.#writeLocks.get(v) ?? 0) + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const n = (this.#writeLocks.get(v) ?? 1) - 1
      if (n > 0) {
        this.#writeLocks.set(v, n)
        return
      }
      this.#writeLocks.delete(v)
      // The oldest version in use may have changed: the acknowledged version can move up.
      if (v < this.currentVersion().version) this.#o.source.refreshAck?.()
    }
  }

  /** The highest version this node may acknowledge: the oldest one a write in flight uses. */
  ackLimit(): number {
    let min = Number.POSITIVE_INFINITY
    for (const v of this.#writeLocks.keys()) min = Math.min(min, v)
    return min
  }

  /** Registers a table whose sync gates this node's sync tracker. */
  registerTable(name: string): void {
    if (!this.#tables.has(name)) this.#tables.set(name, -1)
  }

  /**
   * A table finished a full sync of every partition for layout `version`. Once every registered
   * table has, this node's sync tracker moves to the lowest such version.
   */
  markTableSynced(name: string, version: number): void {
    const prev = this.#tables.get(name) ?? -1
    if (version <= prev) return
    this.#tables.set(name, version)
    const min = Math.min(...this.#tables.values())
    if (min < 0) return
    this.#o.source.markSynced(min).catch((err: unknown) => {
      this.#o.log.warn(`recording the sync of layout version ${min} failed: ${(err as Error).message}`)
    })
  }
}
