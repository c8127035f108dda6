/**
 * A replicated table (port of garage_table::table). Reads and writes go to the nodes the
 * replication strategy names, and succeed at its quorums (through {@link RpcHelper}): writes
 * reach every write set at the write quorum and finish on the other replicas in the background;
 * reads ask the closest nodes at the read quorum, merge what they answered (CRDT merge) and
 * repair, in the background, the replicas that answered an older copy or none. On a node without
 * a cluster every placement is this node only and the calls are answered locally.
 */
import type { Transaction } from '../db/db.ts'
import { RpcHelper } from '../rpc/rpc-helper.ts'
import { bytesEqual, compareBytes } from '../util/data.ts'
import { GarageError } from '../util/errors.ts'
import type { Logger } from '../util/logger.ts'
import { checkSortKey, type LocalRangeOptions, type TableData } from './data.ts'
import type { NodeId, TableReplication } from './replication.ts'
import type { TableSchema } from './schema.ts'

/** Table operations a node answers for its peers (and for itself). */
export type TableRequest =
  | { op: 'update'; entries: Uint8Array[] }
  | { op: 'get'; partitionKey: Uint8Array; sortKey: Uint8Array }
  /** Several entries at once: the answer has one item per key, empty where the node has none. */
  | { op: 'getMany'; partitionKeys: Uint8Array[]; sortKeys: Uint8Array[] }
  | { op: 'range'; partitionKey: Uint8Array; start?: Uint8Array; limit: number; reverse: boolean }

/** Options of one transport call. */
export interface TableCallOptions {
  /** Aborts the call (the quorum was reached without it, or the operation gave up). */
  signal?: AbortSignal
  /** Deadline of this call in ms. */
  timeoutMs?: number
}

/** Sends a table request to a remote node (lib/table/rpc.ts over NetApp). Absent on a single node. */
export interface TableTransport {
  call(node: NodeId, table: string, request: TableRequest, options?: TableCallOptions): Promise<Uint8Array[]>
  /**
   * Sends the entries of several tables in one request (see {@link TableBatch}); without it a
   * batch makes one call per table and node, at the same time.
   */
  callBatch?(node: NodeId, request: TableBatchRequest, options?: TableCallOptions): Promise<Uint8Array[]>
}

/** Entries of several tables for one node, merged there in one transaction. @internal */
export interface TableBatchRequest {
  items: Array<{ table: string; entries: Uint8Array[] }>
  /**
   * A table of the batch whose entries' copies, as the node held them before this batch, are the
   * answer (one per entry of that table, in order; empty bytes where it had none). Without it the
   * answer is empty. For writes that check, from the write quorum's answers, what they overwrote
   * (a one-round PUT or DELETE: docs/design/round-trips.md).
   */
  prev?: string
}

export interface TableOptions<E> {
  schema: TableSchema<E>
  data: TableData<E>
  replication: TableReplication
  self: NodeId
  log: Logger
  transport?: TableTransport
  /** Deadline of a quorum read or write (`rpc_timeout_msec`). Default 300 s. */
  timeoutMs?: number
  /** Aborted when the node stops: background writes and repairs give up. */
  signal?: AbortSignal
}

export interface RangeQuery<E> {
  start?: Uint8Array
  filter?: (entry: E) => boolean
  limit: number
  reverse?: boolean
}

/** Most entries one range call asks each node for (a getRange may take several rounds). */
const RANGE_PAGE = 1000
/**
 * Most keys one getMany call asks a node for (a getMany sends its calls at once): 256 small rows
 * (a one-block part version is ~200 bytes) keep an answer within one 64 KiB RPC frame.
 */
const GET_MANY_PAGE = 256

/** Where the entries of one insert go (see {@link Table.planInsert}). @internal */
export interface InsertPlan {
  /** The table's name. */
  table: string
  /** The encoded entries each node stores. */
  byNode: Map<NodeId, Uint8Array[]>
  /** Every write set that must reach `quorum`, by its members joined with `,`. */
  sets: Map<string, NodeId[]>
  quorum: number
}

const EMPTY = new Uint8Array(0)

interface Answer {
  node: NodeId
  value: Uint8Array[]
}

export class Table<E> {
  readonly schema: TableSchema<E>
  readonly data: TableData<E>
  readonly #replication: TableReplication
  readonly #self: NodeId
  readonly #transport: TableTransport | undefined
  readonly #rpc: RpcHelper
  readonly #log: Logger
  readonly #signal: AbortSignal | undefined
  /** Read repairs still running. */
  readonly #background = new Set<Promise<void>>()
  /** Called after entries are queued, so the queue worker wakes up. */
  onQueued: () => void = () => {}

  constructor(options: TableOptions<E>) {
    this.schema = options.schema
    this.data = options.data
    this.#replication = options.replication
    this.#self = options.self
    this.#transport = options.transport
    this.#log = options.log
    this.#signal = options.signal
    this.#rpc = new RpcHelper({
      log: options.log,
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    })
  }

  get name(): string {
    return this.schema.tableName
  }

  async insert(entry: E): Promise<void> {
    await this.insertMany([entry])
  }

  /**
   * Writes entries to their write sets and waits for the write quorum in each (one request per
   * node, carrying every entry it stores). The other replicas finish in the background.
   * @throws QuorumError when a write set cannot reach its quorum in time.
   */
  async insertMany(entries: readonly E[]): Promise<void> {
    if (entries.length === 0) return
    // Held until the write is done: this node does not acknowledge a newer layout version
    // while a write computed with this one is in flight.
    const unlock = this.#replication.lockWrites?.()
    try {
      await this.#insertMany(entries)
    } finally {
      unlock?.()
    }
  }

  async #insertMany(entries: readonly E[]): Promise<void> {
    const plan = this.planInsert(entries)
    // This node alone: its own error is the answer (no quorum to speak of).
    if (plan.byNode.size === 1 && plan.byNode.has(this.#self)) {
      this.handle({ op: 'update', entries: plan.byNode.get(this.#self) as Uint8Array[] })
      return
    }
    await this.#rpc.tryWriteManySets(
      [...plan.sets.values()],
      plan.quorum,
      (node, signal) => this.#call(node, { op: 'update', entries: plan.byNode.get(node) ?? [] }, signal),
      this.#signal === undefined ? {} : { signal: this.#signal },
    )
  }

  /**
   * Where an insert of `entries` goes: the encoded entries each node stores, every write set
   * that must reach the write quorum, and that quorum. Shared with {@link TableBatch}, which
   * sends the plans of several tables in one request per node.
   * @throws GarageError GARAGE_ERR_SORT_KEY for a sort key the table refuses (before any call).
   * @internal
   */
  planInsert(entries: readonly E[]): InsertPlan {
    const byNode = new Map<NodeId, Uint8Array[]>()
    const sets = new Map<string, NodeId[]>()
    // Refused here, before any replica is asked, so the caller gets the typed error (not a
    // remote one counted against the quorum).
    for (const e of entries) checkSortKey(this.name, this.schema.sortKey(e))
    for (const e of entries) {
      const raw = this.schema.codec.encode(e)
      const hash = this.schema.partitionHash(this.schema.partitionKey(e))
      const nodes = new Set<NodeId>()
      for (const set of this.#replication.writeSets(hash)) {
        sets.set(set.join(','), set)
        for (const n of set) nodes.add(n)
      }
      for (const n of nodes) {
        const l = byNode.get(n)
        if (l === undefined) byNode.set(n, [raw])
        else l.push(raw)
      }
    }
    return { table: this.name, byNode, sets, quorum: this.#replication.writeQuorum() }
  }

  /** Takes the replication's write lock (see {@link insertMany}); returns its release. @internal */
  lockWrites(): (() => void) | undefined {
    return this.#replication.lockWrites?.()
  }

  /**
   * Reads one entry at the read quorum, merging the copies that answered. Replicas that
   * answered an older copy or none get the merged value in the background. With
   * `everyReplica`, every replica must answer (a write that may have reached one node only).
   * With `seeEveryWrite`, enough replicas to meet every write quorum (`n − writeQuorum + 1`; more than
   * the read quorum in dangerous mode): for a caller that found its first read stale.
   * @throws QuorumError when too few replicas answer in time.
   */
  async get(
    partitionKey: Uint8Array,
    sortKey: Uint8Array,
    opts: { seeEveryWrite?: boolean; everyReplica?: boolean } = {},
  ): Promise<E | undefined> {
    checkSortKey(this.name, sortKey)
    const hash = this.schema.partitionHash(partitionKey)
    const answers = await this.#readQuorum(
      hash,
      { op: 'get', partitionKey, sortKey },
      opts.everyReplica === true ? 'all' : opts.seeEveryWrite === true,
    )
    const copies = answers.map((a) => a.value[0])
    const first = copies[0]
    // Every replica holds the same bytes (the common case): nothing to merge or repair.
    if (first !== undefined && copies.every((c) => c !== undefined && bytesEqual(c, first))) {
      return this.schema.codec.decode(first)
    }
    let merged: E | undefined
    for (const raw of copies) {
      if (raw === undefined) continue
      const e = this.schema.codec.decode(raw)
      merged = merged === undefined ? e : this.schema.merge(merged, e)
    }
    if (merged === undefined) return undefined
    const mergedRaw = this.schema.codec.encode(merged)
    const stale = answers.filter((a) => a.value[0] === undefined || !bytesEqual(a.value[0], mergedRaw)).map((a) => a.node)
    this.#repair(stale, [mergedRaw])
    return merged
  }

  /**
   * Reads many entries at the read quorum in a few calls: keys whose partitions have the same
   * read nodes go together, up to {@link GET_MANY_PAGE} keys per call, and each such group is one
   * quorum call (with 3 nodes and RF 3, every partition has the same nodes: ⌈n / 256⌉ calls per
   * node instead of n). Each entry is merged and repaired as {@link get} does it; the answer has
   * one item per key, in order. Every group must reach its quorum.
   * @throws QuorumError when too few replicas answer in time for some group.
   */
  async getMany(keys: ReadonlyArray<{ partitionKey: Uint8Array; sortKey: Uint8Array }>): Promise<Array<E | undefined>> {
    for (const k of keys) checkSortKey(this.name, k.sortKey)
    const out = new Array<E | undefined>(keys.length).fill(undefined)
    const groups = new Map<string, { hash: Uint8Array; indexes: number[] }>()
    for (let i = 0; i < keys.length; i++) {
      const hash = this.schema.partitionHash((keys[i] as (typeof keys)[number]).partitionKey)
      const set = this.#replication.readNodes(hash).slice().sort().join(',')
      let g = groups.get(set)
      if (g === undefined || g.indexes.length >= GET_MANY_PAGE) {
        // A full group goes out as is; the next keys of these nodes start another call.
        if (g !== undefined) groups.set(`${set}#${i}`, g)
        g = { hash, indexes: [] }
        groups.set(set, g)
      }
      g.indexes.push(i)
    }
    const repairs = new Map<NodeId, Uint8Array[]>()
    await Promise.all(
      [...groups.values()].map(async ({ hash, indexes }) => {
        const request: TableRequest = {
          op: 'getMany',
          partitionKeys: indexes.map((i) => (keys[i] as (typeof keys)[number]).partitionKey),
          sortKeys: indexes.map((i) => (keys[i] as (typeof keys)[number]).sortKey),
        }
        const answers = await this.#readQuorum(hash, request)
        for (const a of answers) {
          if (a.value.length !== indexes.length) {
            throw new GarageError(
              'GARAGE_ERR_REMOTE',
              `node ${a.node.slice(0, 16)} answered ${a.value.length} of ${indexes.length} ${this.name} entries`,
            )
          }
        }
        indexes.forEach((index, j) => {
          const copies = answers.map((a) => ((a.value[j] as Uint8Array).length === 0 ? undefined : a.value[j]))
          const first = copies[0]
          if (first !== undefined && copies.every((c) => c !== undefined && bytesEqual(c, first))) {
            out[index] = this.schema.codec.decode(first)
            return
          }
          let merged: E | undefined
          for (const raw of copies) {
            if (raw === undefined) continue
            const e = this.schema.codec.decode(raw)
            merged = merged === undefined ? e : this.schema.merge(merged, e)
          }
          if (merged === undefined) return
          out[index] = merged
          const mergedRaw = this.schema.codec.encode(merged)
          for (const a of answers) {
            const c = a.value[j] as Uint8Array
            if (c.length !== 0 && bytesEqual(c, mergedRaw)) continue
            const l = repairs.get(a.node)
            if (l === undefined) repairs.set(a.node, [mergedRaw])
            else l.push(mergedRaw)
          }
        })
      }),
    )
    for (const [node, raws] of repairs) this.#repair([node], raws)
    return out
  }

  /**
   * Entries of one partition from `start` (inclusive), in sort key order (descending with
   * `reverse`), at most `limit` of those `filter` keeps. Across nodes: each round asks the read
   * quorum for a page, merges it per sort key, keeps the part every answer covers, repairs the
   * replicas that missed an entry or held an older copy, and goes on until `limit` entries pass
   * the filter or the partition ends.
   */
  /**
   * True when this node alone answers reads of the partition (a single replica, here): its local
   * data is then the table's answer, as in `getRange`'s local path.
   */
  readsLocally(partitionKey: Uint8Array): boolean {
    const nodes = this.#replication.readNodes(this.schema.partitionHash(partitionKey))
    return nodes.length === 1 && nodes[0] === this.#self
  }

  async getRange(partitionKey: Uint8Array, query: RangeQuery<E>): Promise<E[]> {
    if (query.start !== undefined) checkSortKey(this.name, query.start)
    const hash = this.schema.partitionHash(partitionKey)
    const nodes = this.#replication.readNodes(hash)
    // Local fast path: a single replica on this node needs no merge and can filter lazily.
    if (nodes.length === 1 && nodes[0] === this.#self) return this.data.readRange(partitionKey, query)
    const reverse = query.reverse ?? false
    // Two at least, so a round that starts again at the last key seen still moves forward.
    const page = Math.max(2, Math.min(query.limit, RANGE_PAGE))
    const out: E[] = []
    let start = query.start
    /** Sort key of the last entry handled: the next round starts there, excluding it. */
    let after: Uint8Array | undefined
    // before(a, b): a comes strictly before b in the walk's direction.
    const before = (a: Uint8Array, b: Uint8Array): boolean => (reverse ? compareBytes(a, b) > 0 : compareBytes(a, b) < 0)
    while (out.length < query.limit) {
      const answers = await this.#readQuorum(hash, { op: 'range', partitionKey, start, limit: page, reverse })
      const merged = new Map<string, { sortKey: Uint8Array; entry: E; raw: Uint8Array; copies: Map<NodeId, Uint8Array> }>()
      // The merge is complete up to the horizon: the nearest last key of the answers that
      // filled a page (a node that answered less than a page had nothing more).
      let horizon: Uint8Array | undefined
      for (const a of answers) {
        let last: Uint8Array | undefined
        for (const raw of a.value) {
          const e = this.schema.codec.decode(raw)
          const sk = this.schema.sortKey(e)
          last = sk
          const k = Buffer.from(sk).toString('latin1')
          const m = merged.get(k)
          if (m === undefined) merged.set(k, { sortKey: sk, entry: e, raw, copies: new Map([[a.node, raw]]) })
          else {
            m.copies.set(a.node, raw)
            if (!bytesEqual(m.raw, raw)) {
              m.entry = this.schema.merge(m.entry, e)
              m.raw = this.schema.codec.encode(m.entry)
            }
          }
        }
        if (a.value.length >= page && last !== undefined && (horizon === undefined || before(last, horizon))) horizon = last
      }
      const sorted = [...merged.values()].sort((x, y) => (before(x.sortKey, y.sortKey) ? -1 : 1))
      const repairs = new Map<NodeId, Uint8Array[]>()
      for (const m of sorted) {
        if (horizon !== undefined && before(horizon, m.sortKey)) break
        if (after !== undefined && !before(after, m.sortKey)) continue
        for (const a of answers) {
          const copy = m.copies.get(a.node)
          if (copy !== undefined && bytesEqual(copy, m.raw)) continue
          const l = repairs.get(a.node)
          if (l === undefined) repairs.set(a.node, [m.raw])
          else l.push(m.raw)
        }
        if (out.length < query.limit && (query.filter === undefined || query.filter(m.entry))) out.push(m.entry)
      }
      for (const [node, raws] of repairs) this.#repair([node], raws)
      // No answer filled its page: the partition has nothing more.
      if (horizon === undefined) break
      start = horizon
      after = horizon
    }
    return out
  }

  /** Queues `entry` for insertion from inside a transaction (cross-table effects). */
  queueInsert(tx: Transaction, entry: E): void {
    this.data.queueInsert(tx, entry)
    queueMicrotask(this.onQueued)
  }

  /** Answers a table request addressed to this node (the RPC handler's body). */
  handle(request: TableRequest): Uint8Array[] {
    switch (request.op) {
      case 'update':
        this.data.updateManyEncoded(request.entries)
        return []
      case 'get': {
        const raw = this.data.store.get(this.data.treeKey(request.partitionKey, request.sortKey))
        return raw === undefined ? [] : [raw]
      }
      case 'getMany':
        return request.partitionKeys.map(
          (pk, i) => this.data.store.get(this.data.treeKey(pk, request.sortKeys[i] as Uint8Array)) ?? EMPTY,
        )
      case 'range': {
        const opts: LocalRangeOptions<E> = { start: request.start, limit: request.limit, reverse: request.reverse }
        return this.data.readRange(request.partitionKey, opts).map((e) => this.schema.codec.encode(e))
      }
    }
  }

  /** Resolves once the read repairs started so far have finished (for tests). @internal */
  async settled(): Promise<void> {
    while (this.#background.size > 0) await Promise.allSettled([...this.#background])
  }

  async #call(node: NodeId, request: TableRequest, signal?: AbortSignal): Promise<Uint8Array[]> {
    if (node === this.#self) return this.handle(request)
    if (this.#transport === undefined) throw new Error(`no transport to reach node ${node}`)
    return this.#transport.call(node, this.name, request, signal === undefined ? {} : { signal })
  }

  async #readQuorum(hash: Uint8Array, request: TableRequest, seeEveryWrite: boolean | 'all' = false): Promise<Answer[]> {
    const nodes = this.#replication.readNodes(hash)
    // This node alone: its own error is the answer (no quorum to speak of).
    if (nodes.length === 1 && nodes[0] === this.#self) return [{ node: this.#self, value: this.handle(request) }]
    const quorum = this.#replication.readQuorum()
    const answers = await this.#rpc.tryCallMany(
      nodes,
      seeEveryWrite === 'all'
        ? nodes.length
        : seeEveryWrite
          ? Math.min(nodes.length, Math.max(quorum, nodes.length - this.#replication.writeQuorum() + 1))
          : quorum,
      (node, signal) => this.#call(node, request, signal),
      {
        hedgeAfterMs: (node) => this.#replication.hedgeDelayOf?.(node),
        isUnresponsive: (node) => this.#replication.isUnresponsive?.(node) ?? false,
      },
    )
    return answers.map((a) => ({ node: a.node, value: a.value }))
  }

  /** Sends merged entries to replicas that answered an older copy or none (read repair). */
  #repair(nodes: readonly NodeId[], entries: Uint8Array[]): void {
    if (nodes.length === 0 || entries.length === 0 || this.#signal?.aborted === true) return
    const p = Promise.all(
      nodes.map((node) =>
        this.#call(node, { op: 'update', entries }, this.#signal).catch((err: unknown) => {
          // Read repair is an optimisation: the replica stays behind until the next read or
          // anti-entropy fixes it, and the answer already returned is right.
          this.#log.debug(`read repair of ${entries.length} entries on ${node.slice(0, 16)} failed: ${(err as Error).message}`)
        }),
      ),
    ).then(() => {
      this.#background.delete(p)
    })
    this.#background.add(p)
  }
}
