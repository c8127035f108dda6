/**
 * The K2V item table `k2v_item` (port of garage_model::k2v::item_table): one row per
 * (bucket, partition key, sort key) holding a dotted version vector set. For each writer node
 * (the node that ordered the write, see rpc.ts) it keeps `tDiscard`, the time up to which that
 * writer's values were superseded, and the values it wrote after that, each with its timestamp.
 * A value is bytes, or `null` for a deletion (Garage's `DvvsValue::Deleted`).
 *
 * Rows are placed by `blake2(bucket id ‖ partition key)` (Garage's K2VItemPartition hash), so
 * one partition key's rows share nodes, and sorted by sort key. The `updated` hook counts the
 * row in the partition's index counters and wakes the polls waiting on it.
 * @internal
 */
import type { Transaction } from '../../db/db.ts'
import { defineCodec } from '../../util/codec.ts'
import { blake2sum, bytesEqual, concatBytes, type Uuid, utf8 } from '../../util/data.ts'
import type { TableSchema } from '../../table/schema.ts'
import type { K2vNodeId, VectorClock } from './causality.ts'

/** Bytes, or null for a deletion marker. @internal */
export type DvvsValue = Uint8Array | null

/** What one writer node contributed to an item. @internal */
export interface DvvsEntry {
  tDiscard: number
  /** `[timestamp, value]`, in increasing timestamps. */
  values: Array<[number, DvvsValue]>
}

/** A row of `k2v_item`. @internal */
export interface K2vItem {
  bucketId: Uuid
  partitionKey: string
  sortKey: string
  /** Writer node → its entry; keys in ascending order (the encoding is compared byte for byte). */
  items: Record<K2vNodeId, DvvsEntry>
}

/** Names of the index counters (Garage's ENTRIES, CONFLICTS, VALUES, BYTES). @internal */
export const K2V_COUNTERS = ['entries', 'conflicts', 'values', 'bytes'] as const

export const k2vItemCodec = defineCodec<K2vItem>('GTk2vi1')

/** A row with no value yet. @internal */
export function newK2vItem(bucketId: Uuid, partitionKey: string, sortKey: string): K2vItem {
  return { bucketId, partitionKey, sortKey, items: {} }
}

function maxTime(e: DvvsEntry): number {
  let t = e.tDiscard
  for (const [vt] of e.values) if (vt > t) t = vt
  return t
}

function discard(e: DvvsEntry): DvvsEntry {
  return { tDiscard: e.tDiscard, values: e.values.filter(([t]) => t > e.tDiscard) }
}

function sortedItems(items: Record<K2vNodeId, DvvsEntry>): Record<K2vNodeId, DvvsEntry> {
  const out: Record<K2vNodeId, DvvsEntry> = {}
  for (const k of Object.keys(items).sort()) out[k] = items[k] as DvvsEntry
  return out
}

/**
 * Garage's `K2VItem::update`: raises each writer's `tDiscard` to what `context` saw, drops the
 * values that covers, and appends `value` under `writer` with a time greater than both that
 * writer's last time and `nodeTs`. Returns the new item and the time used.
 * @internal
 */
export function updateK2vItem(
  item: K2vItem,
  writer: K2vNodeId,
  context: VectorClock | undefined,
  value: DvvsValue,
  nodeTs: number,
): { item: K2vItem; time: number } {
  const items: Record<K2vNodeId, DvvsEntry> = {}
  for (const [n, e] of Object.entries(item.items)) items[n] = { tDiscard: e.tDiscard, values: [...e.values] }
  if (context !== undefined) {
    for (const [n, t] of context) {
      const e = items[n]
      if (e !== undefined) e.tDiscard = Math.max(e.tDiscard, t)
      else items[n] = { tDiscard: t, values: [] }
    }
  }
  for (const n of Object.keys(items)) items[n] = discard(items[n] as DvvsEntry)
  const e = items[writer] ?? { tDiscard: 0, values: [] }
  const time = Math.max(maxTime(e) + 1, nodeTs + 1)
  e.values.push([time, value])
  items[writer] = e
  return { item: { ...item, items: sortedItems(items) }, time }
}

/** The item's causality context: each writer's highest time. @internal */
export function causalContextOf(item: K2vItem): VectorClock {
  const vc: VectorClock = new Map()
  for (const [n, e] of Object.entries(item.items)) vc.set(n, maxTime(e))
  return vc
}

/** The distinct values, writers in ascending order, each writer's in time order (Garage's `values()`). @internal */
export function k2vValues(item: K2vItem): DvvsValue[] {
  const out: DvvsValue[] = []
  for (const n of Object.keys(item.items).sort()) {
    for (const [, v] of (item.items[n] as DvvsEntry).values) {
      if (!out.some((o) => valueEquals(o, v))) out.push(v)
    }
  }
  return out
}

function valueEquals(a: DvvsValue, b: DvvsValue): boolean {
  if (a === null || b === null) return a === b
  return bytesEqual(a, b)
}

/** A row whose every value is a deletion (or that has none). @internal */
export function isK2vTombstone(item: K2vItem): boolean {
  return k2vValues(item).every((v) => v === null)
}

/** Garage's `DvvsEntry::merge`. */
function mergeEntry(a: DvvsEntry, b: DvvsEntry): DvvsEntry {
  const base = discard({ tDiscard: Math.max(a.tDiscard, b.tDiscard), values: a.values })
  const tMax = maxTime(base)
  const values = [...base.values]
  for (const [vt, vv] of b.values) if (vt > tMax) values.push([vt, vv])
  return { tDiscard: base.tDiscard, values }
}

/** Garage's `K2VItem::merge`. @internal */
export function mergeK2vItems(a: K2vItem, b: K2vItem): K2vItem {
  const items: Record<K2vNodeId, DvvsEntry> = { ...a.items }
  for (const [n, e2] of Object.entries(b.items)) {
    const e = items[n]
    items[n] = e === undefined ? e2 : mergeEntry(e, e2)
  }
  return { ...a, items: sortedItems(items) }
}

/** The counts one row contributes to its partition key's index (Garage's `CountedItem::counts`). @internal */
export function countK2vItem(item: K2vItem): Array<[string, number]> {
  const values = k2vValues(item)
  let nValues = 0
  let nBytes = 0
  for (const v of values) {
    if (v !== null) {
      nValues++
      nBytes += v.length
    }
  }
  return [
    ['entries', isK2vTombstone(item) ? 0 : 1],
    ['conflicts', values.length > 1 ? 1 : 0],
    ['values', nValues],
    ['bytes', nBytes],
  ]
}

/** Garage's `ItemFilter`. @internal */
export interface K2vItemFilter {
  excludeOnlyTombstones: boolean
  conflictsOnly: boolean
}

/** @internal */
export function k2vItemMatches(item: K2vItem, filter: K2vItemFilter): boolean {
  const v = k2vValues(item)
  return !(filter.conflictsOnly && v.length < 2) && !(filter.excludeOnlyTombstones && isK2vTombstone(item))
}

/** The table partition key of a K2V partition: `bucket id ‖ utf8(partition key)`. @internal */
export function k2vPartitionBytes(bucketId: Uuid, partitionKey: string): Uint8Array {
  return concatBytes(bucketId, utf8(partitionKey))
}

/** What the item table's hook drives. @internal */
export interface K2vItemTableHooks {
  /** Adds the row's change to the index counters (same transaction). */
  count(tx: Transaction, previous: K2vItem | undefined, next: K2vItem | undefined): void
  /** Wakes the polls waiting on this row (after the transaction). */
  notify(item: K2vItem): void
}

/** The schema of `k2v_item`. @internal */
export function k2vItemTableSchema(hooks: K2vItemTableHooks): TableSchema<K2vItem> {
  return {
    tableName: 'k2v_item',
    codec: k2vItemCodec,
    partitionKey: (e) => k2vPartitionBytes(e.bucketId, e.partitionKey),
    sortKey: (e) => utf8(e.sortKey),
    // Garage: blake2b-512(bucket id ‖ partition key) truncated to 32 bytes.
    partitionHash: (pk) => blake2sum(pk),
    merge: mergeK2vItems,
    isTombstone: isK2vTombstone,
    updated(tx, previous, next) {
      hooks.count(tx, previous, next)
      if (next !== undefined) {
        // After the transaction: a woken poll answers with this value, which is then stored.
        queueMicrotask(() => hooks.notify(next))
      }
    },
  }
}
