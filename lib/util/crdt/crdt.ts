/**
 * CRDT building blocks as plain data plus pure merge functions (port of garage_util::crdt).
 * Every merge is commutative, associative and idempotent; entries can therefore be replicated,
 * repaired and synced in any order. Values stay msgpack-friendly (no classes).
 */
import { encodeMsgpack } from '../codec.ts'

/** A merge function: must be commutative, associative and idempotent. */
export type Merge<T> = (a: T, b: T) => T

/**
 * Deterministic merge for values that have no merge of their own: the one whose msgpack encoding
 * sorts last wins. Used only to break exact-timestamp ties, so the result is the same everywhere.
 */
export function mergeByEncoding<T>(a: T, b: T): T {
  return Buffer.compare(encodeMsgpack(a), encodeMsgpack(b)) >= 0 ? a : b
}

/** Last-writer-wins register: the value with the highest timestamp wins. */
export interface Lww<T> {
  ts: number
  v: T
}

export const lww = <T>(ts: number, v: T): Lww<T> => ({ ts, v })

export function mergeLww<T>(a: Lww<T>, b: Lww<T>, inner: Merge<T> = mergeByEncoding): Lww<T> {
  if (a.ts > b.ts) return a
  if (b.ts > a.ts) return b
  return { ts: a.ts, v: inner(a.v, b.v) }
}

/** Update a register: the new timestamp is strictly above the old one (tolerates clock skew). */
export function updateLww<T>(old: Lww<T>, v: T, now: number = Date.now()): Lww<T> {
  return { ts: Math.max(now, old.ts + 1), v }
}

/** A map of last-writer-wins registers, kept sorted by key. */
export type LwwMap<V> = Array<[key: string, ts: number, value: V]>

export function lwwMapGet<V>(m: LwwMap<V>, key: string): V | undefined {
  const i = lwwMapIndex(m, key)
  return i >= 0 ? (m[i] as [string, number, V])[2] : undefined
}

export function lwwMapTimestamp<V>(m: LwwMap<V>, key: string): number | undefined {
  const i = lwwMapIndex(m, key)
  return i >= 0 ? (m[i] as [string, number, V])[1] : undefined
}

/** A copy of `m` with `key` set to `value`, at a timestamp above the previous one for that key. */
export function lwwMapSet<V>(m: LwwMap<V>, key: string, value: V, now: number = Date.now()): LwwMap<V> {
  const prev = lwwMapTimestamp(m, key)
  const ts = prev === undefined ? now : Math.max(now, prev + 1)
  return mergeLwwMap(m, [[key, ts, value]])
}

export function mergeLwwMap<V>(a: LwwMap<V>, b: LwwMap<V>, inner: Merge<V> = mergeByEncoding): LwwMap<V> {
  const out: LwwMap<V> = []
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    const x = a[i]
    const y = b[j]
    if (y === undefined || (x !== undefined && x[0] < y[0])) {
      out.push(x as [string, number, V])
      i++
    } else if (x === undefined || y[0] < x[0]) {
      out.push(y)
      j++
    } else {
      const m = mergeLww({ ts: x[1], v: x[2] }, { ts: y[1], v: y[2] }, inner)
      out.push([x[0], m.ts, m.v])
      i++
      j++
    }
  }
  return out
}

function lwwMapIndex<V>(m: LwwMap<V>, key: string): number {
  let lo = 0
  let hi = m.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const k = (m[mid] as [string, number, V])[0]
    if (k === key) return mid
    if (k < key) lo = mid + 1
    else hi = mid - 1
  }
  return -1
}

/** A value that can be deleted for good: deletion wins over any presence. */
export type Deletable<T> = { deleted: true } | { deleted: false; value: T }

export function mergeDeletable<T>(a: Deletable<T>, b: Deletable<T>, inner: Merge<T>): Deletable<T> {
  if (a.deleted) return a
  if (b.deleted) return b
  return { deleted: false, value: inner(a.value, b.value) }
}

/** A boolean that can only go from false to true (Garage's crdt::Bool). */
export const mergeBool: Merge<boolean> = (a, b) => a || b

/** The maximum of two numbers (a grow-only register). */
export const mergeMax: Merge<number> = (a, b) => Math.max(a, b)

/** A map whose values are CRDTs merged key by key (Garage's crdt::Map), kept sorted by key. */
export type CrdtMap<V> = Array<[key: string, value: V]>

export function crdtMapGet<V>(m: CrdtMap<V>, key: string): V | undefined {
  for (const [k, v] of m) if (k === key) return v
  return undefined
}

export function mergeCrdtMap<V>(a: CrdtMap<V>, b: CrdtMap<V>, inner: Merge<V>): CrdtMap<V> {
  const out: CrdtMap<V> = []
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    const x = a[i]
    const y = b[j]
    if (y === undefined || (x !== undefined && x[0] < y[0])) {
      out.push(x as [string, V])
      i++
    } else if (x === undefined || y[0] < x[0]) {
      out.push(y)
      j++
    } else {
      out.push([x[0], inner(x[1], y[1])])
      i++
      j++
    }
  }
  return out
}

/** A copy of `m` with `value` merged into `key`. */
export function crdtMapPut<V>(m: CrdtMap<V>, key: string, value: V, inner: Merge<V>): CrdtMap<V> {
  return mergeCrdtMap(m, [[key, value]], inner)
}
