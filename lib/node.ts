/**
 * `createGarageNode()`: the composition root (port of garage::server and garage_model::garage).
 * The only module that wires layers together. Building the node does no I/O; `start()` opens
 * storage, spawns the background workers and starts the API servers the configuration enables;
 * `stop()` undoes it all in reverse order.
 */
import { setMaxListeners } from 'node:events'
import { AdminApiServer } from './api/admin/api-server.ts'
import type { AdminClusterView, AdminNodeView } from './api/admin/context.ts'
import { LOCAL_ADMIN_ENDPOINTS } from './api/admin/node-endpoints.ts'
import { callAdminLocal, registerAdminRpc } from './api/admin/node-rpc.ts'
import { openBlockPaths } from './block/layout.ts'
import { clusterHealth } from './api/admin/cluster.ts'
import { NodeMetrics } from './api/common/metrics.ts'
import { S3ApiServer } from './api/s3/api-server.ts'
import { WebServer } from './web/web-server.ts'
import { type ApiServer, startApiServer } from './api/common/server.ts'
import type { Db } from './db/db.ts'
import { openLmdb } from './db/lmdb.ts'
import { type BucketsApi as BucketsApiClass, BucketsApi, type KeysApi as KeysApiClass, KeysApi } from './model/helper/admin.ts'
import { type AdminTokensApi as AdminTokensApiClass, AdminTokensApi } from './model/helper/admin-token.ts'
import { Garage } from './model/garage.ts'
import { createNetApp, type NetApp } from './net/netapp.ts'
import { loadOrCreateNodeKey } from './net/node-key.ts'
import { LayoutApi } from './rpc/layout/api.ts'
import { LayoutManager } from './rpc/layout/manager.ts'
import { System, type SystemTiming } from './rpc/system.ts'
import { LayoutHelper } from './rpc/layout/helper.ts'
import { FullCopyReplication, LocalReplication, ShardedReplication, type TableReplication } from './table/replication.ts'
import type { ClusterContext } from './model/garage.ts'
import { BackgroundRunner, type WorkerInfo } from './util/background/worker.ts'
import { type GarageConfig, type ResolvedConfig, resolveConfig } from './util/config.ts'
import { GarageError } from './util/errors.ts'
import { type Logger, silentLogger } from './util/logger.ts'
import { GARAGE_TS_VERSION } from './util/version.ts'

export interface GarageNodeOptions extends GarageConfig {
  /** Where the node logs (consola-compatible). Default: silent. */
  logger?: Logger
  /** Environment read for `GARAGE_*` secrets. Default: `process.env`. */
  env?: Record<string, string | undefined>
  /** Directory relative paths are resolved against. Default: `process.cwd()`. */
  baseDir?: string
  /**
   * Time source (ms since the epoch) of date-driven background work: the daily lifecycle pass
   * runs when this clock reaches the next midnight. For tests, to expire objects without waiting
   * for days. Default: `Date.now`.
   */
  clock?: () => number
}

export interface NodeStatus {
  nodeId: string
  running: boolean
  s3Endpoint: string | undefined
  workers: WorkerInfo[]
  blocks: { bytesWritten: number; bytesRead: number; referenced: number; resyncQueueLength: number }
  tables: Array<{ name: string; entries: number; insertQueue: number }>
}

export interface GarageNode extends AsyncDisposable {
  /** The resolved configuration. */
  readonly config: ResolvedConfig
  /** Notes about unknown or not yet supported configuration keys. */
  readonly warnings: readonly string[]
  /** Hex Ed25519 public key; known once started. */
  readonly nodeId: string
  /** `http://host:port` of the S3 API, once started. */
  readonly s3Endpoint: string | undefined
  /** `http://host:port` of the static website endpoint, once started, if `[s3_web]` is set. */
  readonly webEndpoint: string | undefined
  /** Access keys. Available once started. */
  readonly keys: KeysApiClass
  /** Buckets. Available once started. */
  readonly buckets: BucketsApiClass
  /** Tokens of the admin API. Available once started. */
  readonly adminTokens: AdminTokensApiClass
  /** The cluster layout: roles, staged changes, versions. Available once started. */
  readonly layout: LayoutApi
  /** `http://host:port` of the admin API, once started, if `admin.api_bind_addr` is set. */
  readonly adminEndpoint: string | undefined
  /**
   * `<node id>@host:port` other nodes reach this one at (`rpc_public_addr`, else the bound RPC
   * address), once started, when `rpc_secret` is set; undefined for a standalone node.
   */
  readonly rpcAddress: string | undefined
  start(): Promise<void>
  /** Stops servers and workers and closes storage. Safe to call twice. */
  stop(): Promise<void>
  status(): NodeStatus
}

/**
 * Creates a node from Garage-style settings (the keys of `garage.toml`). Throws
 * InvalidConfigError for bad settings; does no I/O until `start()`.
 *
 * @example
 * ```ts
 * const node = createGarageNode({ metadata_dir: './meta', data_dir: './data', s3_api: { api_bind_addr: '127.0.0.1:3900' } })
 * await node.start()
 * const key = await node.keys.create({ name: 'app' })
 * await node.buckets.create('photos')
 * await node.buckets.allowKey('photos', key.accessKeyId, { read: true, write: true })
 * ```
 */
export function createGarageNode(options: GarageNodeOptions = {}): GarageNode {
  const { logger, env, baseDir, clock, ...input } = options
  const { config, warnings } = resolveConfig(input, { env, baseDir })
  const e = env ?? process.env
  return new Node(
    config,
    warnings,
    logger ?? silentLogger,
    clock,
    rpcTimingFromEnv(e),
    tableTimingFromEnv(e),
    blockTimingFromEnv(e),
  )
}

class Node implements GarageNode {
  readonly config: ResolvedConfig
  readonly warnings: readonly string[]
  readonly #log: Logger
  readonly #clock: (() => number) | undefined
  #state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new'
  #stopping: Promise<void> | undefined
  #teardown: Array<() => Promise<void>> = []
  #garage: Garage | undefined
  #runner: BackgroundRunner | undefined
  #nodeId = ''
  #s3: ApiServer | undefined
  #web: ApiServer | undefined
  #keys: KeysApi | undefined
  #buckets: BucketsApi | undefined
  #adminTokens: AdminTokensApi | undefined
  #layout: LayoutApi | undefined
  #admin: ApiServer | undefined
  #system: System | undefined
  readonly #rpcTiming: Partial<SystemTiming>
  readonly #tableTiming: TableTiming
  readonly #blockTiming: BlockTiming

  constructor(
    config: ResolvedConfig,
    warnings: string[],
    log: Logger,
    clock: (() => number) | undefined,
    rpcTiming: Partial<SystemTiming>,
    tableTiming: TableTiming = {},
    blockTiming: BlockTiming = {},
  ) {
    this.#blockTiming = blockTiming
    this.config = config
    this.warnings = warnings
    this.#log = log
    this.#clock = clock
    this.#rpcTiming = rpcTiming
    this.#tableTiming = tableTiming
  }

  get nodeId(): string {
    return this.#nodeId
  }
  get s3Endpoint(): string | undefined {
    return this.#s3?.url
  }
  get webEndpoint(): string | undefined {
    return this.#web?.url
  }
  get keys(): KeysApiClass {
    if (this.#keys === undefined) throw notStarted()
    return this.#keys
  }
  get buckets(): BucketsApiClass {
    if (this.#buckets === undefined) throw notStarted()
    return this.#buckets
  }
  get adminTokens(): AdminTokensApiClass {
    if (this.#adminTokens === undefined) throw notStarted()
    return this.#adminTokens
  }
  get layout(): LayoutApi {
    if (this.#layout === undefined) throw notStarted()
    return this.#layout
  }
  get adminEndpoint(): string | undefined {
    return this.#admin?.url
  }
  get rpcAddress(): string | undefined {
    const addr = this.#system?.address
    return addr === undefined ? undefined : `${this.#nodeId}@${addr}`
  }

  async start(): Promise<void> {
    if (this.#state !== 'new') throw new GarageError('GARAGE_ERR_CLOSED', `cannot start a node that is ${this.#state}`)
    this.#state = 'starting'
    const c = this.config
    const log = this.#log
    const stop = new AbortController()
    // Every worker, membership and the layout manager listen to this one signal.
    setMaxListeners(0, stop.signal)
    try {
      const nodeKey = await loadOrCreateNodeKey(c.metadataDir)
      this.#nodeId = nodeKey.id
      const db: Db = await openLmdb(c.metadataDir, { fsync: c.metadataFsync, mapSize: c.lmdbMapSize })
      this.#teardown.push(() => db.close())
      // Cluster membership, when rpc_secret is set: the RPC transport (rpc_bind_addr) and
      // System (discovery, pings, status exchange). Without a secret the node runs alone.
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
        this.#teardown.push(() => net.close())
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
          signal: stop.signal,
          statusExtra: () => ({ layoutDigest: layoutDigest() }),
          timing: this.#rpcTiming,
        })
        system = sys
        this.#system = sys
        this.#teardown.push(() => sys.close())
      }
      // The cluster layout (metadata_dir/cluster_layout). Wired with NetApp and System when
      // rpc_secret is set (gossip between nodes); a standalone node manages its layout locally.
      const layoutManager = new LayoutManager({
        ...(netApp === undefined || system === undefined ? {} : { netApp, system }),
        metadataDir: c.metadataDir,
        replicationFactor: c.replicationFactor,
        nodeId: nodeKey.id,
        log: log.withTag('layout'),
        signal: stop.signal,
        // In a cluster this node's sync tracker moves when every table finished an anti-entropy
        // pass of the new version (TableSyncer); a standalone node has nothing to move.
        syncImmediately: netApp === undefined,
      })
      await layoutManager.start()
      this.#teardown.push(() => layoutManager.flush())
      this.#layout = new LayoutApi(layoutManager)
      layoutDigest = () => layoutManager.digest()
      // Membership starts once the layout manager listens to it (peer-up and status events).
      await system?.start()
      // Where table entries live: on this node alone without rpc_secret, else by the layout.
      let sharded: TableReplication
      let fullCopy: TableReplication
      let clusterCtx: ClusterContext | undefined
      if (netApp !== undefined && system !== undefined) {
        const net = netApp
        const sys = system
        const layout = new LayoutHelper({
          source: layoutManager,
          self: nodeKey.id,
          consistencyMode: c.consistencyMode,
          replicationFactor: c.replicationFactor,
          pingOf: (id) => net.peers().find((p) => p.id === id)?.avgPingMs,
          isUp: (id) => sys.upPeers().includes(id),
          log: log.withTag('layout'),
        })
        sharded = new ShardedReplication(layout, this.#tableTiming.syncIntervalMs)
        fullCopy = new FullCopyReplication(layout, this.#tableTiming.syncIntervalMs)
        clusterCtx = {
          netApp: net,
          layout,
          upPeers: () => sys.upPeers(),
          onPeerUp: (cb) => sys.onPeerUp(cb),
          signal: stop.signal,
        }
      } else {
        sharded = new LocalReplication(nodeKey.id)
        fullCopy = sharded
      }
      // Where block files go among the data directories (`data_dir` list; metadata_dir/data_layout).
      const blockPaths = await openBlockPaths({ dirs: c.dataDirs, metadataDir: c.metadataDir })
      const garage = new Garage({
        db,
        self: nodeKey.id,
        dataDir: c.dataDir,
        blockPaths,
        dataFsync: c.dataFsync,
        blockSize: c.blockSize,
        blockGcDelayMsec: c.blockGcDelayMsec,
        allowPunycode: c.allowPunycode,
        sharded,
        fullCopy,
        ...(clusterCtx === undefined ? {} : { cluster: clusterCtx }),
        ...(c.rpcTimeoutMsec === undefined ? {} : { rpcTimeoutMs: c.rpcTimeoutMsec }),
        block: { ramBufferMax: c.blockRamBufferMax, disableScrub: c.disableScrub, ...this.#blockTiming },
        ...(this.#tableTiming.gcDelayMs === undefined ? {} : { tableGcDelayMsec: this.#tableTiming.gcDelayMs }),
        log,
        useLocalTz: c.useLocalTz,
        ...(this.#clock === undefined ? {} : { clock: this.#clock }),
      })
      this.#garage = garage
      const objectData = garage.objectTable.data
      if (garage.objectCounter.initialize(objectData.store, (raw) => objectData.schema.codec.decode(raw))) {
        log.debug('computed the bucket object counters from the stored objects')
      }
      const aborted = await garage.uploads.abortLeftovers(garage.objectTable)
      if (aborted > 0) log.warn(`aborted ${aborted} upload(s) interrupted by the previous stop`)
      const runner = new BackgroundRunner(log.withTag('worker'), stop.signal)
      this.#runner = runner
      garage.spawnWorkers(runner)
      this.#teardown.push(async () => {
        stop.abort()
        await runner.join()
      })
      this.#keys = new KeysApi(garage)
      this.#buckets = new BucketsApi(garage)
      const s3 = c.s3Api
      // Metrics are only readable through the admin API: collect them only when it runs.
      const sys = system
      const cluster: AdminClusterView | undefined =
        sys === undefined
          ? undefined
          : {
              rpcAddress: () => this.rpcAddress,
              nodes: () => sys.peerStatus(),
              layout: () => layoutManager.history(),
              connect: (peer) => sys.connect(peer),
              ...(netApp === undefined ? {} : { callAdmin: callAdminLocal.bind(undefined, netApp) }),
            }
      // This node as the admin API sees it; node-scoped admin requests from other nodes run
      // against it through the `admin/local` RPC, whether or not the admin API is served here.
      const adminNode: AdminNodeView = {
        nodeId: nodeKey.id,
        metadataDir: c.metadataDir,
        dataDir: c.dataDir,
        replicationFactor: c.replicationFactor,
        rpcPublicAddr: c.rpcPublicAddr === undefined ? undefined : `${c.rpcPublicAddr.host}:${c.rpcPublicAddr.port}`,
        ...(cluster === undefined ? {} : { cluster }),
        running: () => this.#state === 'running',
        workers: () => runner.list(),
        variables: () => runner.variables(),
        spawnWorker: (w) => runner.spawn(w),
        log: log.withTag('repair'),
      }
      if (netApp !== undefined) registerAdminRpc(netApp, LOCAL_ADMIN_ENDPOINTS, { garage, node: adminNode }, log.withTag('admin'))
      const metrics =
        c.admin.apiBindAddr === undefined
          ? undefined
          : new NodeMetrics({
              nodeId: nodeKey.id,
              replicationFactor: c.replicationFactor,
              version: GARAGE_TS_VERSION,
              status: () => this.status(),
              health: () => clusterHealth({ running: () => this.#state === 'running', cluster }),
            })
      const s3Server = await startApiServer(
        'path' in s3.apiBindAddr ? s3.apiBindAddr : { host: s3.apiBindAddr.host, port: s3.apiBindAddr.port },
        new S3ApiServer(garage, { region: s3.s3Region, rootDomain: s3.rootDomain }, log.withTag('s3')),
        log.withTag('s3'),
        { observer: metrics?.observer('s3') },
      )
      this.#s3 = s3Server
      this.#teardown.push(() => s3Server.close())
      // Static websites, only when `[s3_web]` is set.
      const web = c.s3Web
      if (web !== undefined) {
        const webLog = log.withTag('web')
        const webServer = await startApiServer(
          'path' in web.bindAddr ? web.bindAddr : { host: web.bindAddr.host, port: web.bindAddr.port },
          new WebServer(garage, { rootDomain: web.rootDomain }, webLog),
          webLog,
          { observer: metrics?.observer('web') },
        )
        this.#web = webServer
        this.#teardown.push(() => webServer.close())
      }
      // The admin API (port 3903 in Garage's examples), only when `admin.api_bind_addr` is set.
      this.#adminTokens = new AdminTokensApi(garage)
      const adminBind = c.admin.apiBindAddr
      if (adminBind !== undefined && metrics !== undefined) {
        const adminLog = log.withTag('admin')
        const handler = new AdminApiServer(
          {
            garage,
            keys: this.#keys,
            buckets: this.#buckets,
            tokens: this.#adminTokens,
            layout: this.#layout,
            metrics,
            settings: {
              adminToken: c.admin.adminToken,
              metricsToken: c.admin.metricsToken,
              metricsRequireToken: c.admin.metricsRequireToken,
              region: s3.s3Region,
              s3RootDomain: s3.rootDomain,
              webRootDomain: c.s3Web?.rootDomain,
            },
            node: adminNode,
          },
          adminLog,
        )
        const adminServer = await startApiServer(
          'path' in adminBind ? adminBind : { host: adminBind.host, port: adminBind.port },
          handler,
          adminLog,
          { observer: metrics.observer('admin') },
        )
        this.#admin = adminServer
        this.#teardown.push(() => adminServer.close())
      }
      this.#state = 'running'
      log.info(`node ${nodeKey.id.slice(0, 16)} started`)
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#state = 'stopping'
      const steps = this.#teardown.reverse()
      this.#teardown = []
      // Servers first, storage last; every step runs even if an earlier one failed.
      const errors: unknown[] = []
      for (const step of steps) {
        try {
          await step()
        } catch (err) {
          errors.push(err)
        }
      }
      this.#state = 'stopped'
      if (errors.length > 0) throw new AggregateError(errors, 'errors while stopping the node')
    })()
    return this.#stopping
  }

  status(): NodeStatus {
    const g = this.#garage
    const blocks = g?.blockManager.stats()
    return {
      nodeId: this.#nodeId,
      running: this.#state === 'running',
      s3Endpoint: this.s3Endpoint,
      workers: this.#runner?.list() ?? [],
      blocks: {
        bytesWritten: blocks?.bytesWritten ?? 0,
        bytesRead: blocks?.bytesRead ?? 0,
        referenced: blocks?.rcEntries ?? 0,
        resyncQueueLength: blocks?.resyncQueueLength ?? 0,
      },
      tables: (g?.tables ?? []).map((t) => ({
        name: t.name,
        entries: t.data.store.count(),
        insertQueue: t.data.insertQueue.count(),
      })),
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop()
  }
}

/** The S3 endpoint a request is for, for metrics (`Unknown` when it does not parse). */
function notStarted(): GarageError {
  return new GarageError('GARAGE_ERR_CLOSED', 'the node is not started: call start() first')
}

/**
 * Shorter membership intervals for tests that run real processes: `GARAGE_TS_TEST_RPC_INTERVAL_MSEC`
 * sets the ping and status periods (reconnection backoff from that period up to three times it).
 * Not a Garage setting; unset in production.
 */
/** Test-only block timings (see {@link blockTimingFromEnv}). */
interface BlockTiming {
  resyncDelayMsec?: number
  resyncRetryDelayMsec?: number
}

/**
 * Shorter block resync timings for tests that run real processes:
 * `GARAGE_TS_TEST_RESYNC_DELAY_MSEC` is the delay after a new block reference before checking
 * that the block arrived (default 3 min), `GARAGE_TS_TEST_RESYNC_RETRY_MSEC` the base of the
 * retry backoff after a failed resync (default 60 s). Not Garage settings; unset in production.
 */
function blockTimingFromEnv(env: Record<string, string | undefined>): BlockTiming {
  const ms = (raw: string | undefined): number | undefined => {
    const n = raw === undefined ? Number.NaN : Number(raw)
    return Number.isInteger(n) && n > 0 ? n : undefined
  }
  const resyncDelayMsec = ms(env.GARAGE_TS_TEST_RESYNC_DELAY_MSEC)
  const resyncRetryDelayMsec = ms(env.GARAGE_TS_TEST_RESYNC_RETRY_MSEC)
  return {
    ...(resyncDelayMsec === undefined ? {} : { resyncDelayMsec }),
    ...(resyncRetryDelayMsec === undefined ? {} : { resyncRetryDelayMsec }),
  }
}

function rpcTimingFromEnv(env: Record<string, string | undefined>): Partial<SystemTiming> {
  const raw = env.GARAGE_TS_TEST_RPC_INTERVAL_MSEC
  const ms = raw === undefined ? Number.NaN : Number(raw)
  if (!Number.isInteger(ms) || ms <= 0) return {}
  return { pingIntervalMs: ms, statusIntervalMs: ms, retryMinMs: ms, retryMaxMs: 3 * ms }
}

/** Test-only table timings (see {@link tableTimingFromEnv}). */
interface TableTiming {
  syncIntervalMs?: number
  gcDelayMs?: number
}

/**
 * Shorter anti-entropy timings for tests that run real processes:
 * `GARAGE_TS_TEST_SYNC_INTERVAL_MSEC` sets the full sync period of every table (sharded and
 * full-copy), `GARAGE_TS_TEST_TABLE_GC_DELAY_MSEC` the age at which tombstones are collected.
 * Not Garage settings; unset in production.
 */
function tableTimingFromEnv(env: Record<string, string | undefined>): TableTiming {
  const ms = (raw: string | undefined): number | undefined => {
    const n = raw === undefined ? Number.NaN : Number(raw)
    return Number.isInteger(n) && n > 0 ? n : undefined
  }
  const syncIntervalMs = ms(env.GARAGE_TS_TEST_SYNC_INTERVAL_MSEC)
  const gcDelayMs = ms(env.GARAGE_TS_TEST_TABLE_GC_DELAY_MSEC)
  return {
    ...(syncIntervalMs === undefined ? {} : { syncIntervalMs }),
    ...(gcDelayMs === undefined ? {} : { gcDelayMs }),
  }
}
