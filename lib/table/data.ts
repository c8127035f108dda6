/**
 * A table's local storage on this node (port of garage_table::data): the entries tree, keyed by
 * `partition hash ‖ sort key`, the insert queue used for cross-table effects, and the two
 * anti-entropy queues filled in the transaction of every change: `merkle_todo` (item key →
 * blake2 of the new value, empty for a deletion; folded into the Merkle tree by
 * merkle.ts) and `gc_todo` (tombstones to garbage-collect, see gc.ts).
 */
import { type Db, MAX_KEY_BYTES, prefixEnd, type Transaction, type Tree } from '../db/db.ts'
import { GarageError } from '../util/errors.ts'
import { Notify } from '../util/background/worker.ts'
import { blake2sum, bytesEqual, concatBytes, type Hash } from '../util/data.ts'
import type { NodeId, TableReplication } from './replication.ts'
import type { TableSchema } from './schema.ts'

/** Where this node stands in the table's replication, for the tombstone GC rule. */
export interface TableDataOptions {
  /** Absent: every tombstone written here is queued for GC (a table on this node only). */
  replication?: TableReplication
  /** This node's id (with `replication`). */
  self?: NodeId
  /** Time source of the GC queue (tests). Default `Date.now`. */
  clock?: () => number
  /**
   * Whether changes are queued for the Merkle tree (`merkle_todo`). Default true. False on a
   * node alone (no `rpc_secret`): with no replica to compare with, the tree serves nothing, and
   * keeping it was a seventh of a small PUT's CPU there. The tree is rebuilt from the entries
   * when such a node joins a cluster (MerkleUpdater.checkPartitioning).
   */
  merkle?: boolean
}

/**
 * Longest sort key a table stores, in bytes. The longest lmdb key a table writes is a GC queue
 * item: `u64 time (8) ‖ partition hash (32) ‖ sort key`, so the sort key gets what the engine's
 * limit leaves after those 40 bytes. (Entry, Merkle-todo and insert-queue keys are
 * `partition hash ‖ sort key`; a reverse range bound adds one byte; Merkle node keys are short.)
 */
export const MAX_SORT_KEY_BYTES = MAX_KEY_BYTES - 8 - 32

/**
 * Throws `GARAGE_ERR_KEY_TOO_LONG` for a sort key longer than {@link MAX_SORT_KEY_BYTES}, before
 * any tree is read or written. Names from clients are checked against their own, lower limits
 * first (model/names.ts); this is the net under every table.
 */
export function checkSortKey(tableName: string, sortKey: Uint8Array): void {
  if (sortKey.length > MAX_SORT_KEY_BYTES) {
    throw new GarageError(
      'GARAGE_ERR_KEY_TOO_LONG',
      `${tableName}: sort key is ${sortKey.length} bytes; a table takes at most ${MAX_SORT_KEY_BYTES}`,
    )
  }
}

export interface LocalRangeOptions<E> {
  /** First sort key to consider (inclusive; exclusive upper bound in reverse order is not used). */
  start?: Uint8Array
  /** Keep only entries for which this returns true. */
  filter?: (entry: E) => boolean
  limit: number
  reverse?: boolean
}

/** Entries {@link TableData.readShared} keeps decoded, per table. */
const SHARED_ENTRIES = 256

export class TableData<E> {
  readonly schema: TableSchema<E>
  readonly db: Db
  readonly store: Tree
  readonly insertQueue: Tree
  /** Item key → blake2 of its new stored value, or empty after a deletion. */
  readonly merkleTodo: Tree
  /** Merkle nodes (merkle.ts). */
  readonly merkleTree: Tree
  /** `u64 BE time the tombstone was written ‖ item key` → blake2 of the tombstone's value. */
  readonly gcTodo: Tree
  /** Notified when `merkleTodo` gets an item. */
  readonly merkleTodoNotify = new Notify()
  readonly #o: TableDataOptions
  /** The codec's marker of the current format (the first bytes of every value it encodes). */
  readonly #marker: Uint8Array
  /** Changes are queued for the Merkle tree (TableDataOptions.merkle). */
  readonly #merkle: boolean
  /** Whether changes are queued for the Merkle tree (TableDataOptions.merkle). */
  get keepsMerkle(): boolean {
    return this.#merkle
  }
  /** {@link readShared}'s decoded entries, by tree key (latin1), with the bytes they came from. */
  readonly #shared = new Map<string, { raw: Uint8Array; entry: E }>()
  constructor(schema: TableSchema<E>, db: Db, options: TableDataOptions = {}) {
    this.schema = schema
    this.#marker = new TextEncoder().encode(schema.codec.marker)
    this.db = db
    this.#o = options
    this.#merkle = options.merkle ?? true
    this.store = db.openTree(`${schema.tableName}:table`)
    this.insertQueue = db.openTree(`${schema.tableName}:insert_queue`)
    this.merkleTodo = db.openTree(`${schema.tableName}:merkle_todo`)
    this.merkleTree = db.openTree(`${schema.tableName}:merkle_tree`)
    this.gcTodo = db.openTree(`${schema.tableName}:gc_todo`)
  }

  /** `partition hash ‖ sort key`; throws `GARAGE_ERR_KEY_TOO_LONG` for an over-long sort key. */
  treeKey(partitionKey: Uint8Array, sortKey: Uint8Array): Uint8Array {
    checkSortKey(this.schema.tableName, sortKey)
    return concatBytes(this.schema.partitionHash(partitionKey), sortKey)
  }

  entryKey(entry: E): Uint8Array {
    return this.treeKey(this.schema.partitionKey(entry), this.schema.sortKey(entry))
  }

  read(partitionKey: Uint8Array, sortKey: Uint8Array): E | undefined {
    const raw = this.store.get(this.treeKey(partitionKey, sortKey))
    return raw === undefined ? undefined : this.schema.codec.decode(raw)
  }

  /**
   * As {@link read}, but the decoded entry is kept and handed out again while the stored bytes
   * stay the same (compared at each read): for the few rows every request reads (its access key,
   * its bucket and alias), decoding them was a tenth of a small GET. The entry is shared between
   * callers: read-only. At most {@link SHARED_ENTRIES} are kept, the oldest dropped first.
   */
  readShared(partitionKey: Uint8Array, sortKey: Uint8Array): E | undefined {
    const key = this.treeKey(partitionKey, sortKey)
    const raw = this.store.get(key)
    const id = Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1')
    if (raw === undefined) {
      this.#shared.delete(id)
      return undefined
    }
    const hit = this.#shared.get(id)
    if (hit !== undefined && bytesEqual(hit.raw, raw)) return hit.entry
    const entry = this.schema.codec.decode(raw)
    if (hit === undefined && this.#shared.size >= SHARED_ENTRIES) {
      const oldest = this.#shared.keys().next()
      if (oldest.done !== true) this.#shared.delete(oldest.value)
    }
    this.#shared.set(id, { raw, entry })
    return entry
  }

  /** Entries of one partition, in sort key order, lazily filtered. */
  readRange(partitionKey: Uint8Array, options: LocalRangeOptions<E>): E[] {
    const hash = this.schema.partitionHash(partitionKey)
    return this.readRangeByHash(hash, options)
  }

  readRangeByHash(hash: Hash, options: LocalRangeOptions<E>): E[] {
    const end = prefixEnd(hash)
    const reverse = options.reverse ?? false
    const out: E[] = []
    if (options.start !== undefined) checkSortKey(this.schema.tableName, options.start)
    const from = options.start === undefined ? undefined : concatBytes(hash, options.start)
    const range = reverse
      ? { start: from === undefined ? end : nextKey(from), end: hash, reverse: true }
      : { start: from ?? hash, end, reverse: false }
    for (const [key, raw] of this.store.range(range)) {
      if (!hasPrefix(key, hash)) continue
      const e = this.schema.codec.decode(raw)
      if (options.filter !== undefined && !options.filter(e)) continue
      out.push(e)
      if (out.length >= options.limit) break
    }
    return out
  }

  /**
   * Stored values of one partition from sort key `start` (inclusive) on, in sort key order, read
   * lazily and not decoded (listings that read a few fields of each row). Stop iterating (break)
   * to release lmdb's read snapshot.
   */
  rawRange(partitionKey: Uint8Array, start: Uint8Array): Iterable<Uint8Array> {
    checkSortKey(this.schema.tableName, start)
    const hash = this.schema.partitionHash(partitionKey)
    return this.store.values({ start: concatBytes(hash, start), end: prefixEnd(hash) })
  }

  /** Merges `entry` into the stored value; returns the new value if it changed. */
  update(entry: E): E | undefined {
    return this.db.transaction((tx) => this.updateInTx(tx, entry))
  }

  updateMany(entries: readonly E[]): void {
    this.db.transaction((tx) => {
      for (const e of entries) this.updateInTx(tx, e)
    })
  }

  /**
   * Merges `entry` in `tx`; returns the new value if it changed. `raw`: the entry as its writer
   * or a peer encoded it (a write's request, anti-entropy, hand-over), which spares work in two
   * common cases: the same bytes as stored merge to themselves (a joining node may get a page
   * from more than one old holder), and a new entry in the current format is stored as received
   * instead of re-encoded.
   */
  updateInTx(tx: Transaction, entry: E, raw?: Uint8Array): E | undefined {
    const key = this.entryKey(entry)
    const oldRaw = tx.get(this.store, key)
    if (raw !== undefined && oldRaw !== undefined && bytesEqual(oldRaw, raw)) return undefined
    const old = oldRaw === undefined ? undefined : this.schema.codec.decode(oldRaw)
    const next = old === undefined ? entry : this.schema.merge(old, entry)
    const nextRaw = old === undefined && raw !== undefined && hasPrefix(raw, this.#marker) ? raw : this.schema.codec.encode(next)
    if (oldRaw !== undefined && bytesEqual(oldRaw, nextRaw)) return undefined
    tx.insert(this.store, key, nextRaw)
    const tombstone = this.schema.isTombstone(next)
    if (this.#merkle || tombstone) {
      const valueHash = blake2sum(nextRaw)
      if (this.#merkle) tx.insert(this.merkleTodo, key, valueHash)
      if (tombstone && this.#gcLeader(key)) tx.insert(this.gcTodo, gcTodoKey((this.#o.clock ?? Date.now)(), key), valueHash)
    }
    this.schema.updated?.(tx, old, next)
    // A wake-up for nothing (if the transaction aborts) is harmless.
    if (this.#merkle) this.merkleTodoNotify.notify()
    return next
  }

  /**
   * Garage's rule: only the first storage node of an entry queues its tombstone for GC, which
   * avoids GC loops; GC then waits for every holder anyway.
   */
  #gcLeader(key: Uint8Array): boolean {
    const r = this.#o.replication
    if (r === undefined) return true
    return r.storageNodes(key.subarray(0, 32))[0] === this.#o.self
  }

  /** Decodes and merges raw entries received from a peer (anti-entropy, hand-over, GC), in one transaction. */
  updateManyRaw(raws: readonly Uint8Array[]): void {
    this.updateManyEncoded(raws)
  }

  /** Decodes and merges encoded entries (a write's, or a peer's) in one transaction. */
  updateManyEncoded(raws: readonly Uint8Array[]): void {
    const entries = raws.map((r) => this.schema.codec.decode(r))
    this.db.transaction((tx) => {
      for (const [i, e] of entries.entries()) this.updateInTx(tx, e, raws[i])
    })
  }

  /**
   * Deletes the entry at `key` if its stored value is still `raw` (offload after a handover).
   * The schema's hook sees the deletion. Returns whether it was deleted.
   */
  deleteIfEqual(key: Uint8Array, raw: Uint8Array): boolean {
    return this.#deleteIf(key, (cur) => bytesEqual(cur, raw))
  }

  /** Deletes the entry at `key` if blake2 of its stored value is `hash` (tombstone GC). */
  deleteIfEqualHash(key: Uint8Array, hash: Hash): boolean {
    return this.#deleteIf(key, (cur) => bytesEqual(blake2sum(cur), hash))
  }

  /**
   * {@link deleteIfEqualHash} of many entries in one transaction (the GC of a batch of
   * tombstones): one commit instead of one per entry. Returns how many were deleted.
   */
  deleteManyIfEqualHash(items: ReadonlyArray<readonly [Uint8Array, Hash]>): number {
    const deleted = this.db.transaction((tx) => {
      let n = 0
      for (const [key, hash] of items) if (this.#deleteInTx(tx, key, (cur) => bytesEqual(blake2sum(cur), hash))) n++
      return n
    })
    if (deleted > 0 && this.#merkle) this.merkleTodoNotify.notify()
    return deleted
  }

  #deleteIf(key: Uint8Array, test: (cur: Uint8Array) => boolean): boolean {
    const deleted = this.db.transaction((tx) => this.#deleteInTx(tx, key, test))
    if (deleted && this.#merkle) this.merkleTodoNotify.notify()
    return deleted
  }

  #deleteInTx(tx: Transaction, key: Uint8Array, test: (cur: Uint8Array) => boolean): boolean {
    const cur = tx.get(this.store, key)
    if (cur === undefined || !test(cur)) return false
    tx.remove(this.store, key)
    if (this.#merkle) tx.insert(this.merkleTodo, key, new Uint8Array(0))
    this.schema.updated?.(tx, this.schema.codec.decode(cur), undefined)
    return true
  }

  /** Adds `entry` to the persistent insert queue, merged with any queued value for its key. */
  queueInsert(tx: Transaction, entry: E): void {
    const key = this.entryKey(entry)
    const queued = tx.get(this.insertQueue, key)
    const value = queued === undefined ? entry : this.schema.merge(this.schema.codec.decode(queued), entry)
    tx.insert(this.insertQueue, key, this.schema.codec.encode(value))
  }

  /** Up to `limit` queued entries with their raw values (to remove them only if unchanged). */
  peekQueue(limit: number): Array<{ key: Uint8Array; raw: Uint8Array; entry: E }> {
    const out: Array<{ key: Uint8Array; raw: Uint8Array; entry: E }> = []
    for (const [key, raw] of this.insertQueue.range({ limit })) {
      out.push({ key, raw, entry: this.schema.codec.decode(raw) })
    }
    return out
  }

  /** Removes queue items that were not re-queued since they were peeked. */
  dequeue(items: ReadonlyArray<{ key: Uint8Array; raw: Uint8Array }>): void {
    this.db.transaction((tx) => {
      for (const it of items) {
        const cur = tx.get(this.insertQueue, it.key)
        if (cur !== undefined && bytesEqual(cur, it.raw)) tx.remove(this.insertQueue, it.key)
      }
    })
  }
}

/** Key of a GC queue item: the time the tombstone was written (u64 BE), then the item key. */
export function gcTodoKey(time: number, key: Uint8Array): Uint8Array {
  if (!Number.isFinite(time)) throw new RangeError(`GC queue time ${time} is not a number of milliseconds`)
  const out = new Uint8Array(8 + key.length)
  // Big-endian by hand: a DataView would move this small array out of V8's heap (see asBuffer).
  let t = Math.max(0, Math.floor(time))
  for (let i = 7; i >= 0; i--) {
    out[i] = t % 256
    t = Math.floor(t / 256)
  }
  out.set(key, 8)
  return out
}

/** Splits a GC queue key into its time and item key. */
export function parseGcTodoKey(k: Uint8Array): { time: number; key: Uint8Array } {
  if (k.length < 8) throw new GarageError('GARAGE_ERR_DECODE', `GC queue key of ${k.length} bytes (at least 8)`)
  let time = 0
  for (let i = 0; i < 8; i++) time = time * 256 + (k[i] as number)
  return { time, key: k.subarray(8) }
}

function hasPrefix(key: Uint8Array, prefix: Uint8Array): boolean {
  if (key.length < prefix.length) return false
  for (let i = 0; i < prefix.length; i++) if (key[i] !== prefix[i]) return false
  return true
}

/** The smallest key strictly greater than `key`. */
function nextKey(key: Uint8Array): Uint8Array {
  return concatBytes(key, new Uint8Array([0]))
}
