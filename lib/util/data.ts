/** Identifiers and hashes (port of garage_util::data). All are 32-byte Uint8Arrays. */
import { createHash } from 'node:crypto'
import { randomBytes } from './random.ts'

/** A 32-byte identifier: random for buckets and versions, a hash for blocks and partitions. */
export type Uuid = Uint8Array
/** A 32-byte digest. */
export type Hash = Uint8Array

/** A fresh random 32-byte id. */
export function genUuid(): Uuid {
  return new Uint8Array(randomBytes(32))
}

/** BLAKE2b-512 truncated to 32 bytes, the hash Garage uses for blocks and partition keys. */
export function blake2sum(data: Uint8Array | string): Hash {
  return new Uint8Array(createHash('blake2b512').update(data).digest().subarray(0, 32))
}

/** The number of bytes of `data`, given whole or in pieces. */
export function byteLengthOf(data: Uint8Array | readonly Uint8Array[]): number {
  if (data instanceof Uint8Array) return data.byteLength
  let n = 0
  for (const p of data) n += p.byteLength
  return n
}

/** {@link blake2sum} of bytes given whole or in pieces (hashed in order, not copied together). */
export function blake2sumOf(data: Uint8Array | readonly Uint8Array[]): Hash {
  if (data instanceof Uint8Array) return blake2sum(data)
  const h = createHash('blake2b512')
  for (const p of data) h.update(p)
  return new Uint8Array(h.digest().subarray(0, 32))
}

export function sha256sum(data: Uint8Array | string): Hash {
  return new Uint8Array(createHash('sha256').update(data).digest())
}

export function toHex(b: Uint8Array): string {
  return asBuffer(b).toString('hex')
}

/**
 * `b` as a Buffer, for Buffer's methods. A typed array of up to 64 bytes lives inside V8's heap
 * until something reads its `.buffer`, which moves it out (≈ 1.7 µs, measured, against ≈ 0.1 µs
 * to copy it): ids and hashes (32 bytes) are copied, larger arrays viewed.
 */
export function asBuffer(b: Uint8Array): Buffer {
  if (Buffer.isBuffer(b)) return b
  if (b.byteLength <= 64) return Buffer.from(b)
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength)
}

export function fromHex(s: string): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(s)) throw new TypeError(`not a hex string: ${s.slice(0, 80)}`)
  return new Uint8Array(Buffer.from(s, 'hex'))
}

/** Parse a 64-char hex string into a 32-byte id, or undefined when it is not one. */
export function parseUuid(s: string): Uuid | undefined {
  return /^[0-9a-fA-F]{64}$/.test(s) ? fromHex(s) : undefined
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b)
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()
export const utf8 = (s: string): Uint8Array => encoder.encode(s)
export const fromUtf8 = (b: Uint8Array): string => decoder.decode(b)

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts))
}
