/**
 * The seen marker of PollRange (port of garage_model::k2v::seen): a vector clock saying every
 * item a node wrote up to that time was returned, plus per-item clocks for items returned beyond
 * it. Garage encodes it as msgpack, zstd, base64; Node 20 has no zstd, so here it is msgpack then
 * base64 (the marker is opaque to clients and only ever read by the cluster that issued it).
 * @internal
 */
import { decodeMsgpack, encodeMsgpack } from '../../util/codec.ts'
import { makeK2vNodeId, type VectorClock, vclockGt, vclockMax } from './causality.ts'
import { causalContextOf, type K2vItem } from './item-table.ts'
import type { K2vPollRange } from './sub.ts'

/** @internal */
export class RangeSeenMarker {
  vectorClock: VectorClock = new Map()
  items = new Map<string, VectorClock>()

  /** Forgets items outside `range` (Garage's `restrict`). */
  restrict(range: K2vPollRange): void {
    for (const sk of [...this.items.keys()]) {
      if (range.start !== undefined && sk < range.start) this.items.delete(sk)
      else if (range.end !== undefined && sk >= range.end) this.items.delete(sk)
      else if (range.prefix !== undefined && !sk.startsWith(range.prefix)) this.items.delete(sk)
    }
  }

  /** Records what `nodeIdHex` returned (Garage's `mark_seen_node_items`). */
  markSeenNodeItems(nodeIdHex: string, items: Iterable<K2vItem>): void {
    const node = makeK2vNodeId(nodeIdHex)
    for (const item of items) {
      const cc = causalContextOf(item)
      const ts = cc.get(node)
      if (ts !== undefined) this.vectorClock.set(node, Math.max(this.vectorClock.get(node) ?? 0, ts))
      if (vclockGt(cc, this.vectorClock)) {
        const cur = this.items.get(item.sortKey)
        this.items.set(item.sortKey, cur === undefined ? cc : vclockMax(cur, cc))
      }
    }
  }

  isNewItem(item: K2vItem): boolean {
    const cc = causalContextOf(item)
    if (!vclockGt(cc, this.vectorClock)) return false
    const seen = this.items.get(item.sortKey)
    return seen === undefined || vclockGt(cc, seen)
  }

  encode(): string {
    // Garage's `canonicalize`: drop item clocks the global one covers.
    for (const [sk, vc] of [...this.items]) if (!vclockGt(vc, this.vectorClock)) this.items.delete(sk)
    const sorted = <V>(m: Map<string, V>): Array<[string, V]> => [...m].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    const body = encodeMsgpack({
      vc: sorted(this.vectorClock),
      items: sorted(this.items).map(([sk, vc]) => [sk, sorted(vc)]),
    })
    return Buffer.from(body).toString('base64')
  }

  /** Undefined for anything that is not a marker this code wrote. */
  static decode(s: string): RangeSeenMarker | undefined {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) return undefined
    let v: unknown
    try {
      v = decodeMsgpack(Buffer.from(s, 'base64'))
    } catch {
      // Not msgpack: not a marker (the caller answers 400).
      return undefined
    }
    const r = v as { vc?: unknown; items?: unknown } | null
    if (typeof r !== 'object' || r === null || !Array.isArray(r.vc) || !Array.isArray(r.items)) return undefined
    const clock = (x: unknown): VectorClock | undefined => {
      if (!Array.isArray(x)) return undefined
      const m: VectorClock = new Map()
      for (const p of x) {
        if (!Array.isArray(p) || typeof p[0] !== 'string' || !/^[0-9a-f]{16}$/.test(p[0]) || !Number.isSafeInteger(p[1])) {
          return undefined
        }
        m.set(p[0], p[1] as number)
      }
      return m
    }
    const out = new RangeSeenMarker()
    const vc = clock(r.vc)
    if (vc === undefined) return undefined
    out.vectorClock = vc
    for (const p of r.items) {
      if (!Array.isArray(p) || typeof p[0] !== 'string') return undefined
      const ivc = clock(p[1])
      if (ivc === undefined) return undefined
      out.items.set(p[0], ivc)
    }
    return out
  }
}
