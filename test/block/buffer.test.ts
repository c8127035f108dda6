import assert from 'node:assert/strict'
import { setMaxListeners } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { BlockManager } from '../../lib/block/manager.ts'
import { BLOCK_PUT_ENDPOINT } from '../../lib/block/rpc.ts'
import { openLmdb } from '../../lib/db/lmdb.ts'
import { LayoutHelper } from '../../lib/rpc/layout/helper.ts'
import { applyStagedChanges, newLayoutHistory, stageRole } from '../../lib/rpc/layout/history.ts'
import { blake2sum } from '../../lib/util/data.ts'
import { silentLogger } from '../../lib/util/logger.ts'
import { newSecret, startNode } from '../net/net-fixtures.ts'
import { SharedLayout } from './block-cluster.ts'

test('bytes held for a slow replica are bounded by block_ram_buffer_max', async (t) => {
  const secret = newSecret()
  const nodes = await Promise.all([0, 1, 2].map(() => startNode(t, secret)))
  const [a, b, slow] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]]
  for (const x of nodes) for (const y of nodes) if (x !== y) await x.net.connect(y.key.id, y.addr)
  // The slow replica accepts block/put but answers only when the test lets it.
  let letGo: () => void = () => {}
  const gate = new Promise<void>((r) => {
    letGo = r
  })
  let received = 0
  slow.net.handle(BLOCK_PUT_ENDPOINT, async (_req, _from, ctx) => {
    for await (const _ of ctx.stream ?? []) received++
    await gate
    return null
  })
  t.after(() => letGo())
  let h = newLayoutHistory(3)
  nodes.forEach((n, i) => {
    h = stageRole(h, n.key.id, { zone: `z${i}`, capacity: 1e9, tags: [] })
  })
  const shared = new SharedLayout(applyStagedChanges(h, 1).history)
  const stop = new AbortController()
  setMaxListeners(0, stop.signal)
  t.after(() => stop.abort())
  const managers = await Promise.all(
    [a, b].map(async (n) => {
      const dir = await mkdtemp(join(tmpdir(), 'garage-block-buffer-'))
      const db = await openLmdb(join(dir, 'meta'), { fsync: false })
      t.after(async () => {
        await db.close()
        await rm(dir, { recursive: true, force: true })
      })
      const layout = new LayoutHelper({
        source: shared,
        self: n.key.id,
        consistencyMode: 'consistent',
        replicationFactor: 3,
        log: silentLogger,
      })
      return new BlockManager({
        db,
        dataDir: join(dir, 'data'),
        fsync: false,
        gcDelayMsec: 1000,
        log: silentLogger,
        cluster: { netApp: n.net, layout, signal: stop.signal },
        ramBufferMax: 3000,
      })
    }),
  )
  const bm = managers[0] as BlockManager
  const one = Buffer.alloc(2000, 1)
  const two = Buffer.alloc(2000, 2)
  await bm.putBlock(blake2sum(one), one) // quorum (a, b) reached; 2000 bytes held for `slow`
  let secondDone = false
  const second = bm.putBlock(blake2sum(two), two).then(() => {
    secondDone = true
  })
  await new Promise((r) => setTimeout(r, 400))
  assert.equal(secondDone, false, 'the second put waits for room in the buffer')
  assert.ok(received > 0, 'the slow replica got the first block')
  letGo()
  await second
  assert.equal(secondDone, true, 'the second put proceeds once the slow copy is done')
})
