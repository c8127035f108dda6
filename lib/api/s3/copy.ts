/**
 * CopyObject and UploadPartCopy (port of garage_api_s3::copy). A copy never rewrites data it can
 * share: the new version lists the source's block hashes and references them (their reference
 * counts go up); inline objects copy their bytes. UploadPartCopy re-uses the source blocks that
 * fall entirely within the requested range, and re-reads, slices and writes the edge blocks.
 */
import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { Readable } from 'node:stream'
import type { ObjectEntry, ObjectMeta, ObjectVersion } from '../../model/s3/object-table.ts'
import { versionBlock } from '../../model/s3/version-table.ts'
import { blake2sum, genUuid, type Hash, toHex, type Uuid, utf8 } from '../../util/data.ts'
import { GarageError, ModelError } from '../../util/errors.ts'
import { isoDate } from '../../util/time.ts'
import { ApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import { Checksummer, checksumHeaderName } from '../common/signature/checksum.ts'
import type { BucketCtx } from './context.ts'
import { type ObjectCipher, randomEtag, SSE_HEADER } from './encryption.ts'
import { blocksInRange, type currentVersion, readAhead, streamBlocks } from './get.ts'
import {
  beginPart,
  checkPartNumber,
  getUpload,
  parsePartChecksum,
  parseUploadId,
  uploadCipher,
  uploadChecksum,
  writePart,
} from './multipart.ts'
import { checkS3BucketName, checkS3ObjectKey } from './names.ts'
import { checkKey, checkQuotas, extractMetadataHeaders, newVersionStamp, saveStream } from './put.ts'
import { readableVersion, versionIdOf, versioningOf } from './versioning.ts'
import { ifMatchAccepts, ifNoneMatchMatches } from './etag.ts'
import { openObjectCipher, type WriteEncryption, writeEncryption, writeEncryptionHeaders } from './sse-s3.ts'
import { renderXml } from './xml.ts'
import { parseCannedAcl } from './acl.ts'
import { initialTagging, parseTaggingHeader, type Tags } from './tagging.ts'
import { checkWriteCondition, commitVersion, currentObject, parseWriteCondition, type WriteCondition } from './conditional.ts'

const EMPTY = new Uint8Array(0)

type SourceVersion = NonNullable<ReturnType<typeof currentVersion>>

interface CopySource {
  bucketId: Uuid
  key: string
  version: SourceVersion
  /** The source version's id, as `x-amz-copy-source-version-id` gives it. */
  versionId: string
  /** The copy source named its version (`?versionId=`). */
  explicitVersion: boolean
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v.join(',') : v
}

/**
 * Splits `x-amz-copy-source` (`bucket/key` or `/bucket/key`, URL-encoded, with an optional
 * `?versionId=`, the source version) into bucket, key and version id.
 * @throws {ApiError} `InvalidArgument` for a malformed value, `InvalidBucketName` or
 *   `KeyTooLongError` for names no object can have.
 */
export function parseCopySource(raw: string): { bucket: string; key: string; versionId?: string } {
  const q = raw.indexOf('?')
  const path = (q < 0 ? raw : raw.slice(0, q)).replace(/^\/+/, '')
  const versionId = q < 0 ? undefined : (new URLSearchParams(raw.slice(q + 1)).get('versionId') ?? undefined)
  let decoded: string
  try {
    decoded = decodeURIComponent(path)
  } catch (err) {
    throw new ApiError('InvalidArgument', 'Invalid percent-encoding in x-amz-copy-source', { cause: err })
  }
  const slash = decoded.indexOf('/')
  if (slash <= 0 || slash === decoded.length - 1) {
    throw new ApiError('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey')
  }
  const source = { bucket: decoded.slice(0, slash), key: decoded.slice(slash + 1) }
  // Checked before the source is looked up, as the request's own bucket and key are.
  checkS3BucketName(source.bucket)
  checkS3ObjectKey(source.key, 'Copy source key')
  return versionId === undefined ? source : { ...source, versionId }
}

/** Resolves the copy source for the request's key, which must be allowed to read its bucket. */
async function getCopySource(ctx: BucketCtx): Promise<CopySource> {
  const raw = headerValue(ctx.req.headers, 'x-amz-copy-source')
  if (raw === undefined) throw new ApiError('InvalidArgument', 'Missing x-amz-copy-source')
  const { bucket, key, versionId } = parseCopySource(raw)
  const g = ctx.garage
  // The same resolution and permission check as the request's own bucket (model/helper/access.ts).
  const { id: bucketId, params } = await g.access.resolveBucket(bucket, ctx.apiKey).catch((err: unknown) => {
    if (err instanceof ModelError && err.modelCode === 'NoSuchBucket') {
      throw new ApiError('NoSuchBucket', err.message, { cause: err, extra: { BucketName: bucket } })
    }
    throw err
  })
  // Copies need a key (anonymous requests never reach them: policy.ts POLICY_GRANTABLE).
  if (ctx.apiKey === undefined) throw new ApiError('AccessDenied', 'Access Denied')
  g.access.checkBucketPermission(ctx.apiKey, bucketId, 'read', `Reading from bucket ${bucket} is not allowed for this key`)
  const row = await g.objectTable.get(bucketId, utf8(key))
  let version: SourceVersion
  try {
    version = readableVersion(row, versionId, params) as SourceVersion
  } catch (err) {
    if (err instanceof ApiError && err.code === 'NoSuchKey') {
      throw new ApiError('NoSuchKey', 'The specified key does not exist.', { cause: err, extra: { Key: key } })
    }
    if (err instanceof ApiError && err.code === 'MethodNotAllowed') {
      throw new ApiError(
        'InvalidRequest',
        'The source of a copy request may not specifically refer to a delete marker by version id.',
        {
          cause: err,
        },
      )
    }
    throw err
  }
  return { bucketId, key, version, versionId: versionIdOf(version, params), explicitVersion: versionId !== undefined }
}

function parseDate(v: string | undefined): number | undefined {
  if (v === undefined) return undefined
  const t = Date.parse(v)
  return Number.isNaN(t) ? undefined : t
}

/**
 * The `x-amz-copy-source-if-*` conditions, as AWS evaluates them: if-match holding makes
 * if-unmodified-since irrelevant, and if-none-match (when present) decides over
 * if-modified-since. Unparseable dates are ignored. Throws PreconditionFailed.
 */
export function checkCopyPreconditions(headers: IncomingHttpHeaders, etag: string, lastModifiedMsec: number): void {
  const lastModified = Math.floor(lastModifiedMsec / 1000) * 1000
  const ifMatch = headerValue(headers, 'x-amz-copy-source-if-match')
  const ifNoneMatch = headerValue(headers, 'x-amz-copy-source-if-none-match')
  const ifModifiedSince = parseDate(headerValue(headers, 'x-amz-copy-source-if-modified-since'))
  const ifUnmodifiedSince = parseDate(headerValue(headers, 'x-amz-copy-source-if-unmodified-since'))
  let ok = true
  if (ifMatch !== undefined) ok = ifMatchAccepts(ifMatch, etag)
  else if (ifUnmodifiedSince !== undefined) ok = lastModified <= ifUnmodifiedSince
  if (ok && ifNoneMatch !== undefined) ok = !ifNoneMatchMatches(ifNoneMatch, etag)
  else if (ok && ifModifiedSince !== undefined) ok = lastModified > ifModifiedSince
  if (!ok) throw new ApiError('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold')
}

export async function handleCopyObject(ctx: BucketCtx, destKey: string): Promise<ApiResponse> {
  checkKey(destKey)
  parseCannedAcl(ctx.req.headers, 'object')
  const directive = (headerValue(ctx.req.headers, 'x-amz-metadata-directive') ?? 'COPY').trim().toUpperCase()
  if (directive !== 'COPY' && directive !== 'REPLACE') {
    throw new ApiError('InvalidArgument', 'Unknown metadata directive.', { extra: { ArgumentName: 'x-amz-metadata-directive' } })
  }
  const tagDirective = (headerValue(ctx.req.headers, 'x-amz-tagging-directive') ?? 'COPY').trim().toUpperCase()
  if (tagDirective !== 'COPY' && tagDirective !== 'REPLACE') {
    throw new ApiError('InvalidArgument', 'Unknown tagging directive.', { extra: { ArgumentName: 'x-amz-tagging-directive' } })
  }
  const replacedTags = parseTaggingHeader(ctx.req.headers)
  const g = ctx.garage
  const source = await getCopySource(ctx)
  const srcData = source.version.state.data
  // x-amz-tagging-directive: the source's tags (COPY, the default) or those of x-amz-tagging.
  const tags = tagDirective === 'COPY' ? source.version.state.tagging?.tags : replacedTags
  // SSE-C: the source's key comes in x-amz-copy-source-server-side-encryption-customer-*, the
  // destination's in x-amz-server-side-encryption-customer-*. SSE-S3: the source is opened with
  // the node's master key; the destination is encrypted as its headers or, failing them, its
  // bucket's default say ("you can also specify the encryption for the destination [...] If you
  // don't, the destination bucket's default encryption is used", S3 API reference, CopyObject).
  const srcCipher = sourceCipher(ctx, source)
  const destEnc = writeEncryption(ctx.req.headers, {
    bucketDefault: ctx.bucketParams.encryption.v,
    keyring: ctx.settings.sseKeyring,
  })
  const srcMeta = srcCipher === undefined ? srcData.meta : srcCipher.openObjectMeta(srcData.meta)
  checkCopyPreconditions(ctx.req.headers, srcMeta.etag, source.version.ts)
  // An explicit x-amz-server-side-encryption changes the encryption attributes: copying an SSE-S3
  // object onto itself with it re-encrypts it under a new data key and the current master key
  // (how objects move to a rotated key, docs/design/sse-s3.md).
  const sameEncryption =
    srcCipher === undefined
      ? destEnc === undefined
      : srcCipher.kind.t === 'sse-c'
        ? destEnc?.t === 'sse-c' && destEnc.customer.keyMd5.equals(srcCipher.kind.keyMd5)
        : destEnc?.t === 'sse-s3' && headerValue(ctx.req.headers, SSE_HEADER) === undefined
  // Restoring an older version onto its own key, in a versioned bucket, is a copy AWS allows.
  const restoring = source.explicitVersion && versioningOf(ctx.bucketParams) === 'Enabled'
  if (
    directive === 'COPY' &&
    sameEncryption &&
    !restoring &&
    Buffer.compare(source.bucketId, ctx.bucketId) === 0 &&
    source.key === destKey
  ) {
    throw new ApiError(
      'InvalidRequest',
      "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
    )
  }
  const meta: ObjectMeta =
    directive === 'REPLACE' ? { ...srcMeta, headers: extractMetadataHeaders(ctx.req.headers, ctx.contentEncoding) } : srcMeta

  const dest = await g.objectTable.get(ctx.bucketId, utf8(destKey))
  // If-None-Match / If-Match on the destination: refused at once when false, checked again at commit.
  const condition = parseWriteCondition(ctx.req.headers)
  if (condition !== undefined) checkWriteCondition(condition, currentObject(dest))
  await checkQuotas(g, ctx.bucketId, ctx.bucketParams.quotas.v, dest, meta.size)
  if (srcCipher !== undefined || destEnc !== undefined) {
    // Each version has its own key: encrypted data is never shared, it is decrypted and
    // re-encrypted on its way through.
    return copyThrough(ctx, source, srcCipher, meta, destKey, destEnc, dest, condition, tags)
  }
  const ts = g.nextTimestamp(dest === undefined ? undefined : Math.max(0, ...dest.versions.map((v) => v.ts)))
  const uuid = genUuid()
  const bucketId = ctx.bucketId
  const tagging = initialTagging(tags, ts)
  const tagged = tagging === undefined ? {} : { tagging }
  const stamp = newVersionStamp(ctx, undefined)
  if (srcData.t === 'inline') {
    const version: ObjectVersion = {
      uuid,
      ts,
      state: { t: 'complete', data: { t: 'inline', meta, bytes: srcData.bytes }, ...tagged },
      ...stamp.fields,
    }
    await commitVersion(g, bucketId, destKey, condition, version)
  } else {
    const srcVersion = await g.versionTable.get(source.version.uuid, EMPTY)
    if (srcVersion === undefined || srcVersion.deleted) {
      throw new GarageError('GARAGE_ERR_INTERNAL', 'the source version is gone; it was overwritten, retry')
    }
    // Announce the copy, list the blocks and reference them before the version becomes visible;
    // completing it last matters when copying onto itself, as that drops the source version.
    g.uploads.begin(uuid, bucketId, destKey, { ts })
    try {
      const uploading: ObjectVersion = {
        uuid,
        ts,
        state: { t: 'uploading', multipart: false, headers: meta.headers },
        ...stamp.fields,
      }
      await g.objectTable.insert({ bucketId, key: destKey, versions: [uploading] })
      await g.versionTable.insert({
        uuid,
        deleted: false,
        blocks: srcVersion.blocks,
        partsEtags: srcVersion.partsEtags,
        backlink: { t: 'object', bucketId, key: destKey },
      })
      const seen = new Set<string>()
      const refs = []
      for (const b of srcVersion.blocks) {
        const h = toHex(b.hash)
        if (seen.has(h)) continue
        seen.add(h)
        refs.push({ block: b.hash, version: uuid, deleted: false })
      }
      for (let i = 0; i < refs.length; i += 1000) await g.blockRefTable.insertMany(refs.slice(i, i + 1000))
      const complete: ObjectVersion = {
        uuid,
        ts,
        state: { t: 'complete', data: { t: 'firstBlock', meta, hash: srcData.hash }, ...tagged },
        ...stamp.fields,
      }
      await commitVersion(g, bucketId, destKey, condition, complete)
    } catch (err) {
      await g.objectTable.insert({ bucketId, key: destKey, versions: [{ uuid, ts, state: { t: 'aborted' }, ...stamp.fields }] })
      throw err
    } finally {
      g.uploads.end(uuid)
    }
  }
  const xml = renderXml('CopyObjectResult', { ETag: `"${meta.etag}"`, LastModified: isoDate(ts) })
  return {
    status: 200,
    headers: {
      'content-type': 'application/xml',
      'x-amz-version-id': versionIdOf({ uuid, ts, state: { t: 'aborted' }, ...stamp.fields }, ctx.bucketParams),
      'x-amz-copy-source-version-id': source.versionId,
    },
    body: xml,
  }
}

/**
 * The cipher that opens the copy source: checked against the request's copy-source key (SSE-C),
 * or unwrapped with the node's master key (SSE-S3).
 */
function sourceCipher(ctx: BucketCtx, source: CopySource): ObjectCipher | undefined {
  const at = { bucketId: source.bucketId, versionId: source.version.uuid, key: source.key }
  return openObjectCipher(ctx.req.headers, source.version.state.data.meta.encryption, at, ctx.settings.sseKeyring, true)
}

/** The plaintext of a source version, streamed (decrypted when `cipher` is given). */
async function* sourcePlaintext(ctx: BucketCtx, source: CopySource, cipher: ObjectCipher | undefined) {
  const data = source.version.state.data
  if (data.t === 'inline') {
    if (data.bytes.length > 0) yield cipher === undefined ? Buffer.from(data.bytes) : cipher.decryptBlob(data.bytes)
    return
  }
  for await (const chunk of streamBlocks(ctx.garage, source.version.uuid, 0, data.meta.size - 1, cipher)) {
    yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
  }
}

/** CopyObject by reading the source and saving it again as a new object (encryption on either side). */
async function copyThrough(
  ctx: BucketCtx,
  source: CopySource,
  srcCipher: ObjectCipher | undefined,
  meta: ObjectMeta,
  destKey: string,
  destEnc: WriteEncryption | undefined,
  /** The destination's current row, already read by the caller. */
  dest: ObjectEntry | undefined,
  condition: WriteCondition | undefined,
  tags: Tags | undefined,
): Promise<ApiResponse> {
  const md5 = createHash('md5')
  const plaintext = sourcePlaintext(ctx, source, srcCipher)
  const body = Readable.from(
    (async function* () {
      for await (const chunk of plaintext) {
        md5.update(chunk)
        yield chunk
      }
    })(),
  )
  let done: (() => void) | undefined
  const ended = new Promise<void>((resolve) => {
    done = resolve
  })
  body.once('end', () => done?.())
  // `saveStream` reads the result only after the whole body went through.
  const result = ended.then(() => ({
    md5: md5.digest(),
    checksums: meta.checksum === undefined ? {} : { [meta.checksum.algorithm]: meta.checksum.value },
    trailers: {},
  }))
  const saved = await saveStream(ctx.garage, ctx.bucketId, destKey, meta.headers, body, result, {
    checksumAlgorithm: meta.checksum?.algorithm,
    quotas: ctx.bucketParams.quotas.v,
    encryption: destEnc,
    existing: Promise.resolve(dest),
    condition,
    tags,
    stamp: newVersionStamp(ctx, undefined),
  })
  const xml = renderXml('CopyObjectResult', { ETag: `"${saved.meta.etag}"`, LastModified: isoDate(saved.ts) })
  const out: Record<string, string> = {
    'content-type': 'application/xml',
    'x-amz-version-id': saved.versionIdText ?? toHex(saved.versionId),
    'x-amz-copy-source-version-id': source.versionId,
  }
  Object.assign(out, writeEncryptionHeaders(destEnc))
  return { status: 200, headers: out, body: xml }
}

/** Parses `x-amz-copy-source-range: bytes=first-last` against the source size. */
export function parseCopyRange(header: string | undefined, size: number): { start: number; end: number } {
  if (header === undefined) return { start: 0, end: size - 1 }
  const m = /^\s*bytes=(\d+)-(\d+)\s*$/.exec(header)
  const start = Number(m?.[1])
  const end = Number(m?.[2])
  if (m === null || !Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start > end) {
    throw new ApiError('InvalidArgument', `Range specified is not valid for source object of size: ${size}`, {
      extra: { ArgumentName: 'x-amz-copy-source-range', ArgumentValue: header },
    })
  }
  // A well-formed range that reaches past the source is InvalidRange, as S3 answers it (and as
  // the s3-tests conformance suite checks: test_multipart_copy_invalid_range).
  if (end >= size) {
    throw new ApiError('InvalidRange', 'The requested range is not satisfiable', {
      extra: { RangeRequested: header.trim(), ActualObjectSize: String(size) },
    })
  }
  return { start, end }
}

/** One piece of a copied part: a whole source block re-used, or bytes to write as a new block. */
type Piece = { hash: Hash; from: number; to: number; size: number; whole: boolean } | { bytes: Uint8Array }

export async function handleUploadPartCopy(
  ctx: BucketCtx,
  ep: { key: string; partNumber: number; uploadId: string },
): Promise<ApiResponse> {
  checkPartNumber(ep.partNumber)
  const uploadId = parseUploadId(ep.uploadId)
  const g = ctx.garage
  const [source, upload] = await Promise.all([getCopySource(ctx), getUpload(g, ctx.bucketId, ep.key, uploadId, ep.partNumber)])
  const srcData = source.version.state.data
  // Encryption on either side: nothing is re-used, every byte is decrypted and/or encrypted again.
  const srcCipher = sourceCipher(ctx, source)
  const destCipher = uploadCipher(ctx, upload)
  const transcode = srcCipher !== undefined || destCipher !== undefined
  checkCopyPreconditions(ctx.req.headers, srcData.meta.etag, source.version.ts)
  const size = srcData.meta.size
  if (size === 0) throw new ApiError('InvalidArgument', 'The source object is empty')
  const range = parseCopyRange(headerValue(ctx.req.headers, 'x-amz-copy-source-range'), size)

  const pieces: Piece[] = []
  if (srcData.t === 'inline') {
    const plain = srcCipher === undefined ? srcData.bytes : srcCipher.decryptBlob(srcData.bytes)
    pieces.push({ bytes: plain.subarray(range.start, range.end + 1) })
  } else {
    const v = await g.versionTable.get(source.version.uuid, EMPTY)
    if (v === undefined || v.deleted) {
      throw new GarageError('GARAGE_ERR_INTERNAL', 'the source version is gone; it was overwritten, retry')
    }
    for (const { block, from, to } of blocksInRange(v.blocks, range.start, range.end)) {
      const { hash, size } = block
      pieces.push({ hash, from, to, size, whole: !transcode && from === 0 && to === size })
    }
  }

  // An upload created with a checksum algorithm needs each part's checksum, copies included.
  const algorithm = uploadChecksum(upload)?.algorithm
  const part = await beginPart(g, upload, ep.partNumber)
  const done = await writePart(ctx, upload, part, async () => {
    const md5 = createHash('md5')
    const summer = algorithm === undefined ? undefined : new Checksummer([algorithm])
    let offset = 0
    const read = (p: Piece): Promise<Uint8Array> => ('bytes' in p ? Promise.resolve(p.bytes) : g.blockManager.getBlock(p.hash))
    for await (const [p, data] of readAhead(pieces, read)) {
      const bytes =
        'bytes' in p || p.whole
          ? data
          : srcCipher !== undefined
            ? srcCipher.decryptBlock(Buffer.from(data.buffer, data.byteOffset, data.byteLength), p.size, p.from, p.to)
            : data.subarray(p.from, p.to)
      md5.update(bytes)
      summer?.update(bytes)
      const reuse = !('bytes' in p) && p.whole
      const stored = reuse || destCipher === undefined ? bytes : destCipher.encryptBlock(bytes)
      const hash = reuse ? p.hash : blake2sum(stored)
      await g.versionTable.insert({
        uuid: part.version,
        deleted: false,
        blocks: [versionBlock(ep.partNumber, offset, hash, bytes.length)],
        partsEtags: [],
        backlink: { t: 'mpu', uploadId },
      })
      await g.blockRefTable.insert({ block: hash, version: part.version, deleted: false })
      if (!reuse) await g.blockManager.putBlock(hash, stored)
      offset += bytes.length
    }
    const checksum =
      algorithm === undefined || summer === undefined
        ? null
        : `${algorithm}:${(summer.digest()[algorithm] as Buffer).toString('base64')}`
    // SSE-C parts get random ETags; SSE-S3 and plaintext parts the MD5 of their data.
    return { etag: destCipher?.sealsMetadata === true ? randomEtag() : md5.digest('hex'), size: offset, checksum }
  })
  const partChecksum = parsePartChecksum(done.checksum)
  const xml = renderXml('CopyPartResult', {
    ETag: `"${done.etag}"`,
    LastModified: isoDate(part.ts),
    ...(partChecksum === undefined ? {} : { [`Checksum${partChecksum.algorithm}`]: partChecksum.value }),
  })
  const out: Record<string, string> = {
    'content-type': 'application/xml',
    'x-amz-copy-source-version-id': source.versionId,
  }
  if (destCipher !== undefined) Object.assign(out, destCipher.responseHeaders())
  if (partChecksum !== undefined) out[checksumHeaderName(partChecksum.algorithm)] = partChecksum.value
  return { status: 200, headers: out, body: xml }
}
