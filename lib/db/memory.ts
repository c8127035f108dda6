/**
 * An in-memory engine (Garage's garage_db has several engines behind one interface; this one is
 * for tests). It behaves as lmdb.ts does, and `test/db/conformance.ts` runs against both:
 *
 * - keys are ordered byte-wise (shorter first on a common prefix), as lmdb compares them;
 * - keys longer than {@link MAX_KEY_BYTES} are a typed `GARAGE_ERR_KEY_TOO_LONG` error, and a
 *   zero-length key is refused (lmdb refuses it too, with its own error);
 * - keys and values are copied in and out: a caller's later change to a buffer changes nothing;
 * - inside a transaction, every read (through the transaction or the trees) sees its writes, and a
 *   range being iterated is a live cursor: after the last key it returned, it moves to the next
 *   key present *now* (lmdb's cursor in a write transaction does the same);
 * - a range first iterated outside a transaction reads a snapshot taken at its first step, which
 *   later transactions do not change (lmdb's read transaction);
 * - a transaction inside a transaction is nested: if the inner one throws, only its writes are
 *   undone (lmdb-js's child transactions).
 *
 * Differences, all stricter than lmdb: a transaction function that returns a promise is refused
 * (its writes are undone) instead of holding the transaction open; a transaction object used after
 * its transaction ended throws instead of writing outside any transaction; every call after
 * `close()` is a `GARAGE_ERR_CLOSED` error. Opening a tree is not transactional (in lmdb, a tree
 * first opened inside a transaction that aborts is unusable). Nothing is persisted: `flush()`
 * resolves at once and `close()` drops everything.
 *
 * Storage is a sorted array per tree with binary search (O(log n) reads, O(n) inserts), shared
 * copy-on-write with snapshot iterators: a write copies the array only when a snapshot holds it.
 * @internal
 */

import { GarageError } from '../util/errors.ts'
import { checkKeyLength, type Db, type Entry, type RangeOptions, type Transaction, type Tree } from './db.ts'

const compare = (a: Uint8Array, b: Uint8Array): number => Buffer.compare(a, b)

/** First index whose key is `>= key` (`entries.length` if none). */
function lowerBound(entries: readonly Entry[], key: Uint8Array): number {
  let lo = 0
  let hi = entries.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (compare((entries[mid] as Entry)[0], key) < 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** First index whose key is `> key`. */
function upperBound(entries: readonly Entry[], key: Uint8Array): number {
  const i = lowerBound(entries, key)
  return i < entries.length && compare((entries[i] as Entry)[0], key) === 0 ? i + 1 : i
}

function checkKey(key: Uint8Array, what = 'key'): void {
  checkKeyLength(key, what)
  if (key.length === 0) throw new GarageError('GARAGE_ERR_DB', `${what} is empty; the metadata store needs at least one byte`)
}

const copy = (bytes: Uint8Array): Uint8Array => Uint8Array.from(bytes)
const copyEntry = ([key, value]: Entry): Entry => [copy(key), copy(value)]

class MemoryTree implements Tree {
  readonly name: string
  readonly db: MemoryDb
  /** Sorted by key. Never mutated while `shared` (a snapshot iterator holds it). */
  entries: Entry[] = []
  shared = false
  constructor(name: string, db: MemoryDb) {
    this.name = name
    this.db = db
  }

  get(key: Uint8Array): Uint8Array | undefined {
    this.db.checkOpen()
    checkKey(key)
    const i = lowerBound(this.entries, key)
    const e = this.entries[i]
    return e !== undefined && compare(e[0], key) === 0 ? copy(e[1]) : undefined
  }

  range(options: RangeOptions = {}): Iterable<Entry> {
    this.db.checkOpen()
    // Checked now, not when iteration starts, so the caller gets the error where it asked.
    if (options.start !== undefined) checkKeyLength(options.start, 'range start')
    if (options.end !== undefined) checkKeyLength(options.end, 'range end')
    return this.#iterate({ ...options })
  }

  values(options: RangeOptions = {}): Iterable<Uint8Array> {
    const entries = this.range(options)
    return (function* () {
      for (const [, v] of entries) yield v
    })()
  }

  count(): number {
    this.db.checkOpen()
    return this.entries.length
  }

  /** Sets (or, with `value` undefined, removes) `key`; returns the previous value. */
  write(key: Uint8Array, value: Uint8Array | undefined): Uint8Array | undefined {
    if (this.shared) {
      this.entries = this.entries.slice()
      this.shared = false
    }
    const i = lowerBound(this.entries, key)
    const e = this.entries[i]
    const found = e !== undefined && compare(e[0], key) === 0
    const previous = found ? e[1] : undefined
    if (value === undefined) {
      if (found) this.entries.splice(i, 1)
    } else if (found) {
      this.entries[i] = [e[0], value] // a new tuple: the old one may be in a snapshot
    } else {
      this.entries.splice(i, 0, [copy(key), value])
    }
    return previous
  }

  *#iterate(options: RangeOptions): Generator<Entry> {
    // Runs at the first step, as lmdb's lazy range does.
    this.db.checkOpen()
    const { start, end, reverse = false, limit = Number.POSITIVE_INFINITY } = options
    const inBounds = (key: Uint8Array) => end === undefined || (reverse ? compare(key, end) > 0 : compare(key, end) < 0)
    let n = 0
    if (this.db.inTransaction) {
      // Live cursor: each step looks for the neighbour of the last key in the current entries.
      let last: Uint8Array | undefined
      while (n < limit) {
        const entries = this.entries
        let i: number
        if (last !== undefined) i = reverse ? lowerBound(entries, last) - 1 : upperBound(entries, last)
        else if (reverse) i = start === undefined ? entries.length - 1 : upperBound(entries, start) - 1
        else i = start === undefined ? 0 : lowerBound(entries, start)
        const e = entries[i]
        if (e === undefined || !inBounds(e[0])) return
        last = e[0]
        n++
        yield copyEntry(e)
      }
      return
    }
    // Snapshot: the entries as they are now; a later write copies them first.
    const entries = this.entries
    this.shared = true
    let i: number
    if (reverse) i = start === undefined ? entries.length - 1 : upperBound(entries, start) - 1
    else i = start === undefined ? 0 : lowerBound(entries, start)
    for (; n < limit; n++, i += reverse ? -1 : 1) {
      const e = entries[i]
      if (e === undefined || !inBounds(e[0])) return
      yield copyEntry(e)
    }
  }
}

interface Undo {
  tree: MemoryTree
  key: Uint8Array
  previous: Uint8Array | undefined
}

class MemoryDb implements Db {
  readonly #trees = new Map<string, MemoryTree>()
  /** Writes of the open transactions (outermost first), to undo on a throw. */
  #undo: Undo[] = []
  #depth = 0
  #closed = false

  get inTransaction(): boolean {
    return this.#depth > 0
  }

  checkOpen(): void {
    if (this.#closed) throw new GarageError('GARAGE_ERR_CLOSED', 'metadata database is closed')
  }

  openTree(name: string): Tree {
    this.checkOpen()
    let t = this.#trees.get(name)
    if (t === undefined) {
      t = new MemoryTree(name, this)
      this.#trees.set(name, t)
    }
    return t
  }

  transaction<T>(fn: (tx: Transaction) => T): T {
    this.checkOpen()
    const mark = this.#undo.length
    let open = true
    const own = (tree: Tree): MemoryTree => {
      if (!open) throw new GarageError('GARAGE_ERR_INTERNAL', 'transaction used after it ended')
      if (!(tree instanceof MemoryTree) || tree.db !== this) {
        throw new GarageError('GARAGE_ERR_INTERNAL', `tree ${tree.name} does not belong to this database`)
      }
      return tree
    }
    const write = (tree: Tree, key: Uint8Array, value: Uint8Array | undefined): void => {
      const t = own(tree)
      checkKey(key)
      this.#undo.push({ tree: t, key: copy(key), previous: t.write(key, value === undefined ? undefined : copy(value)) })
    }
    const tx: Transaction = {
      get: (tree, key) => own(tree).get(key),
      insert: (tree, key, value) => write(tree, key, value),
      remove: (tree, key) => write(tree, key, undefined),
      range: (tree, options) => own(tree).range(options),
    }
    this.#depth++
    try {
      const result = fn(tx)
      if (typeof (result as { then?: unknown } | null)?.then === 'function') {
        throw new GarageError('GARAGE_ERR_INTERNAL', 'a transaction function must be synchronous (it returned a promise)')
      }
      if (this.#depth === 1) this.#undo = []
      return result
    } catch (err) {
      this.#rollback(mark)
      throw err
    } finally {
      open = false
      this.#depth--
    }
  }

  #rollback(mark: number): void {
    while (this.#undo.length > mark) {
      const u = this.#undo.pop() as Undo
      u.tree.write(u.key, u.previous)
    }
  }

  async flush(): Promise<void> {
    // Nothing to write out.
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#trees.clear()
  }
}

/**
 * Opens an empty in-memory database (for tests; see this module's notes for how it matches lmdb).
 * @internal
 */
export function openMemoryDb(): Db {
  return new MemoryDb()
}
