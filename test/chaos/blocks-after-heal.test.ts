/**
 * The chaos suite's open item, reproduced on its own: a node that misses writes while cut off
 * (zone cut, black hole both ways), then is SIGKILLed while a peer is frozen, must hold every
 * live block again within a bounded time after it restarts and the links heal — without any
 * operator action (`garage block retry-now`, `garage repair blocks`).
 *
 * Every link goes through the chaos suite's proxies (test/helpers/links.ts), with the suite's
 * timings (rpc_timeout_msec 5 s, 64 KiB blocks, GC delay 2 s).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'
import { PutObjectCommand } from '@aws-sdk/client-s3'
import { blockFilesOf, type ReplicatedCluster, readTree, startReplicatedCluster } from '../helpers/cluster.ts'
import { eventually } from '../helpers/eventually.ts'
import { type LinkMesh, startLinkMesh } from '../helpers/links.ts'
import { putBlockHashes } from '../helpers/workload.ts'
import { diffReplicaTables } from './replicas.ts'

const BLOCK = 64 * 1024
/**
 * How long the restarted node may take to fetch what it lacks: 18-52 s measured at load 10-33
 * before partitions were synced 8 at a time and fetches stopped pausing (the bound was 120 s);
 * 10.6-29.0 s after (load 22-42), tables equal at 7.9-24.1 s (docs/design/chaos.md).
 */
const BLOCKS_WITHIN_MS = 60_000

describe('blocks on a node cut off, then killed while a peer is frozen', { timeout: 300_000 }, () => {
  let mesh: LinkMesh
  let cluster: ReplicatedCluster
  before(async () => {
    mesh = await startLinkMesh(3)
    cluster = await startReplicatedCluster({
      nodes: 3,
      configLines: ['rpc_timeout_msec = 5000', `block_size = ${BLOCK}`, 'block_gc_delay_msec = 2000'],
      env: { GARAGE_LOG_LEVEL: process.env.CHAOS_NODE_LOG_LEVEL ?? 'info' },
      nodeOptions: (i) => mesh.nodeOptions(i),
    })
    mesh.setRtt(40, 20)
  })
  after(async () => {
    await cluster?.stop()
    await mesh?.close()
  })

  test('every live block is on every node within a bounded time after the heal', async (t) => {
    const live = new Map<string, string[]>() // key → block hashes of its current value
    let puts = 0
    const put = async (i: number, key: string): Promise<void> => {
      const body = randomBytes(70_000 + Math.floor(Math.random() * 120_000))
      // A 503 (a peer just frozen or killed, not yet known down) is retried, as a client does.
      for (let attempt = 1; ; attempt++) {
        try {
          await cluster.client(i).send(new PutObjectCommand({ Bucket: cluster.bucket, Key: key, Body: body }))
          break
        } catch (err) {
          if (attempt >= 5 || (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 503) throw err
          await sleep(1_000)
        }
      }
      live.set(key, putBlockHashes(body, BLOCK))
      puts++
    }
    const keys = Array.from({ length: 8 }, (_, k) => `heal/k${k}`)
    for (const k of keys) await put(0, k)

    // Node 2 cut off: writes and overwrites through nodes 0 and 1 reach only them.
    mesh.isolate([2])
    for (const [n, k] of keys.entries()) await put(n % 2, k)
    for (const k of keys.slice(0, 4)) await put(1, k)
    mesh.heal()
    // Right after the heal, node 1 freezes: node 2's fetches that ask it first must go elsewhere
    // or be retried; then node 2 is killed with whatever its resync queue holds.
    await sleep(1_500)
    cluster.freeze(1)
    for (const k of keys.slice(4)) await put(0, k)
    await sleep(4_000)
    cluster.thaw(1)
    await sleep(500)
    await cluster.kill(2)
    for (const k of keys.slice(0, 3)) await put(0, k)
    await sleep(2_000)
    await cluster.restart(2, { waitMesh: false })
    const restartedAt = Date.now()
    t.diagnostic(`${puts} PUTs, ${[...live.values()].flat().length} live blocks`)

    const want = new Set([...live.values()].flat())
    assert.ok(want.size >= 8, `the objects are stored as blocks (${want.size})`)
    let lastMissing: string[][] = []
    let tablesMs = -1
    try {
      await eventually(
        'every live block on every node',
        async () => {
          // Reported: the tables' convergence, which the fetches wait for (a block is fetched
          // once its block_ref row has arrived).
          if (tablesMs < 0 && (await diffReplicaTables(cluster, [0, 1, 2])) === '') {
            tablesMs = Date.now() - restartedAt
            t.diagnostic(`tables byte-equal on every node ${tablesMs} ms after the restart`)
          }
          const sets = await Promise.all([0, 1, 2].map(async (i) => (await blockFilesOf(cluster.node(i))).blocks))
          lastMissing = sets.map((s) => [...want].filter((h) => !s.has(h)))
          return lastMissing.every((m) => m.length === 0)
        },
        { timeoutMs: BLOCKS_WITHIN_MS, intervalMs: 500 },
      )
      t.diagnostic(`every live block on every node ${Date.now() - restartedAt} ms after the restart`)
    } catch (err) {
      // What the node lacking blocks knows of them: count, queue entries, error counters.
      for (const [i, miss] of lastMissing.entries()) {
        if (miss.length === 0) continue
        const rc = await readTree(cluster.node(i), 'block_local_rc')
        const queue = await readTree(cluster.node(i), 'block_local_resync_queue')
        const errors = await readTree(cluster.node(i), 'block_resync_errors')
        for (const h of miss) {
          const queued = [...queue.keys()]
            .filter((k) => k.endsWith(h))
            .map((k) => Number.parseInt(k.slice(0, 16), 16) - Date.now())
          t.diagnostic(
            `node ${i} lacks ${h.slice(0, 12)}: rc ${rc.get(h)?.toString('hex') ?? 'none'}, queued in ${JSON.stringify(queued)} ms, error ${errors.get(h)?.toString('hex') ?? 'none'}`,
          )
        }
        t.diagnostic(`node ${i}: ${queue.size} queued, ${errors.size} errored`)
        const dir = process.env.CHAOS_LOG_DIR
        if (dir !== undefined && dir !== '')
          writeFileSync(join(dir, `blocks-after-heal-node-${i}.log`), cluster.node(i).proc.output())
      }
      throw err
    }
  })
})
