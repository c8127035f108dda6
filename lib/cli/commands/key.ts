/**
 * `garage key …`: S3 access keys (Garage's `src/garage/cli/remote/key.rs`, over the admin API v2).
 */

import { defineCommand } from 'citty'
import type { GetKeyInfoResponse } from '../../index.ts'
import { type AdminContext, adminCommand } from '../_command.ts'
import { CliError } from '../_errors.ts'
import { abbreviateList, formatDate, formatTable, shortId } from '../_format.ts'
import { expirationFromNow } from '../_parse.ts'
import { findKey, permFlags } from './bucket.ts'

/** `key info` as Garage prints it: the key, then the buckets it can access. */
export function renderKeyInfo(k: GetKeyInfoResponse): string {
  const table = [`Key ID:\t${k.accessKeyId}`, `Key name:\t${k.name}`, `Secret key:\t${k.secretAccessKey ?? '(redacted)'}`]
  if (k.created != null) table.push(`Created:\t${formatDate(k.created)}`)
  table.push(
    `Validity:\t${k.expired === true ? 'EXPIRED' : 'valid'}`,
    `Expiration:\t${k.expiration != null ? formatDate(k.expiration) : 'never'}`,
    '',
    `Can create buckets:\t${k.permissions.createBucket === true}`,
  )
  const buckets = ['Permissions\tID\tGlobal aliases\tLocal aliases']
  for (const b of k.buckets) {
    buckets.push(`${permFlags(b.permissions)}\t${shortId(b.id)}\t${abbreviateList(b.globalAliases)}\t${b.localAliases.join(',')}`)
  }
  return [
    '==== ACCESS KEY INFORMATION ====',
    formatTable(table),
    '',
    '==== BUCKETS FOR THIS KEY ====',
    formatTable(buckets),
  ].join('\n')
}

function printKey(ctx: AdminContext, k: GetKeyInfoResponse): void {
  if (ctx.json) ctx.out.json(k)
  else ctx.out.line(renderKeyInfo(k))
}

const keyArg = { type: 'positional', required: true, description: 'Key id, id prefix or name' } as const

const list = adminCommand({
  meta: { name: 'list', description: 'List keys' },
  async run(ctx) {
    const keys = await ctx.api.call('ListKeys')
    if (ctx.json) return ctx.out.json(keys)
    const sorted = [...keys].sort((a, b) => (a.created ?? '').localeCompare(b.created ?? ''))
    const rows = ['ID\tCreated\tName\tExpiration']
    for (const k of sorted) {
      const exp = k.expired === true ? 'expired' : k.expiration != null ? formatDate(k.expiration) : 'never'
      rows.push(`${k.id}\t${k.created != null ? formatDate(k.created, false) : ''}\t${k.name}\t${exp}`)
    }
    ctx.out.table(rows)
  },
})

const info = adminCommand({
  meta: { name: 'info', description: 'Get key info' },
  args: { key: keyArg, 'show-secret': { type: 'boolean', description: 'Display the secret key' } },
  async run(ctx, args) {
    printKey(ctx, await findKey(ctx.api, args.key, args['show-secret'] === true))
  },
})

const create = adminCommand({
  meta: { name: 'create', description: 'Create new key' },
  args: {
    name: { type: 'positional', required: false, default: 'Unnamed key', description: 'Name of the key' },
    'expires-in': { type: 'string', valueHint: 'duration', description: 'Expire the key after this long (e.g. 30d)' },
  },
  async run(ctx, args) {
    const expiresIn = args['expires-in']
    const body = { name: args.name, expiration: expiresIn === undefined ? undefined : expirationFromNow(expiresIn) }
    printKey(ctx, await ctx.api.call('CreateKey', { body }))
  },
})

/** Look the key up, then `UpdateKey` it with `body`. */
async function updateKey(ctx: AdminContext, search: string, body: Record<string, unknown>): Promise<void> {
  const key = await findKey(ctx.api, search)
  printKey(ctx, await ctx.api.call('UpdateKey', { query: { id: key.accessKeyId }, body }))
}

const rename = adminCommand({
  meta: { name: 'rename', description: 'Rename key' },
  args: { key: keyArg, name: { type: 'positional', required: true, description: 'New name of the key' } },
  async run(ctx, args) {
    await updateKey(ctx, args.key, { name: args.name })
  },
})

const set = adminCommand({
  meta: { name: 'set', description: 'Set parameters of a key (expiration)' },
  args: {
    key: keyArg,
    'expires-in': { type: 'string', valueHint: 'duration', description: 'Expire the key after this long from now (e.g. 30d)' },
    'never-expires': { type: 'boolean', description: 'Remove the expiration' },
  },
  async run(ctx, args) {
    const expiresIn = args['expires-in']
    if ((expiresIn === undefined) === (args['never-expires'] !== true)) {
      throw new CliError('Specify exactly one of --expires-in or --never-expires')
    }
    await updateKey(
      ctx,
      args.key,
      expiresIn !== undefined ? { expiration: expirationFromNow(expiresIn) } : { neverExpires: true },
    )
  },
})

const del = adminCommand({
  meta: { name: 'delete', description: 'Delete key' },
  args: { key: keyArg, yes: { type: 'boolean', description: 'Confirm deletion' } },
  async run(ctx, args) {
    const key = await findKey(ctx.api, args.key)
    if (!args.yes) {
      ctx.out.line(`About to delete key ${key.accessKeyId}...`)
      throw new CliError('Add --yes flag to really perform this operation')
    }
    await ctx.api.call('DeleteKey', { query: { id: key.accessKeyId } })
    if (ctx.json) ctx.out.json({ id: key.accessKeyId, deleted: true })
    else ctx.out.line(`Access key ${key.accessKeyId} has been deleted.`)
  },
})

function permCommand(name: 'allow' | 'deny') {
  return adminCommand({
    meta: { name, description: name === 'allow' ? 'Set permission flags for key' : 'Unset permission flags for key' },
    args: {
      key: keyArg,
      'create-bucket': { type: 'boolean', description: "Flag that allows key to create buckets using S3's CreateBucket call" },
    },
    async run(ctx, args) {
      if (args['create-bucket'] !== true) throw new CliError('Specify the permission to change: --create-bucket')
      await updateKey(ctx, args.key, { [name]: { createBucket: true } })
    },
  })
}

const importKey = adminCommand({
  meta: { name: 'import', description: 'Import key' },
  args: {
    id: { type: 'positional', required: true, description: 'Access key ID' },
    secret: { type: 'positional', required: true, description: 'Secret access key' },
    name: { type: 'string', alias: 'n', default: 'Imported key', description: 'Key name' },
    yes: { type: 'boolean', description: 'Confirm key import' },
  },
  async run(ctx, args) {
    if (!args.yes) {
      throw new CliError(
        'This command is intended to re-import keys that were previously generated by Garage. ' +
          'If you want to create a new key, use `garage key create` instead. Add the --yes flag if you really want to re-import a key.',
      )
    }
    const body = { accessKeyId: args.id, secretAccessKey: args.secret, name: args.name }
    printKey(ctx, await ctx.api.call('ImportKey', { body }))
  },
})

const deleteExpired = adminCommand({
  meta: { name: 'delete-expired', description: 'Delete all expired keys' },
  args: { yes: { type: 'boolean', description: 'Confirm deletion' } },
  async run(ctx, args) {
    const expired = (await ctx.api.call('ListKeys')).filter((k) => k.expired === true)
    if (!args.yes) throw new CliError(`This would delete ${expired.length} access keys, add the --yes flag to proceed.`)
    for (const k of expired) {
      if (!ctx.json) ctx.out.line(`Deleting access key \`${k.name}\` (${k.id})`)
      await ctx.api.call('DeleteKey', { query: { id: k.id } })
    }
    if (ctx.json) ctx.out.json(expired.map((k) => ({ id: k.id, deleted: true })))
    else ctx.out.line(`${expired.length} access keys have been deleted.`)
  },
})

export const keyCommand = defineCommand({
  meta: { name: 'key', description: 'Operations on S3 access keys' },
  subCommands: {
    list,
    info,
    create,
    rename,
    set,
    delete: del,
    allow: permCommand('allow'),
    deny: permCommand('deny'),
    import: importKey,
    'delete-expired': deleteExpired,
  },
})
