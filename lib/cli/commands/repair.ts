/**
 * `garage repair [-a] --yes <what>`: starts a repair on this node or on every node (Garage's
 * `cmd_repair` in `src/garage/cli/remote/node.rs`, over LaunchRepairOperation).
 */

import { adminCommand } from '../_command.ts'
import { CliError } from '../_errors.ts'
import { shortId } from '../_format.ts'
import type { MultiResponse } from '../admin-client.ts'

/** `garage repair` operations → the admin API's `repairType`. */
const REPAIRS: Readonly<Record<string, string>> = {
  tables: 'tables',
  blocks: 'blocks',
  versions: 'versions',
  mpu: 'multipartUploads',
  'multipart-uploads': 'multipartUploads',
  'block-refs': 'blockRefs',
  'block-rc': 'blockRc',
  rebalance: 'rebalance',
}
const SCRUB_COMMANDS = ['start', 'pause', 'resume', 'cancel']

/** The `repairType` of `garage repair <what> [cmd]`. */
export function repairTypeOf(what: string, cmd: string | undefined): string | { scrub: string } {
  if (what === 'scrub') {
    if (cmd === undefined || !SCRUB_COMMANDS.includes(cmd)) {
      throw new CliError(`garage repair scrub needs one of: ${SCRUB_COMMANDS.join(', ')}`)
    }
    return { scrub: cmd }
  }
  if (what === 'aliases') throw new CliError('garage repair aliases is not supported by this implementation')
  const t = REPAIRS[what]
  if (t === undefined) {
    throw new CliError(`unknown repair '${what}': expected one of ${[...Object.keys(REPAIRS), 'scrub'].join(', ')}`)
  }
  if (cmd !== undefined) throw new CliError(`unexpected argument '${cmd}' after '${what}'`)
  return t
}

/** Garage's answer table: errors first, then `Repair launched` per node. */
export function renderRepairResult(res: MultiResponse<unknown>): string[] {
  const rows: string[] = []
  for (const [node, err] of Object.entries(res.error ?? {})) rows.push(`${shortId(node)}\tError: ${err}`)
  for (const node of Object.keys(res.success ?? {})) rows.push(`${shortId(node)}\tRepair launched`)
  return rows
}

export const repairCommand = adminCommand({
  meta: {
    name: 'repair',
    description:
      'Start repair of node data on remote node: tables | blocks | versions | mpu | block-refs | block-rc | rebalance | scrub <start|pause|resume|cancel>',
  },
  args: {
    what: {
      type: 'positional',
      required: true,
      description: 'tables, blocks, versions, mpu, block-refs, block-rc, rebalance or scrub',
    },
    cmd: { type: 'positional', required: false, description: 'For scrub: start, pause, resume or cancel' },
    'all-nodes': { type: 'boolean', alias: 'a', description: 'Launch repair operation on all nodes' },
    yes: { type: 'boolean', description: 'Confirmation' },
  },
  async run(ctx, args) {
    const repairType = repairTypeOf(args.what, args.cmd)
    if (args.yes !== true) throw new CliError('Please add --yes to start the repair operation')
    const res = await ctx.api.call('LaunchRepairOperation', {
      query: { node: args['all-nodes'] === true ? '*' : 'self' },
      body: { repairType },
    })
    if (ctx.json) return ctx.out.json(res)
    ctx.out.table(renderRepairResult(res))
    const failed = Object.keys(res.error ?? {}).length
    if (failed > 0) throw new CliError(`${failed} node(s) returned an error`)
  },
})
