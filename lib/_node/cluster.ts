/**
 * Start stage 2: join the cluster. With `rpc_secret`: the RPC transport (rpc_bind_addr), membership
 * (discovery, pings, status exchange) and the gossiped layout decide where table entries live.
 * Without it the node runs alone: a local layout, every table stored here.
 */
import type { ClusterContext } from '../model/garage.ts'
import { createNetApp, type NetApp } from '../net/netapp.ts'
import type { NodeKey } from '../net/node-key.ts'
import { LayoutHelper } from '../rpc/layout/helper.ts'
import { LayoutManager } from '../rpc/layout/manager.ts'
import { System } from '../rpc/system.ts'
import { FullCopyReplication, LocalReplication, ShardedReplication, type TableReplication } from '../table/replication.ts'
import type { ResolvedConfig } from '../util/config.ts'
import type { Logger } from '../util/logger.ts'
import { stage, type Teardown } from './teardown.ts'
import { type NodeTiming, systemTimingOf } from './timing.ts'

export interface ClusterMembership {
  /** The RPC transport; undefined for a standalone node. */
  netApp: NetApp | undefined
  /** Membership; undefined for a standalone node. */
  system: System | undefined
  /** The cluster layout (metadata_dir/cluster_layout), gossiped in a cluster. */
  layoutManager: LayoutManager
  /** Replication of sharded tables (object, version, block_ref, multipart upload). */
  sharded: TableReplication
  /** Replication of tables stored on every node (bucket, alias, key, admin token). */
  fullCopy: TableReplication
  /** What the model needs of the cluster; undefined for a standalone node. */
  context: ClusterContext | undefined
  /** Closes the transport and membership, flushes the layout. */
  teardown: Teardown
}

export interface JoinClusterOptions {
  config: ResolvedConfig
  nodeKey: NodeKey
  timing: Readonly<NodeTiming>
  log: Logger
  /** Aborted when the node stops: membership and the layout manager listen to it. */
  signal: AbortSignal
}

/** Starts the RPC transport and membership (when `rpc_secret` is set) and the layout manager. */
export function joinCluster(o: JoinClusterOptions): Promise<ClusterMembership> {
  const { config: c, nodeKey, log, signal } = o
  return stage(async (defer) => {
    let netApp: NetApp | undefined
    let system: System | undefined
    let layoutDigest = (): string => ''
    if (c.rpcSecret !== undefined) {
      const net = createNetApp({
        nodeKey,
        rpcSecret: c.rpcSecret,
        bindAddr: c.rpcBindAddr,
        ...(c.rpcPublicAddr === undefined ? {} : { publicAddr: c.rpcPublicAddr }),
        ...(c.rpcTimeoutMsec === undefined ? {} : { timeoutMs: c.rpcTimeoutMsec }),
        ...(c.rpcPingTimeoutMsec === undefined ? {} : { pingTimeoutMs: c.rpcPingTimeoutMsec }),
        logger: log.withTag('rpc'),
      })
      netApp = net
      defer(() => net.close())
      const bound = await net.listen()
      log.info(`RPC listening on ${bound.host.includes(':') ? `[${bound.host}]` : bound.host}:${bound.port}`)
      const sys = new System({
        netApp: net,
        nodeKey,
        metadataDir: c.metadataDir,
        dataDir: c.dataDir,
        bootstrapPeers: c.bootstrapPeers,
        ...(c.rpcPublicAddr === undefined ? {} : { publicAddr: c.rpcPublicAddr }),
        replicationFactor: c.replicationFactor,
        log: log.withTag('system'),
        signal,
        statusExtra: () => ({ layoutDigest: layoutDigest() }),
        timing: systemTimingOf(o.timing),
      })
      system = sys
      defer(() => sys.close())
    }
    // Gossiped through NetApp and System in a cluster; a standalone node manages it locally.
    const layoutManager = new LayoutManager({
      ...(netApp === undefined || system === undefined ? {} : { netApp, system }),
      metadataDir: c.metadataDir,
      replicationFactor: c.replicationFactor,
      nodeId: nodeKey.id,
      log: log.withTag('layout'),
      signal,
      // In a cluster this node's sync tracker moves when every table finished an anti-entropy
      // pass of the new version (TableSyncer); a standalone node has nothing to move.
      syncImmediately: netApp === undefined,
    })
    await layoutManager.start()
    defer(() => layoutManager.flush())
    layoutDigest = () => layoutManager.digest()
    // Membership starts once the layout manager listens to it (peer-up and status events).
    await system?.start()
    return { netApp, system, layoutManager, ...placement(o, netApp, system, layoutManager) }
  })
}

/** Where table entries live: on this node alone without rpc_secret, else by the layout. */
function placement(
  o: JoinClusterOptions,
  netApp: NetApp | undefined,
  system: System | undefined,
  layoutManager: LayoutManager,
): { sharded: TableReplication; fullCopy: TableReplication; context: ClusterContext | undefined } {
  const { config: c, nodeKey, log } = o
  if (netApp === undefined || system === undefined) {
    const local = new LocalReplication(nodeKey.id)
    return { sharded: local, fullCopy: local, context: undefined }
  }
  const layout = new LayoutHelper({
    source: layoutManager,
    self: nodeKey.id,
    consistencyMode: c.consistencyMode,
    replicationFactor: c.replicationFactor,
    pingOf: (id) => netApp.peer(id)?.avgPingMs,
    pingStateOf: (id) => netApp.peer(id),
    isUp: (id) => system.upPeers().includes(id),
    log: log.withTag('layout'),
  })
  return {
    sharded: new ShardedReplication(layout, o.timing.shardedTableSyncIntervalMsec),
    fullCopy: new FullCopyReplication(layout, o.timing.fullCopyTableSyncIntervalMsec),
    context: {
      netApp,
      layout,
      upPeers: () => system.upPeers(),
      onPeerUp: (cb) => system.onPeerUp(cb),
      signal: o.signal,
    },
  }
}
