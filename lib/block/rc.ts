/**
 * Local reference counts of blocks (port of garage_block::rc). A count that drops to zero turns
 * into "deletable at now + delay"; the block is deleted only if nothing references it again
 * before then.
 */
import type { Transaction, Tree } from '../db/db.ts'
import { defineCodec } from '../util/codec.ts'
import type { Hash } from '../util/data.ts'

/** Present with a count, or deletable from a given time. */
type RcEntry = { c: number } | { d: number }

const rcCodec = defineCodec<RcEntry>('G0rc')

export class BlockRc {
  readonly tree: Tree
  readonly #gcDelayMsec: number
  readonly #schedule: (tx: Transaction, hash: Hash, at: number) => void
  constructor(tree: Tree, gcDelayMsec: number, schedule: (tx: Transaction, hash: Hash, at: number) => void) {
    this.tree = tree
    this.#gcDelayMsec = gcDelayMsec
    this.#schedule = schedule
  }

  get(hash: Hash): number {
    const raw = this.tree.get(hash)
    if (raw === undefined) return 0
    const e = rcCodec.decode(raw)
    return 'c' in e ? e.c : 0
  }

  incref(tx: Transaction, hash: Hash): void {
    const raw = tx.get(this.tree, hash)
    const e = raw === undefined ? undefined : rcCodec.decode(raw)
    const count = e !== undefined && 'c' in e ? e.c : 0
    tx.insert(this.tree, hash, rcCodec.encode({ c: count + 1 }))
  }

  decref(tx: Transaction, hash: Hash): void {
    const raw = tx.get(this.tree, hash)
    const e = raw === undefined ? undefined : rcCodec.decode(raw)
    const count = e !== undefined && 'c' in e ? e.c : 0
    if (count > 1) {
      tx.insert(this.tree, hash, rcCodec.encode({ c: count - 1 }))
      return
    }
    const at = Date.now() + this.#gcDelayMsec
    tx.insert(this.tree, hash, rcCodec.encode({ d: at }))
    this.#schedule(tx, hash, at)
  }

  /** True when the block has no reference and its deletion delay has passed. */
  isDeletable(hash: Hash, now: number): boolean {
    const raw = this.tree.get(hash)
    if (raw === undefined) return false
    const e = rcCodec.decode(raw)
    return 'd' in e && e.d <= now
  }

  /** Forgets a deletable entry once its block is gone. */
  clearDeletable(tx: Transaction, hash: Hash, now: number): void {
    const raw = tx.get(this.tree, hash)
    if (raw === undefined) return
    const e = rcCodec.decode(raw)
    if ('d' in e && e.d <= now) tx.remove(this.tree, hash)
  }
}
