/**
 * The blocks of one object version or multipart part (port of garage_model::s3::version_table).
 * Deleting a version queues the deletion of its block references.
 */
import type { Transaction } from '../../db/db.ts'
import { identityPartitionKey, type TableSchema } from '../../table/schema.ts'
import { defineCodec } from '../../util/codec.ts'
import type { Hash, Uuid } from '../../util/data.ts'
import type { BlockRefEntry } from './block-ref-table.ts'

/** One block of a version: its part number and offset in the part, its hash and size. */
export type VersionBlock = [partNumber: number, offset: number, hash: Hash, size: number]

export type VersionBacklink = { t: 'object'; bucketId: Uuid; key: string } | { t: 'mpu'; uploadId: Uuid }

export interface VersionEntry {
  uuid: Uuid
  deleted: boolean
  /** Sorted by (part number, offset). Emptied once deleted. */
  blocks: VersionBlock[]
  /** Part number → ETag, for multipart uploads. */
  partsEtags: Array<[partNumber: number, etag: string]>
  backlink: VersionBacklink
}

export const versionCodec = defineCodec<VersionEntry>('GTver1')

const cmpBlock = (a: VersionBlock, b: VersionBlock): number => a[0] - b[0] || a[1] - b[1]

function mergeBlocks(a: VersionBlock[], b: VersionBlock[]): VersionBlock[] {
  if (b.length === 0) return a
  if (a.length === 0) return b
  const out: VersionBlock[] = []
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    const x = a[i]
    const y = b[j]
    const c = x === undefined ? 1 : y === undefined ? -1 : cmpBlock(x, y)
    if (c < 0) {
      out.push(x as VersionBlock)
      i++
    } else if (c > 0) {
      out.push(y as VersionBlock)
      j++
    } else {
      // Same slot written twice: keep the larger hash, so every replica picks the same one.
      out.push(Buffer.compare((x as VersionBlock)[2], (y as VersionBlock)[2]) >= 0 ? (x as VersionBlock) : (y as VersionBlock))
      i++
      j++
    }
  }
  return out
}

function mergeEtags(a: Array<[number, string]>, b: Array<[number, string]>): Array<[number, string]> {
  const m = new Map<number, string>(a)
  for (const [p, e] of b) {
    const cur = m.get(p)
    m.set(p, cur === undefined || e > cur ? e : cur)
  }
  return [...m].sort((x, y) => x[0] - y[0])
}

export interface VersionTableDeps {
  queueBlockRef(tx: Transaction, entry: BlockRefEntry): void
}

export function versionTableSchema(deps: VersionTableDeps): TableSchema<VersionEntry> {
  return {
    tableName: 'version',
    codec: versionCodec,
    partitionKey: (e) => e.uuid,
    sortKey: () => new Uint8Array(0),
    partitionHash: identityPartitionKey,
    merge(a, b) {
      const deleted = a.deleted || b.deleted
      return {
        uuid: a.uuid,
        deleted,
        blocks: deleted ? [] : mergeBlocks(a.blocks, b.blocks),
        partsEtags: deleted ? [] : mergeEtags(a.partsEtags, b.partsEtags),
        backlink: a.backlink,
      }
    },
    isTombstone: (e) => e.deleted,
    updated(tx, previous, next) {
      // A version deleted locally (handed over, or a collected tombstone) stays on its holders.
      if (previous === undefined || next === undefined || previous.deleted || !next.deleted) return
      for (const [, , hash] of previous.blocks) {
        deps.queueBlockRef(tx, { block: hash, version: next.uuid, deleted: true })
      }
    },
  }
}

/** A version tombstone, which removes the version's block references. */
export function deletedVersion(uuid: Uuid, backlink: VersionBacklink): VersionEntry {
  return { uuid, deleted: true, blocks: [], partsEtags: [], backlink }
}
