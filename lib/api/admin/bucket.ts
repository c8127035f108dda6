/**
 * Bucket, permission and alias endpoints (port of garage_api_admin::bucket): a thin layer over
 * `node.buckets`.
 */
import type { BucketInfo, BucketPermissions } from '../../model/helper/admin.ts'
import { checkBucketNameForLookup, checkObjectKey } from '../../model/helper/names.ts'
import { parseUuid, toHex } from '../../util/data.ts'
import type { AdminContext } from './context.ts'
import { AdminError, badRequest } from './errors.ts'
import { Fields, queryParam } from './request.ts'

export async function bucketInfoResponse(ctx: AdminContext, b: BucketInfo) {
  const stats = await ctx.buckets.stats(b.id)
  return {
    id: b.id,
    created: b.createdAt.toISOString(),
    globalAliases: b.globalAliases,
    websiteAccess: b.websiteAccess,
    websiteConfig: b.websiteConfig,
    keys: b.keys.map((k) => ({
      accessKeyId: k.accessKeyId,
      name: k.name,
      permissions: k.permissions,
      bucketLocalAliases: b.localAliases.filter((a) => a.accessKeyId === k.accessKeyId).map((a) => a.alias),
    })),
    ...stats,
    quotas: b.quotas,
    bucketPolicy: b.policy,
    publicRead: b.publicRead,
    ...(b.versioning !== undefined ? { versioning: b.versioning } : {}),
    ...(b.objectLockEnabled ? { objectLockEnabled: true } : {}),
  }
}

/** A bucket by its exact 64-hex id. */
async function bucketById(ctx: AdminContext, id: string): Promise<BucketInfo> {
  if (parseUuid(id) === undefined) throw new AdminError('NoSuchBucket', `bucket not found: ${id} (not a 64-hex bucket id)`)
  const b = await ctx.buckets.get(id)
  if (b === undefined || b.id !== id) throw new AdminError('NoSuchBucket', `bucket not found: ${id}`)
  return b
}

export async function handleListBuckets(ctx: AdminContext) {
  const buckets = await ctx.buckets.list()
  return buckets.map((b) => ({
    id: b.id,
    created: b.createdAt.toISOString(),
    globalAliases: b.globalAliases,
    localAliases: b.localAliases,
  }))
}

export async function handleGetBucketInfo(ctx: AdminContext) {
  const id = ctx.query.get('id')
  const alias = ctx.query.get('globalAlias')
  const search = ctx.query.get('search')
  const given = [id, alias, search].filter((v) => v !== null).length
  if (given !== 1) throw badRequest('Exactly one of id, globalAlias or search must be provided')
  if (id !== null) return bucketInfoResponse(ctx, await bucketById(ctx, id))
  if (alias !== null) {
    checkBucketNameForLookup(alias)
    const bucket = await ctx.garage.access.findBucket(alias)
    if (bucket === undefined) throw new AdminError('NoSuchBucket', `bucket not found: ${alias}`)
    const b = await ctx.buckets.get(toHex(bucket.id))
    if (b === undefined) throw new AdminError('NoSuchBucket', `bucket not found: ${alias}`)
    return bucketInfoResponse(ctx, b)
  }
  const b = await ctx.buckets.get(search as string)
  if (b === undefined) throw new AdminError('NoSuchBucket', `no bucket matches '${search}'`)
  return bucketInfoResponse(ctx, b)
}

function perms(f: Fields | undefined): BucketPermissions {
  return { read: f?.optBool('read') ?? false, write: f?.optBool('write') ?? false, owner: f?.optBool('owner') ?? false }
}

export async function handleCreateBucket(ctx: AdminContext) {
  const f = new Fields(ctx.body)
  const globalAlias = f.optString('globalAlias')
  const la = f.optObject('localAlias')
  const localAlias =
    la === undefined
      ? undefined
      : { accessKeyId: la.string('accessKeyId'), alias: la.string('alias'), permissions: perms(la.optObject('allow')) }
  if (localAlias !== undefined && (await ctx.keys.get(localAlias.accessKeyId))?.accessKeyId !== localAlias.accessKeyId) {
    throw new AdminError('NoSuchAccessKey', `access key not found: ${localAlias.accessKeyId}`)
  }
  const b = await ctx.buckets.create({ globalAlias, localAlias })
  return bucketInfoResponse(ctx, b)
}

export async function handleUpdateBucket(ctx: AdminContext) {
  const id = queryParam(ctx.query, 'id')
  const f = new Fields(ctx.body)
  const changes: Parameters<AdminContext['buckets']['update']>[1] = {}
  const w = f.optObject('websiteAccess')
  if (w !== undefined) {
    const enabled = w.optBool('enabled')
    if (enabled === undefined) throw badRequest("'websiteAccess': 'enabled' is required")
    const indexDocument = w.optString('indexDocument')
    const errorDocument = w.optString('errorDocument')
    if (enabled) {
      if (indexDocument === undefined || indexDocument === '') {
        throw badRequest('Please specify indexDocument when enabling website access.')
      }
      changes.website = { indexDocument, errorDocument: errorDocument ?? null }
    } else {
      if (indexDocument !== undefined || errorDocument !== undefined) {
        throw badRequest('Cannot specify indexDocument or errorDocument when disabling website access.')
      }
      changes.website = null
    }
  }
  const q = f.optObject('quotas')
  if (q !== undefined) changes.quotas = { maxSize: q.optInt('maxSize') ?? null, maxObjects: q.optInt('maxObjects') ?? null }
  await bucketById(ctx, id)
  return bucketInfoResponse(ctx, await ctx.buckets.update(id, changes))
}

export async function handleDeleteBucket(ctx: AdminContext) {
  const id = queryParam(ctx.query, 'id')
  await bucketById(ctx, id)
  await ctx.buckets.delete(id)
  return null
}

export async function handleCleanupIncompleteUploads(ctx: AdminContext) {
  const f = new Fields(ctx.body)
  const bucketId = f.string('bucketId')
  const olderThanSecs = f.int('olderThanSecs')
  await bucketById(ctx, bucketId)
  return { uploadsDeleted: await ctx.buckets.cleanupIncompleteUploads(bucketId, olderThanSecs * 1000) }
}

export async function handleInspectObject(ctx: AdminContext) {
  const bucketId = queryParam(ctx.query, 'bucketId')
  const key = queryParam(ctx.query, 'key')
  checkObjectKey(key)
  await bucketById(ctx, bucketId)
  const r = await ctx.buckets.inspectObject(bucketId, key)
  if (r === undefined || r.versions.length === 0) throw new AdminError('NoSuchKey', `object not found: ${key}`)
  return {
    bucketId: r.bucketId,
    key: r.key,
    versions: r.versions.map((v) => ({ ...v, timestamp: v.timestamp.toISOString(), encrypted: false })),
  }
}

async function changePermissions(ctx: AdminContext, allow: boolean) {
  const f = new Fields(ctx.body)
  const bucketId = f.string('bucketId')
  const accessKeyId = f.string('accessKeyId')
  const p = f.optObject('permissions')
  if (p === undefined) throw badRequest("'permissions' is required")
  await bucketById(ctx, bucketId)
  const wanted = perms(p)
  const b = allow
    ? await ctx.buckets.allowKey(bucketId, accessKeyId, wanted)
    : await ctx.buckets.denyKey(bucketId, accessKeyId, wanted)
  return bucketInfoResponse(ctx, b)
}

export const handleAllowBucketKey = (ctx: AdminContext) => changePermissions(ctx, true)
export const handleDenyBucketKey = (ctx: AdminContext) => changePermissions(ctx, false)

async function changeAlias(ctx: AdminContext, add: boolean) {
  const f = new Fields(ctx.body)
  const bucketId = f.string('bucketId')
  const globalAlias = f.optString('globalAlias')
  const localAlias = f.optString('localAlias')
  const accessKeyId = f.optString('accessKeyId')
  let alias: string
  let options: { accessKeyId?: string } = {}
  if (globalAlias !== undefined && localAlias === undefined && accessKeyId === undefined) alias = globalAlias
  else if (globalAlias === undefined && localAlias !== undefined && accessKeyId !== undefined) {
    alias = localAlias
    options = { accessKeyId }
  } else throw badRequest('Specify either globalAlias, or localAlias and accessKeyId')
  await bucketById(ctx, bucketId)
  if (accessKeyId !== undefined && (await ctx.keys.get(accessKeyId))?.accessKeyId !== accessKeyId) {
    throw new AdminError('NoSuchAccessKey', `access key not found: ${accessKeyId}`)
  }
  const b = add ? await ctx.buckets.addAlias(bucketId, alias, options) : await ctx.buckets.removeAlias(bucketId, alias, options)
  return bucketInfoResponse(ctx, b)
}

export const handleAddBucketAlias = (ctx: AdminContext) => changeAlias(ctx, true)
export const handleRemoveBucketAlias = (ctx: AdminContext) => changeAlias(ctx, false)
