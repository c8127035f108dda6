/**
 * Multipart uploads (port of garage_api_s3::multipart and the upload listings of
 * garage_api_s3::list).
 *
 * CreateMultipartUpload adds an `uploading{multipart}` version to the object row, whose uuid is
 * the upload id, and an MPU row of the same id. Each UploadPart (or UploadPartCopy) writes a
 * fresh part version (backlink: the upload) and lists it in the MPU row under
 * (part number, timestamp), so a re-upload of a number never collides with the previous one.
 * CompleteMultipartUpload builds the final version (uuid = upload id) from the chosen part
 * versions, renumbered 1..N, references its blocks, completes the object version and deletes the
 * MPU row: through the tables' hooks that deletes every part version, releasing the references of
 * parts that were not used while the final version keeps its own.
 */
import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { pipeline, type Readable, Transform } from 'node:stream'
import { prefixEnd } from '../../db/db.ts'
import type { Garage } from '../../model/garage.ts'
import { deletedMpu, foldMpuRows, type MpuEntry, type MpuPart, mpuPartRow, mpuPartSortKey } from '../../model/s3/mpu-table.ts'
import { isSseS3, type ObjectData, type ObjectEntry, type ObjectMeta, type ObjectVersion } from '../../model/s3/object-table.ts'
import { deletedVersion, type VersionBlock, type VersionEntry, versionBlock } from '../../model/s3/version-table.ts'
import { type BatchItem, batchItem, type PlannedBatch, plannedSettled } from '../../table/batch.ts'
import { blake2sum, bytesEqual, genUuid, type Hash, toHex, type Uuid, utf8 } from '../../util/data.ts'
import type { Logger } from '../../util/logger.ts'
import { isoDate } from '../../util/time.ts'
import { ApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import {
  type ChecksumAlgorithm,
  CHECKSUM_ALGORITHMS,
  CHECKSUM_LENGTH,
  Checksummer,
  checksumHeaderName,
  decodeBase64Exact,
  parseChecksumAlgorithm,
} from '../common/signature/checksum.ts'
import { crcCombine } from '../common/signature/crc.ts'
import type { BucketCtx } from './context.ts'
import { type ObjectCipher, parseCustomerKey, randomEtag, sseCResponseHeaders, sseS3ResponseHeaders } from './encryption.ts'
import type { Owner } from './list.ts'
import { uriEncode } from './list.ts'
import { noSuchUpload, parseUploadId } from './names.ts'
import {
  Chunker,
  checkContentLength,
  checkKey,
  checkQuotas,
  extractMetadataHeaders,
  newVersionStamp,
  undoInBackground,
  writeBlocks,
} from './put.ts'
import { versionIdOf } from './versioning.ts'
import { completePartEtag } from './etag.ts'
import { newObjectCipher, openObjectCipher, writeEncryption } from './sse-s3.ts'
import { readXmlBody, renderXml, type XmlDocument, xmlChildren, xmlOnly, xmlRoot, xmlText } from './xml.ts'
import { parseCannedAcl } from './acl.ts'
import { initialTagging, parseTaggingHeader } from './tagging.ts'
import { checkWriteCondition, commitVersion, currentObject, parseWriteCondition } from './conditional.ts'

/** Part numbers go from 1 to this, as on AWS. */
export const MAX_PART_NUMBER = 10_000
/** Every part but the last must be at least this large (AWS's limit). */
export const MIN_PART_SIZE = 5 * 1024 * 1024
/** ListParts and ListMultipartUploads return at most this many entries per page. */
const MAX_LIST = 1000
/** A CompleteMultipartUpload body listing 10,000 parts stays well below this. */
const MAX_COMPLETE_BODY = 4 * 1024 * 1024

const EMPTY = new Uint8Array(0)

export { noSuchUpload, parseUploadId }

/**
 * An upload that may receive parts: its object version and its upload row (which holds no parts,
 * unless written before parts had rows of their own: see mpu-table.ts).
 */
export interface Upload {
  uploadId: Uuid
  bucketId: Uuid
  key: string
  object: ObjectEntry
  version: ObjectVersion & { state: { t: 'uploading' } }
  mpu: MpuEntry
  /**
   * With `partNumber` given to {@link getUpload}: the latest timestamp of that part number's rows
   * (null: it has none). Undefined: not read.
   */
  lastPartTs?: number | null | undefined
  /** With `lastPartTs`: the versions that row lists (a one-round part tells its own row from another). */
  lastPartVersions?: Uuid[] | undefined
}

/**
 * What a part needs to know of its upload before its data is written: the upload's encryption
 * and checksum settings, fixed at CreateMultipartUpload for the life of the upload.
 */
export type UploadSettings = Pick<Upload, 'uploadId' | 'bucketId' | 'key' | 'version'>

/**
 * The settings of upload `uploadId` from this node's copy of the key's row, if that copy holds the
 * upload in progress (undefined otherwise: the caller reads at quorum). Whether the upload is
 * still in progress is only known from the quorum read; its settings do not change meanwhile.
 */
export function localUploadSettings(garage: Garage, bucketId: Uuid, key: string, uploadId: Uuid): UploadSettings | undefined {
  const object = garage.objectTable.data.read(bucketId, utf8(key))
  const version = object?.versions.find((v) => bytesEqual(v.uuid, uploadId) && v.state.t === 'uploading' && v.state.multipart)
  return version === undefined ? undefined : { uploadId, bucketId, key, version: version as Upload['version'] }
}

/** Part numbers are integers from 1 to 10,000. */
export function checkPartNumber(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_PART_NUMBER) {
    throw new ApiError('InvalidArgument', `Part number must be an integer between 1 and ${MAX_PART_NUMBER}, inclusive`)
  }
}

/**
 * The upload `uploadId` of `key`, if it is still in progress (NoSuchUpload otherwise). Reads the
 * object row and the upload row, never the part rows; with `partNumber`, also (in parallel) the
 * latest row of that part number, for {@link beginPart}.
 */
export async function getUpload(
  garage: Garage,
  bucketId: Uuid,
  key: string,
  uploadId: Uuid,
  partNumber?: number,
): Promise<Upload> {
  const [object, mpu, last] = await Promise.all([
    garage.objectTable.get(bucketId, utf8(key)),
    garage.mpuTable.get(uploadId, EMPTY),
    partNumber === undefined ? undefined : lastPartRow(garage, uploadId, partNumber),
  ])
  if (object === undefined || mpu === undefined || mpu.deleted) throw noSuchUpload()
  const version = object.versions.find((v) => bytesEqual(v.uuid, uploadId) && v.state.t === 'uploading' && v.state.multipart)
  if (version === undefined) throw noSuchUpload()
  const upload: Upload = { uploadId, bucketId, key, object, version: version as Upload['version'], mpu }
  if (last !== undefined) {
    upload.lastPartTs = last?.ts ?? null
    upload.lastPartVersions = last?.versions ?? []
  }
  return upload
}

/**
 * The latest timestamp among the part rows of `partNumber`: the last row before the part
 * number's successor, one entry read backwards.
 */
async function lastPartTimestamp(garage: Garage, uploadId: Uuid, partNumber: number): Promise<number | null> {
  return (await lastPartRow(garage, uploadId, partNumber))?.ts ?? null
}

/** The latest row of `partNumber` (its timestamp and the versions it lists), if any. */
async function lastPartRow(garage: Garage, uploadId: Uuid, partNumber: number): Promise<{ ts: number; versions: Uuid[] } | null> {
  const [row] = await garage.mpuTable.getRange(uploadId, {
    start: mpuPartSortKey({ partNumber: partNumber + 1, ts: 0 }),
    limit: 1,
    reverse: true,
  })
  if (row?.partRow?.partNumber !== partNumber) return null
  return { ts: row.partRow.ts, versions: row.parts.map((p) => p.version) }
}

/**
 * Every part of the upload: the upload row and all its part rows, folded. O(parts): for
 * CompleteMultipartUpload and the admin's statistics, never for UploadPart.
 */
export async function readUploadParts(garage: Garage, upload: Upload): Promise<MpuEntry> {
  return uploadParts(await readPartRows(garage, upload.uploadId))
}

/** Every row of an upload (the upload row and its part rows), at quorum. */
function readPartRows(garage: Garage, uploadId: Uuid): Promise<MpuEntry[]> {
  return garage.mpuTable.getRange(uploadId, { limit: Number.MAX_SAFE_INTEGER })
}

/** The rows of {@link readPartRows} folded into the upload with all its parts. */
function uploadParts(rows: MpuEntry[]): MpuEntry {
  const mpu = foldMpuRows(rows)
  if (mpu === undefined || mpu.deleted) throw noSuchUpload()
  return mpu
}

/**
 * One page of the finished parts with a number above `after`, newest upload of each number, by
 * number; reads part rows from `after + 1` on, in pages, until the page and the fact that more
 * follow are known.
 */
async function listFinishedParts(
  garage: Garage,
  upload: Upload,
  after: number,
  max: number,
): Promise<{ parts: Array<MpuPart & { etag: string; size: number }>; truncated: boolean }> {
  const found = new Map<number, MpuPart & { etag: string; size: number }>()
  const consider = (p: MpuPart): void => {
    if (p.partNumber <= after || p.etag === null || p.size === null) return
    const cur = found.get(p.partNumber)
    if (cur === undefined || p.ts > cur.ts) found.set(p.partNumber, p as MpuPart & { etag: string; size: number })
  }
  // An upload row written before part rows existed holds its parts itself.
  for (const p of upload.mpu.parts) consider(p)
  let start = mpuPartSortKey({ partNumber: after + 1, ts: 0 })
  for (;;) {
    const rows = await garage.mpuTable.getRange(upload.uploadId, { start, limit: MAX_LIST })
    let lastNumber = 0
    for (const r of rows) {
      if (r.partRow === undefined) continue
      lastNumber = r.partRow.partNumber
      if (!r.deleted) for (const p of r.parts) consider(p)
    }
    const last = rows[rows.length - 1]
    if (rows.length < MAX_LIST || last?.partRow === undefined) break
    // Every row of a number below the last one seen has been read: stop once those fill the page.
    let complete = 0
    for (const n of found.keys()) if (n < lastNumber) complete++
    if (complete > max) break
    const key = mpuPartSortKey(last.partRow)
    start = new Uint8Array(key.length + 1)
    start.set(key)
  }
  const parts = [...found.values()].sort((a, b) => a.partNumber - b.partNumber)
  return { parts: parts.slice(0, max), truncated: parts.length > max }
}

/** The newest finished upload of each part number, by part number. */
export function finishedParts(mpu: MpuEntry): Map<number, MpuPart & { etag: string; size: number }> {
  const out = new Map<number, MpuPart & { etag: string; size: number }>()
  for (const p of mpu.parts) {
    if (p.etag === null || p.size === null) continue
    const cur = out.get(p.partNumber)
    if (cur === undefined || p.ts > cur.ts) out.set(p.partNumber, p as MpuPart & { etag: string; size: number })
  }
  return out
}

/**
 * A new part of `partNumber`: its row's timestamp is newer than every row of that number read
 * (so the newest upload of a number wins), its version id fresh. Nothing is written.
 */
export async function newPart(garage: Garage, upload: Upload, partNumber: number, version = genUuid()): Promise<MpuPart> {
  let previous =
    upload.lastPartTs === undefined ? await lastPartTimestamp(garage, upload.uploadId, partNumber) : upload.lastPartTs
  for (const p of upload.mpu.parts) if (p.partNumber === partNumber) previous = Math.max(previous ?? p.ts, p.ts)
  return {
    partNumber,
    ts: garage.nextTimestamp(previous ?? undefined),
    version,
    etag: null,
    size: null,
    checksum: null,
  }
}

/** The part row that lists `part` in its upload (without ETag yet), for a batch. */
export function partListing(garage: Garage, upload: Upload, part: MpuPart): BatchItem {
  return batchItem(garage.mpuTable, [mpuPartRow(upload.mpu, part)])
}

/**
 * Starts writing a part with no blocks: lists a new part version in the upload (without ETag
 * yet) and creates that version, the listing first on every node. A part with blocks sends the
 * listing with its first block instead (handleUploadPart), so that the upload's deletion always
 * reaches a version that has block references.
 */
export async function beginPart(garage: Garage, upload: Upload, partNumber: number): Promise<MpuPart> {
  const part = await newPart(garage, upload, partNumber)
  await beginPartRows(garage, upload, part)
  return part
}

/**
 * The listing and the empty version of a part, in one round trip, the listing first on every node
 * (TableBatch.insertInOrder).
 */
async function beginPartRows(garage: Garage, upload: Upload, part: MpuPart): Promise<void> {
  await garage.tableBatch.insertInOrder([
    partListing(garage, upload, part),
    batchItem(garage.versionTable, [
      { uuid: part.version, deleted: false, blocks: [], partsEtags: [], backlink: { t: 'mpu', uploadId: upload.uploadId } },
    ]),
  ])
}

/**
 * Records a written part's ETag and size. Whether the upload was completed or aborted meanwhile
 * is checked after the answer (one round trip less per part, as Garage, which does not check):
 * the part is then released, so its blocks do not outlive the upload. The client was told the
 * part succeeded, which is what AWS answers in the same race too.
 */
export async function finishPart(garage: Garage, upload: Upload, part: MpuPart, log: Logger): Promise<void> {
  await garage.mpuTable.insert(mpuPartRow(upload.mpu, part))
  void releaseIfUploadGone(garage, upload, part).catch((err: unknown) => {
    // Only a leak: the version stays until the versions repair finds its upload deleted.
    log.warn(`cannot check the upload of part ${part.partNumber} after writing it: ${(err as Error).message}`)
  })
}

/** Releases `part` if its upload was completed or aborted while it was written. */
async function releaseIfUploadGone(garage: Garage, upload: Upload, part: MpuPart): Promise<void> {
  const after = await garage.mpuTable.get(upload.uploadId, EMPTY)
  if (after === undefined || after.deleted) await releasePart(garage, upload, part)
}

/** Deletes a part version that will never be used (its block references go with it). */
export async function releasePart(garage: Garage, upload: Upload, part: MpuPart): Promise<void> {
  await garage.versionTable.insert(deletedVersion(part.version, { t: 'mpu', uploadId: upload.uploadId }))
}

/** Runs `write` for a part begun with {@link beginPart}, releasing the part if it fails. */
export async function writePart(
  ctx: BucketCtx,
  upload: Upload,
  part: MpuPart,
  write: () => Promise<{ etag: string; size: number; checksum: string | null }>,
): Promise<MpuPart & { etag: string; size: number }> {
  let written: { etag: string; size: number; checksum: string | null }
  try {
    written = await write()
  } catch (err) {
    try {
      await releasePart(ctx.garage, upload, part)
    } catch (cleanupErr) {
      // The original error is the one to report; the part stays listed in the upload, whose
      // completion or abort deletes its version anyway.
      ctx.log.warn(`cannot release failed part ${part.partNumber}: ${(cleanupErr as Error).message}`)
    }
    throw err
  }
  const done = { ...part, ...written }
  await finishPart(ctx.garage, upload, done, ctx.log)
  return done
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/**
 * The cipher of an encrypted upload (its key derived from the upload id, which becomes the final
 * version's id): for SSE-C, after checking the request gives the upload's key; for SSE-S3, the
 * data key chosen at creation, unwrapped. Undefined for a plaintext upload, which must not be
 * given an SSE-C key.
 */
export function uploadCipher(ctx: BucketCtx, upload: UploadSettings): ObjectCipher | undefined {
  const at = { bucketId: upload.bucketId, versionId: upload.uploadId, key: upload.key }
  return openObjectCipher(ctx.req.headers, upload.version.state.encryption, at, ctx.settings.sseKeyring)
}

/** The checksum settings of an upload: every part and the completed object carry one of this kind. */
export interface UploadChecksum {
  algorithm: ChecksumAlgorithm
  type: ChecksumType
}

export type ChecksumType = 'FULL_OBJECT' | 'COMPOSITE'

/** Which algorithms each checksum type allows (a full-object checksum must be a combinable CRC). */
const ALLOWED_TYPES: Readonly<Record<ChecksumAlgorithm, readonly ChecksumType[]>> = {
  CRC32: ['COMPOSITE', 'FULL_OBJECT'],
  CRC32C: ['COMPOSITE', 'FULL_OBJECT'],
  CRC64NVME: ['FULL_OBJECT'],
  SHA1: ['COMPOSITE'],
  SHA256: ['COMPOSITE'],
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v.join(',') : v
}

/**
 * `x-amz-checksum-algorithm` and `x-amz-checksum-type` of CreateMultipartUpload. The type defaults
 * to COMPOSITE, or FULL_OBJECT for CRC64NVME (which has no composite form).
 * @throws ApiError InvalidArgument (unknown algorithm or type), InvalidRequest (a type without an
 * algorithm, or a combination S3 does not support)
 */
export function parseUploadChecksum(headers: IncomingHttpHeaders): UploadChecksum | undefined {
  const algName = header(headers, 'x-amz-checksum-algorithm')
  const typeName = header(headers, 'x-amz-checksum-type')?.trim().toUpperCase()
  if (algName === undefined) {
    if (typeName !== undefined) {
      throw new ApiError(
        'InvalidRequest',
        'The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.',
      )
    }
    return undefined
  }
  const algorithm = parseChecksumAlgorithm(algName)
  if (algorithm === undefined) throw new ApiError('InvalidArgument', `Checksum algorithm ${algName} is not supported.`)
  if (typeName !== undefined && typeName !== 'FULL_OBJECT' && typeName !== 'COMPOSITE') {
    throw new ApiError('InvalidArgument', `Value for x-amz-checksum-type header is invalid: ${typeName.slice(0, 32)}`)
  }
  const allowed = ALLOWED_TYPES[algorithm]
  const type: ChecksumType = typeName ?? (allowed[0] as ChecksumType)
  if (!allowed.includes(type)) {
    throw new ApiError('InvalidRequest', `The ${type} checksum type cannot be used with the ${algorithm} checksum algorithm.`)
  }
  return { algorithm, type }
}

/** The checksum settings an upload was created with, if any. */
export function uploadChecksum(upload: UploadSettings): UploadChecksum | undefined {
  const { checksumAlgorithm, checksumType } = upload.version.state
  if (checksumAlgorithm === undefined) return undefined
  return { algorithm: checksumAlgorithm, type: checksumType ?? ALLOWED_TYPES[checksumAlgorithm][0] ?? 'COMPOSITE' }
}

function checksumMismatch(expected: ChecksumAlgorithm, actual: ChecksumAlgorithm): ApiError {
  return new ApiError(
    'InvalidRequest',
    `Checksum Type mismatch occurred, expected checksum Type: ${expected.toLowerCase()}, actual checksum Type: ${actual.toLowerCase()}`,
  )
}

/**
 * The object checksum of a completed upload from its parts' checksums (raw digests, in order):
 * COMPOSITE is the checksum of the concatenated part checksums, `-N` appended; FULL_OBJECT is the
 * CRC of the whole object, combined from the part CRCs and sizes without reading the data.
 */
export function combinePartChecksums(c: UploadChecksum, parts: ReadonlyArray<{ checksum: Uint8Array; size: number }>): string {
  if (c.type === 'COMPOSITE') {
    const summer = new Checksummer([c.algorithm])
    for (const p of parts) summer.update(p.checksum)
    return `${(summer.digest()[c.algorithm] as Buffer).toString('base64')}-${parts.length}`
  }
  if (c.algorithm !== 'CRC32' && c.algorithm !== 'CRC32C' && c.algorithm !== 'CRC64NVME') {
    throw new Error(`no full-object checksum for ${c.algorithm}`)
  }
  const first = parts[0]
  if (first === undefined) return (new Checksummer([c.algorithm]).digest()[c.algorithm] as Buffer).toString('base64')
  let acc: Buffer = Buffer.from(first.checksum)
  for (const p of parts.slice(1)) acc = crcCombine(c.algorithm, acc, p.checksum, p.size)
  return acc.toString('base64')
}

export async function handleCreateMultipartUpload(ctx: BucketCtx, key: string): Promise<ApiResponse> {
  checkKey(key)
  parseCannedAcl(ctx.req.headers, 'object')
  const tags = parseTaggingHeader(ctx.req.headers)
  const checksum = parseUploadChecksum(ctx.req.headers)
  const g = ctx.garage
  const headers = extractMetadataHeaders(ctx.req.headers, ctx.contentEncoding)
  // The upload's encryption is decided now (headers, else the bucket's default) and every part
  // uses it (S3 API reference, CreateMultipartUpload).
  const enc = writeEncryption(ctx.req.headers, {
    bucketDefault: ctx.bucketParams.encryption.v,
    keyring: ctx.settings.sseKeyring,
  })
  const existing = await g.objectTable.get(ctx.bucketId, utf8(key))
  const ts = g.nextTimestamp(existing === undefined ? undefined : Math.max(0, ...existing.versions.map((v) => v.ts)))
  const uploadId = genUuid()
  // The key of the version the upload will complete into: SSE-C seals the headers with it; SSE-S3
  // stores its data key, wrapped.
  const cipher = enc === undefined ? undefined : newObjectCipher(enc, ctx.bucketId, uploadId, key)
  const encryption = cipher?.sealMeta(headers)
  const clearHeaders = cipher?.sealsMetadata === true ? [] : headers
  // Versioning and object lock are decided now, as the encryption is.
  const stamp = newVersionStamp(ctx, undefined)
  const uploading: ObjectEntry = {
    bucketId: ctx.bucketId,
    key,
    versions: [
      {
        uuid: uploadId,
        ts,
        ...stamp.fields,
        state: {
          ...(encryption === undefined
            ? { t: 'uploading', multipart: true, headers }
            : { t: 'uploading', multipart: true, headers: clearHeaders, encryption }),
          ...(checksum === undefined ? {} : { checksumAlgorithm: checksum.algorithm, checksumType: checksum.type }),
          ...(tags === undefined || tags.length === 0 ? {} : { tags }),
        },
      },
    ],
  }
  // One round trip, the object row before the upload row on every node (TableBatch.insertInOrder).
  await g.tableBatch.insertInOrder([
    batchItem(g.objectTable, [uploading]),
    batchItem(g.mpuTable, [{ uploadId, deleted: false, parts: [], ts, bucketId: ctx.bucketId, key }]),
  ])
  const xml = renderXml('InitiateMultipartUploadResult', { Bucket: ctx.bucketName, Key: key, UploadId: toHex(uploadId) })
  const out: Record<string, string> = { 'content-type': 'application/xml' }
  if (cipher !== undefined) Object.assign(out, cipher.responseHeaders())
  if (checksum !== undefined) {
    out['x-amz-checksum-algorithm'] = checksum.algorithm
    out['x-amz-checksum-type'] = checksum.type
  }
  return { status: 200, headers: out, body: xml }
}

/** Passes data through while computing one checksum (a part's, when the client sent none). */
function checksumTap(body: Readable, algorithm: ChecksumAlgorithm): { body: Readable; value: () => string } {
  const summer = new Checksummer([algorithm])
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      summer.update(chunk)
      cb(null, chunk)
    },
  })
  // Errors reach the consumer through `tap`, which pipeline destroys with the source's error.
  const out = pipeline(body, tap, () => {})
  return { body: out, value: () => (summer.digest()[algorithm] as Buffer).toString('base64') }
}

export async function handleUploadPart(
  ctx: BucketCtx,
  ep: { key: string; partNumber: number; uploadId: string },
): Promise<ApiResponse> {
  checkPartNumber(ep.partNumber)
  const uploadId = parseUploadId(ep.uploadId)
  checkContentLength(ctx.req.headers)
  const g = ctx.garage
  const uploadRead = getUpload(g, ctx.bucketId, ep.key, uploadId, ep.partNumber)
  // With the upload's settings from the local copy, a part of one block is written while the
  // upload is read (docs/design/round-trips.md): the read is awaited later, or not at all if the
  // request fails first.
  const local = localUploadSettings(g, ctx.bucketId, ep.key, uploadId)
  if (local !== undefined) uploadRead.catch(() => undefined)
  const settings = local ?? (await uploadRead)
  const cipher = uploadCipher(ctx, settings)
  // An upload created with a checksum algorithm has every part checked or summed with it.
  const algorithm = uploadChecksum(settings)?.algorithm
  const sent = ctx.checksums
  const sentAlgorithm = (Object.keys(sent.expected)[0] as ChecksumAlgorithm | undefined) ?? sent.trailerAlgorithm
  if (algorithm !== undefined && sentAlgorithm !== undefined && sentAlgorithm !== algorithm) {
    throw checksumMismatch(algorithm, sentAlgorithm)
  }
  const tap =
    algorithm !== undefined && sentAlgorithm === undefined && sent.requestedAlgorithm !== algorithm
      ? checksumTap(ctx.body, algorithm)
      : undefined
  const chunker = new Chunker(tap?.body ?? ctx.body, g.blockSize, { hashBlocks: cipher === undefined })
  let first: Buffer | undefined
  let oneBlock = false
  try {
    first = await chunker.next()
    oneBlock = local !== undefined && first !== undefined && (await chunker.atEnd())
  } catch (err) {
    ctx.body.destroy()
    throw err
  }
  /** The part's ETag, size and checksum, once its body has been received and verified. */
  const written = async (size: number): Promise<{ etag: string; size: number; checksum: string | null }> => {
    const result = await ctx.bodyResult
    // The MD5 of an SSE-C part would tell something about its content; SSE-S3 parts keep it.
    const etag = cipher?.sealsMetadata === true ? randomEtag() : (result.md5 ?? createHash('md5').digest()).toString('hex')
    if (algorithm !== undefined) {
      const value = result.checksums[algorithm] ?? (tap as { value: () => string }).value()
      return { etag, size, checksum: `${algorithm}:${value}` }
    }
    const [alg, value] = (Object.entries(result.checksums)[0] ?? []) as [string | undefined, string | undefined]
    return { etag, size, checksum: alg !== undefined && value !== undefined ? `${alg}:${value}` : null }
  }
  const whileReading: PartWhileReading | undefined =
    local !== undefined && first !== undefined
      ? { ctx, settings, uploadRead, partNumber: ep.partNumber, first, chunker, cipher, written }
      : undefined
  const done =
    whileReading !== undefined
      ? ((oneBlock ? await uploadPartInOneRound(whileReading) : undefined) ?? (await uploadPartWhileReading(whileReading)))
      : await uploadPartAfterRead(ctx, await uploadRead, ep.partNumber, first, chunker, cipher, written)
  const out: Record<string, string> = { etag: `"${done.etag}"` }
  if (cipher !== undefined) Object.assign(out, cipher.responseHeaders())
  const checksum = parsePartChecksum(done.checksum)
  if (checksum !== undefined) out[checksumHeaderName(checksum.algorithm)] = checksum.value
  return { status: 200, headers: out }
}

type PartWritten = (size: number) => Promise<{ etag: string; size: number; checksum: string | null }>

/**
 * A part written while its upload is read (uploadPartInOneRound, uploadPartWhileReading): the
 * request, the upload's settings from this node's copy and its quorum read still running, the
 * part number, its first block and the rest of the body, the upload's cipher, and how to finish
 * the part's ETag and checksum once the body is verified.
 */
interface PartWhileReading {
  ctx: BucketCtx
  settings: UploadSettings
  uploadRead: Promise<Upload>
  partNumber: number
  first: Buffer
  chunker: Chunker
  cipher: ObjectCipher | undefined
  written: PartWritten
}

/**
 * A part written after its upload was read (3 round trips for one block): the upload read; the
 * part's listing (without ETag) with its first block, before it on every node; the finished part
 * row. For an empty part, or an upload this node has no copy of.
 */
async function uploadPartAfterRead(
  ctx: BucketCtx,
  upload: Upload,
  partNumber: number,
  first: Buffer | undefined,
  chunker: Chunker,
  cipher: ObjectCipher | undefined,
  written: PartWritten,
): Promise<MpuPart & { etag: string; size: number }> {
  const g = ctx.garage
  const part = await newPart(g, upload, partNumber)
  // A crash before the part is finished: its version is deleted at the next start (its blocks
  // after the first may have reached a node before the listing that travels with the first).
  g.uploads.begin(part.version, ctx.bucketId, upload.key, { part: { uploadId: upload.uploadId, partNumber, ts: part.ts } })
  return writePart(ctx, upload, part, async () => {
    try {
      let size = 0
      if (first === undefined) {
        await beginPartRows(g, upload, part)
      } else {
        // The part's listing travels with its first block, before it on every node: the data
        // round is also the one that lists the part (docs/design/round-trips.md).
        const lead = [partListing(g, upload, part)]
        const backlink = { t: 'mpu' as const, uploadId: upload.uploadId }
        size = (await writeBlocks(g, part.version, backlink, partNumber, first, chunker, cipher, lead)).size
      }
      return await written(size)
    } catch (err) {
      ctx.body.destroy()
      throw err
    }
  }).finally(() => g.uploads.end(part.version))
}

/**
 * A part of one block, fully received, of an upload this node holds a copy of (its object row
 * and its upload row), in one round trip (docs/design/round-trips.md, "One-round UploadPart"):
 * the block goes to each of its storage nodes with the part's version row, its block_ref and its
 * *finished* part row (ETag, size), which that node merges once the block is stored, while the
 * upload and the part number's latest row are read at quorum. The part row's timestamp comes
 * from this node's copy; the quorum read of the part number's latest row, which meets the write
 * quorum of every earlier part row, shows a newer one (a clock ahead elsewhere, a copy behind):
 * the row is then written again above it (a second round, rare). Undefined, with nothing
 * written, when the rows do not go to exactly the block's nodes (RF = number of nodes) or this
 * node has no copy of the upload row: the two-round path.
 *
 * A failure (the write or the read, NoSuchUpload) tombstones the part row and deletes the
 * version once every request has ended: a part row's deletion wins over its finished state, so
 * Complete never picks it, and the version row goes with its references. Each node merges its
 * rows in one transaction after the block (BlockReplication's `#storeWithRows`): a crash leaves
 * a node with all of them or none (and perhaps a block file nothing references, which resync
 * and `garage repair blocks` remove); replicas that have them bring them to the others.
 */
async function uploadPartInOneRound(p: PartWhileReading): Promise<(MpuPart & { etag: string; size: number }) | undefined> {
  const { ctx, settings, uploadRead, partNumber, first, chunker, cipher, written } = p
  const g = ctx.garage
  const { uploadId } = settings
  const localMpu = g.mpuTable.data.read(uploadId, EMPTY)
  if (localMpu === undefined || localMpu.deleted) return undefined
  // The part number's newest row in this node's copy (and parts an older upload row holds).
  const [latest] = g.mpuTable.data.readRange(uploadId, {
    start: mpuPartSortKey({ partNumber: partNumber + 1, ts: 0 }),
    limit: 1,
    reverse: true,
  })
  let previous = latest?.partRow?.partNumber === partNumber ? latest.partRow.ts : undefined
  for (const p of localMpu.parts) if (p.partNumber === partNumber) previous = Math.max(previous ?? p.ts, p.ts)
  const versionId = genUuid()
  const backlink = { t: 'mpu' as const, uploadId }
  // The version row and the part row must go to the same nodes (they do where every node stores
  // everything): otherwise, the two-round path, before the block is encrypted and hashed twice.
  const probe = [
    batchItem(g.versionTable, [{ uuid: versionId, deleted: false, blocks: [], partsEtags: [], backlink }]),
    batchItem(g.mpuTable, [localMpu]),
  ]
  if (!g.tableBatch.canSendTogether(probe)) return undefined
  const data = cipher === undefined ? first : cipher.encryptBlock(first)
  const hash = cipher === undefined ? chunker.blockHash(first) : blake2sum(data)
  // Verified before anything is sent: the finished row makes the part usable by Complete.
  const done: MpuPart & { etag: string; size: number } = {
    partNumber,
    ts: g.nextTimestamp(previous),
    version: versionId,
    ...(await written(first.length)),
  }
  const items = (part: MpuPart): BatchItem[] => [
    batchItem(g.versionTable, [
      { uuid: versionId, deleted: false, blocks: [versionBlock(partNumber, 0, hash, first.length)], partsEtags: [], backlink },
    ]),
    batchItem(g.blockRefTable, [{ block: hash, version: versionId, deleted: false }]),
    batchItem(g.mpuTable, [mpuPartRow(localMpu, part)]),
  ]
  const rows: MpuPart[] = []
  const plans: PlannedBatch[] = []
  // The part rows (merged after the block on each node: the mpu table is the batch's `prev`).
  // No upload guard record: each node merges the version row, the reference and the part row
  // in one transaction after the block, so no node ever holds some of them without the others.
  const send = (part: MpuPart): Promise<Map<string, Uint8Array[]> | undefined | 'not sent'> =>
    g.tableBatch
      .withPlan(items(part), g.mpuTable, async (planned) => {
        plans.push(planned)
        rows.push(part)
        return g.blockManager.putBlockWithRows(hash, data, planned)
      })
      .then((r) => (r === undefined ? 'not sent' : r))
  const undo = (): void => {
    undoInBackground(g, versionId, async () => {
      await Promise.allSettled(plans.map((p) => plannedSettled(p)))
      // Every part row sent is tombstoned (deletion wins over finished), then the version.
      for (const part of rows) await g.mpuTable.insert({ ...mpuPartRow(localMpu, part), deleted: true, parts: [] })
      await g.versionTable.insert(deletedVersion(versionId, backlink))
    })
  }
  try {
    const [sent, read] = await Promise.allSettled([send({ ...done }), uploadRead])
    if (sent.status === 'fulfilled' && sent.value === 'not sent') {
      // Not colocated: nothing was written; the read goes on for the two-round path.
      return undefined
    }
    if (sent.status === 'rejected') throw sent.reason
    if (read.status === 'rejected') throw read.reason
    const upload = read.value
    let newest = upload.lastPartTs ?? undefined
    for (const p of upload.mpu.parts) if (p.partNumber === partNumber) newest = Math.max(newest ?? p.ts, p.ts)
    // A row at the same timestamp that lists another version: two writes of the part number
    // chose the same row key (their merge keeps one of them): ours goes above it.
    const sameKey = newest === done.ts && upload.lastPartVersions?.some((v) => !bytesEqual(v, versionId)) === true
    if (newest !== undefined && (newest > done.ts || sameKey)) {
      ctx.log.info(
        `one-round part ${partNumber} of upload ${toHex(uploadId)}: a row at ${newest} > ${done.ts}; writing again above it`,
      )
      done.ts = g.nextTimestamp(newest)
      if ((await send({ ...done })) === 'not sent') {
        throw new ApiError(
          'ServiceUnavailable',
          'Service unavailable, please retry (the cluster layout changed during the write)',
        )
      }
    }
    // Completed or aborted meanwhile: released after the answer, as finishPart does.
    void releaseIfUploadGone(g, upload, done).catch((err: unknown) => {
      ctx.log.warn(`cannot check the upload of part ${partNumber} after writing it: ${(err as Error).message}`)
    })
  } catch (err) {
    ctx.body.destroy()
    undo()
    throw err
  }
  return done
}

/**
 * A part of an upload this node holds a copy of, written while the upload is read
 * (docs/design/round-trips.md): its data (its version row with each block, the block_refs, the
 * blocks, {@link writeBlocks}'s waves) while the upload and the part number's latest row are read
 * at quorum; then the finished part row (ETag, size), whose timestamp comes from the read. 2
 * round trips for a part of one block (when the one-round path does not apply), one per wave of
 * blocks plus one for a larger part. A failed read (NoSuchUpload) stops the data at its next
 * block rather than after the whole body.
 * Until the last round no row lists the part version: a crash in between is undone by the upload guard
 * at the next start (the part is not finished in its rows: its version is deleted); an upload
 * completed or aborted meanwhile is caught by the read-back after the answer (finishPart); any
 * failure deletes the version; and the `versions` repair deletes it once its upload is gone.
 */
async function uploadPartWhileReading(p: PartWhileReading): Promise<MpuPart & { etag: string; size: number }> {
  const { ctx, settings, uploadRead, partNumber, first, chunker, cipher, written } = p
  const g = ctx.garage
  const { uploadId } = settings
  const versionId = genUuid()
  const backlink = { t: 'mpu' as const, uploadId }
  // No timestamp yet (it comes from the read): at a restart, the guard reads the part number's rows.
  g.uploads.begin(versionId, ctx.bucketId, settings.key, { part: { uploadId, partNumber } })
  let finishing: { upload: Upload; part: MpuPart } | undefined
  let done: MpuPart & { etag: string; size: number }
  try {
    // A failed read ends the body, and with it the data round, at the next block: its error is
    // the answer (checked first), not the body's.
    uploadRead.catch(() => ctx.body.destroy())
    // Both settled before anything else: a failure deletes the version, which must not overtake a
    // version entry or a reference still in flight (see writeBlocks).
    const [data, read] = await Promise.allSettled([
      writeBlocks(g, versionId, backlink, partNumber, first, chunker, cipher),
      uploadRead,
    ])
    if (read.status === 'rejected') throw read.reason
    if (data.status === 'rejected') throw data.reason
    const upload = read.value
    const part = await newPart(g, upload, partNumber, versionId)
    done = { ...part, ...(await written(data.value.size)) }
    finishing = { upload, part: done }
    await finishPart(g, upload, done, ctx.log)
  } catch (err) {
    ctx.body.destroy()
    const f = finishing
    undoInBackground(g, versionId, async () => {
      // A finished row that failed may have reached some nodes: tombstone it there (its hook
      // deletes the version there too); no row lists the version otherwise, so delete it here.
      if (f !== undefined) await g.mpuTable.insert({ ...mpuPartRow(f.upload.mpu, f.part), deleted: true, parts: [] })
      await g.versionTable.insert(deletedVersion(versionId, backlink))
    })
    throw err
  }
  g.uploads.end(versionId)
  return done
}

export function parsePartChecksum(s: string | null): { algorithm: ChecksumAlgorithm; value: string } | undefined {
  if (s === null) return undefined
  const i = s.indexOf(':')
  const algorithm = parseChecksumAlgorithm(s.slice(0, i))
  return algorithm === undefined ? undefined : { algorithm, value: s.slice(i + 1) }
}

/** A `<Part>` of a CompleteMultipartUpload body. */
export interface CompletePart {
  partNumber: number
  etag: string
  /** base64 `<ChecksumCRC32>` etc., to check against the part's stored checksum. */
  checksums?: Partial<Record<ChecksumAlgorithm, string>>
}

const PART_ELEMENTS = ['PartNumber', 'ETag', ...CHECKSUM_ALGORITHMS.map((a) => `Checksum${a}`)]
/** AWS's limit on the parts of one upload. */
const MAX_PARTS = 10_000

/**
 * The `<Part>` list of a CompleteMultipartUpload body, in the order given (element order inside a
 * `<Part>` is free). ETags are compared without their quotes, whichever way they were escaped.
 * @internal
 */
export function parseCompleteBody(doc: XmlDocument): CompletePart[] {
  const root = xmlRoot(doc, 'CompleteMultipartUpload')
  xmlOnly(root, ['Part'], 'CompleteMultipartUpload')
  const parts = xmlChildren(root, 'Part')
  if (parts.length > MAX_PARTS) throw new ApiError('MalformedXML', `at most ${MAX_PARTS} parts per upload`)
  return parts.map((p) => {
    xmlOnly(p, PART_ELEMENTS, 'Part')
    const num = xmlText(p, 'PartNumber')
    const etag = xmlText(p, 'ETag')
    if (num === undefined || etag === undefined) throw new ApiError('MalformedXML', 'each <Part> needs <PartNumber> and <ETag>')
    if (!/^[0-9]{1,5}$/.test(num)) throw new ApiError('MalformedXML', `invalid <PartNumber>: ${num.slice(0, 20)}`)
    const partNumber = Number(num)
    checkPartNumber(partNumber)
    const out: CompletePart = { partNumber, etag: completePartEtag(etag) }
    for (const alg of CHECKSUM_ALGORITHMS) {
      const value = xmlText(p, `Checksum${alg}`)?.trim()
      if (value === undefined) continue
      if (decodeBase64Exact(value, CHECKSUM_LENGTH[alg]) === undefined) {
        throw new ApiError('InvalidRequest', `Value for Checksum${alg} of part ${partNumber} is invalid.`)
      }
      out.checksums = { ...out.checksums, [alg]: value }
    }
    return out
  })
}

export async function handleCompleteMultipartUpload(ctx: BucketCtx, ep: { key: string; uploadId: string }): Promise<ApiResponse> {
  const uploadId = parseUploadId(ep.uploadId)
  const doc = await readXmlBody(ctx.body, MAX_COMPLETE_BODY)
  await ctx.bodyResult
  const listed = parseCompleteBody(doc)
  const g = ctx.garage
  // The part rows are read with the upload (same round trip): they only need its id.
  const partRows = readPartRows(g, uploadId)
  partRows.catch(() => undefined)
  const upload = await getUpload(g, ctx.bucketId, ep.key, uploadId)
  checkCompleteKey(ctx, upload)
  // If-None-Match / If-Match: refused at once when already false, checked again at commit.
  const condition = parseWriteCondition(ctx.req.headers)
  if (condition !== undefined) checkWriteCondition(condition, currentObject(upload.object, uploadId))
  if (listed.length === 0) throw new ApiError('MalformedXML', 'You must specify at least one part')
  for (let i = 1; i < listed.length; i++) {
    if ((listed[i] as (typeof listed)[number]).partNumber <= (listed[i - 1] as (typeof listed)[number]).partNumber) {
      throw new ApiError(
        'InvalidPartOrder',
        'The list of parts was not in ascending order. Parts must be ordered by part number.',
      )
    }
  }
  const have = finishedParts(uploadParts(await partRows))
  const chosen = listed.map((l) => {
    const p = have.get(l.partNumber)
    if (p === undefined || p.etag !== l.etag) {
      throw new ApiError(
        'InvalidPart',
        `One or more of the specified parts could not be found (part ${l.partNumber}). The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.`,
      )
    }
    const stored = parsePartChecksum(p.checksum)
    for (const [alg, value] of Object.entries(l.checksums ?? {}) as [ChecksumAlgorithm, string][]) {
      if (stored === undefined || stored.algorithm !== alg || stored.value !== value) {
        throw new ApiError(
          'InvalidPart',
          `One or more of the specified parts could not be found (part ${l.partNumber}). The specified Checksum${alg} does not match the part's checksum.`,
        )
      }
    }
    return p
  })
  // The object checksum, from the part checksums (SSE-C objects get none: it would need sealing;
  // SSE-S3 keeps metadata in clear).
  const checksumSettings = uploadChecksum(upload)
  let objectChecksum: ObjectMeta['checksum']
  const sealed = upload.version.state.encryption !== undefined && !isSseS3(upload.version.state.encryption)
  if (checksumSettings !== undefined && !sealed) {
    const partSums = chosen.map((p) => {
      const stored = parsePartChecksum(p.checksum)
      if (stored === undefined || stored.algorithm !== checksumSettings.algorithm) {
        throw new ApiError(
          'InvalidPart',
          `Part ${p.partNumber} has no ${checksumSettings.algorithm} checksum; upload it again with that checksum.`,
        )
      }
      return { checksum: Buffer.from(stored.value, 'base64'), size: p.size }
    })
    objectChecksum = {
      algorithm: checksumSettings.algorithm,
      value: combinePartChecksums(checksumSettings, partSums),
      type: checksumSettings.type,
    }
    // A client may state the object's checksum on Complete: it must be the one we combined.
    const stated = ctx.checksums.expected[checksumSettings.algorithm]
    if (typeof stated === 'string' && stated.replace(/-\d+$/, '') !== objectChecksum.value.replace(/-\d+$/, '')) {
      throw new ApiError('BadDigest', `The ${checksumSettings.algorithm} you specified did not match the calculated checksum.`)
    }
  }
  const minPartSize = ctx.settings.minPartSize ?? MIN_PART_SIZE
  for (let i = 0; i < chosen.length - 1; i++) {
    const p = chosen[i] as (typeof chosen)[number]
    if (p.size < minPartSize) {
      throw new ApiError(
        'EntityTooSmall',
        `Your proposed upload is smaller than the minimum allowed size (part ${p.partNumber})`,
        {
          extra: { ProposedSize: String(p.size), MinSizeAllowed: String(minPartSize), PartNumber: String(p.partNumber) },
        },
      )
    }
  }

  // The key's row as getUpload read it (at quorum) for this request: no second read.
  await checkQuotas(
    g,
    ctx.bucketId,
    ctx.bucketParams.quotas.v,
    upload.object,
    chosen.reduce((s, p) => s + p.size, 0),
  )

  // The final version: the blocks of the chosen part versions, renumbered 1..N. Each from the
  // local copy when it covers the whole part, the others in one batched quorum read (a few calls
  // per node), not one read per part.
  const partVersions = await readPartVersions(g, chosen)
  const blocks: VersionBlock[] = []
  partVersions.forEach((v, i) => {
    if (v === undefined || v.deleted) throw new ApiError('InvalidPart', `Part ${(chosen[i] as MpuPart).partNumber} is gone`)
    for (const b of v.blocks) blocks.push(versionBlock(i + 1, b.offset, b.hash, b.size))
  })
  const refs = uniqueHashes(blocks).map((block) => ({ block, version: uploadId, deleted: false }))
  // The final version with all its references in one round trip (one request per node, merged
  // there in one transaction), the version first on every node (TableBatch.insertInOrder).
  await g.tableBatch.insertInOrder([
    batchItem(g.versionTable, [
      {
        uuid: uploadId,
        deleted: false,
        blocks,
        partsEtags: chosen.map((p, i): [number, string] => [i + 1, p.etag]),
        backlink: { t: 'object', bucketId: ctx.bucketId, key: ep.key },
      },
    ]),
    batchItem(g.blockRefTable, refs),
  ])

  const md5 = createHash('md5')
  for (const p of chosen) md5.update(Buffer.from(p.etag, 'hex'))
  const etag = `${md5.digest('hex')}-${chosen.length}`
  const meta: ObjectMeta = { size: chosen.reduce((s, p) => s + p.size, 0), etag, headers: upload.version.state.headers }
  if (objectChecksum !== undefined) meta.checksum = objectChecksum
  // SSE-C: the headers sealed at creation stay sealed; the key is optional here, checked if given.
  // SSE-S3: the data key wrapped at creation is the object's.
  const encryption = upload.version.state.encryption
  if (encryption !== undefined) meta.encryption = encryption
  const first = blocks[0]
  const data: ObjectData =
    first === undefined ? { t: 'inline', meta, bytes: new Uint8Array(0) } : { t: 'firstBlock', meta, hash: first.hash }
  const tagging = initialTagging(upload.version.state.tags, upload.version.ts)
  await commitVersion(g, ctx.bucketId, ep.key, condition, {
    uuid: uploadId,
    ts: upload.version.ts,
    state: tagging === undefined ? { t: 'complete', data } : { t: 'complete', data, tagging },
    ...stampOf(upload.version),
  })
  // The upload row is deleted by the object table's hook, on every replica, now that the upload's
  // version is complete (as Garage does); that deletes every part version, and the final version
  // holds its own references. Not awaited here: one round trip less.

  // The object's URL as the client addressed it (path-style or virtual-hosted), as AWS gives it;
  // some clients (minio-js) require the element.
  const host = ctx.req.headers.host ?? 'localhost'
  const proto = ctx.req.headers['x-forwarded-proto']?.toString().split(',')[0]?.trim() || 'http'
  const xml = renderXml('CompleteMultipartUploadResult', {
    Location: `${proto}://${host}${(ctx.req.url ?? '/').split('?')[0]}`,
    Bucket: ctx.bucketName,
    Key: ep.key,
    ETag: `"${etag}"`,
    ...(objectChecksum === undefined
      ? {}
      : { [`Checksum${objectChecksum.algorithm}`]: objectChecksum.value, ChecksumType: objectChecksum.type }),
  })
  const out: Record<string, string> = {
    'content-type': 'application/xml',
    'x-amz-version-id': versionIdOf(upload.version, ctx.bucketParams),
  }
  if (encryption !== undefined) {
    Object.assign(out, isSseS3(encryption) ? sseS3ResponseHeaders() : sseCResponseHeaders(encryption.keyMd5))
  }
  return { status: 200, headers: out, body: xml }
}

/**
 * A finished part's version: the local copy when it accounts for every byte of the part (a
 * version's block list only grows, so it is then the row a quorum read would return, as GET's
 * readVersion), otherwise read at quorum.
 */
async function readPartVersions(
  garage: Garage,
  parts: readonly (MpuPart & { size: number })[],
): Promise<(VersionEntry | undefined)[]> {
  const out: (VersionEntry | undefined)[] = parts.map((part) => {
    const local = garage.versionTable.data.read(part.version, EMPTY)
    const whole = local !== undefined && !local.deleted && local.blocks.reduce((n, b) => n + b.size, 0) === part.size
    return whole ? local : undefined
  })
  const missing = out.flatMap((v, i) => (v === undefined ? [i] : []))
  if (missing.length === 0) return out
  const read = await garage.versionTable.getMany(
    missing.map((i) => ({ partitionKey: (parts[i] as MpuPart).version, sortKey: EMPTY })),
  )
  missing.forEach((i, n) => {
    out[i] = read[n]
  })
  return out
}

/** A key given to CompleteMultipartUpload must be the upload's (AWS does not require one). */
function checkCompleteKey(ctx: BucketCtx, upload: Upload): void {
  if (parseCustomerKey(ctx.req.headers) === undefined) return
  uploadCipher(ctx, upload)
}

/** The versioning flag and lock an upload's version was created with, carried by every later write of it. */
function stampOf(v: ObjectVersion): Pick<ObjectVersion, 'keep' | 'lock'> {
  const out: Pick<ObjectVersion, 'keep' | 'lock'> = {}
  if (v.keep === true) out.keep = true
  if (v.lock !== undefined) out.lock = v.lock
  return out
}

function uniqueHashes(blocks: VersionBlock[]): Hash[] {
  const seen = new Map<string, Hash>()
  for (const b of blocks) seen.set(toHex(b.hash), b.hash)
  return [...seen.values()]
}

export async function handleAbortMultipartUpload(ctx: BucketCtx, ep: { key: string; uploadId: string }): Promise<ApiResponse> {
  const uploadId = parseUploadId(ep.uploadId)
  const g = ctx.garage
  const upload = await getUpload(g, ctx.bucketId, ep.key, uploadId)
  await g.objectTable.insert({
    bucketId: ctx.bucketId,
    key: ep.key,
    versions: [{ uuid: uploadId, ts: upload.version.ts, state: { t: 'aborted' }, ...stampOf(upload.version) }],
  })
  // The object table's hook deletes the upload too; doing it here does not wait for its queue.
  await g.mpuTable.insert(deletedMpu(uploadId, upload.mpu.ts, ctx.bucketId, ep.key))
  return { status: 204, headers: {} }
}

function clampList(v: number | undefined): number {
  return v === undefined ? MAX_LIST : Math.min(Math.max(v, 1), MAX_LIST)
}

export async function handleListParts(
  ctx: BucketCtx,
  ep: { key: string; uploadId: string; maxParts?: number; partNumberMarker?: number },
  owner: Owner,
): Promise<ApiResponse> {
  const uploadId = parseUploadId(ep.uploadId)
  const marker = ep.partNumberMarker ?? 0
  if (marker > MAX_PART_NUMBER) {
    throw new ApiError('InvalidArgument', `part-number-marker must be at most ${MAX_PART_NUMBER}`)
  }
  const maxParts = clampList(ep.maxParts)
  const upload = await getUpload(ctx.garage, ctx.bucketId, ep.key, uploadId)
  const settings = uploadChecksum(upload)
  const { parts: page, truncated } = await listFinishedParts(ctx.garage, upload, marker, maxParts)
  const last = page[page.length - 1]
  const person = { ID: owner.id, DisplayName: owner.displayName }
  const xml = renderXml('ListPartsResult', {
    Bucket: ctx.bucketName,
    Key: ep.key,
    UploadId: ep.uploadId,
    PartNumberMarker: marker,
    ...(last !== undefined ? { NextPartNumberMarker: last.partNumber } : {}),
    MaxParts: maxParts,
    IsTruncated: truncated,
    Part: page.map((p) => {
      const checksum = parsePartChecksum(p.checksum)
      return {
        PartNumber: p.partNumber,
        LastModified: isoDate(p.ts),
        ETag: `"${p.etag}"`,
        Size: p.size,
        ...(checksum !== undefined ? { [`Checksum${checksum.algorithm}`]: checksum.value } : {}),
      }
    }),
    Initiator: person,
    Owner: person,
    StorageClass: 'STANDARD',
    ...(settings === undefined ? {} : { ChecksumAlgorithm: settings.algorithm, ChecksumType: settings.type }),
  })
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: xml }
}

export interface ListUploadsParams {
  delimiter?: string
  encodingType?: string
  keyMarker?: string
  maxUploads?: number
  prefix?: string
  uploadIdMarker?: string
}

interface ListedUpload {
  key: string
  uploadId: string
  ts: number
}

const cmpKey = (a: string, b: string): number => Buffer.compare(utf8(a), utf8(b))

const hasMultipartUpload = (o: ObjectEntry): boolean => o.versions.some((v) => v.state.t === 'uploading' && v.state.multipart)

/**
 * Lists the uploads in progress, by key, then by initiation time within a key. A page ends after
 * `max-uploads` uploads and common prefixes; the next one starts after (key-marker,
 * upload-id-marker), or after every upload of key-marker when no upload-id-marker is given.
 */
export async function listMultipartUploads(
  garage: Garage,
  bucketId: Uuid,
  p: ListUploadsParams,
): Promise<{ uploads: ListedUpload[]; commonPrefixes: string[]; truncated: boolean; next?: ListedUpload | string }> {
  const prefix = p.prefix ?? ''
  const delimiter = p.delimiter === '' ? undefined : p.delimiter
  const keyMarker = p.keyMarker === '' ? undefined : p.keyMarker
  const uploadIdMarker = keyMarker === undefined || p.uploadIdMarker === '' ? undefined : p.uploadIdMarker
  const max = clampList(p.maxUploads)
  const uploads: ListedUpload[] = []
  const commonPrefixes: string[] = []
  let last: ListedUpload | string | undefined
  const full = () => uploads.length + commonPrefixes.length >= max
  const done = (truncated: boolean) => ({ uploads, commonPrefixes, truncated, ...(truncated ? { next: last } : {}) })

  let cursor = utf8(prefix)
  if (keyMarker !== undefined && cmpKey(keyMarker, prefix) > 0) cursor = utf8(keyMarker)
  for (;;) {
    const page = await garage.objectTable.getRange(bucketId, { start: cursor, limit: MAX_LIST, filter: hasMultipartUpload })
    if (page.length === 0) return done(false)
    let jumped = false
    for (const o of page) {
      const key = o.key
      if (!key.startsWith(prefix)) {
        if (cmpKey(key, prefix) > 0) return done(false)
        continue
      }
      const d = delimiter === undefined ? -1 : key.indexOf(delimiter, prefix.length)
      if (d >= 0) {
        const cp = key.slice(0, d + (delimiter as string).length)
        if (keyMarker === undefined || cmpKey(cp, keyMarker) > 0) {
          if (full()) return done(true)
          commonPrefixes.push(cp)
          last = cp
        }
        const end = prefixEnd(utf8(cp))
        if (end === undefined) return done(false)
        cursor = end
        jumped = true
        break
      }
      if (keyMarker !== undefined) {
        const c = cmpKey(key, keyMarker)
        if (c < 0 || (c === 0 && uploadIdMarker === undefined)) continue
      }
      let ids = o.versions
        .filter((v) => v.state.t === 'uploading' && v.state.multipart)
        .map((v) => ({ key, uploadId: toHex(v.uuid), ts: v.ts }))
      if (keyMarker !== undefined && uploadIdMarker !== undefined && key === keyMarker) {
        const at = ids.findIndex((u) => u.uploadId === uploadIdMarker.toLowerCase())
        ids = at >= 0 ? ids.slice(at + 1) : ids.filter((u) => u.uploadId > uploadIdMarker.toLowerCase())
      }
      for (const u of ids) {
        if (full()) return done(true)
        uploads.push(u)
        last = u
      }
      cursor = keySuccessor(key)
    }
    if (!jumped && page.length < MAX_LIST) return done(false)
  }
}

function keySuccessor(key: string): Uint8Array {
  const b = utf8(key)
  const out = new Uint8Array(b.length + 1)
  out.set(b)
  return out
}

export async function handleListMultipartUploads(ctx: BucketCtx, p: ListUploadsParams, owner: Owner): Promise<ApiResponse> {
  if (p.encodingType !== undefined && p.encodingType !== 'url') {
    throw new ApiError('InvalidArgument', 'Invalid Encoding Method specified in Request')
  }
  const url = p.encodingType === 'url'
  const enc = (s: string) => (url ? uriEncode(s) : s)
  const r = await listMultipartUploads(ctx.garage, ctx.bucketId, p)
  const person = { ID: owner.id, DisplayName: owner.displayName }
  const next = r.next
  const xml = renderXml('ListMultipartUploadsResult', {
    Bucket: ctx.bucketName,
    KeyMarker: enc(p.keyMarker ?? ''),
    UploadIdMarker: p.uploadIdMarker ?? '',
    ...(next !== undefined
      ? typeof next === 'string'
        ? { NextKeyMarker: enc(next), NextUploadIdMarker: '' }
        : { NextKeyMarker: enc(next.key), NextUploadIdMarker: next.uploadId }
      : {}),
    Prefix: enc(p.prefix ?? ''),
    ...(p.delimiter !== undefined ? { Delimiter: enc(p.delimiter) } : {}),
    MaxUploads: clampList(p.maxUploads),
    IsTruncated: r.truncated,
    ...(url ? { EncodingType: 'url' } : {}),
    Upload: r.uploads.map((u) => ({
      Key: enc(u.key),
      UploadId: u.uploadId,
      Initiator: person,
      Owner: person,
      StorageClass: 'STANDARD',
      Initiated: isoDate(u.ts),
    })),
    CommonPrefixes: r.commonPrefixes.map((c) => ({ Prefix: enc(c) })),
  })
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: xml }
}
