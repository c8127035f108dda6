/**
 * GetObject and HeadObject (port of garage_api_s3::get): conditional requests, ranges, part
 * numbers, `response-*` overrides, and bodies streamed block by block with one block read ahead.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { Garage } from '../../model/garage.ts'
import type { ObjectData, ObjectEntry, ObjectMeta, ObjectVersion } from '../../model/s3/object-table.ts'
import type { VersionBlock, VersionEntry } from '../../model/s3/version-table.ts'
import { type Hash, toHex, type Uuid, utf8 } from '../../util/data.ts'
import { GarageError } from '../../util/errors.ts'
import { httpDate } from '../../util/time.ts'
import { ApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import { checkFieldValue } from '../common/validate.ts'
import { checksumHeaderName } from '../common/signature/checksum.ts'
import type { ObjectCipher } from './encryption.ts'
import { type MasterKeyring, openObjectCipher, refuseSseHeaderOnRead } from './sse-s3.ts'
import { ifMatchAccepts, ifNoneMatchMatches } from './etag.ts'
import { lockHeaders } from './object-lock.ts'
import { readableVersion, type VersioningParams, versionIdOf } from './versioning.ts'

const RESPONSE_OVERRIDES: Array<[query: string, header: string]> = [
  ['response-content-type', 'content-type'],
  ['response-content-language', 'content-language'],
  ['response-expires', 'expires'],
  ['response-cache-control', 'cache-control'],
  ['response-content-disposition', 'content-disposition'],
  ['response-content-encoding', 'content-encoding'],
]

/**
 * The `response-*` query overrides, as [header, value]. They are sent back as headers, so each
 * must be a valid header value: refused before anything is read, rather than by `setHeader`
 * once the answer is underway (which dropped the connection).
 * @throws {ApiError} `InvalidArgument` for a value with control or non-Latin-1 characters.
 */
function responseOverrides(query: URLSearchParams): Array<[header: string, value: string]> {
  const out: Array<[string, string]> = []
  for (const [q, h] of RESPONSE_OVERRIDES) {
    const v = query.get(q)
    if (v === null) continue
    checkFieldValue(q, v)
    out.push([h, v])
  }
  return out
}

export type DataVersion = ObjectVersion & { state: { t: 'complete'; data: Exclude<ObjectData, { t: 'delete' }> } }

/** The current version of an object, if it has data. */
export function currentVersion(o: ObjectEntry | undefined): DataVersion | undefined {
  if (o === undefined) return undefined
  for (let i = o.versions.length - 1; i >= 0; i--) {
    const v = o.versions[i] as ObjectVersion
    if (v.state.t === 'complete') return v.state.data.t === 'delete' ? undefined : (v as DataVersion)
  }
  return undefined
}

export async function getCurrentVersion(garage: Garage, bucketId: Uuid, key: string): Promise<DataVersion> {
  const v = currentVersion(await garage.objectTable.get(bucketId, utf8(key)))
  if (v === undefined) throw new ApiError('NoSuchKey', 'The specified key does not exist.')
  return v
}

export interface GetOptions {
  head: boolean
  query: URLSearchParams
  partNumber?: number
  /** The node's SSE-S3 master keys, to open SSE-S3 objects. */
  keyring?: MasterKeyring | undefined
  /** `?versionId=`: read that version instead of the latest. */
  versionId?: string | undefined
  /** The bucket's parameters (its versioning state names versions; absent: never versioned). */
  bucketParams?: VersioningParams | undefined
}

/**
 * The version an object row named was deleted (or is not found) when its blocks were about to be
 * read: an overwrite completed between the two reads. @internal
 */
export class VersionGoneError extends GarageError {
  override name = 'VersionGoneError'
  constructor(versionId: Uuid) {
    super('GARAGE_ERR_INTERNAL', `version ${toHex(versionId)} is gone; the object was overwritten, retry`)
  }
}

/** How many times a GET starts over when an overwrite races it (see VersionGoneError). */
const GONE_RETRIES = 3

/**
 * GetObject / HeadObject. A GET that finds its version gone (an overwrite completed between the
 * object row read and the version read) starts over from the object row, and serves the newer
 * version: nothing was sent yet, and the newer version was written while this GET ran, so either
 * answer is right. Found by the chaos suite, where such a GET answered 500. Garage answers 404
 * (NoSuchKey) in this race, wrongly for a key that exists.
 */
export async function handleGetObject(
  garage: Garage,
  headers: IncomingHttpHeaders,
  bucketId: Uuid,
  key: string,
  opts: GetOptions,
): Promise<ApiResponse> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await getObjectOnce(garage, headers, bucketId, key, opts, attempt > 1)
    } catch (err) {
      if (!(err instanceof VersionGoneError)) throw err
      // Overwritten under every attempt (a key rewritten faster than it can be read, as a
      // workload hammering a few keys does in dangerous mode): a retry later will do, so 503,
      // not the 500 of an internal fault.
      if (attempt >= GONE_RETRIES) {
        throw new ApiError('ServiceUnavailable', 'The object was overwritten while it was read, please retry', { cause: err })
      }
    }
  }
}

async function getObjectOnce(
  garage: Garage,
  headers: IncomingHttpHeaders,
  bucketId: Uuid,
  key: string,
  opts: GetOptions,
  seeEveryWrite: boolean,
): Promise<ApiResponse> {
  const overrides = responseOverrides(opts.query)
  refuseSseHeaderOnRead(headers)
  // After a VersionGoneError the object row read was stale: with single-replica reads (degraded
  // and dangerous modes) the same replica answers the same row every time, so the retry reads
  // enough replicas to meet the overwrite's write quorum (all of them in dangerous mode), and
  // the version row likewise.
  const row = await garage.objectTable.get(bucketId, utf8(key), { seeEveryWrite })
  const version = readableVersion(row, opts.versionId, opts.bucketParams) as DataVersion
  // SSE-C: the right key must come with the request; it opens the headers and the data.
  // SSE-S3: the node's master key unwraps the version's data key.
  const at = { bucketId, versionId: version.uuid, key }
  const cipher = openObjectCipher(headers, version.state.data.meta.encryption, at, opts.keyring)
  const meta = cipher === undefined ? version.state.data.meta : cipher.openObjectMeta(version.state.data.meta)
  const notModified = checkPreconditions(headers, meta.etag, version.ts)
  const out = objectHeaders(version, meta)
  out['x-amz-version-id'] = versionIdOf(version, opts.bucketParams)
  Object.assign(out, lockHeaders(version))
  if (cipher !== undefined) Object.assign(out, cipher.responseHeaders())
  if (notModified) return { status: 304, headers: notModifiedHeaders(out) }
  for (const [h, v] of overrides) out[h] = v

  const rangeHeader = headers.range
  if (rangeHeader !== undefined && opts.partNumber !== undefined) {
    throw new ApiError('InvalidRequest', 'Cannot specify both partNumber and Range header')
  }
  let range: { start: number; end: number } | undefined
  if (opts.partNumber !== undefined) {
    const part = await partRange(garage, version, opts.partNumber)
    range = part.range
    out['x-amz-mp-parts-count'] = String(part.count)
  } else if (rangeHeader !== undefined) {
    range = parseRange(rangeHeader, meta.size)
  }
  if (range === undefined && headers['x-amz-checksum-mode']?.toString().toUpperCase() === 'ENABLED' && meta.checksum) {
    out[checksumHeaderName(meta.checksum.algorithm)] = meta.checksum.value
    out['x-amz-checksum-type'] = meta.checksum.type
  }
  const status = range === undefined ? 200 : 206
  const start = range?.start ?? 0
  const end = range?.end ?? meta.size - 1
  out['content-length'] = String(Math.max(0, end - start + 1))
  if (range !== undefined) out['content-range'] = `bytes ${start}-${end}/${meta.size}`
  if (opts.head) return { status, headers: out }

  const data = version.state.data
  if (data.t === 'inline') {
    // An empty encrypted object completed from no parts has no sealed bytes.
    const plain = cipher === undefined || data.bytes.length === 0 ? Buffer.from(data.bytes) : cipher.decryptBlob(data.bytes)
    return { status, headers: out, body: plain.subarray(start, end + 1) }
  }
  // The version row and the first block are read before the headers go out, so that a missing
  // version or an unreachable first block is answered with an error status, not a connection
  // dropped after a 200.
  return {
    status,
    headers: out,
    body: await sliceBody(
      await blockSlices(
        garage,
        version.uuid,
        start,
        end,
        cipher,
        data.t === 'firstBlock' ? data.hash : undefined,
        meta.size,
        seeEveryWrite,
      ),
    ),
  }
}

/**
 * The body of a GET of a block-backed object, once {@link blockSlices} has read the version row
 * (and started the first block). A range within one block (every small object) is that one
 * buffer, which the server writes with the headers in one call, instead of an async generator.
 */
async function sliceBody(read: SliceRead): Promise<Uint8Array | AsyncIterableIterator<Uint8Array>> {
  const only = read.slices.length === 1 ? read.slices[0] : undefined
  if (only === undefined) return primed(sliceStream(read))
  return sliceBytes(only, await read.fetch(only), read.cipher)
}

/**
 * Runs `gen` up to its first chunk (rejecting with its error, if any), and returns an iterator
 * that yields that chunk and then the rest. Stopping the returned iterator, even before its first
 * `next()`, stops `gen` (its `finally` blocks run).
 */
export async function primed<T>(gen: AsyncGenerator<T, void>): Promise<AsyncIterableIterator<T>> {
  let pending: IteratorResult<T, void> | undefined = await gen.next()
  const it: AsyncIterableIterator<T> = {
    next: async () => {
      if (pending === undefined) return gen.next()
      const r = pending
      pending = undefined
      return r
    },
    return: async () => {
      pending = undefined
      return gen.return(undefined)
    },
    [Symbol.asyncIterator]: () => it,
  }
  return it
}

function objectHeaders(version: DataVersion, meta: ObjectMeta): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of meta.headers) out[k] = out[k] === undefined ? v : `${out[k]},${v}`
  out['content-type'] ??= 'binary/octet-stream'
  out.etag = `"${meta.etag}"`
  out['last-modified'] = httpDate(version.ts)
  out['accept-ranges'] = 'bytes'
  out['x-amz-version-id'] = toHex(version.uuid)
  // The number of the version's tags (tagging.ts), when it has any, as AWS sends it.
  const tagCount = version.state.t === 'complete' ? (version.state.tagging?.tags.length ?? 0) : 0
  if (tagCount > 0) out['x-amz-tagging-count'] = String(tagCount)
  return out
}

function notModifiedHeaders(h: Record<string, string>): Record<string, string> {
  const keep: Record<string, string> = {}
  for (const k of ['etag', 'last-modified', 'cache-control', 'expires', 'x-amz-version-id']) {
    const v = h[k]
    if (v !== undefined) keep[k] = v
  }
  return keep
}

function parseHttpDate(v: string | undefined): number | undefined {
  if (v === undefined) return undefined
  const t = Date.parse(v)
  return Number.isNaN(t) ? undefined : t
}

/**
 * Evaluates If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since in RFC 7232
 * order. Throws PreconditionFailed; returns true when the answer is 304 Not Modified.
 */
export function checkPreconditions(headers: IncomingHttpHeaders, etag: string, lastModifiedMsec: number): boolean {
  const lastModified = Math.floor(lastModifiedMsec / 1000) * 1000
  const ifMatch = headers['if-match']
  const ifUnmodifiedSince = parseHttpDate(headers['if-unmodified-since'])
  const ifNoneMatch = headers['if-none-match']
  const ifModifiedSince = parseHttpDate(headers['if-modified-since'])
  if (ifMatch !== undefined) {
    if (!ifMatchAccepts(ifMatch, etag))
      throw new ApiError('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold')
  } else if (ifUnmodifiedSince !== undefined && lastModified > ifUnmodifiedSince) {
    throw new ApiError('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold')
  }
  if (ifNoneMatch !== undefined) return ifNoneMatchMatches(ifNoneMatch, etag)
  if (ifModifiedSince !== undefined) return lastModified <= ifModifiedSince
  return false
}

/**
 * Parses a single `bytes=` range. Unparseable or multi-range headers are ignored (the whole object
 * is served, as AWS does); a range that starts past the end is InvalidRange.
 */
export function parseRange(header: string, size: number): { start: number; end: number } | undefined {
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header)
  if (m === null) return undefined
  const [, a = '', b = ''] = m
  if (a === '' && b === '') return undefined
  const invalid = () =>
    new ApiError('InvalidRange', 'The requested range is not satisfiable', {
      headers: { 'content-range': `bytes */${size}` },
      extra: { ActualObjectSize: String(size), RangeRequested: header },
    })
  if (a === '') {
    const n = Number(b)
    if (n === 0 || size === 0) throw invalid()
    return { start: Math.max(0, size - n), end: size - 1 }
  }
  const start = Number(a)
  if (b !== '' && Number(b) < start) return undefined
  if (start >= size) throw invalid()
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1)
  return { start, end }
}

async function partRange(
  garage: Garage,
  version: DataVersion,
  partNumber: number,
): Promise<{ range: { start: number; end: number } | undefined; count: number }> {
  const size = version.state.data.meta.size
  if (version.state.data.t === 'inline') {
    if (partNumber !== 1) throw new ApiError('InvalidPart', 'The requested partnumber is not satisfiable')
    return { range: size === 0 ? undefined : { start: 0, end: size - 1 }, count: 1 }
  }
  const v = await garage.versionTable.get(version.uuid, new Uint8Array(0))
  const blocks = v?.blocks ?? []
  const parts = [...new Set(blocks.map((b) => b.partNumber))].sort((x, y) => x - y)
  let offset = 0
  for (const p of parts) {
    const partSize = blocks.filter((b) => b.partNumber === p).reduce((s, b) => s + b.size, 0)
    if (p === partNumber) return { range: { start: offset, end: offset + partSize - 1 }, count: parts.length }
    offset += partSize
  }
  throw new ApiError('InvalidPart', 'The requested partnumber is not satisfiable')
}

/**
 * Streams bytes `start..end` (inclusive) of a version's blocks, reading ahead one block, or up to
 * {@link READ_AHEAD_BLOCKS} small ones within {@link READ_AHEAD_BYTES}. With a
 * `cipher` (SSE-C or SSE-S3), only the encrypted chunks holding the wanted bytes are decrypted.
 */
/** Which block slices a read of `start..end` covers, and how to fetch each (see {@link streamBlocks}). */
interface SliceRead {
  slices: BlockSlice[]
  fetch(w: BlockSlice): Promise<Buffer>
  cipher: ObjectCipher | undefined
}

/**
 * Reads the version row and lists the block slices of `start..end`. The object row names its
 * first block: when the range starts there, that block is fetched while the version row is read
 * (as Garage's GET does), so a one-block object costs one round trip after the object row instead
 * of two. A failed early fetch is reported only if used.
 * @throws VersionGoneError when the version was deleted (an overwrite completed meanwhile).
 */
async function blockSlices(
  garage: Garage,
  versionId: Uuid,
  start: number,
  end: number,
  cipher: ObjectCipher | undefined,
  firstBlock: Hash | undefined,
  objectSize: number | undefined,
  seeEveryWrite: boolean,
): Promise<SliceRead> {
  // Block files of encrypted objects are larger than the plaintext sizes known here: no guess.
  const guess = (size: number | undefined): number | undefined =>
    cipher === undefined && size !== undefined ? Math.min(size, garage.blockSize) : undefined
  const early = start === 0 && firstBlock !== undefined ? garage.blockManager.getBlock(firstBlock, guess(objectSize)) : undefined
  early?.catch(() => {})
  const v = await readVersion(garage, versionId, objectSize, seeEveryWrite)
  if (v === undefined || v.deleted) {
    throw new VersionGoneError(versionId)
  }
  const slices = blocksInRange(v.blocks, start, end)
  const head = slices[0]
  return {
    slices,
    cipher,
    fetch: (w) =>
      early !== undefined && w === head && firstBlock !== undefined && Buffer.from(w.block.hash).equals(firstBlock)
        ? early
        : garage.blockManager.getBlock(w.block.hash, guess(w.block.size)),
  }
}

/** The bytes of one slice of a block read whole (decrypted when the object is). */
function sliceBytes(w: BlockSlice, data: Buffer, cipher: ObjectCipher | undefined): Uint8Array {
  if (cipher !== undefined) return cipher.decryptBlock(data, w.block.size, w.from, w.to)
  return w.from === 0 && w.to === data.length ? data : data.subarray(w.from, w.to)
}

async function* sliceStream(read: SliceRead): AsyncGenerator<Uint8Array> {
  const window: ReadAheadWindow<BlockSlice> = { size: (w) => w.block.size, bytes: READ_AHEAD_BYTES, items: READ_AHEAD_BLOCKS }
  for await (const [w, data] of readAhead(read.slices, read.fetch, window)) yield sliceBytes(w, data, read.cipher)
}

/** The bytes `start..end` of a version's blocks, in order, reading ahead (see {@link blockSlices}). */
export async function* streamBlocks(
  garage: Garage,
  versionId: Uuid,
  start: number,
  end: number,
  cipher?: ObjectCipher,
  firstBlock?: Hash,
  objectSize?: number,
  seeEveryWrite = false,
): AsyncGenerator<Uint8Array> {
  yield* sliceStream(await blockSlices(garage, versionId, start, end, cipher, firstBlock, objectSize, seeEveryWrite))
}

const EMPTY = new Uint8Array(0)

/**
 * The version row of a complete object: the local copy when it already lists blocks adding up
 * to the object's size, else a quorum read. A complete object's version is final (its blocks
 * were all written at quorum before the object row said `complete`, and the CRDT's block list
 * only grows), so a local copy that accounts for every byte is the same row a quorum read would
 * return: this saves GET's second round trip across zones on every node holding the partition.
 */
async function readVersion(
  garage: Garage,
  versionId: Uuid,
  objectSize: number | undefined,
  seeEveryWrite: boolean,
): Promise<VersionEntry | undefined> {
  if (objectSize !== undefined) {
    const local = garage.versionTable.data.read(versionId, EMPTY)
    if (local !== undefined && !local.deleted && local.blocks.reduce((n, b) => n + b.size, 0) === objectSize) return local
  }
  return garage.versionTable.get(versionId, EMPTY, { seeEveryWrite })
}

/** The part of one block that a byte range covers: bytes `from` (inclusive) to `to` (exclusive). */
export interface BlockSlice {
  block: VersionBlock
  from: number
  to: number
}

/** The blocks of a version (in order) that bytes `start..end` (inclusive) fall in, with their slices. */
export function blocksInRange(blocks: readonly VersionBlock[], start: number, end: number): BlockSlice[] {
  const out: BlockSlice[] = []
  let offset = 0
  for (const b of blocks) {
    const bStart = offset
    const bEnd = offset + b.size - 1
    offset += b.size
    if (bEnd < start || bStart > end) continue
    out.push({ block: b, from: Math.max(start, bStart) - bStart, to: Math.min(end, bEnd) - bStart + 1 })
  }
  return out
}

/** Bytes of blocks a GET reads ahead of the one it sends: two 1 MiB blocks, or many small ones. */
export const READ_AHEAD_BYTES = 2 * 1024 * 1024
/** Most blocks a GET reads at once (small parts make small blocks: their latency, not size, counts). */
export const READ_AHEAD_BLOCKS = 32

/** How far {@link readAhead} reads beyond the next item. */
export interface ReadAheadWindow<T> {
  size(item: T): number
  /** More items start while those read and not yet consumed stay within this many bytes. */
  bytes: number
  /** And within this many items. */
  items: number
}

/**
 * Yields `[item, await read(item)]` in order, reading the next item while the current one is used;
 * with a `window`, also further items while their sizes fit it (memory stays bounded by the window
 * plus one item).
 */
export async function* readAhead<T, R>(
  items: readonly T[],
  read: (item: T) => Promise<R>,
  window?: ReadAheadWindow<T>,
): AsyncGenerator<[T, R]> {
  const pending: Array<Promise<R>> = []
  let started = 0
  let bytes = 0
  const more = (i: number): boolean => {
    if (started >= items.length) return false
    if (started <= i + 1) return true
    return window !== undefined && started - i < window.items && bytes + window.size(items[started] as T) <= window.bytes
  }
  for (let i = 0; i < items.length; i++) {
    while (more(i)) {
      const item = items[started] as T
      const p = read(item)
      // A read-ahead that fails is reported when its turn comes, not as an unhandled rejection.
      p.catch(() => {})
      pending.push(p)
      if (window !== undefined) bytes += window.size(item)
      started++
    }
    const current = items[i] as T
    yield [current, await (pending.shift() as Promise<R>)]
    if (window !== undefined) bytes -= window.size(current)
  }
}
