/**
 * Back-references from blocks to the versions using them (port of garage_model::s3::block_ref_table).
 * Partitioned by block hash, so a block's references live where the block does; its updated hook
 * keeps the block manager's reference counts.
 */
import type { Transaction } from '../../db/db.ts'
import { identityPartitionKey, type TableSchema } from '../../table/schema.ts'
import { defineCodec } from '../../util/codec.ts'
import type { Hash, Uuid } from '../../util/data.ts'

export interface BlockRefEntry {
  block: Hash
  version: Uuid
  deleted: boolean
}

export const blockRefCodec = defineCodec<BlockRefEntry>('GTbrf1')

export interface RefCounter {
  incref(tx: Transaction, hash: Hash): void
  decref(tx: Transaction, hash: Hash): void
}

export function blockRefTableSchema(rc: RefCounter): TableSchema<BlockRefEntry> {
  return {
    tableName: 'block_ref',
    codec: blockRefCodec,
    partitionKey: (e) => e.block,
    sortKey: (e) => e.version,
    partitionHash: identityPartitionKey,
    merge: (a, b) => ({ block: a.block, version: a.version, deleted: a.deleted || b.deleted }),
    isTombstone: (e) => e.deleted,
    // A live reference deleted locally (handed over to the new holders) releases the block too.
    updated(tx, previous, next) {
      const before = previous !== undefined && !previous.deleted
      const after = next !== undefined && !next.deleted
      if (after && !before) rc.incref(tx, next.block)
      if (before && !after) rc.decref(tx, previous.block)
    },
  }
}
