/**
 * K2V's own RPC (port of garage_model::k2v::rpc). An insert is not written by the node that
 * received the request: it goes to one storage node of the item's partition (the first of the
 * sorted storage nodes that answers, quorum 1), which orders it under its own writer id and local
 * timestamp, then writes the new row to the partition's nodes at the table's write quorum. So a
 * causality token names few writers (the partition's storage nodes), as in Garage.
 *
 * Polls are answered by every storage node from its own copy: it subscribes to changes of the
 * item (or partition) and answers when one makes the value newer than what the client saw.
 * @internal
 */
import type { Db, Transaction, Tree } from '../../db/db.ts'
import { defineEndpoint } from '../../net/endpoint.ts'
import type { NetApp } from '../../net/netapp.ts'
import { checkSortKey } from '../../table/data.ts'
import type { NodeId, TableReplication } from '../../table/replication.ts'
import type { Table } from '../../table/table.ts'
import { RpcHelper } from '../../rpc/rpc-helper.ts'
import { utf8, type Uuid } from '../../util/data.ts'
import { GarageError, ModelError, QuorumError } from '../../util/errors.ts'
import type { Logger } from '../../util/logger.ts'
import { makeK2vNodeId, sortedEntries, type VectorClock, vclockGt } from './causality.ts'
import {
  causalContextOf,
  type DvvsValue,
  type K2vItem,
  k2vItemCodec,
  k2vPartitionBytes,
  newK2vItem,
  updateK2vItem,
} from './item-table.ts'
import { RangeSeenMarker } from './seen.ts'
import { type K2vPollRange, pollRangeMatches, type SubscriptionManager } from './sub.ts'

/** One write to order (Garage's `InsertedItem`). @internal */
export interface K2vInsert {
  partitionKey: string
  sortKey: string
  /** The causality token's clock, if the client sent one. */
  context?: VectorClock | undefined
  value: DvvsValue
}

interface WireInsert {
  bucketId: Uint8Array
  pk: string
  sk: string
  ct?: Array<[string, number]>
  v: Uint8Array | null
}

type K2vRpcRequest =
  | { op: 'insert'; items: WireInsert[] }
  | { op: 'pollItem'; bucketId: Uint8Array; pk: string; sk: string; ct: Array<[string, number]>; timeoutMs: number }
  | {
      op: 'pollRange'
      bucketId: Uint8Array
      pk: string
      prefix?: string
      start?: string
      end?: string
      seen?: string
      timeoutMs: number
    }

/** `pollItem`: the item (encoded) or nothing; `pollRange`: the node and its new items; `insert`: empty. */
type K2vRpcResponse = { item?: Uint8Array; node?: string; items?: Uint8Array[] }

const K2V_RPC = defineEndpoint<K2vRpcRequest, K2vRpcResponse>('k2v/rpc')
const TIMESTAMP_KEY = utf8('timestamp')
/** After a read quorum of PollRange answers, how long the others get (Garage: 200 ms). */
const POLL_RANGE_EXTRA_DELAY_MS = 200
/** A poll's RPC deadline beyond its own timeout (the remote answers "nothing new" at the timeout). */
const POLL_RPC_MARGIN_MS = 10_000

/** @internal */
export interface K2vRpcOptions {
  self: NodeId
  db: Db
  itemTable: Table<K2vItem>
  replication: TableReplication
  subscriptions: SubscriptionManager
  log: Logger
  netApp?: NetApp | undefined
  rpcTimeoutMs?: number | undefined
  clock?: () => number
}

/** @internal */
export class K2vRpcHandler {
  readonly #o: K2vRpcOptions
  readonly #timestamps: Tree
  readonly #rpc: RpcHelper
  readonly #clock: () => number

  constructor(o: K2vRpcOptions) {
    this.#o = o
    this.#clock = o.clock ?? Date.now
    this.#timestamps = o.db.openTree('k2v_local_timestamp')
    this.#rpc = new RpcHelper({ log: o.log, ...(o.rpcTimeoutMs === undefined ? {} : { timeoutMs: o.rpcTimeoutMs }) })
    o.netApp?.handle(K2V_RPC, (req, _from, ctx) => this.#handle(parseRequest(req), ctx.signal))
  }

  /** Stores one write (InsertItem, DeleteItem). Resolves once it is at the write quorum. */
  async insert(bucketId: Uuid, item: K2vInsert): Promise<void> {
    await this.insertBatch(bucketId, [item])
  }

  /**
   * Stores several writes (InsertBatch, DeleteBatch): grouped by the storage nodes of their
   * partition, one request per group, all groups at once. Not a transaction: on a failure some
   * writes may be stored.
   */
  async insertBatch(bucketId: Uuid, items: readonly K2vInsert[]): Promise<void> {
    const groups = new Map<string, { nodes: NodeId[]; items: WireInsert[] }>()
    for (const it of items) {
      // Refused here, before any node is asked, so the client gets the typed error (a 400) and
      // not a remote failure: the sort key keys k2v_item, the partition key the counter table.
      checkSortKey(this.#o.itemTable.name, utf8(it.sortKey))
      checkSortKey('k2v_index_counter_v2', utf8(it.partitionKey))
    }
    for (const it of items) {
      // As Garage's try_call_many orders them: this node first when it stores the partition
      // (the insert is then local, then written at the quorum), then its zone, then by ping; a
      // peer down or not answering its pings last (else every insert would wait for its RPC
      // timeout first). Not sent to a second node at once: it would store a sibling.
      const sorted = this.#storageNodes(bucketId, it.partitionKey)
      const nodes = this.#o.replication.orderByCloseness?.(sorted) ?? sorted
      const k = nodes.join(',')
      const g = groups.get(k) ?? { nodes, items: [] }
      g.items.push({
        bucketId,
        pk: it.partitionKey,
        sk: it.sortKey,
        ...(it.context === undefined ? {} : { ct: sortedEntries(it.context) }),
        v: it.value,
      })
      groups.set(k, g)
    }
    await Promise.all(
      [...groups.values()].map((g) =>
        this.#rpc.tryCallMany(
          g.nodes,
          1,
          (node, signal) => this.#call(node, { op: 'insert', items: g.items }, signal, undefined),
          { isUnresponsive: (node) => this.#o.replication.isUnresponsive?.(node) ?? false },
        ),
      ),
    )
  }

  /**
   * Waits until the item's causality context is newer than `context` on a read quorum of its
   * storage nodes, or `timeoutMs` passes (undefined). Garage's `poll_item`.
   */
  async pollItem(
    bucketId: Uuid,
    pk: string,
    sk: string,
    context: VectorClock,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<K2vItem | undefined> {
    const nodes = this.#storageNodes(bucketId, pk)
    const quorum = Math.min(this.#o.replication.readQuorum(), nodes.length)
    const req: K2vRpcRequest = { op: 'pollItem', bucketId, pk, sk, ct: sortedEntries(context), timeoutMs }
    const answers = await this.#collect(nodes, quorum, req, timeoutMs, 0, signal)
    if (answers === undefined) return undefined
    let merged: K2vItem | undefined
    for (const a of answers) {
      if (a.item === undefined) continue
      const it = k2vItemCodec.decode(a.item)
      merged = merged === undefined ? it : this.#o.itemTable.schema.merge(merged, it)
    }
    return merged
  }

  /**
   * PollRange (Garage's `poll_range`): the items of `range` new since `seen`, and the marker to
   * send next time; undefined when a marker was given and nothing new came before the timeout.
   * @throws ModelError BadRequest for a marker that does not decode.
   */
  async pollRange(
    range: K2vPollRange,
    seenStr: string | undefined,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<{ items: K2vItem[]; seenMarker: string } | undefined> {
    const seen = seenStr === undefined ? new RangeSeenMarker() : RangeSeenMarker.decode(seenStr)
    if (seen === undefined) throw new ModelError('BadRequest', 'Invalid seenMarker')
    seen.restrict(range)
    const nodes = this.#storageNodes(range.bucketId, range.partitionKey)
    const quorum = Math.min(this.#o.replication.readQuorum(), nodes.length)
    const req: K2vRpcRequest = {
      op: 'pollRange',
      bucketId: range.bucketId,
      pk: range.partitionKey,
      ...(range.prefix === undefined ? {} : { prefix: range.prefix }),
      ...(range.start === undefined ? {} : { start: range.start }),
      ...(range.end === undefined ? {} : { end: range.end }),
      ...(seenStr === undefined ? {} : { seen: seenStr }),
      timeoutMs,
    }
    const answers = (await this.#collect(nodes, quorum, req, timeoutMs, POLL_RANGE_EXTRA_DELAY_MS, signal)) ?? []
    const byKey = new Map<string, K2vItem>()
    for (const a of answers) {
      const items = (a.items ?? []).map((raw) => k2vItemCodec.decode(raw))
      seen.markSeenNodeItems(a.node ?? '', items)
      for (const it of items) {
        const cur = byKey.get(it.sortKey)
        byKey.set(it.sortKey, cur === undefined ? it : this.#o.itemTable.schema.merge(cur, it))
      }
    }
    if (byKey.size === 0 && seenStr !== undefined) return undefined
    const items = [...byKey.values()].sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0))
    return { items, seenMarker: seen.encode() }
  }

  #storageNodes(bucketId: Uuid, pk: string): NodeId[] {
    const hash = this.#o.itemTable.schema.partitionHash(k2vPartitionBytes(bucketId, pk))
    return [...this.#o.replication.storageNodes(hash)].sort()
  }

  /**
   * Sends `req` to every node at once. Resolves with the answers once all answered, or once
   * `quorum` answered and `extraMs` more passed; with undefined at `timeoutMs` if the quorum was
   * not reached (a poll that saw nothing); rejects when too many failed.
   */
  #collect(
    nodes: readonly NodeId[],
    quorum: number,
    req: K2vRpcRequest,
    timeoutMs: number,
    extraMs: number,
    signal: AbortSignal | undefined,
  ): Promise<K2vRpcResponse[] | undefined> {
    const stop = new AbortController()
    const onAbort = (): void => stop.abort()
    signal?.addEventListener('abort', onAbort, { once: true })
    return new Promise<K2vRpcResponse[] | undefined>((resolve, reject) => {
      const answers: K2vRpcResponse[] = []
      const errors: Error[] = []
      let settled = false
      let extra: NodeJS.Timeout | undefined
      const finish = (v: K2vRpcResponse[] | undefined, err?: Error): void => {
        if (settled) return
        settled = true
        clearTimeout(deadline)
        clearTimeout(extra)
        signal?.removeEventListener('abort', onAbort)
        stop.abort()
        if (err !== undefined) reject(err)
        else resolve(v)
      }
      const deadline = setTimeout(() => finish(answers.length >= quorum ? answers : undefined), timeoutMs)
      if (signal?.aborted === true) {
        finish(undefined, new GarageError('GARAGE_ERR_TIMEOUT', 'poll cancelled', { cause: signal.reason }))
        return
      }
      signal?.addEventListener('abort', () =>
        finish(undefined, new GarageError('GARAGE_ERR_TIMEOUT', 'poll cancelled', { cause: signal.reason })),
      )
      for (const node of nodes) {
        this.#call(node, req, stop.signal, timeoutMs + POLL_RPC_MARGIN_MS).then(
          (res) => {
            answers.push(res)
            if (answers.length === nodes.length) finish(answers)
            else if (answers.length === quorum) {
              if (extraMs === 0) finish(answers)
              else extra = setTimeout(() => finish(answers), extraMs)
            }
          },
          (err: unknown) => {
            if (settled) return
            errors.push(err as Error)
            if (errors.length > nodes.length - quorum) finish(undefined, new QuorumError(quorum, answers.length, errors))
            else if (answers.length + errors.length === nodes.length) finish(answers)
          },
        )
      }
    })
  }

  async #call(node: NodeId, req: K2vRpcRequest, signal: AbortSignal, timeoutMs: number | undefined): Promise<K2vRpcResponse> {
    if (node === this.#o.self) return this.#handle(req, signal)
    const net = this.#o.netApp
    if (net === undefined) throw new GarageError('GARAGE_ERR_REMOTE', `no transport to reach node ${node.slice(0, 16)}`)
    // A poll waits for a change on purpose: not a sign of a peer that stopped answering.
    const waits = req.op === 'pollItem' || req.op === 'pollRange'
    return net.call(node, K2V_RPC, req, { priority: 'normal', signal, waits, ...(timeoutMs === undefined ? {} : { timeoutMs }) })
  }

  async #handle(req: K2vRpcRequest, signal: AbortSignal): Promise<K2vRpcResponse> {
    switch (req.op) {
      case 'insert': {
        // One transaction for the whole group (Garage uses one per item): the same result, since
        // each item still gets the next local timestamp, with one commit instead of n.
        const updated = this.#o.itemTable.data.db.transaction((tx) => {
          const out: K2vItem[] = []
          for (const it of req.items) {
            const u = this.#localInsert(tx, it)
            if (u !== undefined) out.push(u)
          }
          return out
        })
        // Propagate to the partition's other nodes at the write quorum.
        await this.#o.itemTable.insertMany(updated)
        return {}
      }
      case 'pollItem': {
        const item = await this.#localPollItem(req.bucketId, req.pk, req.sk, new Map(req.ct), req.timeoutMs, signal)
        return item === undefined ? {} : { item: k2vItemCodec.encode(item) }
      }
      case 'pollRange': {
        const range: K2vPollRange = {
          bucketId: req.bucketId,
          partitionKey: req.pk,
          prefix: req.prefix,
          start: req.start,
          end: req.end,
        }
        const items = await this.#localPollRange(range, req.seen, req.timeoutMs, signal)
        return { node: this.#o.self, items: items.map((i) => k2vItemCodec.encode(i)) }
      }
    }
  }

  /** Orders one write on this node (Garage's `local_insert`) inside `tx`. */
  #localInsert(tx: Transaction, w: WireInsert): K2vItem | undefined {
    const data = this.#o.itemTable.data
    const writer = makeK2vNodeId(this.#o.self)
    const now = this.#clock()
    const key = data.treeKey(k2vPartitionBytes(w.bucketId, w.pk), utf8(w.sk))
    const raw = tx.get(data.store, key)
    const cur = raw === undefined ? newK2vItem(w.bucketId, w.pk, w.sk) : data.schema.codec.decode(raw)
    const tsRaw = tx.get(this.#timestamps, TIMESTAMP_KEY)
    const oldTs = tsRaw === undefined ? 0 : Number(Buffer.from(tsRaw).readBigUInt64BE(0))
    const { item, time } = updateK2vItem(cur, writer, w.ct === undefined ? undefined : new Map(w.ct), w.v, Math.max(oldTs, now))
    const ts = Buffer.alloc(8)
    ts.writeBigUInt64BE(BigInt(time))
    tx.insert(this.#timestamps, TIMESTAMP_KEY, ts)
    return data.updateInTx(tx, item)
  }

  /** Garage's `handle_poll_item`, with the timeout: the local copy once it is newer than `ct`. */
  #localPollItem(
    bucketId: Uuid,
    pk: string,
    sk: string,
    ct: VectorClock,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<K2vItem | undefined> {
    return waitFor<K2vItem>(timeoutMs, signal, (done) => {
      const unsubscribe = this.#o.subscriptions.subscribeItem(bucketId, pk, sk, (item) => {
        if (vclockGt(causalContextOf(item), ct)) done(item)
      })
      const local = this.#o.itemTable.data.read(k2vPartitionBytes(bucketId, pk), utf8(sk)) ?? newK2vItem(bucketId, pk, sk)
      if (vclockGt(causalContextOf(local), ct)) done(local)
      return unsubscribe
    })
  }

  /** Garage's `handle_poll_range`: new items now, else the first new one to arrive; none at the timeout. */
  async #localPollRange(
    range: K2vPollRange,
    seenStr: string | undefined,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<K2vItem[]> {
    if (seenStr === undefined) return this.#readRangeLocal(range, new RangeSeenMarker())
    const seen = RangeSeenMarker.decode(seenStr)
    if (seen === undefined) throw new ModelError('BadRequest', 'Invalid seenMarker')
    const items = await waitFor<K2vItem[]>(timeoutMs, signal, (done) => {
      const unsubscribe = this.#o.subscriptions.subscribePartition(range.bucketId, range.partitionKey, (item) => {
        if (pollRangeMatches(range, item.sortKey) && seen.isNewItem(item)) done([item])
      })
      const now = this.#readRangeLocal(range, seen)
      if (now.length > 0) done(now)
      return unsubscribe
    })
    return items ?? []
  }

  #readRangeLocal(range: K2vPollRange, seen: RangeSeenMarker): K2vItem[] {
    const data = this.#o.itemTable.data
    const start = range.start ?? range.prefix
    const out: K2vItem[] = []
    for (const item of data.readRange(k2vPartitionBytes(range.bucketId, range.partitionKey), {
      ...(start === undefined ? {} : { start: utf8(start) }),
      limit: Number.MAX_SAFE_INTEGER,
    })) {
      if (range.end !== undefined && item.sortKey >= range.end) break
      if (range.prefix !== undefined && !item.sortKey.startsWith(range.prefix)) {
        if (item.sortKey > range.prefix) break
        continue
      }
      if (seen.isNewItem(item)) out.push(item)
    }
    return out
  }
}

/**
 * Runs `start(done)`, which subscribes and may call `done` at once; resolves with the first value
 * given to `done`, or undefined when `timeoutMs` passes or `signal` aborts. Unsubscribes then.
 */
function waitFor<T>(timeoutMs: number, signal: AbortSignal, start: (done: (v: T) => void) => () => void): Promise<T | undefined> {
  return new Promise<T | undefined>((resolve) => {
    let settled = false
    let unsubscribe: (() => void) | undefined
    const finish = (v: T | undefined): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
      unsubscribe?.()
      resolve(v)
    }
    const onAbort = (): void => finish(undefined)
    const timer = setTimeout(() => finish(undefined), timeoutMs)
    signal.addEventListener('abort', onAbort, { once: true })
    unsubscribe = start((v) => finish(v))
    if (settled) unsubscribe()
  })
}

function parseRequest(v: unknown): K2vRpcRequest {
  const r = v as Record<string, unknown> | null
  const bytes = (x: unknown): x is Uint8Array => x instanceof Uint8Array
  const str = (x: unknown): x is string => typeof x === 'string'
  const optStr = (x: unknown): boolean => x === undefined || x === null || typeof x === 'string'
  const clock = (x: unknown): x is Array<[string, number]> =>
    Array.isArray(x) && x.every((p) => Array.isArray(p) && str(p[0]) && Number.isSafeInteger(p[1]))
  if (typeof r === 'object' && r !== null) {
    if (r.op === 'insert' && Array.isArray(r.items)) {
      const items: WireInsert[] = []
      for (const it of r.items as Array<Record<string, unknown>>) {
        if (typeof it !== 'object' || it === null) break
        if (!bytes(it.bucketId) || !str(it.pk) || !str(it.sk) || !(it.v === null || bytes(it.v))) break
        if (!(it.ct === undefined || it.ct === null || clock(it.ct))) break
        items.push({ bucketId: it.bucketId, pk: it.pk, sk: it.sk, v: it.v, ...(clock(it.ct) ? { ct: it.ct } : {}) })
      }
      if (items.length === r.items.length) return { op: 'insert', items }
    }
    const timeoutOk = typeof r.timeoutMs === 'number' && Number.isSafeInteger(r.timeoutMs) && r.timeoutMs >= 0
    if (r.op === 'pollItem' && bytes(r.bucketId) && str(r.pk) && str(r.sk) && clock(r.ct) && timeoutOk) {
      return { op: 'pollItem', bucketId: r.bucketId, pk: r.pk, sk: r.sk, ct: r.ct, timeoutMs: r.timeoutMs as number }
    }
    if (
      r.op === 'pollRange' &&
      bytes(r.bucketId) &&
      str(r.pk) &&
      optStr(r.prefix) &&
      optStr(r.start) &&
      optStr(r.end) &&
      optStr(r.seen) &&
      timeoutOk
    ) {
      const o = (x: unknown): string | undefined => (str(x) ? x : undefined)
      const prefix = o(r.prefix)
      const start = o(r.start)
      const end = o(r.end)
      const seen = o(r.seen)
      return {
        op: 'pollRange',
        bucketId: r.bucketId,
        pk: r.pk,
        ...(prefix === undefined ? {} : { prefix }),
        ...(start === undefined ? {} : { start }),
        ...(end === undefined ? {} : { end }),
        ...(seen === undefined ? {} : { seen }),
        timeoutMs: r.timeoutMs as number,
      }
    }
  }
  throw new GarageError('GARAGE_ERR_DECODE', 'malformed k2v request')
}
