/**
 * A 7-node cluster in 3 zones (3 + 2 + 2 nodes, RF 3), real processes:
 * - the layout applied through the admin API reaches every node and puts every partition in the
 *   3 zones on 3 distinct nodes, using every node;
 * - one object (several blocks) written through each node is read back through every node;
 * - a node removed by a layout change (staged and applied through the admin API): everything is
 *   read again through the 6 others, the layout settles (one live version everywhere), and the
 *   tables and blocks converge on the new replica sets: each sharded table entry and each block
 *   is on exactly the 3 nodes the new layout names for its partition, with the same bytes on each,
 *   and the removed node keeps none.
 * Each phase's duration is reported as a diagnostic (docs/design/scale.md has the figures).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { lwwMapGet } from '../../../lib/util/crdt/crdt.ts'
import { nodesOfPartition, partitionOf } from '../../../lib/rpc/layout/version.ts'
import {
  activeLayoutVersions,
  applyLayout,
  blockFilesOf,
  type ReplicatedCluster,
  readCurrentLayout,
  readTableContents,
  startReplicatedCluster,
  storageNodesOfBlock,
} from '../../helpers/cluster.ts'
import { eventually } from '../../helpers/eventually.ts'
import { randomBuffer } from '../../helpers/s3.ts'

const ZONES = ['z1', 'z2', 'z3', 'z1', 'z2', 'z3', 'z1']
const BLOCK = 16 * 1024
/** Node 6 (zone z1, which keeps 2 nodes) leaves. */
const REMOVED = 6
const SHARDED = ['object', 'version', 'block_ref'] as const
/** Waits on background work: generous, since the suite may run on a loaded machine. */
const SETTLE = { timeoutMs: 300_000, intervalMs: 1_000 }

describe('7 nodes in 3 zones (RF 3)', { timeout: 1_200_000 }, () => {
  let cluster: ReplicatedCluster
  const startSteps: string[] = []
  /** A failed start, reported by the tests (node:test drops a describe-level hook's error). */
  let startError: unknown
  before(async () => {
    try {
      cluster = await startReplicatedCluster({
        nodes: 7,
        zones: ZONES,
        configLines: [`block_size = ${BLOCK}`, 'block_gc_delay_msec = 1000'],
        // Conditions, not speeds: seven processes starting at once on a loaded 2-core machine
        // have taken minutes for each step.
        nodeOptions: () => ({ startTimeoutMs: 300_000 }),
        startStepTimeoutMs: 300_000,
        requestTimeoutMs: 300_000,
        onStartStep: (step, ms) => startSteps.push(`${step}: ${ms} ms`),
      })
    } catch (err) {
      startError = err
    }
  })
  after(async () => {
    await cluster?.stop()
  })

  test('the layout spreads every partition over the 3 zones and uses every node', async (t) => {
    for (const line of startSteps) t.diagnostic(line)
    if (startError !== undefined) throw startError
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

  // Regression test of the block offload too: the resync queue's one-entry-per-block rule once
  // folded the "delete when deletable" entry into an earlier one, and the removed node kept its
  // blocks forever (lib/block/resync-control.ts).
  test('objects written through each node are read through every node, before and after a node leaves', async (t) => {
    if (startError !== undefined) throw startError
    const phase = (() => {
      let last = Date.now()
      return (what: string): void => {
        const now = Date.now()
        t.diagnostic(`${what}: ${now - last} ms`)
        last = now
      }
    })()
    // 3.5 blocks each, so that every object has blocks on several partitions.
    const bodies = cluster.nodes.map(() => randomBuffer(3 * BLOCK + BLOCK / 2))
    const keyOf = (i: number): string => `through-node-${i}`
    await Promise.all(
      bodies.map((body, i) =>
        cluster.client(i).send(new PutObjectCommand({ Bucket: cluster.bucket, Key: keyOf(i), Body: body })),
      ),
    )
    phase('7 PUTs, one through each node')
    const readAll = async (through: number[]): Promise<void> => {
      for (const r of through) {
        await Promise.all(
          bodies.map(async (body, w) => {
            const res = await cluster.client(r).send(new GetObjectCommand({ Bucket: cluster.bucket, Key: keyOf(w) }))
            const got = Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray())
            assert.ok(got.equals(body), `object written through node ${w}, read through node ${r}`)
          }),
        )
      }
    }
    await readAll(cluster.clientIndexes())
    phase('49 GETs, each object through every node')

    // Node 6 leaves: clients stop using it, the removal is staged and applied through node 0's
    // admin API, and every node (the leaving one too) gets the new version.
    const removedId = cluster.node(REMOVED).id
    cluster.retire(REMOVED)
    const version = await applyLayout(cluster.node(0), { remove: [removedId] }, cluster.nodes, SETTLE.timeoutMs)
    phase(`node ${REMOVED} removed: layout v${version} on every node`)
    const others = cluster.clientIndexes()
    assert.equal(others.length, 6)
    await readAll(others)
    phase('42 GETs through the 6 others')

    // The layout settles: the old version retires once every node has synced its tables.
    for (const [i, n] of cluster.nodes.entries()) {
      await eventually(
        `node ${i} to keep only layout version ${version}`,
        async () => {
          const live = await activeLayoutVersions(n)
          return live.length === 1 && live[0] === version
        },
        SETTLE,
      )
    }
    phase('old layout version retired on every node')

    const layout = await readCurrentLayout(cluster.node(0))
    assert.equal(layout.version, version)
    for (let p = 0; p < 256; p++)
      assert.ok(!nodesOfPartition(layout, p).includes(removedId), `partition ${p} left node ${REMOVED}`)
    const nodeIndex = (id: string): number => cluster.nodes.findIndex((n) => n.id === id)

    // Tables: each sharded entry on exactly the nodes of its partition, the same bytes on each.
    let tableProblems: string[] = []
    let entries = 0
    await eventually(
      'every sharded table entry on exactly the nodes of the new layout',
      async () => {
        const contents = await Promise.all(cluster.nodes.map((n) => readTableContents(n)))
        tableProblems = []
        entries = 0
        for (const table of SHARDED) {
          const keys = new Set(contents.flatMap((c) => [...(c.get(table) ?? new Map<string, string>()).keys()]))
          for (const k of keys) {
            entries++
            const named = nodesOfPartition(layout, partitionOf(Buffer.from(k.slice(0, 64), 'hex'))).map(nodeIndex)
            const holders = contents.flatMap((c, i) => (c.get(table)?.has(k) ? [i] : []))
            const values = new Set(named.map((i) => contents[i]?.get(table)?.get(k)))
            const exact = holders.length === named.length && named.every((i) => holders.includes(i))
            if (!exact || values.size !== 1)
              tableProblems.push(`${table} ${k.slice(0, 16)}…: on [${holders}], layout names [${named}], ${values.size} values`)
          }
        }
        return tableProblems.length === 0
      },
      SETTLE,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}:\n${tableProblems.slice(0, 10).join('\n')}`, { cause: err })
    })
    // 7 objects, 7 versions, 7 × 4 block references.
    assert.equal(entries, 7 + 7 + 28, 'every table entry was seen')
    phase('sharded tables converged on the new replica sets')

    // Blocks: on exactly the nodes of their partition; the removed node keeps none.
    let blockProblems: string[] = []
    let blockCount = 0
    await eventually(
      'every block on exactly the nodes of the new layout',
      async () => {
        const files = await Promise.all(cluster.nodes.map(async (n) => (await blockFilesOf(n)).blocks))
        const all = new Set(files.flatMap((f) => [...f]))
        blockCount = all.size
        blockProblems = []
        for (const h of all) {
          const named = storageNodesOfBlock(layout, h).map(nodeIndex)
          const holders = files.flatMap((f, i) => (f.has(h) ? [i] : []))
          if (holders.length !== named.length || !named.every((i) => holders.includes(i)))
            blockProblems.push(`block ${h.slice(0, 12)} on [${holders}], layout names [${named}]`)
        }
        return blockProblems.length === 0
      },
      SETTLE,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}:\n${blockProblems.slice(0, 10).join('\n')}`, { cause: err })
    })
    assert.equal(blockCount, 28, '7 objects of 4 blocks each')
    assert.equal((await blockFilesOf(cluster.node(REMOVED))).blocks.size, 0, 'the removed node holds no block')
    phase('blocks moved off the removed node, every block on its 3 nodes')
  })
})
