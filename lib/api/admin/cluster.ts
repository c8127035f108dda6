/**
 * Cluster and node endpoints (port of garage_api_admin::{cluster, node}). Without rpc_secret the
 * node runs alone and the cluster is this node; with it, nodes and health come from membership
 * (lib/rpc/system.ts) and the layout.
 */
import { hostname } from 'node:os'
import { allNodes, currentVersion, presentRoles } from '../../rpc/layout/history.ts'
import { type ClusterHealth, computeClusterHealth, diskSpace } from '../../rpc/system.ts'
import { GARAGE_TS_VERSION } from '../../util/version.ts'
import type { AdminContext, AdminNodeView, NodeAdminContext } from './context.ts'
import { AdminError, badRequest } from './errors.ts'
import { localEndpoint } from './node-rpc.ts'

export type { ClusterHealth }
const PARTITIONS = 256

/**
 * Health of the cluster (Garage's model, see computeClusterHealth). A standalone node (no
 * rpc_secret) holds every partition itself: healthy while it runs.
 */
export function clusterHealth(node: Pick<AdminNodeView, 'running' | 'cluster'>): ClusterHealth {
  const up = node.running()
  const cluster = node.cluster
  if (cluster !== undefined) {
    const h = computeClusterHealth(cluster.layout(), cluster.nodes())
    return up ? h : { ...h, status: 'unavailable' }
  }
  return {
    status: up ? 'healthy' : 'unavailable',
    knownNodes: 1,
    connectedNodes: up ? 1 : 0,
    storageNodes: 1,
    storageNodesOk: up ? 1 : 0,
    partitions: PARTITIONS,
    partitionsQuorum: up ? PARTITIONS : 0,
    partitionsAllOk: up ? PARTITIONS : 0,
  }
}

const freeSpace = diskSpace

export async function handleGetClusterStatus(ctx: AdminContext) {
  const n = ctx.node
  const cluster = n.cluster
  if (cluster === undefined) {
    return {
      layoutVersion: 0,
      nodes: [
        {
          id: n.nodeId,
          role: null,
          addr: n.rpcPublicAddr ?? null,
          hostname: hostname(),
          isUp: n.running(),
          lastSeenSecsAgo: null,
          draining: false,
          dataPartition: await freeSpace(n.dataDir),
          metadataPartition: await freeSpace(n.metadataDir),
        },
      ],
    }
  }
  const layout = cluster.layout()
  const current = currentVersion(layout)
  const roles = presentRoles(current.roles)
  const inLayout = allNodes(layout)
  const now = Date.now()
  const known = cluster.nodes()
  const nodes = known.map((p) => {
    const role = roles.get(p.id)
    return {
      id: p.id,
      garageVersion: p.garageVersion ?? null,
      role: role === undefined ? null : { zone: role.zone, capacity: role.capacity, tags: role.tags },
      addr: p.addr ?? null,
      hostname: p.hostname ?? null,
      isUp: p.id === n.nodeId ? n.running() : p.isUp,
      lastSeenSecsAgo: p.isUp || p.lastSeen === undefined ? null : Math.max(0, Math.floor((now - p.lastSeen) / 1000)),
      draining: role === undefined && inLayout.includes(p.id),
      dataPartition: p.dataDisk,
      metadataPartition: p.metaDisk,
    }
  })
  // Nodes of the layout that membership has never heard of are listed as down (as Garage does).
  const seen = new Set(known.map((p) => p.id))
  for (const id of new Set([...roles.keys(), ...inLayout])) {
    if (seen.has(id)) continue
    const role = roles.get(id)
    nodes.push({
      id,
      garageVersion: null,
      role: role === undefined ? null : { zone: role.zone, capacity: role.capacity, tags: role.tags },
      addr: null,
      hostname: null,
      isUp: false,
      lastSeenSecsAgo: null,
      draining: role === undefined,
      dataPartition: null,
      metadataPartition: null,
    })
  }
  return { layoutVersion: current.version, nodes }
}

export function handleGetClusterHealth(ctx: AdminContext): ClusterHealth {
  return clusterHealth(ctx.node)
}

/** `["<id>@host:port", …]` → one `{ success, error }` per peer, in order (Garage's ConnectClusterNodes). */
export async function handleConnectClusterNodes(ctx: AdminContext) {
  const cluster = ctx.node.cluster
  if (cluster === undefined) {
    throw new AdminError('NotImplemented', 'ConnectClusterNodes needs a cluster: set rpc_secret in the configuration')
  }
  const body = ctx.body
  if (!Array.isArray(body) || !body.every((x) => typeof x === 'string')) {
    throw badRequest('expected a JSON list of "<node id>@<host>:<port>" strings')
  }
  return Promise.all(
    (body as string[]).map(async (peer) => {
      try {
        await cluster.connect(peer)
        return { success: true, error: null }
      } catch (err) {
        // A peer's failure is part of the answer (one entry per peer), not a request error.
        return { success: false, error: err instanceof Error ? err.message : String(err) }
      }
    }),
  )
}

function tablesFreeform(ctx: NodeAdminContext): string[] {
  return ctx.garage.tables.map(
    (t) =>
      `  ${t.name.padEnd(18)} ${String(t.data.store.count()).padStart(10)} items, insert queue ${t.data.insertQueue.count()}`,
  )
}

export async function handleGetClusterStatistics(ctx: AdminContext) {
  const buckets = await ctx.buckets.list()
  const keys = await ctx.keys.list()
  const data = await freeSpace(ctx.node.dataDir)
  const meta = await freeSpace(ctx.node.metadataDir)
  const lines = [
    `Nodes: ${ctx.node.cluster?.nodes().length ?? 1} (this node: ${ctx.node.nodeId.slice(0, 16)})`,
    `Buckets: ${buckets.length}`,
    `Access keys: ${keys.length}`,
    '',
    'Storage:',
    `  data: ${data === null ? 'unknown' : `${data.available} bytes available of ${data.total}`}`,
    `  metadata: ${meta === null ? 'unknown' : `${meta.available} bytes available of ${meta.total}`}`,
    '',
    'Tables:',
    ...tablesFreeform(ctx),
  ]
  return { freeform: `${lines.join('\n')}\n` }
}

/** GetNodeInfo (node-scoped). */
export const getNodeInfo = localEndpoint({
  parse: () => null,
  run: (ctx: NodeAdminContext) => ({
    nodeId: ctx.node.nodeId,
    garageVersion: GARAGE_TS_VERSION,
    garageFeatures: ['lmdb', 'metrics'],
    rustVersion: `node ${process.version}`,
    dbEngine: 'LMDB (lmdb-js)',
    rpcAddress: ctx.node.cluster?.rpcAddress() ?? null,
  }),
})

/** GetNodeStatistics (node-scoped). */
export const getNodeStatistics = localEndpoint({
  parse: () => null,
  run(ctx: NodeAdminContext) {
    const b = ctx.garage.blockManager.stats()
    const lines = [
      `Node: ${ctx.node.nodeId}`,
      `Version: ${GARAGE_TS_VERSION} (node ${process.version})`,
      '',
      'Tables:',
      ...tablesFreeform(ctx),
      '',
      'Blocks:',
      `  referenced blocks: ${b.rcEntries}`,
      `  resync queue length: ${b.resyncQueueLength}`,
      `  bytes written: ${b.bytesWritten}`,
      `  bytes read: ${b.bytesRead}`,
    ]
    return { freeform: `${lines.join('\n')}\n` }
  },
})

/** CreateMetadataSnapshot (node-scoped): not implemented yet. */
export const createMetadataSnapshot = localEndpoint({
  parse: () => null,
  run: (): never => notImplemented('CreateMetadataSnapshot'),
})

/** Endpoints not built yet. */
export function notImplemented(name: string): never {
  throw new AdminError('NotImplemented', `${name} is not implemented yet`)
}
