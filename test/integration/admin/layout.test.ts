/** Cluster layout endpoints of the admin API v2, with Garage's JSON shapes. */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { v2 } from '../../helpers/admin.ts'

let node: TestNode
let self: string
const other1 = 'b2'.repeat(32)
const other2 = 'c3'.repeat(32)
before(async () => {
  node = await startTestNode({ replication_factor: 3, admin: { api_bind_addr: '127.0.0.1:0', admin_token: 'tok' } })
  self = node.node.nodeId
})
after(() => node.close())

function expectError(r: { status: number; json: unknown; text: string }, status: number, code: string, message?: RegExp) {
  assert.equal(r.status, status, r.text)
  assert.equal((r.json as { code: string }).code, code)
  if (message !== undefined) assert.match((r.json as { message: string }).message, message)
}

describe('cluster layout', () => {
  test('GetClusterLayout of a fresh node: version 0, nothing staged', async () => {
    const r = await v2(node, 'GetClusterLayout')
    assert.equal(r.status, 200, r.text)
    assert.deepEqual(r.data, {
      version: 0,
      roles: [],
      parameters: { zoneRedundancy: 'maximum' },
      partitionSize: 0,
      stagedRoleChanges: [],
      stagedParameters: null,
    })
  })

  test('update, preview, apply (current + 1 only), history, revert', async () => {
    const up = await v2(node, 'UpdateClusterLayout', {
      body: {
        roles: [
          { id: self.slice(0, 8), zone: 'dc1', capacity: 10_000_000_000, tags: ['a'] },
          { id: other1, zone: 'dc2', capacity: 10_000_000_000, tags: [] },
          { id: other2, zone: 'dc3', capacity: 10_000_000_000 },
        ],
        parameters: { zoneRedundancy: { atLeast: 2 } },
      },
    })
    assert.equal(up.status, 200, up.text)
    const staged = up.data.stagedRoleChanges as Array<Record<string, unknown>>
    assert.equal(staged.length, 3)
    assert.deepEqual(
      staged.find((c) => c.id === self),
      { id: self, zone: 'dc1', capacity: 10_000_000_000, tags: ['a'] },
    )
    assert.deepEqual(up.data.stagedParameters, { zoneRedundancy: { atLeast: 2 } })

    const preview = await v2(node, 'PreviewClusterLayoutChanges', { body: {} })
    assert.equal(preview.status, 200, preview.text)
    const newLayout = preview.data.newLayout as Record<string, unknown>
    assert.equal(newLayout.version, 1)
    assert.ok(Array.isArray(preview.data.message), 'the preview carries the computation messages')

    expectError(await v2(node, 'ApplyClusterLayout', { body: { version: 2 } }), 400, 'InvalidRequest', /expected 1, got 2/)
    expectError(await v2(node, 'ApplyClusterLayout', { body: {} }), 400, 'InvalidRequest', /version/)
    const applied = await v2(node, 'ApplyClusterLayout', { body: { version: 1 } })
    assert.equal(applied.status, 200, applied.text)
    assert.deepEqual(applied.data.layout, newLayout)
    assert.deepEqual(applied.data.message, preview.data.message)

    const layout = await v2(node, 'GetClusterLayout')
    assert.equal(layout.data.version, 1)
    assert.deepEqual(layout.data.parameters, { zoneRedundancy: { atLeast: 2 } })
    const roles = layout.data.roles as Array<Record<string, unknown>>
    assert.equal(roles.length, 3)
    for (const r of roles) {
      assert.equal(r.storedPartitions, 256)
      assert.equal(r.usableCapacity, 256 * (layout.data.partitionSize as number))
    }

    const history = await v2(node, 'GetClusterLayoutHistory')
    assert.equal(history.status, 200, history.text)
    assert.equal(history.data.currentVersion, 1)
    const versions = history.data.versions as Array<Record<string, unknown>>
    assert.deepEqual(versions[0], { version: 1, status: 'Current', storageNodes: 3, gatewayNodes: 0 })

    // Stage a gateway and a removal, then revert them.
    const more = await v2(node, 'UpdateClusterLayout', {
      body: {
        roles: [
          { id: other2, remove: true },
          { id: 'd4'.repeat(32), zone: 'dc3', capacity: null, tags: [] },
        ],
      },
    })
    assert.equal(more.status, 200, more.text)
    assert.equal((more.data.stagedRoleChanges as unknown[]).length, 2)
    const bad = await v2(node, 'PreviewClusterLayoutChanges', { body: {} })
    assert.equal(bad.status, 200, bad.text)
    assert.match(String(bad.data.error), /replication factor/)
    expectError(await v2(node, 'ApplyClusterLayout', { body: { version: 2 } }), 400, 'InvalidRequest')
    const reverted = await v2(node, 'RevertClusterLayout', { body: {} })
    assert.equal(reverted.status, 200, reverted.text)
    assert.deepEqual(reverted.data.stagedRoleChanges, [])
    assert.equal(reverted.data.version, 1)
  })

  test('bad input is a 400 naming the problem', async () => {
    expectError(
      await v2(node, 'UpdateClusterLayout', { body: { roles: [{ id: self, zone: 'z', capacity: 10 }] } }),
      400,
      'InvalidRequest',
      /at least 1K/,
    )
    expectError(
      await v2(node, 'UpdateClusterLayout', { body: { parameters: { zoneRedundancy: 'lots' } } }),
      400,
      'InvalidRequest',
      /zoneRedundancy/,
    )
    expectError(
      await v2(node, 'UpdateClusterLayout', { body: { parameters: { zoneRedundancy: { atLeast: 4 } } } }),
      400,
      'InvalidRequest',
      /replication factor/,
    )
    expectError(
      await v2(node, 'UpdateClusterLayout', { body: { roles: [{ id: 'ffff', zone: 'z', capacity: null }] } }),
      400,
      'InvalidRequest',
      /0 nodes match/,
    )
    expectError(await v2(node, 'UpdateClusterLayout', { body: { roles: {} } }), 400, 'InvalidRequest', /roles/)
    expectError(
      await v2(node, 'ClusterLayoutSkipDeadNodes', { body: { version: 1, allowMissingData: false } }),
      400,
      'InvalidRequest',
      /only one live cluster layout version/,
    )
  })
})
