/**
 * Local reference counts of blocks (port of garage_block::rc). A count that drops to zero turns
 * into "deletable at now + delay"; the block is deleted only if nothing references it again
 * before then. A hash with no entry at all is unreferenced (Garage's `RcEntry::Absent`).
 */
import type { Transaction, Tree } from '../db/db.ts'
import { defineCodec } from '../util/codec.ts'
import type { Hash } from '../util/data.ts'

/** Present with a count, or deletable from a given time. */
type RcEntry = { c: number } | { d: number }

const rcCodec = defineCodec<RcEntry>('G0rc')

/** What the reference count of a block says. @internal */
export type RcState = { kind: 'absent' } | { kind: 'present'; count: number } | { kind: 'deletable'; at: number }

/** Callbacks run inside the transaction that changed a count. @internal */
export interface RcHooks {
  /** The count dropped to zero: the block may be deleted from `at`. */
  onZero(tx: Transaction, hash: Hash, at: number): void
  /** The count went from zero to one: the block should now be stored here. */
  onFirstRef(tx: Transaction, hash: Hash): void
}

/** @internal */
export class BlockRc {
  readonly tree: Tree
  readonly #gcDelayMsec: number
  readonly #hooks: RcHooks
  constructor(tree: Tree, gcDelayMsec: number, hooks: RcHooks) {
    this.tree = tree
    this.#gcDelayMsec = gcDelayMsec
    this.#hooks = hooks
  }

  /** The number of references (0 when absent or deletable). */
  get(hash: Hash): number {
    const s = this.state(hash)
    return s.kind === 'present' ? s.count : 0
  }

  state(hash: Hash): RcState {
    return decodeState(this.tree.get(hash))
  }

  /** Whether the tree has no entry for `hash` (state 'absent'), without decoding one. */
  isAbsent(hash: Hash): boolean {
    return this.tree.get(hash) === undefined
  }

  incref(tx: Transaction, hash: Hash): void {
    const s = decodeState(tx.get(this.tree, hash))
    const count = s.kind === 'present' ? s.count : 0
    tx.insert(this.tree, hash, rcCodec.encode({ c: count + 1 }))
    if (count === 0) this.#hooks.onFirstRef(tx, hash)
  }

  decref(tx: Transaction, hash: Hash): void {
    const s = decodeState(tx.get(this.tree, hash))
    const count = s.kind === 'present' ? s.count : 0
    if (count > 1) {
      tx.insert(this.tree, hash, rcCodec.encode({ c: count - 1 }))
      return
    }
    const at = Date.now() + this.#gcDelayMsec
    tx.insert(this.tree, hash, rcCodec.encode({ d: at }))
    this.#hooks.onZero(tx, hash, at)
  }

  /** True when the block has no reference and its deletion delay (if any) has passed. */
  isDeletable(hash: Hash, now: number): boolean {
    return isDeletableState(this.state(hash), now)
  }

  /** Forgets a deletable entry once its block is gone. */
  clearDeletable(tx: Transaction, hash: Hash, now: number): void {
    const s = decodeState(tx.get(this.tree, hash))
    if (s.kind === 'deletable' && s.at <= now) tx.remove(this.tree, hash)
  }
}

/** Unreferenced, and past the deletion delay when there is one. @internal */
export function isDeletableState(s: RcState, now: number): boolean {
  return s.kind === 'absent' || (s.kind === 'deletable' && s.at <= now)
}

function decodeState(raw: Uint8Array | undefined): RcState {
  if (raw === undefined) return { kind: 'absent' }
  const e = rcCodec.decode(raw)
  return 'c' in e ? { kind: 'present', count: e.c } : { kind: 'deletable', at: e.d }
}
