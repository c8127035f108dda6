/**
 * Partition assignment of a layout version (port of garage_rpc::layout::version, the parts that
 * compute `ring_assignment_data`). Pure: roles, parameters and the previous assignment in, a new
 * assignment and its statistics out. See docs/design/layout.md and Garage's
 * doc/optimal_layout_report for the flow formulation.
 * @internal
 */
import { FlowGraph } from './graph-algo.ts'
import {
  type AssignmentResult,
  LayoutError,
  type LayoutParameters,
  MAX_NODE_NUMBER,
  NB_PARTITIONS,
  type NodeAssignmentStat,
  type NodeRole,
  PARTITION_BITS,
  type RingAssignment,
  type ZoneAssignmentStat,
  type ZoneRedundancy,
} from './types.ts'

/** Roles by node id, as a map or a plain record. @internal */
export type RoleTable = ReadonlyMap<string, NodeRole> | Readonly<Record<string, NodeRole>>

/** Input of {@link computeAssignment}. @internal */
export interface AssignmentInput {
  roles: RoleTable
  replicationFactor: number
  parameters: LayoutParameters
  /** The assignment currently in use, if any: the new one stays as close to it as possible. */
  previous?: RingAssignment | null
}

/** Fixed seed of the edge shuffle: `layout show` (preview) and `layout apply` must agree. */
const SHUFFLE_SEED = 0x12121212

/** The partition of a hash: its top PARTITION_BITS bits. @internal */
export function partitionOf(hash: Uint8Array): number {
  const top = ((hash[0] ?? 0) << 8) | (hash[1] ?? 0)
  return top >> (16 - PARTITION_BITS)
}

/** The ids of the nodes storing `partition` in `assignment` (empty if the ring is not ready). @internal */
export function nodesOfPartition(assignment: RingAssignment, partition: number): string[] {
  const rf = assignment.replicationFactor
  if (assignment.ringAssignment.length !== NB_PARTITIONS * rf) return []
  return assignment.ringAssignment.slice(partition * rf, (partition + 1) * rf).map((i) => assignment.nodeIdVec[i] as string)
}

/** Zone redundancy with `'maximum'` resolved to min(#zones of storage nodes, RF). @internal */
export function effectiveZoneRedundancy(roles: RoleTable, replicationFactor: number, redundancy: ZoneRedundancy): number {
  if (redundancy !== 'maximum') return redundancy
  const zones = new Set<string>()
  for (const [, role] of roleEntries(roles)) if (role.capacity !== null) zones.add(role.zone)
  return Math.min(zones.size, replicationFactor)
}

/**
 * Computes a partition assignment: each of the 256 partitions gets `replicationFactor` distinct
 * storage nodes in at least `zoneRedundancy` distinct zones, no node stores more than its
 * capacity, the partition size is the largest for which this is possible, and among such
 * assignments the one chosen keeps as many (partition, node) pairs of `previous` as possible.
 * Deterministic: the order of `roles` does not matter.
 *
 * @throws LayoutError when there are fewer storage nodes than the replication factor, fewer zones
 *   than the zone redundancy, an invalid capacity or parameter, or too little capacity.
 * @internal
 */
export function computeAssignment(input: AssignmentInput): AssignmentResult {
  const rf = input.replicationFactor
  if (!Number.isInteger(rf) || rf < 1) throw new LayoutError(`The replication factor must be a positive integer (got ${rf}).`)
  const zr = input.parameters.zoneRedundancy
  if (zr !== 'maximum' && (!Number.isInteger(zr) || zr < 1 || zr > rf)) {
    throw new LayoutError(
      `The zone redundancy must be 'maximum' or an integer between 1 and the replication factor ${rf} (got ${zr}).`,
    )
  }
  const cluster = prepareCluster(input.roles)
  const zoneRedundancy = effectiveZoneRedundancy(input.roles, rf, zr)
  const storage = cluster.storage
  if (storage.length < rf) {
    throw new LayoutError(
      `The number of nodes with positive capacity (${storage.length}) is smaller than the replication factor (${rf}).`,
    )
  }
  if (cluster.zones.length < zoneRedundancy) {
    throw new LayoutError(
      `The number of zones with non-gateway nodes (${cluster.zones.length}) is smaller than the redundancy parameter (${zoneRedundancy}).`,
    )
  }

  const previous = input.previous ?? null
  const oldAssignment = previous === null ? null : reframePrevious(previous, cluster.index)

  const flow = new AssignmentFlow(cluster, rf, zoneRedundancy)
  const partitionSize = flow.optimalPartitionSize()

  // A first flow using only the (partition, node) pairs of the previous assignment, then all pairs.
  flow.build(partitionSize, oldAssignment)
  if (oldAssignment !== null) flow.minimizeMoves(storage.length)
  const ring = flow.ring()

  const nodeIdVec = [...storage.map((n) => n.id), ...cluster.gateways]
  const result = buildResult({
    cluster,
    rf,
    zoneRedundancy,
    partitionSize,
    previousPartitionSize: previous?.partitionSize ?? null,
    nodeIdVec,
    ring,
    oldAssignment,
  })
  const problems = checkAssignment(result, input.roles, zoneRedundancy)
  if (problems.length > 0) {
    throw new LayoutError(`Layout check returned an error: ${problems.join('; ')}\n${result.messages.join('\n')}`)
  }
  return result
}

/**
 * Checks an assignment against the roles (Garage's `LayoutVersion::check`, without re-running
 * the partition size computation): node list, ring length, distinct nodes, zone spread, no
 * gateway, capacities. Returns the problems found (empty when consistent).
 * @internal
 */
export function checkAssignment(assignment: RingAssignment, roles: RoleTable, zoneRedundancy: number): string[] {
  const problems: string[] = []
  const byId = new Map(roleEntries(roles))
  const expected = [...byId.keys()].sort()
  const actual = [...assignment.nodeIdVec].sort()
  if (expected.join(',') !== actual.join(',')) problems.push('nodeIdVec does not contain the nodes that have a role')
  const rf = assignment.replicationFactor
  const ring = assignment.ringAssignment
  if (ring.length !== NB_PARTITIONS * rf) {
    problems.push(`ringAssignment has length ${ring.length} instead of ${NB_PARTITIONS * rf}`)
    return problems
  }
  const usage = new Map<number, number>()
  for (let p = 0; p < NB_PARTITIONS; p++) {
    const nodes = ring.slice(p * rf, (p + 1) * rf)
    const zones = new Set<string>()
    for (const i of nodes) {
      const role = byId.get(assignment.nodeIdVec[i] ?? '')
      if (role === undefined || role.capacity === null) {
        problems.push(`partition ${p} is assigned to ${role === undefined ? 'an unknown node' : 'a gateway node'}`)
        continue
      }
      zones.add(role.zone)
      usage.set(i, (usage.get(i) ?? 0) + 1)
    }
    if (new Set(nodes).size !== rf) problems.push(`partition ${p} does not have ${rf} distinct nodes`)
    if (zones.size < zoneRedundancy) problems.push(`partition ${p} is stored in fewer than ${zoneRedundancy} distinct zones`)
  }
  for (const [i, count] of usage) {
    const capacity = byId.get(assignment.nodeIdVec[i] ?? '')?.capacity ?? 0
    if (count * assignment.partitionSize > capacity) {
      problems.push(
        `node ${assignment.nodeIdVec[i]} stores ${count * assignment.partitionSize} bytes, above its capacity ${capacity}`,
      )
    }
  }
  return problems
}

// ---- internals ----

interface StorageNode {
  id: string
  role: NodeRole
  capacity: number
  zoneIndex: number
}

interface Cluster {
  /** Storage nodes sorted by id; their position is their index in the ring. */
  storage: StorageNode[]
  /** Gateway node ids, sorted. */
  gateways: string[]
  /** Zones of storage nodes, sorted. */
  zones: string[]
  /** Index of every storage node by id. */
  index: Map<string, number>
}

function roleEntries(roles: RoleTable): Array<[string, NodeRole]> {
  return roles instanceof Map ? [...roles.entries()] : Object.entries(roles as Readonly<Record<string, NodeRole>>)
}

function prepareCluster(roles: RoleTable): Cluster {
  const entries = roleEntries(roles).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  const storageEntries: Array<[string, NodeRole, number]> = []
  const gateways: string[] = []
  for (const [id, role] of entries) {
    if (role.capacity === null) {
      gateways.push(id)
      continue
    }
    if (!Number.isSafeInteger(role.capacity) || role.capacity <= 0) {
      throw new LayoutError(
        `Invalid capacity for node ${id}: a capacity must be a positive integer number of bytes (got ${role.capacity}).`,
      )
    }
    storageEntries.push([id, role, role.capacity])
  }
  if (storageEntries.length > MAX_NODE_NUMBER) {
    throw new LayoutError(`There are more than ${MAX_NODE_NUMBER} non-gateway nodes in the new layout. This is not allowed.`)
  }
  const zones = [...new Set(storageEntries.map(([, role]) => role.zone))].sort()
  const zoneIndex = new Map(zones.map((z, i) => [z, i]))
  const storage = storageEntries.map(([id, role, capacity]) => ({
    id,
    role,
    capacity,
    zoneIndex: zoneIndex.get(role.zone) as number,
  }))
  return { storage, gateways, zones, index: new Map(storage.map((n, i) => [n.id, i])) }
}

/** The previous assignment as, for each partition, the indices of its nodes that still store data. */
function reframePrevious(previous: RingAssignment, index: Map<string, number>): number[][] {
  const rf = previous.replicationFactor
  if (previous.ringAssignment.length !== NB_PARTITIONS * rf) {
    throw new LayoutError(
      'The old assignment does not have a size corresponding to the old replication factor or the number of partitions.',
    )
  }
  const out: number[][] = []
  for (let p = 0; p < NB_PARTITIONS; p++) {
    const nodes: number[] = []
    for (const old of previous.ringAssignment.slice(p * rf, (p + 1) * rf)) {
      const i = index.get(previous.nodeIdVec[old] ?? '')
      if (i !== undefined && !nodes.includes(i)) nodes.push(i)
    }
    out.push(nodes)
  }
  return out
}

/**
 * The flow graph of the formal description: source → P+(p) (capacity zoneRedundancy) and
 * source → P−(p) (RF − zoneRedundancy); P+(p) → PZ(p,z) (1) and P−(p) → PZ(p,z) (RF);
 * PZ(p,z) → N(n) (1) for every node n of zone z; N(n) → sink (⌊capacity(n) / size⌋).
 * A flow of value 256 × RF is an assignment.
 */
class AssignmentFlow {
  readonly #cluster: Cluster
  readonly #rf: number
  readonly #zr: number
  readonly #zoneCount: number
  readonly #nodeBase: number
  #graph: FlowGraph | null = null
  /** Edge ids of PZ(p, zone(n)) → N(n), indexed by p × nodes + n (-1 when absent). */
  #assocEdge: Int32Array = new Int32Array(0)
  #sinkEdges: number[] = []

  constructor(cluster: Cluster, rf: number, zr: number) {
    this.#cluster = cluster
    this.#rf = rf
    this.#zr = zr
    this.#zoneCount = cluster.zones.length
    this.#nodeBase = 2 + NB_PARTITIONS * (2 + this.#zoneCount)
  }

  #pUp(p: number): number {
    return 2 + p * (2 + this.#zoneCount)
  }
  #pz(p: number, z: number): number {
    return this.#pUp(p) + 2 + z
  }

  /** Largest partition size for which a full flow exists (binary search, as Garage's dichotomy). */
  optimalPartitionSize(): number {
    const target = NB_PARTITIONS * this.#rf
    if (!this.#feasible(1)) {
      throw new LayoutError('The storage capacity of the cluster is too small. It is impossible to store partitions of size 1.')
    }
    const total = this.#cluster.storage.reduce((sum, n) => sum + n.capacity, 0)
    // A full flow needs Σ ⌊capacity/s⌋ ≥ 256 × RF, so s ≤ total / (256 × RF): start just above.
    let down = 1
    let up = Math.floor(total / target) + 1
    while (down + 1 < up) {
      const mid = Math.floor((down + up) / 2)
      if (this.#feasible(mid)) down = mid
      else up = mid
    }
    return down
  }

  #feasible(size: number): boolean {
    if (this.#graph === null) this.build(size, null, false)
    const graph = this.#graph as FlowGraph
    graph.resetFlow()
    this.#setSinkCapacities(size)
    return graph.maxFlow(0, 1) >= NB_PARTITIONS * this.#rf
  }

  #setSinkCapacities(size: number): void {
    const graph = this.#graph as FlowGraph
    this.#cluster.storage.forEach((node, n) => {
      // A node holds at most one copy of each partition, so capping at 256 changes nothing.
      graph.setCapacity(this.#sinkEdges[n] as number, Math.min(NB_PARTITIONS, Math.floor(node.capacity / size)))
    })
  }

  /**
   * Builds the graph for `size`. With an old assignment, first computes a maximal flow using only
   * its (partition, node) pairs, then adds the other pairs and resumes the flow.
   */
  build(size: number, old: number[][] | null, computeFlow = true): void {
    const storage = this.#cluster.storage
    const nodeCount = storage.length
    const graph = new FlowGraph(this.#nodeBase + nodeCount)
    this.#graph = graph
    this.#assocEdge = new Int32Array(NB_PARTITIONS * nodeCount).fill(-1)
    for (let p = 0; p < NB_PARTITIONS; p++) {
      const up = this.#pUp(p)
      graph.addEdge(0, up, this.#zr)
      graph.addEdge(0, up + 1, this.#rf - this.#zr)
      for (let z = 0; z < this.#zoneCount; z++) {
        graph.addEdge(up, this.#pz(p, z), 1)
        graph.addEdge(up + 1, this.#pz(p, z), this.#rf)
      }
    }
    this.#sinkEdges = storage.map((_, n) => graph.addEdge(this.#nodeBase + n, 1, 0))
    this.#setSinkCapacities(size)
    const addAssoc = (p: number, n: number): void => {
      const node = storage[n] as StorageNode
      // Cost −1 on pairs of the old assignment: minimising the cost keeps as many as possible.
      const cost = old?.[p]?.includes(n) ? -1 : 0
      this.#assocEdge[p * nodeCount + n] = graph.addEdge(this.#pz(p, node.zoneIndex), this.#nodeBase + n, 1, cost)
    }
    if (old !== null) {
      for (let p = 0; p < NB_PARTITIONS; p++) for (const n of old[p] ?? []) addAssoc(p, n)
      if (computeFlow) {
        graph.shuffleEdges(SHUFFLE_SEED)
        graph.maxFlow(0, 1)
      }
    }
    for (let p = 0; p < NB_PARTITIONS; p++) {
      for (let n = 0; n < nodeCount; n++) if (this.#assocEdge[p * nodeCount + n] === -1) addAssoc(p, n)
    }
    if (computeFlow) {
      graph.shuffleEdges(SHUFFLE_SEED)
      const value = graph.maxFlow(0, 1)
      if (value !== NB_PARTITIONS * this.#rf) {
        throw new LayoutError(`Internal error: the assignment flow has value ${value} instead of ${NB_PARTITIONS * this.#rf}.`)
      }
    }
  }

  /**
   * Removes negative cycles (cost −1 on old pairs) so that the flow keeps as many old pairs as
   * possible. Garage bounds Bellman-Ford at 4 × #nodes passes, the longest simple path of this
   * graph; we look for cycles from there on.
   */
  minimizeMoves(nodeCount: number): void {
    ;(this.#graph as FlowGraph).removeNegativeCycles(4 * nodeCount)
  }

  /** The ring: for each partition, its node indices in increasing order. */
  ring(): number[] {
    const graph = this.#graph as FlowGraph
    const nodeCount = this.#cluster.storage.length
    const ring: number[] = []
    for (let p = 0; p < NB_PARTITIONS; p++) {
      for (let n = 0; n < nodeCount; n++) {
        const e = this.#assocEdge[p * nodeCount + n] as number
        if (e >= 0 && graph.flowOf(e) > 0) ring.push(n)
      }
    }
    if (ring.length !== NB_PARTITIONS * this.#rf) {
      throw new LayoutError('Critical Error: the association ring we produced does not have the right size.')
    }
    return ring
  }
}

interface ResultParts {
  cluster: Cluster
  rf: number
  zoneRedundancy: number
  partitionSize: number
  previousPartitionSize: number | null
  nodeIdVec: string[]
  ring: number[]
  oldAssignment: number[][] | null
}

function buildResult(parts: ResultParts): AssignmentResult {
  const { cluster, rf, partitionSize, ring, oldAssignment } = parts
  const storage = cluster.storage
  const held = new Array<number>(storage.length).fill(0)
  const fresh = new Array<number>(storage.length).fill(0)
  const zonePartitions = new Array<number>(cluster.zones.length).fill(0)
  const zoneUnique = new Array<number>(cluster.zones.length).fill(0)
  for (let p = 0; p < NB_PARTITIONS; p++) {
    const zonesOfP = new Set<number>()
    for (const n of ring.slice(p * rf, (p + 1) * rf)) {
      held[n] = (held[n] as number) + 1
      if (oldAssignment === null || !(oldAssignment[p] as number[]).includes(n)) fresh[n] = (fresh[n] as number) + 1
      const z = (storage[n] as StorageNode).zoneIndex
      zonePartitions[z] = (zonePartitions[z] as number) + 1
      zonesOfP.add(z)
    }
    for (const z of zonesOfP) zoneUnique[z] = (zoneUnique[z] as number) + 1
  }
  const nodes: NodeAssignmentStat[] = storage.map((node, n) => {
    const usable = (held[n] as number) * partitionSize
    return {
      id: node.id,
      zone: node.role.zone,
      tags: [...node.role.tags],
      capacity: node.capacity,
      partitions: held[n] as number,
      newPartitions: fresh[n] as number,
      usableCapacity: usable,
      usage: (100 * usable) / node.capacity,
    }
  })
  const zones: ZoneAssignmentStat[] = cluster.zones.map((zone, z) => {
    const members = nodes.filter((n) => n.zone === zone)
    const capacity = members.reduce((sum, n) => sum + n.capacity, 0)
    const usable = (zonePartitions[z] as number) * partitionSize
    return {
      zone,
      nodes: members.length,
      capacity,
      partitions: zonePartitions[z] as number,
      uniquePartitions: zoneUnique[z] as number,
      usableCapacity: usable,
      usage: (100 * usable) / capacity,
    }
  })
  const totalCapacity = storage.reduce((sum, n) => sum + n.capacity, 0)
  const usableCapacity = partitionSize * NB_PARTITIONS * rf
  const movedCopies = fresh.reduce((a, b) => a + b, 0)
  const result: AssignmentResult = {
    replicationFactor: rf,
    partitionSize,
    nodeIdVec: parts.nodeIdVec,
    nongatewayNodeCount: storage.length,
    ringAssignment: ring,
    zoneRedundancy: parts.zoneRedundancy,
    usableCapacity,
    totalCapacity,
    movedCopies,
    nodes,
    zones,
    messages: [],
  }
  result.messages = assignmentMessages(result, parts.previousPartitionSize, oldAssignment !== null)
  return result
}

function assignmentMessages(r: AssignmentResult, previousSize: number | null, hadPrevious: boolean): string[] {
  const msg = ['==== COMPUTATION OF A NEW PARTITION ASSIGNATION ====', '']
  msg.push(`Partitions are replicated ${r.replicationFactor} times on at least ${r.zoneRedundancy} distinct zones.`, '')
  msg.push(
    `Optimal partition size:                     ${formatBytes(r.partitionSize)}` +
      (hadPrevious && previousSize !== null ? ` (${formatBytes(previousSize)} in previous layout)` : ''),
  )
  if (r.partitionSize < 100) {
    msg.push(
      'WARNING: The partition size is low (< 100), make sure the capacities of your nodes are correct and are of at least a few MB',
    )
  }
  const percent = (100 * r.usableCapacity) / r.totalCapacity
  msg.push(
    `Usable capacity / total cluster capacity:   ${formatBytes(r.usableCapacity)} / ${formatBytes(r.totalCapacity)} (${percent.toFixed(1)} %)`,
  )
  msg.push(
    `Effective capacity (replication factor ${r.replicationFactor}):  ${formatBytes(r.usableCapacity / r.replicationFactor)}`,
  )
  if (percent < 80) {
    msg.push(
      '',
      'If the percentage is too low, it might be that the cluster topology and redundancy constraints are forcing the use of nodes/zones with small storage capacities.',
      'You might want to move storage capacity between zones or relax the redundancy constraint.',
      'See the detailed statistics below and look for saturated nodes/zones.',
    )
  }
  msg.push('')
  if (hadPrevious) msg.push(`A total of ${r.movedCopies} new copies of partitions need to be transferred.`, '')
  const table: string[][] = []
  for (const zone of r.zones) {
    table.push([zone.zone, 'Tags', 'Partitions', 'Capacity', 'Usable capacity'])
    for (const n of r.nodes.filter((x) => x.zone === zone.zone)) {
      table.push([
        `  ${n.id.slice(0, 16)}`,
        n.tags.join(','),
        `${n.partitions} (${n.newPartitions} new)`,
        formatBytes(n.capacity),
        `${formatBytes(n.usableCapacity)} (${n.usage.toFixed(1)}%)`,
      ])
    }
    table.push([
      '  TOTAL',
      '',
      `${zone.partitions} (${zone.uniquePartitions} unique)`,
      formatBytes(zone.capacity),
      `${formatBytes(zone.usableCapacity)} (${zone.usage.toFixed(1)}%)`,
    ])
    table.push([])
  }
  msg.push(...formatTable(table))
  return msg
}

/** Aligns tab-separated columns, as Garage's format_table. */
function formatTable(rows: string[][]): string[] {
  const widths: number[] = []
  for (const row of rows) for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length)
  return rows.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd((widths[i] as number) + 2)))
      .join('')
      .trimEnd(),
  )
}

/** Decimal byte sizes as Garage prints them (bytesize `to_string_as(false)`): `3.9 MB`, `512 B`. @internal */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${Math.round(bytes)} B`
  const exp = Math.min(6, Math.max(1, Math.floor(Math.log(bytes) / Math.log(1000))))
  return `${(bytes / 1000 ** exp).toFixed(1)} ${'KMGTPE'[exp - 1]}B`
}
