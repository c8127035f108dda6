/**
 * `garage block …`: low-level operations on the data blocks of a node (Garage's
 * `src/garage/cli/remote/block.rs`, over the admin API v2's node-scoped block endpoints).
 */

import { defineCommand } from 'citty'
import type { BlockError, GetBlockInfoResponse } from '../../index.ts'
import { adminCommand } from '../_command.ts'
import { CliError } from '../_errors.ts'
import { formatAgo, formatTable } from '../_format.ts'

/** One entry of ListBlockErrors. */
export type BlockErrorResp = BlockError

/** The answer of GetBlockInfo. */
export type BlockInfoResp = GetBlockInfoResponse

/** `5 minutes` (a duration, without "ago"). */
const duration = (secs: number): string => formatAgo(secs).replace(/ ago$/, '')

/** `block list-errors` as Garage prints it. */
export function renderBlockErrors(errors: readonly BlockErrorResp[]): string {
  const rows = ['Hash\tRC\tErrors\tLast error\tNext try']
  for (const e of errors) {
    const next = e.nextTryInSecs > 0 ? duration(e.nextTryInSecs) : 'asap'
    rows.push(`${e.blockHash}\t${e.refcount}\t${e.errorCount}\t${formatAgo(e.lastTrySecsAgo)}\tin ${next}`)
  }
  return formatTable(rows)
}

/** `block info` as Garage prints it. */
export function renderBlockInfo(info: BlockInfoResp): string {
  const out = ['==== BLOCK INFORMATION ====']
  out.push(formatTable([`Block hash:\t${info.blockHash}`, `Refcount:\t${info.refcount}`]), '')
  out.push('==== REFERENCES TO THIS BLOCK ====')
  const rows = ['Status\tVersion\tBucket\tKey\tMPU']
  let nondeleted = 0
  let inconsistent = false
  for (const v of info.versions) {
    const status = v.refDeleted ? 'deleted' : 'active'
    const version = `${v.versionId.slice(0, 16)}${v.versionDeleted ? ' (deleted)' : ''}`
    const b = v.backlink
    if (b === null) rows.push(`${v.versionId.slice(0, 16)}\t\t\tyes`)
    else if ('object' in b) rows.push(`${status}\t${version}\t${b.object.bucketId.slice(0, 16)}\t${b.object.key}`)
    else {
      const u = b.upload
      rows.push(
        `${status}\t${version}\t${(u.bucketId ?? '').slice(0, 16)}\t${u.key ?? ''}\t${u.uploadId.slice(0, 16)}${u.uploadDeleted ? ' (deleted)' : ''}`,
      )
    }
    if (v.refDeleted !== v.versionDeleted) inconsistent = true
    if (!v.refDeleted) nondeleted++
  }
  out.push(formatTable(rows))
  if (inconsistent) {
    out.push(
      '',
      'There are inconsistencies between the block_ref and the version tables.',
      'Fix them by running `garage repair block-refs`',
    )
  }
  if (info.refcount !== nondeleted) {
    out.push('', 'Warning: refcount does not match number of non-deleted versions, you should try `garage repair block-rc`.')
  }
  return out.join('\n')
}

const listErrors = adminCommand({
  meta: { name: 'list-errors', description: 'List all blocks that currently have a resync error' },
  async run(ctx) {
    const errors = await ctx.api.callNode('ListBlockErrors')
    if (ctx.json) return ctx.out.json(errors)
    ctx.out.line(renderBlockErrors(errors))
  },
})

const info = adminCommand({
  meta: { name: 'info', description: 'Get detailed information about a single block' },
  args: { hash: { type: 'positional', required: true, description: 'Hash of the block (at least 4 hex digits)' } },
  async run(ctx, args) {
    const res = await ctx.api.callNode('GetBlockInfo', { blockHash: args.hash })
    if (ctx.json) return ctx.out.json(res)
    ctx.out.line(renderBlockInfo(res))
  },
})

const retryNow = adminCommand({
  meta: { name: 'retry-now', description: 'Retry now the resync of one or many blocks' },
  args: {
    all: { type: 'boolean', description: 'Retry all blocks that have a resync error' },
    blocks: { type: 'positional', required: false, description: 'Hashes of the block to retry to resync now' },
  },
  async run(ctx, args) {
    const hashes = args._
    const all = args.all === true
    if (all === hashes.length > 0) throw new CliError('Please specify block hashes or --all (not both)')
    const res = await ctx.api.callNode('RetryBlockResync', all ? { all: true } : { blockHashes: hashes })
    if (ctx.json) return ctx.out.json(res)
    ctx.out.line(`${res.count} blocks returned in queue for a retry now (check logs to see results)`)
  },
})

const purge = adminCommand({
  meta: { name: 'purge', description: 'Delete all objects referencing a missing block' },
  args: {
    yes: { type: 'boolean', description: 'Mandatory to confirm operation' },
    blocks: { type: 'positional', required: false, description: 'Hashes of the block to purge' },
  },
  async run(ctx, args) {
    if (args.yes !== true) throw new CliError('Pass the --yes flag to confirm block purge operation.')
    if (args._.length === 0) throw new CliError('Please specify the hashes of the blocks to purge')
    const res = await ctx.api.callNode('PurgeBlocks', args._)
    if (ctx.json) return ctx.out.json(res)
    ctx.out.line(
      `Purged ${res.blocksPurged} blocks: deleted ${res.versionsDeleted} versions, ${res.objectsDeleted} objects, ${res.uploadsDeleted} multipart uploads`,
    )
  },
})

export const blockCommand = defineCommand({
  meta: { name: 'block', description: 'Low-level debug operations on data blocks' },
  subCommands: { 'list-errors': listErrors, info, 'retry-now': retryNow, purge },
})
