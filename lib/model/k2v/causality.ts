/**
 * Causal contexts of K2V items (port of garage_model::k2v::causality): a vector clock mapping
 * each writer node (the first 8 bytes of its id, as Garage's `make_node_id`) to the highest
 * timestamp seen from it. Its text form, the causality token, is Garage's exactly:
 * `u64 checksum (XOR of every number) ‖ (u64 node ‖ u64 time)*`, big-endian, in URL-safe base64
 * without padding, nodes in ascending order.
 *
 * Node ids are kept as 16 lowercase hex characters (they sort as the u64 values do); times as
 * numbers (milliseconds since the epoch plus a counter: far below 2^53).
 * @internal
 */
import { blake2sum, toHex } from '../../util/data.ts'

/** A K2V writer id: the first 8 bytes of a node id, as 16 lowercase hex characters. @internal */
export type K2vNodeId = string

/** Writer → highest timestamp seen. @internal */
export type VectorClock = Map<K2vNodeId, number>

/**
 * Garage's `make_node_id`: the first 8 bytes of the node's id. (An id that is not hex, which
 * only tests use, is hashed first.)
 * @internal
 */
export function makeK2vNodeId(nodeIdHex: string): K2vNodeId {
  if (/^[0-9a-fA-F]{16}/.test(nodeIdHex)) return nodeIdHex.slice(0, 16).toLowerCase()
  return toHex(blake2sum(nodeIdHex)).slice(0, 16)
}

/** True when `a` has a time greater than `b` for some writer (Garage's `vclock_gt`). @internal */
export function vclockGt(a: VectorClock, b: VectorClock): boolean {
  for (const [n, ts] of a) if (ts > (b.get(n) ?? 0)) return true
  return false
}

/** Writer-wise maximum of two clocks. @internal */
export function vclockMax(a: VectorClock, b: VectorClock): VectorClock {
  const out = new Map(a)
  for (const [n, ts] of b) out.set(n, Math.max(ts, out.get(n) ?? 0))
  return out
}

/** The writers of a clock in ascending order (Garage's BTreeMap order). @internal */
export function sortedEntries(vc: VectorClock): Array<[K2vNodeId, number]> {
  return [...vc.entries()].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0))
}

/** The causality token of a clock (Garage's `CausalContext::serialize`). @internal */
export function serializeCausalContext(vc: VectorClock): string {
  const entries = sortedEntries(vc)
  const buf = Buffer.alloc(8 + 16 * entries.length)
  let checksum = 0n
  entries.forEach(([node, ts], i) => {
    const n = BigInt(`0x${node}`)
    const t = BigInt(ts)
    checksum ^= n ^ t
    buf.writeBigUInt64BE(n, 8 + 16 * i)
    buf.writeBigUInt64BE(t, 16 + 16 * i)
  })
  buf.writeBigUInt64BE(checksum, 0)
  return buf.toString('base64url')
}

/**
 * Parses a causality token (Garage's `CausalContext::parse`); undefined for anything that is not
 * one: bad base64, a length that is not 8 + 16·n, a wrong checksum. A time beyond 2^53 (never
 * issued by a node) is refused too.
 * @internal
 */
export function parseCausalContext(token: string): VectorClock | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(token)) return undefined
  // Unpadded base64 never has a length of 1 modulo 4.
  if (token.length % 4 === 1) return undefined
  const bytes = Buffer.from(token, 'base64url')
  if (bytes.length < 8 || bytes.length % 16 !== 8) return undefined
  // Non-canonical trailing bits: Garage's decoder refuses them.
  if (bytes.toString('base64url') !== token) return undefined
  const checksum = bytes.readBigUInt64BE(0)
  const vc: VectorClock = new Map()
  let check = 0n
  for (let i = 0; i < (bytes.length - 8) / 16; i++) {
    const n = bytes.readBigUInt64BE(8 + 16 * i)
    const t = bytes.readBigUInt64BE(16 + 16 * i)
    if (t > BigInt(Number.MAX_SAFE_INTEGER)) return undefined
    vc.set(n.toString(16).padStart(16, '0'), Number(t))
  }
  for (const [n, t] of vc) check ^= BigInt(`0x${n}`) ^ BigInt(t)
  if (check !== checksum) return undefined
  return vc
}
