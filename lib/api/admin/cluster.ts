/**
 * Cluster and node endpoints (port of garage_api_admin::{cluster, node}). This node runs alone
 * (its tables replicate to itself only), so the cluster is this node; layout and connection
 * endpoints answer NotImplemented until the cluster feature lands.
 */
import { statfs } from 'node:fs/promises'
import { hostname } from 'node:os'
import type { AdminContext } from './context.ts'
import { onNodes } from './context.ts'
import { AdminError } from './errors.ts'

/** Reported as `garageVersion` (our own version; the API follows Garage v2). */
export const GARAGE_TS_VERSION = 'v0.1.0-ts'
const PARTITIONS = 256

export interface ClusterHealth {
  status: 'healthy' | 'degraded' | 'unavailable'
  knownNodes: number
  connectedNodes: number
  storageNodes: number
  storageNodesOk: number
  partitions: number
  partitionsQuorum: number
  partitionsAllOk: number
}

/** A lone running node holds every partition itself: healthy while it runs. */
export function clusterHealth(node: { running(): boolean }): ClusterHealth {
  const up = node.running()
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

async function freeSpace(path: string): Promise<{ available: number; total: number } | null> {
  try {
    const s = await statfs(path)
    return { available: s.bavail * s.bsize, total: s.blocks * s.bsize }
  } catch (err) {
    // The directory may be on a filesystem statfs cannot read: the field is optional (null).
    if ((err as NodeJS.ErrnoException).code !== undefined) return null
    throw err
  }
}

export async function handleGetClusterStatus(ctx: AdminContext) {
  const n = ctx.node
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

export function handleGetClusterHealth(ctx: AdminContext): ClusterHealth {
  return clusterHealth(ctx.node)
}

function tablesFreeform(ctx: AdminContext): string[] {
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
    `Nodes: 1 (this node: ${ctx.node.nodeId.slice(0, 16)})`,
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

export function handleGetNodeInfo(ctx: AdminContext) {
  return onNodes(ctx, () => ({
    nodeId: ctx.node.nodeId,
    garageVersion: GARAGE_TS_VERSION,
    garageFeatures: ['lmdb', 'metrics'],
    rustVersion: `node ${process.version}`,
    dbEngine: 'LMDB (lmdb-js)',
  }))
}

export function handleGetNodeStatistics(ctx: AdminContext) {
  return onNodes(ctx, () => {
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
  })
}

/** Endpoints that need the cluster (layout, peering) or repair features not built yet. */
export function notImplemented(name: string): never {
  const what = /Layout|Connect/.test(name)
    ? 'the cluster layout arrives with the cluster feature'
    : 'repair and block operations arrive with the cluster feature'
  throw new AdminError('NotImplemented', `${name} is not implemented yet: ${what}`)
}
