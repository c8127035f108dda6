/** Global bucket names, replicated on every node (port of garage_model::bucket_alias_table). */
import { defineCodec } from '../util/codec.ts'
import { type Lww, mergeLww } from '../util/crdt/crdt.ts'
import { type Uuid, utf8 } from '../util/data.ts'
import { hashPartitionKey, type TableSchema } from '../table/schema.ts'

export interface BucketAliasEntry {
  name: string
  /** The bucket the name points to, or null once unaliased. */
  state: Lww<Uuid | null>
}

export const bucketAliasCodec = defineCodec<BucketAliasEntry>('GTbal1')

export const bucketAliasTableSchema: TableSchema<BucketAliasEntry> = {
  tableName: 'bucket_alias',
  codec: bucketAliasCodec,
  partitionKey: () => new Uint8Array(0),
  sortKey: (e) => utf8(e.name),
  partitionHash: hashPartitionKey,
  merge: (a, b) => ({ name: a.name, state: mergeLww(a.state, b.state) }),
  isTombstone: (e) => e.state.v === null,
}
