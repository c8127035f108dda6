/**
 * Garbage collection of a table's tombstones (port of garage_table::gc). A tombstone written on
 * the first storage node of its entry is queued in `<table>:gc_todo` with the hash of its value.
 * Once it is {@link TABLE_GC_DELAY_MS} old, {@link TableGc}:
 * 1. pushes the tombstone to every other storage node (all must acknowledge), so each has it or
 *    something newer that overrides it;
 * 2. asks each of them to delete the entry if its value hash is still the tombstone's;
 * 3. deletes it locally under the same condition.
 * A tombstone that changed in the meantime is dropped from the queue (it is no longer one, or a
 * newer tombstone was queued). A failed batch is retried after a pause (60 s by default).
 * The delay guards against resurrecting data through a node that missed the tombstone.
 * @internal
 */
import type { RpcEndpoint } from '../net/endpoint.ts'
import { defineEndpoint } from '../net/endpoint.ts'
import type { NetApp } from '../net/netapp.ts'
import { Notify, type Worker, type WorkerState } from '../util/background/worker.ts'
import { blake2sum, bytesEqual, type Hash } from '../util/data.ts'
import { GarageError, unreachable } from '../util/errors.ts'
import type { Logger } from '../util/logger.ts'
import { type TableData, parseGcTodoKey } from './data.ts'
import type { NodeId, TableReplication } from './replication.ts'

/** How old a tombstone must be before it is collected (Garage: 24 h). */
export const TABLE_GC_DELAY_MS = 24 * 3600_000
/** Pause after a failed batch (Garage: 60 s). */
export const TABLE_GC_RETRY_MS = 60_000
const BATCH = 1024
const RPC_TIMEOUT_MS = 30_000

/** Messages of the GC protocol. @internal */
export type GcRequest =
  /** Merge these entries (tombstones, encoded with the table's codec). */
  | { op: 'update'; items: Uint8Array[] }
  /** Delete each entry whose stored value still hashes to the given hash. */
  | { op: 'delete'; items: Array<[key: Uint8Array, hash: Uint8Array]> }

/** The GC endpoint of a table. Never renamed once shipped. @internal */
export const tableGcEndpoint = (table: string): RpcEndpoint<GcRequest, { ok: true }> =>
  defineEndpoint<GcRequest, { ok: true }>(`table-gc/${table}`)

/** @internal */
export interface TableGcOptions<E> {
  data: TableData<E>
  replication: TableReplication
  self: NodeId
  /** Absent on a node alone: no peer to tell. */
  netApp?: NetApp
  log: Logger
  /** Default {@link TABLE_GC_DELAY_MS}. */
  delayMs?: number
  /** Default {@link TABLE_GC_RETRY_MS}. */
  retryMs?: number
  /** Time source (tests). Default `Date.now`. */
  clock?: () => number
  /**
   * Nodes that held the entry in retired layout versions and may still hold a stale copy they
   * have not handed over yet. They get the tombstone too (best effort, without waiting for
   * their answer to decide), so that their handover cannot bring back what it deleted.
   */
  formerHolders?: (hash: Uint8Array) => NodeId[]
}

interface Candidate {
  todoKey: Uint8Array
  key: Uint8Array
  hash: Hash
  value: Uint8Array
}

/** The tombstone GC worker of one table. @internal */
export class TableGc<E> implements Worker {
  readonly name: string
  readonly #o: TableGcOptions<E>
  readonly #endpoint: RpcEndpoint<GcRequest, { ok: true }>
  readonly #notify = new Notify()
  readonly #delayMs: number
  readonly #retryMs: number
  readonly #clock: () => number
  /** When the next step may run (after a failure, or when the oldest tombstone is due). */
  #wakeAt = 0
  #collected = 0

  constructor(o: TableGcOptions<E>) {
    this.#o = o
    this.name = `${o.data.schema.tableName} GC`
    this.#endpoint = tableGcEndpoint(o.data.schema.tableName)
    this.#delayMs = o.delayMs ?? TABLE_GC_DELAY_MS
    this.#retryMs = o.retryMs ?? TABLE_GC_RETRY_MS
    this.#clock = o.clock ?? Date.now
  }

  /** Registers the RPC handler (nodes in a cluster). Call once. */
  register(): void {
    this.#o.netApp?.handle(this.#endpoint, (req) => this.handle(req))
  }

  /** Answers a peer's GC request. */
  handle(req: GcRequest): { ok: true } {
    switch (req.op) {
      case 'update':
        this.#o.data.updateManyRaw(req.items)
        return { ok: true }
      case 'delete':
        this.#o.data.deleteManyIfEqualHash(req.items)
        return { ok: true }
      default:
        throw unreachable(req)
    }
  }

  /** Tombstones waiting in the queue. */
  todoLength(): number {
    return this.#o.data.gcTodo.count()
  }

  info(): Record<string, number> {
    return { todoLength: this.todoLength(), collected: this.#collected }
  }

  async work(signal: AbortSignal): Promise<WorkerState> {
    const now = this.#clock()
    if (now < this.#wakeAt) return 'idle'
    const data = this.#o.data
    const candidates: Candidate[] = []
    const excluded: Array<[Uint8Array, Uint8Array]> = []
    for (const [todoKey, hash] of data.gcTodo.range()) {
      const { time, key } = parseGcTodoKey(todoKey)
      if (time + this.#delayMs > now) {
        if (candidates.length === 0 && excluded.length === 0) {
          this.#wakeAt = time + this.#delayMs
          return 'idle'
        }
        break
      }
      const value = data.store.get(key)
      if (value !== undefined && bytesEqual(blake2sum(value), hash)) candidates.push({ todoKey, key, hash, value })
      else excluded.push([todoKey, hash])
      if (candidates.length >= BATCH) break
    }
    if (excluded.length > 0) this.#removeTodo(excluded)
    if (candidates.length === 0) {
      // Queue empty: anything queued from now on is due `delay` later at the earliest.
      if (excluded.length === 0) this.#wakeAt = now + this.#delayMs
      return excluded.length === 0 ? 'idle' : 'busy'
    }
    // Group by the set of other holders, so each group is one pair of calls per node.
    const groups = new Map<string, { nodes: NodeId[]; former: NodeId[]; items: Candidate[] }>()
    for (const c of candidates) {
      const hash = c.key.subarray(0, 32)
      const holders = this.#o.replication.storageNodes(hash)
      const nodes = holders.filter((n) => n !== this.#o.self).sort()
      const former = (this.#o.formerHolders?.(hash) ?? []).filter((n) => n !== this.#o.self && !holders.includes(n)).sort()
      const id = `${nodes.join(',')}/${former.join(',')}`
      const g = groups.get(id)
      if (g === undefined) groups.set(id, { nodes, former, items: [c] })
      else g.items.push(c)
    }
    const results = await Promise.allSettled(
      [...groups.values()].map((g) => this.#sendAndDelete(g.nodes, g.former, g.items, signal)),
    )
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason)
    if (failures.length > 0) {
      this.#wakeAt = this.#clock() + this.#retryMs
      throw new GarageError(
        'GARAGE_ERR_REMOTE',
        `GC of ${data.schema.tableName}: ${failures.length} of ${groups.size} group(s) failed; retrying in ${this.#retryMs} ms`,
        { cause: new AggregateError(failures) },
      )
    }
    return 'busy'
  }

  waitForWork(signal: AbortSignal): Promise<void> {
    const ms = Math.min(2 ** 31 - 1, Math.max(1, this.#wakeAt - this.#clock()))
    return this.#notify.wait(signal, ms)
  }

  async #sendAndDelete(nodes: NodeId[], former: NodeId[], items: Candidate[], signal: AbortSignal): Promise<void> {
    const update: GcRequest = { op: 'update', items: items.map((c) => c.value) }
    const remove: GcRequest = { op: 'delete', items: items.map((c) => [c.key, c.hash]) }
    await this.#tellFormer(former, update, signal)
    if (nodes.length > 0) {
      await this.#callAll(nodes, update, signal)
      this.#o.log.debug(`GC of ${this.#o.data.schema.tableName}: ${items.length} tombstone(s) pushed, deleting`)
      await this.#callAll(nodes, remove, signal)
    }
    await this.#tellFormer(former, remove, signal)
    this.#collected += this.#o.data.deleteManyIfEqualHash(items.map((c) => [c.key, c.hash] as const))
    this.#removeTodo(items.map((c) => [c.todoKey, c.hash]))
  }

  /** Best effort: a former holder may be gone for good; the GC delay covers the others. */
  async #tellFormer(former: NodeId[], req: GcRequest, signal: AbortSignal): Promise<void> {
    const net = this.#o.netApp
    if (former.length === 0 || net === undefined) return
    const opts = { priority: 'background' as const, timeoutMs: RPC_TIMEOUT_MS, signal }
    const r = await Promise.allSettled(former.map((n) => net.call(n, this.#endpoint, req, opts)))
    const failed = r.filter((x) => x.status === 'rejected').length
    if (failed > 0) this.#o.log.debug(`GC: ${failed} former holder(s) did not answer '${req.op}'`)
  }

  /** Every node must answer; the first failure is thrown. */
  async #callAll(nodes: NodeId[], req: GcRequest, signal: AbortSignal): Promise<void> {
    const net = this.#o.netApp
    if (net === undefined) throw new GarageError('GARAGE_ERR_INTERNAL', 'table GC needs the RPC transport to reach other nodes')
    await Promise.all(
      nodes.map((n) => net.call(n, this.#endpoint, req, { priority: 'background', timeoutMs: RPC_TIMEOUT_MS, signal })),
    )
  }

  /** Removes queue items whose value is still `hash` (a newer tombstone has another key). */
  #removeTodo(items: ReadonlyArray<[Uint8Array, Uint8Array]>): void {
    const data = this.#o.data
    data.db.transaction((tx) => {
      for (const [k, hash] of items) {
        const cur = tx.get(data.gcTodo, k)
        if (cur !== undefined && bytesEqual(cur, hash)) tx.remove(data.gcTodo, k)
      }
    })
  }
}
