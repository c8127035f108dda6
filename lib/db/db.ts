/**
 * The metadata store interface (port of garage_db): named ordered trees of binary keys and values,
 * and synchronous write transactions spanning several trees. lmdb.ts is the engine the node runs;
 * memory.ts is an in-memory one for tests. test/db/conformance.ts runs against both.
 */

import { GarageError } from '../util/errors.ts'

/**
 * Longest key, in bytes, that every engine accepts: lmdb's default maximum key size (1978 bytes
 * with its default 4 KiB pages). Keys are checked against it before they reach the engine, so an
 * over-long key is a typed `GARAGE_ERR_KEY_TOO_LONG` error, never the engine's own (lmdb throws
 * "offset is out of bounds" on a long lookup, and silently misses on a slightly long one).
 */
export const MAX_KEY_BYTES = 1978

/** Throws `GARAGE_ERR_KEY_TOO_LONG` unless `key` fits {@link MAX_KEY_BYTES}. */
export function checkKeyLength(key: Uint8Array, what = 'key'): void {
  if (key.length > MAX_KEY_BYTES) {
    throw new GarageError(
      'GARAGE_ERR_KEY_TOO_LONG',
      `${what} is ${key.length} bytes; the metadata store takes at most ${MAX_KEY_BYTES}`,
    )
  }
}

export interface RangeOptions {
  /** Inclusive lower bound (upper bound when `reverse`). */
  start?: Uint8Array
  /** Exclusive upper bound (lower bound when `reverse`). */
  end?: Uint8Array
  reverse?: boolean
  limit?: number
}

export type Entry = [key: Uint8Array, value: Uint8Array]

export interface Tree {
  readonly name: string
  get(key: Uint8Array): Uint8Array | undefined
  range(options?: RangeOptions): Iterable<Entry>
  /**
   * The values of `range(options)`, without their keys: for a caller that reads many values and
   * needs nothing else (a listing page), cheaper per entry. The values may be views the engine
   * made for this call (each a fresh copy), read-only to the caller.
   */
  values(options?: RangeOptions): Iterable<Uint8Array>
  /** Number of entries (exact; may walk the tree). */
  count(): number
}

/** A write transaction: reads see the transaction's own writes. */
export interface Transaction {
  get(tree: Tree, key: Uint8Array): Uint8Array | undefined
  insert(tree: Tree, key: Uint8Array, value: Uint8Array): void
  remove(tree: Tree, key: Uint8Array): void
  range(tree: Tree, options?: RangeOptions): Iterable<Entry>
}

export interface Db {
  openTree(name: string): Tree
  /**
   * Runs `fn` in one atomic write transaction. If it throws, nothing it wrote is kept and the
   * error is rethrown. `fn` must be synchronous.
   */
  transaction<T>(fn: (tx: Transaction) => T): T
  /** Resolves once every committed write is on disk. */
  flush(): Promise<void>
  close(): Promise<void>
}

/** Smallest key strictly greater than every key starting with `prefix` (undefined: none). */
export function prefixEnd(prefix: Uint8Array): Uint8Array | undefined {
  const out = Uint8Array.from(prefix)
  for (let i = out.length - 1; i >= 0; i--) {
    if ((out[i] as number) < 0xff) {
      out[i] = (out[i] as number) + 1
      return out.subarray(0, i + 1)
    }
  }
  return undefined
}
