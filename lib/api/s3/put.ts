/**
 * PutObject and the streaming save shared with multipart and copy (port of garage_api_s3::put).
 * A body is cut into blocks as it arrives; each block is referenced, then written, at most
 * `block_max_concurrent_writes_per_request` (default 3) at a time, before the version that makes them visible is
 * marked complete. Small bodies are stored inline in the object row.
 */
import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Readable } from 'node:stream'
import type { Transaction } from '../../db/db.ts'
import { INLINE_THRESHOLD } from '../../block/manager.ts'
import type { BucketQuotas } from '../../model/bucket-table.ts'
import type { Garage } from '../../model/garage.ts'
import { countObject } from '../../model/index-counter.ts'
import type { ObjectData, ObjectEntry, ObjectMeta, ObjectVersion } from '../../model/s3/object-table.ts'
import { deletedVersion, VERSION_COMMIT_DEADLINE_MS, type VersionBacklink, versionBlock } from '../../model/s3/version-table.ts'
import { type BatchItem, batchItem, type LocalWrites, type PlannedBatch, plannedSettled } from '../../table/batch.ts'
import { blake2sum, genUuid, type Hash, toHex, type Uuid, utf8 } from '../../util/data.ts'
import { ApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import type { ChecksumResult } from '../common/signature/body.ts'
import { type ChecksumAlgorithm, checksumHeaderName, type RequestChecksums } from '../common/signature/checksum.ts'
import type { BucketCtx } from './context.ts'
import { checkFieldValue } from '../common/validate.ts'
import { checkS3ObjectKey } from './names.ts'
import { writeLock } from './object-lock.ts'
import { newVersionKeep, type VersioningParams, versionIdOf, versioningOf } from './versioning.ts'
import type { ObjectCipher } from './encryption.ts'
import { newObjectCipher, type WriteEncryption, writeEncryption, writeEncryptionHeaders } from './sse-s3.ts'
import { parseCannedAcl } from './acl.ts'
import { initialTagging, parseTaggingHeader, type Tags } from './tagging.ts'
import { checkWriteCondition, commitVersion, currentObject, parseWriteCondition, type WriteCondition } from './conditional.ts'
import { sendObjectRow, writeInOneRound } from './one-round.ts'

/** User metadata (`x-amz-meta-*`) is limited to 2 KiB, as on AWS. */
const MAX_USER_METADATA_BYTES = 2048

const STORED_HEADERS = new Set([
  'content-type',
  'cache-control',
  'content-disposition',
  'content-encoding',
  'content-language',
  'expires',
  'x-amz-website-redirect-location',
])

/** An object key a write names (the shared rule of names.ts). */
export function checkKey(key: string): void {
  checkS3ObjectKey(key)
}

/** The headers stored with an object, lowercase, from a request. */
export function extractMetadataHeaders(
  headers: IncomingHttpHeaders,
  contentEncoding: string | undefined,
): Array<[string, string]> {
  const out: Array<[string, string]> = []
  let userBytes = 0
  for (const [name, raw] of Object.entries(headers)) {
    if (raw === undefined) continue
    const value = Array.isArray(raw) ? raw.join(',') : raw
    if (name === 'content-encoding') continue
    // Stored values are sent back as headers: each must be one (PostObject's come from a form).
    if (name.startsWith('x-amz-meta-') || STORED_HEADERS.has(name)) checkFieldValue(name, value)
    if (name.startsWith('x-amz-meta-')) {
      userBytes += name.length - 'x-amz-meta-'.length + Buffer.byteLength(value)
      out.push([name, value])
    } else if (STORED_HEADERS.has(name)) {
      if (name === 'x-amz-website-redirect-location' && !/^(\/|https?:\/\/)/.test(value)) {
        throw new ApiError('InvalidArgument', 'x-amz-website-redirect-location must start with /, http:// or https://')
      }
      out.push([name, value])
    }
  }
  if (contentEncoding !== undefined) out.push(['content-encoding', contentEncoding])
  if (userBytes > MAX_USER_METADATA_BYTES) {
    throw new ApiError(
      'MetadataTooLarge',
      `Your metadata headers exceed the maximum allowed metadata size (${MAX_USER_METADATA_BYTES} bytes)`,
    )
  }
  return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
}

/** Content-Length must be present (aws-chunked bodies give the decoded length in its own header). */
export function checkContentLength(headers: IncomingHttpHeaders): void {
  if (headers['content-length'] === undefined && headers['x-amz-decoded-content-length'] === undefined) {
    throw new ApiError('MissingContentLength', 'You must provide the Content-Length HTTP header.')
  }
}

export async function handlePutObject(ctx: BucketCtx, key: string): Promise<ApiResponse> {
  checkKey(key)
  checkContentLength(ctx.req.headers)
  // x-amz-acl / x-amz-grant-*: ACLs are disabled on objects (acl.ts), only `private` is accepted.
  parseCannedAcl(ctx.req.headers, 'object')
  const tags = parseTaggingHeader(ctx.req.headers)
  const headers = extractMetadataHeaders(ctx.req.headers, ctx.contentEncoding)
  const encryption = writeEncryption(ctx.req.headers, {
    bucketDefault: ctx.bucketParams.encryption.v,
    keyring: ctx.settings.sseKeyring,
  })
  const quotas = ctx.bucketParams.quotas.v
  const condition = parseWriteCondition(ctx.req.headers)
  const declared = declaredLength(ctx.req.headers)
  // A body of one block at most that needs nothing from the key's current row is written in
  // one round, without reading the row first (one-round.ts). Object lock needs a bucket that
  // has versioning, which the one-round path excludes: only the request's own lock headers are
  // looked at here (their errors come from newVersionStamp, after the checks below, as before).
  const h = ctx.req.headers
  const lockHeaders =
    h['x-amz-object-lock-mode'] !== undefined ||
    h['x-amz-object-lock-retain-until-date'] !== undefined ||
    h['x-amz-object-lock-legal-hold'] !== undefined
  // A bucket never versioned: a first write dropped for a newer one would otherwise stay listed
  // as a version. No quota or condition: they need the row. No encryption: an encrypted
  // version's data is bound to its version id, which a second write changes.
  const oneRound =
    declared !== undefined &&
    declared <= ctx.garage.blockSize &&
    versioningOf(ctx.bucketParams) === undefined &&
    !hasQuotas(quotas) &&
    condition === undefined &&
    !lockHeaders &&
    encryption === undefined
  // Otherwise the key's current row, read once (at quorum) for the whole request: the quota
  // checks count the difference from it, and the new version's timestamp must be newer than its
  // versions.
  const existing = oneRound ? undefined : ctx.garage.objectTable.get(ctx.bucketId, utf8(key))
  // If-None-Match / If-Match: refused at once when already false (checked again at commit).
  if (condition !== undefined) checkWriteCondition(condition, currentObject(await existing))
  // Refuse before reading the body when its announced length is already too much.
  if (declared !== undefined && hasQuotas(quotas)) {
    await checkQuotas(ctx.garage, ctx.bucketId, quotas, await existing, declared)
  }
  const saved = await saveStream(ctx.garage, ctx.bucketId, key, headers, ctx.body, ctx.bodyResult, {
    checksumAlgorithm: requestChecksumAlgorithm(ctx.checksums),
    quotas,
    encryption,
    existing,
    condition,
    tags,
    stamp: newVersionStamp(ctx),
    oneRound,
  })
  const out: Record<string, string> = {
    etag: `"${saved.meta.etag}"`,
    'x-amz-version-id': saved.versionIdText ?? toHex(saved.versionId),
  }
  Object.assign(out, writeEncryptionHeaders(encryption))
  if (saved.meta.checksum !== undefined) {
    out[checksumHeaderName(saved.meta.checksum.algorithm)] = saved.meta.checksum.value
    out['x-amz-checksum-type'] = saved.meta.checksum.type
  }
  return { status: 200, headers: out }
}

export interface SavedObject {
  versionId: Uuid
  /** The version id clients see (`null` for a null version of a versioned bucket), when stamped. */
  versionIdText?: string
  ts: number
  meta: ObjectMeta
}

/**
 * Reads exactly `size`-byte blocks (the last one shorter) from a stream, holding one at most.
 * With `hashBlocks`, each block's BLAKE2 hash (its name in the block store) is computed as its
 * bytes arrive, while the rest of the body is still on its way, rather than once the block is
 * whole: {@link blockHash} then answers without hashing the block again. Blocks stored as read
 * (no encryption) are named that way; an encrypted block's name is its ciphertext's.
 */
export class Chunker {
  readonly #it: AsyncIterator<Buffer>
  readonly #size: number
  #pending: Buffer[] = []
  #pendingLen = 0
  #ended = false
  readonly #hashBlocks: boolean
  /** The hash of the block being received, and how many of its bytes it has taken. */
  #hasher: ReturnType<typeof createHash> | undefined
  #hashed = 0
  /** Hashes of blocks received whole and not returned yet, in order. */
  readonly #ready: Hash[] = []
  readonly #hashes = new WeakMap<Buffer, Hash>()
  constructor(body: AsyncIterable<Buffer>, size: number, options: { hashBlocks?: boolean } = {}) {
    this.#it = body[Symbol.asyncIterator]()
    this.#size = size
    this.#hashBlocks = options.hashBlocks === true
  }
  /** The next block, or undefined at the end. */
  async next(): Promise<Buffer | undefined> {
    while (!this.#ended && this.#pendingLen < this.#size) {
      const r = await this.#it.next()
      if (r.done === true) {
        this.#ended = true
        break
      }
      this.#add(r.value)
    }
    if (this.#pendingLen === 0) return undefined
    const all = this.#pending.length === 1 ? (this.#pending[0] as Buffer) : Buffer.concat(this.#pending, this.#pendingLen)
    const block = all.subarray(0, Math.min(this.#size, all.length))
    const rest = all.subarray(block.length)
    this.#pending = rest.length > 0 ? [rest] : []
    this.#pendingLen = rest.length
    if (this.#hashBlocks) {
      // A last block shorter than `size`: its hash ends here.
      if (block.length < this.#size && this.#hashed === block.length) this.#finishHash()
      const hash = this.#ready.shift()
      if (hash !== undefined) this.#hashes.set(block, hash)
    }
    return block
  }
  /** BLAKE2 of `block` (blake2sum): computed as it arrived if this chunker returned it, else now. */
  blockHash(block: Buffer): Hash {
    return this.#hashes.get(block) ?? blake2sum(block)
  }
  get ended(): boolean {
    return this.#ended && this.#pendingLen === 0
  }
  /** True when nothing is left: waits for the next bytes of the body or its end, takes nothing. */
  async atEnd(): Promise<boolean> {
    while (!this.#ended && this.#pendingLen === 0) {
      const r = await this.#it.next()
      if (r.done === true) this.#ended = true
      else this.#add(r.value)
    }
    return this.ended
  }
  #add(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.#pending.push(chunk)
    this.#pendingLen += chunk.length
    if (!this.#hashBlocks) return
    // Cut at block boundaries: each block's bytes go to its own hash.
    for (let o = 0; o < chunk.length; ) {
      const n = Math.min(this.#size - this.#hashed, chunk.length - o)
      this.#hasher ??= createHash('blake2b512')
      this.#hasher.update(n === chunk.length ? chunk : chunk.subarray(o, o + n))
      this.#hashed += n
      o += n
      if (this.#hashed === this.#size) this.#finishHash()
    }
  }
  #finishHash(): void {
    if (this.#hasher === undefined) return
    this.#ready.push(new Uint8Array(this.#hasher.digest().subarray(0, 32)))
    this.#hasher = undefined
    this.#hashed = 0
  }
}

/**
 * The checksum algorithm a request asks to be stored with the object (from its checksum headers,
 * parsed once per request): the one of its `x-amz-checksum-*` header or trailer, else
 * `x-amz-checksum-algorithm`. A hex
 * `x-amz-content-sha256` only authenticates the payload and is not an object checksum.
 */
export function requestChecksumAlgorithm(c: RequestChecksums): ChecksumAlgorithm | undefined {
  return (Object.keys(c.expected)[0] as ChecksumAlgorithm | undefined) ?? c.trailerAlgorithm ?? c.requestedAlgorithm
}

function objectMetaFrom(
  result: ChecksumResult,
  size: number,
  headers: Array<[string, string]>,
  algorithm: ChecksumAlgorithm | undefined,
): ObjectMeta {
  const etag = result.md5?.toString('hex') ?? ''
  const meta: ObjectMeta = { size, etag, headers }
  const value = algorithm === undefined ? undefined : result.checksums[algorithm]
  if (algorithm !== undefined && value !== undefined) {
    meta.checksum = { algorithm, value, type: 'FULL_OBJECT' }
  }
  return meta
}

/** What one save writes: the key, its headers and body, and the request's options. */
interface SaveTarget {
  garage: Garage
  bucketId: Uuid
  key: string
  headers: Array<[string, string]>
  body: Readable
  /** Settles once the body has been fully read and verified. */
  result: Promise<ChecksumResult>
  opts: SaveOptions
}

/** Options of {@link saveStream}. */
export interface SaveOptions {
  checksumAlgorithm?: ChecksumAlgorithm | undefined
  quotas?: BucketQuotas | undefined
  /** Encrypt with a customer key (SSE-C) or a data key of the version's own (SSE-S3). */
  encryption?: WriteEncryption | undefined
  /**
   * The key's current row when the caller already reads it (a quorum read started or done);
   * otherwise it is read here, while the first block arrives.
   */
  existing?: Promise<ObjectEntry | undefined> | undefined
  /** If-None-Match / If-Match: the version commits only if it holds then (conditional.ts). */
  condition?: WriteCondition | undefined
  /** The new version's tags (`x-amz-tagging`, tagging.ts). */
  tags?: Tags | undefined
  /** Versioning flag and object lock of the new version (versioning.ts, object-lock.ts). */
  stamp?: VersionStamp | undefined
  /**
   * The caller checked that the write may take the one-round path (handlePutObject: a bucket
   * never versioned, no quota, condition, lock or encryption; `existing` not given): a body of
   * one block or less is then written without reading the key's row first.
   */
  oneRound?: boolean | undefined
}

/**
 * Saves a body as a new version of `key`. `result` settles once the body has been fully read and
 * verified; nothing becomes visible before that, and a failure leaves the previous version.
 */
export async function saveStream(
  garage: Garage,
  bucketId: Uuid,
  key: string,
  headers: Array<[string, string]>,
  body: Readable,
  result: Promise<ChecksumResult>,
  opts: SaveOptions = {},
): Promise<SavedObject> {
  const stamp = opts.stamp?.fields ?? {}
  const chunker = new Chunker(body, garage.blockSize, { hashBlocks: opts.encryption === undefined })
  const oneRound = opts.oneRound === true && opts.existing === undefined
  const startRead = (): Promise<ObjectEntry | undefined> => {
    const read = opts.existing ?? garage.objectTable.get(bucketId, utf8(key))
    // Not awaited yet: a body of one block is written while the key's row is read.
    read.catch(() => undefined)
    return read
  }
  const early = oneRound ? undefined : startRead()
  const first = await chunker.next()
  const versionId = genUuid()
  const target: SaveTarget = { garage, bucketId, key, headers, body, result, opts }
  if (oneRound && (first === undefined || (await chunker.atEnd()))) {
    const saved =
      first === undefined || first.length < INLINE_THRESHOLD
        ? await saveInlineOneRound(target, versionId, first ?? Buffer.alloc(0))
        : await saveOneBlockOneRound(target, versionId, first, chunker.blockHash(first))
    if (saved !== undefined) return saved
  }
  const existingRead = early ?? startRead()
  const cipher = opts.encryption === undefined ? undefined : newObjectCipher(opts.encryption, bucketId, versionId, key)
  // What is stored, and what the caller gets back (the headers and checksum in clear).
  const seal = (meta: ObjectMeta): { stored: ObjectMeta; meta: ObjectMeta } => {
    if (cipher === undefined) return { stored: meta, meta }
    const stored = cipher.sealObjectMeta(meta)
    return { stored, meta: { ...meta, etag: stored.etag } }
  }

  if (first !== undefined && first.length >= INLINE_THRESHOLD && (await chunker.atEnd())) {
    return saveOneBlock(target, {
      versionId,
      first,
      chunker,
      cipher,
      seal,
      existingRead,
    })
  }
  const existing = await existingRead
  const ts = garage.nextTimestamp(maxTimestamp(existing))
  const tagging = initialTagging(opts.tags, ts)
  const tagged = tagging === undefined ? {} : { tagging }

  if (first === undefined || (first.length < INLINE_THRESHOLD && (await chunker.atEnd()))) {
    const bytes = first ?? Buffer.alloc(0)
    const { stored, meta } = seal(objectMetaFrom(await result, bytes.length, headers, opts.checksumAlgorithm))
    await checkQuotas(garage, bucketId, opts.quotas, existing, bytes.length)
    const data = new Uint8Array(cipher === undefined ? bytes : cipher.encryptBlob(bytes))
    const version: ObjectVersion = {
      uuid: versionId,
      ts,
      state: { t: 'complete', data: { t: 'inline', meta: stored, bytes: data }, ...tagged },
      ...stamp,
    }
    await commitVersion(garage, bucketId, key, opts.condition, version)
    return { versionId, ts, meta, ...stampedId(opts.stamp, version) }
  }

  // Large object: announce the upload, then stream blocks.
  const uploading: ObjectVersion = {
    uuid: versionId,
    ts,
    state: { t: 'uploading', multipart: false, headers: cipher?.sealsMetadata === true ? [] : headers },
    ...stamp,
  }
  // The upload guard's record commits with the first block's rows when they are this node's
  // alone (TableBatch's LocalWrites), else in a transaction of its own before them.
  const guard = (tx: Transaction): void => garage.uploads.beginInTx(tx, versionId, bucketId, key, { ts })
  let saved: SavedObject
  const backlink = { t: 'object' as const, bucketId, key }
  try {
    // The `uploading` row goes with the first block's entries, before them on every node that
    // stores both (TableBatch.insertInOrder and docs/design/round-trips.md): no round trip of its
    // own. Later blocks may reach a node before it; the `versions` repair waits a grace before
    // taking such a version for an orphan, and a failure deletes the version itself (below).
    const { size, firstHash } = await writeBlocks(
      garage,
      versionId,
      backlink,
      1,
      first,
      chunker,
      cipher,
      [batchItem(garage.objectTable, [{ bucketId, key, versions: [uploading] }])],
      guard,
    )
    const { stored, meta } = seal(objectMetaFrom(await result, size, headers, opts.checksumAlgorithm))
    // The blocks written are unreferenced by the abort below and collected.
    await checkQuotas(garage, bucketId, opts.quotas, existing, size)
    const complete: ObjectVersion = {
      uuid: versionId,
      ts,
      state: { t: 'complete', data: { t: 'firstBlock', meta: stored, hash: firstHash }, ...tagged },
      ...stamp,
    }
    // The record goes with the commit (in its transaction when the row is this node's alone).
    await commitVersion(garage, bucketId, key, opts.condition, complete, (tx) => garage.uploads.endInTx(tx, versionId))
    saved = { versionId, ts, meta, ...stampedId(opts.stamp, complete) }
  } catch (err) {
    body.destroy()
    undoInBackground(garage, versionId, async () => {
      await garage.objectTable.insert({ bucketId, key, versions: [{ uuid: versionId, ts, state: { t: 'aborted' }, ...stamp }] })
      // The abort reaches the version through the object hook only where the row listed it.
      await garage.versionTable.insert(deletedVersion(versionId, backlink))
    })
    throw err
  }
  return saved
}

/**
 * Undoes a write that failed after its rows went out, without making the client wait: each step
 * is a quorum write, which on a node cut off from its peers waits for the RPC timeout, so an
 * awaited undo doubled (or tripled) the time to the 503. The upload guard keeps the version's
 * record until the undo is done; if the undo fails, the node's next start (the guard) or the
 * `versions` repair does it.
 */
export function undoInBackground(garage: Garage, versionId: Uuid, undo: () => Promise<void>): void {
  undo().then(
    () => garage.uploads.end(versionId),
    (err: unknown) =>
      garage.log.warn(
        `could not undo the failed write of version ${toHex(versionId)} (${(err as Error).message}): left to the versions repair (and to the upload guard where it holds a record of it)`,
      ),
  )
}

/**
 * A body of one block, fully received (put.ts's fast path, docs/design/round-trips.md): its data
 * round (the version row with the block, the block_ref, the block) runs while the key's row is
 * read, then the `complete` row is written. Two round trips, without the `uploading` row that a
 * larger body writes first. A crash between the two leaves a version row that no object row
 * references: the upload guard deletes it at the node's next start, and the `versions` repair
 * after its grace if the node never comes back (repair.ts, VERSION_REPAIR_GRACE_MS).
 */
async function saveOneBlock(
  t: SaveTarget,
  s: {
    versionId: Uuid
    first: Buffer
    chunker: Chunker
    cipher: ObjectCipher | undefined
    seal: (meta: ObjectMeta) => { stored: ObjectMeta; meta: ObjectMeta }
    existingRead: Promise<ObjectEntry | undefined>
  },
): Promise<SavedObject> {
  const { garage, bucketId, key, headers, body, result, opts } = t
  const { versionId, cipher } = s
  const stamp = opts.stamp?.fields ?? {}
  const backlink = { t: 'object' as const, bucketId, key }
  // No timestamp yet (it comes from the read): at a restart, the guard looks the version up.
  // Its record commits with the version row and the block_ref when they are this node's alone.
  const guard = (tx: Transaction): void => garage.uploads.beginInTx(tx, versionId, bucketId, key)
  const written = performance.now()
  let saved: SavedObject
  let committedAt: number | undefined
  try {
    // Both settled before anything else: a failure deletes the version, which must not overtake
    // a version entry or a reference still in flight (see writeBlocks).
    const [data, read] = await Promise.allSettled([
      writeBlocks(garage, versionId, backlink, 1, s.first, s.chunker, cipher, [], guard),
      s.existingRead,
    ])
    if (data.status === 'rejected') throw data.reason
    if (read.status === 'rejected') throw read.reason
    const existing = read.value
    const ts = garage.nextTimestamp(maxTimestamp(existing))
    const { stored, meta } = s.seal(objectMetaFrom(await result, data.value.size, headers, opts.checksumAlgorithm))
    await checkQuotas(garage, bucketId, opts.quotas, existing, data.value.size)
    // The `versions` repair may take a version unreferenced for its grace for an orphan.
    if (performance.now() - written > VERSION_COMMIT_DEADLINE_MS) {
      throw new ApiError('ServiceUnavailable', 'Service unavailable, please retry (the write took too long)')
    }
    const complete = completeVersion(
      versionId,
      ts,
      { t: 'firstBlock', meta: stored, hash: data.value.firstHash },
      opts.tags,
      stamp,
    )
    committedAt = ts
    // On a lone node: the object row and the end of the guard's record in one transaction.
    await commitVersion(garage, bucketId, key, opts.condition, complete, (tx) => garage.uploads.endInTx(tx, versionId))
    saved = { versionId, ts, meta, ...stampedId(opts.stamp, complete) }
  } catch (err) {
    body.destroy()
    const abortAt = committedAt
    undoInBackground(garage, versionId, async () => {
      // A commit that failed may have reached some nodes: abort it there, as a larger body does.
      if (abortAt !== undefined) {
        await garage.objectTable.insert({
          bucketId,
          key,
          versions: [{ uuid: versionId, ts: abortAt, state: { t: 'aborted' }, ...stamp }],
        })
      }
      // No object row lists the version otherwise, so no hook deletes it: delete it here (its
      // block references, then its blocks, follow).
      await garage.versionTable.insert(deletedVersion(versionId, backlink))
    })
    throw err
  }
  return saved
}

/**
 * A body under {@link INLINE_THRESHOLD}, fully received, in one round (one-round.ts): the
 * object row with the data inline, written without reading the row first. Undefined when the
 * row cannot be written as one request per node (the caller then takes the usual path).
 */
async function saveInlineOneRound(t: SaveTarget, versionId: Uuid, bytes: Buffer): Promise<SavedObject | undefined> {
  const { garage, bucketId, key, headers, result, opts } = t
  const meta = objectMetaFrom(await result, bytes.length, headers, opts.checksumAlgorithm)
  const data = new Uint8Array(bytes)
  const version = (uuid: Uuid, ts: number): ObjectVersion => {
    return completeVersion(uuid, ts, { t: 'inline', meta, bytes: data }, opts.tags)
  }
  const written = await writeInOneRound(
    garage,
    bucketId,
    key,
    versionId,
    (uuid, ts) => sendObjectRow(garage, { bucketId, key, versions: [version(uuid, ts)] }),
    // An inline version has no version row: the newer one's merge drops it with its data.
    () => {},
  )
  if (written === undefined) return undefined
  return { versionId: written.uuid, ts: written.ts, meta, ...stampedId(opts.stamp, version(written.uuid, written.ts)) }
}

/**
 * A body of one block, fully received, in one round (one-round.ts): the block goes to each of
 * its storage nodes with the version row, the block_ref and the `complete` object row, which
 * that node merges once the block is stored, so no node lists the version without holding its
 * data. Only where the rows' nodes are the block's (RF = number of nodes, outside layout
 * changes); undefined otherwise, having written nothing. A version written again above a newer
 * one has its version row deleted once every request of its write has ended; a failed write is
 * completed in the background (settleOneRound), since it may already be complete on one node.
 */
async function saveOneBlockOneRound(t: SaveTarget, versionId: Uuid, block: Buffer, hash: Hash): Promise<SavedObject | undefined> {
  const { garage, bucketId, key, headers, body, result, opts } = t
  // The version row and the object row must go to the same nodes (they do where every node
  // stores everything): otherwise, the two-round path, before the block is hashed for nothing.
  const probe = [
    batchItem(garage.versionTable, [
      { uuid: versionId, deleted: false, blocks: [], partsEtags: [], backlink: { t: 'object' as const, bucketId, key } },
    ]),
    batchItem(garage.objectTable, [{ bucketId, key, versions: [] }]),
  ]
  if (!garage.tableBatch.canSendTogether(probe)) return undefined
  // Verified before anything is sent: the rows sent make the version visible.
  const meta = objectMetaFrom(await result, block.length, headers, opts.checksumAlgorithm)
  const backlink = { t: 'object' as const, bucketId, key }
  const version = (uuid: Uuid, ts: number): ObjectVersion => {
    return completeVersion(uuid, ts, { t: 'firstBlock', meta, hash }, opts.tags)
  }
  // In order on each node, in one transaction: the version row, its reference, then the row
  // that makes it visible.
  const items = (uuid: Uuid, ts: number): BatchItem[] => [
    batchItem(garage.versionTable, [
      { uuid, deleted: false, blocks: [versionBlock(1, 0, hash, block.length)], partsEtags: [], backlink },
    ]),
    batchItem(garage.blockRefTable, [{ block: hash, version: uuid, deleted: false }]),
    batchItem(garage.objectTable, [{ bucketId, key, versions: [version(uuid, ts)] }]),
  ]
  // The first write of a version written again (a newer version was there): its object row is
  // dropped by the newer one's merge; its version row (and so its reference) goes here, once
  // every request of that write has ended (a late version entry or reference would outlive the
  // deletion: see writeBlocks).
  const superseded = (uuid: Uuid, _ts: number, settled: Promise<void>): void => {
    undoInBackground(garage, uuid, async () => {
      await settled
      await garage.versionTable.insert(deletedVersion(uuid, backlink))
    })
  }
  // Writes sent that did not reach their quorum: each may be complete on some node (its row
  // goes with its block), so it is not undone but completed (settleOneRound). Writes that
  // reached their quorum are never undone.
  const unsettled = new Map<Uuid, { planned: PlannedBatch; ts: number }>()
  try {
    const written = await writeInOneRound(
      garage,
      bucketId,
      key,
      versionId,
      (uuid, ts) =>
        garage.tableBatch.withPlan(items(uuid, ts), garage.objectTable, async (planned) => {
          unsettled.set(uuid, { planned, ts })
          // The block goes with the rows on every write (a second one sends it again), so that
          // no node has the `complete` row without the block.
          // No upload guard record: each node merges the version row, its reference and the
          // object row in one transaction after the block, so none ever holds some of them
          // without the others (a crash leaves all or none there).
          const answers = await garage.blockManager.putBlockWithRows(hash, block, planned)
          unsettled.delete(uuid)
          return answers === undefined ? undefined : { answers, settled: plannedSettled(planned) }
        }),
      superseded,
    )
    if (written === undefined) return undefined
    return { versionId: written.uuid, ts: written.ts, meta, ...stampedId(opts.stamp, version(written.uuid, written.ts)) }
  } catch (err) {
    body.destroy()
    for (const [uuid, { planned, ts }] of unsettled) {
      const resend = async (): Promise<boolean> =>
        (await garage.tableBatch.withPlan(items(uuid, ts), garage.objectTable, (again) =>
          garage.blockManager.putBlockWithRows(hash, block, again),
        )) !== undefined
      void settleOneRound(garage, uuid, plannedSettled(planned), resend)
    }
    throw err
  }
}

/**
 * Completes a failed one-round write (roll forward): once every request of it has ended, the
 * same block and rows (same version, same timestamp) are sent again until they reach their
 * quorum. Such a write may already be complete on some node (its row travels with its block),
 * where an undo could not take it back without racing a late request (`complete` wins over
 * `aborted`, and a deleted version under a late `complete` row is an object without data); the
 * client was answered 503, and a request that failed may take effect, as S3 allows. A newer
 * write of the key since then is newer in the row, and stays visible. After
 * {@link SETTLE_ATTEMPTS} tries (replicas away that long), it is left to anti-entropy: each node
 * holds all of the write's rows (with its block) or none of them, so the nodes that have them
 * bring them to the others, and resync the block.
 */
async function settleOneRound(garage: Garage, uuid: Uuid, settled: Promise<void>, resend: () => Promise<boolean>): Promise<void> {
  await settled
  const stop = garage.cluster?.signal
  for (let attempt = 1; ; attempt++) {
    try {
      // False: the rows no longer go to the block's nodes alone (a layout change): left to
      // anti-entropy, as above.
      await resend()
      return
    } catch (err) {
      if (attempt >= SETTLE_ATTEMPTS || stop?.aborted === true) {
        garage.log.warn(
          `could not complete the failed write of version ${toHex(uuid)} (${(err as Error).message}): left to anti-entropy`,
        )
        return
      }
    }
    const stopped = await sleep(SETTLE_RETRY_MS * 2 ** (attempt - 1), false, stop === undefined ? {} : { signal: stop }).catch(
      () => true,
    )
    if (stopped) return
  }
}

/** Tries of {@link settleOneRound}, 5 s apart and doubling: about 2.5 minutes in all. */
const SETTLE_ATTEMPTS = 6
const SETTLE_RETRY_MS = 5_000

/** A `complete` version of `data` written at `ts`, with the request's tags and stamp. */
function completeVersion(
  uuid: Uuid,
  ts: number,
  data: ObjectData,
  tags: Tags | undefined,
  stamp: Pick<ObjectVersion, 'keep' | 'lock'> = {},
): ObjectVersion {
  const tagging = initialTagging(tags, ts)
  return { uuid, ts, state: { t: 'complete', data, ...(tagging === undefined ? {} : { tagging }) }, ...stamp }
}

/**
 * What a write stamps on its new version: the `keep` flag of the bucket's versioning state and
 * the object lock of the request (or the bucket's default retention), with how to name it.
 */
export interface VersionStamp {
  fields: Pick<ObjectVersion, 'keep' | 'lock'>
  params: VersioningParams
}

/** The stamp of a version written by this request (PUT, copy, CreateMultipartUpload). */
export function newVersionStamp(ctx: BucketCtx, checksums: BucketCtx['checksums'] | undefined = ctx.checksums): VersionStamp {
  const fields: Pick<ObjectVersion, 'keep' | 'lock'> = { ...newVersionKeep(ctx.bucketParams) }
  const lock = writeLock(ctx.req.headers, ctx.bucketParams, checksums, Date.now())
  if (lock !== undefined) fields.lock = lock
  return { fields, params: ctx.bucketParams }
}

function stampedId(stamp: VersionStamp | undefined, v: ObjectVersion): { versionIdText?: string } {
  return stamp === undefined ? {} : { versionIdText: versionIdOf(v, stamp.params) }
}

/** The payload length a request announces (the decoded one for aws-chunked bodies). */
function declaredLength(headers: IncomingHttpHeaders): number | undefined {
  const v = headers['x-amz-decoded-content-length'] ?? headers['content-length']
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : Number.NaN
  return Number.isSafeInteger(n) ? n : undefined
}

/** True when `quotas` limits anything (otherwise no quota check reads anything). */
function hasQuotas(quotas: BucketQuotas | undefined): quotas is BucketQuotas {
  return quotas !== undefined && (quotas.maxObjects !== null || quotas.maxSize !== null)
}

/**
 * Refuses (403 QuotaExceeded) a write that would make `key` hold `size` bytes when that takes the
 * bucket over its quotas (port of put.rs `check_quotas`). `existing` is the key's current row:
 * an overwrite only counts the difference, and a write that does not grow a figure is always
 * accepted. Counters come from the bucket's partition holders (Garage.bucketCounts).
 */
export async function checkQuotas(
  garage: Garage,
  bucketId: Uuid,
  quotas: BucketQuotas | undefined,
  existing: ObjectEntry | undefined,
  size: number,
): Promise<void> {
  if (!hasQuotas(quotas)) return
  const counts = await garage.bucketCounts(bucketId)
  const prev = countObject(existing)
  const addObjects = 1 - prev.objects
  const addBytes = size - prev.bytes
  if (quotas.maxObjects !== null && addObjects > 0 && counts.objects + addObjects > quotas.maxObjects) {
    throw new ApiError('QuotaExceeded', `Object quota is reached, maximum objects for this bucket: ${quotas.maxObjects}`)
  }
  if (quotas.maxSize !== null && addBytes > 0 && counts.bytes + addBytes > quotas.maxSize) {
    throw new ApiError(
      'QuotaExceeded',
      `Bucket size quota is reached, maximum total size of objects for this bucket: ${quotas.maxSize}. The bucket is already ${counts.bytes} bytes, and this object would add ${addBytes} bytes.`,
    )
  }
}

/**
 * Writes the blocks of one part (or of a whole object, as part 1) of version `versionId`:
 * the version row lists each block and a block_ref references it before its data is written.
 * `lead`: rows sent with the first block's entries and before them on every node (the object's
 * `uploading` row, an upload's part row), so that announcing the version costs no round trip.
 * With a `cipher` (SSE-C or SSE-S3), each block is encrypted first and named by the hash of its
 * ciphertext; the version row keeps its plaintext size, so offsets and ranges stay in clear.
 * `before`: a local write (the upload guard's record) committed before the first block's
 * entries, in their transaction when they are this node's alone.
 */
export async function writeBlocks(
  garage: Garage,
  versionId: Uuid,
  backlink: VersionBacklink,
  partNumber: number,
  first: Buffer,
  chunker: Chunker,
  cipher?: ObjectCipher,
  lead: readonly BatchItem[] = [],
  before?: LocalWrites['before'],
): Promise<{ size: number; firstHash: Hash }> {
  const inflight = new Set<Promise<void>>()
  let failure: unknown
  let offset = 0
  let firstHash: Hash | undefined
  let block: Buffer | undefined = first
  while (block !== undefined) {
    const plainSize = block.length
    const data = cipher === undefined ? block : cipher.encryptBlock(block)
    const hash = cipher === undefined ? chunker.blockHash(block) : blake2sum(data)
    firstHash ??= hash
    const at = offset
    offset += plainSize
    // The version row's entry, the block reference and the block itself go out at once (Garage's
    // put_block_and_meta, a try_join! of the three): one round trip per block instead of three.
    // Safe in any order of arrival: the version row already exists (written empty before the
    // first block), nothing is visible until the object row says `complete`, a reference that
    // arrives before its block only makes resync look for it after a delay, and a block that
    // arrives before its reference is kept for the unreferenced-block grace period.
    // All three are settled before a failure is reported: the caller then deletes the version,
    // and that deletion must not overtake a version entry or reference still in flight (a late
    // entry would be dropped by the deleted row's merge and leave its block referenced forever).
    // The version entry and the reference travel in one request per node (TableBatch).
    const entries = [
      batchItem(garage.versionTable, [
        { uuid: versionId, deleted: false, blocks: [versionBlock(partNumber, at, hash, plainSize)], partsEtags: [], backlink },
      ]),
      batchItem(garage.blockRefTable, [{ block: hash, version: versionId, deleted: false }]),
    ]
    // `lead` (the row that announces the version) goes with the first block, before its entries
    // on every node (TableBatch.insertInOrder): no round trip of its own.
    const local = at === 0 ? { before } : {}
    const meta =
      at === 0 && lead.length > 0
        ? garage.tableBatch.insertInOrder([...lead, ...entries], local)
        : garage.tableBatch.insert(entries, local)
    const task = Promise.allSettled([meta, garage.blockManager.putBlock(hash, data)]).then((results) => {
      for (const r of results) if (r.status === 'rejected') failure ??= r.reason
    })
    inflight.add(task)
    void task.finally(() => inflight.delete(task))
    if (inflight.size >= garage.blockWritesPerRequest) await Promise.race(inflight)
    if (failure !== undefined) break
    try {
      block = await chunker.next()
    } catch (err) {
      // The body failed (the client went away, a bad digest, UploadPart's read ended it): the
      // blocks in flight still settle first, so the caller's undo comes after their entries.
      failure ??= err
      break
    }
  }
  await Promise.all(inflight)
  if (failure !== undefined) throw failure
  return { size: offset, firstHash: firstHash as Hash }
}

function maxTimestamp(o: ObjectEntry | undefined): number | undefined {
  if (o === undefined || o.versions.length === 0) return undefined
  return Math.max(...o.versions.map((v) => v.ts))
}
