/**
 * Block managers over real NetApp nodes on loopback, each with its own lmdb and data directory,
 * and a layout history shared through a LayoutSource stub (so tests can apply a new version).
 * Nodes can be stopped and started again (same key, db and data directory).
 */
import { setMaxListeners } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { BlockManager, type BlockManagerOptions } from '../../lib/block/manager.ts'
import type { Db } from '../../lib/db/db.ts'
import { openLmdb } from '../../lib/db/lmdb.ts'
import { createNetApp, type NetApp } from '../../lib/net/netapp.ts'
import type { NodeKey } from '../../lib/net/node-key.ts'
import { LayoutHelper } from '../../lib/rpc/layout/helper.ts'
import { applyStagedChanges, newLayoutHistory, stageRole } from '../../lib/rpc/layout/history.ts'
import { BackgroundRunner } from '../../lib/util/background/worker.ts'
import type { Hash } from '../../lib/util/data.ts'
import { silentLogger } from '../../lib/util/logger.ts'
import { TestLayoutSource } from '../helpers/layout-source.ts'
import { memoryNodeKey, newSecret } from '../net/net-fixtures.ts'

/** A layout history the test can change; every node's LayoutHelper follows it. */
export { TestLayoutSource as SharedLayout }

export interface BlockNode {
  readonly id: string
  readonly dir: string
  readonly dataDir: string
  bm: BlockManager
  db: Db
  net: NetApp
  layout: LayoutHelper
  running: boolean
  stop(): Promise<void>
  start(): Promise<void>
  /** References `hash` once on this node (as block_ref's hook does). */
  incref(hash: Hash): void
}

export interface BlockClusterOptions {
  nodes: number
  rf: number
  manager?: Partial<BlockManagerOptions>
}

export interface BlockTestCluster {
  nodes: BlockNode[]
  shared: TestLayoutSource
  /** The nodes storing `hash` in the current layout. */
  storageOf(hash: Hash): BlockNode[]
  byId(id: string): BlockNode
}

/** Starts `nodes` block managers in distinct zones with replication factor `rf`. */
export async function startBlockCluster(t: TestContext, o: BlockClusterOptions): Promise<BlockTestCluster> {
  const secret = newSecret()
  const keys: NodeKey[] = Array.from({ length: o.nodes }, () => memoryNodeKey())
  let h = newLayoutHistory(o.rf)
  keys.forEach((k, i) => {
    h = stageRole(h, k.id, { zone: `z${i}`, capacity: 1e9, tags: [] })
  })
  h = applyStagedChanges(h, 1).history
  const shared = new TestLayoutSource(h)
  const addrs = new Map<string, { host: string; port: number }>()
  const nodes: BlockNode[] = []

  const makeNode = async (key: NodeKey): Promise<BlockNode> => {
    const dir = await mkdtemp(join(tmpdir(), 'garage-blocks-'))
    const dataDir = join(dir, 'data')
    let stopCtl = new AbortController()
    let runner: BackgroundRunner
    const node: BlockNode = {
      id: key.id,
      dir,
      dataDir,
      bm: undefined as unknown as BlockManager,
      db: undefined as unknown as Db,
      net: undefined as unknown as NetApp,
      layout: undefined as unknown as LayoutHelper,
      running: false,
      async start() {
        stopCtl = new AbortController()
        setMaxListeners(0, stopCtl.signal) // one listener per waiting worker
        node.db = await openLmdb(join(dir, 'meta'), { fsync: false })
        node.net = createNetApp({ nodeKey: key, rpcSecret: secret, bindAddr: { host: '127.0.0.1', port: 0 }, timeoutMs: 2000 })
        addrs.set(key.id, await node.net.listen())
        node.layout = new LayoutHelper({
          source: shared,
          self: key.id,
          consistencyMode: 'consistent',
          replicationFactor: o.rf,
          log: silentLogger,
        })
        node.bm = new BlockManager({
          db: node.db,
          dataDir,
          fsync: false,
          gcDelayMsec: 200,
          log: silentLogger,
          cluster: { netApp: node.net, layout: node.layout, signal: stopCtl.signal },
          rpcTimeoutMs: 2000,
          resyncDelayMsec: 300,
          resyncRetryDelayMsec: 200,
          ...o.manager,
        })
        runner = new BackgroundRunner(silentLogger, stopCtl.signal)
        for (const w of node.bm.workers()) runner.spawn(w)
        node.running = true
        await connectAll()
      },
      async stop() {
        if (!node.running) return
        node.running = false
        stopCtl.abort()
        await runner.join()
        await node.net.close()
        await node.db.close()
      },
      incref(hash) {
        node.db.transaction((tx) => node.bm.incref(tx, hash))
      },
    }
    t.after(async () => {
      await node.stop()
      await rm(dir, { recursive: true, force: true })
    })
    return node
  }

  const connectAll = async (): Promise<void> => {
    const up = nodes.filter((n) => n.running)
    await Promise.all(
      up.flatMap((a) =>
        up.filter((b) => b !== a).map((b) => a.net.connect(b.id, addrs.get(b.id) as { host: string; port: number })),
      ),
    )
  }

  for (const k of keys) nodes.push(await makeNode(k))
  for (const n of nodes) await n.start()
  const byId = (id: string): BlockNode => nodes.find((n) => n.id === id) as BlockNode
  return {
    nodes,
    shared,
    byId,
    storageOf: (hash) => (nodes[0] as BlockNode).layout.currentStorageNodesOf(hash).map(byId),
  }
}
