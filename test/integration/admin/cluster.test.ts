/**
 * Cluster, node and worker endpoints of the admin API, and the endpoints that wait for the
 * cluster feature (501).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { v2 } from '../../helpers/admin.ts'

let node: TestNode
before(async () => {
  node = await startTestNode({ admin: { api_bind_addr: '127.0.0.1:0', admin_token: 'tok' } })
})
after(() => node.close())

function expectError(r: { status: number; json: unknown; text: string }, status: number, code: string): void {
  assert.equal(r.status, status, r.text)
  assert.equal((r.json as { code: string }).code, code)
}

describe('cluster', () => {
  test('GetClusterStatus reports this node', async () => {
    const r = await v2(node, 'GetClusterStatus')
    assert.equal(r.status, 200)
    assert.equal(r.data.layoutVersion, 0)
    const nodes = r.data.nodes as Array<Record<string, unknown>>
    assert.equal(nodes.length, 1)
    assert.equal(nodes[0]?.id, node.node.nodeId)
    assert.equal(nodes[0]?.isUp, true)
    assert.equal(nodes[0]?.draining, false)
  })
  test('GetClusterHealth: a running single node is healthy', async () => {
    const r = await v2(node, 'GetClusterHealth')
    assert.deepEqual(r.data, {
      status: 'healthy',
      knownNodes: 1,
      connectedNodes: 1,
      storageNodes: 1,
      storageNodesOk: 1,
      partitions: 256,
      partitionsQuorum: 256,
      partitionsAllOk: 256,
    })
  })
  test('GetClusterStatistics and GetNodeStatistics give freeform text', async () => {
    const c = await v2(node, 'GetClusterStatistics')
    assert.match(c.data.freeform as string, /Buckets: 1/)
    const n = await v2(node, 'GetNodeStatistics', { query: { node: 'self' } })
    const mine = (n.data.success as Record<string, { freeform: string }>)[node.node.nodeId]
    assert.match(mine?.freeform ?? '', /object/)
    assert.deepEqual(n.data.error, {})
  })
  test('GetNodeInfo with node=self, *, an id prefix; unknown or missing node is 400', async () => {
    for (const sel of ['self', '*', node.node.nodeId.slice(0, 8), node.node.nodeId]) {
      const r = await v2(node, 'GetNodeInfo', { query: { node: sel } })
      assert.equal(r.status, 200, `${sel}: ${r.text}`)
      const info = (r.data.success as Record<string, Record<string, unknown>>)[node.node.nodeId]
      assert.equal(info?.nodeId, node.node.nodeId)
      assert.equal(typeof info?.garageVersion, 'string')
      assert.equal(typeof info?.dbEngine, 'string')
    }
    expectError(await v2(node, 'GetNodeInfo', { query: { node: 'ffffffff' } }), 400, 'InvalidRequest')
    expectError(await v2(node, 'GetNodeInfo'), 400, 'InvalidRequest')
  })
  test('connection (standalone node) and metadata snapshots answer 501 NotImplemented', async () => {
    // Repair and block endpoints: test/integration/admin/block-repair.test.ts.
    const cases: Array<[string, Record<string, string>, unknown]> = [
      ['ConnectClusterNodes', {}, []],
      ['CreateMetadataSnapshot', { node: 'self' }, {}],
    ]
    for (const [name, query, body] of cases) {
      const r = await v2(node, name, { query, body, method: body === undefined ? 'GET' : 'POST' })
      expectError(r, 501, 'NotImplemented')
      if (/Connect/.test(name)) assert.match((r.json as { message: string }).message, /needs a cluster: set rpc_secret/)
    }
  })
})

describe('workers', () => {
  test('ListWorkers lists the queue and resync workers; filters apply', async () => {
    const r = await v2(node, 'ListWorkers', { query: { node: 'self' }, body: {} })
    assert.equal(r.status, 200, r.text)
    const workers = (r.data.success as Record<string, Array<Record<string, unknown>>>)[node.node.nodeId] ?? []
    const names = workers.map((w) => String(w.name))
    assert.ok(
      names.some((n) => n.startsWith('block resync')),
      'the block resync worker is listed',
    )
    assert.ok(names.includes('object queue'), 'table queue workers are listed')
    for (const w of workers) {
      assert.equal(typeof w.id, 'number')
      assert.ok(['busy', 'idle', 'done'].includes(w.state as string), `state ${String(w.state)}`)
      assert.ok(Array.isArray(w.freeform), 'freeform is an array')
    }
    const errs = await v2(node, 'ListWorkers', { query: { node: 'self' }, body: { errorOnly: true } })
    assert.deepEqual((errs.data.success as Record<string, unknown[]>)[node.node.nodeId], [])
  })
  test('GetWorkerInfo by id; unknown id is 400', async () => {
    const r = await v2(node, 'ListWorkers', { query: { node: 'self' }, body: {} })
    const first = (r.data.success as Record<string, Array<{ id: number; name: string }>>)[node.node.nodeId]?.[0]
    assert.ok(first !== undefined, 'there is a worker')
    const w = await v2(node, 'GetWorkerInfo', { query: { node: 'self' }, body: { id: first.id } })
    assert.equal((w.data.success as Record<string, { name: string }>)[node.node.nodeId]?.name, first.name)
    expectError(await v2(node, 'GetWorkerInfo', { query: { node: 'self' }, body: { id: 9999 } }), 400, 'InvalidRequest')
    expectError(await v2(node, 'GetWorkerInfo', { query: { node: 'self' }, body: {} }), 400, 'InvalidRequest')
    // With node=*, a node's failure is reported in `error`.
    const all = await v2(node, 'GetWorkerInfo', { query: { node: '*' }, body: { id: 9999 } })
    assert.equal(all.status, 200)
    assert.match((all.data.error as Record<string, string>)[node.node.nodeId] ?? '', /No worker/)
  })
  test('Get/SetWorkerVariable: resync-tranquility; unknown variables and bad values are 400', async () => {
    let r = await v2(node, 'GetWorkerVariable', { query: { node: 'self' }, body: {} })
    const vars = (r.data.success as Record<string, Record<string, string>>)[node.node.nodeId]
    assert.equal(vars?.['resync-tranquility'], '2')
    r = await v2(node, 'SetWorkerVariable', { query: { node: 'self' }, body: { variable: 'resync-tranquility', value: '0' } })
    assert.deepEqual((r.data.success as Record<string, unknown>)[node.node.nodeId], {
      variable: 'resync-tranquility',
      value: '0',
    })
    r = await v2(node, 'GetWorkerVariable', { query: { node: 'self' }, body: { variable: 'resync-tranquility' } })
    assert.deepEqual((r.data.success as Record<string, unknown>)[node.node.nodeId], { 'resync-tranquility': '0' })
    expectError(
      await v2(node, 'SetWorkerVariable', { query: { node: 'self' }, body: { variable: 'no-such-var', value: '1' } }),
      400,
      'InvalidRequest',
    )
    expectError(
      await v2(node, 'GetWorkerVariable', { query: { node: 'self' }, body: { variable: 'no-such-var' } }),
      400,
      'InvalidRequest',
    )
    expectError(
      await v2(node, 'SetWorkerVariable', { query: { node: 'self' }, body: { variable: 'resync-tranquility', value: 'fast' } }),
      400,
      'InvalidRequest',
    )
    expectError(
      await v2(node, 'SetWorkerVariable', { query: { node: 'self' }, body: { variable: 'resync-tranquility' } }),
      400,
      'InvalidRequest',
    )
  })
})
