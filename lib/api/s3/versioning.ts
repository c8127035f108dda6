/**
 * S3 object versioning: the bucket's versioning state (Put/GetBucketVersioning), version ids,
 * reads and deletes of one version, delete markers, and ListObjectVersions. The data model is
 * the object row's list of versions (model/s3/object-table.ts): a version written while
 * versioning is enabled is kept (`keep`) until deleted by id; every other version is the key's
 * "null" version, which the next complete null version replaces. See docs/design/versioning.md.
 */
import { prefixEnd } from '../../db/db.ts'
import type { BucketParams, BucketVersioning } from '../../model/bucket-table.ts'
import type { Garage } from '../../model/garage.ts'
import type { ObjectEntry, ObjectVersion } from '../../model/s3/object-table.ts'
import { supersedes } from '../../model/s3/object-table.ts'
import { updateLww } from '../../util/crdt/crdt.ts'
import { bytesEqual, fromHex, genUuid, toHex, type Uuid, utf8 } from '../../util/data.ts'
import { httpDate, isoDate } from '../../util/time.ts'
import { ApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import type { BucketCtx } from './context.ts'
import { checkVersionDeletable } from './object-lock.ts'
import { checkS3ObjectKey } from './names.ts'
import { readXmlBody, renderXml, renderXmlFragment, type XmlDocument, xmlOnly, xmlRoot, xmlText } from './xml.ts'
import { sendObjectRow, writeInOneRound } from './one-round.ts'

/** What versioning reads of a bucket's parameters. */
export type VersioningParams = Pick<BucketParams, 'versioning'>

/** The bucket's versioning state; undefined for a bucket never versioned. */
export function versioningOf(p: VersioningParams): BucketVersioning | undefined {
  return p.versioning?.v ?? undefined
}

/** The `keep` flag of a version written now into a bucket with these parameters. */
export function newVersionKeep(p: VersioningParams): { keep?: true } {
  return versioningOf(p) === 'Enabled' ? { keep: true } : {}
}

/**
 * A version's id as clients see it: its uuid in hex for a kept version, `null` for the null
 * version of a bucket that has (had) versioning. In a bucket never versioned, every version is
 * named by its uuid, as Garage does (AWS sends no version id there).
 */
export function versionIdOf(v: ObjectVersion, p: VersioningParams | undefined): string {
  if (v.keep === true || p === undefined || versioningOf(p) === undefined) return toHex(v.uuid)
  return 'null'
}

/** A parsed `versionId`: the null version, or a uuid. */
export type VersionRef = { t: 'null' } | { t: 'id'; uuid: Uuid }

const UUID_HEX = /^[0-9a-f]{64}$/

/**
 * Parses a `versionId` (query parameter, XML or copy source).
 * @throws {ApiError} `InvalidArgument` "Invalid version id specified", as AWS answers.
 */
export function parseVersionId(raw: string): VersionRef {
  if (raw === 'null') return { t: 'null' }
  if (!UUID_HEX.test(raw)) {
    throw new ApiError('InvalidArgument', 'Invalid version id specified', {
      extra: { ArgumentName: 'versionId', ArgumentValue: raw.slice(0, 1024) },
    })
  }
  return { t: 'id', uuid: fromHex(raw) }
}

/** The complete version (data or delete marker) a reference names, if the row has it. */
export function findVersion(o: ObjectEntry | undefined, ref: VersionRef): ObjectVersion | undefined {
  if (o === undefined) return undefined
  if (ref.t === 'id') return o.versions.find((v) => v.state.t === 'complete' && bytesEqual(v.uuid, ref.uuid))
  // The null version: the newest complete or purged null version, if it is complete.
  for (let i = o.versions.length - 1; i >= 0; i--) {
    const v = o.versions[i] as ObjectVersion
    if (supersedes(v)) return v.state.t === 'complete' ? v : undefined
  }
  return undefined
}

/** The newest complete version (data or delete marker). */
export function latestVersion(o: ObjectEntry | undefined): ObjectVersion | undefined {
  if (o === undefined) return undefined
  for (let i = o.versions.length - 1; i >= 0; i--) {
    const v = o.versions[i] as ObjectVersion
    if (v.state.t === 'complete') return v
  }
  return undefined
}

export const isDeleteMarker = (v: ObjectVersion): boolean => v.state.t === 'complete' && v.state.data.t === 'delete'

/**
 * The version a GET or HEAD reads: the one `versionId` names, else the latest.
 * @throws {ApiError} `NoSuchKey` (with `x-amz-delete-marker` when the latest is a delete marker),
 *   `NoSuchVersion`, or `MethodNotAllowed` for a delete marker named by id, as AWS answers.
 */
export function readableVersion(
  o: ObjectEntry | undefined,
  versionId: string | undefined,
  p: VersioningParams | undefined,
): ObjectVersion {
  if (versionId !== undefined) {
    const ref = parseVersionId(versionId)
    const v = findVersion(o, ref)
    if (v === undefined) {
      throw new ApiError('NoSuchVersion', 'The specified version does not exist.', {
        extra: { Key: o?.key ?? '', VersionId: versionId },
      })
    }
    if (isDeleteMarker(v)) {
      throw new ApiError('MethodNotAllowed', 'The specified method is not allowed against this resource.', {
        headers: { 'x-amz-delete-marker': 'true', 'x-amz-version-id': versionIdOf(v, p), 'last-modified': httpDate(v.ts) },
        extra: { Method: 'GET', ResourceType: 'DeleteMarker' },
      })
    }
    return v
  }
  const v = latestVersion(o)
  if (v === undefined) throw new ApiError('NoSuchKey', 'The specified key does not exist.')
  if (isDeleteMarker(v)) {
    const versioned = v.keep === true || (p !== undefined && versioningOf(p) !== undefined)
    throw new ApiError('NoSuchKey', 'The specified key does not exist.', {
      headers: versioned ? { 'x-amz-delete-marker': 'true', 'x-amz-version-id': versionIdOf(v, p) } : {},
    })
  }
  return v
}

// ---------------------------------------------------------------------------------------------
// PutBucketVersioning / GetBucketVersioning

const MAX_VERSIONING_BODY = 64 * 1024

/** The parsed body of PutBucketVersioning. @internal */
export function parseVersioningConfiguration(doc: XmlDocument): BucketVersioning | undefined {
  const root = xmlRoot(doc, 'VersioningConfiguration')
  xmlOnly(root, ['Status', 'MfaDelete'], 'VersioningConfiguration')
  const mfa = xmlText(root, 'MfaDelete')
  if (mfa === 'Enabled') {
    // AWS: MFA delete needs the root account's MFA device; no key here has one.
    throw new ApiError('InvalidRequest', 'DevPay and Mfa are mutually exclusive authorization methods.')
  }
  if (mfa !== undefined && mfa !== 'Disabled') throw new ApiError('MalformedXML', '<MfaDelete> must be Enabled or Disabled')
  const status = xmlText(root, 'Status')
  if (status === undefined) return undefined
  if (status !== 'Enabled' && status !== 'Suspended') throw new ApiError('MalformedXML', '<Status> must be Enabled or Suspended')
  return status
}

export async function handlePutBucketVersioning(ctx: BucketCtx): Promise<ApiResponse> {
  const doc = await readXmlBody(ctx.body, MAX_VERSIONING_BODY)
  await ctx.bodyResult
  if (ctx.req.headers['x-amz-mfa'] !== undefined) {
    throw new ApiError('AccessDenied', 'Mfa Authentication must be used for this request')
  }
  const status = parseVersioningConfiguration(doc)
  // No <Status>: nothing changes (AWS accepts the empty configuration).
  if (status === undefined) return { status: 200, headers: {} }
  if (status === 'Suspended' && ctx.bucketParams.objectLock?.v?.enabled === true) {
    throw new ApiError(
      'InvalidBucketState',
      'An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.',
    )
  }
  await ctx.garage.buckets.updateParams(ctx.bucketId, (p) => ({
    ...p,
    versioning: updateLww(p.versioning ?? { ts: 0, v: null }, status),
  }))
  return { status: 200, headers: {} }
}

export function handleGetBucketVersioning(ctx: BucketCtx): ApiResponse {
  const status = versioningOf(ctx.bucketParams)
  const xml = renderXml('VersioningConfiguration', status === undefined ? {} : { Status: status })
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: xml }
}

// ---------------------------------------------------------------------------------------------
// DeleteObject

/** What a delete did. */
export interface DeleteOutcome {
  /** The version id to answer in `x-amz-version-id` (of the marker written, or of the version deleted). */
  versionId?: string
  /** A delete marker was written, or the version deleted by id was one. */
  deleteMarker: boolean
}

export interface DeleteOptions {
  versionId?: string | undefined
  /** `x-amz-bypass-governance-retention: true` from a key that owns the bucket. */
  bypassGovernance: boolean
}

/**
 * Deletes `key` as AWS does for the bucket's versioning state: without a version id, a bucket
 * never versioned gets Garage's delete marker over a visible version (nothing otherwise), an
 * enabled one a new kept delete marker, a suspended one a null delete marker (replacing the null
 * version); with a version id, that version is purged (its data collected) unless object lock
 * protects it. The row is read at quorum, so the lock check holds on any node.
 */
export async function deleteObjectVersion(
  garage: Garage,
  bucketId: Uuid,
  params: VersioningParams,
  key: string,
  opts: DeleteOptions,
): Promise<DeleteOutcome> {
  // DeleteObjects' keys come from its XML body: each is checked here, before any read.
  checkS3ObjectKey(key)
  const ref = opts.versionId === undefined ? undefined : parseVersionId(opts.versionId)
  if (ref === undefined && versioningOf(params) === undefined) {
    const done = await deleteInOneRound(garage, bucketId, key)
    if (done !== undefined) return done
  }
  const o = await garage.objectTable.get(bucketId, utf8(key))
  const plan = planDelete(garage, bucketId, params, key, ref, o, opts)
  if (plan.write !== undefined) await garage.objectTable.insert(plan.write)
  return plan.outcome
}

/**
 * DeleteObject without a version id in a bucket never versioned, in one round (one-round.ts):
 * the delete marker is written without reading the row first, above every complete version the
 * replicas answer they held (a newer upload in progress stays, as AWS keeps it). Only when this
 * node stores the key's row and its copy shows a visible version and no upload in progress:
 * otherwise (undefined, nothing written) the two-round path reads the row first and writes
 * nothing when nothing is visible, so that a DELETE of a missing key leaves no marker and cannot
 * end an upload this node's copy has not seen yet.
 */
async function deleteInOneRound(garage: Garage, bucketId: Uuid, key: string): Promise<DeleteOutcome | undefined> {
  const local = garage.objectTable.data.read(bucketId, utf8(key))
  const visible = latestVersion(local)
  if (visible === undefined || isDeleteMarker(visible)) return undefined
  if (local?.versions.some((v) => v.state.t === 'uploading') === true) return undefined
  const marker = (uuid: Uuid, ts: number): ObjectVersion => ({ uuid, ts, state: { t: 'complete', data: { t: 'delete' } } })
  const written = await writeInOneRound(
    garage,
    bucketId,
    key,
    genUuid(),
    (uuid, ts) => sendObjectRow(garage, { bucketId, key, versions: [marker(uuid, ts)] }, true),
    // A marker written again: the newer one's merge drops it.
    () => {},
    (v) => v.state.t === 'complete',
  )
  if (written === undefined) return undefined
  const latest = latestVersion(written.before)
  // Nothing was visible: answered as the two-round path does (no version id).
  if (latest === undefined || isDeleteMarker(latest)) return { deleteMarker: false }
  return { versionId: toHex(written.uuid), deleteMarker: false }
}

/** One key of a {@link deleteObjectVersions} batch. */
export interface DeleteItem {
  key: string
  versionId?: string | undefined
}

/**
 * DeleteObjects' deletions, each as {@link deleteObjectVersion} does it alone, in few calls: the
 * keys' rows are read together (`getMany`: one quorum call per group of nodes) and every row to
 * write goes in one `insertMany` (one request per node). Across 100 ms links, 1,000 keys take
 * two quorum round trips instead of 2,000. A key named twice is handled in a later round, after
 * its first deletion is written, so it sees that deletion as a lone request would. Each item's
 * answer is its outcome or the error it got (an invalid key, object lock, a failed quorum).
 */
export async function deleteObjectVersions(
  garage: Garage,
  bucketId: Uuid,
  params: VersioningParams,
  items: readonly DeleteItem[],
  opts: { bypassGovernance: boolean },
): Promise<Array<DeleteOutcome | Error>> {
  const out = new Array<DeleteOutcome | Error>(items.length)
  const refs = new Array<VersionRef | undefined>(items.length)
  // Round r holds each key's (r + 1)-th occurrence.
  const rounds: number[][] = []
  const seen = new Map<string, number>()
  items.forEach((item, i) => {
    try {
      checkS3ObjectKey(item.key)
      if (item.versionId !== undefined) refs[i] = parseVersionId(item.versionId)
    } catch (err) {
      out[i] = err as Error
      return
    }
    const r = seen.get(item.key) ?? 0
    seen.set(item.key, r + 1)
    const round = rounds[r]
    if (round === undefined) rounds[r] = [i]
    else round.push(i)
  })
  for (const round of rounds) {
    let rows: Array<ObjectEntry | undefined>
    try {
      rows = await garage.objectTable.getMany(
        round.map((i) => ({ partitionKey: bucketId, sortKey: utf8((items[i] as DeleteItem).key) })),
      )
    } catch (err) {
      for (const i of round) out[i] = err as Error
      continue
    }
    const writes: ObjectEntry[] = []
    const writers: number[] = []
    round.forEach((i, j) => {
      const item = items[i] as DeleteItem
      try {
        const plan = planDelete(garage, bucketId, params, item.key, refs[i], rows[j], { ...opts, versionId: item.versionId })
        out[i] = plan.outcome
        if (plan.write !== undefined) {
          writes.push(plan.write)
          writers.push(i)
        }
      } catch (err) {
        out[i] = err as Error
      }
    })
    try {
      await garage.objectTable.insertMany(writes)
    } catch (err) {
      for (const i of writers) out[i] = err as Error
    }
  }
  return out
}

/**
 * What deleting `key` (or its version `ref`) does to its row `o` as read: the answer, and the
 * row to write (none when there is nothing to delete).
 * @throws ApiError when object lock protects the version.
 */
function planDelete(
  garage: Garage,
  bucketId: Uuid,
  params: VersioningParams,
  key: string,
  ref: VersionRef | undefined,
  o: ObjectEntry | undefined,
  opts: DeleteOptions,
): { outcome: DeleteOutcome; write?: ObjectEntry } {
  if (ref === undefined) {
    const status = versioningOf(params)
    // Nothing visible in a bucket never versioned: nothing to write.
    if (
      status === undefined &&
      (o === undefined || latestVersion(o) === undefined || isDeleteMarker(latestVersion(o) as ObjectVersion))
    ) {
      return { outcome: { deleteMarker: false } }
    }
    const ts = garage.nextTimestamp(
      o === undefined || o.versions.length === 0 ? undefined : Math.max(...o.versions.map((v) => v.ts)),
    )
    const marker: ObjectVersion = {
      uuid: genUuid(),
      ts,
      state: { t: 'complete', data: { t: 'delete' } },
      ...newVersionKeep(params),
    }
    return {
      outcome: { versionId: versionIdOf(marker, params), deleteMarker: status !== undefined },
      write: { bucketId, key, versions: [marker] },
    }
  }
  const v = findVersion(o, ref)
  // AWS answers 204 for a version it does not have (deletes are idempotent).
  if (v === undefined) return { outcome: { versionId: opts.versionId, deleteMarker: false } }
  checkVersionDeletable(v, opts.bypassGovernance, Date.now())
  const purged: ObjectVersion = { uuid: v.uuid, ts: v.ts, state: { t: 'purged' } }
  if (v.keep === true) purged.keep = true
  return {
    outcome: { versionId: versionIdOf(v, params), deleteMarker: isDeleteMarker(v) },
    write: { bucketId, key, versions: [purged] },
  }
}

/** The response headers of a DeleteObject. */
export function deleteHeaders(r: DeleteOutcome): Record<string, string> {
  const headers: Record<string, string> = {}
  if (r.versionId !== undefined) headers['x-amz-version-id'] = r.versionId
  if (r.deleteMarker) headers['x-amz-delete-marker'] = 'true'
  return headers
}

// ---------------------------------------------------------------------------------------------
// ListObjectVersions

export interface ListVersionsParams {
  prefix?: string
  delimiter?: string
  maxKeys?: number
  keyMarker?: string
  versionIdMarker?: string
  encodingType?: string
}

interface Entry {
  kind: 'version' | 'marker' | 'prefix'
  key: string
  version?: ObjectVersion
  isLatest?: boolean
}

const PAGE = 1000
const cmp = (a: string, b: string): number => Buffer.compare(utf8(a), utf8(b))

/** The versions a listing shows, newest first. */
function listedVersions(o: ObjectEntry): ObjectVersion[] {
  const out: ObjectVersion[] = []
  for (let i = o.versions.length - 1; i >= 0; i--) {
    const v = o.versions[i] as ObjectVersion
    if (v.state.t === 'complete') out.push(v)
  }
  return out
}

function keySuccessor(key: string): Uint8Array {
  const b = utf8(key)
  const out = new Uint8Array(b.length + 1)
  out.set(b)
  return out
}

/**
 * Walks the bucket's keys from `keyMarker` on (keys ascending, versions newest first), grouping
 * keys by delimiter; at most `maxKeys` versions, delete markers and common prefixes.
 */
async function listVersions(
  garage: Garage,
  bucketId: Uuid,
  params: BucketParams,
  q: {
    prefix: string
    delimiter?: string | undefined
    maxKeys: number
    keyMarker?: string | undefined
    versionIdMarker?: string | undefined
  },
): Promise<{ entries: Entry[]; truncated: boolean; next?: { key: string; versionId?: string } }> {
  const entries: Entry[] = []
  const prefixBytes = utf8(q.prefix)
  let cursor: Uint8Array = prefixBytes
  if (q.keyMarker !== undefined && q.keyMarker !== '') {
    const from = q.versionIdMarker !== undefined && q.versionIdMarker !== '' ? utf8(q.keyMarker) : keySuccessor(q.keyMarker)
    if (Buffer.compare(from, cursor) > 0) cursor = from
  }
  const full = (): boolean => entries.length >= q.maxKeys
  const nextOf = (): { key: string; versionId?: string } | undefined => {
    const last = entries[entries.length - 1]
    if (last === undefined) return undefined
    if (last.version === undefined) return { key: last.key }
    return { key: last.key, versionId: versionIdOf(last.version, params) }
  }
  if (q.maxKeys === 0) return { entries, truncated: false }
  for (;;) {
    const page = await garage.objectTable.getRange(bucketId, {
      start: cursor,
      limit: PAGE,
      filter: (o) => listedVersions(o).length > 0,
    })
    if (page.length === 0) return { entries, truncated: false }
    let jumped = false
    for (const o of page) {
      const key = o.key
      if (!key.startsWith(q.prefix)) {
        if (cmp(key, q.prefix) > 0) return { entries, truncated: false }
        continue
      }
      if (q.delimiter !== undefined && q.delimiter !== '') {
        const i = key.indexOf(q.delimiter, q.prefix.length)
        if (i >= 0) {
          const cp = key.slice(0, i + q.delimiter.length)
          const skip = q.keyMarker !== undefined && q.keyMarker !== '' && cmp(cp, q.keyMarker) <= 0
          if (!skip) {
            if (full()) return { entries, truncated: true, next: nextOf() }
            entries.push({ kind: 'prefix', key: cp })
          }
          const end = prefixEnd(utf8(cp))
          if (end === undefined) return { entries, truncated: false }
          cursor = end
          jumped = true
          break
        }
      }
      let versions = listedVersions(o)
      const latest = versions[0]
      if (q.keyMarker !== undefined && key === q.keyMarker && q.versionIdMarker !== undefined && q.versionIdMarker !== '') {
        // Continue after the marker version (newer ones were listed already).
        const at = versions.findIndex((v) => versionIdOf(v, params) === q.versionIdMarker)
        versions = at < 0 ? [] : versions.slice(at + 1)
      }
      for (const v of versions) {
        if (full()) return { entries, truncated: true, next: nextOf() }
        entries.push({ kind: isDeleteMarker(v) ? 'marker' : 'version', key, version: v, isLatest: v === latest })
      }
      cursor = keySuccessor(key)
    }
    if (!jumped && page.length < PAGE) return { entries, truncated: false }
  }
}

function uriEncode(s: string): string {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%2F/g, '/')
}

export interface Owner {
  id: string
  displayName: string
}

export async function handleListObjectVersions(ctx: BucketCtx, p: ListVersionsParams, owner: Owner): Promise<ApiResponse> {
  if (p.encodingType !== undefined && p.encodingType !== 'url') {
    throw new ApiError('InvalidArgument', 'Invalid Encoding Method specified in Request')
  }
  const url = p.encodingType === 'url'
  const enc = (s: string) => (url ? uriEncode(s) : s)
  let maxKeys = 1000
  if (p.maxKeys !== undefined) {
    if (!Number.isInteger(p.maxKeys) || p.maxKeys < 0)
      throw new ApiError('InvalidArgument', 'max-keys must be a non-negative integer')
    maxKeys = Math.min(p.maxKeys, 1000)
  }
  if (p.versionIdMarker !== undefined && p.versionIdMarker !== '') {
    if (p.keyMarker === undefined || p.keyMarker === '') {
      throw new ApiError('InvalidArgument', 'A version-id marker cannot be specified without a key marker.')
    }
    parseVersionId(p.versionIdMarker)
  }
  const prefix = p.prefix ?? ''
  const r = await listVersions(ctx.garage, ctx.bucketId, ctx.bucketParams, {
    prefix,
    delimiter: p.delimiter,
    maxKeys,
    keyMarker: p.keyMarker,
    versionIdMarker: p.versionIdMarker,
  })
  const ownerXml = { ID: owner.id, DisplayName: owner.displayName }
  const fragments: string[] = []
  const prefixes: string[] = []
  for (const e of r.entries) {
    if (e.kind === 'prefix') {
      prefixes.push(renderXmlFragment('CommonPrefixes', { Prefix: enc(e.key) }))
      continue
    }
    const v = e.version as ObjectVersion
    const base = {
      Key: enc(e.key),
      VersionId: versionIdOf(v, ctx.bucketParams),
      IsLatest: e.isLatest === true,
      LastModified: isoDate(v.ts),
    }
    if (e.kind === 'marker' || v.state.t !== 'complete' || v.state.data.t === 'delete') {
      fragments.push(renderXmlFragment('DeleteMarker', { ...base, Owner: ownerXml }))
      continue
    }
    const meta = v.state.data.meta
    fragments.push(
      renderXmlFragment('Version', {
        ...base,
        ETag: `"${meta.etag}"`,
        ...(meta.checksum !== undefined ? { ChecksumAlgorithm: meta.checksum.algorithm } : {}),
        Size: meta.size,
        StorageClass: 'STANDARD',
        Owner: ownerXml,
      }),
    )
  }
  const head = renderXml('ListVersionsResult', {
    Name: ctx.bucketName,
    Prefix: enc(prefix),
    KeyMarker: enc(p.keyMarker ?? ''),
    VersionIdMarker: p.versionIdMarker ?? '',
    ...(r.truncated && r.next !== undefined
      ? {
          NextKeyMarker: enc(r.next.key),
          ...(r.next.versionId !== undefined ? { NextVersionIdMarker: r.next.versionId } : {}),
        }
      : {}),
    MaxKeys: maxKeys,
    ...(p.delimiter !== undefined ? { Delimiter: enc(p.delimiter) } : {}),
    IsTruncated: r.truncated,
    ...(url ? { EncodingType: 'url' } : {}),
  })
  const close = '</ListVersionsResult>'
  const xml = `${head.slice(0, head.length - close.length)}${fragments.join('')}${prefixes.join('')}${close}`
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: xml }
}
