/**
 * Objects: one row per (bucket, key) holding its recent versions (port of
 * garage_model::s3::object_table). Merging keeps every version from the last complete "null"
 * version on, plus every version written while the bucket's versioning was enabled (`keep`) until
 * it is purged (a delete by version id); versions dropped by a merge, aborted or purged have their
 * version rows deleted through the queue. See docs/design/versioning.md.
 */
import type { Transaction } from '../../db/db.ts'
import { identityPartitionKey, type TableSchema } from '../../table/schema.ts'
import { defineCodec } from '../../util/codec.ts'
import { type Lww, mergeLww } from '../../util/crdt/crdt.ts'
import { compareBytes, type Hash, type Uuid, utf8 } from '../../util/data.ts'
import { deletedMpu, type MpuEntry } from './mpu-table.ts'
import { deletedVersion, type VersionEntry } from './version-table.ts'

/** Checksum algorithms S3 clients may ask for. */
export type ChecksumAlgorithm = 'CRC32' | 'CRC32C' | 'CRC64NVME' | 'SHA1' | 'SHA256'

export interface ObjectMeta {
  size: number
  /** Without quotes. */
  etag: string
  /** Stored response headers (Content-Type, Cache-Control, x-amz-meta-*, ...), lowercase names. */
  headers: Array<[name: string, value: string]>
  /** Full-object or composite checksum, base64, if the client sent one. */
  checksum?: { algorithm: ChecksumAlgorithm; value: string; type: 'FULL_OBJECT' | 'COMPOSITE' }
  /**
   * Present when the version's data is encrypted at rest, absent in plaintext versions (and in
   * every row written before encryption existed). With SSE-C, `headers` is empty and `checksum`
   * absent, both being sealed in `encryption.inner`; with SSE-S3 they stay in clear (AWS encrypts
   * object data, not metadata). In both cases the data (inline bytes or blocks) is encrypted and
   * `size` is the plaintext size.
   */
  encryption?: ObjectEncryption
}

/** How a version is encrypted: with a customer key (SSE-C) or a data key of its own (SSE-S3). */
export type ObjectEncryption = SseCEncryption | SseS3Encryption

/** The SSE-C marker of a version (the key itself is never stored). */
export interface SseCEncryption {
  alg: 'AES256'
  /** MD5 of the customer key, to recognise it. */
  keyMd5: Uint8Array
  /** The version's headers (and checksum), encrypted. */
  inner: Uint8Array
}

/**
 * The SSE-S3 marker of a version: its random data key, wrapped (AES-256-GCM) by the node master
 * key `keyId` (`[s3_api] sse_master_key`). Rows written before SSE-S3 never have it.
 */
export interface SseS3Encryption {
  alg: 'AES256'
  sse: 's3'
  /** Id of the master key that wraps `wrappedKey`. */
  keyId: string
  /** `nonce ‖ encrypted data key ‖ tag`. */
  wrappedKey: Uint8Array
}

/** True for an SSE-S3 marker (SSE-C markers have no `sse` field). */
export const isSseS3 = (e: ObjectEncryption | undefined): e is SseS3Encryption =>
  e !== undefined && (e as Partial<SseS3Encryption>).sse === 's3'

export type ObjectData =
  | { t: 'delete' }
  | { t: 'inline'; meta: ObjectMeta; bytes: Uint8Array }
  | { t: 'firstBlock'; meta: ObjectMeta; hash: Hash }

export type ObjectVersionState =
  | {
      t: 'uploading'
      multipart: boolean
      headers: Array<[string, string]>
      encryption?: ObjectEncryption
      /** Multipart uploads only: `x-amz-checksum-algorithm` of CreateMultipartUpload (absent in older rows). */
      checksumAlgorithm?: ChecksumAlgorithm
      /** Multipart uploads only: `x-amz-checksum-type`, set together with `checksumAlgorithm`. */
      checksumType?: 'FULL_OBJECT' | 'COMPOSITE'
      /**
       * A conditional write's claim on the key (docs/design/conditional-writes.md): a version with
       * no data of its own, written just before the write commits and aborted with the commit.
       * Absent in every other uploading version (and in rows written before conditional writes).
       */
      claim?: true
      /** Multipart uploads only: the tags of CreateMultipartUpload's `x-amz-tagging`, given to the object. */
      tags?: Array<[key: string, value: string]>
    }
  | {
      t: 'complete'
      data: ObjectData
      /**
       * The version's tags (x-amz-tagging, PutObjectTagging), a register of their own: set at
       * write time with the version's timestamp, replaced by PutObjectTagging with a newer one.
       * Absent: no tags (and in every row written before tagging existed).
       */
      tagging?: ObjectTagging
    }
  | { t: 'aborted' }
  /** Deleted by version id (DELETE ?versionId=, lifecycle noncurrent expiry): a tombstone without data. */
  | { t: 'purged' }

/** Object lock retention of one version (PutObjectRetention, x-amz-object-lock-mode/-retain-until-date). */
export interface ObjectRetention {
  mode: 'GOVERNANCE' | 'COMPLIANCE'
  /** Retain until this instant, milliseconds. */
  until: number
}

/** Object lock settings of one version: two last-writer-wins registers. */
export interface ObjectVersionLock {
  retention?: Lww<ObjectRetention | null>
  legalHold?: Lww<boolean>
}

/** An object version's tags, a last-writer-wins register. */
export interface ObjectTagging {
  ts: number
  tags: Array<[key: string, value: string]>
}

export interface ObjectVersion {
  uuid: Uuid
  /** Milliseconds; versions are ordered by (timestamp, uuid). */
  ts: number
  state: ObjectVersionState
  /**
   * Written while the bucket's versioning was enabled: the version has an id of its own and stays
   * when newer versions complete, until purged. Absent: a "null" version, replaced by the next
   * complete null version (Garage's only kind). Fixed when the version is created: every copy of
   * a version carries the same flag.
   */
  keep?: true
  /** Object lock retention and legal hold (absent: none). */
  lock?: ObjectVersionLock
}

export interface ObjectEntry {
  bucketId: Uuid
  key: string
  /** Sorted by (ts, uuid). */
  versions: ObjectVersion[]
}

/**
 * `GTobj2` added `keep`, `lock` and the `purged` state; `GTobj1` rows decode unchanged (all their
 * versions are null versions). Upgrade every node before writing through the new code.
 */
export const objectCodec = defineCodec<ObjectEntry>('GTobj2', [{ marker: 'GTobj1', migrate: (v) => v }])

export const cmpVersion = (a: ObjectVersion, b: ObjectVersion): number => a.ts - b.ts || compareBytes(a.uuid, b.uuid)

export const isComplete = (v: ObjectVersion): boolean => v.state.t === 'complete'

/** A conditional write's claim still in force (docs/design/conditional-writes.md). */
export const isLiveClaim = (v: ObjectVersion): boolean => v.state.t === 'uploading' && v.state.claim === true
/**
 * A version that replaces every older null version: a complete or purged null version. Both
 * states are final (nothing merges them back), so dropping by this rule is stable under merges.
 */
export const supersedes = (v: ObjectVersion): boolean => v.keep !== true && (v.state.t === 'complete' || v.state.t === 'purged')

/** A complete version with data (not a delete marker). */
export const hasData = (v: ObjectVersion): boolean => v.state.t === 'complete' && v.state.data.t !== 'delete'

/**
 * Version states form a join-semilattice: uploading < aborted < complete (two complete states are
 * ordered by their encoding). Garage lets "aborted" override "complete"; that makes the object
 * merge below non-associative (a version could stop being complete after older versions were
 * already dropped because of it), which our CRDT law tests catch. Here a version that completed
 * anywhere stays complete: its blocks were all written before it could complete.
 */
export function mergeVersionState(a: ObjectVersionState, b: ObjectVersionState): ObjectVersionState {
  // A purge is final: a version deleted by id never comes back.
  if (a.t === 'purged' || b.t === 'purged') return { t: 'purged' }
  if (a.t === 'complete' && b.t === 'complete') {
    // Two registers: the data (the larger encoding wins) and the tags (the newer wins; equal
    // timestamps by encoding), each a join on its own, so the pair is one too.
    const data =
      Buffer.compare(
        objectCodec.encode(wrap({ t: 'complete', data: a.data })),
        objectCodec.encode(wrap({ t: 'complete', data: b.data })),
      ) >= 0
        ? a.data
        : b.data
    const tagging = mergeTagging(a.tagging, b.tagging)
    return tagging === undefined ? { t: 'complete', data } : { t: 'complete', data, tagging }
  }
  if (a.t === 'complete') return a
  if (b.t === 'complete') return b
  if (a.t === 'aborted' || b.t === 'aborted') return { t: 'aborted' }
  // The whole state of the larger encoding wins, so its encryption and checksum settings stay with it.
  const chosen = Buffer.compare(objectCodec.encode(wrap(a)), objectCodec.encode(wrap(b))) >= 0 ? a : b
  const merged = { ...chosen, multipart: a.multipart || b.multipart }
  if (a.claim === true || b.claim === true) merged.claim = true
  return merged
}

function mergeTagging(a: ObjectTagging | undefined, b: ObjectTagging | undefined): ObjectTagging | undefined {
  if (a === undefined || b === undefined) return a ?? b
  if (a.ts !== b.ts) return a.ts > b.ts ? a : b
  return Buffer.compare(tagCodec.encode(a), tagCodec.encode(b)) >= 0 ? a : b
}

const tagCodec = defineCodec<ObjectTagging>('GTtag1')

function wrap(state: ObjectVersionState): ObjectEntry {
  return { bucketId: new Uint8Array(0), key: '', versions: [{ uuid: new Uint8Array(0), ts: 0, state }] }
}

export function mergeObjects(a: ObjectEntry, b: ObjectEntry): ObjectEntry {
  const versions = a.versions.map(canonicalVersion)
  for (const bv of b.versions) {
    const v = canonicalVersion(bv)
    let lo = 0
    let hi = versions.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cmpVersion(versions[mid] as ObjectVersion, v) < 0) lo = mid + 1
      else hi = mid
    }
    const at = versions[lo]
    if (at !== undefined && cmpVersion(at, v) === 0) versions[lo] = mergeVersion(at, v)
    else versions.splice(lo, 0, v)
  }
  // Drop every null version older than the last complete (or purged) null version; kept versions
  // stay until purged. Without kept versions this is Garage's rule.
  let last = -1
  for (let i = versions.length - 1; i >= 0; i--) {
    if (supersedes(versions[i] as ObjectVersion)) {
      last = i
      break
    }
  }
  if (last <= 0) return { bucketId: a.bucketId, key: a.key, versions }
  const kept = versions.filter((v, i) => i >= last || v.keep === true)
  return { bucketId: a.bucketId, key: a.key, versions: kept }
}

/**
 * A version with its fields in one order (uuid, ts, state, keep, lock), whatever order its writer
 * used: equal versions then encode equally, which merges and Merkle hashes rely on.
 */
function canonicalVersion(v: ObjectVersion): ObjectVersion {
  const out: ObjectVersion = { uuid: v.uuid, ts: v.ts, state: v.state }
  if (v.keep === true) out.keep = true
  const lock = mergeLock(v.lock, {})
  if (lock !== undefined && (lock.retention !== undefined || lock.legalHold !== undefined)) out.lock = lock
  return out
}

/** Two copies of one version: states joined, lock registers merged (last writer wins). */
function mergeVersion(a: ObjectVersion, b: ObjectVersion): ObjectVersion {
  const out: ObjectVersion = { uuid: a.uuid, ts: a.ts, state: mergeVersionState(a.state, b.state) }
  if (a.keep === true || b.keep === true) out.keep = true
  const lock = mergeLock(a.lock, b.lock)
  if (lock !== undefined) out.lock = lock
  return out
}

function mergeLock(a: ObjectVersionLock | undefined, b: ObjectVersionLock | undefined): ObjectVersionLock | undefined {
  if (a === undefined) return b
  if (b === undefined) return a
  const out: ObjectVersionLock = {}
  const retention =
    a.retention === undefined ? b.retention : b.retention === undefined ? a.retention : mergeLww(a.retention, b.retention)
  if (retention !== undefined) out.retention = retention
  const legalHold =
    a.legalHold === undefined ? b.legalHold : b.legalHold === undefined ? a.legalHold : mergeLww(a.legalHold, b.legalHold)
  if (legalHold !== undefined) out.legalHold = legalHold
  return out
}

/**
 * A row that holds nothing to protect: every version is purged, a kept aborted upload, or a null
 * delete marker. The table's tombstone GC removes it once every holder has this same row.
 */
export function isObjectTombstone(e: ObjectEntry): boolean {
  if (e.versions.length === 0) return false
  return e.versions.every(
    (v) =>
      v.state.t === 'purged' ||
      (v.state.t === 'aborted' && v.keep === true) ||
      (v.state.t === 'complete' && v.state.data.t === 'delete' && v.keep !== true),
  )
}

export interface ObjectTableDeps {
  queueVersion(tx: Transaction, entry: VersionEntry): void
  /** Deletes the multipart upload of a dropped, aborted or completed `uploading{multipart}` version. */
  queueMpu(tx: Transaction, entry: MpuEntry): void
  /** Keeps the bucket counters (index-counter.ts) in step with every change of a row. */
  countObject?(tx: Transaction, previous: ObjectEntry | undefined, next: ObjectEntry | undefined): void
}

export function objectTableSchema(deps: ObjectTableDeps): TableSchema<ObjectEntry> {
  return {
    tableName: 'object',
    codec: objectCodec,
    partitionKey: (e) => e.bucketId,
    sortKey: (e) => utf8(e.key),
    partitionHash: identityPartitionKey,
    merge: mergeObjects,
    isTombstone: isObjectTombstone,
    updated(tx, previous, next) {
      deps.countObject?.(tx, previous, next)
      // A row deleted locally (handed over, or a collected tombstone) only leaves the counters:
      // its versions live on with it on its holders.
      if (previous === undefined || next === undefined) return
      for (const v of previous.versions) {
        const kept = next.versions.find((n) => cmpVersion(n, v) === 0)
        // A conditional write's claim has no version row of its own.
        if (v.state.t === 'uploading' && v.state.claim === true) continue
        // Dropped, aborted or purged here: its version row (and so its blocks) goes.
        const ended = (s: ObjectVersionState) => s.t === 'aborted' || s.t === 'purged'
        // A multipart upload completed here: the upload row goes (its parts' versions with it;
        // the final version holds its own references), as in Garage, so that
        // CompleteMultipartUpload need not wait for that write.
        if (kept?.state.t === 'complete' && v.state.t === 'uploading' && v.state.multipart) {
          deps.queueMpu(tx, deletedMpu(v.uuid, v.ts, next.bucketId, next.key))
          continue
        }
        if (kept === undefined || (ended(kept.state) && !ended(v.state))) {
          const backlink = { t: 'object' as const, bucketId: next.bucketId, key: next.key }
          deps.queueVersion(tx, deletedVersion(v.uuid, backlink))
          if (v.state.t === 'uploading' && v.state.multipart) {
            deps.queueMpu(tx, deletedMpu(v.uuid, v.ts, next.bucketId, next.key))
          }
        }
      }
    },
  }
}
