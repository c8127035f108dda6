/**
 * Bucket operations that span the bucket, alias and key tables (port of
 * garage_model::helper::{bucket, locked}). Every change is written to both sides of a relation
 * (bucket ↔ alias, bucket ↔ key) so each table can answer on its own.
 */
import { crdtMapGet, crdtMapPut, lwwMapGet, lwwMapSet, updateLww } from '../../util/crdt/crdt.ts'
import { genUuid, toHex, type Uuid, fromHex, utf8 } from '../../util/data.ts'
import { ModelError } from '../../util/errors.ts'
import { nowMsec } from '../../util/time.ts'
import type { Table } from '../../table/table.ts'
import type { BucketAliasEntry } from '../bucket-alias-table.ts'
import { type BucketEntry, type BucketParams, newBucketParams } from '../bucket-table.ts'
import type { KeyEntry, KeyParams } from '../key-table.ts'
import { type CounterEntry, counterIsZero } from '../index-counter.ts'
import { type BucketKeyPerm, mergePerm, NO_PERMISSIONS } from '../permission.ts'
import { hasData, type ObjectEntry } from '../s3/object-table.ts'
import type { MpuEntry } from '../s3/mpu-table.ts'
import {
  checkBucketNameForLookup,
  couldBeAccessKeyId,
  couldBeBucketName,
  INVALID_BUCKET_NAME_MESSAGE,
  isValidBucketName,
} from './names.ts'

export { INVALID_BUCKET_NAME_MESSAGE, isValidBucketName } from './names.ts'

export interface BucketTables {
  bucket: Table<BucketEntry>
  alias: Table<BucketAliasEntry>
  key: Table<KeyEntry>
  object: Table<ObjectEntry>
  mpu: Table<MpuEntry>
  /** K2V's index counters: a bucket holding K2V items is not empty (Garage's `is_bucket_empty`). */
  k2vIndex?: { table: Table<CounterEntry>; storageNodes(): string[] }
}

export class BucketHelper {
  readonly #t: BucketTables
  readonly #allowPunycode: boolean
  constructor(tables: BucketTables, options: { allowPunycode: boolean }) {
    this.#t = tables
    this.#allowPunycode = options.allowPunycode
  }

  checkName(name: string): void {
    if (!isValidBucketName(name, this.#allowPunycode)) {
      throw new ModelError('InvalidBucketName', `${name}: ${INVALID_BUCKET_NAME_MESSAGE}`)
    }
  }

  /**
   * The bucket a name designates for `keyId` (its local alias first, then a global alias), read
   * at quorum. For management operations that decide a write from the answer (CreateBucket,
   * `node.buckets`); request paths resolve names with `AccessResolver.resolveBucket`
   * (`garage.access`: local first, quorum on a miss; see helper/access.ts).
   */
  async resolve(name: string, keyId?: string): Promise<Uuid | undefined> {
    if (!couldBeBucketName(name)) return undefined
    if (keyId !== undefined) {
      const key = await this.#t.key.get(new Uint8Array(0), utf8(keyId))
      if (key !== undefined && !key.state.deleted) {
        const local = lwwMapGet(key.state.value.localAliases, name)
        if (local !== undefined) return local === null ? undefined : fromHex(local)
      }
    }
    const alias = await this.#t.alias.get(new Uint8Array(0), utf8(name))
    return alias?.state.v ?? undefined
  }

  async getExisting(id: Uuid): Promise<BucketEntry & { state: { deleted: false; value: BucketParams } }> {
    const b = await this.#t.bucket.get(new Uint8Array(0), id)
    if (b === undefined || b.state.deleted) throw new ModelError('NoSuchBucket', `bucket ${toHex(id)} does not exist`)
    return b as BucketEntry & { state: { deleted: false; value: BucketParams } }
  }

  async list(): Promise<Array<BucketEntry & { state: { deleted: false; value: BucketParams } }>> {
    const all = await this.#t.bucket.getRange(new Uint8Array(0), { limit: Number.MAX_SAFE_INTEGER })
    return all.filter((b) => !b.state.deleted) as Array<BucketEntry & { state: { deleted: false; value: BucketParams } }>
  }

  /** Creates an empty bucket with no alias. */
  async create(): Promise<Uuid> {
    const id = genUuid()
    await this.#t.bucket.insert({ id, state: { deleted: false, value: newBucketParams(nowMsec()) } })
    return id
  }

  /** Points the global name `name` at bucket `id`. Fails if the name is taken by another bucket. */
  async setGlobalAlias(id: Uuid, name: string): Promise<void> {
    this.checkName(name)
    const bucket = await this.getExisting(id)
    const alias = await this.#t.alias.get(new Uint8Array(0), utf8(name))
    if (alias?.state.v != null && toHex(alias.state.v) !== toHex(id)) {
      throw new ModelError('BucketAlreadyExists', `global alias ${name} already points to another bucket`)
    }
    const now = nowMsec()
    const state = alias === undefined ? { ts: now, v: id } : updateLww(alias.state, id, now)
    await this.#t.alias.insert({ name, state })
    const params = bucket.state.value
    await this.#putParams(id, { ...params, aliases: lwwMapSet(params.aliases, name, true, now) })
  }

  async unsetGlobalAlias(id: Uuid, name: string): Promise<void> {
    checkBucketNameForLookup(name)
    const bucket = await this.getExisting(id)
    const alias = await this.#t.alias.get(new Uint8Array(0), utf8(name))
    if (alias?.state.v == null || toHex(alias.state.v) !== toHex(id)) {
      throw new ModelError('BadRequest', `bucket ${toHex(id)} has no global alias ${name}`)
    }
    const now = nowMsec()
    await this.#t.alias.insert({ name, state: updateLww(alias.state, null, now) })
    const params = bucket.state.value
    await this.#putParams(id, { ...params, aliases: lwwMapSet(params.aliases, name, false, now) })
  }

  async setLocalAlias(id: Uuid, keyId: string, name: string): Promise<void> {
    this.checkName(name)
    const bucket = await this.getExisting(id)
    const key = await this.#getKey(keyId)
    const existing = lwwMapGet(key.state.value.localAliases, name)
    if (existing != null && existing !== toHex(id)) {
      throw new ModelError('BucketAlreadyExists', `key ${keyId} already has a bucket named ${name}`)
    }
    const now = nowMsec()
    const kp = key.state.value
    await this.#t.key.insert({
      id: keyId,
      state: { deleted: false, value: { ...kp, localAliases: lwwMapSet(kp.localAliases, name, toHex(id), now) } },
    })
    const params = bucket.state.value
    await this.#putParams(id, { ...params, localAliases: lwwMapSet(params.localAliases, `${keyId}:${name}`, true, now) })
  }

  async unsetLocalAlias(id: Uuid, keyId: string, name: string): Promise<void> {
    checkBucketNameForLookup(name)
    const bucket = await this.getExisting(id)
    const key = await this.#getKey(keyId)
    if (lwwMapGet(key.state.value.localAliases, name) !== toHex(id)) {
      throw new ModelError('BadRequest', `key ${keyId} has no local alias ${name} for bucket ${toHex(id)}`)
    }
    const now = nowMsec()
    const kp = key.state.value
    await this.#t.key.insert({
      id: keyId,
      state: { deleted: false, value: { ...kp, localAliases: lwwMapSet(kp.localAliases, name, null, now) } },
    })
    const params = bucket.state.value
    await this.#putParams(id, { ...params, localAliases: lwwMapSet(params.localAliases, `${keyId}:${name}`, false, now) })
  }

  /** Sets the permissions of `keyId` on bucket `id` (on both the key and the bucket). */
  async setPermissions(id: Uuid, keyId: string, perm: Omit<BucketKeyPerm, 'ts'>): Promise<void> {
    const bucket = await this.getExisting(id)
    const key = await this.#getKey(keyId)
    const bucketHex = toHex(id)
    const prevTs = Math.max(
      crdtMapGet(key.state.value.authorizedBuckets, bucketHex)?.ts ?? 0,
      crdtMapGet(bucket.state.value.authorizedKeys, keyId)?.ts ?? 0,
    )
    const p: BucketKeyPerm = { ts: Math.max(nowMsec(), prevTs + 1), ...perm }
    const kp = key.state.value
    await this.#t.key.insert({
      id: keyId,
      state: { deleted: false, value: { ...kp, authorizedBuckets: crdtMapPut(kp.authorizedBuckets, bucketHex, p, mergePerm) } },
    })
    const params = bucket.state.value
    await this.#putParams(id, { ...params, authorizedKeys: crdtMapPut(params.authorizedKeys, keyId, p, mergePerm) })
  }

  /**
   * True when the bucket holds no object, no version (a noncurrent one or a delete marker of a
   * versioned bucket, as AWS counts them), no multipart upload in progress and no K2V item.
   */
  async isEmpty(id: Uuid): Promise<boolean> {
    const objects = await this.#t.object.getRange(id, {
      limit: 1,
      filter: (o) =>
        o.versions.some((v) => hasData(v) || v.state.t === 'uploading' || (v.keep === true && v.state.t === 'complete')),
    })
    if (objects.length > 0) return false
    const k2v = this.#t.k2vIndex
    if (k2v === undefined) return true
    const nodes = k2v.storageNodes()
    const indexes = await k2v.table.getRange(id, { limit: 1, filter: (e) => !counterIsZero(e, nodes) })
    return indexes.length === 0
  }

  /** Deletes an empty bucket, its aliases and every key's permissions on it. */
  async delete(id: Uuid): Promise<void> {
    const bucket = await this.getExisting(id)
    if (!(await this.isEmpty(id))) throw new ModelError('BucketNotEmpty', 'the bucket is not empty')
    const params = bucket.state.value
    for (const [name, , active] of params.aliases) if (active) await this.unsetGlobalAlias(id, name)
    for (const [kn, , active] of params.localAliases) {
      if (!active) continue
      const sep = kn.indexOf(':')
      await this.unsetLocalAlias(id, kn.slice(0, sep), kn.slice(sep + 1))
    }
    for (const [keyId] of params.authorizedKeys) {
      const key = await this.#t.key.get(new Uint8Array(0), utf8(keyId))
      if (key !== undefined && !key.state.deleted) await this.setPermissions(id, keyId, NO_PERMISSIONS)
    }
    await this.#t.bucket.insert({ id, state: { deleted: true } })
  }

  async updateParams(id: Uuid, update: (p: BucketParams) => BucketParams): Promise<BucketParams> {
    const bucket = await this.getExisting(id)
    const next = update(bucket.state.value)
    await this.#putParams(id, next)
    return next
  }

  async #putParams(id: Uuid, params: BucketParams): Promise<void> {
    await this.#t.bucket.insert({ id, state: { deleted: false, value: params } })
  }

  async #getKey(keyId: string): Promise<KeyEntry & { state: { deleted: false; value: KeyParams } }> {
    if (!couldBeAccessKeyId(keyId)) throw new ModelError('NoSuchAccessKey', `access key ${keyId.slice(0, 128)}… does not exist`)
    const key = await this.#t.key.get(new Uint8Array(0), utf8(keyId))
    if (key === undefined || key.state.deleted) throw new ModelError('NoSuchAccessKey', `access key ${keyId} does not exist`)
    return key as KeyEntry & { state: { deleted: false; value: KeyParams } }
  }
}
