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
    if (s.t === 'uploading') unfinishedUploads++
    else if (s.t === 'complete' && current) {
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
