/**
 * The blocks of one object version or multipart part (port of garage_model::s3::version_table).
 * Deleting a version queues the deletion of its block references.
 */
import type { Transaction } from '../../db/db.ts'
import { identityPartitionKey, type TableSchema } from '../../table/schema.ts'
import { defineCodec, type PreviousFormat, type VersionedCodec } from '../../util/codec.ts'
import type { Hash, Uuid } from '../../util/data.ts'
import type { BlockRefEntry } from './block-ref-table.ts'

/**
 * The `versions` repair tombstones a version only when no row references it at two looks at
 * least this far apart. A PutObject of one block (put.ts) and an UploadPart write the version row
 * with its blocks before, or while, they read what they need to write the row that references it
 * (object row, part row); a version met in that window looks like an orphan. The writer gives up
 * (and deletes the version itself) when its commit would come later than
 * {@link VERSION_COMMIT_DEADLINE_MS} after the version was written, well inside this grace.
 */
export const VERSION_REPAIR_GRACE_MS = 10 * 60_000

/** See {@link VERSION_REPAIR_GRACE_MS}: the latest a writer commits after its version row. */
export const VERSION_COMMIT_DEADLINE_MS = 5 * 60_000

/** Where a block sits in its version (Garage's `VersionBlockKey`): sorted by part, then offset. */
export interface VersionBlockKey {
  /** The multipart part the block belongs to; 1 for a plain PUT. */
  partNumber: number
  /** Offset of the block's first byte in its part (plaintext bytes under SSE-C). */
  offset: number
}

/**
 * One block of a version: Garage's map entry `VersionBlockKey { part_number, offset }` →
 * `VersionBlock { hash, size }`, flattened into one record. Build it with {@link versionBlock},
 * which fixes the field order and so the encoded bytes.
 */
export interface VersionBlock extends VersionBlockKey {
  /** Content address of the stored block (of its ciphertext under SSE-C). */
  hash: Hash
  /** Plaintext size of the block in bytes. */
  size: number
}

/** A {@link VersionBlock} with its fields in the canonical order. */
export function versionBlock(partNumber: number, offset: number, hash: Hash, size: number): VersionBlock {
  return { partNumber, offset, hash, size }
}

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

/**
 * `GTver1` stored each block as a tuple `[partNumber, offset, hash, size]`; decoding such a row
 * (from this node's store, or from a peer still on that format) converts its blocks to records.
 */
const V1: PreviousFormat = {
  marker: 'GTver1',
  migrate(value) {
    const v = value as Omit<VersionEntry, 'blocks'> & { blocks: Array<[number, number, Hash, number]> }
    return { ...v, blocks: v.blocks.map(([partNumber, offset, hash, size]) => versionBlock(partNumber, offset, hash, size)) }
  },
}

const versionCodecV2 = defineCodec<VersionEntry>('GTver2', [V1])

/**
 * Version rows: `GTver2` (blocks as records), reading `GTver1` too. Replicas compare encoded
 * bytes, so encoding first puts every block's fields in the canonical order, whatever order
 * the caller built them in.
 */
export const versionCodec: VersionedCodec<VersionEntry> = {
  marker: versionCodecV2.marker,
  encode: (e) =>
    versionCodecV2.encode({ ...e, blocks: e.blocks.map((b) => versionBlock(b.partNumber, b.offset, b.hash, b.size)) }),
  decode: (bytes) => versionCodecV2.decode(bytes),
}

const cmpBlock = (a: VersionBlockKey, b: VersionBlockKey): number => a.partNumber - b.partNumber || a.offset - b.offset

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
      const bx = x as VersionBlock
      const by = y as VersionBlock
      out.push(Buffer.compare(bx.hash, by.hash) >= 0 ? bx : by)
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
      for (const { hash } of previous.blocks) {
        deps.queueBlockRef(tx, { block: hash, version: next.uuid, deleted: true })
      }
    },
  }
}

/** A version tombstone, which removes the version's block references. */
export function deletedVersion(uuid: Uuid, backlink: VersionBacklink): VersionEntry {
  return { uuid, deleted: true, blocks: [], partsEtags: [], backlink }
}
