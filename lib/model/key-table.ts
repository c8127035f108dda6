/** The access key table, replicated on every node (port of garage_model::key_table). */
import { randomBytes } from 'node:crypto'
import { defineCodec } from '../util/codec.ts'
import {
  type CrdtMap,
  type Deletable,
  type Lww,
  type LwwMap,
  mergeCrdtMap,
  mergeDeletable,
  mergeLww,
  mergeLwwMap,
} from '../util/crdt/crdt.ts'
import { fromUtf8, utf8 } from '../util/data.ts'
import { hashPartitionKey, type TableSchema } from '../table/schema.ts'
import { type BucketKeyPerm, mergePerm } from './permission.ts'

export interface KeyParams {
  secret: string
  created: number
  name: Lww<string>
  allowCreateBucket: Lww<boolean>
  /** Expiration time in ms since the epoch, or null for never. */
  expiration: Lww<number | null>
  /** Bucket id (hex) → permissions of this key. */
  authorizedBuckets: CrdtMap<BucketKeyPerm>
  /** Bucket names private to this key → bucket id (hex), or null once removed. */
  localAliases: LwwMap<string | null>
}

export interface KeyEntry {
  /** `GK` followed by 24 hex chars. */
  id: string
  state: Deletable<KeyParams>
}

export const keyCodec = defineCodec<KeyEntry>('GTkey1')

export function mergeKeyParams(a: KeyParams, b: KeyParams): KeyParams {
  return {
    // A key's secret never changes; if two copies ever disagree, keep the same one everywhere.
    secret: [a.secret, b.secret].sort()[1] as string,
    created: Math.min(a.created, b.created),
    name: mergeLww(a.name, b.name),
    allowCreateBucket: mergeLww(a.allowCreateBucket, b.allowCreateBucket),
    expiration: mergeLww(a.expiration, b.expiration),
    authorizedBuckets: mergeCrdtMap(a.authorizedBuckets, b.authorizedBuckets, mergePerm),
    localAliases: mergeLwwMap(a.localAliases, b.localAliases),
  }
}

export const keyTableSchema: TableSchema<KeyEntry> = {
  tableName: 'key',
  codec: keyCodec,
  partitionKey: () => new Uint8Array(0),
  sortKey: (e) => utf8(e.id),
  partitionHash: hashPartitionKey,
  merge: (a, b) => ({ id: a.id, state: mergeDeletable(a.state, b.state, mergeKeyParams) }),
  isTombstone: (e) => e.state.deleted,
}

export const keyIdFromSortKey = (sk: Uint8Array): string => fromUtf8(sk)

/** A new key id (`GK` + 24 hex chars) and secret (64 hex chars), as Garage generates them. */
export function generateKeyCredentials(): { id: string; secret: string } {
  return { id: `GK${randomBytes(12).toString('hex')}`, secret: randomBytes(32).toString('hex') }
}

export function newKeyParams(name: string, secret: string, now: number): KeyParams {
  return {
    secret,
    created: now,
    name: { ts: now, v: name },
    allowCreateBucket: { ts: now, v: false },
    expiration: { ts: now, v: null },
    authorizedBuckets: [],
    localAliases: [],
  }
}
