/**
 * A 7-node cluster in 3 zones (3 + 2 + 2 nodes, RF 3), real processes: the layout applied through
 * the admin API reaches every node and puts every partition in the 3 zones on 3 distinct nodes,
 * using every node. (Writes and reads through every node and a second layout change were written
 * too, but did not finish within 10 minutes on the loaded 2-core machine of this session and were
 * left out rather than committed unverified: docs/design/scale.md.)
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { lwwMapGet } from '../../../lib/util/crdt/crdt.ts'
import { nodesOfPartition } from '../../../lib/rpc/layout/version.ts'
import { type ReplicatedCluster, readCurrentLayout, startReplicatedCluster } from '../../helpers/cluster.ts'

const ZONES = ['z1', 'z2', 'z3', 'z1', 'z2', 'z3', 'z1']

describe('7 nodes in 3 zones (RF 3)', { timeout: 600_000 }, () => {
  let cluster: ReplicatedCluster
  before(async () => {
    cluster = await startReplicatedCluster({
      nodes: 7,
      zones: ZONES,
      configLines: ['block_size = 16384'],
      // Seven processes starting at once on a small CI machine take longer than one.
      nodeOptions: () => ({ startTimeoutMs: 120_000 }),
    })
  })
  after(async () => {
    await cluster?.stop()
  })

  test('the layout spreads every partition over the 3 zones and uses every node', async () => {
    const layout = await readCurrentLayout(cluster.node(0))
    const zoneOf = (id: string): string | undefined => lwwMapGet(layout.roles, id)?.zone
    const held = new Map<string, number>()
    for (let p = 0; p < 256; p++) {
      const nodes = nodesOfPartition(layout, p)
      assert.equal(new Set(nodes).size, 3, `partition ${p} on 3 distinct nodes`)
      assert.equal(new Set(nodes.map(zoneOf)).size, 3, `partition ${p} in 3 zones`)
      for (const n of nodes) held.set(n, (held.get(n) ?? 0) + 1)
    }
    assert.equal(held.size, 7, 'every node holds partitions')
    // Each zone holds one copy of every partition. The 2-node zones set the partition size (128
    // copies per node, equal capacities), so z1's three nodes share 256 copies, at most 128 each
    // (the flow does not even them out: docs/design/layout.md).
    let z1 = 0
    for (const [id, count] of held) {
      if (zoneOf(id) === 'z1') {
        assert.ok(count > 0 && count <= 128, `${id.slice(0, 8)} (z1) holds ${count}`)
        z1 += count
      } else assert.equal(count, 128, `${id.slice(0, 8)} (${zoneOf(id)}) holds ${count}`)
    }
    assert.equal(z1, 256)
  })
})
