/**
 * Admin API tokens, replicated on every node (port of garage_model::admin_token_table). A token
 * is `<prefix>.<secret>`; the prefix is the stored id, and only a slow hash of the whole token is
 * kept, so a copy of the metadata does not give access to the admin API.
 */
import { randomBytes } from 'node:crypto'
import { defineCodec } from '../util/codec.ts'
import { type Deletable, type Lww, mergeDeletable, mergeLww } from '../util/crdt/crdt.ts'
import { fromUtf8, utf8 } from '../util/data.ts'
import { hashPartitionKey, type TableSchema } from '../table/schema.ts'

export interface AdminTokenParams {
  /** Creation time, ms since the epoch. */
  created: number
  /** `scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>` of the full token; never changes. */
  tokenHash: string
  name: Lww<string>
  /** Expiration time in ms since the epoch, or null for never. */
  expiration: Lww<number | null>
  /** Endpoint names the token may call, or `['*']` for all of them. Sorted. */
  scope: Lww<string[]>
}

export interface AdminTokenEntry {
  /** 24 hex characters: the part of the token before the dot. */
  prefix: string
  state: Deletable<AdminTokenParams>
}

export const adminTokenCodec = defineCodec<AdminTokenEntry>('GTadt1')

/**
 * Two copies written at the same instant keep only the endpoints both allow: concurrent updates
 * to a scope never widen it (Garage's scope merge is an intersection too).
 */
export function intersectScopes(a: string[], b: string[]): string[] {
  const set = new Set(b)
  return a.filter((x) => set.has(x)).sort()
}

export function mergeAdminTokenParams(a: AdminTokenParams, b: AdminTokenParams): AdminTokenParams {
  return {
    created: Math.min(a.created, b.created),
    // The hash never changes; if two copies ever disagree, keep the same one everywhere.
    tokenHash: [a.tokenHash, b.tokenHash].sort()[1] as string,
    name: mergeLww(a.name, b.name),
    expiration: mergeLww(a.expiration, b.expiration),
    scope: mergeLww(a.scope, b.scope, intersectScopes),
  }
}

export const adminTokenTableSchema: TableSchema<AdminTokenEntry> = {
  tableName: 'admin_token',
  codec: adminTokenCodec,
  partitionKey: () => new Uint8Array(0),
  sortKey: (e) => utf8(e.prefix),
  partitionHash: hashPartitionKey,
  merge: (a, b) => ({ prefix: a.prefix, state: mergeDeletable(a.state, b.state, mergeAdminTokenParams) }),
  isTombstone: (e) => e.state.deleted,
}

export const adminTokenIdFromSortKey = (sk: Uint8Array): string => fromUtf8(sk)

/** A new token: its id (24 hex characters) and the secret bearer string `<id>.<base64url>`. */
export function generateAdminToken(): { prefix: string; token: string } {
  const prefix = randomBytes(12).toString('hex')
  return { prefix, token: `${prefix}.${randomBytes(32).toString('base64url')}` }
}
