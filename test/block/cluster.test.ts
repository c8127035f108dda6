import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { test } from 'node:test'
import { applyStagedChanges, stageRole } from '../../lib/rpc/layout/history.ts'
import { blake2sum, type Hash, toHex } from '../../lib/util/data.ts'
import { QuorumError } from '../../lib/util/errors.ts'
import { eventually } from '../helpers/eventually.ts'
import { type BlockNode, type BlockTestCluster, startBlockCluster } from './block-cluster.ts'

/** A random block whose storage nodes satisfy `pred`. */
function blockWhere(c: BlockTestCluster, pred: (storage: BlockNode[]) => boolean): { data: Buffer; hash: Hash } {
  for (;;) {
    const data = randomBytes(2000 + Math.floor(Math.random() * 1000))
    const hash = blake2sum(data)
    if (pred(c.storageOf(hash))) return { data, hash }
  }
}

async function holders(c: BlockTestCluster, hash: Hash): Promise<string[]> {
  const out: string[] = []
  for (const n of c.nodes) if (await n.bm.hasBlock(hash)) out.push(n.id)
  return out.sort()
}

const ids = (ns: BlockNode[]): string[] => ns.map((n) => n.id).sort()

test('a block put through a node that does not store it lands on the replication-factor nodes', async (t) => {
  const c = await startBlockCluster(t, { nodes: 4, rf: 3 })
  const outsider = c.nodes[0] as BlockNode
  const { data, hash } = blockWhere(c, (s) => !s.includes(outsider))
  await outsider.bm.putBlock(hash, data)
  const want = ids(c.storageOf(hash))
  assert.equal(want.length, 3, 'three storage nodes')
  await eventually('the third copy', async () => (await holders(c, hash)).length === 3)
  assert.deepEqual(await holders(c, hash), want, 'exactly the storage nodes hold the block')
  // Read back through the node without a copy: fetched from a holder, not stored.
  assert.deepEqual(await outsider.bm.getBlock(hash), data, 'read through a node without a copy')
  assert.equal(await outsider.bm.hasBlock(hash), false, 'a read does not store the block')
})

test('a put succeeds at quorum with a replica down; resync completes it once the replica is back', async (t) => {
  const c = await startBlockCluster(t, { nodes: 3, rf: 3 })
  const [a, b, down] = c.nodes as [BlockNode, BlockNode, BlockNode]
  await down.stop()
  const { data, hash } = blockWhere(c, () => true)
  a.incref(hash)
  b.incref(hash)
  await a.bm.putBlock(hash, data)
  assert.deepEqual(await holders(c, hash), ids([a, b]), 'written to the two live replicas')
  await down.start()
  assert.equal(await down.bm.hasBlock(hash), false, 'the restarted replica lacks the block')
  // Its block_ref row arrives (anti-entropy): the new reference schedules a check that fetches it.
  down.incref(hash)
  await eventually('resync of the missed block', () => down.bm.hasBlock(hash))
  assert.deepEqual(await readFile(down.bm.blockPath(hash)), data, 'the fetched copy is the block')
})

test('with two of three replicas down a put fails with a quorum error', async (t) => {
  const c = await startBlockCluster(t, { nodes: 3, rf: 3, manager: { rpcTimeoutMs: 1000 } })
  const [a, b, d] = c.nodes as [BlockNode, BlockNode, BlockNode]
  await b.stop()
  await d.stop()
  const { data, hash } = blockWhere(c, () => true)
  const t0 = Date.now()
  await assert.rejects(a.bm.putBlock(hash, data), QuorumError)
  assert.ok(Date.now() - t0 < 3000, 'the failure comes within the timeout')
  // The local copy is still written, in the background (as the other copies of a put that
  // reached its quorum): waited for, so the test's clean-up does not race its file.
  await eventually('the local copy', () => a.bm.hasBlock(hash))
})

test('a corrupt copy found by scrub is moved aside and restored from a replica', async (t) => {
  const c = await startBlockCluster(t, { nodes: 3, rf: 3 })
  const [a, b] = c.nodes as [BlockNode, BlockNode]
  const { data, hash } = blockWhere(c, () => true)
  for (const n of c.nodes) n.incref(hash)
  await a.bm.putBlock(hash, data)
  await eventually('three copies', async () => (await holders(c, hash)).length === 3)
  const path = b.bm.blockPath(hash)
  await writeFile(path, 'bit rot')
  b.bm.scrubCommand('start')
  await eventually('the scrub to find the corruption', () => b.bm.scrubStatus()?.corruptionsDetected === 1)
  await stat(`${path}.corrupted`)
  await eventually('restore', async () => (await b.bm.hasBlock(hash)) && (await readFile(path)).equals(data))
  await eventually('the end of the scrub', () => b.bm.scrubStatus()?.state === 'finished')
})

test('a read that finds a corrupt local copy falls back to a replica and queues a repair', async (t) => {
  const c = await startBlockCluster(t, { nodes: 3, rf: 3 })
  const [a, b] = c.nodes as [BlockNode, BlockNode]
  const { data, hash } = blockWhere(c, () => true)
  for (const n of c.nodes) n.incref(hash)
  await a.bm.putBlock(hash, data)
  await eventually('three copies', async () => (await holders(c, hash)).length === 3)
  await writeFile(b.bm.blockPath(hash), 'bit rot')
  assert.deepEqual(await b.bm.getBlock(hash), data, 'served from a replica')
  await eventually('repair', async () => (await b.bm.hasBlock(hash)) && (await readFile(b.bm.blockPath(hash))).equals(data))
})

test('a node whose data directory was wiped gets its blocks back at restart', async (t) => {
  const c = await startBlockCluster(t, { nodes: 3, rf: 3 })
  const [a, , w] = c.nodes as [BlockNode, BlockNode, BlockNode]
  const blocks = Array.from({ length: 5 }, () => blockWhere(c, () => true))
  for (const { data, hash } of blocks) {
    for (const n of c.nodes) n.incref(hash)
    await a.bm.putBlock(hash, data)
  }
  await eventually('copies', async () => (await Promise.all(blocks.map((b) => w.bm.hasBlock(b.hash)))).every(Boolean))
  await w.stop()
  await rm(w.dataDir, { recursive: true, force: true })
  await w.start()
  await eventually(
    'every block fetched back',
    async () => (await Promise.all(blocks.map((b) => w.bm.hasBlock(b.hash)))).every(Boolean),
    { timeoutMs: 8000 },
  )
  await stat(`${w.dataDir}/garage-marker`)
})

test('a node that leaves the partitions of its blocks offloads them to the new holders, then deletes them', async (t) => {
  const c = await startBlockCluster(t, { nodes: 4, rf: 3 })
  const leaving = c.nodes[3] as BlockNode
  const blocks = Array.from({ length: 4 }, () => blockWhere(c, (s) => s.includes(leaving)))
  for (const { data, hash } of blocks) {
    for (const n of c.nodes) n.incref(hash)
    await leaving.bm.putBlock(hash, data)
  }
  for (const b of blocks) await eventually('three copies', async () => (await holders(c, b.hash)).length === 3)
  const h1 = c.shared.history()
  const h2 = applyStagedChanges(stageRole(h1, leaving.id, null), 2).history
  c.shared.set(h2)
  for (const b of blocks) {
    const want = ids(c.storageOf(b.hash))
    assert.ok(!want.includes(leaving.id), 'the leaving node no longer stores the block')
    await eventually(`block ${toHex(b.hash)} moved`, async () => (await holders(c, b.hash)).join() === want.join(), {
      timeoutMs: 8000,
    })
  }
})

test('failed resyncs back off exponentially, are listed, and can be retried now', async (t) => {
  const c = await startBlockCluster(t, { nodes: 3, rf: 3, manager: { resyncRetryDelayMsec: 1000 } })
  const [a, b] = c.nodes as [BlockNode, BlockNode]
  const { data, hash } = blockWhere(c, () => true)
  // `a` references a block nobody has: each try fails.
  a.incref(hash)
  await eventually('two failures', () => (a.bm.listErrors()[0]?.errors ?? 0) >= 2)
  const [e] = a.bm.listErrors()
  assert.ok(e !== undefined, 'the block is listed')
  assert.equal(toHex(e.hash), toHex(hash))
  assert.equal(e.refcount, 1)
  assert.equal(e.nextTry - e.lastTry, 1000 * 2 ** (e.errors - 1), 'the delay doubles per failure')
  const info = await a.bm.blockInfo(hash)
  assert.equal(info.refcount, 1)
  assert.deepEqual(info.paths, [])
  assert.equal(info.error?.errors, e.errors, 'blockInfo shows the error state')
  // Now a replica has it (a file on b only); a retry-now fetches it before the backoff ends.
  await mkdir(dirname(b.bm.blockPath(hash)), { recursive: true })
  await writeFile(b.bm.blockPath(hash), data)
  assert.equal(a.bm.retryNow('all'), 1, 'one errored block queued')
  await eventually('retry fetched the block', () => a.bm.hasBlock(hash), { timeoutMs: 900 })
  assert.equal(a.bm.listErrors().length, 0, 'the error is cleared after a success')
  assert.throws(() => a.bm.retryNow([hash]), /not in an error state/)
})
