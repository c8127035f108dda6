import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FlowGraph } from '../../../lib/rpc/layout/graph-algo.ts'
import { int, rng } from '../../helpers/random.ts'

interface Edge {
  u: number
  v: number
  cap: number
  cost: number
}

function randomGraph(r: () => number, n: number): Edge[] {
  const edges: Edge[] = []
  for (let u = 0; u < n; u++) {
    for (let v = 0; v < n; v++) {
      // At most one edge per pair of vertices, as in the layout graphs.
      if (u !== v && u < v === r() < 0.8 && r() < 0.45) edges.push({ u, v, cap: int(r, 4), cost: int(r, 3) - 1 })
    }
  }
  return edges.filter((e, i) => !edges.slice(0, i).some((f) => f.u === e.v && f.v === e.u))
}

/** Minimum s-t cut by enumerating the side of every other vertex (source 0, sink 1). */
function bruteMinCut(n: number, edges: Edge[]): number {
  let best = Number.POSITIVE_INFINITY
  for (let mask = 0; mask < 1 << (n - 2); mask++) {
    const sourceSide = (v: number) => v === 0 || (v > 1 && (mask & (1 << (v - 2))) !== 0)
    let cut = 0
    for (const e of edges) if (sourceSide(e.u) && !sourceSide(e.v)) cut += e.cap
    best = Math.min(best, cut)
  }
  return best
}

test('maxFlow equals the minimum cut on random graphs, also when resumed after adding edges', () => {
  const r = rng(11)
  for (let i = 0; i < 300; i++) {
    const n = 2 + int(r, 7)
    const edges = randomGraph(r, n)
    const g = new FlowGraph(n)
    const half = int(r, edges.length + 1)
    for (const e of edges.slice(0, half)) g.addEdge(e.u, e.v, e.cap, e.cost)
    g.maxFlow(0, 1)
    for (const e of edges.slice(half)) g.addEdge(e.u, e.v, e.cap, e.cost)
    g.shuffleEdges(i)
    assert.equal(g.maxFlow(0, 1), bruteMinCut(n, edges), `graph ${i}`)
  }
})

test('removeNegativeCycles keeps the flow value and leaves no negative residual cycle', () => {
  const r = rng(12)
  let improved = 0
  for (let i = 0; i < 800; i++) {
    const n = 4 + int(r, 6)
    const edges = randomGraph(r, n)
    const g = new FlowGraph(n)
    const ids = edges.map((e) => g.addEdge(e.u, e.v, e.cap, e.cost))
    const value = g.maxFlow(0, 1)
    const before = g.totalCost()
    g.removeNegativeCycles(2)
    const net = edges.reduce((sum, e, k) => sum + (e.u === 0 ? 1 : e.v === 0 ? -1 : 0) * g.flowOf(ids[k] as number), 0)
    assert.equal(net, value, `graph ${i}: same flow value`)
    if (g.totalCost() < before) improved++
    // Conservation and capacities still hold.
    const balance = new Array<number>(n).fill(0)
    edges.forEach((e, k) => {
      const f = g.flowOf(ids[k] as number)
      assert.ok(f >= 0 && f <= e.cap, `graph ${i}: flow within capacity`)
      balance[e.u] = (balance[e.u] as number) - f
      balance[e.v] = (balance[e.v] as number) + f
    })
    for (let v = 2; v < n; v++) assert.equal(balance[v], 0, `graph ${i}: conservation at ${v}`)
    // Optimality: Floyd-Warshall finds no negative cycle in the residual graph.
    const d = Array.from({ length: n }, (_, a) => Array.from({ length: n }, (_, b) => (a === b ? 0 : Number.POSITIVE_INFINITY)))
    edges.forEach((e, k) => {
      const f = g.flowOf(ids[k] as number)
      const row = (a: number) => d[a] as number[]
      if (f < e.cap) row(e.u)[e.v] = Math.min(row(e.u)[e.v] as number, e.cost)
      if (f > 0) row(e.v)[e.u] = Math.min(row(e.v)[e.u] as number, -e.cost)
    })
    for (let k = 0; k < n; k++)
      for (let a = 0; a < n; a++)
        for (let b = 0; b < n; b++) {
          const via = (d[a]?.[k] as number) + (d[k]?.[b] as number)
          if (via < (d[a]?.[b] as number)) (d[a] as number[])[b] = via
        }
    for (let v = 0; v < n; v++) assert.ok((d[v]?.[v] as number) >= 0, `graph ${i}: no negative cycle through ${v}`)
  }
  assert.ok(improved > 20, `cycle removal had something to do (${improved} graphs)`)
})
