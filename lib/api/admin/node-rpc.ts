/**
 * Node-scoped admin endpoints over the cluster (port of the `local_admin_endpoints` machinery of
 * garage_api_admin): `?node=self|*|<id prefix>` picks the nodes; the request body is parsed and
 * checked once, on the node that received the HTTP request; each target node runs the local
 * handler (this node directly, the others through the `admin/local` RPC) and the answers are
 * gathered as `{ success: { <node>: … }, error: { <node>: message } }`.
 *
 * With a single node addressed (`self` or an id), that node's failure is the request's error
 * (with the node's error code); with `*`, failures are listed under `error`.
 */
import type { NetApp } from '../../net/netapp.ts'
import { defineEndpoint } from '../../net/endpoint.ts'
import { allNodes } from '../../rpc/layout/history.ts'
import type { Logger } from '../../util/logger.ts'
import type { AdminContext, AdminNodeView, MultiResponse, NodeAdminContext } from './context.ts'
import { ADMIN_ERROR_STATUS, AdminError, type AdminErrorCode, badRequest, toAdminError } from './errors.ts'
import { queryParam } from './request.ts'
import type { ADMIN_API } from './contract.ts'
import type { AdminEndpointName } from './router.ts'

/** A node-scoped request as it travels to another node: the endpoint and its parsed request. */
export interface AdminLocalRequest {
  endpoint: string
  req: unknown
}

/** The other node's answer: its handler's value, or its error as the admin API would render it. */
export type AdminLocalResponse = { ok: true; value: unknown } | { ok: false; code: string; status: number; message: string }

/** RPC path of node-scoped admin requests; never renamed. */
export const ADMIN_LOCAL_RPC = defineEndpoint<AdminLocalRequest, AdminLocalResponse>('admin/local')

/** Names of the endpoints that address nodes (`perNode` in the router). */
export type NodeScopedEndpoint = {
  [K in AdminEndpointName]: (typeof ADMIN_API)[K] extends { perNode: true } ? K : never
}[AdminEndpointName]

/**
 * One node-scoped endpoint: `parse` checks the HTTP request (400 on bad input) and returns a
 * msgpack-friendly request; `run` executes it on the node it is sent to.
 */
export interface LocalEndpoint<Req, Res> {
  parse(body: unknown, query: URLSearchParams): Req
  run(ctx: NodeAdminContext, req: Req): Promise<Res> | Res
}

/** Erases the request and response types of a {@link LocalEndpoint} for the endpoint table. */
export function localEndpoint<Req, Res>(e: LocalEndpoint<Req, Res>): LocalEndpoint<unknown, unknown> {
  return e as unknown as LocalEndpoint<unknown, unknown>
}

export type LocalEndpointTable = Readonly<Record<NodeScopedEndpoint, LocalEndpoint<unknown, unknown>>>

/** Every node this one knows: itself, the nodes of the layout history, and the known peers. */
function knownNodes(node: AdminNodeView): { all: string[]; up: Set<string> } {
  const ids = new Set<string>([node.nodeId])
  const up = new Set<string>([node.nodeId])
  const cluster = node.cluster
  if (cluster !== undefined) {
    for (const id of allNodes(cluster.layout())) ids.add(id)
    for (const p of cluster.nodes()) {
      ids.add(p.id)
      if (p.isUp) up.add(p.id)
    }
  }
  return { all: [...ids], up }
}

/**
 * The nodes `?node=` names. `*`: this node, every node of the layout, and every peer that is up
 * (Garage asks the layout's nodes; peers without a role yet are included so a fresh cluster
 * answers too).
 */
export function resolveTargetNodes(node: AdminNodeView, target: string): string[] {
  if (target === 'self') return [node.nodeId]
  const { all, up } = knownNodes(node)
  if (target === '*') {
    const layoutNodes = node.cluster === undefined ? [] : allNodes(node.cluster.layout())
    return all.filter((id) => id === node.nodeId || up.has(id) || layoutNodes.includes(id))
  }
  const prefix = target.toLowerCase()
  const matching = prefix === '' ? [] : all.filter((id) => id.startsWith(prefix))
  if (matching.length !== 1) {
    throw badRequest(
      matching.length === 0
        ? `no node matches '${target}' (known nodes: ${all.map((id) => id.slice(0, 16)).join(', ')})`
        : `several nodes match '${target}': ${matching.map((id) => id.slice(0, 16)).join(', ')}`,
    )
  }
  return matching
}

/** The message Garage lists for a node that failed: `Code (status): message`. */
const failureText = (r: { code: string; status: number; message: string }): string => `${r.code} (${r.status}): ${r.message}`

/** Runs one node-scoped request on this node; its errors become a structured answer. */
export async function runLocal(
  table: LocalEndpointTable,
  ctx: NodeAdminContext,
  msg: AdminLocalRequest,
): Promise<AdminLocalResponse> {
  const ep = (table as Record<string, LocalEndpoint<unknown, unknown> | undefined>)[msg.endpoint]
  if (ep === undefined) {
    return { ok: false, code: 'NoSuchEndpoint', status: 404, message: `unknown node-scoped endpoint ${msg.endpoint}` }
  }
  try {
    return { ok: true, value: (await ep.run(ctx, msg.req)) ?? null }
  } catch (err) {
    const e = toAdminError(err)
    return { ok: false, code: e.code, status: e.status, message: e.message }
  }
}

/**
 * Answers a node-scoped request received over HTTP: checks the body, fans out to the nodes
 * `?node=` names and gathers their answers.
 */
export async function handleNodeScoped(
  table: LocalEndpointTable,
  name: NodeScopedEndpoint,
  ctx: AdminContext,
): Promise<MultiResponse<unknown>> {
  const ep = table[name]
  const req = ep.parse(ctx.body, ctx.query)
  const target = queryParam(ctx.query, 'node')
  const nodes = resolveTargetNodes(ctx.node, target)
  const self = ctx.node.nodeId
  const local: NodeAdminContext = { garage: ctx.garage, node: ctx.node }
  const answers = await Promise.all(
    nodes.map(async (id): Promise<[string, AdminLocalResponse]> => {
      if (id === self) {
        // Locally, keep the thrown error itself (with its cause) for a single-node request.
        try {
          return [id, { ok: true, value: (await ep.run(local, req)) ?? null }]
        } catch (err) {
          if (target !== '*') throw err
          const e = toAdminError(err)
          return [id, { ok: false, code: e.code, status: e.status, message: e.message }]
        }
      }
      const call = ctx.node.cluster?.callAdmin
      if (call === undefined) return [id, { ok: false, code: 'InternalError', status: 500, message: 'no RPC to other nodes' }]
      try {
        return [id, await call(id, { endpoint: name, req })]
      } catch (err) {
        // The node could not be reached: part of the answer, as in Garage.
        return [id, { ok: false, code: 'ServiceUnavailable', status: 503, message: (err as Error).message }]
      }
    }),
  )
  const out: MultiResponse<unknown> = { success: {}, error: {} }
  for (const [id, r] of answers) {
    if (r.ok) {
      out.success[id] = r.value
      continue
    }
    if (target !== '*') {
      const code: AdminErrorCode = r.code in ADMIN_ERROR_STATUS ? (r.code as AdminErrorCode) : 'InternalError'
      throw new AdminError(code, id === self ? r.message : `node ${id.slice(0, 16)}: ${r.message}`)
    }
    out.error[id] = failureText(r)
  }
  return out
}

/**
 * Registers the `admin/local` handler, so that other nodes can run node-scoped admin requests
 * here (whether or not this node serves the admin HTTP API). Only nodes sharing the cluster's
 * `rpc_secret` can call it.
 */
export function registerAdminRpc(netApp: NetApp, table: LocalEndpointTable, ctx: NodeAdminContext, log: Logger): void {
  netApp.handle(ADMIN_LOCAL_RPC, async (msg, from) => {
    log.debug(`admin/local ${msg.endpoint} from ${from.slice(0, 16)}`)
    return runLocal(table, ctx, msg)
  })
}

/** Calls `admin/local` on another node. */
export function callAdminLocal(netApp: NetApp, nodeId: string, req: AdminLocalRequest): Promise<AdminLocalResponse> {
  return netApp.call(nodeId, ADMIN_LOCAL_RPC, req, { priority: 'normal' })
}
