/** Access key operations (port of garage_model::helper::key). */
import { updateLww } from '../../util/crdt/crdt.ts'
import { fromHex, utf8 } from '../../util/data.ts'
import { ModelError } from '../../util/errors.ts'
import { nowMsec } from '../../util/time.ts'
import type { Table } from '../../table/table.ts'
import { generateKeyCredentials, type KeyEntry, type KeyParams, newKeyParams } from '../key-table.ts'
import { NO_PERMISSIONS } from '../permission.ts'
import type { BucketHelper } from './bucket.ts'
import { couldBeAccessKeyId } from './names.ts'

export type ExistingKey = KeyEntry & { state: { deleted: false; value: KeyParams } }

const EMPTY = new Uint8Array(0)

export class KeyHelper {
  readonly #keys: Table<KeyEntry>
  readonly #buckets: BucketHelper
  constructor(keys: Table<KeyEntry>, buckets: BucketHelper) {
    this.#keys = keys
    this.#buckets = buckets
  }

  /**
   * A key read at quorum (management operations). Request paths (SigV4, PostObject) resolve
   * keys with `AccessResolver.resolveKey` (`garage.access`: local first, quorum on a miss).
   */
  async get(id: string): Promise<ExistingKey | undefined> {
    if (!couldBeAccessKeyId(id)) return undefined
    const k = await this.#keys.get(EMPTY, utf8(id))
    return k === undefined || k.state.deleted ? undefined : (k as ExistingKey)
  }

  async getExisting(id: string): Promise<ExistingKey> {
    const k = await this.get(id)
    if (k === undefined) throw new ModelError('NoSuchAccessKey', `access key ${id} does not exist`)
    return k
  }

  async list(): Promise<ExistingKey[]> {
    const all = await this.#keys.getRange(EMPTY, { limit: Number.MAX_SAFE_INTEGER, filter: (k) => !k.state.deleted })
    return all as ExistingKey[]
  }

  async create(name: string, options: { allowCreateBucket?: boolean; expiration?: number | null } = {}): Promise<ExistingKey> {
    const { id, secret } = generateKeyCredentials()
    return this.#insertNew(id, secret, name, options)
  }

  /** Imports a key created elsewhere (for instance in another Garage cluster). */
  async import(id: string, secret: string, name: string): Promise<ExistingKey> {
    if (!/^GK[0-9a-f]{24}$/.test(id))
      throw new ModelError('BadRequest', `invalid access key id ${id}: expected GK followed by 24 hex digits`)
    if (!/^[0-9a-f]{64}$/.test(secret)) throw new ModelError('BadRequest', 'invalid secret key: expected 64 hex digits')
    const existing = await this.#keys.get(EMPTY, utf8(id))
    if (existing !== undefined)
      throw new ModelError('BadRequest', `access key ${id} already exists${existing.state.deleted ? ' (deleted)' : ''}`)
    return this.#insertNew(id, secret, name, {})
  }

  async update(
    id: string,
    changes: { name?: string; allowCreateBucket?: boolean; expiration?: number | null },
  ): Promise<ExistingKey> {
    const key = await this.getExisting(id)
    const now = nowMsec()
    let p = key.state.value
    if (changes.name !== undefined) p = { ...p, name: updateLww(p.name, changes.name, now) }
    if (changes.allowCreateBucket !== undefined) {
      p = { ...p, allowCreateBucket: updateLww(p.allowCreateBucket, changes.allowCreateBucket, now) }
    }
    if (changes.expiration !== undefined) p = { ...p, expiration: updateLww(p.expiration, changes.expiration, now) }
    const next: ExistingKey = { id, state: { deleted: false, value: p } }
    await this.#keys.insert(next)
    return next
  }

  /** Deletes a key, its permissions and its local aliases. */
  async delete(id: string): Promise<void> {
    const key = await this.getExisting(id)
    for (const [name, , bucketHex] of key.state.value.localAliases) {
      if (bucketHex !== null) await this.#buckets.unsetLocalAlias(fromHex(bucketHex), id, name)
    }
    for (const [bucketHex] of key.state.value.authorizedBuckets) {
      try {
        await this.#buckets.setPermissions(fromHex(bucketHex), id, NO_PERMISSIONS)
      } catch (err) {
        // A bucket deleted meanwhile has no permission left to remove.
        if (!(err instanceof ModelError && err.modelCode === 'NoSuchBucket')) throw err
      }
    }
    await this.#keys.insert({ id, state: { deleted: true } })
  }

  async #insertNew(
    id: string,
    secret: string,
    name: string,
    options: { allowCreateBucket?: boolean; expiration?: number | null },
  ): Promise<ExistingKey> {
    const now = nowMsec()
    const params = newKeyParams(name, secret, now)
    params.allowCreateBucket = updateLww(params.allowCreateBucket, options.allowCreateBucket ?? false, now)
    params.expiration = { ts: now, v: options.expiration ?? null }
    const entry: ExistingKey = { id, state: { deleted: false, value: params } }
    await this.#keys.insert(entry)
    return entry
  }
}
