/**
 * Per-bucket object counters (port of garage_model::index_counter as used by the object table):
 * objects, bytes and unfinished uploads of each bucket, kept in the local tree
 * `bucket_object_counter`. The object table's `updated` hook adds the difference between an
 * entry's old and new counts in the same transaction, so the counters never drift from the rows
 * stored on this node. Garage replicates counters as a CRDT table and reads the highest value
 * reported by the storage nodes; here every node counts the rows it stores, which on a single
 * node (or with every partition local) is exact.
 */
import type { Db, Transaction, Tree } from '../db/db.ts'
import { identityPartitionKey, type TableSchema } from '../table/schema.ts'
import type { Table } from '../table/table.ts'
import { defineCodec } from '../util/codec.ts'
import { toHex, type Uuid, utf8 } from '../util/data.ts'
import type { ObjectEntry } from './s3/object-table.ts'

/** What the counters hold for one bucket (or count for one object row). */
export interface ObjectCounts {
  /** Keys whose current version has data. */
  objects: number
  /** Sum of the sizes of those current versions. */
  bytes: number
  /** Versions being uploaded (plain or multipart). */
  unfinishedUploads: number
}

const ZERO: ObjectCounts = { objects: 0, bytes: 0, unfinishedUploads: 0 }

const countsCodec = defineCodec<ObjectCounts>('GTcnt1')

/** Key of the marker saying the counters were computed from every stored row (not a bucket id). */
const INITIALIZED = utf8('~initialized')

/** The counts one object row contributes. @internal */
export function countObject(o: ObjectEntry | undefined): ObjectCounts {
  if (o === undefined) return ZERO
  let objects = 0
  let bytes = 0
  let unfinishedUploads = 0
  let current = true
  for (let i = o.versions.length - 1; i >= 0; i--) {
    const s = (o.versions[i] as ObjectEntry['versions'][number]).state
    if (s.t === 'uploading') {
      // A conditional write's claim is not an upload.
      if (s.claim !== true) unfinishedUploads++
    } else if (s.t === 'complete' && current) {
      // Only the newest complete version is visible.
      current = false
      if (s.data.t !== 'delete') {
        objects = 1
        bytes = s.data.meta.size
      }
    }
  }
  return { objects, bytes, unfinishedUploads }
}

/** The bucket object counters of this node. @internal */
export class BucketObjectCounter {
  readonly #db: Db
  readonly #tree: Tree
  constructor(db: Db) {
    this.#db = db
    this.#tree = db.openTree('bucket_object_counter')
  }

  /** Current counts of a bucket (zeros if it never held anything). */
  get(bucketId: Uuid): ObjectCounts {
    const raw = this.#tree.get(bucketId)
    return raw === undefined ? ZERO : countsCodec.decode(raw)
  }

  /**
   * Adds the change from `previous` to `next` of one object row (`next` undefined: the row was
   * deleted from this node); called by the object table's hook.
   */
  update(tx: Transaction, previous: ObjectEntry | undefined, next: ObjectEntry | undefined): void {
    const a = countObject(previous)
    const b = countObject(next)
    const d = {
      objects: b.objects - a.objects,
      bytes: b.bytes - a.bytes,
      unfinishedUploads: b.unfinishedUploads - a.unfinishedUploads,
    }
    if (d.objects === 0 && d.bytes === 0 && d.unfinishedUploads === 0) return
    const bucketId = (next ?? previous)?.bucketId
    if (bucketId === undefined) return
    const raw = tx.get(this.#tree, bucketId)
    const cur = raw === undefined ? ZERO : countsCodec.decode(raw)
    tx.insert(
      this.#tree,
      bucketId,
      countsCodec.encode({
        objects: cur.objects + d.objects,
        bytes: cur.bytes + d.bytes,
        unfinishedUploads: cur.unfinishedUploads + d.unfinishedUploads,
      }),
    )
  }

  /**
   * Recomputes every counter from the object rows stored in `objectStore`, unless that was done
   * already (a metadata directory written before the counters existed). Returns whether it ran.
   */
  initialize(objectStore: Tree, decode: (raw: Uint8Array) => ObjectEntry): boolean {
    if (this.#tree.get(INITIALIZED) !== undefined) return false
    this.#db.transaction((tx) => {
      for (const [k] of [...tx.range(this.#tree)]) tx.remove(this.#tree, k)
      const sums = new Map<string, { id: Uuid; c: ObjectCounts }>()
      for (const [, raw] of tx.range(objectStore)) {
        const o = decode(raw)
        const c = countObject(o)
        if (c.objects === 0 && c.unfinishedUploads === 0) continue
        const hex = toHex(o.bucketId)
        const s = sums.get(hex) ?? { id: o.bucketId, c: ZERO }
        s.c = {
          objects: s.c.objects + c.objects,
          bytes: s.c.bytes + c.bytes,
          unfinishedUploads: s.c.unfinishedUploads + c.unfinishedUploads,
        }
        sums.set(hex, s)
      }
      for (const { id, c } of sums.values()) tx.insert(this.#tree, id, countsCodec.encode(c))
      tx.insert(this.#tree, INITIALIZED, new Uint8Array([1]))
    })
    return true
  }
}

// ---------------------------------------------------------------------------------------------
// Replicated index counters (Garage's generic IndexCounter, used by K2V's k2v_index_counter_v2)

/**
 * A row of a replicated counter table (Garage's `CounterEntry`): for each counter name, each
 * node's own figure with the time it was set. Nodes count the rows they store; a reader takes,
 * per name, the highest figure among the current storage nodes.
 * @internal
 */
export interface CounterEntry {
  /** Counter partition (a bucket id for K2V). */
  pk: Uint8Array
  /** Counter sort key (a K2V partition key). */
  sk: string
  /** name → node id (hex) → [time, value]; keys in ascending order. */
  values: Record<string, Record<string, [number, number]>>
}

const counterCodec = defineCodec<CounterEntry>('GTctr1')
const localCounterCodec = defineCodec<LocalCounterEntry>('GTlctr1')

interface LocalCounterEntry {
  pk: Uint8Array
  sk: string
  /** name → [time, value] of this node. */
  values: Record<string, [number, number]>
}

function sortedRecord<V>(r: Record<string, V>): Record<string, V> {
  const out: Record<string, V> = {}
  for (const k of Object.keys(r).sort()) out[k] = r[k] as V
  return out
}

/** Garage's `CounterEntry::merge`: per name and node, the figure with the later time. @internal */
export function mergeCounterEntries(a: CounterEntry, b: CounterEntry): CounterEntry {
  const values: Record<string, Record<string, [number, number]>> = { ...a.values }
  for (const [name, nodes2] of Object.entries(b.values)) {
    const nodes = { ...(values[name] ?? {}) }
    for (const [node, tv2] of Object.entries(nodes2)) {
      const tv = nodes[node]
      if (tv === undefined || tv2[0] > tv[0]) nodes[node] = tv2
    }
    values[name] = sortedRecord(nodes)
  }
  return { ...a, values: sortedRecord(values) }
}

/**
 * Per name, the highest figure among `nodes` (Garage's `filtered_values_with_nodes`); names no
 * such node reported are absent.
 * @internal
 */
export function filteredCounterValues(e: CounterEntry, nodes: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [name, byNode] of Object.entries(e.values)) {
    let max: number | undefined
    for (const [node, [, v]] of Object.entries(byNode)) {
      if (!nodes.includes(node)) continue
      max = max === undefined ? v : Math.max(max, v)
    }
    if (max !== undefined) out[name] = max
  }
  return out
}

/** True when every figure of `nodes` is zero: the row is out of the index. @internal */
export function counterIsZero(e: CounterEntry, nodes: readonly string[]): boolean {
  return Object.values(filteredCounterValues(e, nodes)).every((v) => v === 0)
}

/**
 * The schema of a counter table placed by its partition (a 32-byte id, used as its own hash)
 * and sorted by its sort key.
 * @internal
 */
export function counterTableSchema(tableName: string): TableSchema<CounterEntry> {
  return {
    tableName,
    codec: counterCodec,
    partitionKey: (e) => e.pk,
    sortKey: (e) => utf8(e.sk),
    partitionHash: identityPartitionKey,
    merge: mergeCounterEntries,
    isTombstone: (e) => Object.values(e.values).every((byNode) => Object.values(byNode).every(([, v]) => v === 0)),
  }
}

/** What a counted row gives its counter. @internal */
export interface Counted<T> {
  counterPartition(item: T): Uint8Array
  counterSortKey(item: T): string
  counts(item: T): Array<[string, number]>
}

/**
 * Garage's `IndexCounter`: keeps this node's figures per counter row in a local tree (updated in
 * the transaction that changed a counted row), and queues the row, carrying this node's figures,
 * for insertion into the replicated counter table, where it merges with the other nodes'.
 * @internal
 */
export class IndexCounter<T> {
  readonly table: Table<CounterEntry>
  readonly #local: Tree
  readonly #self: string
  readonly #counted: Counted<T>
  readonly #clock: () => number
  constructor(o: { db: Db; self: string; table: Table<CounterEntry>; counted: Counted<T>; clock?: () => number }) {
    this.table = o.table
    this.#self = o.self
    this.#counted = o.counted
    this.#clock = o.clock ?? Date.now
    this.#local = o.db.openTree(`local_counter_v2:${o.table.name}`)
  }

  /** Adds the difference between `previous` and `next` (Garage's `IndexCounter::count`). */
  count(tx: Transaction, previous: T | undefined, next: T | undefined): void {
    const any = (previous ?? next) as T | undefined
    if (any === undefined) return
    const pk = this.#counted.counterPartition(any)
    const sk = this.#counted.counterSortKey(any)
    const deltas = new Map<string, number>()
    if (previous !== undefined) for (const [k, v] of this.#counted.counts(previous)) deltas.set(k, (deltas.get(k) ?? 0) - v)
    if (next !== undefined) for (const [k, v] of this.#counted.counts(next)) deltas.set(k, (deltas.get(k) ?? 0) + v)
    const key = this.table.data.treeKey(pk, utf8(sk))
    const raw = tx.get(this.#local, key)
    const entry: LocalCounterEntry = raw === undefined ? { pk, sk, values: {} } : localCounterCodec.decode(raw)
    const now = this.#clock()
    for (const [name, inc] of deltas) {
      const cur = entry.values[name] ?? [0, 0]
      entry.values[name] = [Math.max(cur[0] + 1, now), cur[1] + inc]
    }
    entry.values = sortedRecord(entry.values)
    tx.insert(this.#local, key, localCounterCodec.encode(entry))
    const values: CounterEntry['values'] = {}
    for (const [name, tv] of Object.entries(entry.values)) values[name] = { [this.#self]: tv }
    this.table.queueInsert(tx, { pk, sk, values })
  }
}
