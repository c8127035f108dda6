/**
 * How evenly 256 partitions spread a large cluster: 30 to 60 storage nodes in 3 to 5 zones,
 * replication factor 3, zone redundancy 'maximum' (every copy of a partition in its own zone).
 *
 * For that case the best partition size has a closed form (docs/design/layout.md, "Large
 * clusters"): with k_i(s) = min(256, ⌊cap_i / s⌋) copies on node i and
 * K_z(s) = min(256, Σ_{i∈z} k_i(s)) in zone z, an assignment of size s exists iff
 * Σ_z K_z(s) ≥ 768. The computed size must be the largest such s (no oracle code is shared with
 * the library), and its usable capacity must be within 10 % of the capacity bound: the largest
 * real s with Σ_z min(256, Σ_{i∈z} min(256, cap_i / s)) ≥ 768, which no assignment with any
 * number of partitions can beat.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { NodeRole } from '../../../lib/rpc/layout/types.ts'
import { computeAssignment } from '../../../lib/rpc/layout/version.ts'
import { int, rng } from '../../helpers/random.ts'

const RF = 3
const P = 256

interface Storage {
  zone: string
  capacity: number
}

function zonesOf(nodes: Storage[]): Map<string, number[]> {
  const out = new Map<string, number[]>()
  for (const n of nodes) out.set(n.zone, [...(out.get(n.zone) ?? []), n.capacity])
  return out
}

/** Copies an assignment of partition size `s` can hold, with integer copies per node. */
function copiesAt(nodes: Storage[], s: number): number {
  let total = 0
  for (const caps of zonesOf(nodes).values())
    total += Math.min(
      P,
      caps.reduce((a, c) => a + Math.min(P, Math.floor(c / s)), 0),
    )
  return total
}

/** The largest integer s with copiesAt(s) ≥ 768 (copiesAt decreases with s). */
function closedFormSize(nodes: Storage[]): number {
  let lo = 1
  let hi = Math.ceil(nodes.reduce((a, n) => a + n.capacity, 0) / (P * RF)) + 1
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2)
    if (copiesAt(nodes, mid) >= P * RF) lo = mid
    else hi = mid
  }
  return lo
}

/** The capacity bound: the largest real s with fractional copies ≥ 768 (bisection). */
function capacityBound(nodes: Storage[]): number {
  const frac = (s: number): number => {
    let total = 0
    for (const caps of zonesOf(nodes).values())
      total += Math.min(
        P,
        caps.reduce((a, c) => a + Math.min(P, c / s), 0),
      )
    return total
  }
  let lo = 1
  let hi = nodes.reduce((a, n) => a + n.capacity, 0)
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2
    if (frac(mid) >= P * RF - 1e-9) lo = mid
    else hi = mid
  }
  return lo
}

function cluster(r: () => number, n: number, zones: number, mixed: boolean): Map<string, NodeRole> {
  const roles = new Map<string, NodeRole>()
  for (let i = 0; i < n; i++) {
    // Every zone gets at least one node; then zones at random.
    const zone = `z${i < zones ? i : int(r, zones)}`
    const capacity = mixed ? (1 + int(r, 8)) * 500_000_000_000 + int(r, 1000) * 1_000_000 : 1_000_000_000_000
    roles.set(`node-${String(i).padStart(3, '0')}`, { zone, capacity, tags: [] })
  }
  return roles
}

describe('256 partitions on 30 to 60 nodes, RF 3, 3 to 5 zones', () => {
  const r = rng(0x5ca1e)
  const cases: Array<{ n: number; zones: number; mixed: boolean }> = [
    { n: 30, zones: 3, mixed: false },
    { n: 60, zones: 3, mixed: false },
    { n: 59, zones: 3, mixed: false },
    { n: 45, zones: 5, mixed: false },
  ]
  for (let i = 0; i < 8; i++) cases.push({ n: 30 + int(r, 31), zones: 3 + int(r, 3), mixed: true })
  for (const c of cases) {
    test(`${c.n} nodes, ${c.zones} zones, ${c.mixed ? 'mixed' : 'equal'} capacities`, () => {
      const roles = cluster(r, c.n, c.zones, c.mixed)
      const nodes = [...roles.values()].map((role) => ({ zone: role.zone, capacity: role.capacity as number }))
      const a = computeAssignment({ roles, replicationFactor: RF, parameters: { zoneRedundancy: 'maximum' } })
      assert.equal(a.zoneRedundancy, 3)
      assert.equal(a.partitionSize, closedFormSize(nodes), 'the partition size is the largest feasible one')
      const bound = capacityBound(nodes)
      assert.ok(a.partitionSize <= bound + 1, 'no assignment beats the capacity bound')
      const efficiency = a.partitionSize / bound
      assert.ok(efficiency >= 0.9, `usable capacity ${(efficiency * 100).toFixed(1)} % of the bound`)
      // Each node holds what its capacity allows at that size, and no more than the zone needs.
      const held = new Map(a.nodes.map((s) => [s.id, s.partitions]))
      for (const [id, role] of roles) {
        assert.ok((held.get(id) ?? 0) <= Math.min(P, Math.floor((role.capacity as number) / a.partitionSize)), id)
      }
      assert.equal(
        a.nodes.reduce((s, x) => s + x.partitions, 0),
        P * RF,
      )
    })
  }
})
