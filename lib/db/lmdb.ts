/** The lmdb engine (the only importer of lmdb). */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { type Database, open, type RootDatabase } from 'lmdb'
import { asBuffer } from '../util/data.ts'
import { GarageError } from '../util/errors.ts'
import { checkKeyLength, type Db, type Entry, type RangeOptions, type Transaction, type Tree } from './db.ts'

export interface LmdbOptions {
  /** fsync each commit (Garage's metadata_fsync). */
  fsync: boolean
  /** Maximum size of the map, in bytes. */
  mapSize?: number
  /**
   * lmdb-js's limits on the free pages a write transaction loads from lmdb's free list (default
   * 50,000) and keeps in memory between transactions (75,000); see docs/design/scale.md.
   */
  maxFreeSpaceToLoad?: number
  maxFreeSpaceToRetain?: number
}

type BinDb = Database<Buffer, Buffer>

class LmdbTree implements Tree {
  readonly name: string
  readonly db: BinDb
  constructor(name: string, db: BinDb) {
    this.name = name
    this.db = db
  }
  get(key: Uint8Array): Uint8Array | undefined {
    checkKeyLength(key)
    const v = this.db.get(asBuffer(key))
    return v === undefined ? undefined : view(v)
  }
  range(options: RangeOptions = {}): Iterable<Entry> {
    return rangeOf(this.db, options)
  }
  values(options: RangeOptions = {}): Iterable<Uint8Array> {
    // lmdb's fresh value Buffers as they are, without the key and the views `range` makes (a
    // listing page reads 1,000 of them).
    return mapped(lmdbRange(this.db, options), (e) => e.value)
  }
  count(): number {
    return this.db.getCount()
  }
}

function rangeOf(db: BinDb, options: RangeOptions): Iterable<Entry> {
  return mapped(lmdbRange(db, options), (e) => [view(e.key), view(e.value)])
}

/**
 * lmdb's range for `options`. The bounds are checked now, not when iteration starts, so the
 * caller gets the error where it asked; lmdb opens its read transaction at the first step.
 */
function lmdbRange(db: BinDb, options: RangeOptions): Iterable<{ key: Buffer; value: Buffer }> {
  if (options.start !== undefined) checkKeyLength(options.start, 'range start')
  if (options.end !== undefined) checkKeyLength(options.end, 'range end')
  return db.getRange({
    start: options.start === undefined ? undefined : Buffer.from(options.start),
    end: options.end === undefined ? undefined : Buffer.from(options.end),
    reverse: options.reverse ?? false,
    limit: options.limit,
  })
}

/** `f` of each item, lazily; leaving the loop early closes `items`' iterator (lmdb's cursor). */
function* mapped<A, B>(items: Iterable<A>, f: (a: A) => B): Iterable<B> {
  for (const a of items) yield f(a)
}

/**
 * A plain Uint8Array over a Buffer lmdb returned. lmdb-js gives the `binary` encoding's keys and
 * values as fresh copies (never its shared read buffer), so a view is safe and saves a second
 * copy of every large entry a range reads.
 */
function view(b: Buffer): Uint8Array {
  // V8 keeps a typed array of up to 64 bytes inside the JS heap; its first `.buffer` moves it out
  // (≈ 1.2 µs, measured), where copying it costs ≈ 0.15 µs. Keys are mostly that small.
  if (b.byteLength <= 64) return new Uint8Array(b)
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
}

class LmdbDb implements Db {
  readonly #root: RootDatabase
  readonly #trees = new Map<string, LmdbTree>()
  #closed = false
  constructor(root: RootDatabase) {
    this.#root = root
  }
  openTree(name: string): Tree {
    let t = this.#trees.get(name)
    if (t === undefined) {
      const db = this.#root.openDB<Buffer, Buffer>({ name, encoding: 'binary', keyEncoding: 'binary' })
      t = new LmdbTree(name, db)
      this.#trees.set(name, t)
    }
    return t
  }
  transaction<T>(fn: (tx: Transaction) => T): T {
    if (this.#closed) throw new GarageError('GARAGE_ERR_CLOSED', 'metadata database is closed')
    return this.#root.transactionSync(() => {
      const tx: Transaction = {
        get: (tree, key) => (tree as LmdbTree).get(key),
        insert: (tree, key, value) => {
          checkKeyLength(key)
          ;(tree as LmdbTree).db.putSync(Buffer.from(key), Buffer.from(value))
        },
        remove: (tree, key) => {
          checkKeyLength(key)
          ;(tree as LmdbTree).db.removeSync(Buffer.from(key))
        },
        range: (tree, options) => rangeOf((tree as LmdbTree).db, options ?? {}),
      }
      return fn(tx)
    })
  }
  async flush(): Promise<void> {
    await this.#root.flushed
  }
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#root.flushed
    await this.#root.close()
  }
}

/** Opens (creating if needed) the lmdb environment in `<dir>/db.lmdb`. */
export async function openLmdb(dir: string, options: LmdbOptions): Promise<Db> {
  const path = join(dir, 'db.lmdb')
  await mkdir(dir, { recursive: true })
  try {
    const root = open({
      path,
      maxDbs: 64,
      noSync: !options.fsync,
      mapSize: options.mapSize ?? 1024 ** 4,
      compression: false,
      ...(options.maxFreeSpaceToLoad === undefined ? {} : { maxFreeSpaceToLoad: options.maxFreeSpaceToLoad }),
      ...(options.maxFreeSpaceToRetain === undefined ? {} : { maxFreeSpaceToRetain: options.maxFreeSpaceToRetain }),
    })
    return new LmdbDb(root)
  } catch (err) {
    throw new GarageError('GARAGE_ERR_DB', `cannot open lmdb at ${path}`, { cause: err })
  }
}
