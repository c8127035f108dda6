/**
 * A table's local storage on this node (port of garage_table::data): the entries tree, keyed by
 * `partition hash ‖ sort key`, and the insert queue used for cross-table effects.
 */
import { type Db, prefixEnd, type Transaction, type Tree } from '../db/db.ts'
import { bytesEqual, concatBytes, type Hash } from '../util/data.ts'
import type { TableSchema } from './schema.ts'

export interface LocalRangeOptions<E> {
  /** First sort key to consider (inclusive; exclusive upper bound in reverse order is not used). */
  start?: Uint8Array
  /** Keep only entries for which this returns true. */
  filter?: (entry: E) => boolean
  limit: number
  reverse?: boolean
}

export class TableData<E> {
  readonly schema: TableSchema<E>
  readonly db: Db
  readonly store: Tree
  readonly insertQueue: Tree
  constructor(schema: TableSchema<E>, db: Db) {
    this.schema = schema
    this.db = db
    this.store = db.openTree(`${schema.tableName}:table`)
    this.insertQueue = db.openTree(`${schema.tableName}:insert_queue`)
  }

  treeKey(partitionKey: Uint8Array, sortKey: Uint8Array): Uint8Array {
    return concatBytes(this.schema.partitionHash(partitionKey), sortKey)
  }

  entryKey(entry: E): Uint8Array {
    return this.treeKey(this.schema.partitionKey(entry), this.schema.sortKey(entry))
  }

  read(partitionKey: Uint8Array, sortKey: Uint8Array): E | undefined {
    const raw = this.store.get(this.treeKey(partitionKey, sortKey))
    return raw === undefined ? undefined : this.schema.codec.decode(raw)
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

  /** Merges `entry` into the stored value; returns the new value if it changed. */
  update(entry: E): E | undefined {
    return this.db.transaction((tx) => this.updateInTx(tx, entry))
  }

  updateMany(entries: readonly E[]): void {
    this.db.transaction((tx) => {
      for (const e of entries) this.updateInTx(tx, e)
    })
  }

  updateInTx(tx: Transaction, entry: E): E | undefined {
    const key = this.entryKey(entry)
    const oldRaw = tx.get(this.store, key)
    const old = oldRaw === undefined ? undefined : this.schema.codec.decode(oldRaw)
    const next = old === undefined ? entry : this.schema.merge(old, entry)
    const nextRaw = this.schema.codec.encode(next)
    if (oldRaw !== undefined && bytesEqual(oldRaw, nextRaw)) return undefined
    tx.insert(this.store, key, nextRaw)
    this.schema.updated?.(tx, old, next)
    return next
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

function hasPrefix(key: Uint8Array, prefix: Uint8Array): boolean {
  if (key.length < prefix.length) return false
  for (let i = 0; i < prefix.length; i++) if (key[i] !== prefix[i]) return false
  return true
}

/** The smallest key strictly greater than `key`. */
function nextKey(key: Uint8Array): Uint8Array {
  return concatBytes(key, new Uint8Array([0]))
}
