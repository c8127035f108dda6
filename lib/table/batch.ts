/**
 * Inserts into several tables as one write: each node gets one request carrying every entry it
 * stores, whatever the table, and merges them in one transaction. A request that writes an
 * object row and a version row, or a version entry and its block reference, then costs one
 * round trip and one RPC per node instead of one per table (Garage sends these as separate
 * RPCs at the same time, or one after the other).
 *
 * The guarantee is the one of {@link Table.insertMany} for every table: the write resolves when
 * every write set of every entry has reached the write quorum. A node's answer counts for every
 * set it belongs to, which is right because it received every entry whose write sets include
 * it. Entries are not atomic across nodes (a node may have merged the batch while another did
 * not), exactly as separate inserts: callers only batch writes whose order does not matter.
 * @internal
 */
import type { Transaction } from '../db/db.ts'
import { RpcHelper } from '../rpc/rpc-helper.ts'
import { GarageError } from '../util/errors.ts'
import type { Logger } from '../util/logger.ts'
import type { NodeId } from './replication.ts'
import type { InsertPlan, Table, TableBatchRequest, TableTransport } from './table.ts'

/** Entries for one table of a batch (build with {@link batchItem}, which keeps the types paired). @internal */
export interface BatchItem {
  readonly table: Table<unknown>
  readonly entries: readonly unknown[]
}

/** One table's part of a batch. @internal */
export function batchItem<E>(table: Table<E>, entries: readonly E[]): BatchItem {
  return { table: table as Table<unknown>, entries }
}

/**
 * Writes to this node's own trees (such as the upload guard's record) that go with a batch:
 * `before` commits before any entry of the batch is written anywhere, `after` once the batch has
 * reached its quorum (not when it fails). When every entry goes to this node alone, both run in
 * the batch's own transaction: one commit instead of three, atomic with the entries. @internal
 */
export interface LocalWrites {
  before?: ((tx: Transaction) => void) | undefined
  after?: ((tx: Transaction) => void) | undefined
}

/** A batch planned as one request per node (see {@link TableBatch.withPlan}). @internal */
export interface PlannedBatch {
  /** What each node is sent. */
  byNode: Map<NodeId, TableBatchRequest>
  /** Every write set of every entry: each must reach `quorum`. */
  sets: NodeId[][]
  quorum: number
  /**
   * Every request sent for this plan, filled by the sender: a write that must not overtake them
   * (the undo of a failed write) waits for them all to end, failed or not.
   */
  calls: Array<Promise<unknown>>
}

/** Resolves once every request sent for `planned` has ended, answered or failed. @internal */
export function plannedSettled(planned: PlannedBatch): Promise<void> {
  return Promise.allSettled(planned.calls).then(() => undefined)
}

const EMPTY = new Uint8Array(0)

/** The plans of a batch as one request per node (each with `prev`), and every write set. */
function groupByNode(
  plans: readonly InsertPlan[],
  prev: string | undefined,
): { byNode: Map<NodeId, TableBatchRequest>; sets: Map<string, NodeId[]> } {
  const byNode = new Map<NodeId, TableBatchRequest>()
  const sets = new Map<string, NodeId[]>()
  for (const plan of plans) {
    for (const [k, set] of plan.sets) sets.set(k, set)
    for (const [node, entries] of plan.byNode) {
      let req = byNode.get(node)
      if (req === undefined) {
        req = prev === undefined ? { items: [] } : { items: [], prev }
        byNode.set(node, req)
      }
      req.items.push({ table: plan.table, entries })
    }
  }
  return { byNode, sets }
}

export interface TableBatchOptions {
  self: NodeId
  /** Runs a function in one transaction of the database every table of the batch lives in. */
  transaction: <T>(fn: (tx: Transaction) => T) => T
  log: Logger
  transport?: TableTransport
  /** Deadline of a batch write (`rpc_timeout_msec`). Default 300 s. */
  timeoutMs?: number
  /** Aborted when the node stops. */
  signal?: AbortSignal
}

export class TableBatch {
  readonly #o: TableBatchOptions
  readonly #rpc: RpcHelper
  readonly #tables = new Map<string, Table<unknown>>()

  constructor(tables: ReadonlyArray<Table<unknown>>, options: TableBatchOptions) {
    this.#o = options
    for (const t of tables) this.#tables.set(t.name, t)
    this.#rpc = new RpcHelper({
      log: options.log,
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    })
  }

  /**
   * Writes every item, each at its table's write quorum, with one request per node.
   * @throws QuorumError when a write set of any entry cannot reach its quorum in time.
   */
  async insert(items: readonly BatchItem[], local: LocalWrites = {}): Promise<void> {
    const live = items.filter((i) => i.entries.length > 0)
    if (live.length === 0) {
      this.#runLocal(local.before, local.after)
      return
    }
    for (const i of live) {
      if (this.#tables.get(i.table.name) !== i.table) {
        throw new GarageError('GARAGE_ERR_INTERNAL', `table ${i.table.name} is not part of this batch writer`)
      }
    }
    const plans: InsertPlan[] = []
    const unlocks: Array<() => void> = []
    try {
      for (const i of live) {
        const unlock = i.table.lockWrites()
        if (unlock !== undefined) unlocks.push(unlock)
        const plan = i.table.planInsert(i.entries)
        plans.push(plan)
      }
      const transport = this.#o.transport
      const alone = plans.every((p) => p.byNode.size === 1 && p.byNode.has(this.#o.self))
      // Tables with different write quorums (or a transport without batches) are written
      // separately, still at the same time: the same round trips, more requests. One table
      // (and not this node alone) is its own insert: the same request without the batch's wrapping.
      if (!this.#batchable(plans) || (live.length === 1 && !alone)) {
        this.#runLocal(local.before)
        await Promise.all(live.map((i) => i.table.insertMany(i.entries)))
        this.#runLocal(local.after)
        return
      }
      const { byNode, sets } = groupByNode(plans, undefined)
      // This node alone: its own error is the answer (no quorum to speak of).
      if (byNode.size === 1 && byNode.has(this.#o.self)) {
        this.#handle(byNode.get(this.#o.self) as TableBatchRequest, local)
        return
      }
      this.#runLocal(local.before)
      await this.#rpc.tryWriteManySets(
        [...sets.values()],
        plans[0]?.quorum ?? 1,
        async (node, signal) => {
          const req = byNode.get(node) ?? { items: [] }
          if (node === this.#o.self) {
            this.handle(req)
            return
          }
          await (transport as Required<TableTransport>).callBatch(node, req, { signal })
        },
        this.#o.signal === undefined ? {} : { signal: this.#o.signal },
      )
      this.#runLocal(local.after)
    } finally {
      for (const u of unlocks) u()
    }
  }

  /** This node. */
  get self(): NodeId {
    return this.#o.self
  }

  /**
   * Whether these items would go as one request per node in order (what {@link withPlan}
   * needs), without locking or sending anything: a cheap early test before work that only the
   * one-request path needs (a block's hash, when the rows may not go with it anyway).
   * @internal
   */
  canSendTogether(items: readonly BatchItem[]): boolean {
    const plans = items.filter((i) => i.entries.length > 0).map((i) => i.table.planInsert(i.entries))
    return plans.length > 0 && this.#colocated(plans) && this.#batchable(plans)
  }

  /**
   * Runs `fn` with the items planned as one request per node, holding the tables' write locks
   * (as {@link insert} does) until it settles: `fn` sends the requests itself (a block put that
   * carries them, or {@link sendPlanned}). With `prev`, each node answers its copies of that
   * table's entries as they were before the batch. Items are merged in order on each node, in
   * one transaction. Answers undefined, without calling `fn`, when the items cannot go as one
   * request per node in order (tables with different quorums or nodes, no batch transport): the
   * caller then writes them another way.
   * @internal
   */
  async withPlan<T>(
    items: readonly BatchItem[],
    prev: Table<unknown> | undefined,
    fn: (planned: PlannedBatch) => Promise<T>,
  ): Promise<T | undefined> {
    const live = items.filter((i) => i.entries.length > 0)
    for (const i of live) {
      if (this.#tables.get(i.table.name) !== i.table) {
        throw new GarageError('GARAGE_ERR_INTERNAL', `table ${i.table.name} is not part of this batch writer`)
      }
    }
    const unlocks: Array<() => void> = []
    try {
      for (const i of live) {
        const unlock = i.table.lockWrites()
        if (unlock !== undefined) unlocks.push(unlock)
      }
      const plans = live.map((i) => i.table.planInsert(i.entries))
      if (plans.length === 0 || !this.#colocated(plans) || !this.#batchable(plans)) return undefined
      const { byNode, sets } = groupByNode(plans, prev?.name)
      return await fn({ byNode, sets: [...sets.values()], quorum: (plans[0] as InsertPlan).quorum, calls: [] })
    } finally {
      for (const u of unlocks) u()
    }
  }

  /**
   * Sends a planned batch (see {@link withPlan}): one request per node, resolving once every
   * write set has reached the quorum, with the answers received by then (the previous copies
   * `prev` asked for, by node; at least a quorum of each set). Each request is added to
   * `planned.calls` (see {@link plannedSettled}).
   * @throws QuorumError when a write set cannot reach its quorum in time.
   * @internal
   */
  async sendPlanned(planned: PlannedBatch): Promise<Map<NodeId, Uint8Array[]>> {
    const answers = new Map<NodeId, Uint8Array[]>()
    const self = planned.byNode.get(this.#o.self)
    // This node alone: its own error is the answer (no quorum to speak of).
    if (planned.byNode.size === 1 && self !== undefined) {
      answers.set(this.#o.self, this.handle(self))
      return answers
    }
    await this.#rpc.tryWriteManySets(
      planned.sets,
      planned.quorum,
      (node, signal) => {
        const req = planned.byNode.get(node) ?? { items: [] }
        const p = (async () => {
          const prev =
            node === this.#o.self
              ? this.handle(req)
              : await (this.#o.transport as Required<TableTransport>).callBatch(node, req, { signal })
          answers.set(node, prev)
        })()
        planned.calls.push(p)
        return p
      },
      this.#o.signal === undefined ? {} : { signal: this.#o.signal },
    )
    return answers
  }

  /**
   * Writes the items so that no node ever holds an item's entries without those of the items
   * before it (an object row before the version it announces, a version before the block
   * references that point at it): in one request per node, merged in one transaction, when every
   * node that stores an item also stores every item before it; otherwise one item after the
   * other, each at its write quorum first (two round trips instead of one).
   * @throws QuorumError when a write set cannot reach its quorum in time (later items are then
   * not written when the items are written in sequence).
   */
  async insertInOrder(items: readonly BatchItem[], local: LocalWrites = {}): Promise<void> {
    const live = items.filter((i) => i.entries.length > 0)
    const plans = live.map((i) => i.table.planInsert(i.entries))
    if (this.#colocated(plans) && this.#batchable(plans)) {
      await this.insert(live, local)
      return
    }
    this.#runLocal(local.before)
    for (const i of live) await i.table.insertMany(i.entries)
    this.#runLocal(local.after)
  }

  /** Runs local writes in one transaction of their own (none when there is nothing to run). */
  #runLocal(...writes: Array<((tx: Transaction) => void) | undefined>): void {
    const fns = writes.filter((w) => w !== undefined)
    if (fns.length === 0) return
    this.#o.transaction((tx) => {
      for (const fn of fns) fn(tx)
    })
  }

  /** True when every node storing an item's entries stores those of every item before it. */
  #colocated(plans: readonly InsertPlan[]): boolean {
    let before: Set<NodeId> | undefined
    for (const p of plans) {
      const nodes = new Set(p.byNode.keys())
      if (before !== undefined) for (const n of nodes) if (!before.has(n)) return false
      before = before === undefined ? nodes : new Set([...before].filter((n) => nodes.has(n)))
    }
    return true
  }

  /** True when {@link insert} sends these plans as one request per node (else: one per table). */
  #batchable(plans: readonly InsertPlan[]): boolean {
    const quorums = new Set(plans.map((p) => p.quorum))
    return quorums.size <= 1 && (this.#o.transport?.callBatch !== undefined || this.#localOnly(plans))
  }

  #localOnly(plans: readonly InsertPlan[]): boolean {
    return plans.every((p) => p.byNode.size === 1 && p.byNode.has(this.#o.self))
  }

  /**
   * Merges a batch addressed to this node (the RPC handler's body), every table in one
   * transaction: the rows and the cascades their hooks queue commit together, with `local`
   * (this node's own writes, when the batch is its own).
   * @throws GarageError GARAGE_ERR_DECODE for a table this node does not have.
   */
  handle(request: TableBatchRequest, local: LocalWrites = {}): Uint8Array[] {
    return this.#handle(request, local)
  }

  /**
   * {@link handle}, with this node's own writes in the same transaction. Answers the previous
   * copies of the `prev` table's entries (read in the transaction, before each is merged).
   */
  #handle(request: TableBatchRequest, local: LocalWrites): Uint8Array[] {
    const work = request.items.map((i) => {
      const table = this.#tables.get(i.table)
      if (table === undefined) throw new GarageError('GARAGE_ERR_DECODE', `table batch names an unknown table: ${i.table}`)
      return { table, raws: i.entries, entries: i.entries.map((r) => table.schema.codec.decode(r)) }
    })
    const prev: Uint8Array[] = []
    // With their encoded form: a new entry is stored as encoded (no second encoding).
    this.#o.transaction((tx) => {
      local.before?.(tx)
      for (const { table, raws, entries } of work) {
        const answer = table.name === request.prev
        for (const [j, e] of entries.entries()) {
          if (answer) prev.push(tx.get(table.data.store, table.data.entryKey(e)) ?? EMPTY)
          table.data.updateInTx(tx, e, raws[j])
        }
      }
      local.after?.(tx)
    })
    return prev
  }
}
