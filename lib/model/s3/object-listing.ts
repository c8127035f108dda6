/**
 * What a listing needs from a stored object row, read straight from its encoding (issue 21):
 * the key and, for the current version, its timestamp, size and ETag. Decoding the whole row
 * (every version, header list, inline bytes) was a third of the time of a ListObjectsV2 page;
 * this walks the msgpack value once, decodes only those fields and skips the rest without
 * allocating. It gives the same answer as `currentVersion(objectCodec.decode(raw))`
 * (test/model/s3/object-listing.test.ts); a row in a shape it does not expect is decoded whole.
 */
import { objectCodec, type ObjectEntry } from './object-table.ts'

/** The listed facts of an object row: `current` is absent when no version is readable. */
export interface ListingRow {
  key: string
  current?: { ts: number; size: number; etag: string }
}

/** The newest complete version's data, unless it is a delete marker (as GET's `currentVersion`). */
export function listingOfEntry(o: ObjectEntry): ListingRow {
  for (let i = o.versions.length - 1; i >= 0; i--) {
    const v = o.versions[i]
    if (v === undefined || v.state.t !== 'complete') continue
    const d = v.state.data
    if (d.t === 'delete') return { key: o.key }
    return { key: o.key, current: { ts: v.ts, size: d.meta.size, etag: d.meta.etag } }
  }
  return { key: o.key }
}

/** Reads the listing facts of a stored object row (the object table's encoding). */
export function listingOfRaw(raw: Uint8Array): ListingRow {
  const off = markerLength(raw)
  if (off > 0) {
    const r = new Reader(raw, off)
    const row = readRow(r)
    if (row !== undefined) return row
  }
  return listingOfEntry(objectCodec.decode(raw))
}

/** Length of a known object row marker (`GTobj2`, or `GTobj1` of the same shape), else 0. */
function markerLength(b: Uint8Array): number {
  // 'G' 'T' 'o' 'b' 'j' then '1' or '2'
  if (b.length < 7 || b[0] !== 0x47 || b[1] !== 0x54 || b[2] !== 0x6f || b[3] !== 0x62 || b[4] !== 0x6a) return 0
  return b[5] === 0x32 || b[5] === 0x31 ? 6 : 0
}

/** Thrown inside the reader when the bytes are not the shape it expects (caught below). */
class Unexpected extends Error {}

const te = new TextDecoder('utf-8')

class Reader {
  readonly b: Uint8Array
  readonly dv: DataView
  p: number
  constructor(b: Uint8Array, p: number) {
    this.b = b
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength)
    this.p = p
  }
  byte(): number {
    const v = this.b[this.p++]
    if (v === undefined) throw new Unexpected()
    return v
  }
  /** Length of a map header at the cursor (the cursor moves past it), or -1 (cursor kept). */
  mapLen(): number {
    const t = this.b[this.p]
    if (t === undefined) throw new Unexpected()
    if (t >= 0x80 && t <= 0x8f) {
      this.p++
      return t & 0x0f
    }
    if (t === 0xde) {
      this.p++
      return this.u16()
    }
    if (t === 0xdf) {
      this.p++
      return this.u32()
    }
    return -1
  }
  arrayLen(): number {
    const t = this.byte()
    if (t >= 0x90 && t <= 0x9f) return t & 0x0f
    if (t === 0xdc) return this.u16()
    if (t === 0xdd) return this.u32()
    throw new Unexpected()
  }
  /** Length of a string at the cursor (the cursor moves to its bytes), or -1 (cursor kept). */
  strLen(): number {
    const t = this.b[this.p]
    if (t === undefined) throw new Unexpected()
    if (t >= 0xa0 && t <= 0xbf) {
      this.p++
      return t & 0x1f
    }
    if (t === 0xd9) {
      this.p++
      return this.byte()
    }
    if (t === 0xda) {
      this.p++
      return this.u16()
    }
    if (t === 0xdb) {
      this.p++
      return this.u32()
    }
    return -1
  }
  str(): string {
    const n = this.strLen()
    if (n < 0) throw new Unexpected()
    const s = this.p
    const e = s + n
    if (e > this.b.length) throw new Unexpected()
    this.p = e
    return text(this.b, s, e)
  }
  /**
   * Reads a map key (or a string value) and returns its index in `names` (short ASCII names,
   * compared without decoding), or -1 for any other key.
   */
  oneOf(names: readonly string[]): number {
    const n = this.strLen()
    if (n < 0) {
      this.skip()
      return -1
    }
    const s = this.p
    this.p = s + n
    if (this.p > this.b.length) throw new Unexpected()
    next: for (let k = 0; k < names.length; k++) {
      const name = names[k] as string
      if (name.length !== n) continue
      for (let i = 0; i < n; i++) if (this.b[s + i] !== name.charCodeAt(i)) continue next
      return k
    }
    return -1
  }
  num(): number {
    const t = this.byte()
    if (t <= 0x7f) return t
    if (t >= 0xe0) return t - 0x100
    const dv = this.dv
    const p = this.p
    switch (t) {
      case 0xcc:
        this.p += 1
        return this.at(p, 1) && dv.getUint8(p)
      case 0xcd:
        this.p += 2
        return this.at(p, 2) && dv.getUint16(p)
      case 0xce:
        this.p += 4
        return this.at(p, 4) && dv.getUint32(p)
      case 0xcf:
        this.p += 8
        return this.at(p, 8) && dv.getUint32(p) * 0x1_0000_0000 + dv.getUint32(p + 4)
      case 0xd0:
        this.p += 1
        return this.at(p, 1) && dv.getInt8(p)
      case 0xd1:
        this.p += 2
        return this.at(p, 2) && dv.getInt16(p)
      case 0xd2:
        this.p += 4
        return this.at(p, 4) && dv.getInt32(p)
      case 0xd3:
        this.p += 8
        return this.at(p, 8) && dv.getInt32(p) * 0x1_0000_0000 + dv.getUint32(p + 4)
      case 0xca:
        this.p += 4
        return this.at(p, 4) && dv.getFloat32(p)
      case 0xcb:
        this.p += 8
        return this.at(p, 8) && dv.getFloat64(p)
      default:
        throw new Unexpected()
    }
  }
  /** True when `n` bytes from `p` are inside the value (throws otherwise). */
  at(p: number, n: number): true {
    if (p + n > this.b.length) throw new Unexpected()
    return true
  }
  u16(): number {
    const p = this.p
    this.at(p, 2)
    this.p += 2
    return this.dv.getUint16(p)
  }
  u32(): number {
    const p = this.p
    this.at(p, 4)
    this.p += 4
    return this.dv.getUint32(p)
  }
  /** Moves the cursor `n` bytes on (`this.p += this.byte()` would add to the position before the read). */
  advance(n: number): void {
    this.p += n
  }
  /** Moves past one value of any type. */
  skip(): void {
    let pending = 1
    while (pending > 0) {
      pending--
      const t = this.byte()
      if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) continue
      if (t <= 0x8f) pending += 2 * (t & 0x0f)
      else if (t <= 0x9f) pending += t & 0x0f
      else if (t <= 0xbf) this.p += t & 0x1f
      else
        switch (t) {
          case 0xc4:
          case 0xd9:
            this.advance(this.byte())
            break
          case 0xc5:
          case 0xda:
            this.advance(this.u16())
            break
          case 0xc6:
          case 0xdb:
            this.advance(this.u32())
            break
          case 0xc7:
            this.advance(this.byte() + 1)
            break
          case 0xc8:
            this.advance(this.u16() + 1)
            break
          case 0xc9:
            this.advance(this.u32() + 1)
            break
          case 0xca:
            this.p += 4
            break
          case 0xcb:
            this.p += 8
            break
          case 0xcc:
          case 0xd0:
            this.p += 1
            break
          case 0xcd:
          case 0xd1:
            this.p += 2
            break
          case 0xce:
          case 0xd2:
            this.p += 4
            break
          case 0xcf:
          case 0xd3:
            this.p += 8
            break
          case 0xd4:
            this.p += 2
            break
          case 0xd5:
            this.p += 3
            break
          case 0xd6:
            this.p += 5
            break
          case 0xd7:
            this.p += 9
            break
          case 0xd8:
            this.p += 17
            break
          case 0xdc:
            pending += this.u16()
            break
          case 0xdd:
            pending += this.u32()
            break
          case 0xde:
            pending += 2 * this.u16()
            break
          case 0xdf:
            pending += 2 * this.u32()
            break
          default:
            throw new Unexpected()
        }
      if (this.p > this.b.length) throw new Unexpected()
    }
  }
}

/** UTF-8 text of `b[s, e)`; short ASCII (keys, ETags) without a decoder call. */
function text(b: Uint8Array, s: number, e: number): string {
  if (e - s <= 48) {
    let out = ''
    for (let i = s; i < e; i++) {
      const c = b[i] as number
      if (c >= 0x80) return te.decode(b.subarray(s, e))
      out += String.fromCharCode(c)
    }
    return out
  }
  return te.decode(b.subarray(s, e))
}

const ROW = ['key', 'versions'] as const
const VERSION = ['ts', 'state'] as const
const STATE = ['t', 'data'] as const
const COMPLETE = ['complete'] as const
const DATA = ['t', 'meta'] as const
const DATA_KIND = ['delete', 'inline', 'firstBlock'] as const
const META = ['size', 'etag'] as const

/** The row's key and current version; undefined when the bytes are not the expected shape. */
function readRow(r: Reader): ListingRow | undefined {
  try {
    let key: string | undefined
    /** Position of the newest complete version's `data` map, and that version's timestamp. */
    let data = -1
    let ts = 0
    const n = r.mapLen()
    if (n < 0) return undefined
    for (let i = 0; i < n; i++) {
      const f = r.oneOf(ROW)
      if (f === 0) key = r.str()
      else if (f === 1) {
        const count = r.arrayLen()
        for (let j = 0; j < count; j++) {
          const v = readVersion(r)
          if (v !== undefined) {
            data = v.data
            ts = v.ts
          }
        }
      } else r.skip()
    }
    if (key === undefined) return undefined
    if (data < 0) return { key }
    r.p = data
    return readData(r, key, ts)
  } catch (err) {
    if (err instanceof Unexpected) return undefined
    throw err
  }
}

/** Reads one version map: its timestamp and the position of its `data` map if it is complete. */
function readVersion(r: Reader): { ts: number; data: number } | undefined {
  const n = r.mapLen()
  if (n < 0) throw new Unexpected()
  let ts: number | undefined
  let data = -1
  let complete = false
  for (let i = 0; i < n; i++) {
    const f = r.oneOf(VERSION)
    if (f === 0) ts = r.num()
    else if (f === 1) {
      const m = r.mapLen()
      if (m < 0) throw new Unexpected()
      for (let k = 0; k < m; k++) {
        const g = r.oneOf(STATE)
        if (g === 0) complete = r.oneOf(COMPLETE) === 0
        else if (g === 1) {
          data = r.p
          r.skip()
        } else r.skip()
      }
    } else r.skip()
  }
  if (!complete) return undefined
  if (ts === undefined || data < 0) throw new Unexpected()
  return { ts, data }
}

/** Reads a complete version's `data` map: a delete marker, or its size and ETag. */
function readData(r: Reader, key: string, ts: number): ListingRow {
  const n = r.mapLen()
  if (n < 0) throw new Unexpected()
  let kind = -1
  let meta = -1
  for (let i = 0; i < n; i++) {
    const f = r.oneOf(DATA)
    if (f === 0) {
      kind = r.oneOf(DATA_KIND)
      if (kind < 0) throw new Unexpected()
    } else if (f === 1) {
      meta = r.p
      r.skip()
    } else r.skip()
  }
  if (kind === 0) return { key }
  if (kind < 0 || meta < 0) throw new Unexpected()
  r.p = meta
  const m = r.mapLen()
  if (m < 0) throw new Unexpected()
  let size: number | undefined
  let etag: string | undefined
  for (let i = 0; i < m; i++) {
    const f = r.oneOf(META)
    if (f === 0) size = r.num()
    else if (f === 1) etag = r.str()
    else r.skip()
  }
  if (size === undefined || etag === undefined) throw new Unexpected()
  return { key, current: { ts, size, etag } }
}
