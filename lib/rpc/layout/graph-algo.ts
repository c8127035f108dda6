/**
 * Flow algorithms used to compute partition assignments (port of garage_rpc::layout::graph_algo):
 * Dinic's maximum flow, which can resume from an existing flow after edges are added, and the
 * removal of negative-cost cycles from the residual graph (Bellman-Ford), which turns a maximum
 * flow into one of minimum cost with the same value.
 *
 * Vertices are integers `0..vertexCount-1`. Edge `e` and its reverse are `e` and `e ^ 1`; the
 * reverse has capacity 0 and carries the opposite flow.
 * @internal
 */

/** A directed graph with integer capacities and a flow on each edge. @internal */
export class FlowGraph {
  readonly vertexCount: number
  #to: number[] = []
  #cap: number[] = []
  #flow: number[] = []
  #cost: number[] = []
  #adj: number[][]

  constructor(vertexCount: number) {
    this.vertexCount = vertexCount
    this.#adj = Array.from({ length: vertexCount }, () => [])
  }

  /** Adds an edge `u → v` of capacity `cap` (and its reverse); returns its id. */
  addEdge(u: number, v: number, cap: number, cost = 0): number {
    const e = this.#to.length
    this.#to.push(v, u)
    this.#cap.push(cap, 0)
    this.#flow.push(0, 0)
    this.#cost.push(cost, -cost)
    ;(this.#adj[u] as number[]).push(e)
    ;(this.#adj[v] as number[]).push(e + 1)
    return e
  }

  /** Changes the capacity of edge `e`; the flow must be reset or still fit. */
  setCapacity(e: number, cap: number): void {
    this.#cap[e] = cap
  }

  /** Sets every flow back to zero. */
  resetFlow(): void {
    this.#flow.fill(0)
  }

  flowOf(e: number): number {
    return this.#flow[e] as number
  }

  /** Edges leaving `v` that carry a positive flow, with their destination. */
  *positiveFlowFrom(v: number): Generator<{ edge: number; dest: number }> {
    for (const e of this.#adj[v] as number[]) if ((this.#flow[e] as number) > 0) yield { edge: e, dest: this.#to[e] as number }
  }

  /** Total flow leaving `v`. */
  outflow(v: number): number {
    let total = 0
    for (const e of this.#adj[v] as number[]) total += Math.max(0, this.#flow[e] as number)
    return total
  }

  /**
   * Shuffles each adjacency list with a seeded generator, so that Dinic's algorithm spreads the
   * partitions over node pairs instead of filling nodes in id order. The seed is fixed: the same
   * graph always gives the same flow, on every node of the cluster.
   */
  shuffleEdges(seed: number): void {
    const next = mulberry32(seed)
    for (const list of this.#adj) {
      for (let i = list.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1))
        const t = list[i] as number
        list[i] = list[j] as number
        list[j] = t
      }
    }
  }

  /**
   * Dinic's algorithm: augments the current flow until it is maximal. Starting from the flow
   * already present lets a caller compute a flow on part of the graph, add edges, and resume.
   * Returns the value of the flow leaving `source`.
   */
  maxFlow(source: number, sink: number): number {
    const n = this.vertexCount
    const to = this.#to
    const cap = this.#cap
    const flow = this.#flow
    const adj = this.#adj
    const level = new Int32Array(n)
    const iter = new Int32Array(n)
    const queue = new Int32Array(n)
    const path: number[] = []
    for (;;) {
      level.fill(-1)
      level[source] = 0
      let head = 0
      let tail = 0
      queue[tail++] = source
      while (head < tail) {
        const u = queue[head++] as number
        for (const e of adj[u] as number[]) {
          const v = to[e] as number
          if (level[v] === -1 && (cap[e] as number) - (flow[e] as number) > 0) {
            level[v] = (level[u] as number) + 1
            queue[tail++] = v
          }
        }
      }
      if (level[sink] === -1) break
      iter.fill(0)
      // Depth-first search for augmenting paths in the level graph, with current-arc pointers.
      let u = source
      path.length = 0
      for (;;) {
        if (u === sink) {
          let f = Number.POSITIVE_INFINITY
          for (const e of path) f = Math.min(f, (cap[e] as number) - (flow[e] as number))
          for (const e of path) {
            flow[e] = (flow[e] as number) + f
            flow[e ^ 1] = (flow[e ^ 1] as number) - f
          }
          path.length = 0
          u = source
          continue
        }
        const list = adj[u] as number[]
        let advanced = false
        while ((iter[u] as number) < list.length) {
          const e = list[iter[u] as number] as number
          const v = to[e] as number
          if ((cap[e] as number) - (flow[e] as number) > 0 && level[v] === (level[u] as number) + 1) {
            path.push(e)
            u = v
            advanced = true
            break
          }
          iter[u] = (iter[u] as number) + 1
        }
        if (advanced) continue
        // Dead end: no augmenting path goes through u in this phase.
        level[u] = -1
        const back = path.pop()
        if (back === undefined) break
        u = to[back ^ 1] as number
        iter[u] = (iter[u] as number) + 1
      }
    }
    return this.outflow(source)
  }

  /** Sum of cost × flow over the edges that carry flow. */
  totalCost(): number {
    let total = 0
    for (let e = 0; e < this.#to.length; e += 2) total += (this.#cost[e] as number) * (this.#flow[e] as number)
    return total
  }

  /**
   * Lowers the cost of the current flow without changing its value, by pushing one unit of flow
   * around negative-cost cycles of the residual graph until none is left; the result is then a
   * minimum-cost flow of that value. Cycles are found with Bellman-Ford from a virtual source at
   * distance 0 of every vertex: a cycle of the predecessor graph is always a negative cycle, and
   * the cycles of that graph are vertex-disjoint, so all of them are applied at once.
   * `pathLength` is the number of passes after which predecessors are first searched for cycles
   * (Garage stops there; we keep going up to the vertex count, so the result is exact).
   */
  removeNegativeCycles(pathLength: number): void {
    for (;;) {
      const cycles = this.#findNegativeCycles(pathLength)
      if (cycles.length === 0) return
      for (const cycle of cycles) {
        for (const e of cycle) {
          this.#flow[e] = (this.#flow[e] as number) + 1
          this.#flow[e ^ 1] = (this.#flow[e ^ 1] as number) - 1
        }
      }
    }
  }

  #findNegativeCycles(pathLength: number): number[][] {
    const n = this.vertexCount
    const residual: number[] = []
    for (let e = 0; e < this.#to.length; e++) if ((this.#cap[e] as number) - (this.#flow[e] as number) > 0) residual.push(e)
    const to = this.#to
    const cost = this.#cost
    const dist = new Float64Array(n)
    const pred = new Int32Array(n).fill(-1)
    const checkEvery = Math.max(1, pathLength)
    for (let pass = 1; pass <= n + 1; pass++) {
      let changed = false
      for (const e of residual) {
        const u = to[e ^ 1] as number
        const v = to[e] as number
        const d = (dist[u] as number) + (cost[e] as number)
        if (d < (dist[v] as number)) {
          dist[v] = d
          pred[v] = e
          changed = true
        }
      }
      if (!changed) return []
      if (pass % checkEvery === 0 || pass === n + 1) {
        const cycles = this.#predecessorCycles(pred)
        if (cycles.length > 0) return cycles
      }
    }
    return []
  }

  /** Cycles of the predecessor graph (a functional graph), as lists of edges in flow order. */
  #predecessorCycles(pred: Int32Array): number[][] {
    const n = this.vertexCount
    const seenAt = new Int32Array(n).fill(-1)
    const cycles: number[][] = []
    for (let start = 0; start < n; start++) {
      let v = start
      while (seenAt[v] === -1) {
        seenAt[v] = start
        const e = pred[v] as number
        if (e < 0) break
        v = this.#to[e ^ 1] as number
      }
      if (seenAt[v] !== start || (pred[v] as number) < 0) continue
      // v is on a cycle discovered during this walk: collect its edges.
      const edges: number[] = []
      let w = v
      let weight = 0
      do {
        const e = pred[w] as number
        edges.push(e)
        weight += this.#cost[e] as number
        w = this.#to[e ^ 1] as number
      } while (w !== v)
      if (weight < 0) cycles.push(edges.reverse())
    }
    return cycles
  }
}

/** A small seeded PRNG (mulberry32); the property tests use it too. @internal */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
