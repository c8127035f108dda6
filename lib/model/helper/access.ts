/**
 * Who is asking and what they may touch: the one resolver of access keys and bucket names, and
 * the one permission check, used by every request path (S3 requests and their copy source,
 * PostObject, the website endpoint, the admin API's lookups).
 *
 * ## Read policy: local first, quorum on a local miss
 *
 * The key, bucket and bucket_alias tables are full-copy tables: every node with a role holds all
 * of them, receives every write (a write waits for a majority) and is synced by anti-entropy. So
 * the local copy answers almost every lookup, with no round trip; this is the hot path of every
 * request (Garage's "fast" local resolution, src/model/helper/bucket.rs).
 *
 * A local miss is not proof of absence on a cluster: a node that just joined (or has no role yet)
 * may not hold the row, and an alias created a moment ago through another node may not have
 * reached this one. So on a miss, and only in a cluster, the row is read at quorum. A name or key
 * id that the quorum read does not find either is remembered for {@link NEGATIVE_CACHE_MS}, so a
 * client retrying an unknown name costs one cluster read per interval, not one per request. The
 * negative cache is consulted only after a local miss: a row that reaches this node is used at once.
 *
 * What the policy does not give: read-after-write across nodes for a *change* of an existing row
 * (a revoked permission, an alias moved to another bucket) is seen once the write reaches this
 * node (at once on nodes the write quorum included, within a sync period otherwise). Management
 * operations that decide a write from what they read (CreateBucket, alias and permission changes,
 * `node.buckets`) do not use this resolver: they read at quorum (`BucketHelper`, `KeyHelper`).
 * @module
 */
import { crdtMapGet, lwwMapGet } from '../../util/crdt/crdt.ts'
import { fromHex, toHex, type Uuid, utf8 } from '../../util/data.ts'
import { ModelError, unreachable } from '../../util/errors.ts'
import type { Table } from '../../table/table.ts'
import type { BucketAliasEntry } from '../bucket-alias-table.ts'
import type { BucketEntry, BucketParams } from '../bucket-table.ts'
import type { KeyEntry } from '../key-table.ts'
import type { ExistingKey } from './key.ts'
import { couldBeAccessKeyId, couldBeBucketName } from './names.ts'

/** How long a name or key id that a quorum read did not find is refused without reading again. @internal */
export const NEGATIVE_CACHE_MS = 10_000
/** At most this many names (and as many key ids) are remembered as unknown. */
const NEGATIVE_CACHE_MAX = 1_000

const EMPTY = new Uint8Array(0)

/** A permission a key may hold on a bucket. @internal */
export type BucketPermission = 'read' | 'write' | 'owner'

/** A bucket a name resolved to: its id and current parameters. @internal */
export interface ResolvedBucket {
  id: Uuid
  params: BucketParams
}

/** @internal */
export interface AccessTables {
  bucket: Table<BucketEntry>
  alias: Table<BucketAliasEntry>
  key: Table<KeyEntry>
}

/**
 * Resolves access keys and bucket names with the read policy of this module, and checks
 * permissions. Built once per node by `Garage` (`garage.access`).
 * @internal
 */
export class AccessResolver {
  readonly #t: AccessTables
  readonly #cluster: boolean
  readonly #unknownKeys = new ExpiringSet(NEGATIVE_CACHE_MS, NEGATIVE_CACHE_MAX)
  readonly #unknownNames = new ExpiringSet(NEGATIVE_CACHE_MS, NEGATIVE_CACHE_MAX)

  /** `cluster`: whether this node is part of a cluster (else the local copy is the only one). */
  constructor(tables: AccessTables, options: { cluster: boolean }) {
    this.#t = tables
    this.#cluster = options.cluster
  }

  /**
   * The local copy of an access key, or undefined (deleted, unknown here, or not a possible key
   * id). Only for a synchronous first try (the SigV4 check); then {@link resolveKey}.
   */
  localKey(id: string): ExistingKey | undefined {
    if (!couldBeAccessKeyId(id)) return undefined
    return existingKey(this.#t.key.data.readShared(EMPTY, utf8(id)))
  }

  /**
   * An access key by id, with this module's policy: the local copy, else (in a cluster) a quorum
   * read, unless the id was found unknown in the last {@link NEGATIVE_CACHE_MS}.
   * @returns undefined for an unknown or deleted key.
   * @throws QuorumError / TimeoutError when the quorum read fails.
   */
  async resolveKey(id: string): Promise<ExistingKey | undefined> {
    if (!couldBeAccessKeyId(id)) return undefined
    const local = existingKey(this.#t.key.data.readShared(EMPTY, utf8(id)))
    if (local !== undefined || !this.#cluster || this.#unknownKeys.has(id)) return local
    const fetched = existingKey(await this.#t.key.get(EMPTY, utf8(id)))
    if (fetched === undefined) this.#unknownKeys.add(id)
    return fetched
  }

  /**
   * The bucket `name` designates for `key` (its local alias first, then a global alias), with
   * this module's policy for each row read (the alias, then the bucket).
   * @throws {ModelError} `NoSuchBucket` for a name that designates no live bucket (no table is
   *   read for a name no bucket can have).
   * @throws QuorumError / TimeoutError when a quorum read fails.
   */
  async resolveBucket(name: string, key?: ExistingKey): Promise<ResolvedBucket> {
    const bucket = await this.findBucket(name, key)
    if (bucket === undefined) throw new ModelError('NoSuchBucket', 'The specified bucket does not exist')
    return bucket
  }

  /** As {@link resolveBucket}, answering undefined for a name that designates no live bucket. */
  async findBucket(name: string, key?: ExistingKey): Promise<ResolvedBucket | undefined> {
    let id = this.#aliasLocal(name, key)
    if (id === undefined && this.#cluster && couldBeBucketName(name)) {
      const cacheKey = key === undefined ? `/${name}` : `${key.id}/${name}`
      if (this.#unknownNames.has(cacheKey)) return undefined
      id = await this.#aliasAtQuorum(name, key)
      if (id === undefined) this.#unknownNames.add(cacheKey)
    }
    if (id === undefined) return undefined
    let entry = this.#t.bucket.data.readShared(EMPTY, id)
    if (entry === undefined && this.#cluster) entry = await this.#t.bucket.get(EMPTY, id)
    return entry === undefined || entry.state.deleted ? undefined : { id, params: entry.state.value }
  }

  /**
   * The local step of {@link resolveBucket} alone: the bucket a *global* name designates in this
   * node's copy, or undefined. Only where no network wait is acceptable: the CORS headers of an
   * error answer (the request already failed, perhaps because no quorum answers).
   */
  localGlobalBucket(name: string): ResolvedBucket | undefined {
    const id = this.#aliasLocal(name, undefined)
    if (id === undefined) return undefined
    const entry = this.#t.bucket.data.readShared(EMPTY, id)
    return entry === undefined || entry.state.deleted ? undefined : { id, params: entry.state.value }
  }

  /** True when `key` holds permission `needed` on bucket `bucketId`. */
  hasBucketPermission(key: ExistingKey, bucketId: Uuid, needed: BucketPermission): boolean {
    const p = crdtMapGet(key.state.value.authorizedBuckets, toHex(bucketId))
    if (p === undefined) return false
    switch (needed) {
      case 'read':
        return p.read
      case 'write':
        return p.write
      case 'owner':
        return p.owner
      default:
        throw unreachable(needed)
    }
  }

  /**
   * Checks that `key` holds permission `needed` on bucket `bucketId` (the key's own copy of its
   * permissions, as resolved with the request). `message` is the refusal's text.
   * @throws {ModelError} `Forbidden` (each API answers its AccessDenied).
   */
  checkBucketPermission(key: ExistingKey, bucketId: Uuid, needed: BucketPermission, message = 'Access Denied'): void {
    if (!this.hasBucketPermission(key, bucketId, needed)) throw new ModelError('Forbidden', message)
  }

  /**
   * Checks that `key` may still be used: a key past its `expiration` is refused on every API,
   * however it signed its request.
   * @throws {ModelError} `Forbidden` (each API answers its AccessDenied).
   */
  checkKeyActive(key: ExistingKey, now = Date.now()): void {
    const expiration = key.state.value.expiration.v
    if (expiration !== null && expiration <= now) throw new ModelError('Forbidden', 'The access key has expired')
  }

  /** The bucket id of an alias in the local copy (the key's local alias first). */
  #aliasLocal(name: string, key: ExistingKey | undefined): Uuid | undefined {
    // A name no bucket can have names none: no table is read (an over-long one could not be).
    if (!couldBeBucketName(name)) return undefined
    if (key !== undefined) {
      const local = lwwMapGet(key.state.value.localAliases, name)
      if (local !== undefined) return local === null ? undefined : fromHex(local)
    }
    return this.#t.alias.data.readShared(EMPTY, utf8(name))?.state.v ?? undefined
  }

  /** As {@link #aliasLocal}, with the key and the alias read at quorum. */
  async #aliasAtQuorum(name: string, key: ExistingKey | undefined): Promise<Uuid | undefined> {
    if (key !== undefined) {
      const fresh = existingKey(await this.#t.key.get(EMPTY, utf8(key.id)))
      const local = fresh === undefined ? undefined : lwwMapGet(fresh.state.value.localAliases, name)
      if (local !== undefined) return local === null ? undefined : fromHex(local)
    }
    const alias = await this.#t.alias.get(EMPTY, utf8(name))
    return alias?.state.v ?? undefined
  }
}

function existingKey(k: KeyEntry | undefined): ExistingKey | undefined {
  return k === undefined || k.state.deleted ? undefined : (k as ExistingKey)
}

/** A bounded set whose members expire after `ttlMs`. */
class ExpiringSet {
  readonly #ttlMs: number
  readonly #max: number
  readonly #until = new Map<string, number>()
  constructor(ttlMs: number, max: number) {
    this.#ttlMs = ttlMs
    this.#max = max
  }
  has(v: string): boolean {
    const until = this.#until.get(v)
    if (until === undefined) return false
    if (until > Date.now()) return true
    this.#until.delete(v)
    return false
  }
  add(v: string): void {
    if (this.#until.size >= this.#max) {
      // Drop the oldest entry (Map keeps insertion order).
      const first = this.#until.keys().next()
      if (first.done !== true) this.#until.delete(first.value)
    }
    this.#until.set(v, Date.now() + this.#ttlMs)
  }
}
