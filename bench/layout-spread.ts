/**
 * How evenly the fixed 256 partitions spread large clusters (issue 21): for RF 3, zone
 * redundancy 'maximum', equal or mixed capacities, prints one JSON line per cluster with the
 * computed partition size, the capacity bound (the largest real partition size any assignment
 * could reach, whatever the partition count; see test/rpc/layout/spread.test.ts) and their ratio
 * (`efficiency`), plus the spread of copies per node. `node --import tsx bench/layout-spread.ts`
 */
import type { NodeRole } from '../lib/rpc/layout/types.ts'
import { computeAssignment } from '../lib/rpc/layout/version.ts'
import { int, rng } from '../test/helpers/random.ts'

const P = 256
const RF = 3

function capacityBound(roles: Map<string, NodeRole>): number {
  const zones = new Map<string, number[]>()
  for (const r of roles.values()) zones.set(r.zone, [...(zones.get(r.zone) ?? []), r.capacity as number])
  const frac = (s: number): number => {
    let t = 0
    for (const caps of zones.values())
      t += Math.min(
        P,
        caps.reduce((a, c) => a + Math.min(P, c / s), 0),
      )
    return t
  }
  let lo = 1
  let hi = [...roles.values()].reduce((a, r) => a + (r.capacity as number), 0)
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2
    if (frac(mid) >= P * RF - 1e-9) lo = mid
    else hi = mid
  }
  return lo
}

const r = rng(21)
for (const zones of [3, 5]) {
  for (const mixed of [false, true]) {
    for (const n of [10, 20, 30, 40, 50, 59, 60, 80, 100, 150, 200, 250]) {
      const roles = new Map<string, NodeRole>()
      for (let i = 0; i < n; i++) {
        const capacity = mixed ? (1 + int(r, 8)) * 500_000_000_000 + int(r, 1000) * 1_000_000 : 1_000_000_000_000
        roles.set(`n${String(i).padStart(3, '0')}`, { zone: `z${i % zones}`, capacity, tags: [] })
      }
      const t0 = performance.now()
      const a = computeAssignment({ roles, replicationFactor: RF, parameters: { zoneRedundancy: 'maximum' } })
      const ms = Math.round(performance.now() - t0)
      const bound = capacityBound(roles)
      const copies = a.nodes.map((x) => x.partitions)
      const out = {
        nodes: n,
        zones,
        capacities: mixed ? 'mixed' : 'equal',
        partition_size: a.partitionSize,
        bound: Math.floor(bound),
        efficiency: Math.round((a.partitionSize / bound) * 1000) / 1000,
        copies_min: Math.min(...copies),
        copies_max: Math.max(...copies),
        compute_ms: ms,
      }
      process.stdout.write(`${JSON.stringify(out)}\n`)
    }
  }
}
