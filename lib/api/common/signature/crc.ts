/**
 * Incremental CRC32, CRC32C and CRC64/NVME, the CRCs S3 clients send in `x-amz-checksum-*`.
 * CRC32C and CRC64NVME are table-driven with slicing-by-8 (8 bytes per step); CRC32 uses
 * `zlib.crc32` (native, Node.js >= 20.15) and falls back to the same table scheme.
 * Digests are big-endian bytes, as AWS encodes them before base64.
 *
 * The CRC64 state is held in two unsigned 32-bit halves, because BigInt arithmetic is an order of
 * magnitude slower.
 * @internal
 */
import * as zlib from 'node:zlib'

/** Common shape of the incremental CRCs. @internal */
export interface Crc {
  update(data: Uint8Array): void
  /** Big-endian digest bytes (4 for the 32-bit CRCs, 8 for CRC64). */
  digest(): Buffer
}

/** Eight 256-entry tables for a reflected 32-bit polynomial (slicing-by-8). */
function crc32Tables(poly: number): Int32Array {
  const t = new Int32Array(8 * 256)
  for (let i = 0; i < 256; i++) {
    let c = i
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1
    t[i] = c
  }
  for (let i = 0; i < 256; i++) {
    let c = t[i] as number
    for (let s = 1; s < 8; s++) {
      c = (t[c & 0xff] as number) ^ (c >>> 8)
      t[s * 256 + i] = c
    }
  }
  return t
}

/** Runs the reflected 32-bit CRC over `data`, from and to the raw (non-inverted) register. */
function crc32Update(t: Int32Array, crc: number, data: Uint8Array): number {
  let c = crc | 0
  let i = 0
  const n = data.length
  const end8 = n - (n & 7)
  while (i < end8) {
    const a =
      c ^
      ((data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24))
    c =
      (t[1792 + (a & 0xff)] as number) ^
      (t[1536 + ((a >>> 8) & 0xff)] as number) ^
      (t[1280 + ((a >>> 16) & 0xff)] as number) ^
      (t[1024 + (a >>> 24)] as number) ^
      (t[768 + (data[i + 4] as number)] as number) ^
      (t[512 + (data[i + 5] as number)] as number) ^
      (t[256 + (data[i + 6] as number)] as number) ^
      (t[data[i + 7] as number] as number)
    i += 8
  }
  while (i < n) {
    c = (t[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8)
    i++
  }
  return c
}

function be32(value: number): Buffer {
  const out = Buffer.allocUnsafe(4)
  out.writeUInt32BE(value >>> 0, 0)
  return out
}

let crc32cTable: Int32Array | undefined
let crc32Table: Int32Array | undefined

// `zlib.crc32` exists from Node.js 20.15 / 22.2; engines allow 20.19+, but stay safe.
const nativeCrc32: ((data: Uint8Array, value?: number) => number) | undefined =
  typeof zlib.crc32 === 'function' ? zlib.crc32 : undefined

/** CRC-32 (ISO-HDLC, the zlib one). @internal */
export class Crc32 implements Crc {
  #value = 0 // the finalised CRC of the data so far (zlib's convention)
  update(data: Uint8Array): void {
    if (nativeCrc32 !== undefined) {
      this.#value = nativeCrc32(data, this.#value)
      return
    }
    crc32Table ??= crc32Tables(0xedb88320)
    this.#value = ~crc32Update(crc32Table, ~this.#value, data) >>> 0
  }
  digest(): Buffer {
    return be32(this.#value)
  }
}

/** CRC-32C (Castagnoli). @internal */
export class Crc32c implements Crc {
  #reg = -1
  constructor() {
    crc32cTable ??= crc32Tables(0x82f63b78)
  }
  update(data: Uint8Array): void {
    this.#reg = crc32Update(crc32cTable as Int32Array, this.#reg, data)
  }
  digest(): Buffer {
    return be32(~this.#reg)
  }
}

// CRC64/NVME: reflected polynomial 0x9A6C9329AC4BC9B5, init and xorout all ones.
const CRC64_POLY_HI = 0x9a6c9329
const CRC64_POLY_LO = 0xac4bc9b5
let crc64Hi: Int32Array | undefined
let crc64Lo: Int32Array | undefined

function crc64Tables(): void {
  const hi = new Int32Array(8 * 256)
  const lo = new Int32Array(8 * 256)
  for (let i = 0; i < 256; i++) {
    let h = 0
    let l = i
    for (let k = 0; k < 8; k++) {
      const bit = l & 1
      l = (l >>> 1) | ((h & 1) << 31)
      h = h >>> 1
      if (bit) {
        h ^= CRC64_POLY_HI
        l ^= CRC64_POLY_LO
      }
    }
    hi[i] = h
    lo[i] = l
  }
  for (let i = 0; i < 256; i++) {
    let h = hi[i] as number
    let l = lo[i] as number
    for (let s = 1; s < 8; s++) {
      const idx = l & 0xff
      l = (lo[idx] as number) ^ ((l >>> 8) | (h << 24))
      h = (hi[idx] as number) ^ (h >>> 8)
      hi[s * 256 + i] = h
      lo[s * 256 + i] = l
    }
  }
  crc64Hi = hi
  crc64Lo = lo
}

/** CRC-64/NVME, the CRC64 of S3's `x-amz-checksum-crc64nvme`. @internal */
export class Crc64Nvme implements Crc {
  #hi = -1
  #lo = -1
  constructor() {
    if (crc64Hi === undefined) crc64Tables()
  }
  update(data: Uint8Array): void {
    const th = crc64Hi as Int32Array
    const tl = crc64Lo as Int32Array
    let h = this.#hi
    let l = this.#lo
    let i = 0
    const n = data.length
    const end8 = n - (n & 7)
    while (i < end8) {
      const a =
        l ^
        ((data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24))
      const b =
        h ^
        ((data[i + 4] as number) |
          ((data[i + 5] as number) << 8) |
          ((data[i + 6] as number) << 16) |
          ((data[i + 7] as number) << 24))
      const i7 = 1792 + (a & 0xff)
      const i6 = 1536 + ((a >>> 8) & 0xff)
      const i5 = 1280 + ((a >>> 16) & 0xff)
      const i4 = 1024 + (a >>> 24)
      const i3 = 768 + (b & 0xff)
      const i2 = 512 + ((b >>> 8) & 0xff)
      const i1 = 256 + ((b >>> 16) & 0xff)
      const i0 = b >>> 24
      h =
        (th[i7] as number) ^
        (th[i6] as number) ^
        (th[i5] as number) ^
        (th[i4] as number) ^
        (th[i3] as number) ^
        (th[i2] as number) ^
        (th[i1] as number) ^
        (th[i0] as number)
      l =
        (tl[i7] as number) ^
        (tl[i6] as number) ^
        (tl[i5] as number) ^
        (tl[i4] as number) ^
        (tl[i3] as number) ^
        (tl[i2] as number) ^
        (tl[i1] as number) ^
        (tl[i0] as number)
      i += 8
    }
    while (i < n) {
      const idx = (l ^ (data[i] as number)) & 0xff
      l = (tl[idx] as number) ^ ((l >>> 8) | (h << 24))
      h = (th[idx] as number) ^ (h >>> 8)
      i++
    }
    this.#hi = h
    this.#lo = l
  }
  digest(): Buffer {
    const out = Buffer.allocUnsafe(8)
    out.writeUInt32BE(~this.#hi >>> 0, 0)
    out.writeUInt32BE(~this.#lo >>> 0, 4)
    return out
  }
}

/** The CRCs that can be combined: reflected, with init and xorout all ones. @internal */
export type CombinableCrc = 'CRC32' | 'CRC32C' | 'CRC64NVME'

interface CrcShape {
  width: bigint
  /** Reflected polynomial. */
  poly: bigint
  /** x^(2^k) mod P for k = 0..63, filled lazily. */
  x2n?: bigint[]
  /** x^(8 * len) mod P by len (parts often share a size). */
  shifts: Map<number, bigint>
}

const CRC_SHAPES: Record<CombinableCrc, CrcShape> = {
  CRC32: { width: 32n, poly: 0xedb88320n, shifts: new Map() },
  CRC32C: { width: 32n, poly: 0x82f63b78n, shifts: new Map() },
  CRC64NVME: { width: 64n, poly: 0x9a6c9329ac4bc9b5n, shifts: new Map() },
}

/** a * b mod P, in the reflected representation (zlib's `multmodp`, any width). */
function multModP(s: CrcShape, a: bigint, b: bigint): bigint {
  let m = 1n << (s.width - 1n)
  let p = 0n
  let bb = b
  for (;;) {
    if ((a & m) !== 0n) {
      p ^= bb
      if ((a & (m - 1n)) === 0n) break
    }
    m >>= 1n
    bb = (bb & 1n) !== 0n ? (bb >> 1n) ^ s.poly : bb >> 1n
  }
  return p
}

/** x^(8 * len) mod P (zlib's `x2nmodp(len, 3)`). */
function shiftOperator(s: CrcShape, len: number): bigint {
  const cached = s.shifts.get(len)
  if (cached !== undefined) return cached
  if (s.x2n === undefined) {
    const table: bigint[] = []
    let p = 1n << (s.width - 2n) // x^1
    table.push(p)
    for (let k = 1; k < 64; k++) {
      p = multModP(s, p, p)
      table.push(p)
    }
    s.x2n = table
  }
  let p = 1n << (s.width - 1n) // x^0
  let n = BigInt(len)
  let k = 3
  while (n > 0n) {
    if ((n & 1n) !== 0n) p = multModP(s, s.x2n[k] as bigint, p)
    n >>= 1n
    k++
  }
  if (s.shifts.size < 64) s.shifts.set(len, p)
  return p
}

/**
 * The CRC of `A || B` from the CRC of `A`, the CRC of `B` and the length of `B`, without the data
 * (zlib's `crc32_combine`, generalised to CRC32C and CRC64/NVME). CRCs are big-endian digests,
 * as {@link Crc.digest} returns them.
 * @internal
 */
export function crcCombine(alg: CombinableCrc, crcA: Uint8Array, crcB: Uint8Array, lengthB: number): Buffer {
  const s = CRC_SHAPES[alg]
  const a = BigInt(`0x${Buffer.from(crcA).toString('hex')}`)
  const b = BigInt(`0x${Buffer.from(crcB).toString('hex')}`)
  const combined = multModP(s, shiftOperator(s, lengthB), a) ^ b
  return Buffer.from(combined.toString(16).padStart(Number(s.width) / 4, '0'), 'hex')
}
