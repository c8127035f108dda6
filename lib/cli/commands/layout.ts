/**
 * `garage layout …`: the cluster layout (Garage's `src/garage/cli/remote/layout.rs`, over the
 * admin API v2): show, assign, remove, config, apply, revert, history, skip-dead-nodes.
 */

import { defineCommand } from 'citty'
import type { ApiZoneRedundancy, GetClusterLayoutHistoryResponse, GetClusterLayoutResponse, NodeRoleChange } from '../../index.ts'
import { type AdminContext, adminCommand } from '../_command.ts'
import { CliError } from '../_errors.ts'
import { formatBytes, formatTable, shortId } from '../_format.ts'
import { parseCount, parseSize } from '../_parse.ts'

const capacityString = (c: number | null | undefined): string => (c == null ? 'gateway' : formatBytes(c, false))
const redundancyString = (zr: ApiZoneRedundancy): string => (zr === 'maximum' ? 'maximum' : String(zr.atLeast))

/** Garage's `print_cluster_layout`. */
export function renderLayout(layout: GetClusterLayoutResponse, emptyMessage: string): string {
  const rows = ['ID\tTags\tZone\tCapacity\tUsable capacity']
  for (const r of layout.roles) {
    const tags = r.tags.join(',')
    if (r.capacity != null && r.usableCapacity != null) {
      const pct = ((100 * r.usableCapacity) / r.capacity).toFixed(1)
      rows.push(
        `${shortId(r.id)}\t${tags}\t${r.zone}\t${capacityString(r.capacity)}\t${formatBytes(r.usableCapacity, false)} (${pct}%)`,
      )
    } else rows.push(`${shortId(r.id)}\t${tags}\t${r.zone}\t${capacityString(r.capacity)}`)
  }
  if (rows.length === 1) return emptyMessage
  return `${formatTable(rows)}\n\nZone redundancy: ${redundancyString(layout.parameters.zoneRedundancy)}`
}

/** Garage's `print_staging_role_changes`; undefined when nothing is staged. */
export function renderStagedChanges(layout: GetClusterLayoutResponse): string | undefined {
  const params = layout.stagedParameters ?? null
  if (layout.stagedRoleChanges.length === 0 && params === null) return undefined
  const out = ['==== STAGED ROLE CHANGES ====']
  if (layout.stagedRoleChanges.length > 0) {
    const rows = ['ID\tTags\tZone\tCapacity']
    for (const c of layout.stagedRoleChanges) {
      if ('remove' in c) rows.push(`${shortId(c.id)}\tREMOVED`)
      else rows.push(`${shortId(c.id)}\t${(c.tags ?? []).join(',')}\t${c.zone ?? ''}\t${capacityString(c.capacity)}`)
    }
    out.push(formatTable(rows), '')
  }
  if (params !== null) out.push(`Zone redundancy: ${redundancyString(params.zoneRedundancy)}`)
  return out.join('\n')
}

/** Garage's `find_matching_node`: the one candidate id starting with `pattern`. */
export function findMatchingNode(candidates: Iterable<string>, pattern: string): string {
  const p = pattern.toLowerCase()
  // A full node id needs no lookup: the node may not have been seen yet.
  if (/^[0-9a-f]{64}$/.test(p)) return p
  const found = [...new Set(candidates)].filter((c) => c.startsWith(p))
  if (found.length !== 1 || p === '') throw new CliError(`${found.length} nodes match '${pattern}'`)
  return found[0] as string
}

async function knownNodes(ctx: AdminContext, layout: GetClusterLayoutResponse): Promise<string[]> {
  const ids = layout.roles.map((r) => r.id)
  ids.push(...layout.stagedRoleChanges.map((c) => c.id))
  const status = await ctx.api.call('GetClusterStatus')
  ids.push(...status.nodes.map((n) => n.id))
  return ids
}

/** The role a node will have: its staged change, else its current role. */
function stagedOrCurrentRole(id: string, layout: GetClusterLayoutResponse) {
  const staged = layout.stagedRoleChanges.find((c) => c.id === id)
  if (staged !== undefined) return 'remove' in staged ? undefined : staged
  return layout.roles.find((r) => r.id === id)
}

function asList(v: unknown): string[] {
  if (v === undefined || v === null || v === false) return []
  const values = Array.isArray(v) ? v.map(String) : [String(v)]
  return values.flatMap((x) => x.split(',')).filter((x) => x !== '')
}

const STAGED_HINT = [
  'Use `garage layout show` to view staged role changes,',
  'and `garage layout apply` to enact staged changes.',
]

const show = adminCommand({
  meta: { name: 'show', description: 'Show roles currently assigned to nodes and changes staged for commit' },
  async run(ctx) {
    const layout = await ctx.api.call('GetClusterLayout')
    const staged = renderStagedChanges(layout)
    const preview = staged === undefined ? undefined : await ctx.api.call('PreviewClusterLayoutChanges', { body: {} })
    if (ctx.json) return ctx.out.json({ layout, preview: preview ?? null })
    const out = ['==== CURRENT CLUSTER LAYOUT ====']
    out.push(renderLayout(layout, 'No nodes currently have a role in the cluster.\nSee `garage status` to view available nodes.'))
    out.push('', `Current cluster layout version: ${layout.version}`)
    if (staged !== undefined && preview !== undefined) {
      out.push('', staged)
      if ('error' in preview) {
        out.push(
          `Error while trying to compute the assignment: ${preview.error}`,
          'This new layout cannot yet be applied.',
          'You can also revert all proposed changes with: garage layout revert',
        )
      } else {
        out.push('', '==== NEW CLUSTER LAYOUT AFTER APPLYING CHANGES ====')
        out.push(renderLayout(preview.newLayout, 'No nodes have a role in the new layout.'), '')
        out.push(...preview.message)
        out.push(
          'To enact the staged role changes, type:',
          '',
          `    garage layout apply --version ${preview.newLayout.version}`,
          '',
          'You can also revert all proposed changes with: garage layout revert',
        )
      }
    }
    ctx.out.line(out.join('\n'))
  },
})

const assign = adminCommand({
  meta: { name: 'assign', description: 'Assign role to Garage node' },
  args: {
    node: { type: 'positional', required: true, description: 'Node(s) to which to assign role (prefix of hexadecimal node id)' },
    zone: { type: 'string', alias: 'z', description: 'Location (zone or datacenter) of the node' },
    capacity: {
      type: 'string',
      alias: 'c',
      description: 'Storage capacity, in bytes (supported suffixes: B, KB, MB, GB, TB, PB)',
    },
    gateway: { type: 'boolean', alias: 'g', description: 'Gateway-only node' },
    tag: { type: 'string', alias: 't', description: 'Optional tags to add to node (repeat or separate with commas)' },
    replace: { type: 'string', description: 'Replaced node(s): list of node IDs that will be removed from the current cluster' },
  },
  async run(ctx, args) {
    const layout = await ctx.api.call('GetClusterLayout')
    const known = await knownNodes(ctx, layout)
    const roles: NodeRoleChange[] = []
    for (const old of asList(args.replace)) roles.push({ id: findMatchingNode(known, old), remove: true })
    if (args.gateway === true && args.capacity !== undefined) throw new CliError('Please specify only -c or -g')
    const capacity = args.capacity === undefined ? undefined : parseSize(args.capacity)
    const tags = asList(args.tag)
    const nodes = [args.node, ...args._.filter((x) => x !== args.node)]
    for (const pattern of nodes) {
      const id = findMatchingNode(known, pattern)
      const current = stagedOrCurrentRole(id, layout)
      const zone = args.zone ?? current?.zone
      if (zone === undefined) throw new CliError('Please specify a zone with the -z flag')
      let cap: number | null
      if (args.gateway === true) cap = null
      else if (capacity !== undefined) cap = capacity
      else if (current !== undefined) cap = current.capacity ?? null
      else throw new CliError('Please specify a capacity with the -c flag, or set node explicitly as gateway with -g')
      roles.push({ id, zone, capacity: cap, tags: tags.length > 0 ? tags : (current?.tags ?? []) })
    }
    const res = await ctx.api.call('UpdateClusterLayout', { body: { roles } })
    if (ctx.json) return ctx.out.json(res)
    ctx.out.line(['Role changes are staged but not yet committed.', ...STAGED_HINT].join('\n'))
  },
})

const remove = adminCommand({
  meta: { name: 'remove', description: 'Remove role from Garage cluster node' },
  args: {
    node: { type: 'positional', required: true, description: 'Node whose role to remove (prefix of hexadecimal node id)' },
  },
  async run(ctx, args) {
    const layout = await ctx.api.call('GetClusterLayout')
    const id = findMatchingNode(await knownNodes(ctx, layout), args.node)
    const res = await ctx.api.call('UpdateClusterLayout', { body: { roles: [{ id, remove: true }] } })
    if (ctx.json) return ctx.out.json(res)
    ctx.out.line(['Role removal is staged but not yet committed.', ...STAGED_HINT].join('\n'))
  },
})

/** `none` (= 1), `max` / `maximum`, or a number. */
export function parseRedundancy(text: string): ApiZoneRedundancy {
  const t = text.trim().toLowerCase()
  if (t === 'none') return { atLeast: 1 }
  if (t === 'max' || t === 'maximum') return 'maximum'
  if (/^\d+$/.test(t)) return { atLeast: Number(t) }
  throw new CliError('invalid zone redundancy value')
}

const config = adminCommand({
  meta: { name: 'config', description: 'Configure parameters value for the layout computation' },
  args: {
    redundancy: {
      type: 'string',
      alias: 'r',
      description: "Zone redundancy parameter ('none'/'max' or integer)",
    },
  },
  async run(ctx, args) {
    if (args.redundancy === undefined) throw new CliError('Please specify an action for `garage layout config`')
    const zr = parseRedundancy(args.redundancy)
    const res = await ctx.api.call('UpdateClusterLayout', {
      body: { roles: [], parameters: { zoneRedundancy: zr } },
    })
    if (ctx.json) return ctx.out.json(res)
    ctx.out.line(`The zone redundancy parameter has been set to '${redundancyString(zr)}'.`)
  },
})

const apply = adminCommand({
  meta: { name: 'apply', description: 'Apply staged changes to cluster layout' },
  args: {
    version: {
      type: 'string',
      description:
        'Version number of new configuration: this command will fail if it is not exactly 1 + the previous configuration version',
    },
  },
  async run(ctx, args) {
    if (args.version === undefined) {
      throw new CliError(
        'Please pass the new layout version number to ensure that you are writing the correct version of the cluster layout.\n' +
          'To know the correct value of the new layout version, invoke `garage layout show` and review the proposed changes.',
      )
    }
    const version = parseCount(args.version, 'version')
    const res = await ctx.api.call('ApplyClusterLayout', { body: { version } })
    if (ctx.json) return ctx.out.json(res)
    ctx.out.line(
      [
        ...res.message,
        'New cluster layout with updated role assignment has been applied in cluster.',
        'Data will now be moved around between nodes accordingly.',
      ].join('\n'),
    )
  },
})

const revert = adminCommand({
  meta: { name: 'revert', description: 'Revert staged changes to cluster layout' },
  args: { yes: { type: 'boolean', description: 'The revert operation will not be ran unless this flag is added' } },
  async run(ctx, args) {
    if (args.yes !== true) throw new CliError('Please add the --yes flag to run the layout revert operation')
    const res = await ctx.api.call('RevertClusterLayout', { body: {} })
    if (ctx.json) return ctx.out.json(res)
    ctx.out.line('All proposed role changes in cluster layout have been canceled.')
  },
})

/** `garage layout history` as Garage prints it. */
export function renderHistory(h: GetClusterLayoutHistoryResponse): string {
  const out = ['==== LAYOUT HISTORY ====']
  const rows = ['Version\tStatus\tStorage nodes\tGateway nodes']
  for (const v of h.versions) rows.push(`#${v.version}\t${v.status}\t${v.storageNodes}\t${v.gatewayNodes}`)
  out.push(formatTable(rows), '')
  const trackers = h.updateTrackers ?? null
  if (trackers !== null) {
    out.push(
      '==== UPDATE TRACKERS ====',
      'Several layout versions are currently live in the cluster, and data is being migrated.',
      'This is the internal data that Garage stores to know which nodes have what data.',
      '',
    )
    const lines = Object.entries(trackers)
      .map(([id, t]) => `${shortId(id)}\t#${t.ack}\t#${t.sync}\t#${t.syncAck}`)
      .sort()
    out.push(formatTable(['Node\tAck\tSync\tSync_ack', ...lines]), '')
    out.push(
      'If some nodes are not catching up to the latest layout version in the update trackers,',
      'it might be because they are offline or unable to complete a sync successfully.',
    )
    if (h.minAck < h.currentVersion) {
      out.push(`You may force progress using \`garage layout skip-dead-nodes --version ${h.currentVersion}\``)
    } else {
      out.push(
        `You may force progress using \`garage layout skip-dead-nodes --version ${h.currentVersion} --allow-missing-data\`.`,
      )
    }
  } else {
    out.push(
      'Your cluster is currently in a stable state with a single live layout version.',
      'No metadata migration is in progress. Note that the migration of data blocks is not tracked,',
      'so you might want to keep old nodes online until their data directories become empty.',
    )
  }
  return out.join('\n')
}

const history = adminCommand({
  meta: { name: 'history', description: 'View the history of layouts in the cluster' },
  async run(ctx) {
    const h = await ctx.api.call('GetClusterLayoutHistory')
    if (ctx.json) return ctx.out.json(h)
    ctx.out.line(renderHistory(h))
  },
})

const skipDeadNodes = adminCommand({
  meta: {
    name: 'skip-dead-nodes',
    description: 'Skip dead nodes when awaiting for a new layout version to be synchronized',
  },
  args: {
    version: { type: 'string', required: true, description: 'Version number of the layout to assume is currently up-to-date' },
    'allow-missing-data': {
      type: 'boolean',
      description: 'Allow the skip even if a quorum of nodes could not be found for the data among the remaining nodes',
    },
  },
  async run(ctx, args) {
    const version = parseCount(args.version, 'version')
    const allowMissingData = args['allow-missing-data'] === true
    const res = await ctx.api.call('ClusterLayoutSkipDeadNodes', {
      body: { version, allowMissingData },
    })
    if (ctx.json) return ctx.out.json(res)
    if (res.ackUpdated.length > 0 || res.syncUpdated.length > 0) {
      for (const n of res.ackUpdated) ctx.out.line(`Increased the ACK tracker for node ${shortId(n)}`)
      for (const n of res.syncUpdated) ctx.out.line(`Increased the SYNC tracker for node ${shortId(n)}`)
      return
    }
    if (!allowMissingData) {
      throw new CliError(
        'Nothing was done, try passing the `--allow-missing-data` flag to force progress even when not enough nodes can complete a metadata sync.',
      )
    }
    throw new CliError(
      'Sorry, there is nothing I can do for you. Please wait patiently. If you ask for help, please send the output of the `garage layout history` command.',
    )
  },
})

export const layoutCommand = defineCommand({
  meta: { name: 'layout', description: 'Operations on the assignment of node roles in the cluster layout' },
  subCommands: { show, assign, remove, config, apply, revert, history, 'skip-dead-nodes': skipDeadNodes },
})
