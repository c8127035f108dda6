/**
 * In-progress multipart uploads and their parts (port of garage_model::s3::mpu_table). Each
 * uploaded part is a version row of its own; deleting an upload deletes its part versions.
 *
 * Unlike Garage, whose upload row holds every part (so each UploadPart rewrites, re-hashes and
 * re-sends a row that grows with the part count: O(n²) for n parts, Garage issues #662 and
 * #1366), an upload is a partition of rows: the upload row (empty sort key) and one row per part
 * upload (sort key: part number ‖ timestamp, {@link mpuPartSortKey}). UploadPart writes and reads
 * only its own row and the upload row, whatever the part count. Rows written before this change
 * kept their parts in the upload row; readers fold them in ({@link foldMpuRows}), so no migration
 * is needed.
 *
 * Deleting an upload (tombstoning its upload row) tombstones, through the insert queue, every
 * part row this replica holds; a part row that arrives after its upload's tombstone is tombstoned
 * on arrival; a tombstoned part row deletes its part version.
 */
import type { Transaction } from '../../db/db.ts'
import { identityPartitionKey, type TableSchema } from '../../table/schema.ts'
import { defineCodec } from '../../util/codec.ts'
import { bytesEqual, compareBytes, type Uuid } from '../../util/data.ts'
import { deletedVersion, type VersionEntry } from './version-table.ts'

export interface MpuPart {
  partNumber: number
  /** When the part upload started; a re-upload of the same number with a later one replaces it. */
  ts: number
  version: Uuid
  etag: string | null
  size: number | null
  checksum: string | null
}

/** Which part upload a part row holds: its sort key. */
export interface MpuPartKey {
  partNumber: number
  ts: number
}

export interface MpuEntry {
  uploadId: Uuid
  deleted: boolean
  /**
   * Sorted by (partNumber, ts). A part row holds its one part (none once deleted); an upload row
   * written by this version holds none (older ones may hold them all).
   */
  parts: MpuPart[]
  ts: number
  bucketId: Uuid
  key: string
  /** Set on a part row, absent on the upload row. */
  partRow?: MpuPartKey
}

export const mpuCodec = defineCodec<MpuEntry>('GTmpu1')

const cmpPart = (a: MpuPartKey, b: MpuPartKey): number => a.partNumber - b.partNumber || a.ts - b.ts

function mergeParts(a: MpuPart[], b: MpuPart[]): MpuPart[] {
  if (b.length === 0) return a
  // The upload row of this version holds no parts: the part rows' (sorted, distinct) parts as is.
  if (a.length === 0) return b
  const byKey = new Map<string, MpuPart>()
  for (const p of a) byKey.set(`${p.partNumber}:${p.ts}`, p)
  for (const p of b) {
    const k = `${p.partNumber}:${p.ts}`
    const q = byKey.get(k)
    if (q === undefined) byKey.set(k, p)
    else if (!bytesEqual(q.version, p.version)) {
      // Two writes of the part number chose the same timestamp: the larger version id wins,
      // whole, whatever the order of arrival (replicas converge; the other write sees the row
      // is not its own and writes again above it).
      byKey.set(k, compareBytes(q.version, p.version) >= 0 ? q : p)
    } else byKey.set(k, { ...q, etag: q.etag ?? p.etag, size: q.size ?? p.size, checksum: q.checksum ?? p.checksum })
  }
  return [...byKey.values()].sort(cmpPart)
}

/** Sort key of a part row: part number (u16 BE, 1..10,000) then timestamp (u64 BE). */
export function mpuPartSortKey(k: MpuPartKey): Uint8Array {
  const out = new Uint8Array(10)
  const view = new DataView(out.buffer)
  view.setUint16(0, k.partNumber)
  view.setBigUint64(2, BigInt(Math.max(0, Math.floor(k.ts))))
  return out
}

/** The part of a part row's sort key (undefined if it is not one). */
export function parseMpuPartSortKey(k: Uint8Array): MpuPartKey | undefined {
  if (k.length !== 10) return undefined
  const view = new DataView(k.buffer, k.byteOffset, k.byteLength)
  return { partNumber: view.getUint16(0), ts: Number(view.getBigUint64(2)) }
}

export interface MpuTableDeps {
  queueVersion(tx: Transaction, entry: VersionEntry): void
  /** Queues an insert into this table (the tombstone of a part row). */
  queueMpu(tx: Transaction, entry: MpuEntry): void
  /** The upload row of `uploadId` as stored on this node, in the transaction. */
  localUpload(tx: Transaction, uploadId: Uuid): MpuEntry | undefined
  /** The sort keys of the part rows of `uploadId` stored on this node, in the transaction. */
  localPartKeys(tx: Transaction, uploadId: Uuid): Iterable<Uint8Array>
}

export function mpuTableSchema(deps: MpuTableDeps): TableSchema<MpuEntry> {
  return {
    tableName: 'multipart_upload',
    codec: mpuCodec,
    partitionKey: (e) => e.uploadId,
    sortKey: (e) => (e.partRow === undefined ? new Uint8Array(0) : mpuPartSortKey(e.partRow)),
    partitionHash: identityPartitionKey,
    merge(a, b) {
      const deleted = a.deleted || b.deleted
      const out: MpuEntry = { ...a, deleted, parts: deleted ? [] : mergeParts(a.parts, b.parts) }
      return out
    },
    isTombstone: (e) => e.deleted,
    updated(tx, previous, next) {
      if (next === undefined) return
      if (next.partRow !== undefined && !next.deleted) {
        // A part written after its upload was deleted (a late write or a late sync) goes too.
        if (deps.localUpload(tx, next.uploadId)?.deleted === true) deps.queueMpu(tx, { ...next, deleted: true, parts: [] })
        return
      }
      if (previous === undefined || previous.deleted || !next.deleted) return
      for (const p of previous.parts) {
        deps.queueVersion(tx, deletedVersion(p.version, { t: 'mpu', uploadId: next.uploadId }))
      }
      if (next.partRow === undefined) {
        // Built from the sort keys alone (no row decoded: CompleteMultipartUpload of 10,000 parts
        // pays this in its transaction); a row already deleted merges to itself, a no-op.
        for (const sortKey of deps.localPartKeys(tx, next.uploadId)) {
          const partRow = parseMpuPartSortKey(sortKey)
          if (partRow === undefined) continue
          const { uploadId, ts, bucketId, key } = next
          deps.queueMpu(tx, { uploadId, deleted: true, parts: [], ts, bucketId, key, partRow })
        }
      }
    },
  }
}

/** An upload tombstone, which deletes the upload's part rows and part versions. */
export function deletedMpu(uploadId: Uuid, ts: number, bucketId: Uuid, key: string): MpuEntry {
  return { uploadId, deleted: true, parts: [], ts, bucketId, key }
}

/** The row of one part upload of `upload` (its only part: `part`). */
export function mpuPartRow(upload: MpuEntry, part: MpuPart): MpuEntry {
  return {
    uploadId: upload.uploadId,
    deleted: false,
    parts: [part],
    ts: upload.ts,
    bucketId: upload.bucketId,
    key: upload.key,
    partRow: { partNumber: part.partNumber, ts: part.ts },
  }
}

/**
 * The upload as one entry, from the rows of its partition (in any order): the upload row's
 * fields, and the parts of every live part row plus those an older upload row holds. Undefined
 * without an upload row. A deleted upload has no parts.
 */
export function foldMpuRows(rows: Iterable<MpuEntry>): MpuEntry | undefined {
  let upload: MpuEntry | undefined
  const parts: MpuPart[] = []
  for (const r of rows) {
    if (r.partRow === undefined) upload = r
    else if (!r.deleted) parts.push(...r.parts)
  }
  if (upload === undefined) return undefined
  if (upload.deleted) return upload
  return { ...upload, parts: mergeParts(upload.parts, parts.sort(cmpPart)) }
}
