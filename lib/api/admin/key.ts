/** Access key endpoints (port of garage_api_admin::key): a thin layer over `node.keys`. */
import type { KeyInfo } from '../../model/helper/admin.ts'
import { utf8 } from '../../util/data.ts'
import type { AdminContext } from './context.ts'
import { AdminError, badRequest } from './errors.ts'
import { Fields, isoOrNull, queryBool, queryParam } from './request.ts'

function keyInfoResponse(k: KeyInfo, showSecret: boolean) {
  return {
    accessKeyId: k.accessKeyId,
    name: k.name,
    created: k.createdAt.toISOString(),
    expiration: isoOrNull(k.expiresAt),
    expired: k.expired,
    secretAccessKey: showSecret ? k.secretAccessKey : null,
    permissions: { createBucket: k.allowCreateBucket },
    buckets: k.buckets.map((b) => ({
      id: b.bucketId,
      globalAliases: b.globalAliases,
      localAliases: b.localAliases,
      permissions: b.permissions,
    })),
  }
}

async function keyById(ctx: AdminContext, id: string): Promise<KeyInfo> {
  const k = await ctx.keys.get(id)
  if (k === undefined || k.accessKeyId !== id) throw new AdminError('NoSuchAccessKey', `access key not found: ${id}`)
  return k
}

export async function handleListKeys(ctx: AdminContext) {
  const keys = await ctx.keys.list()
  return keys.map((k) => ({
    id: k.accessKeyId,
    name: k.name,
    created: k.createdAt.toISOString(),
    expiration: isoOrNull(k.expiresAt),
    expired: k.expired,
  }))
}

export async function handleGetKeyInfo(ctx: AdminContext) {
  const id = ctx.query.get('id')
  const search = ctx.query.get('search')
  const show = queryBool(ctx.query, 'showSecretKey')
  if ((id === null) === (search === null)) throw badRequest('Either id or search must be provided (but not both)')
  if (id !== null) return keyInfoResponse(await keyById(ctx, id), show)
  const k = await ctx.keys.get(search as string)
  if (k === undefined) throw new AdminError('NoSuchAccessKey', `no access key matches '${search}'`)
  return keyInfoResponse(k, show)
}

/** The fields CreateKey and UpdateKey share (Garage's UpdateKeyRequestBody). */
function keyChanges(f: Fields): { name?: string; allowCreateBucket?: boolean; expiresAt?: Date | null } {
  const out: { name?: string; allowCreateBucket?: boolean; expiresAt?: Date | null } = {}
  const name = f.optString('name')
  if (name !== undefined) out.name = name
  if (f.optObject('allow')?.optBool('createBucket') === true) out.allowCreateBucket = true
  if (f.optObject('deny')?.optBool('createBucket') === true) {
    if (out.allowCreateBucket === true) throw badRequest('createBucket cannot be both allowed and denied')
    out.allowCreateBucket = false
  }
  const expiration = f.optDate('expiration')
  const never = f.optBool('neverExpires') ?? false
  if (expiration !== undefined && never) throw badRequest('expiration and neverExpires cannot both be set')
  if (expiration !== undefined) out.expiresAt = expiration
  if (never) out.expiresAt = null
  return out
}

export async function handleCreateKey(ctx: AdminContext) {
  const c = keyChanges(new Fields(ctx.body))
  const k = await ctx.keys.create({
    name: c.name ?? 'Unnamed key',
    allowCreateBucket: c.allowCreateBucket ?? false,
    expiresAt: c.expiresAt ?? null,
  })
  return keyInfoResponse(k, true)
}

export async function handleImportKey(ctx: AdminContext) {
  const f = new Fields(ctx.body)
  const accessKeyId = f.string('accessKeyId')
  const secretAccessKey = f.string('secretAccessKey')
  const existing = await ctx.garage.keyTable.get(new Uint8Array(0), utf8(accessKeyId))
  if (existing !== undefined) {
    throw new AdminError(
      'KeyAlreadyExists',
      `Key ${accessKeyId} already exists in data store. Even if it is deleted, we can't let you create a new key with the same ID. Sorry.`,
    )
  }
  const k = await ctx.keys.import({ accessKeyId, secretAccessKey, name: f.optString('name') ?? 'Imported key' })
  return keyInfoResponse(k, false)
}

export async function handleUpdateKey(ctx: AdminContext) {
  const id = queryParam(ctx.query, 'id')
  const changes = keyChanges(new Fields(ctx.body))
  await keyById(ctx, id)
  return keyInfoResponse(await ctx.keys.update(id, changes), false)
}

export async function handleDeleteKey(ctx: AdminContext) {
  const id = queryParam(ctx.query, 'id')
  await keyById(ctx, id)
  await ctx.keys.delete(id)
  return null
}
