/**
 * A 7-node cluster in 3 zones (3 + 2 + 2 nodes, RF 3), real processes: the layout puts every
 * partition in the 3 zones on 3 distinct nodes and uses every node; objects written through
 * each node are read back through every other; a layout change (a node of the 3-node zone
 * removed) is applied and reaches every node, after which the objects written before are still
 * read through every remaining node and new writes work.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { PutObjectCommand } from '@aws-sdk/client-s3'
import { lwwMapGet } from '../../../lib/util/crdt/crdt.ts'
import { nodesOfPartition } from '../../../lib/rpc/layout/version.ts'
import { applyLayout, type ReplicatedCluster, readCurrentLayout, startReplicatedCluster } from '../../helpers/cluster.ts'
import { CLUSTER_WAIT, eventually } from '../../helpers/eventually.ts'
import { getBytes } from '../../helpers/s3.ts'

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

  /** Object `i`: 20 KiB (two blocks) of a pattern of its own. */
  const body = (i: number): Buffer => Buffer.alloc(20 * 1024, `object ${i};`)

  async function readEverywhere(keys: Array<[string, number]>, nodes: number[]): Promise<void> {
    for (const n of nodes) {
      for (const [key, i] of keys) {
        const got = await eventually(
          `${key} through node ${n}`,
          () => getBytes(cluster.client(n), cluster.bucket, key),
          CLUSTER_WAIT,
        )
        assert.ok(got.equals(body(i)), `${key} through node ${n}`)
      }
    }
  }

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

  test('writes through each node are read through every node, before and after a layout change', async () => {
    const all = cluster.nodes.map((_, i) => i)
    const before: Array<[string, number]> = []
    for (const n of all) {
      const key = `seven/before-${n}`
      await cluster.client(n).send(new PutObjectCommand({ Bucket: cluster.bucket, Key: key, Body: body(n) }))
      before.push([key, n])
    }
    await readEverywhere(before, all)

    // Node 6 (zone z1) leaves: z1 keeps 2 nodes, which now hold 128 copies each.
    const leaving = 6
    cluster.retire(leaving)
    const version = await applyLayout(cluster.node(0), { remove: [cluster.node(leaving).id] }, cluster.nodes)
    const layout = await readCurrentLayout(cluster.node(0))
    assert.equal(layout.version, version)
    for (let p = 0; p < 256; p++) {
      assert.ok(!nodesOfPartition(layout, p).includes(cluster.node(leaving).id), `partition ${p} left node ${leaving}`)
    }
    const staying = all.filter((i) => i !== leaving)
    await readEverywhere(before, staying)
    const after: Array<[string, number]> = []
    for (const n of staying) {
      const i = 100 + n
      const key = `seven/after-${i}`
      await cluster.client(n).send(new PutObjectCommand({ Bucket: cluster.bucket, Key: key, Body: body(i) }))
      after.push([key, i])
    }
    await readEverywhere(after, staying)
  })
})
