/**
 * `garage bucket …`: buckets, their aliases, key permissions, website access and quotas
 * (Garage's `src/garage/cli/remote/bucket.rs`, over the admin API v2).
 */

import { defineCommand } from 'citty'
import { consola } from 'consola'
import type { ApiBucketQuotas, GetBucketInfoResponse, GetKeyInfoResponse } from '../../index.ts'
import { type AdminContext, adminCommand } from '../_command.ts'
import { CliError } from '../_errors.ts'
import { abbreviateList, formatBytes, formatDate, formatSize, formatTable, shortId } from '../_format.ts'
import { parseCount, parseDuration, parseSize } from '../_parse.ts'
import type { AdminClient } from '../admin-client.ts'

/** Find a bucket by global alias, full id or id prefix (`GetBucketInfo?search=`). */
export function findBucket(api: AdminClient, search: string): Promise<GetBucketInfoResponse> {
  return api.call('GetBucketInfo', { query: { search } })
}

/** Find a key by id, id prefix or name (`GetKeyInfo?search=`). */
export function findKey(api: AdminClient, search: string, showSecretKey = false): Promise<GetKeyInfoResponse> {
  return api.call('GetKeyInfo', { query: { search, showSecretKey: showSecretKey || undefined } })
}

/** `bucket info` as Garage prints it: the bucket, then the keys with access to it. */
export function renderBucketInfo(b: GetBucketInfoResponse): string {
  const info: string[] = [`Bucket:\t${b.id}`]
  if (b.created != null) info.push(`Created:\t${formatDate(b.created)}`)
  info.push('', `Size:\t${formatSize(b.bytes)}`, `Objects:\t${b.objects}`)
  if (b.unfinishedUploads > 0) {
    info.push(
      `Unfinished uploads:\t${b.unfinishedMultipartUploads} multipart uploads`,
      `\t${b.unfinishedUploads} including regular uploads`,
      `Size of unfinished multipart uploads:\t${formatSize(b.unfinishedMultipartUploadBytes)}`,
    )
  }
  info.push('', `Website access:\t${b.websiteAccess}`)
  if (b.websiteConfig) {
    info.push(
      `  index document:\t${b.websiteConfig.indexDocument}`,
      `  error document:\t${b.websiteConfig.errorDocument ?? '(not defined)'}`,
    )
  }
  // Extensions of this port (absent from Garage's answers): the S3 policy and public-read ACL.
  if (b.bucketPolicy !== undefined || b.publicRead !== undefined) {
    info.push('', `Bucket policy:\t${b.bucketPolicy === true ? 'set' : 'none'}`, `Public read (ACL):\t${b.publicRead === true}`)
  }
  if (b.versioning != null) info.push('', `Versioning:\t${b.versioning}`)
  if (b.objectLockEnabled === true) info.push(`Object lock:\tenabled`)
  const { maxSize, maxObjects } = b.quotas ?? {}
  if (maxSize != null || maxObjects != null) {
    info.push('', 'Quotas:\tenabled')
    if (maxSize != null) info.push(`  maximum size:\t${formatSize(maxSize)}`)
    if (maxObjects != null) info.push(`  maximum number of objects:\t${maxObjects}`)
  }
  if (b.globalAliases.length > 0) {
    info.push('')
    b.globalAliases.forEach((alias, i) => {
      if (i > 0) info.push(`\t${alias}`)
      else info.push(`${b.globalAliases.length > 1 ? 'Global aliases' : 'Global alias'}:\t${alias}`)
    })
  }
  const keys = ['Permissions\tAccess key\t\tLocal aliases']
  for (const k of b.keys) {
    keys.push(`${permFlags(k.permissions)}\t${k.accessKeyId}\t${k.name}\t${k.bucketLocalAliases.join(',')}`)
  }
  return ['==== BUCKET INFORMATION ====', formatTable(info), '', '==== KEYS FOR THIS BUCKET ====', formatTable(keys)].join('\n')
}

/** `RWO`, with spaces for missing permissions. */
export function permFlags(p: { read?: boolean; write?: boolean; owner?: boolean }): string {
  return `${p.read ? 'R' : ' '}${p.write ? 'W' : ' '}${p.owner ? 'O' : ' '}`
}

function printBucket(ctx: AdminContext, b: GetBucketInfoResponse): void {
  if (ctx.json) ctx.out.json(b)
  else ctx.out.line(renderBucketInfo(b))
}

const bucketArg = { type: 'positional', required: true, description: 'Bucket name (global alias) or id prefix' } as const

const list = adminCommand({
  meta: { name: 'list', description: 'List buckets' },
  async run(ctx) {
    const buckets = await ctx.api.call('ListBuckets')
    if (ctx.json) return ctx.out.json(buckets)
    const rows = ['ID\tGlobal aliases\tLocal aliases']
    for (const b of buckets) {
      const locals = b.localAliases.map((a) => `${a.accessKeyId}:${a.alias}`)
      rows.push(`${shortId(b.id)}\t${abbreviateList(b.globalAliases)}\t${abbreviateList(locals)}`)
    }
    ctx.out.table(rows)
  },
})

const info = adminCommand({
  meta: { name: 'info', description: 'Get bucket info' },
  args: { bucket: bucketArg },
  async run(ctx, args) {
    printBucket(ctx, await findBucket(ctx.api, args.bucket))
  },
})

const create = adminCommand({
  meta: { name: 'create', description: 'Create bucket' },
  args: { bucket: { type: 'positional', required: true, description: 'Bucket name (global alias)' } },
  async run(ctx, args) {
    printBucket(ctx, await ctx.api.call('CreateBucket', { body: { globalAlias: args.bucket } }))
  },
})

const del = adminCommand({
  meta: { name: 'delete', description: 'Delete bucket' },
  args: { bucket: bucketArg, yes: { type: 'boolean', description: 'Really delete the bucket' } },
  async run(ctx, args) {
    const b = await findBucket(ctx.api, args.bucket)
    // As Garage's CLI: refuse while other names still point to the bucket.
    if (b.globalAliases.some((a) => a !== args.bucket)) {
      throw new CliError(
        `Bucket ${args.bucket} still has other global aliases. Use \`bucket unalias\` to delete them one by one.`,
      )
    }
    if (b.keys.some((k) => k.bucketLocalAliases.length > 0)) {
      throw new CliError(`Bucket ${args.bucket} still has local aliases. Use \`bucket unalias\` to delete them one by one.`)
    }
    if (!args.yes) {
      ctx.out.line(`About to delete bucket ${b.id}.`)
      throw new CliError('Add --yes flag to really perform this operation')
    }
    await ctx.api.call('DeleteBucket', { query: { id: b.id } })
    if (ctx.json) ctx.out.json({ id: b.id, deleted: true })
    else ctx.out.line(`Bucket ${b.id} has been deleted.`)
  },
})

const localOpt = {
  type: 'string',
  valueHint: 'key',
  description: 'Alias local to this access key (id, id prefix or name) instead of global',
} as const

const alias = adminCommand({
  meta: { name: 'alias', description: 'Alias bucket under new name' },
  args: {
    bucket: { type: 'positional', required: true, description: 'Existing bucket (global alias or id prefix)' },
    name: { type: 'positional', required: true, description: 'New name' },
    local: localOpt,
  },
  async run(ctx, args) {
    const b = await findBucket(ctx.api, args.bucket)
    let target: Record<string, string> = { globalAlias: args.name }
    if (args.local !== undefined) {
      const key = await findKey(ctx.api, args.local)
      target = { localAlias: args.name, accessKeyId: key.accessKeyId }
    }
    printBucket(ctx, await ctx.api.call('AddBucketAlias', { body: { bucketId: b.id, ...target } }))
  },
})

const unalias = adminCommand({
  meta: { name: 'unalias', description: 'Remove bucket alias' },
  args: { name: { type: 'positional', required: true, description: 'Alias to remove' }, local: localOpt },
  async run(ctx, args) {
    let body: Record<string, string>
    if (args.local !== undefined) {
      const key = await findKey(ctx.api, args.local)
      const b = key.buckets.find((x) => x.localAliases.includes(args.name))
      if (b === undefined) throw new CliError(`No bucket called ${args.name} in namespace of key ${key.accessKeyId}`)
      body = { bucketId: b.id, localAlias: args.name, accessKeyId: key.accessKeyId }
    } else {
      const b = await ctx.api.call('GetBucketInfo', { query: { globalAlias: args.name } })
      body = { bucketId: b.id, globalAlias: args.name }
    }
    printBucket(ctx, await ctx.api.call('RemoveBucketAlias', { body }))
  },
})

const permArgs = {
  bucket: bucketArg,
  key: { type: 'string', valueHint: 'key', required: true, description: 'Access key id, id prefix or name' },
  read: { type: 'boolean', description: 'Read permission' },
  write: { type: 'boolean', description: 'Write permission' },
  owner: { type: 'boolean', description: 'Owner permission (delete the bucket, change its website or CORS settings…)' },
} as const

function permCommand(name: 'allow' | 'deny') {
  return adminCommand({
    meta: {
      name,
      description: name === 'allow' ? 'Allow key to read or write to bucket' : 'Deny key from reading or writing to bucket',
    },
    args: permArgs,
    async run(ctx, args) {
      if (!args.read && !args.write && !args.owner) {
        throw new CliError('Specify at least one of --read, --write or --owner')
      }
      const b = await findBucket(ctx.api, args.bucket)
      const key = await findKey(ctx.api, args.key)
      const permissions = { read: args.read === true, write: args.write === true, owner: args.owner === true }
      const endpoint = name === 'allow' ? 'AllowBucketKey' : 'DenyBucketKey'
      printBucket(
        ctx,
        await ctx.api.call(endpoint, {
          body: { bucketId: b.id, accessKeyId: key.accessKeyId, permissions },
        }),
      )
    },
  })
}

const website = adminCommand({
  meta: { name: 'website', description: 'Expose as website or not' },
  args: {
    bucket: bucketArg,
    allow: { type: 'boolean', description: 'Enable website access' },
    deny: { type: 'boolean', description: 'Disable website access' },
    'index-document': {
      type: 'string',
      alias: 'i',
      default: 'index.html',
      description: 'Index document: the suffix appended to request paths ending by /',
    },
    'error-document': {
      type: 'string',
      alias: 'e',
      description: 'Error document: the optional document returned when an error occurs',
    },
  },
  async run(ctx, args) {
    if (args.allow === args.deny || (args.allow !== true && args.deny !== true)) {
      throw new CliError('You must specify exactly one flag, either --allow or --deny')
    }
    const b = await findBucket(ctx.api, args.bucket)
    const websiteAccess = args.allow
      ? {
          enabled: true,
          indexDocument: args['index-document'],
          errorDocument: args['error-document'] ?? b.websiteConfig?.errorDocument ?? null,
        }
      : { enabled: false }
    printBucket(ctx, await ctx.api.call('UpdateBucket', { query: { id: b.id }, body: { websiteAccess } }))
  },
})

const setQuotas = adminCommand({
  meta: { name: 'set-quotas', description: 'Set the quotas for this bucket' },
  args: {
    bucket: bucketArg,
    'max-size': { type: 'string', valueHint: 'size', description: 'Maximum size (e.g. 10GiB, 500MB), or `none`' },
    'max-objects': { type: 'string', valueHint: 'n', description: 'Maximum number of objects, or `none`' },
  },
  async run(ctx, args) {
    const maxSizeArg = args['max-size']
    const maxObjectsArg = args['max-objects']
    if (maxSizeArg === undefined && maxObjectsArg === undefined) {
      throw new CliError('You must specify either --max-size or --max-objects (or both) for this command to do something.')
    }
    // Parse before any request, so a typo changes nothing.
    const maxSize = maxSizeArg === undefined || maxSizeArg === 'none' ? null : parseSize(maxSizeArg)
    const maxObjects = maxObjectsArg === undefined || maxObjectsArg === 'none' ? null : parseCount(maxObjectsArg, 'number')
    const b = await findBucket(ctx.api, args.bucket)
    // UpdateBucket replaces both quotas: keep the one not given.
    const quotas: ApiBucketQuotas = {
      maxSize: maxSizeArg === undefined ? (b.quotas?.maxSize ?? null) : maxSize,
      maxObjects: maxObjectsArg === undefined ? (b.quotas?.maxObjects ?? null) : maxObjects,
    }
    printBucket(ctx, await ctx.api.call('UpdateBucket', { query: { id: b.id }, body: { quotas } }))
  },
})

const cleanup = adminCommand({
  meta: { name: 'cleanup-incomplete-uploads', description: 'Clean up (abort) old incomplete multipart uploads' },
  args: {
    'older-than': {
      type: 'string',
      default: '1d',
      valueHint: 'duration',
      description: 'Abort multipart uploads older than this (e.g. 1d, 12h, 1h30m)',
    },
    bucket: { type: 'positional', required: true, description: 'Name of bucket(s) to clean up' },
  },
  async run(ctx, args) {
    const olderThanSecs = Math.floor(parseDuration(args['older-than']))
    const buckets = args._
    const results: { bucketId: string; uploadsDeleted: number }[] = []
    const progress = buckets.length > 1 && !ctx.json
    if (progress) consola.start(`Cleaning up incomplete uploads older than ${args['older-than']} in ${buckets.length} buckets`)
    for (const [i, name] of buckets.entries()) {
      const b = await findBucket(ctx.api, name)
      const res = await ctx.api.call('CleanupIncompleteUploads', {
        body: { bucketId: b.id, olderThanSecs },
      })
      results.push({ bucketId: b.id, uploadsDeleted: res.uploadsDeleted })
      if (progress) consola.info(`[${i + 1}/${buckets.length}] ${name}`)
      if (!ctx.json) {
        ctx.out.line(
          res.uploadsDeleted > 0
            ? `${shortId(b.id)}: ${res.uploadsDeleted} uploads deleted`
            : `${shortId(b.id)}: no uploads deleted`,
        )
      }
    }
    if (ctx.json) ctx.out.json(results)
    else if (progress) consola.success(`${results.reduce((n, r) => n + r.uploadsDeleted, 0)} uploads deleted in total`)
  },
})

const inspectObject = adminCommand({
  meta: { name: 'inspect-object', description: 'Inspect an object: its versions, their metadata and data blocks' },
  args: { bucket: bucketArg, key: { type: 'positional', required: true, description: 'Object key' } },
  async run(ctx, args) {
    const b = await findBucket(ctx.api, args.bucket)
    const res = await ctx.api.call('InspectObject', { query: { bucketId: b.id, key: args.key } })
    if (ctx.json) return ctx.out.json(res)
    for (const v of res.versions) {
      ctx.out.line('==== OBJECT VERSION ====')
      const tab = [`Bucket ID:\t${res.bucketId}`, `Key:\t${res.key}`, `Version ID:\t${v.uuid}`, `Timestamp:\t${v.timestamp}`]
      if (v.size != null) {
        tab.push(`Size:\t${formatBytes(v.size, true)} (${formatBytes(v.size, false)})`, `Size (exact):\t${v.size}`)
        if (v.blocks.length > 0) tab.push(`Number of blocks:\t${v.blocks.length}`)
      }
      if (v.etag != null) tab.push(`Etag:\t${v.etag}`)
      tab.push(
        `Encrypted:\t${v.encrypted}`,
        `Uploading:\t${v.uploading}`,
        `Aborted:\t${v.aborted}`,
        `Delete marker:\t${v.deleteMarker}`,
        `Inline data:\t${v.inline}`,
      )
      if (v.headers.length > 0) tab.push('', ...v.headers.map(([k, val]) => `${k}\t${val}`))
      ctx.out.table(tab)
      if (v.blocks.length > 0) {
        ctx.out.line()
        ctx.out.table([
          'Part#\tOffset\tBlock hash\tSize',
          ...v.blocks.map((bl) => `${bl.partNumber}\t${bl.offset}\t${bl.hash}\t${bl.size}`),
        ])
      }
      ctx.out.line()
    }
  },
})

export const bucketCommand = defineCommand({
  meta: { name: 'bucket', description: 'Operations on buckets' },
  subCommands: {
    list,
    info,
    create,
    delete: del,
    alias,
    unalias,
    allow: permCommand('allow'),
    deny: permCommand('deny'),
    website,
    'set-quotas': setQuotas,
    'cleanup-incomplete-uploads': cleanup,
    'inspect-object': inspectObject,
  },
})
