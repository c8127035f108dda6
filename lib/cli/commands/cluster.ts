/**
 * `garage status`, `garage node id|connect` and `garage stats` (Garage's
 * `src/garage/cli/remote/cluster.rs` and `node.rs`, over the admin API v2).
 */

import { defineCommand } from 'citty'
import { consola } from 'consola'
import type { GetClusterLayoutResponse, GetClusterStatusResponse, NodeResp } from '../../index.ts'
import { adminCommand } from '../_command.ts'
import { CliError } from '../_errors.ts'
import { formatAgo, formatBytes, formatTable, shortId } from '../_format.ts'
import { AdminApiError } from '../admin-client.ts'

/** Capacity of a role as Garage shows it: decimal units, or `gateway` without capacity. */
function capacityString(capacity: number | null | undefined): string {
  return capacity == null ? 'gateway' : formatBytes(capacity, false)
}

/** `garage status` as Garage prints it: healthy nodes, then failed ones, then staged changes. */
export function renderStatus(status: GetClusterStatusResponse, layout: GetClusterLayoutResponse | undefined): string {
  const staged = (n: NodeResp) => layout?.stagedRoleChanges.find((c) => c.id === n.id)
  const out: string[] = ['==== HEALTHY NODES ====']
  // Newer Garage versions report each node's version; show the column only when they do.
  const withVersion = status.nodes.some((n) => n.garageVersion != null)
  const version = (n: NodeResp) => (withVersion ? `\t${n.garageVersion ?? '?'}` : '')
  const healthy = [`ID\tHostname\tAddress\tTags\tZone\tCapacity\tDataAvail${withVersion ? '\tVersion' : ''}`]
  for (const n of status.nodes.filter((x) => x.isUp)) {
    const host = n.hostname ?? '?'
    const addr = n.addr ?? 'N/A'
    if (n.role) {
      let avail = '?'
      if (n.role.capacity == null) avail = 'N/A'
      else if (n.dataPartition) {
        const { available, total } = n.dataPartition
        avail = `${formatBytes(available, false)} (${total > 0 ? ((available / total) * 100).toFixed(1) : '0.0'}%)`
      }
      healthy.push(
        `${shortId(n.id)}\t${host}\t${addr}\t[${n.role.tags.join(',')}]\t${n.role.zone}\t${capacityString(n.role.capacity)}\t${avail}${version(n)}`,
      )
    } else {
      const change = staged(n)
      const what =
        change !== undefined && !('remove' in change) ? 'pending...' : n.draining ? 'draining metadata..' : 'NO ROLE ASSIGNED'
      healthy.push(`${shortId(n.id)}\t${host}\t${addr}\t\t\t${what}${withVersion ? `\t${version(n)}` : ''}`)
    }
  }
  out.push(formatTable(healthy))

  const failed = ['ID\tHostname\tTags\tZone\tCapacity\tLast seen']
  let draining = false
  for (const n of status.nodes.filter((x) => !x.isUp)) {
    const lastSeen = n.lastSeenSecsAgo != null ? formatAgo(n.lastSeenSecsAgo) : 'never seen'
    const host = n.hostname ?? '?'
    if (n.role) {
      failed.push(
        `${shortId(n.id)}\t${host}\t[${n.role.tags.join(',')}]\t${n.role.zone}\t${capacityString(n.role.capacity)}\t${lastSeen}`,
      )
    } else {
      const what = staged(n) !== undefined ? 'pending...' : 'draining metadata..'
      draining ||= n.draining
      failed.push(`${shortId(n.id)}\t${host}\t\t\t${what}\t${lastSeen}`)
    }
  }
  if (failed.length > 1) {
    out.push('', '==== FAILED NODES ====', formatTable(failed))
    if (draining) {
      out.push(
        '',
        'Your cluster is expecting to drain data from nodes that are currently unavailable.',
        'If these nodes are definitely dead, please review the layout history with',
        '`garage layout history` and use `garage layout skip-dead-nodes` to force progress.',
      )
    }
  }
  if (layout !== undefined && layout.stagedRoleChanges.length > 0) {
    out.push('', '==== STAGED ROLE CHANGES ====')
    const rows = ['ID\tTags\tZone\tCapacity']
    for (const c of layout.stagedRoleChanges) {
      if ('remove' in c) rows.push(`${shortId(c.id)}\tREMOVED\t\t`)
      else rows.push(`${shortId(c.id)}\t[${(c.tags ?? []).join(',')}]\t${c.zone ?? ''}\t${capacityString(c.capacity)}`)
    }
    out.push(formatTable(rows), '', 'Please use `garage layout show` to check the proposed new layout and apply it.')
  }
  return out.join('\n')
}

export const statusCommand = adminCommand({
  meta: { name: 'status', description: 'Get network status' },
  async run(ctx) {
    const status = await ctx.api.call('GetClusterStatus')
    if (ctx.json) return ctx.out.json(status)
    let layout: GetClusterLayoutResponse | undefined
    try {
      layout = await ctx.api.call('GetClusterLayout')
    } catch (err) {
      // Only the staged-changes section depends on the layout; a node without the cluster
      // feature answers 501 (or 404), and the status is still worth printing.
      if (!(err instanceof AdminApiError) || (err.status !== 501 && err.status !== 404)) throw err
    }
    ctx.out.line(renderStatus(status, layout))
  },
})

const nodeId = adminCommand({
  meta: {
    name: 'id',
    description: 'Print the node id (public key) of the node and its RPC address, as <id>@<address>',
  },
  args: { quiet: { type: 'boolean', alias: 'q', description: 'Do not print usage instructions to stderr' } },
  async run(ctx, args) {
    const info = await ctx.api.call('GetNodeInfo', { query: { node: 'self' } })
    const [failed] = Object.entries(info.error ?? {})
    if (failed !== undefined) throw new CliError(`GetNodeInfo failed on node ${shortId(failed[0])}: ${failed[1]}`)
    const [self] = Object.values(info.success ?? {})
    if (self === undefined) throw new CliError('GetNodeInfo returned no node')
    const status = await ctx.api.call('GetClusterStatus')
    const addr = status.nodes.find((n) => n.id === self.nodeId)?.addr ?? undefined
    if (ctx.json) return ctx.out.json({ ...self, addr: addr ?? null })
    const full = addr !== undefined ? `${self.nodeId}@${addr}` : self.nodeId
    ctx.out.line(full)
    if (args.quiet) return
    if (addr === undefined) {
      consola.warn('The node does not advertise an RPC address: set rpc_public_addr in its configuration.')
    }
    process.stderr.write(
      `\nTo instruct a node to connect to this node, run the following command on that node:\n    garage node connect ${full}\n\n` +
        'This node id is also the value to use in bootstrap_peers in the configuration of other nodes.\n',
    )
  },
})

const nodeConnect = adminCommand({
  meta: { name: 'connect', description: 'Connect to a Garage node that is currently isolated from the system' },
  args: { node: { type: 'positional', required: true, description: 'Full node id, IP address and port: <node id>@<ip>:<port>' } },
  async run(ctx, args) {
    const res = await ctx.api.call('ConnectClusterNodes', { body: [args.node] })
    if (ctx.json) ctx.out.json(res)
    const [first] = res
    if (res.length !== 1 || first === undefined) throw new CliError(`unexpected response: ${JSON.stringify(res)}`)
    if (!first.success) throw new CliError(`Failure: ${first.error ?? ''}`)
    if (!ctx.json) ctx.out.line('Success.')
  },
})

export const nodeCommand = defineCommand({
  meta: { name: 'node', description: 'Operations on individual Garage nodes' },
  subCommands: { id: nodeId, connect: nodeConnect },
})

export const statsCommand = adminCommand({
  meta: { name: 'stats', description: 'Gather node statistics' },
  args: { 'all-nodes': { type: 'boolean', alias: 'a', description: 'Gather statistics from all nodes' } },
  async run(ctx, args) {
    const node = args['all-nodes'] ? '*' : 'self'
    const nodes = await ctx.api.call('GetNodeStatistics', { query: { node } })
    let cluster: { freeform: string } | undefined
    try {
      cluster = await ctx.api.call('GetClusterStatistics')
    } catch (err) {
      // The per-node statistics stand on their own; cluster-wide ones need the cluster feature.
      if (!(err instanceof AdminApiError) || (err.status !== 501 && err.status !== 404)) throw err
    }
    if (ctx.json) return ctx.out.json({ nodes, cluster: cluster ?? null })
    for (const [id, res] of Object.entries(nodes.success ?? {}))
      ctx.out.line(`==== NODE [${shortId(id)}] ====\n${res.freeform}\n`)
    for (const [id, err] of Object.entries(nodes.error ?? {})) ctx.out.line(`==== NODE [${shortId(id)}] ====\nError: ${err}\n`)
    if (cluster !== undefined) ctx.out.line(`==== CLUSTER STATISTICS ====\n${cluster.freeform}\n`)
    const failures = Object.keys(nodes.error ?? {}).length
    if (failures > 0) throw new CliError(`${failures} node(s) returned an error`)
  },
})
