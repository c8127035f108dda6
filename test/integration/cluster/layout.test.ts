/**
 * Cluster layout gossip between three in-process nodes (real RPC over 127.0.0.1): a layout
 * applied on one node reaches the others, and changes staged on any node reach every node.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { createGarageNode, type GarageNode } from '../../../lib/index.ts'
import { eventually } from '../../helpers/eventually.ts'

const GB = 1_000_000_000
const secret = randomBytes(32).toString('hex')
const nodes: GarageNode[] = []
let dir = ''

async function startNode(i: number, bootstrap: string[]): Promise<GarageNode> {
  const node = createGarageNode({
    metadata_dir: join(dir, `meta${i}`),
    data_dir: join(dir, `data${i}`),
    replication_factor: 3,
    rpc_secret: secret,
    rpc_bind_addr: '127.0.0.1:0',
    bootstrap_peers: bootstrap,
    s3_api: { api_bind_addr: '127.0.0.1:0', s3_region: 'garage' },
    env: { GARAGE_TS_TEST_RPC_INTERVAL_MSEC: '200' },
  })
  nodes.push(node)
  await node.start()
  return node
}

describe('cluster layout across three nodes', { timeout: 60_000 }, () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'garage-layout-cluster-'))
    const first = await startNode(1, [])
    const addr = (first as GarageNode & { rpcAddress?: string }).rpcAddress
    assert.ok(addr !== undefined, 'node 1 has an RPC address')
    await startNode(2, [addr])
    await startNode(3, [addr])
  })
  after(async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()))
    await rm(dir, { recursive: true, force: true })
  })

  test('a layout applied on node 1 reaches nodes 2 and 3; a change staged on node 2 reaches node 1', async () => {
    const [n1, n2, n3] = nodes as [GarageNode, GarageNode, GarageNode]
    await n1.layout.stage({
      roles: [
        { id: n1.nodeId, zone: 'z1', capacity: 10 * GB, tags: [] },
        { id: n2.nodeId, zone: 'z2', capacity: 10 * GB, tags: [] },
        { id: n3.nodeId, zone: 'z3', capacity: 10 * GB, tags: [] },
      ],
    })
    const applied = await n1.layout.apply(1)
    await eventually('version 1 on nodes 2 and 3', () => n2.layout.get().version === 1 && n3.layout.get().version === 1, {
      timeoutMs: 10_000,
    })
    assert.deepEqual(n2.layout.get(), applied.layout)
    assert.deepEqual(n3.layout.get(), applied.layout)

    // Staged on node 2 (by id prefix), seen on node 1, applied there, seen on node 3.
    await n2.layout.stage({ roles: [{ id: n1.nodeId.slice(0, 8), zone: 'z1', capacity: 20 * GB, tags: ['big'] }] })
    await eventually('the staged change on node 1', () => n1.layout.get().stagedRoleChanges.length === 1, { timeoutMs: 10_000 })
    assert.deepEqual(n1.layout.get().stagedRoleChanges, [{ id: n1.nodeId, zone: 'z1', capacity: 20 * GB, tags: ['big'] }])
    const p = n1.layout.preview()
    assert.ok(p.ok, 'the merged staged change can be applied')
    await n1.layout.apply(2)
    await eventually('version 2 everywhere', () => nodes.every((n) => n.layout.get().version === 2), { timeoutMs: 10_000 })
    for (const n of nodes) {
      assert.deepEqual(n.layout.get(), p.layout)
      assert.equal(n.layout.get().stagedRoleChanges.length, 0)
    }
    // Every node acknowledges version 2, so version 1 retires everywhere.
    await eventually(
      'version 1 retired on every node',
      () => nodes.every((n) => n.layout.history().versions.find((v) => v.version === 1)?.status === 'Historical'),
      { timeoutMs: 10_000 },
    )
  })
})
