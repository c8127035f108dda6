/**
 * In-progress multipart uploads and their parts (port of garage_model::s3::mpu_table). Each
 * uploaded part is a version row of its own; deleting an upload deletes its part versions.
 */
import type { Transaction } from '../../db/db.ts'
import { identityPartitionKey, type TableSchema } from '../../table/schema.ts'
import { defineCodec } from '../../util/codec.ts'
import type { Uuid } from '../../util/data.ts'
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

export interface MpuEntry {
  uploadId: Uuid
  deleted: boolean
  /** Sorted by (partNumber, ts). */
  parts: MpuPart[]
  ts: number
  bucketId: Uuid
  key: string
}

export const mpuCodec = defineCodec<MpuEntry>('GTmpu1')

const cmpPart = (a: MpuPart, b: MpuPart): number => a.partNumber - b.partNumber || a.ts - b.ts

function mergeParts(a: MpuPart[], b: MpuPart[]): MpuPart[] {
  const all = [...a]
  for (const p of b) {
    const i = all.findIndex((q) => cmpPart(q, p) === 0)
    if (i < 0) all.push(p)
    else {
      const q = all[i] as MpuPart
      all[i] = {
        ...q,
        etag: q.etag ?? p.etag,
        size: q.size ?? p.size,
        checksum: q.checksum ?? p.checksum,
      }
    }
  }
  return all.sort(cmpPart)
}

export interface MpuTableDeps {
  queueVersion(tx: Transaction, entry: VersionEntry): void
}

export function mpuTableSchema(deps: MpuTableDeps): TableSchema<MpuEntry> {
  return {
    tableName: 'multipart_upload',
    codec: mpuCodec,
    partitionKey: (e) => e.uploadId,
    sortKey: () => new Uint8Array(0),
    partitionHash: identityPartitionKey,
    merge(a, b) {
      const deleted = a.deleted || b.deleted
      return { ...a, deleted, parts: deleted ? [] : mergeParts(a.parts, b.parts) }
    },
    isTombstone: (e) => e.deleted,
    updated(tx, previous, next) {
      if (previous === undefined || next === undefined || previous.deleted || !next.deleted) return
      for (const p of previous.parts) {
        deps.queueVersion(tx, deletedVersion(p.version, { t: 'mpu', uploadId: next.uploadId }))
      }
    },
  }
}

/** An upload tombstone, which deletes the upload's part versions. */
export function deletedMpu(uploadId: Uuid, ts: number, bucketId: Uuid, key: string): MpuEntry {
  return { uploadId, deleted: true, parts: [], ts, bucketId, key }
}
