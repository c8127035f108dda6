/**
 * Key and bucket management as the application sees it: `node.keys.*` and `node.buckets.*`.
 * Plain-data views (ids in hex, dates as Date) over the helpers; the admin HTTP API and the CLI
 * are thin layers over the same calls.
 */
import { crdtMapGet } from '../../util/crdt/crdt.ts'
import { fromHex, parseUuid, toHex, type Uuid, utf8 } from '../../util/data.ts'
import { ModelError } from '../../util/errors.ts'
import { updateLww } from '../../util/crdt/crdt.ts'
import { nowMsec } from '../../util/time.ts'
import type { BucketEntry, BucketParams, BucketQuotas } from '../bucket-table.ts'
import type { Garage } from '../garage.ts'
import { deletedMpu, foldMpuRows } from '../s3/mpu-table.ts'
import type { ObjectVersion } from '../s3/object-table.ts'
import type { ExistingKey } from './key.ts'

/** Permissions of one key on one bucket. */
export interface BucketPermissions {
  read: boolean
  write: boolean
  owner: boolean
}

export interface KeyInfo {
  /** `GK` + 24 hex digits. */
  accessKeyId: string
  secretAccessKey: string
  name: string
  createdAt: Date
  /** Null: never expires. */
  expiresAt: Date | null
  expired: boolean
  allowCreateBucket: boolean
  buckets: Array<{ bucketId: string; globalAliases: string[]; localAliases: string[]; permissions: BucketPermissions }>
}

export interface BucketInfo {
  /** 64 hex digits. */
  id: string
  createdAt: Date
  globalAliases: string[]
  localAliases: Array<{ accessKeyId: string; alias: string }>
  keys: Array<{ accessKeyId: string; name: string; permissions: BucketPermissions }>
  quotas: BucketQuotas
  websiteAccess: boolean
  /** Index and error documents when website access is enabled, else null. */
  websiteConfig: { indexDocument: string; errorDocument: string | null } | null
  /** Whether a bucket policy (PutBucketPolicy) is set. */
  policy: boolean
  /** Whether the canned ACL `public-read` lets anyone read the bucket. */
  publicRead: boolean
  /** S3 versioning state; undefined for a bucket never versioned. */
  versioning?: 'Enabled' | 'Suspended'
  /** S3 Object Lock is enabled. */
  objectLockEnabled: boolean
}

/** Changes to a bucket's settings; absent fields are left as they are. */
export interface UpdateBucketOptions {
  /** Null disables website access. */
  website?: { indexDocument: string; errorDocument?: string | null } | null
  /** Both limits are replaced (null: no limit). */
  quotas?: BucketQuotas
}

/** Figures computed from a bucket's objects and uploads in progress. */
export interface BucketStats {
  objects: number
  bytes: number
  unfinishedUploads: number
  unfinishedMultipartUploads: number
  unfinishedMultipartUploadParts: number
  unfinishedMultipartUploadBytes: number
}

/** One stored version of an object, as `InspectObject` shows it. */
export interface ObjectVersionInfo {
  /** 64 hex digits. */
  uuid: string
  timestamp: Date
  uploading: boolean
  aborted: boolean
  deleteMarker: boolean
  inline: boolean
  size: number | null
  etag: string | null
  headers: Array<[string, string]>
  blocks: Array<{ partNumber: number; offset: number; hash: string; size: number }>
}

export interface CreateKeyOptions {
  name?: string
  allowCreateBucket?: boolean
  /** Expiry time; omitted or null: never. */
  expiresAt?: Date | null
}

export interface UpdateKeyOptions {
  name?: string
  allowCreateBucket?: boolean
  expiresAt?: Date | null
}

/** `node.keys`: access keys. */
export class KeysApi {
  readonly #g: Garage
  constructor(garage: Garage) {
    this.#g = garage
  }

  async create(options: CreateKeyOptions = {}): Promise<KeyInfo> {
    const k = await this.#g.keys.create(options.name ?? '', {
      allowCreateBucket: options.allowCreateBucket ?? false,
      expiration: options.expiresAt?.getTime() ?? null,
    })
    return this.#info(k)
  }

  /** Imports a key pair created elsewhere (`garage key import`). */
  async import(options: { accessKeyId: string; secretAccessKey: string; name?: string }): Promise<KeyInfo> {
    return this.#info(await this.#g.keys.import(options.accessKeyId, options.secretAccessKey, options.name ?? ''))
  }

  async list(): Promise<KeyInfo[]> {
    const keys = await this.#g.keys.list()
    return Promise.all(keys.map((k) => this.#info(k)))
  }

  /** A key by id, or by exact name / id prefix when unambiguous. */
  async get(idOrName: string): Promise<KeyInfo | undefined> {
    const k = await this.#find(idOrName)
    return k === undefined ? undefined : this.#info(k)
  }

  async update(id: string, changes: UpdateKeyOptions): Promise<KeyInfo> {
    const key = await this.#findExisting(id)
    const k = await this.#g.keys.update(key.id, {
      name: changes.name,
      allowCreateBucket: changes.allowCreateBucket,
      expiration: changes.expiresAt === undefined ? undefined : (changes.expiresAt?.getTime() ?? null),
    })
    return this.#info(k)
  }

  async delete(id: string): Promise<void> {
    const key = await this.#findExisting(id)
    await this.#g.keys.delete(key.id)
  }

  async #find(idOrName: string): Promise<ExistingKey | undefined> {
    const exact = await this.#g.keys.get(idOrName)
    if (exact !== undefined) return exact
    const all = await this.#g.keys.list()
    const matches = all.filter((k) => k.state.value.name.v === idOrName || k.id.startsWith(idOrName))
    if (matches.length > 1) throw new ModelError('BadRequest', `'${idOrName}' matches several keys`)
    return matches[0]
  }

  async #findExisting(idOrName: string): Promise<ExistingKey> {
    const k = await this.#find(idOrName)
    if (k === undefined) throw new ModelError('NoSuchAccessKey', `access key ${idOrName} does not exist`)
    return k
  }

  async #info(k: ExistingKey): Promise<KeyInfo> {
    const p = k.state.value
    const buckets: KeyInfo['buckets'] = []
    for (const [hex, perm] of p.authorizedBuckets) {
      if (!(perm.read || perm.write || perm.owner)) continue
      const b = await this.#g.bucketTable.get(new Uint8Array(0), fromHex(hex))
      if (b === undefined || b.state.deleted) continue
      buckets.push({
        bucketId: hex,
        globalAliases: b.state.value.aliases.filter(([, , a]) => a).map(([n]) => n),
        localAliases: p.localAliases.filter(([, , id]) => id === hex).map(([n]) => n),
        permissions: { read: perm.read, write: perm.write, owner: perm.owner },
      })
    }
    const exp = p.expiration.v
    return {
      accessKeyId: k.id,
      secretAccessKey: p.secret,
      name: p.name.v,
      createdAt: new Date(p.created),
      expiresAt: exp === null ? null : new Date(exp),
      expired: exp !== null && exp <= Date.now(),
      allowCreateBucket: p.allowCreateBucket.v,
      buckets,
    }
  }
}

export interface CreateBucketOptions {
  /** A global name (visible to every key with permissions). */
  globalAlias?: string
  /** A name private to one key. */
  localAlias?: { accessKeyId: string; alias: string; permissions?: Partial<BucketPermissions> }
}

/** `node.buckets`: buckets, their names and who may use them. */
export class BucketsApi {
  readonly #g: Garage
  constructor(garage: Garage) {
    this.#g = garage
  }

  /** Creates a bucket; a string argument is its global alias. */
  async create(options: string | CreateBucketOptions = {}): Promise<BucketInfo> {
    const o = typeof options === 'string' ? { globalAlias: options } : options
    if (o.globalAlias !== undefined) {
      this.#g.buckets.checkName(o.globalAlias)
      if ((await this.#g.buckets.resolve(o.globalAlias)) !== undefined) {
        throw new ModelError('BucketAlreadyExists', `bucket ${o.globalAlias} already exists`)
      }
    }
    if (o.localAlias !== undefined) {
      this.#g.buckets.checkName(o.localAlias.alias)
      await this.#g.keys.getExisting(o.localAlias.accessKeyId)
    }
    const id = await this.#g.buckets.create()
    if (o.globalAlias !== undefined) await this.#g.buckets.setGlobalAlias(id, o.globalAlias)
    if (o.localAlias !== undefined) {
      const perm = { read: true, write: true, owner: true, ...o.localAlias.permissions }
      await this.#g.buckets.setPermissions(id, o.localAlias.accessKeyId, perm)
      await this.#g.buckets.setLocalAlias(id, o.localAlias.accessKeyId, o.localAlias.alias)
    }
    return this.#info(await this.#g.buckets.getExisting(id))
  }

  async list(): Promise<BucketInfo[]> {
    const all = await this.#g.buckets.list()
    return Promise.all(all.map((b) => this.#info(b)))
  }

  /** A bucket by hex id (or unambiguous id prefix) or global alias. */
  async get(idOrAlias: string): Promise<BucketInfo | undefined> {
    const id = await this.#resolve(idOrAlias)
    if (id === undefined) return undefined
    const b = await this.#g.bucketTable.get(new Uint8Array(0), id)
    return b === undefined || b.state.deleted
      ? undefined
      : this.#info(b as BucketEntry & { state: { deleted: false; value: BucketParams } })
  }

  /** Deletes an empty bucket (BucketNotEmpty otherwise). */
  async delete(idOrAlias: string): Promise<void> {
    await this.#g.buckets.delete(await this.#resolveExisting(idOrAlias))
  }

  /** Grants the given permissions (others are left as they are). */
  async allowKey(bucket: string, accessKeyId: string, perms: Partial<BucketPermissions>): Promise<BucketInfo> {
    return this.#changePerms(bucket, accessKeyId, perms, true)
  }

  /** Revokes the given permissions (others are left as they are). */
  async denyKey(bucket: string, accessKeyId: string, perms: Partial<BucketPermissions>): Promise<BucketInfo> {
    return this.#changePerms(bucket, accessKeyId, perms, false)
  }

  async addAlias(bucket: string, alias: string, options: { accessKeyId?: string } = {}): Promise<BucketInfo> {
    const id = await this.#resolveExisting(bucket)
    if (options.accessKeyId !== undefined) await this.#g.buckets.setLocalAlias(id, options.accessKeyId, alias)
    else await this.#g.buckets.setGlobalAlias(id, alias)
    return this.#info(await this.#g.buckets.getExisting(id))
  }

  async removeAlias(bucket: string, alias: string, options: { accessKeyId?: string } = {}): Promise<BucketInfo> {
    const id = await this.#resolveExisting(bucket)
    if (options.accessKeyId !== undefined) await this.#g.buckets.unsetLocalAlias(id, options.accessKeyId, alias)
    else await this.#g.buckets.unsetGlobalAlias(id, alias)
    return this.#info(await this.#g.buckets.getExisting(id))
  }

  /** Changes website access and quotas. */
  async update(idOrAlias: string, changes: UpdateBucketOptions): Promise<BucketInfo> {
    const id = await this.#resolveExisting(idOrAlias)
    const w = changes.website
    if (w != null && (typeof w.indexDocument !== 'string' || w.indexDocument.length === 0)) {
      throw new ModelError('BadRequest', 'the index document of a website must be a non-empty string')
    }
    const q = changes.quotas
    for (const v of q === undefined ? [] : [q.maxSize, q.maxObjects]) {
      if (v !== null && !(Number.isSafeInteger(v) && v >= 0)) {
        throw new ModelError('BadRequest', 'quotas must be null or non-negative integers')
      }
    }
    await this.#g.buckets.updateParams(id, (p) => {
      const now = nowMsec()
      let next = p
      if (w !== undefined) {
        const website =
          w === null
            ? null
            : {
                indexDocument: w.indexDocument,
                errorDocument: w.errorDocument ?? null,
                // Routing rules come from PutBucketWebsite only; the admin API keeps them.
                routingRules: p.website.v?.routingRules ?? [],
              }
        next = { ...next, website: updateLww(next.website, website, now) }
      }
      if (q !== undefined)
        next = { ...next, quotas: updateLww(next.quotas, { maxSize: q.maxSize, maxObjects: q.maxObjects }, now) }
      return next
    })
    return this.#info(await this.#g.buckets.getExisting(id))
  }

  /**
   * Sets a bucket's quotas (null: no limit); PutObject, CopyObject and CompleteMultipartUpload
   * refuse writes that would exceed them with 403 QuotaExceeded.
   */
  async setQuotas(idOrAlias: string, quotas: Partial<BucketQuotas>): Promise<BucketInfo> {
    return this.update(idOrAlias, { quotas: { maxSize: quotas.maxSize ?? null, maxObjects: quotas.maxObjects ?? null } })
  }

  /** Counts objects, bytes and uploads in progress (a scan of the bucket's objects). */
  async stats(idOrAlias: string): Promise<BucketStats> {
    const id = await this.#resolveExisting(idOrAlias)
    const s: BucketStats = {
      objects: 0,
      bytes: 0,
      unfinishedUploads: 0,
      unfinishedMultipartUploads: 0,
      unfinishedMultipartUploadParts: 0,
      unfinishedMultipartUploadBytes: 0,
    }
    const objects = await this.#g.objectTable.getRange(id, { limit: Number.MAX_SAFE_INTEGER })
    for (const o of objects) {
      for (const v of o.versions) {
        if (v.state.t === 'complete' && v.state.data.t !== 'delete') {
          s.objects++
          s.bytes += v.state.data.meta.size
        } else if (v.state.t === 'uploading') {
          s.unfinishedUploads++
          if (v.state.multipart) {
            s.unfinishedMultipartUploads++
            // The upload row and its part rows (mpu-table.ts).
            const mpu = foldMpuRows(await this.#g.mpuTable.getRange(v.uuid, { limit: Number.MAX_SAFE_INTEGER }))
            if (mpu !== undefined && !mpu.deleted) {
              s.unfinishedMultipartUploadParts += mpu.parts.length
              for (const part of mpu.parts) s.unfinishedMultipartUploadBytes += part.size ?? 0
            }
          }
        }
      }
    }
    return s
  }

  /**
   * Aborts the multipart uploads of a bucket started more than `olderThanMsec` ago. Returns how
   * many were aborted.
   */
  async cleanupIncompleteUploads(idOrAlias: string, olderThanMsec: number): Promise<number> {
    const id = await this.#resolveExisting(idOrAlias)
    const cutoff = nowMsec() - olderThanMsec
    const stale = (v: ObjectVersion): boolean => v.state.t === 'uploading' && v.state.multipart && v.ts < cutoff
    const objects = await this.#g.objectTable.getRange(id, {
      limit: Number.MAX_SAFE_INTEGER,
      filter: (o) => o.versions.some(stale),
    })
    let count = 0
    for (const o of objects) {
      for (const v of o.versions.filter(stale)) {
        await this.#g.objectTable.insert({
          bucketId: id,
          key: o.key,
          versions: [{ uuid: v.uuid, ts: v.ts, state: { t: 'aborted' } }],
        })
        // The object table's hook deletes the upload too; doing it here does not wait for its queue.
        const mpu = await this.#g.mpuTable.get(v.uuid, new Uint8Array(0))
        await this.#g.mpuTable.insert(deletedMpu(v.uuid, mpu?.ts ?? v.ts, id, o.key))
        count++
      }
    }
    return count
  }

  /** The stored versions of one object with their blocks; undefined if the key has no row. */
  async inspectObject(
    idOrAlias: string,
    key: string,
  ): Promise<{ bucketId: string; key: string; versions: ObjectVersionInfo[] } | undefined> {
    const id = await this.#resolveExisting(idOrAlias)
    const o = await this.#g.objectTable.get(id, utf8(key))
    if (o === undefined) return undefined
    const versions: ObjectVersionInfo[] = []
    for (const v of o.versions) {
      const st = v.state
      const data = st.t === 'complete' ? st.data : undefined
      const meta = data !== undefined && data.t !== 'delete' ? data.meta : undefined
      const row = await this.#g.versionTable.get(v.uuid, new Uint8Array(0))
      versions.push({
        uuid: toHex(v.uuid),
        timestamp: new Date(v.ts),
        uploading: st.t === 'uploading',
        aborted: st.t === 'aborted',
        deleteMarker: data?.t === 'delete',
        inline: data?.t === 'inline',
        size: meta?.size ?? null,
        etag: meta?.etag ?? null,
        headers: meta?.headers ?? (st.t === 'uploading' ? st.headers : []),
        blocks: (row === undefined || row.deleted ? [] : row.blocks).map(({ partNumber, offset, hash, size }) => ({
          partNumber,
          offset,
          hash: toHex(hash),
          size,
        })),
      })
    }
    return { bucketId: toHex(id), key, versions }
  }

  async #changePerms(
    bucket: string,
    accessKeyId: string,
    perms: Partial<BucketPermissions>,
    allow: boolean,
  ): Promise<BucketInfo> {
    const id = await this.#resolveExisting(bucket)
    const key = await this.#g.keys.getExisting(accessKeyId)
    const cur = crdtMapGet(key.state.value.authorizedBuckets, toHex(id)) ?? { read: false, write: false, owner: false }
    const next = {
      read: perms.read === true ? allow : cur.read,
      write: perms.write === true ? allow : cur.write,
      owner: perms.owner === true ? allow : cur.owner,
    }
    await this.#g.buckets.setPermissions(id, key.id, next)
    return this.#info(await this.#g.buckets.getExisting(id))
  }

  async #resolve(idOrAlias: string): Promise<Uuid | undefined> {
    const byAlias = await this.#g.buckets.resolve(idOrAlias)
    if (byAlias !== undefined) return byAlias
    const id = parseUuid(idOrAlias)
    if (id !== undefined) return id
    if (/^[0-9a-f]{4,63}$/.test(idOrAlias)) {
      const matches = (await this.#g.buckets.list()).filter((b) => toHex(b.id).startsWith(idOrAlias))
      if (matches.length > 1) throw new ModelError('BadRequest', `'${idOrAlias}' matches several buckets`)
      return matches[0]?.id
    }
    return undefined
  }

  async #resolveExisting(idOrAlias: string): Promise<Uuid> {
    const id = await this.#resolve(idOrAlias)
    if (id === undefined) throw new ModelError('NoSuchBucket', `bucket ${idOrAlias} does not exist`)
    await this.#g.buckets.getExisting(id)
    return id
  }

  async #info(b: BucketEntry & { state: { deleted: false; value: BucketParams } }): Promise<BucketInfo> {
    const p = b.state.value
    const keys: BucketInfo['keys'] = []
    for (const [keyId, perm] of p.authorizedKeys) {
      if (!(perm.read || perm.write || perm.owner)) continue
      const k = await this.#g.keys.get(keyId)
      keys.push({
        accessKeyId: keyId,
        name: k?.state.value.name.v ?? '',
        permissions: { read: perm.read, write: perm.write, owner: perm.owner },
      })
    }
    return {
      id: toHex(b.id),
      createdAt: new Date(p.created),
      globalAliases: p.aliases.filter(([, , a]) => a).map(([n]) => n),
      localAliases: p.localAliases
        .filter(([, , a]) => a)
        .map(([kn]) => {
          const i = kn.indexOf(':')
          return { accessKeyId: kn.slice(0, i), alias: kn.slice(i + 1) }
        }),
      keys,
      quotas: p.quotas.v,
      websiteAccess: p.website.v !== null,
      websiteConfig:
        p.website.v === null ? null : { indexDocument: p.website.v.indexDocument, errorDocument: p.website.v.errorDocument },
      policy: (p.policy?.v ?? null) !== null,
      publicRead: p.publicRead?.v === true,
      ...(p.versioning?.v != null ? { versioning: p.versioning.v } : {}),
      objectLockEnabled: p.objectLock?.v?.enabled === true,
    }
  }
}
