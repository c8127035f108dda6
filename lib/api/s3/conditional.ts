/**
 * Conditional writes: `If-None-Match: *` and `If-Match: <etag>` on PutObject,
 * CompleteMultipartUpload and CopyObject (AWS semantics; Garage has none). The condition is
 * checked once before the body is read (a cheap early 412), then again at commit through a claim
 * on the key's row, so that of concurrent conditional writers through any nodes at most one
 * commits on a given state of the key. The protocol and its proof are in
 * docs/design/conditional-writes.md.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { Garage } from '../../model/garage.ts'
import { cmpVersion, isComplete, isLiveClaim, type ObjectEntry, type ObjectVersion } from '../../model/s3/object-table.ts'
import { batchItem, type LocalWrites } from '../../table/batch.ts'
import { bytesEqual, genUuid, type Uuid, utf8 } from '../../util/data.ts'
import { ApiError } from '../common/errors.ts'
import { ifMatchAccepts } from './etag.ts'

/** The write condition of a request: `If-None-Match: *` or `If-Match: <etags>`. */
export interface WriteCondition {
  ifNoneMatch: boolean
  ifMatch?: string
}

/**
 * Claim attempts before answering 409 ConditionalRequestConflict. Between attempts a writer
 * that met a competing claim waits a random time, doubling its window each time (Ethernet's
 * backoff, from the duration of one attempt): writers that collided spread out, and the first to
 * commit makes the others' next attempt a 412.
 */
export const CLAIM_ATTEMPTS = 10
/** The first backoff window, in milliseconds. */
const BACKOFF_BASE_MS = 10

const headerValue = (h: IncomingHttpHeaders, name: string): string | undefined => {
  const v = h[name]
  return Array.isArray(v) ? v.join(',') : v
}

/**
 * The write condition of a request's headers, or undefined. On a write, AWS accepts only `*` in
 * If-None-Match (an entity tag there is 501 NotImplemented).
 */
export function parseWriteCondition(headers: IncomingHttpHeaders): WriteCondition | undefined {
  const noneMatch = headerValue(headers, 'if-none-match')?.trim()
  const match = headerValue(headers, 'if-match')?.trim()
  if (noneMatch === undefined && match === undefined) return undefined
  // AWS accepts one condition per write: both headers together are refused like an entity tag.
  if ((noneMatch !== undefined && noneMatch !== '*') || (noneMatch !== undefined && match !== undefined)) {
    throw new ApiError('NotImplemented', 'A header you provided implies functionality that is not implemented', {
      extra: { Header: 'If-None-Match' },
    })
  }
  if (match === '') throw new ApiError('InvalidArgument', 'If-Match must not be empty')
  const cond: WriteCondition = { ifNoneMatch: noneMatch !== undefined }
  if (match !== undefined) cond.ifMatch = match
  return cond
}

/** The key's current version (the newest complete one), unless it is a delete marker or absent. */
export function currentObject(row: ObjectEntry | undefined, except?: Uuid): ObjectVersion | undefined {
  const v = lastComplete(row, except)
  return v !== undefined && v.state.t === 'complete' && v.state.data.t !== 'delete' ? v : undefined
}

/** The newest complete version of a row (delete markers included), other than `except`. */
function lastComplete(row: ObjectEntry | undefined, except?: Uuid): ObjectVersion | undefined {
  if (row === undefined) return undefined
  for (let i = row.versions.length - 1; i >= 0; i--) {
    const v = row.versions[i] as ObjectVersion
    if (isComplete(v) && (except === undefined || !bytesEqual(v.uuid, except))) return v
  }
  return undefined
}

/** The ETag of a current version (as stored, without quotes). */
const etagOf = (v: ObjectVersion): string =>
  v.state.t === 'complete' && v.state.data.t !== 'delete' ? v.state.data.meta.etag : ''

/**
 * Throws the answer AWS gives when `cond` does not hold of `current`: 412 PreconditionFailed
 * when an object exists under If-None-Match or has another ETag under If-Match, 404 NoSuchKey
 * for If-Match on a key with no object.
 */
export function checkWriteCondition(cond: WriteCondition, current: ObjectVersion | undefined): void {
  if (cond.ifNoneMatch && current !== undefined) throw preconditionFailed('If-None-Match')
  if (cond.ifMatch !== undefined) {
    if (current === undefined) throw new ApiError('NoSuchKey', 'The specified key does not exist.')
    if (!ifMatchAccepts(cond.ifMatch, etagOf(current))) throw preconditionFailed('If-Match')
  }
}

const preconditionFailed = (header: string): ApiError =>
  new ApiError('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', {
    extra: { Condition: header },
  })

const conflict = (): ApiError =>
  new ApiError(
    'ConditionalRequestConflict',
    'A conflicting operation occurred. If using PutObject you can retry the request. If using multipart upload you should initiate another CreateMultipartUpload request and re-upload each part.',
  )

const sameVersion = (a: ObjectVersion | undefined, b: ObjectVersion | undefined): boolean =>
  a === undefined || b === undefined ? a === b : cmpVersion(a, b) === 0

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Commits `versions` (the write's complete version, and whatever else the same row insert must
 * carry) to `key` only if `cond` holds of the key's state at commit, and no other conditional
 * writer commits on that same state. `version` is the write's own version (its uuid and
 * timestamp). Throws 412/404 when the condition fails, 409 ConditionalRequestConflict when
 * concurrent writers kept colliding or the key moved past the write's timestamp; nothing of the
 * write is then visible (the caller aborts its version).
 *
 * Each attempt: read the row at quorum; check the condition; write a claim (an `uploading
 * {claim}` pseudo-version newer than everything read) at quorum; read the row again at quorum.
 * If the current version changed, start again (the condition is checked anew); if another live
 * claim newer than the current version is there, abort the claim, wait, start again; otherwise
 * insert the version and the claim's abort in one row write.
 */
export async function commitConditional(
  garage: Garage,
  bucketId: Uuid,
  key: string,
  cond: WriteCondition,
  version: ObjectVersion,
): Promise<void> {
  const sortKey = utf8(key)
  for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
    const row = await garage.objectTable.get(bucketId, sortKey)
    const base = lastComplete(row, version.uuid)
    checkWriteCondition(cond, currentObject(row, version.uuid))
    // A version older than the current one would be dropped by the merge: the key moved on.
    if (base !== undefined && cmpVersion(base, version) > 0) throw conflict()
    const claim: ObjectVersion = {
      uuid: genUuid(),
      ts: garage.nextTimestamp(Math.max(version.ts, ...(row?.versions.map((v) => v.ts) ?? []))),
      state: { t: 'uploading', multipart: false, headers: [], claim: true },
    }
    const aborted: ObjectVersion = { uuid: claim.uuid, ts: claim.ts, state: { t: 'aborted' } }
    // A claim left by a crash is aborted at the node's next start, like an interrupted upload.
    garage.uploads.begin(claim.uuid, bucketId, key, { ts: claim.ts, versionRow: false })
    const started = Date.now()
    let committed = false
    let now: ObjectVersion | undefined
    let oldest = true
    try {
      await garage.objectTable.insert({ bucketId, key, versions: [claim] })
      const after = await garage.objectTable.get(bucketId, sortKey)
      now = lastComplete(after, version.uuid)
      const rivals = (after?.versions ?? []).filter(
        (v) => isLiveClaim(v) && !bytesEqual(v.uuid, claim.uuid) && (now === undefined || cmpVersion(v, now) > 0),
      )
      oldest = rivals.every((v) => cmpVersion(v, claim) > 0)
      if (sameVersion(now, base) && rivals.length === 0) {
        // The version and the claim's end in one row write: no reader sees neither.
        await garage.objectTable.insert({ bucketId, key, versions: [version, aborted] })
        committed = true
      }
    } finally {
      if (!committed) await garage.objectTable.insert({ bucketId, key, versions: [aborted] })
      garage.uploads.end(claim.uuid)
    }
    if (committed) return
    // The key changed: check the condition again at once. A rival claim: back off, in a window
    // that doubles each time from what one attempt took (so it scales with the cluster's round
    // trips); the writer with the oldest claim tries again first, the others later.
    if (sameVersion(now, base)) {
      const window = Math.max(BACKOFF_BASE_MS, Date.now() - started) * 2 ** Math.min(attempt, 6)
      await sleep(oldest ? Math.random() * (window / 4) : window / 2 + Math.random() * (window / 2))
    }
  }
  throw conflict()
}

/**
 * Makes a write's complete version visible: a plain row insert, or through
 * {@link commitConditional} when the request carries a condition. `after`: a local write that
 * commits once the version is visible (the end of the upload guard's record), in the row's own
 * transaction when the row is this node's alone.
 */
export async function commitVersion(
  garage: Garage,
  bucketId: Uuid,
  key: string,
  cond: WriteCondition | undefined,
  version: ObjectVersion,
  after?: LocalWrites['after'],
): Promise<void> {
  const local = { after }
  const row = { bucketId, key, versions: [version] }
  if (cond === undefined) {
    await garage.tableBatch.insert([batchItem(garage.objectTable, [row])], local)
    return
  }
  await commitConditional(garage, bucketId, key, cond, version)
  await garage.tableBatch.insert([], local)
}
