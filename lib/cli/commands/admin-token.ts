/**
 * `garage admin-token …`: admin API tokens with a scope and an expiration (Garage v2's
 * `src/garage/cli/remote/admin_token.rs`, over the admin API v2).
 */

import { defineCommand } from 'citty'
import type { GetAdminTokenInfoResponse } from '../../index.ts'
import { type AdminContext, adminCommand } from '../_command.ts'
import { CliError } from '../_errors.ts'
import { formatDate, formatTable } from '../_format.ts'
import { expirationFromNow } from '../_parse.ts'

/** `admin-token info` as Garage prints it. */
export function renderTokenInfo(t: GetAdminTokenInfoResponse): string {
  const rows = [`ID:\t${t.id ?? '-'}`, `Name:\t${t.name}`]
  if (t.created != null) rows.push(`Created:\t${formatDate(t.created)}`)
  rows.push(
    `Validity:\t${t.expired ? 'EXPIRED' : 'valid'}`,
    `Expiration:\t${t.expiration != null ? formatDate(t.expiration) : 'never'}`,
    `Scope:\t${t.scope.join(', ')}`,
  )
  return formatTable(rows)
}

function printToken(ctx: AdminContext, t: GetAdminTokenInfoResponse): void {
  if (ctx.json) ctx.out.json(t)
  else ctx.out.line(renderTokenInfo(t))
}

/** Split `A, B,C` into endpoint names. */
export function parseScopeList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
}

/**
 * The new scope for `admin-token set --scope`: a plain list replaces the scope; a list where
 * every item starts with `+` or `-` adds or removes endpoints from `current`.
 */
export function applyScopeChange(current: readonly string[], text: string): string[] {
  const items = parseScopeList(text)
  const relative = items.filter((s) => s.startsWith('+') || s.startsWith('-'))
  if (relative.length === 0) return items
  if (relative.length !== items.length) {
    throw new CliError(`invalid --scope '${text}': either list endpoints, or prefix every one with + or -`)
  }
  const next = [...current]
  for (const item of items) {
    const name = item.slice(1).trim()
    const at = next.indexOf(name)
    if (item.startsWith('+') && at < 0) next.push(name)
    if (item.startsWith('-') && at >= 0) next.splice(at, 1)
  }
  return next
}

const tokenArg = { type: 'positional', required: true, description: 'Token id, id prefix or name' } as const

const findToken = (ctx: AdminContext, search: string) => ctx.api.call('GetAdminTokenInfo', { query: { search } })

/** The id of a token found by search; tokens from the config file have none and cannot be changed. */
function tokenId(t: GetAdminTokenInfoResponse): string {
  if (t.id == null) throw new CliError(`Token '${t.name}' comes from the configuration file and cannot be changed here`)
  return t.id
}

const list = adminCommand({
  meta: { name: 'list', description: 'List all admin API tokens' },
  async run(ctx) {
    const tokens = await ctx.api.call('ListAdminTokens')
    if (ctx.json) return ctx.out.json(tokens)
    const rows = ['ID\tCreated\tName\tExpiration\tScope']
    for (const t of tokens) {
      const scope = t.scope.length > 1 ? `[${t.scope.length}]` : (t.scope[0] ?? '')
      const exp = t.expired ? 'expired' : t.expiration != null ? formatDate(t.expiration) : 'never'
      rows.push(`${t.id ?? '-'}\t${t.created != null ? formatDate(t.created, false) : '-'}\t${t.name}\t${exp}\t${scope}`)
    }
    ctx.out.table(rows)
  },
})

const info = adminCommand({
  meta: { name: 'info', description: 'Fetch info about a specific admin API token' },
  args: { token: tokenArg },
  async run(ctx, args) {
    printToken(ctx, await findToken(ctx, args.token))
  },
})

const scopeDescription = 'Comma-separated admin API endpoints the token may call (e.g. ListBuckets,GetBucketInfo), or *'

const create = adminCommand({
  meta: { name: 'create', description: 'Create a new admin API token' },
  args: {
    name: { type: 'positional', required: false, description: 'Name of the token' },
    'expires-in': { type: 'string', valueHint: 'duration', description: 'Expire the token after this long (e.g. 30d)' },
    scope: { type: 'string', valueHint: 'A,B', description: `${scopeDescription} (default *)` },
    quiet: { type: 'boolean', alias: 'q', description: 'Print only the secret token' },
  },
  async run(ctx, args) {
    const expiresIn = args['expires-in']
    const body = {
      name: args.name,
      expiration: expiresIn === undefined ? undefined : expirationFromNow(expiresIn),
      scope: args.scope === undefined ? undefined : parseScopeList(args.scope),
    }
    const res = await ctx.api.call('CreateAdminToken', { body })
    if (ctx.json) return ctx.out.json(res)
    if (args.quiet) return ctx.out.line(res.secretToken)
    ctx.out.line('This is your secret bearer token, it will not be shown again by Garage:')
    ctx.out.line(`\n  ${res.secretToken}\n`)
    ctx.out.line(renderTokenInfo(res))
  },
})

const rename = adminCommand({
  meta: { name: 'rename', description: 'Rename an admin API token' },
  args: { token: tokenArg, name: { type: 'positional', required: true, description: 'New name' } },
  async run(ctx, args) {
    const t = await findToken(ctx, args.token)
    printToken(ctx, await ctx.api.call('UpdateAdminToken', { query: { id: tokenId(t) }, body: { name: args.name } }))
  },
})

const set = adminCommand({
  meta: { name: 'set', description: 'Set parameters of an admin API token (expiration, scope)' },
  args: {
    token: tokenArg,
    'expires-in': { type: 'string', valueHint: 'duration', description: 'Expire the token after this long from now' },
    'never-expires': { type: 'boolean', description: 'Remove the expiration' },
    scope: {
      type: 'string',
      valueHint: 'A,B',
      description: `${scopeDescription}; +A,-B adds and removes endpoints from the current scope`,
    },
  },
  async run(ctx, args) {
    const expiresIn = args['expires-in']
    if (expiresIn !== undefined && args['never-expires'] === true) {
      throw new CliError('--expires-in and --never-expires are mutually exclusive')
    }
    if (expiresIn === undefined && args['never-expires'] !== true && args.scope === undefined) {
      throw new CliError('Nothing to change: give --expires-in, --never-expires or --scope')
    }
    const t = await findToken(ctx, args.token)
    const body: Record<string, unknown> = {}
    if (expiresIn !== undefined) body.expiration = expirationFromNow(expiresIn)
    if (args['never-expires'] === true) body.neverExpires = true
    if (args.scope !== undefined) body.scope = applyScopeChange(t.scope, args.scope)
    printToken(ctx, await ctx.api.call('UpdateAdminToken', { query: { id: tokenId(t) }, body }))
  },
})

const del = adminCommand({
  meta: { name: 'delete', description: 'Delete an admin API token' },
  args: { token: tokenArg, yes: { type: 'boolean', description: 'Confirm deletion' } },
  async run(ctx, args) {
    const t = await findToken(ctx, args.token)
    const id = tokenId(t)
    if (!args.yes) throw new CliError(`Add the --yes flag to delete API token \`${t.name}\` (${id})`)
    await ctx.api.call('DeleteAdminToken', { query: { id } })
    if (ctx.json) ctx.out.json({ id, deleted: true })
    else ctx.out.line('Admin API token has been deleted.')
  },
})

const deleteExpired = adminCommand({
  meta: { name: 'delete-expired', description: 'Delete all expired admin API tokens' },
  args: { yes: { type: 'boolean', description: 'Confirm deletion' } },
  async run(ctx, args) {
    const expired = (await ctx.api.call('ListAdminTokens')).filter((t) => t.expired && t.id != null)
    if (!args.yes) throw new CliError(`This would delete ${expired.length} admin API tokens, add the --yes flag to proceed.`)
    for (const t of expired) {
      if (!ctx.json) ctx.out.line(`Deleting token \`${t.name}\` (${t.id})`)
      await ctx.api.call('DeleteAdminToken', { query: { id: tokenId(t) } })
    }
    if (ctx.json) ctx.out.json(expired.map((t) => ({ id: t.id, deleted: true })))
    else ctx.out.line(`${expired.length} admin API tokens have been deleted.`)
  },
})

export const adminTokenCommand = defineCommand({
  meta: { name: 'admin-token', description: 'Operations on admin API tokens' },
  subCommands: { list, info, create, rename, set, delete: del, 'delete-expired': deleteExpired },
})
