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
import { currentVersion } from './get.ts'
import { renderXml } from './xml.ts'

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

/** Walks the bucket's objects and groups them by delimiter. */
export async function listObjects(garage: Garage, bucketId: Uuid, q: ListQuery): Promise<ListResult> {
  const objects: ListedObject[] = []
  const commonPrefixes: string[] = []
  const prefixBytes = utf8(q.prefix)
  let cursor: Uint8Array = Buffer.compare(q.start, prefixBytes) > 0 ? q.start : prefixBytes
  const limit = q.maxKeys
  let lastReturned: string | undefined
  if (limit === 0) return { objects, commonPrefixes, truncated: false }
  let pageSize = PAGE
  for (;;) {
    const page = await garage.objectTable.getRange(bucketId, {
      start: cursor,
      limit: pageSize,
      filter: (o) => currentVersion(o) !== undefined,
    })
    if (page.length === 0) return { objects, commonPrefixes, truncated: false, lastReturned }
    let jumped = false
    let last: string | undefined
    for (const o of page) {
      const key = o.key
      if (!key.startsWith(q.prefix)) {
        if (cmp(key, q.prefix) > 0) return { objects, commonPrefixes, truncated: false, lastReturned }
        continue
      }
      let entry: { kind: 'key'; key: string } | { kind: 'prefix'; prefix: string } = { kind: 'key', key }
      if (q.delimiter !== undefined && q.delimiter !== '') {
        const i = key.indexOf(q.delimiter, q.prefix.length)
        if (i >= 0) entry = { kind: 'prefix', prefix: key.slice(0, i + q.delimiter.length) }
      }
      const name = entry.kind === 'key' ? entry.key : entry.prefix
      const skip = q.after !== undefined && cmp(name, q.after) <= 0
      if (!skip) {
        if (objects.length + commonPrefixes.length >= limit) {
          return { objects, commonPrefixes, truncated: true, nextStart: utf8(name), lastReturned }
        }
        if (entry.kind === 'key') {
          const v = currentVersion(o)
          if (v !== undefined) {
            const meta = v.state.data.meta
            objects.push({ key, lastModified: v.ts, etag: meta.etag, size: meta.size })
          }
        } else {
          commonPrefixes.push(entry.prefix)
        }
        lastReturned = name
      }
      if (entry.kind === 'prefix') {
        // Jump past every key under this common prefix.
        const end = prefixEnd(utf8(entry.prefix))
        if (end === undefined) return { objects, commonPrefixes, truncated: false, lastReturned }
        cursor = end
        jumped = true
        break
      }
      last = key
    }
    if (!jumped && page.length < pageSize) return { objects, commonPrefixes, truncated: false, lastReturned }
    if (!jumped && last !== undefined) cursor = keySuccessor(last)
    pageSize = jumped ? PAGE_AFTER_JUMP : Math.min(PAGE, pageSize * 2)
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
  const xml = renderXml('ListBucketResult', {
    Name: bucketName,
    Prefix: enc(prefix),
    ...(p.delimiter !== undefined ? { Delimiter: enc(p.delimiter) } : {}),
    MaxKeys: maxKeys,
    KeyCount: r.objects.length + r.commonPrefixes.length,
    IsTruncated: r.truncated,
    ...(p.continuationToken !== undefined ? { ContinuationToken: p.continuationToken } : {}),
    ...(r.truncated && r.nextStart !== undefined
      ? { NextContinuationToken: Buffer.from(r.nextStart).toString('base64url') }
      : {}),
    ...(p.startAfter !== undefined ? { StartAfter: enc(p.startAfter) } : {}),
    ...(url ? { EncodingType: 'url' } : {}),
    Contents: r.objects.map((o) => contents(o, enc, p.fetchOwner === true ? owner : undefined)),
    CommonPrefixes: r.commonPrefixes.map((c) => ({ Prefix: enc(c) })),
  })
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: xml }
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
  const xml = renderXml('ListBucketResult', {
    Name: bucketName,
    Prefix: enc(prefix),
    Marker: enc(p.marker ?? ''),
    ...(p.delimiter !== undefined ? { Delimiter: enc(p.delimiter) } : {}),
    MaxKeys: maxKeys,
    IsTruncated: r.truncated,
    ...(r.truncated && p.delimiter !== undefined && r.lastReturned !== undefined ? { NextMarker: enc(r.lastReturned) } : {}),
    ...(url ? { EncodingType: 'url' } : {}),
    Contents: r.objects.map((o) => contents(o, enc, owner)),
    CommonPrefixes: r.commonPrefixes.map((c) => ({ Prefix: enc(c) })),
  })
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: xml }
}

/** The first sort key strictly after `key`. */
function keyAfter(key: string): Uint8Array {
  return keySuccessor(key)
}

function contents(o: ListedObject, enc: (s: string) => string, owner: Owner | undefined): Record<string, unknown> {
  return {
    Key: enc(o.key),
    LastModified: isoDate(o.lastModified),
    ETag: `"${o.etag}"`,
    Size: o.size,
    StorageClass: 'STANDARD',
    ...(owner !== undefined ? { Owner: { ID: owner.id, DisplayName: owner.displayName } } : {}),
  }
}
