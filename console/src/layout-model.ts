/**
 * What the layout pages draw and compare (pure; unit-tested): nodes grouped by zone, and the
 * partitions a staged change moves between nodes.
 */
import type { LayoutNodeRole } from '../../lib/api/admin/contract.ts'

export interface ZoneGroup {
  zone: string
  /** Sum of the storage nodes' capacities (gateways count 0). */
  capacity: number
  /** Partition copies the zone stores. */
  partitions: number
  nodes: LayoutNodeRole[]
}

/** Roles grouped by zone, zones and nodes in name order. */
export function zonesOf(roles: readonly LayoutNodeRole[]): ZoneGroup[] {
  const byZone = new Map<string, ZoneGroup>()
  for (const r of roles) {
    let g = byZone.get(r.zone)
    if (g === undefined) {
      g = { zone: r.zone, capacity: 0, partitions: 0, nodes: [] }
      byZone.set(r.zone, g)
    }
    g.capacity += r.capacity ?? 0
    g.partitions += r.storedPartitions ?? 0
    g.nodes.push(r)
  }
  const groups = [...byZone.values()].sort((a, b) => a.zone.localeCompare(b.zone))
  for (const g of groups) g.nodes.sort((a, b) => a.id.localeCompare(b.id))
  return groups
}

export interface NodeMove {
  id: string
  before: number
  after: number
}

export interface LayoutMoves {
  nodes: NodeMove[]
  /** Partition copies that land on a node that did not hold them: the data that moves. */
  partitionsMoved: number
  /** `partitionsMoved` × the partition size. */
  bytesMoved: number
}

/**
 * The partition copies each node holds before and after a change. A copy gained by one node is
 * one partition's data sent over the network; the count is a lower bound when a node both
 * gains and loses copies (the layout answer carries counts, not the partitions themselves).
 */
export function layoutMoves(
  current: readonly LayoutNodeRole[],
  next: readonly LayoutNodeRole[],
  partitionSize: number,
): LayoutMoves {
  const ids = new Set([...current.map((r) => r.id), ...next.map((r) => r.id)])
  const stored = (roles: readonly LayoutNodeRole[], id: string) => roles.find((r) => r.id === id)?.storedPartitions ?? 0
  const nodes = [...ids].sort().map((id) => ({ id, before: stored(current, id), after: stored(next, id) }))
  const partitionsMoved = nodes.reduce((t, n) => t + Math.max(0, n.after - n.before), 0)
  return { nodes, partitionsMoved, bytesMoved: partitionsMoved * partitionSize }
}
