/**
 * Independent reference computations for the layout property tests. None of this code is shared
 * with lib/rpc/layout: validity is checked directly on the ring, partition-size optimality with an
 * exact minimum cut, and minimal data movement with a separate min-cost flow (successive shortest
 * paths) instead of Dinic + negative-cycle cancelling.
 */
import type { NodeRole, RingAssignment } from '../../../lib/rpc/layout/types.ts'

export const P = 256

export interface Storage {
  id: string
  zone: string
  capacity: number
}

export function storageNodes(roles: ReadonlyMap<string, NodeRole>): Storage[] {
  const out: Storage[] = []
  for (const [id, role] of roles) if (role.capacity !== null) out.push({ id, zone: role.zone, capacity: role.capacity })
  return out
}

export function zonesOf(nodes: readonly Storage[]): string[] {
  return [...new Set(nodes.map((n) => n.zone))]
}

/** The nodes of each partition, by id. */
export function partitionsById(a: RingAssignment): string[][] {
  const rf = a.replicationFactor
  return Array.from({ length: P }, (_, p) => a.ringAssignment.slice(p * rf, (p + 1) * rf).map((i) => a.nodeIdVec[i] as string))
}

/** Everything wrong with `a` as an assignment of `roles` (empty when valid). */
export function violations(a: RingAssignment, roles: ReadonlyMap<string, NodeRole>, rf: number, zr: number): string[] {
  const out: string[] = []
  if (a.ringAssignment.length !== P * rf) return [`ring length ${a.ringAssignment.length}`]
  const count = new Map<string, number>()
  partitionsById(a).forEach((ids, p) => {
    if (new Set(ids).size !== rf) out.push(`partition ${p}: nodes not distinct ${ids}`)
    const zones = new Set<string>()
    for (const id of ids) {
      const role = roles.get(id)
      if (role === undefined) out.push(`partition ${p}: unknown node ${id}`)
      else if (role.capacity === null) out.push(`partition ${p}: gateway ${id} holds data`)
      else zones.add(role.zone)
      count.set(id, (count.get(id) ?? 0) + 1)
    }
    if (zones.size < zr) out.push(`partition ${p}: ${zones.size} zones < ${zr}`)
  })
  for (const [id, c] of count) {
    const cap = roles.get(id)?.capacity ?? 0
    if (c * a.partitionSize > cap) out.push(`node ${id}: ${c} × ${a.partitionSize} > ${cap}`)
  }
  return out
}

/**
 * Minimum cut of the assignment flow network for partition size `s` (which bounds the number of
 * partition copies any valid assignment can place). All partitions have identical gadgets, so a
 * minimum cut makes the same choice in each: enumerate which node vertices sit on the source
 * side (2^nodes), and for each the best side of P+, P− and every PZ(z) of one gadget.
 * Any valid assignment gives a flow of value 256 × RF, so a cut below that proves that no valid
 * assignment with partition size `s` exists.
 */
export function minCut(nodes: readonly Storage[], rf: number, zr: number, s: number): number {
  const zones = zonesOf(nodes)
  const k = nodes.map((n) => Math.floor(n.capacity / s))
  let best = Number.POSITIVE_INFINITY
  for (let mask = 0; mask < 1 << nodes.length; mask++) {
    let nodeCost = 0
    const sinkSide = new Map<string, number>(zones.map((z) => [z, 0]))
    nodes.forEach((n, i) => {
      if (mask & (1 << i)) nodeCost += k[i] as number
      else sinkSide.set(n.zone, (sinkSide.get(n.zone) as number) + 1)
    })
    let gadget = Number.POSITIVE_INFINITY
    for (const upSource of [true, false]) {
      for (const downSource of [true, false]) {
        let c = (upSource ? 0 : zr) + (downSource ? 0 : rf - zr)
        const inflow = (upSource ? 1 : 0) + (downSource ? rf : 0)
        for (const z of zones) c += Math.min(sinkSide.get(z) as number, inflow)
        gadget = Math.min(gadget, c)
      }
    }
    best = Math.min(best, nodeCost + P * gadget)
  }
  return best
}

export const feasibleByCut = (nodes: readonly Storage[], rf: number, zr: number, s: number): boolean =>
  minCut(nodes, rf, zr, s) >= P * rf

/**
 * The largest number of (partition, node) pairs of `old` that a valid assignment with partition
 * size `s` can keep: a min-cost max-flow by successive shortest paths (SPFA), cost −1 per old pair.
 */
export function maxKeptPairs(
  nodes: readonly Storage[],
  rf: number,
  zr: number,
  s: number,
  old: ReadonlyArray<ReadonlySet<string>>,
): number {
  const zones = zonesOf(nodes)
  const Z = zones.length
  const nodeBase = 2 + P * (2 + Z)
  const V = nodeBase + nodes.length
  const head = new Int32Array(V).fill(-1)
  const next: number[] = []
  const to: number[] = []
  const cap: number[] = []
  const cost: number[] = []
  const add = (u: number, v: number, c: number, w: number): void => {
    for (const [a, b, cc, ww] of [
      [u, v, c, w],
      [v, u, 0, -w],
    ] as const) {
      next.push(head[a] as number)
      to.push(b)
      cap.push(cc)
      cost.push(ww)
      head[a] = to.length - 1
    }
  }
  for (let p = 0; p < P; p++) {
    const up = 2 + p * (2 + Z)
    add(0, up, zr, 0)
    add(0, up + 1, rf - zr, 0)
    zones.forEach((z, zi) => {
      add(up, up + 2 + zi, 1, 0)
      add(up + 1, up + 2 + zi, rf, 0)
      nodes.forEach((n, ni) => {
        if (n.zone === z) add(up + 2 + zi, nodeBase + ni, 1, old[p]?.has(n.id) ? -1 : 0)
      })
    })
  }
  nodes.forEach((n, ni) => {
    add(nodeBase + ni, 1, Math.min(P, Math.floor(n.capacity / s)), 0)
  })

  let totalCost = 0
  let totalFlow = 0
  const dist = new Float64Array(V)
  const inQueue = new Uint8Array(V)
  const predEdge = new Int32Array(V)
  for (;;) {
    dist.fill(Number.POSITIVE_INFINITY)
    predEdge.fill(-1)
    dist[0] = 0
    const queue = [0]
    inQueue[0] = 1
    for (let qi = 0; qi < queue.length; qi++) {
      const u = queue[qi] as number
      inQueue[u] = 0
      for (let e = head[u] as number; e !== -1; e = next[e] as number) {
        if ((cap[e] as number) <= 0) continue
        const v = to[e] as number
        const d = (dist[u] as number) + (cost[e] as number)
        if (d < (dist[v] as number)) {
          dist[v] = d
          predEdge[v] = e
          if (!inQueue[v]) {
            inQueue[v] = 1
            queue.push(v)
          }
        }
      }
    }
    if (dist[1] === Number.POSITIVE_INFINITY) break
    let f = Number.POSITIVE_INFINITY
    for (let v = 1; v !== 0; v = to[(predEdge[v] as number) ^ 1] as number) f = Math.min(f, cap[predEdge[v] as number] as number)
    for (let v = 1; v !== 0; v = to[(predEdge[v] as number) ^ 1] as number) {
      const e = predEdge[v] as number
      cap[e] = (cap[e] as number) - f
      cap[e ^ 1] = (cap[e ^ 1] as number) + f
    }
    totalFlow += f
    totalCost += f * (dist[1] as number)
  }
  if (totalFlow !== P * rf) throw new Error(`oracle: no full flow at size ${s} (${totalFlow})`)
  return -totalCost
}
