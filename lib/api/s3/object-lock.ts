/**
 * S3 Object Lock: the bucket's configuration (Put/GetObjectLockConfiguration), retention and
 * legal hold of one version (Put/Get ObjectRetention and ObjectLegalHold, and the
 * `x-amz-object-lock-*` headers of writes), and the check that refuses deleting a protected
 * version. Retention and legal hold are last-writer-wins registers on the version in the object
 * row (model/s3/object-table.ts); the checks read the row at quorum, so they hold on any node.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { BucketObjectLock, BucketParams } from '../../model/bucket-table.ts'
import type { ObjectRetention, ObjectVersion, ObjectVersionLock } from '../../model/s3/object-table.ts'
import { type Lww, updateLww } from '../../util/crdt/crdt.ts'
import { utf8 } from '../../util/data.ts'
import { isoDate } from '../../util/time.ts'
import { ApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import type { RequestChecksums } from '../common/signature/checksum.ts'
import type { BucketCtx } from './context.ts'
import { readableVersion } from './versioning.ts'
import { readXmlBody, renderXml, type XmlDocument, xmlChildren, xmlOnly, xmlRoot, xmlText } from './xml.ts'

const MAX_BODY = 64 * 1024
const DAY_MSEC = 86_400_000
/** The longest default retention AWS accepts. */
const MAX_RETENTION_DAYS = 36_500

/** The object lock of a bucket, if enabled. */
export const objectLockOf = (p: BucketParams): BucketObjectLock | undefined => p.objectLock?.v ?? undefined

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v.join(',') : v
}

const missingConfiguration = (): ApiError => new ApiError('InvalidRequest', 'Bucket is missing Object Lock Configuration')

/** The retention in force on a version at `now`, if any. */
export function activeRetention(v: ObjectVersion, now: number): ObjectRetention | undefined {
  const r = v.lock?.retention?.v ?? undefined
  return r !== undefined && r !== null && r.until > now ? r : undefined
}

export const legalHoldOn = (v: ObjectVersion): boolean => v.lock?.legalHold?.v === true

/**
 * Refuses deleting a version under legal hold or retention (GOVERNANCE unless bypassed), with
 * AWS's AccessDenied.
 */
export function checkVersionDeletable(v: ObjectVersion, bypassGovernance: boolean, now: number): void {
  if (legalHoldOn(v)) throw new ApiError('AccessDenied', 'Access Denied because object protected by object lock.')
  const r = activeRetention(v, now)
  if (r === undefined) return
  if (r.mode === 'COMPLIANCE' || !bypassGovernance) {
    throw new ApiError('AccessDenied', 'Access Denied because object protected by object lock.')
  }
}

/** True when the request asks to bypass GOVERNANCE retention. */
export const wantsBypass = (headers: IncomingHttpHeaders): boolean =>
  headerValue(headers, 'x-amz-bypass-governance-retention')?.trim().toLowerCase() === 'true'

function parseMode(raw: string | undefined, what: string): 'GOVERNANCE' | 'COMPLIANCE' {
  if (raw === 'GOVERNANCE' || raw === 'COMPLIANCE') return raw
  throw new ApiError('InvalidArgument', `Unknown wormMode directive. (${what})`)
}

function parseUntil(raw: string, now: number): number {
  const t = Date.parse(raw)
  if (!/^\d{4}-\d{2}-\d{2}T/.test(raw) || Number.isNaN(t)) {
    throw new ApiError('InvalidArgument', 'The retain until date must be provided in ISO 8601 format')
  }
  if (t <= now) throw new ApiError('InvalidArgument', 'The retain until date must be in the future!')
  return t
}

/**
 * The lock of a version written now: its `x-amz-object-lock-*` headers, else the bucket's default
 * retention. Object lock needs Content-MD5 or a checksum on the request, as on AWS.
 * @throws {ApiError} `InvalidRequest` when the bucket has no object lock or no digest came,
 *   `InvalidArgument` for an incomplete or bad pair of headers.
 */
export function writeLock(
  headers: IncomingHttpHeaders,
  p: BucketParams,
  checksums: RequestChecksums | undefined,
  now: number,
): ObjectVersionLock | undefined {
  const mode = headerValue(headers, 'x-amz-object-lock-mode')
  const until = headerValue(headers, 'x-amz-object-lock-retain-until-date')
  const hold = headerValue(headers, 'x-amz-object-lock-legal-hold')
  const config = objectLockOf(p)
  if (mode === undefined && until === undefined && hold === undefined) {
    const rule = config?.rule ?? null
    if (rule === null) return undefined
    const days = rule.days ?? (rule.years ?? 0) * 365
    requireDigest(checksums)
    return { retention: { ts: now, v: { mode: rule.mode, until: now + days * DAY_MSEC } } }
  }
  if (config === undefined) throw missingConfiguration()
  const lock: ObjectVersionLock = {}
  if (mode !== undefined || until !== undefined) {
    if (mode === undefined || until === undefined) {
      throw new ApiError(
        'InvalidArgument',
        'x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied',
      )
    }
    lock.retention = { ts: now, v: { mode: parseMode(mode, 'x-amz-object-lock-mode'), until: parseUntil(until, now) } }
  }
  if (hold !== undefined) {
    if (hold !== 'ON' && hold !== 'OFF') throw new ApiError('InvalidArgument', 'Legal Hold must be either of ON or OFF')
    lock.legalHold = { ts: now, v: hold === 'ON' }
  }
  requireDigest(checksums)
  return lock
}

function requireDigest(c: RequestChecksums | undefined): void {
  if (c === undefined) return
  if (
    c.md5 !== undefined ||
    Object.keys(c.expected).length > 0 ||
    c.trailerAlgorithm !== undefined ||
    c.requestedAlgorithm !== undefined
  ) {
    return
  }
  throw new ApiError(
    'InvalidRequest',
    'Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters',
  )
}

/** The `x-amz-object-lock-*` headers of a GET or HEAD. */
export function lockHeaders(v: ObjectVersion): Record<string, string> {
  const out: Record<string, string> = {}
  const r = v.lock?.retention?.v ?? undefined
  if (r !== undefined && r !== null) {
    out['x-amz-object-lock-mode'] = r.mode
    out['x-amz-object-lock-retain-until-date'] = isoDate(r.until)
  }
  const h = v.lock?.legalHold?.v
  if (h !== undefined) out['x-amz-object-lock-legal-hold'] = h ? 'ON' : 'OFF'
  return out
}

// ---------------------------------------------------------------------------------------------
// Bucket configuration

/** The parsed body of PutObjectLockConfiguration. @internal */
export function parseObjectLockConfiguration(doc: XmlDocument): BucketObjectLock {
  const root = xmlRoot(doc, 'ObjectLockConfiguration')
  xmlOnly(root, ['ObjectLockEnabled', 'Rule'], 'ObjectLockConfiguration')
  if (xmlText(root, 'ObjectLockEnabled') !== 'Enabled') {
    throw new ApiError('MalformedXML', '<ObjectLockEnabled> must be Enabled')
  }
  const rules = xmlChildren(root, 'Rule')
  if (rules.length > 1) throw new ApiError('MalformedXML', 'at most one <Rule>')
  const rule = rules[0]
  if (rule === undefined) return { enabled: true, rule: null }
  xmlOnly(rule, ['DefaultRetention'], 'Rule')
  const dr = xmlChildren(rule, 'DefaultRetention')
  if (dr.length !== 1) throw new ApiError('MalformedXML', '<Rule> needs one <DefaultRetention>')
  const d = dr[0]
  xmlOnly(d, ['Mode', 'Days', 'Years'], 'DefaultRetention')
  const modeText = xmlText(d, 'Mode')
  if (modeText !== 'GOVERNANCE' && modeText !== 'COMPLIANCE')
    throw new ApiError('MalformedXML', '<Mode> must be GOVERNANCE or COMPLIANCE')
  const daysText = xmlText(d, 'Days')
  const yearsText = xmlText(d, 'Years')
  if ((daysText === undefined) === (yearsText === undefined)) {
    throw new ApiError('MalformedXML', '<DefaultRetention> needs exactly one of <Days> and <Years>')
  }
  const n = Number(daysText ?? yearsText)
  if (!Number.isInteger(n) || n <= 0) {
    throw new ApiError('InvalidArgument', 'Default retention period must be a positive integer value.')
  }
  const inDays = daysText !== undefined ? n : n * 365
  if (inDays > MAX_RETENTION_DAYS) {
    throw new ApiError('InvalidArgument', 'Default retention period is too large.')
  }
  return {
    enabled: true,
    rule: { mode: modeText, days: daysText !== undefined ? n : null, years: yearsText !== undefined ? n : null },
  }
}

export async function handlePutObjectLockConfiguration(ctx: BucketCtx): Promise<ApiResponse> {
  const doc = await readXmlBody(ctx.body, MAX_BODY)
  await ctx.bodyResult
  const config = parseObjectLockConfiguration(doc)
  const p = ctx.bucketParams
  if (objectLockOf(p) === undefined && p.versioning?.v !== 'Enabled') {
    throw new ApiError('InvalidBucketState', "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration")
  }
  await ctx.garage.buckets.updateParams(ctx.bucketId, (q) => ({
    ...q,
    objectLock: updateLww(q.objectLock ?? { ts: 0, v: null }, config),
  }))
  return { status: 200, headers: {} }
}

export function handleGetObjectLockConfiguration(ctx: BucketCtx): ApiResponse {
  const config = objectLockOf(ctx.bucketParams)
  if (config === undefined) {
    throw new ApiError('ObjectLockConfigurationNotFoundError', 'Object Lock configuration does not exist for this bucket', {
      extra: { BucketName: ctx.bucketName },
    })
  }
  const rule = config.rule
  const xml = renderXml('ObjectLockConfiguration', {
    ObjectLockEnabled: 'Enabled',
    ...(rule === null
      ? {}
      : {
          Rule: {
            DefaultRetention: { Mode: rule.mode, ...(rule.days !== null ? { Days: rule.days } : { Years: rule.years }) },
          },
        }),
  })
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: xml }
}

/** The params of a bucket created with `x-amz-bucket-object-lock-enabled: true`. */
export function withObjectLockEnabled(p: BucketParams, now: number): BucketParams {
  return {
    ...p,
    versioning: updateLww(p.versioning ?? { ts: 0, v: null }, 'Enabled', now),
    objectLock: updateLww(p.objectLock ?? { ts: 0, v: null }, { enabled: true, rule: null }, now),
  }
}

// ---------------------------------------------------------------------------------------------
// Retention and legal hold of one version

/** Reads the version a retention or legal hold request names, at quorum. */
async function lockedVersion(ctx: BucketCtx, key: string, versionId: string | undefined): Promise<ObjectVersion> {
  if (objectLockOf(ctx.bucketParams) === undefined) throw missingConfiguration()
  const o = await ctx.garage.objectTable.get(ctx.bucketId, utf8(key))
  return readableVersion(o, versionId, ctx.bucketParams)
}

/** Writes a version's lock registers (the row merge keeps the newest of each). */
async function writeVersionLock(ctx: BucketCtx, key: string, v: ObjectVersion, lock: ObjectVersionLock): Promise<void> {
  const version: ObjectVersion = { uuid: v.uuid, ts: v.ts, state: v.state, lock }
  if (v.keep === true) version.keep = true
  await ctx.garage.objectTable.insert({ bucketId: ctx.bucketId, key, versions: [version] })
}

/** The parsed body of PutObjectRetention; null removes the retention. @internal */
export function parseRetention(doc: XmlDocument, now: number): ObjectRetention | null {
  const root = xmlRoot(doc, 'Retention')
  xmlOnly(root, ['Mode', 'RetainUntilDate'], 'Retention')
  const mode = xmlText(root, 'Mode')
  const until = xmlText(root, 'RetainUntilDate')
  if (mode === undefined && until === undefined) return null
  if (mode === undefined || until === undefined)
    throw new ApiError('MalformedXML', '<Retention> needs both <Mode> and <RetainUntilDate>')
  if (mode !== 'GOVERNANCE' && mode !== 'COMPLIANCE')
    throw new ApiError('MalformedXML', '<Mode> must be GOVERNANCE or COMPLIANCE')
  return { mode, until: parseUntil(until, now) }
}

export async function handlePutObjectRetention(ctx: BucketCtx, key: string, versionId: string | undefined): Promise<ApiResponse> {
  const doc = await readXmlBody(ctx.body, MAX_BODY)
  await ctx.bodyResult
  const now = Date.now()
  const next = parseRetention(doc, now)
  const v = await lockedVersion(ctx, key, versionId)
  const current = activeRetention(v, now)
  if (current !== undefined) {
    // Shortening, removing or weakening a retention: never under COMPLIANCE, with bypass under GOVERNANCE.
    const weaker = next === null || next.until < current.until || (current.mode === 'COMPLIANCE' && next.mode !== 'COMPLIANCE')
    if (weaker && (current.mode === 'COMPLIANCE' || !wantsBypass(ctx.req.headers) || !canBypass(ctx))) {
      throw new ApiError('AccessDenied', 'Access Denied because object protected by object lock.')
    }
  }
  const old: Lww<ObjectRetention | null> = v.lock?.retention ?? { ts: 0, v: null }
  await writeVersionLock(ctx, key, v, { retention: updateLww(old, next, now) })
  return { status: 200, headers: {} }
}

export async function handleGetObjectRetention(ctx: BucketCtx, key: string, versionId: string | undefined): Promise<ApiResponse> {
  const v = await lockedVersion(ctx, key, versionId)
  const r = v.lock?.retention?.v ?? null
  if (r === null) {
    throw new ApiError('NoSuchObjectLockConfiguration', 'The specified object does not have a ObjectLock configuration')
  }
  const xml = renderXml('Retention', { Mode: r.mode, RetainUntilDate: isoDate(r.until) })
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: xml }
}

export async function handlePutObjectLegalHold(ctx: BucketCtx, key: string, versionId: string | undefined): Promise<ApiResponse> {
  const doc = await readXmlBody(ctx.body, MAX_BODY)
  await ctx.bodyResult
  const root = xmlRoot(doc, 'LegalHold')
  xmlOnly(root, ['Status'], 'LegalHold')
  const status = xmlText(root, 'Status')
  if (status !== 'ON' && status !== 'OFF') throw new ApiError('MalformedXML', '<Status> must be ON or OFF')
  const v = await lockedVersion(ctx, key, versionId)
  const old: Lww<boolean> = v.lock?.legalHold ?? { ts: 0, v: false }
  await writeVersionLock(ctx, key, v, { legalHold: updateLww(old, status === 'ON') })
  return { status: 200, headers: {} }
}

export async function handleGetObjectLegalHold(ctx: BucketCtx, key: string, versionId: string | undefined): Promise<ApiResponse> {
  const v = await lockedVersion(ctx, key, versionId)
  const h = v.lock?.legalHold
  if (h === undefined) {
    throw new ApiError('NoSuchObjectLockConfiguration', 'The specified object does not have a ObjectLock configuration')
  }
  const xml = renderXml('LegalHold', { Status: h.v ? 'ON' : 'OFF' })
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: xml }
}

/** Bypassing GOVERNANCE retention needs a key that owns the bucket (AWS: s3:BypassGovernanceRetention). */
export function canBypass(ctx: BucketCtx): boolean {
  return ctx.apiKey !== undefined && ctx.garage.access.hasBucketPermission(ctx.apiKey, ctx.bucketId, 'owner')
}
