/** The bucket table, replicated on every node (port of garage_model::bucket_table). */
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
  updateLww,
} from '../util/crdt/crdt.ts'
import type { Uuid } from '../util/data.ts'
import { hashPartitionKey, type TableSchema } from '../table/schema.ts'
import { type BucketKeyPerm, mergePerm } from './permission.ts'

export interface WebsiteConfig {
  indexDocument: string
  errorDocument: string | null
  /** Evaluated in order by the website endpoint; the first that applies wins. */
  routingRules: RoutingRule[]
}

/** One website routing rule (PutBucketWebsite's `<RoutingRule>`). */
export interface RoutingRule {
  /** Null: the rule applies to every request. */
  condition: { keyPrefix: string | null; httpErrorCode: number | null } | null
  redirect: {
    hostname: string | null
    protocol: string | null
    /** 301, 302, 303, 307 or 308 redirect; 200 or 404 serve the new key in place (Garage's rewrites). */
    httpCode: number
    replaceKeyPrefix: string | null
    replaceKey: string | null
  }
}

export interface CorsRule {
  id: string | null
  maxAgeSeconds: number | null
  allowOrigins: string[]
  allowMethods: string[]
  allowHeaders: string[]
  exposeHeaders: string[]
}

export interface BucketQuotas {
  maxSize: number | null
  maxObjects: number | null
}

/**
 * A bucket's default encryption (PutBucketEncryption): new objects written without encryption
 * headers are encrypted with it. Only SSE-S3 (`AES256`) exists here.
 */
export interface BucketEncryption {
  sseAlgorithm: 'AES256'
  /** Stored and echoed as given; it only means something to AWS KMS. */
  bucketKeyEnabled: boolean
}

/** A bucket's versioning state (PutBucketVersioning); never set on a bucket never versioned. */
export type BucketVersioning = 'Enabled' | 'Suspended'

/** Object lock of a bucket (CreateBucket with object lock, PutObjectLockConfiguration). */
export interface BucketObjectLock {
  /** Object lock is enabled (it cannot be disabled again, as on AWS). */
  enabled: true
  /** Default retention of new versions; null: none. */
  rule: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number | null; years: number | null } | null
}

export interface BucketParams {
  created: number
  /** Key id → permissions on this bucket. */
  authorizedKeys: CrdtMap<BucketKeyPerm>
  /** Global alias names → active. */
  aliases: LwwMap<boolean>
  /** `<key id>:<name>` → active. */
  localAliases: LwwMap<boolean>
  website: Lww<WebsiteConfig | null>
  cors: Lww<CorsRule[] | null>
  /** Lifecycle rules, stored as parsed by the S3 API (opaque here). */
  lifecycle: Lww<unknown[] | null>
  quotas: Lww<BucketQuotas>
  /** Default encryption of new objects (absent from `GTbkt1` rows, migrated to null). */
  encryption: Lww<BucketEncryption | null>
  /**
   * The bucket policy (PutBucketPolicy), the JSON text as the client sent it (validated by the
   * S3 API). Optional fields below are absent from rows written before they existed, which reads
   * as unset: no codec version is needed for them.
   */
  policy?: Lww<string | null>
  /** Canned ACL `public-read` (PutBucketAcl, `x-amz-acl`): anonymous reads of the bucket. */
  publicRead?: Lww<boolean>
  /** Bucket tags (PutBucketTagging), in the order given. */
  tags?: Lww<Array<[string, string]> | null>
  /** Versioning state (PutBucketVersioning); absent: never versioned. */
  versioning?: Lww<BucketVersioning | null>
  /** Object lock configuration (absent: never enabled). */
  objectLock?: Lww<BucketObjectLock | null>
}

/** Merges two optional registers (absent = never set). */
function mergeOptLww<T>(a: Lww<T> | undefined, b: Lww<T> | undefined): Lww<T> | undefined {
  return a === undefined ? b : b === undefined ? a : mergeLww(a, b)
}

/** An optional register set to `v` (created when absent). */
export function setOptLww<T>(old: Lww<T> | undefined, v: T, now: number): Lww<T> {
  return old === undefined ? { ts: now, v } : updateLww(old, v, now)
}

export interface BucketEntry {
  id: Uuid
  state: Deletable<BucketParams>
}

/**
 * `GTbkt2` added `encryption`; `GTbkt1` rows (read from lmdb or received from a peer) get it
 * unset. Upgrade every node before writing through the new code (see docs/design/data-path.md).
 */
export const bucketCodec = defineCodec<BucketEntry>('GTbkt2', [
  {
    marker: 'GTbkt1',
    migrate: (v) => {
      const e = v as { id: Uuid; state: Deletable<Omit<BucketParams, 'encryption'>> }
      if (e.state.deleted) return e
      return { id: e.id, state: { deleted: false, value: { ...e.state.value, encryption: { ts: 0, v: null } } } }
    },
  },
])

export function mergeBucketParams(a: BucketParams, b: BucketParams): BucketParams {
  return {
    created: Math.min(a.created, b.created),
    authorizedKeys: mergeCrdtMap(a.authorizedKeys, b.authorizedKeys, mergePerm),
    aliases: mergeLwwMap(a.aliases, b.aliases),
    localAliases: mergeLwwMap(a.localAliases, b.localAliases),
    website: mergeLww(a.website, b.website),
    cors: mergeLww(a.cors, b.cors),
    lifecycle: mergeLww(a.lifecycle, b.lifecycle),
    quotas: mergeLww(a.quotas, b.quotas),
    encryption: mergeLww(a.encryption, b.encryption),
    ...optional('policy', mergeOptLww(a.policy, b.policy)),
    ...optional('publicRead', mergeOptLww(a.publicRead, b.publicRead)),
    ...optional('tags', mergeOptLww(a.tags, b.tags)),
    ...optional('versioning', mergeOptLww(a.versioning, b.versioning)),
    ...optional('objectLock', mergeOptLww(a.objectLock, b.objectLock)),
  }
}

/** `{ [name]: v }`, or nothing when `v` is undefined (an absent field stays absent in the encoding). */
const optional = <K extends string, V>(name: K, v: V | undefined): { [P in K]?: V } =>
  (v === undefined ? {} : { [name]: v }) as { [P in K]?: V }

export function newBucketParams(now: number): BucketParams {
  return {
    created: now,
    authorizedKeys: [],
    aliases: [],
    localAliases: [],
    website: { ts: 0, v: null },
    cors: { ts: 0, v: null },
    lifecycle: { ts: 0, v: null },
    quotas: { ts: 0, v: { maxSize: null, maxObjects: null } },
    encryption: { ts: 0, v: null },
  }
}

export const bucketTableSchema: TableSchema<BucketEntry> = {
  tableName: 'bucket_v2',
  codec: bucketCodec,
  partitionKey: () => new Uint8Array(0),
  sortKey: (e) => e.id,
  partitionHash: hashPartitionKey,
  merge: (a, b) => ({ id: a.id, state: mergeDeletable(a.state, b.state, mergeBucketParams) }),
  isTombstone: (e) => e.state.deleted,
}
