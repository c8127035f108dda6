/** Bucket-level S3 operations (port of garage_api_s3::bucket). */
import { setOptLww } from '../../model/bucket-table.ts'
import { nowMsec } from '../../util/time.ts'
import { withObjectLockEnabled } from './object-lock.ts'
import type { Readable } from 'node:stream'
import type { Garage } from '../../model/garage.ts'
import type { ExistingKey } from '../../model/helper/key.ts'
import { ALL_PERMISSIONS, permIsAny } from '../../model/permission.ts'
import { crdtMapGet, lwwMapGet } from '../../util/crdt/crdt.ts'
import { fromHex, toHex, type Uuid } from '../../util/data.ts'
import { ModelError } from '../../util/errors.ts'
import { isoDate } from '../../util/time.ts'
import { ApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import type { ChecksumResult } from '../common/signature/body.ts'
import { readOptionalXmlBody, renderXml, type XmlDocument, xmlOnly, xmlRoot, xmlText } from './xml.ts'

const XML = { 'content-type': 'application/xml' }

/** The buckets a key can see, by the names it knows them by (its local aliases win). */
export async function handleListBuckets(garage: Garage, key: ExistingKey): Promise<ApiResponse> {
  const kp = key.state.value
  const names = new Map<string, Uuid>()
  const visible = kp.authorizedBuckets.filter(([, p]) => permIsAny(p)).map(([id]) => id)
  for (const hex of visible) {
    const bucket = await garage.bucketTable.get(new Uint8Array(0), fromHex(hex))
    if (bucket === undefined || bucket.state.deleted) continue
    for (const [alias, , active] of bucket.state.value.aliases) {
      if (!active) continue
      const a = await garage.buckets.resolve(alias)
      if (a !== undefined && toHex(a) === hex) names.set(alias, a)
    }
  }
  for (const [alias, , id] of kp.localAliases) if (id !== null) names.set(alias, fromHex(id))
  const entries: Array<{ Name: string; CreationDate: string }> = []
  for (const [name, id] of [...names].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const bucket = await garage.bucketTable.get(new Uint8Array(0), id)
    if (bucket === undefined || bucket.state.deleted) continue
    entries.push({ Name: name, CreationDate: isoDate(bucket.state.value.created) })
  }
  const xml = renderXml('ListAllMyBucketsResult', {
    Owner: { ID: key.id, DisplayName: kp.name.v },
    Buckets: { Bucket: entries },
  })
  return { status: 200, headers: XML, body: xml }
}

/** The `<LocationConstraint>` of a CreateBucket body (which may be absent). @internal */
export function parseCreateBucketBody(doc: XmlDocument | undefined): string | undefined {
  if (doc === undefined) return undefined
  const root = xmlRoot(doc, 'CreateBucketConfiguration')
  // `Location` and `Bucket` are AWS's directory-bucket settings; accepted and ignored.
  xmlOnly(root, ['LocationConstraint', 'Location', 'Bucket'], 'CreateBucketConfiguration')
  return xmlText(root, 'LocationConstraint')
}

export async function handleCreateBucket(
  garage: Garage,
  region: string,
  key: ExistingKey,
  name: string,
  body: Readable,
  result: Promise<ChecksumResult>,
  /** `x-amz-acl: public-read`: the bucket is created readable by anyone (acl.ts). */
  publicRead = false,
  objectLock = false,
): Promise<ApiResponse> {
  const doc = await readOptionalXmlBody(body, 64 * 1024)
  await result
  const constraint = parseCreateBucketBody(doc)
  if (constraint !== undefined && constraint !== '' && constraint !== region) {
    throw new ApiError(
      'InvalidLocationConstraint',
      `Cannot satisfy location constraint \`${constraint}\`: buckets can only be created in region \`${region}\``,
    )
  }
  const fresh = (await garage.keys.get(key.id)) ?? key
  const existing = await garage.buckets.resolve(name, key.id)
  if (existing !== undefined) {
    const p = crdtMapGet(fresh.state.value.authorizedBuckets, toHex(existing))
    if (p !== undefined && (p.write || p.owner)) {
      throw new ApiError(
        'BucketAlreadyOwnedByYou',
        'Your previous request to create the named bucket succeeded and you already own it.',
      )
    }
    throw new ApiError('BucketAlreadyExists', 'The requested bucket name is not available.')
  }
  if (!fresh.state.value.allowCreateBucket.v) {
    throw new ApiError('AccessDenied', `Access key ${key.id} is not allowed to create buckets`)
  }
  try {
    garage.buckets.checkName(name)
  } catch (err) {
    if (err instanceof ModelError) throw new ApiError('InvalidBucketName', err.message, { cause: err })
    throw err
  }
  const id = await garage.buckets.create()
  await garage.buckets.setPermissions(id, key.id, ALL_PERMISSIONS)
  // `x-amz-bucket-object-lock-enabled: true` enables object lock, and so versioning.
  if (objectLock) await garage.buckets.updateParams(id, (p) => withObjectLockEnabled(p, Date.now()))
  await garage.buckets.setLocalAlias(id, key.id, name)
  if (publicRead) await garage.buckets.updateParams(id, (p) => ({ ...p, publicRead: setOptLww(p.publicRead, true, nowMsec()) }))
  return { status: 200, headers: { location: `/${name}` } }
}

/**
 * Deletes the bucket when `name` is its only alias; otherwise only removes that alias
 * (Garage's behaviour: a bucket reachable under several names survives).
 */
export async function handleDeleteBucket(garage: Garage, key: ExistingKey, bucketId: Uuid, name: string): Promise<ApiResponse> {
  const bucket = await garage.buckets.getExisting(bucketId)
  const fresh = (await garage.keys.get(key.id)) ?? key
  const isLocal = lwwMapGet(fresh.state.value.localAliases, name) === toHex(bucketId)
  const params = bucket.state.value
  const otherGlobal = params.aliases.some(([n, , active]) => active && (isLocal || n !== name))
  const otherLocal = params.localAliases.some(([kn, , active]) => active && (!isLocal || kn !== `${key.id}:${name}`))
  if (!otherGlobal && !otherLocal) {
    if (!(await garage.buckets.isEmpty(bucketId))) {
      throw new ApiError('BucketNotEmpty', 'The bucket you tried to delete is not empty')
    }
    await garage.buckets.delete(bucketId)
  } else if (isLocal) {
    await garage.buckets.unsetLocalAlias(bucketId, key.id, name)
  } else {
    await garage.buckets.unsetGlobalAlias(bucketId, name)
  }
  return { status: 204 }
}

export function handleGetBucketLocation(region: string): ApiResponse {
  // LocationConstraint's text is the region itself.
  const xml = `<?xml version="1.0" encoding="UTF-8"?><LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${region}</LocationConstraint>`
  return { status: 200, headers: XML, body: xml }
}
