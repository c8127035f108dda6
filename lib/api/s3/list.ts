/**
 * ListObjects (v1) and ListObjectsV2 (port of garage_api_s3::list). Keys are walked in the
 * object table's byte order from the first candidate on; a common prefix is emitted once, then
 * the walk jumps past every key under it.
 */
import type { Garage } from '../../model/garage.ts'
import { prefixEnd } from '../../db/db.ts'
import { type Uuid, utf8 } from '../../util/data.ts'
import { isoDate } from '../../util/time.ts'
import { ApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import { type ListingRow, listingOfEntry, listingOfRaw } from '../../model/s3/object-listing.ts'
import type { ObjectEntry } from '../../model/s3/object-table.ts'
import { S3_XMLNS } from './xml.ts'

export interface ListQuery {
  prefix: string
  delimiter?: string
  maxKeys: number
  /** Sort key bytes to start from (inclusive). */
  start: Uint8Array
  /** Skip keys and common prefixes up to and including this one (v1 marker, v2 start-after). */
  after?: string
}

export interface ListedObject {
  key: string
  lastModified: number
  etag: string
  size: number
}

export interface ListResult {
  objects: ListedObject[]
  commonPrefixes: string[]
  truncated: boolean
  /** Where the next page starts (inclusive), when truncated. */
  nextStart?: Uint8Array
  /** The last key or common prefix returned. */
  lastReturned?: string
}

const PAGE = 1000

/**
 * Rows read after a jump past a common prefix. Each read decodes every row it returns, and after
 * a jump most of a page often lies under the next common prefix and is thrown away: reading
 * 1,000 rows per common prefix made a delimited listing ~1,000 times slower than a flat one. The
 * page doubles again (up to PAGE) while no jump happens.
 */
const PAGE_AFTER_JUMP = 16

/**
 * Compares two keys in the order of their UTF-8 bytes (the order of the store). Code units below
 * U+D800 order as their UTF-8 bytes do, so the usual case needs no encoding; a difference at a
 * surrogate or above falls back to comparing the bytes.
 */
export function cmpKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x === y) continue
    if (x < 0xd800 && y < 0xd800) return x - y
    return Buffer.compare(utf8(a), utf8(b))
  }
  return a.length - b.length
}
const cmp = cmpKeys

/**
 * One listing's state as rows come in key order: what it returned so far, where it stops. A row
 * is given to {@link Walk.visit}, which says whether to go on, to stop, or to jump to a key.
 */
class Walk {
  readonly objects: ListedObject[] = []
  readonly commonPrefixes: string[] = []
  truncated = false
  nextStart: Uint8Array | undefined
  lastReturned: string | undefined
  readonly #q: ListQuery
  readonly #delimiter: string | undefined
  constructor(q: ListQuery) {
    this.#q = q
    this.#delimiter = q.delimiter === undefined || q.delimiter === '' ? undefined : q.delimiter
  }

  /**
   * Handles one row that has a current version: `undefined` to go on, `STOP` when the listing is
   * complete or full, or the sort key to jump to (past every key under a common prefix).
   */
  visit(row: ListingRow & { current: NonNullable<ListingRow['current']> }): Uint8Array | typeof STOP | undefined {
    const q = this.#q
    const key = row.key
    if (!key.startsWith(q.prefix)) {
      if (cmp(key, q.prefix) > 0) return STOP
      return undefined
    }
    let common: string | undefined
    if (this.#delimiter !== undefined) {
      const i = key.indexOf(this.#delimiter, q.prefix.length)
      if (i >= 0) common = key.slice(0, i + this.#delimiter.length)
    }
    const name = common ?? key
    if (q.after === undefined || cmp(name, q.after) > 0) {
      if (this.objects.length + this.commonPrefixes.length >= q.maxKeys) {
        this.truncated = true
        this.nextStart = utf8(name)
        return STOP
      }
      if (common === undefined) {
        const c = row.current
        this.objects.push({ key, lastModified: c.ts, etag: c.etag, size: c.size })
      } else this.commonPrefixes.push(common)
      this.lastReturned = name
    }
    if (common !== undefined) return prefixEnd(utf8(common)) ?? STOP
    return undefined
  }

  result(): ListResult {
    return {
      objects: this.objects,
      commonPrefixes: this.commonPrefixes,
      truncated: this.truncated,
      ...(this.nextStart === undefined ? {} : { nextStart: this.nextStart }),
      ...(this.lastReturned === undefined ? {} : { lastReturned: this.lastReturned }),
    }
  }
}

const STOP = 1

/** Walks the bucket's objects and groups them by delimiter. */
export async function listObjects(garage: Garage, bucketId: Uuid, q: ListQuery): Promise<ListResult> {
  const prefixBytes = utf8(q.prefix)
  const start: Uint8Array = Buffer.compare(q.start, prefixBytes) > 0 ? q.start : prefixBytes
  const walk = new Walk(q)
  if (q.maxKeys === 0) return walk.result()
  if (garage.objectTable.readsLocally(bucketId)) return listLocal(garage, bucketId, start, walk)
  return listQuorum(garage, bucketId, start, walk)
}

/**
 * The bucket's rows are all on this node: one pass over lmdb's range from `start`, reading only
 * the listed fields of each row, a new range after each jump past a common prefix.
 */
function listLocal(garage: Garage, bucketId: Uuid, start: Uint8Array, walk: Walk): ListResult {
  const data = garage.objectTable.data
  let cursor = start
  for (;;) {
    let jump: Uint8Array | undefined
    for (const raw of data.rawRange(bucketId, cursor)) {
      const row = listingOfRaw(raw)
      if (row.current === undefined) continue
      const step = walk.visit(row as Parameters<Walk['visit']>[0])
      if (step === undefined) continue
      if (step === STOP) return walk.result()
      jump = step
      break
    }
    if (jump === undefined) return walk.result()
    cursor = jump
  }
}

/** Rows read at quorum, a page at a time (their replicas merged). */
async function listQuorum(garage: Garage, bucketId: Uuid, start: Uint8Array, walk: Walk): Promise<ListResult> {
  let cursor = start
  let pageSize = PAGE
  for (;;) {
    const page = await garage.objectTable.getRange(bucketId, { start: cursor, limit: pageSize })
    let rows = 0
    let jump: Uint8Array | undefined
    for (const o of page) {
      rows++
      const row = listingOfEntry(o)
      if (row.current === undefined) continue
      const step = walk.visit(row as Parameters<Walk['visit']>[0])
      if (step === undefined) continue
      if (step === STOP) return walk.result()
      jump = step
      break
    }
    if (jump === undefined && rows < pageSize) return walk.result()
    if (jump !== undefined) cursor = jump
    else cursor = keySuccessor((page[page.length - 1] as ObjectEntry).key)
    pageSize = jump !== undefined ? PAGE_AFTER_JUMP : Math.min(PAGE, pageSize * 2)
  }
}

function keySuccessor(key: string): Uint8Array {
  const b = utf8(key)
  const out = new Uint8Array(b.length + 1)
  out.set(b)
  return out
}

/** AWS's URI encoding for `encoding-type=url` (slashes kept). */
export function uriEncode(s: string): string {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%2F/g, '/')
}

function clampMaxKeys(v: number | undefined): number {
  if (v === undefined) return 1000
  if (!Number.isInteger(v) || v < 0) throw new ApiError('InvalidArgument', 'max-keys must be a non-negative integer')
  return Math.min(v, 1000)
}

function checkEncodingType(e: string | undefined): boolean {
  if (e === undefined) return false
  if (e !== 'url') throw new ApiError('InvalidArgument', 'Invalid Encoding Method specified in Request')
  return true
}

export interface ListV2Params {
  prefix?: string
  delimiter?: string
  maxKeys?: number
  continuationToken?: string
  startAfter?: string
  encodingType?: string
  fetchOwner?: boolean
}

export interface Owner {
  id: string
  displayName: string
}

export async function handleListObjectsV2(
  garage: Garage,
  bucketId: Uuid,
  bucketName: string,
  p: ListV2Params,
  owner: Owner,
): Promise<ApiResponse> {
  const url = checkEncodingType(p.encodingType)
  const prefix = p.prefix ?? ''
  let start = utf8(prefix)
  let after: string | undefined
  if (p.continuationToken !== undefined) {
    const raw = Buffer.from(p.continuationToken, 'base64url')
    if (p.continuationToken === '' || raw.toString('base64url') !== p.continuationToken) {
      throw new ApiError('InvalidArgument', 'The continuation token provided is incorrect')
    }
    start = new Uint8Array(raw)
  } else if (p.startAfter !== undefined) {
    after = p.startAfter
    const s = keyAfter(p.startAfter)
    if (Buffer.compare(s, start) > 0) start = s
  }
  const maxKeys = clampMaxKeys(p.maxKeys)
  const r = await listObjects(garage, bucketId, { prefix, delimiter: p.delimiter, maxKeys, start, after })
  const enc = (s: string) => (url ? uriEncode(s) : s)
  let xml = `${XML_HEAD}${el('Name', bucketName)}${el('Prefix', enc(prefix))}`
  if (p.delimiter !== undefined) xml += el('Delimiter', enc(p.delimiter))
  xml += `<MaxKeys>${maxKeys}</MaxKeys><KeyCount>${r.objects.length + r.commonPrefixes.length}</KeyCount>`
  xml += `<IsTruncated>${r.truncated}</IsTruncated>`
  if (p.continuationToken !== undefined) xml += el('ContinuationToken', p.continuationToken)
  if (r.truncated && r.nextStart !== undefined) {
    xml += el('NextContinuationToken', Buffer.from(r.nextStart).toString('base64url'))
  }
  if (p.startAfter !== undefined) xml += el('StartAfter', enc(p.startAfter))
  if (url) xml += '<EncodingType>url</EncodingType>'
  return {
    status: 200,
    headers: { 'content-type': 'application/xml' },
    body: contentsXml(xml, r, enc, p.fetchOwner === true ? owner : undefined),
  }
}

export interface ListV1Params {
  prefix?: string
  delimiter?: string
  maxKeys?: number
  marker?: string
  encodingType?: string
}

export async function handleListObjectsV1(
  garage: Garage,
  bucketId: Uuid,
  bucketName: string,
  p: ListV1Params,
  owner: Owner,
): Promise<ApiResponse> {
  const url = checkEncodingType(p.encodingType)
  const prefix = p.prefix ?? ''
  let start = utf8(prefix)
  if (p.marker !== undefined && p.marker !== '') {
    const s = keyAfter(p.marker)
    if (Buffer.compare(s, start) > 0) start = s
  }
  const maxKeys = clampMaxKeys(p.maxKeys)
  const after = p.marker === undefined || p.marker === '' ? undefined : p.marker
  const r = await listObjects(garage, bucketId, { prefix, delimiter: p.delimiter, maxKeys, start, after })
  const enc = (s: string) => (url ? uriEncode(s) : s)
  let xml = `${XML_HEAD}${el('Name', bucketName)}${el('Prefix', enc(prefix))}${el('Marker', enc(p.marker ?? ''))}`
  if (p.delimiter !== undefined) xml += el('Delimiter', enc(p.delimiter))
  xml += `<MaxKeys>${maxKeys}</MaxKeys><IsTruncated>${r.truncated}</IsTruncated>`
  if (r.truncated && p.delimiter !== undefined && r.lastReturned !== undefined) xml += el('NextMarker', enc(r.lastReturned))
  if (url) xml += '<EncodingType>url</EncodingType>'
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: contentsXml(xml, r, enc, owner) }
}

/** The first sort key strictly after `key`. */
function keyAfter(key: string): Uint8Array {
  return keySuccessor(key)
}

/** The document's start, up to the root element's children (as `renderXml` writes it). */
const XML_HEAD = `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="${S3_XMLNS}">`

const NEEDS_ESCAPE = /[&<>'"]/

/** Text escaped as the XML builder of `renderXml` escapes it. */
export function xmlText(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return s
  return s.replace(/&/g, '&amp;').replace(/>/g, '&gt;').replace(/</g, '&lt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;')
}

const el = (tag: string, text: string): string => `<${tag}>${xmlText(text)}</${tag}>`

/**
 * `<Contents>` of each object and `<CommonPrefixes>` of each prefix, then the root's end tag,
 * written after `head` straight into bytes: a page of 1,000 keys through the generic XML builder
 * was a quarter of the listing's time, and one string built by concatenation still cost a walk
 * of the whole ~200 KB to flatten and another to encode it. The output is byte for byte
 * `renderXml`'s (test/api/s3/list.test.ts).
 */
function contentsXml(head: string, r: ListResult, enc: (s: string) => string, owner: Owner | undefined): Buffer {
  const ownerXml = owner === undefined ? '' : `<Owner>${el('ID', owner.id)}${el('DisplayName', owner.displayName)}</Owner>`
  // About 200 bytes of markup and date per object, plus its key and owner; it grows if needed.
  const w = new ByteWriter(head.length * 3 + r.objects.length * (232 + ownerXml.length) + 64)
  w.text(head)
  let lastTs = Number.NaN
  let lastDate = ''
  for (const o of r.objects) {
    if (o.lastModified !== lastTs) {
      lastTs = o.lastModified
      lastDate = isoDate(o.lastModified)
    }
    const key = xmlText(enc(o.key))
    const etag = xmlText(o.etag)
    w.reserve(3 * (key.length + etag.length + ownerXml.length) + 200)
    w.bytes(CONTENTS_KEY)
    w.text(key)
    w.bytes(KEY_MODIFIED)
    w.ascii(lastDate)
    w.bytes(MODIFIED_ETAG)
    w.text(etag)
    w.bytes(ETAG_SIZE)
    w.ascii(String(o.size))
    w.bytes(SIZE_CLASS)
    if (ownerXml !== '') w.text(ownerXml)
    w.bytes(CONTENTS_END)
  }
  for (const c of r.commonPrefixes) w.text(`<CommonPrefixes><Prefix>${xmlText(enc(c))}</Prefix></CommonPrefixes>`)
  w.bytes(RESULT_END)
  return w.done()
}

const CONTENTS_KEY = Buffer.from('<Contents><Key>')
const KEY_MODIFIED = Buffer.from('</Key><LastModified>')
const MODIFIED_ETAG = Buffer.from('</LastModified><ETag>&quot;')
const ETAG_SIZE = Buffer.from('&quot;</ETag><Size>')
const SIZE_CLASS = Buffer.from('</Size><StorageClass>STANDARD</StorageClass>')
const CONTENTS_END = Buffer.from('</Contents>')
const RESULT_END = Buffer.from('</ListBucketResult>')

/** Appends UTF-8 text and bytes to a buffer that grows as needed. */
class ByteWriter {
  #buf: Buffer
  #at = 0
  constructor(capacity: number) {
    this.#buf = Buffer.allocUnsafe(capacity)
  }
  /** Makes room for `n` more bytes. */
  reserve(n: number): void {
    if (this.#at + n <= this.#buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#at + n))
    this.#buf.copy(next, 0, 0, this.#at)
    this.#buf = next
  }
  text(s: string): void {
    this.reserve(3 * s.length)
    this.#at += this.#buf.write(s, this.#at, 'utf8')
  }
  /** Text known to be ASCII (dates, numbers): one byte per character. */
  ascii(s: string): void {
    this.reserve(s.length)
    this.#at += this.#buf.write(s, this.#at, 'latin1')
  }
  bytes(b: Buffer): void {
    this.reserve(b.length)
    this.#at += b.copy(this.#buf, this.#at)
  }
  done(): Buffer {
    return this.#buf.subarray(0, this.#at)
  }
}
