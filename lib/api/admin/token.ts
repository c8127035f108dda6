/** Admin API token endpoints (port of garage_api_admin::admin_token). */
import type { AdminTokenInfo, UpdateAdminTokenOptions } from '../../model/helper/admin-token.ts'
import type { AdminContext, Caller } from './context.ts'
import { AdminError, badRequest } from './errors.ts'
import { Fields, isoOrNull, queryParam } from './request.ts'

interface TokenInfoResponse {
  id: string | null
  created: string | null
  name: string
  expiration: string | null
  expired: boolean
  scope: string[]
}

function tokenInfoResponse(t: AdminTokenInfo): TokenInfoResponse {
  return {
    id: t.id,
    created: t.createdAt.toISOString(),
    name: t.name,
    expiration: isoOrNull(t.expiresAt),
    expired: t.expired,
    scope: t.scope,
  }
}

const CONFIG_TOKENS = {
  admin_token: { name: 'admin_token (from daemon configuration)', scope: ['*'] },
  metrics_token: { name: 'metrics_token (from daemon configuration)', scope: ['Metrics'] },
} as const

function configTokenResponse(which: keyof typeof CONFIG_TOKENS): TokenInfoResponse {
  const t = CONFIG_TOKENS[which]
  return { id: null, created: null, name: t.name, expiration: null, expired: false, scope: [...t.scope] }
}

export async function handleListAdminTokens(ctx: AdminContext) {
  const out: TokenInfoResponse[] = []
  if (ctx.settings.adminToken !== undefined) out.push(configTokenResponse('admin_token'))
  if (ctx.settings.metricsToken !== undefined) out.push(configTokenResponse('metrics_token'))
  for (const t of await ctx.tokens.list()) out.push(tokenInfoResponse(t))
  return out
}

export async function handleGetAdminTokenInfo(ctx: AdminContext) {
  const id = ctx.query.get('id')
  const search = ctx.query.get('search')
  if ((id === null) === (search === null)) throw badRequest('Either id or search must be provided (but not both)')
  if (id !== null) {
    const t = await ctx.tokens.get(id)
    if (t === undefined) throw new AdminError('NoSuchAdminToken', `admin token not found: ${id}`)
    return tokenInfoResponse(t)
  }
  return tokenInfoResponse(await ctx.tokens.search(search as string))
}

export function handleGetCurrentAdminTokenInfo(ctx: AdminContext): TokenInfoResponse {
  const c: Caller = ctx.caller
  if (c.kind === 'token') return tokenInfoResponse(c.info)
  if (c.kind === 'config') return configTokenResponse(c.which)
  throw new AdminError('Unauthorized', 'no admin token was provided')
}

function tokenChanges(f: Fields): UpdateAdminTokenOptions {
  const out: UpdateAdminTokenOptions = {}
  const name = f.optString('name')
  if (name !== undefined) out.name = name
  const expiration = f.optDate('expiration')
  const never = f.optBool('neverExpires') ?? false
  if (expiration !== undefined && never) throw badRequest('expiration and neverExpires cannot both be set')
  if (expiration !== undefined) out.expiresAt = expiration
  if (never) out.expiresAt = null
  const scope = f.optStringArray('scope')
  if (scope !== undefined) out.scope = scope
  return out
}

export async function handleCreateAdminToken(ctx: AdminContext) {
  const c = tokenChanges(new Fields(ctx.body))
  const { secretToken, info } = await ctx.tokens.create(c)
  return { ...tokenInfoResponse(info), secretToken }
}

export async function handleUpdateAdminToken(ctx: AdminContext) {
  const id = queryParam(ctx.query, 'id')
  return tokenInfoResponse(await ctx.tokens.update(id, tokenChanges(new Fields(ctx.body))))
}

export async function handleDeleteAdminToken(ctx: AdminContext) {
  await ctx.tokens.delete(queryParam(ctx.query, 'id'))
  return null
}
