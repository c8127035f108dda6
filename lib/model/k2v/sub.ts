/**
 * Subscriptions to K2V item changes on this node (port of garage_model::k2v::sub). The item
 * table's `updated` hook calls {@link SubscriptionManager.notify} for every stored change, whether
 * it came from a client write, replication, read repair or anti-entropy; polls wait on it instead
 * of re-reading in a loop.
 * @internal
 */
import { toHex, type Uuid } from '../../util/data.ts'
import type { K2vItem } from './item-table.ts'

/** A range of one partition that PollRange watches (Garage's `PollRange`). @internal */
export interface K2vPollRange {
  bucketId: Uuid
  partitionKey: string
  prefix?: string | undefined
  start?: string | undefined
  end?: string | undefined
}

type Listener = (item: K2vItem) => void

const partitionId = (bucketId: Uuid, pk: string): string => `${toHex(bucketId)}/${pk}`
const itemId = (bucketId: Uuid, pk: string, sk: string): string => JSON.stringify([toHex(bucketId), pk, sk])

/** @internal */
export class SubscriptionManager {
  readonly #items = new Map<string, Set<Listener>>()
  readonly #partitions = new Map<string, Set<Listener>>()

  /** Calls `cb` with every new value of one item until the returned function is called. */
  subscribeItem(bucketId: Uuid, pk: string, sk: string, cb: Listener): () => void {
    return add(this.#items, itemId(bucketId, pk, sk), cb)
  }

  /** Calls `cb` with every new value of any item of a partition until the returned function is called. */
  subscribePartition(bucketId: Uuid, pk: string, cb: Listener): () => void {
    return add(this.#partitions, partitionId(bucketId, pk), cb)
  }

  notify(item: K2vItem): void {
    const a = this.#items.get(itemId(item.bucketId, item.partitionKey, item.sortKey))
    if (a !== undefined) for (const cb of [...a]) cb(item)
    const b = this.#partitions.get(partitionId(item.bucketId, item.partitionKey))
    if (b !== undefined) for (const cb of [...b]) cb(item)
  }

  /** Number of live subscriptions (tests). */
  get size(): number {
    let n = 0
    for (const s of this.#items.values()) n += s.size
    for (const s of this.#partitions.values()) n += s.size
    return n
  }
}

function add(map: Map<string, Set<Listener>>, key: string, cb: Listener): () => void {
  let set = map.get(key)
  if (set === undefined) {
    set = new Set()
    map.set(key, set)
  }
  set.add(cb)
  return () => {
    const s = map.get(key)
    if (s === undefined) return
    s.delete(cb)
    if (s.size === 0) map.delete(key)
  }
}

/** Garage's `PollRange::matches` (the partition is checked by the subscription). @internal */
export function pollRangeMatches(range: K2vPollRange, sortKey: string): boolean {
  return (
    (range.prefix === undefined || sortKey.startsWith(range.prefix)) &&
    (range.start === undefined || sortKey >= range.start) &&
    (range.end === undefined || sortKey < range.end)
  )
}
