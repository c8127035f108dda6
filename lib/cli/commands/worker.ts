/**
 * `garage worker …`: background workers of a node and their variables (Garage's
 * `src/garage/cli/remote/worker.rs`, over the admin API v2's per-node endpoints).
 */

import { defineCommand } from 'citty'
import { consola } from 'consola'
import type { WorkerInfoResp, WorkerStateResp } from '../../index.ts'
import { adminCommand } from '../_command.ts'
import { CliError } from '../_errors.ts'
import { formatAgo, formatTable, shortId } from '../_format.ts'
import { parseCount } from '../_parse.ts'
import type { MultiResponse } from '../admin-client.ts'

function stateName(s: WorkerStateResp): string {
  if (typeof s === 'object') return 'Busy*'
  return s === 'busy' ? 'Busy' : s === 'idle' ? 'Idle' : 'Done'
}

function stateRank(s: WorkerStateResp): number {
  return typeof s === 'object' || s === 'busy' ? 0 : s === 'idle' ? 1 : 2
}

/** `worker list` as Garage prints it: busy workers first, then idle, then done. */
export function renderWorkerList(workers: readonly WorkerInfoResp[]): string {
  const sorted = [...workers].sort((a, b) => stateRank(a.state) - stateRank(b.state) || a.id - b.id)
  const rows = ['TID\tState\tName\tTranq\tDone\tQueue\tErrors\tConsec\tLast']
  for (const w of sorted) {
    const [errors, consec] = w.errors > 0 ? [String(w.errors), String(w.consecutiveErrors)] : ['-', '-']
    rows.push(
      [
        w.id,
        stateName(w.state),
        w.name,
        w.tranquility ?? '-',
        w.progress ?? '-',
        w.queueLength ?? '-',
        errors,
        consec,
        w.lastError ? formatAgo(w.lastError.secsAgo) : '',
      ].join('\t'),
    )
  }
  return formatTable(rows)
}

/** `worker info` as Garage prints it. */
export function renderWorkerInfo(w: WorkerInfoResp): string {
  const rows = [`Task id:\t${w.id}`, `Worker name:\t${w.name}`]
  rows.push(
    typeof w.state === 'object'
      ? `Worker state:\tBusy (throttled, paused for ${w.state.throttled.durationSecs.toFixed(3)}s)`
      : `Worker state:\t${stateName(w.state)}`,
  )
  if (w.tranquility != null) rows.push(`Tranquility:\t${w.tranquility}`)
  rows.push('', `Total errors:\t${w.errors}`, `Consecutive errs:\t${w.consecutiveErrors}`)
  if (w.lastError) rows.push(`Last error:\t${w.lastError.message}`, `Last error time:\t${formatAgo(w.lastError.secsAgo)}`)
  rows.push('')
  if (w.progress != null) rows.push(`Progress:\t${w.progress}`)
  if (w.queueLength != null) rows.push(`Queue length:\t${w.queueLength}`)
  if (w.persistentErrors != null) rows.push(`Persistent errors:\t${w.persistentErrors}`)
  w.freeform.forEach((line, i) => {
    if (i === 0 && rows[rows.length - 1] !== '') rows.push('')
    rows.push(i === 0 ? `Message:\t${line}` : `\t${line}`)
  })
  return formatTable(rows)
}

const list = adminCommand({
  meta: { name: 'list', description: 'List all workers on the node' },
  args: {
    busy: { type: 'boolean', description: 'Show only busy workers' },
    errors: { type: 'boolean', description: 'Show only workers with errors' },
  },
  async run(ctx, args) {
    const workers = await ctx.api.callNode('ListWorkers', {
      busyOnly: args.busy === true,
      errorOnly: args.errors === true,
    })
    if (ctx.json) return ctx.out.json(workers)
    ctx.out.line(renderWorkerList(workers))
  },
})

const info = adminCommand({
  meta: { name: 'info', description: 'Get detailed information about a worker' },
  args: { tid: { type: 'positional', required: true, description: 'Task id of the worker (see `worker list`)' } },
  async run(ctx, args) {
    const w = await ctx.api.callNode('GetWorkerInfo', { id: parseCount(args.tid, 'worker id') })
    if (ctx.json) return ctx.out.json(w)
    ctx.out.line(renderWorkerInfo(w))
  },
})

const allNodes = { type: 'boolean', alias: 'a', description: 'On all nodes' } as const

/** Print `node var value` rows and per-node errors; fail if any node failed. */
function reportVariables(ctx: { out: { table(rows: string[]): void } }, res: MultiResponse<unknown>, rows: string[]): void {
  ctx.out.table(rows)
  const errors = Object.entries(res.error ?? {})
  for (const [node, err] of errors) consola.error(`${shortId(node)}: error: ${err}`)
  if (errors.length > 0) throw new CliError(`${errors.length} node(s) returned an error`)
}

const get = adminCommand({
  meta: { name: 'get', description: 'Get worker parameter(s)' },
  args: {
    variable: { type: 'positional', required: false, description: 'Variable name (default: all)' },
    'all-nodes': allNodes,
  },
  async run(ctx, args) {
    const res = await ctx.api.call('GetWorkerVariable', {
      query: { node: args['all-nodes'] ? '*' : 'self' },
      body: { variable: args.variable ?? null },
    })
    if (ctx.json) return ctx.out.json(res)
    const rows: string[] = []
    for (const [node, vars] of Object.entries(res.success ?? {})) {
      for (const [k, v] of Object.entries(vars)) rows.push(`${shortId(node)}\t${k}\t${v}`)
    }
    reportVariables(ctx, res, rows)
  },
})

const set = adminCommand({
  meta: { name: 'set', description: 'Set worker parameter' },
  args: {
    variable: { type: 'positional', required: true, description: 'Variable name' },
    value: { type: 'positional', required: true, description: 'New value' },
    'all-nodes': allNodes,
  },
  async run(ctx, args) {
    const res = await ctx.api.call('SetWorkerVariable', {
      query: { node: args['all-nodes'] ? '*' : 'self' },
      body: { variable: args.variable, value: args.value },
    })
    if (ctx.json) return ctx.out.json(res)
    const rows = Object.entries(res.success ?? {}).map(([node, kv]) => `${shortId(node)}\t${kv.variable}\t${kv.value}`)
    reportVariables(ctx, res, rows)
  },
})

export const workerCommand = defineCommand({
  meta: { name: 'worker', description: 'Manage background workers' },
  subCommands: { list, info, get, set },
})
