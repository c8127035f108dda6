import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { computeAssignment, nodesOfPartition, partitionOf } from '../../../lib/rpc/layout/version.ts'
import { type AssignmentResult, LayoutError, type NodeRole, type ZoneRedundancy } from '../../../lib/rpc/layout/types.ts'
import { isGarageError } from '../../../lib/util/errors.ts'
import { int, pick, rng } from '../../helpers/random.ts'
import { feasibleByCut, maxKeptPairs, P, partitionsById, type Storage, storageNodes, violations, zonesOf } from './oracle.ts'

type Roles = Map<string, NodeRole>

interface Case {
  roles: Roles
  rf: number
  redundancy: ZoneRedundancy
}

const hexId = (r: () => number): string => Array.from({ length: 16 }, () => int(r, 16).toString(16)).join('')

function randomRole(r: () => number, zones: number, gatewayChance = 0.15): NodeRole {
  const zone = `dc${int(r, zones)}`
  if (r() < gatewayChance) return { zone, capacity: null, tags: ['gw'] }
  // Mixed capacities: mostly round sizes, some odd ones, occasionally tiny (partition size < 100).
  const capacity =
    r() < 0.1 ? 2000 + int(r, 50_000) : pick(r, [1, 1, 2, 3, 4, 5, 8, 10]) * 1_000_000_000 + int(r, 4) * 123_456_789
  return { zone, capacity, tags: [`t${int(r, 3)}`] }
}

function randomCase(r: () => number, maxNodes = 10): Case {
  const zones = 1 + int(r, 5)
  const roles: Roles = new Map()
  const n = 1 + int(r, maxNodes)
  for (let i = 0; i < n; i++) roles.set(hexId(r), randomRole(r, zones))
  const rf = 1 + int(r, 3)
  const redundancy: ZoneRedundancy = r() < 0.4 ? 'maximum' : 1 + int(r, rf)
  return { roles, rf, redundancy }
}

const effectiveRedundancy = (c: Case): number =>
  c.redundancy === 'maximum' ? Math.min(zonesOf(storageNodes(c.roles)).length, c.rf) : c.redundancy

/** The error the layout must raise for this case, decided without the library (null: valid). */
function expectedError(c: Case): RegExp | null {
  const nodes = storageNodes(c.roles)
  if (nodes.length < c.rf) return /number of nodes with positive capacity .* smaller than the replication factor/
  if (zonesOf(nodes).length < effectiveRedundancy(c))
    return /number of zones with non-gateway nodes .* smaller than the redundancy/
  if (!feasibleByCut(nodes, c.rf, effectiveRedundancy(c), 1)) return /impossible to store partitions of size 1/
  return null
}

const compute = (c: Case, previous?: AssignmentResult) =>
  computeAssignment({ roles: c.roles, replicationFactor: c.rf, parameters: { zoneRedundancy: c.redundancy }, previous })

/** Valid, and the partition size is the largest for which a valid assignment exists. */
function assertValidAndOptimal(c: Case, a: AssignmentResult, label: string): void {
  const nodes = storageNodes(c.roles)
  const zr = effectiveRedundancy(c)
  assert.deepEqual(violations(a, c.roles, c.rf, zr), [], `${label}: assignment is valid`)
  assert.ok(feasibleByCut(nodes, c.rf, zr, a.partitionSize), `${label}: size ${a.partitionSize} passes the cut bound`)
  assert.ok(!feasibleByCut(nodes, c.rf, zr, a.partitionSize + 1), `${label}: size ${a.partitionSize + 1} is impossible`)
  assert.equal(a.zoneRedundancy, zr, `${label}: effective zone redundancy`)
  assert.equal(a.usableCapacity, a.partitionSize * P * c.rf, `${label}: usable capacity`)
  const gateways = [...c.roles].filter(([, role]) => role.capacity === null).map(([id]) => id)
  assert.deepEqual(new Set(a.nodeIdVec.slice(a.nongatewayNodeCount)), new Set(gateways), `${label}: gateways come last`)
  for (const stat of a.nodes) {
    const held = a.ringAssignment.filter((i) => a.nodeIdVec[i] === stat.id).length
    assert.equal(stat.partitions, held, `${label}: partition count of ${stat.id}`)
    assert.ok(stat.usableCapacity <= stat.capacity, `${label}: ${stat.id} within capacity`)
  }
}

/** Copies a node must fetch: pairs of `next` absent from `prev`. */
function newCopies(prev: AssignmentResult, next: AssignmentResult): number {
  const before = partitionsById(prev)
  return partitionsById(next).reduce((sum, ids, p) => sum + ids.filter((id) => !before[p]?.includes(id)).length, 0)
}

function minimalMoves(c: Case, prev: AssignmentResult, size: number): number {
  const nodes: Storage[] = storageNodes(c.roles)
  const old = partitionsById(prev).map((ids) => new Set(ids))
  return P * c.rf - maxKeptPairs(nodes, c.rf, effectiveRedundancy(c), size, old)
}

function shuffledCopy(r: () => number, roles: Roles): Roles {
  const entries = [...roles]
  for (let i = entries.length - 1; i > 0; i--) {
    const j = int(r, i + 1)
    ;[entries[i], entries[j]] = [entries[j] as [string, NodeRole], entries[i] as [string, NodeRole]]
  }
  return new Map(entries)
}

describe('layout assignment', () => {
  test('random clusters get a valid assignment with the largest possible partition size', () => {
    const r = rng(0x1a7a)
    let valid = 0
    let errors = 0
    for (let i = 0; i < 150; i++) {
      const c = randomCase(r)
      const label = `case ${i} (rf ${c.rf}, zr ${c.redundancy}, ${c.roles.size} nodes)`
      const expected = expectedError(c)
      if (expected !== null) {
        assert.throws(
          () => compute(c),
          (err: unknown) => err instanceof LayoutError && expected.test(err.message),
          label,
        )
        errors++
        continue
      }
      assertValidAndOptimal(c, compute(c), label)
      valid++
    }
    assert.ok(valid >= 80 && errors >= 8, `both outcomes are exercised (${valid} valid, ${errors} errors)`)
  })

  test('after adding, removing, resizing or moving one node, the fewest copies move', () => {
    const r = rng(0xc0ffee)
    let checked = 0
    let withMoves = 0
    for (let i = 0; checked < 40 && i < 400; i++) {
      const before = randomCase(r, 6)
      if (expectedError(before) !== null) continue
      const first = compute(before)
      const roles = new Map(before.roles)
      const storageIds = [...roles].filter(([, role]) => role.capacity !== null).map(([id]) => id)
      const change = pick(r, ['add', 'remove', 'resize', 'rezone'] as const)
      const target = pick(r, storageIds)
      if (change === 'add') roles.set(hexId(r), randomRole(r, 4, 0))
      else if (change === 'remove') roles.delete(target)
      else if (change === 'resize')
        roles.set(target, { ...(roles.get(target) as NodeRole), capacity: pick(r, [1, 2, 5, 9]) * 1e9 })
      else roles.set(target, { ...(roles.get(target) as NodeRole), zone: `dc${int(r, 4)}` })
      const after: Case = { ...before, roles }
      if (expectedError(after) !== null) continue
      const label = `case ${i}: ${change} ${change === 'add' ? '' : target}`
      const next = compute(after, first)
      assertValidAndOptimal(after, next, label)
      assert.equal(next.movedCopies, newCopies(first, next), `${label}: movedCopies counts new (partition, node) pairs`)
      if (change === 'remove') {
        const held = first.ringAssignment.filter((x) => first.nodeIdVec[x] === target).length
        assert.ok(next.movedCopies >= held, `${label}: at least the ${held} copies of the removed node move`)
      }
      assert.equal(next.movedCopies, minimalMoves(after, first, next.partitionSize), `${label}: moves are minimal`)
      checked++
      if (next.movedCopies > 0) withMoves++
    }
    assert.ok(checked >= 40 && withMoves >= 15, `enough changes were checked (${checked}, ${withMoves} with moves)`)
  })

  test('removing a node from a balanced cluster moves exactly its copies', () => {
    const roles: Roles = new Map()
    for (let i = 0; i < 6; i++) roles.set(`node${i}`, { zone: `dc${i % 3}`, capacity: 1e12, tags: [] })
    const c: Case = { roles, rf: 3, redundancy: 'maximum' }
    const first = compute(c)
    const held = first.nodes.find((n) => n.id === 'node5')?.partitions ?? -1
    roles.delete('node5')
    const next = compute(c, first)
    assert.equal(next.movedCopies, held, 'only the removed copies are re-created')
    assert.ok(next.messages.includes(`A total of ${held} new copies of partitions need to be transferred.`), 'message')
  })

  test('adding a 4th node to a full zone stores nothing on it (layout.md, example 1)', () => {
    const roles: Roles = new Map()
    for (let i = 1; i <= 3; i++) roles.set(`node${i}`, { zone: `dc${i}`, capacity: 1e9, tags: [] })
    const c: Case = { roles, rf: 3, redundancy: 'maximum' }
    const first = compute(c)
    roles.set('node4', { zone: 'dc1', capacity: 1e9, tags: [] })
    const next = compute(c, first)
    assert.equal(next.movedCopies, 0, 'no copy moves')
    assert.equal(next.nodes.find((n) => n.id === 'node4')?.partitions, 0, 'the new node stays empty')
    assert.equal(next.partitionSize, first.partitionSize, 'same partition size')
  })

  test('recomputing an unchanged layout moves nothing and keeps the ring', () => {
    const r = rng(7)
    for (let i = 0; i < 5; ) {
      const c = randomCase(r)
      if (expectedError(c) !== null) continue
      const first = compute(c)
      const again = compute(c, first)
      assert.equal(again.movedCopies, 0, `case ${i}: nothing moves`)
      assert.deepEqual(again.ringAssignment, first.ringAssignment, `case ${i}: same ring`)
      i++
    }
  })

  test('is deterministic, whatever the order of the roles', () => {
    const r = rng(42)
    for (let i = 0; i < 6; ) {
      const c = randomCase(r)
      if (expectedError(c) !== null) continue
      const a = compute(c)
      const b = compute({ ...c, roles: shuffledCopy(r, c.roles) })
      const asRecord = computeAssignment({
        roles: Object.fromEntries(shuffledCopy(r, c.roles)),
        replicationFactor: c.rf,
        parameters: { zoneRedundancy: c.redundancy },
      })
      assert.deepEqual(b, a, `case ${i}: same result with the roles shuffled`)
      assert.deepEqual(asRecord, a, `case ${i}: same result from a record`)
      const changed = new Map(c.roles)
      changed.set(hexId(r), randomRole(r, 3, 0))
      const x = compute({ ...c, roles: changed }, a)
      const y = compute({ ...c, roles: shuffledCopy(r, changed) }, b)
      assert.deepEqual(y, x, `case ${i}: same update with the roles shuffled`)
      i++
    }
  })

  test('10 nodes with replication factor 3 take well under a second', () => {
    const roles: Roles = new Map()
    const r = rng(99)
    for (let i = 0; i < 10; i++) roles.set(hexId(r), { zone: `dc${i % 4}`, capacity: (1 + int(r, 8)) * 1e12, tags: [] })
    const c: Case = { roles, rf: 3, redundancy: 'maximum' }
    let start = performance.now()
    const first = compute(c)
    const firstMs = performance.now() - start
    roles.delete([...roles.keys()][3] as string)
    roles.set(hexId(r), { zone: 'dc4', capacity: 3e12, tags: [] })
    start = performance.now()
    compute(c, first)
    const updateMs = performance.now() - start
    assert.ok(firstMs < 1000 && updateMs < 1000, `took ${firstMs.toFixed(0)} ms and ${updateMs.toFixed(0)} ms`)
  })

  test('errors are typed and worded like Garage', () => {
    const one: Roles = new Map([['a', { zone: 'z1', capacity: 1e9, tags: [] }]])
    const two: Roles = new Map([
      ['a', { zone: 'z1', capacity: 1e9, tags: [] }],
      ['b', { zone: 'z1', capacity: 1e9, tags: [] }],
      ['g', { zone: 'z2', capacity: null, tags: [] }],
    ])
    const cases: Array<[string, () => unknown, RegExp]> = [
      [
        'too few nodes',
        () => compute({ roles: one, rf: 2, redundancy: 'maximum' }),
        /nodes with positive capacity \(1\) is smaller than the replication factor \(2\)/,
      ],
      [
        'too few zones',
        () => compute({ roles: two, rf: 2, redundancy: 2 }),
        /zones with non-gateway nodes \(1\) is smaller than the redundancy parameter \(2\)/,
      ],
      [
        'zero capacity',
        () => compute({ roles: new Map([['a', { zone: 'z', capacity: 0, tags: [] }]]), rf: 1, redundancy: 'maximum' }),
        /Invalid capacity for node a/,
      ],
      [
        'tiny capacity',
        () => compute({ roles: new Map([['a', { zone: 'z', capacity: 100, tags: [] }]]), rf: 1, redundancy: 'maximum' }),
        /impossible to store partitions of size 1/,
      ],
      ['redundancy above rf', () => compute({ roles: two, rf: 2, redundancy: 3 }), /zone redundancy must be/],
      ['bad rf', () => compute({ roles: two, rf: 0, redundancy: 'maximum' }), /replication factor must be a positive integer/],
    ]
    for (const [label, run, message] of cases) {
      assert.throws(
        run,
        (err: unknown) =>
          err instanceof LayoutError && isGarageError(err) && err.code === 'GARAGE_ERR_LAYOUT' && message.test(err.message),
        label,
      )
    }
  })

  test('maximum zone redundancy ignores the zones of gateways', () => {
    const roles: Roles = new Map([
      ['a', { zone: 'z1', capacity: 1e9, tags: [] }],
      ['b', { zone: 'z1', capacity: 1e9, tags: [] }],
      ['g', { zone: 'z2', capacity: null, tags: [] }],
    ])
    const a = compute({ roles, rf: 2, redundancy: 'maximum' })
    assert.equal(a.zoneRedundancy, 1, 'only zone z1 stores data')
    assert.deepEqual(a.nodeIdVec, ['a', 'b', 'g'], 'storage nodes first, then gateways')
  })

  test('partitionOf and nodesOfPartition read the ring', () => {
    const roles: Roles = new Map([
      ['a', { zone: 'z1', capacity: 1e9, tags: [] }],
      ['b', { zone: 'z2', capacity: 1e9, tags: [] }],
    ])
    const a = compute({ roles, rf: 2, redundancy: 'maximum' })
    assert.equal(partitionOf(Uint8Array.from([0xab, 0xcd, 0xef])), 0xab, 'top 8 bits')
    assert.deepEqual(nodesOfPartition(a, 17), ['a', 'b'], 'both nodes hold every partition')
  })
})

describe('oracle sanity', () => {
  test('the cut bound matches closed forms for the simple cases', () => {
    const r = rng(5)
    for (let i = 0; i < 40; i++) {
      const nodes: Storage[] = Array.from({ length: 1 + int(r, 6) }, (_, j) => ({
        id: `n${j}`,
        zone: `z${int(r, 3)}`,
        capacity: 1 + int(r, 2000),
      }))
      const rf = 1 + int(r, 3)
      const s = 1 + int(r, 5)
      const k = nodes.map((n) => Math.min(P, Math.floor(n.capacity / s)))
      // Without zone constraint: feasible iff Σ min(k, 256) ≥ 256 × RF (fill slots round-robin).
      const free = k.reduce((a, b) => a + b, 0) >= P * rf && nodes.length >= rf
      assert.equal(feasibleByCut(nodes, rf, 1, s), free, `case ${i}: zone redundancy 1`)
      // One copy per zone in every zone (RF = #zones = redundancy): each zone needs 256 slots.
      const zones = zonesOf(nodes)
      const perZone = zones.every((z) => nodes.reduce((a, n, j) => a + (n.zone === z ? (k[j] as number) : 0), 0) >= P)
      assert.equal(feasibleByCut(nodes, zones.length, zones.length, s), perZone, `case ${i}: one copy per zone`)
    }
  })
})
