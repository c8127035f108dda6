/**
 * A replicated table (port of garage_table::table). Reads and writes go to the nodes the
 * replication strategy names, and succeed at its quorums. On a single node that is this node
 * only; the cluster transport plugs into {@link TableTransport}.
 */
import type { Transaction } from '../db/db.ts'
import { QuorumError } from '../util/errors.ts'
import type { Logger } from '../util/logger.ts'
import type { LocalRangeOptions, TableData } from './data.ts'
import type { NodeId, TableReplication } from './replication.ts'
import type { TableSchema } from './schema.ts'

/** Table operations a node answers for its peers (and for itself). */
export type TableRequest =
  | { op: 'update'; entries: Uint8Array[] }
  | { op: 'get'; partitionKey: Uint8Array; sortKey: Uint8Array }
  | { op: 'range'; partitionKey: Uint8Array; start?: Uint8Array; limit: number; reverse: boolean }

/** Sends a table request to a remote node. Absent on a single node. */
export interface TableTransport {
  call(node: NodeId, table: string, request: TableRequest): Promise<Uint8Array[]>
}

export interface TableOptions<E> {
  schema: TableSchema<E>
  data: TableData<E>
  replication: TableReplication
  self: NodeId
  log: Logger
  transport?: TableTransport
}

export interface RangeQuery<E> {
  start?: Uint8Array
  filter?: (entry: E) => boolean
  limit: number
  reverse?: boolean
}

export class Table<E> {
  readonly schema: TableSchema<E>
  readonly data: TableData<E>
  readonly #replication: TableReplication
  readonly #self: NodeId
  readonly #transport: TableTransport | undefined
  /** Called after entries are queued, so the queue worker wakes up. */
  onQueued: () => void = () => {}

  constructor(options: TableOptions<E>) {
    this.schema = options.schema
    this.data = options.data
    this.#replication = options.replication
    this.#self = options.self
    this.#transport = options.transport
  }

  get name(): string {
    return this.schema.tableName
  }

  async insert(entry: E): Promise<void> {
    await this.insertMany([entry])
  }

  /** Writes entries to their write sets and waits for the write quorum in each. */
  async insertMany(entries: readonly E[]): Promise<void> {
    if (entries.length === 0) return
    const byNode = new Map<NodeId, E[]>()
    const sets: NodeId[][] = []
    for (const e of entries) {
      const hash = this.schema.partitionHash(this.schema.partitionKey(e))
      for (const set of this.#replication.writeSets(hash)) {
        sets.push(set)
        for (const n of set) {
          const l = byNode.get(n)
          if (l === undefined) byNode.set(n, [e])
          else l.push(e)
        }
      }
    }
    const quorum = this.#replication.writeQuorum()
    const results = new Map<NodeId, unknown>()
    await Promise.all(
      [...byNode].map(async ([node, es]) => {
        try {
          await this.#call(node, { op: 'update', entries: es.map((e) => this.schema.codec.encode(e)) })
          results.set(node, true)
        } catch (err) {
          results.set(node, err)
        }
      }),
    )
    for (const set of sets) {
      const ok = set.filter((n) => results.get(n) === true).length
      if (ok < Math.min(quorum, set.length)) {
        // With a single replica there is no quorum to speak of: its own error is the answer.
        if (set.length === 1) throw results.get(set[0] as NodeId)
        throw new QuorumError(
          quorum,
          ok,
          set.map((n) => results.get(n)).filter((r) => r !== true),
        )
      }
    }
  }

  /** Reads one entry at the read quorum, merging the copies that answered. */
  async get(partitionKey: Uint8Array, sortKey: Uint8Array): Promise<E | undefined> {
    const hash = this.schema.partitionHash(partitionKey)
    const answers = await this.#readQuorum(hash, { op: 'get', partitionKey, sortKey })
    let merged: E | undefined
    for (const raws of answers) {
      for (const raw of raws) {
        const e = this.schema.codec.decode(raw)
        merged = merged === undefined ? e : this.schema.merge(merged, e)
      }
    }
    return merged
  }

  /** Entries of one partition from `start`, at most `limit` after filtering. */
  async getRange(partitionKey: Uint8Array, query: RangeQuery<E>): Promise<E[]> {
    const hash = this.schema.partitionHash(partitionKey)
    const nodes = this.#replication.readNodes(hash)
    // Local fast path: a single replica on this node needs no merge and can filter lazily.
    if (nodes.length === 1 && nodes[0] === this.#self) return this.data.readRange(partitionKey, query)
    const answers = await this.#readQuorum(hash, {
      op: 'range',
      partitionKey,
      start: query.start,
      limit: query.limit,
      reverse: query.reverse ?? false,
    })
    const merged = new Map<string, E>()
    for (const raws of answers) {
      for (const raw of raws) {
        const e = this.schema.codec.decode(raw)
        const k = Buffer.from(this.schema.sortKey(e)).toString('latin1')
        const prev = merged.get(k)
        merged.set(k, prev === undefined ? e : this.schema.merge(prev, e))
      }
    }
    const sorted = [...merged].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, e]) => e)
    if (query.reverse) sorted.reverse()
    const filtered = query.filter === undefined ? sorted : sorted.filter(query.filter)
    return filtered.slice(0, query.limit)
  }

  /** Queues `entry` for insertion from inside a transaction (cross-table effects). */
  queueInsert(tx: Transaction, entry: E): void {
    this.data.queueInsert(tx, entry)
    queueMicrotask(this.onQueued)
  }

  /** Answers a table request addressed to this node. */
  handle(request: TableRequest): Uint8Array[] {
    switch (request.op) {
      case 'update':
        this.data.updateMany(request.entries.map((r) => this.schema.codec.decode(r)))
        return []
      case 'get': {
        const raw = this.data.store.get(this.data.treeKey(request.partitionKey, request.sortKey))
        return raw === undefined ? [] : [raw]
      }
      case 'range': {
        const opts: LocalRangeOptions<E> = { start: request.start, limit: request.limit, reverse: request.reverse }
        return this.data.readRange(request.partitionKey, opts).map((e) => this.schema.codec.encode(e))
      }
    }
  }

  async #call(node: NodeId, request: TableRequest): Promise<Uint8Array[]> {
    if (node === this.#self) return this.handle(request)
    if (this.#transport === undefined) throw new Error(`no transport to reach node ${node}`)
    return this.#transport.call(node, this.name, request)
  }

  async #readQuorum(hash: Uint8Array, request: TableRequest): Promise<Uint8Array[][]> {
    const nodes = this.#replication.readNodes(hash)
    const quorum = Math.min(this.#replication.readQuorum(), nodes.length)
    const ordered = [...nodes].sort((a, b) => Number(b === this.#self) - Number(a === this.#self))
    const answers: Uint8Array[][] = []
    const failures: unknown[] = []
    for (const node of ordered) {
      if (answers.length >= quorum) break
      try {
        answers.push(await this.#call(node, request))
      } catch (err) {
        failures.push(err)
      }
    }
    if (answers.length < quorum && nodes.length === 1) throw failures[0]
    if (answers.length < quorum) throw new QuorumError(quorum, answers.length, failures)
    return answers
  }
}
