/**
 * Cluster layout endpoints (port of garage_api_admin::layout): thin JSON layers over
 * `node.layout.*`, with Garage's v2 shapes (`zoneRedundancy` is `"maximum"` or `{ "atLeast": n }`,
 * role changes are `{ id, zone, capacity, tags }` or `{ id, remove: true }`).
 */
import type { ClusterLayoutView, LayoutRoleChange, LayoutStageRequest } from '../../rpc/layout/api.ts'
import { LayoutError, type LayoutParameters, type ZoneRedundancy } from '../../rpc/layout/types.ts'
import type { AdminContext } from './context.ts'
import { badRequest } from './errors.ts'
import { Fields } from './request.ts'

type ApiZoneRedundancy = 'maximum' | { atLeast: number }

const toApiRedundancy = (zr: ZoneRedundancy): ApiZoneRedundancy => (zr === 'maximum' ? 'maximum' : { atLeast: zr })
const toApiParameters = (p: LayoutParameters) => ({ zoneRedundancy: toApiRedundancy(p.zoneRedundancy) })

function parseRedundancy(v: unknown): ZoneRedundancy {
  if (v === 'maximum') return 'maximum'
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const n = (v as { atLeast?: unknown }).atLeast
    if (Number.isSafeInteger(n) && Object.keys(v).length === 1) return n as number
  }
  throw badRequest(`'zoneRedundancy' must be "maximum" or { "atLeast": <number> }`)
}

/** Garage's GetClusterLayoutResponse. */
function formatLayout(l: ClusterLayoutView) {
  return {
    version: l.version,
    roles: l.roles.map((r) => ({
      id: r.id,
      zone: r.zone,
      tags: r.tags,
      capacity: r.capacity,
      storedPartitions: r.storedPartitions,
      usableCapacity: r.usableCapacity,
    })),
    parameters: toApiParameters(l.parameters),
    partitionSize: l.partitionSize,
    stagedRoleChanges: l.stagedRoleChanges,
    stagedParameters: l.stagedParameters === null ? null : toApiParameters(l.stagedParameters),
  }
}

/** Layout refusals (bad version, impossible assignment, unknown node) are the caller's error. */
async function asBadRequest<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof LayoutError) throw badRequest(err.message)
    throw err
  }
}

export function handleGetClusterLayout(ctx: AdminContext) {
  return formatLayout(ctx.layout.get())
}

export function handleGetClusterLayoutHistory(ctx: AdminContext) {
  return ctx.layout.history()
}

function parseRoleChange(v: unknown, i: number): LayoutRoleChange {
  const f = new Fields(v, `roles[${i}]`)
  const id = f.string('id')
  if (f.has('remove')) {
    if (f.optBool('remove') !== true) throw badRequest(`roles[${i}]: 'remove' must be true`)
    return { id, remove: true }
  }
  const zone = f.string('zone')
  const capacity = f.optInt('capacity') ?? null
  const tags = f.optStringArray('tags') ?? []
  return { id, zone, capacity, tags }
}

export async function handleUpdateClusterLayout(ctx: AdminContext) {
  const f = new Fields(ctx.body)
  const body = (ctx.body ?? {}) as { roles?: unknown; parameters?: unknown }
  const request: LayoutStageRequest = {}
  if (body.roles !== undefined && body.roles !== null) {
    if (!Array.isArray(body.roles)) throw badRequest(`'roles' must be an array`)
    request.roles = body.roles.map(parseRoleChange)
  }
  const params = f.optObject('parameters')
  if (params !== undefined) {
    const zr = (body.parameters as { zoneRedundancy?: unknown }).zoneRedundancy
    if (zr === undefined) throw badRequest(`'parameters': 'zoneRedundancy' is required`)
    request.parameters = { zoneRedundancy: parseRedundancy(zr) }
  }
  return formatLayout(await asBadRequest(() => ctx.layout.stage(request)))
}

export function handlePreviewClusterLayoutChanges(ctx: AdminContext) {
  const p = ctx.layout.preview()
  if (!p.ok) return { error: p.error }
  return { message: p.messages, newLayout: formatLayout(p.layout) }
}

export async function handleApplyClusterLayout(ctx: AdminContext) {
  const version = new Fields(ctx.body).int('version')
  const res = await asBadRequest(() => ctx.layout.apply(version))
  return { message: res.messages, layout: formatLayout(res.layout) }
}

export async function handleRevertClusterLayout(ctx: AdminContext) {
  return formatLayout(await ctx.layout.revert())
}

export function handleClusterLayoutSkipDeadNodes(ctx: AdminContext) {
  const f = new Fields(ctx.body)
  const version = f.int('version')
  const allowMissingData = f.optBool('allowMissingData') ?? false
  return asBadRequest(() => ctx.layout.skipDeadNodes({ version, allowMissingData }))
}
