/**
 * `createGarageNode()`: the composition root (port of garage::server and garage_model::garage).
 * The only module that wires layers together. Building the node does no I/O; `start()` runs the
 * stages of lib/_node/ in order (open storage, join the cluster, build the model, spawn the
 * workers, start the servers the configuration enables), each returning its teardown; `stop()`
 * runs those in reverse order.
 */
import { setMaxListeners } from 'node:events'
import { joinCluster } from './_node/cluster.ts'
import { buildModel, spawnWorkers } from './_node/model.ts'
import { startServers } from './_node/servers.ts'
import { openStorage } from './_node/storage.ts'
import { runInReverse, type Teardown } from './_node/teardown.ts'
import { checkTiming, type NodeTiming } from './_node/timing.ts'
import type { ApiServer } from './api/common/server.ts'
import type { Garage } from './model/garage.ts'
import { type AdminTokensApi as AdminTokensApiClass, AdminTokensApi } from './model/helper/admin-token.ts'
import { type BucketsApi as BucketsApiClass, BucketsApi, type KeysApi as KeysApiClass, KeysApi } from './model/helper/admin.ts'
import { LayoutApi } from './rpc/layout/api.ts'
import type { System } from './rpc/system.ts'
import type { BackgroundRunner, WorkerInfo } from './util/background/worker.ts'
import { type GarageConfig, type ResolvedConfig, resolveConfig } from './util/config.ts'
import { GarageError } from './util/errors.ts'
import { type Logger, silentLogger } from './util/logger.ts'

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
  /**
   * Periods and delays of the background work (pings, anti-entropy, tombstone GC, block resync),
   * each defaulting to Garage's production value. For tests that need a cluster to notice
   * failures and repair itself within seconds. Checked eagerly (InvalidConfigError).
   *
   * @example
   * ```ts
   * createGarageNode({ ...settings, timing: { pingIntervalMsec: 500, shardedTableSyncIntervalMsec: 2_000 } })
   * ```
   */
  timing?: NodeTiming
}

export type { NodeTiming }

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
  /** `http://host:port` of the K2V API, once started, if `[k2v_api]` is set. */
  readonly k2vEndpoint: string | undefined
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
  const { logger, env, baseDir, clock, timing, ...input } = options
  const { config, warnings } = resolveConfig(input, { env, baseDir })
  return new Node(config, warnings, logger ?? silentLogger, clock, checkTiming(timing))
}

class Node implements GarageNode {
  readonly config: ResolvedConfig
  readonly warnings: readonly string[]
  readonly #log: Logger
  readonly #clock: (() => number) | undefined
  readonly #timing: Readonly<NodeTiming>
  #state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new'
  #stopping: Promise<void> | undefined
  /** One teardown per start stage, in the order the stages ran; stop() runs them in reverse. */
  #teardown: Teardown[] = []
  #garage: Garage | undefined
  #runner: BackgroundRunner | undefined
  #nodeId = ''
  #s3: ApiServer | undefined
  #web: ApiServer | undefined
  #k2v: ApiServer | undefined
  #keys: KeysApi | undefined
  #buckets: BucketsApi | undefined
  #adminTokens: AdminTokensApi | undefined
  #layout: LayoutApi | undefined
  #admin: ApiServer | undefined
  #system: System | undefined

  constructor(
    config: ResolvedConfig,
    warnings: string[],
    log: Logger,
    clock: (() => number) | undefined,
    timing: Readonly<NodeTiming>,
  ) {
    this.config = config
    this.warnings = warnings
    this.#log = log
    this.#clock = clock
    this.#timing = timing
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
  get k2vEndpoint(): string | undefined {
    return this.#k2v?.url
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

  /**
   * Runs the start stages in order (lib/_node/): open storage, join the cluster, build the model,
   * spawn the workers, start the servers. Each stage hands back its teardown; if one fails, the
   * stages already done are undone in reverse, then the error is rethrown.
   */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new GarageError('GARAGE_ERR_CLOSED', `cannot start a node that is ${this.#state}`)
    this.#state = 'starting'
    const config = this.config
    const log = this.#log
    const timing = this.#timing
    const stop = new AbortController()
    // Every worker, membership and the layout manager listen to this one signal.
    setMaxListeners(0, stop.signal)
    try {
      const storage = await openStorage(config)
      this.#teardown.push(storage.teardown)
      this.#nodeId = storage.nodeKey.id

      const cluster = await joinCluster({ config, nodeKey: storage.nodeKey, timing, log, signal: stop.signal })
      this.#teardown.push(cluster.teardown)
      this.#system = cluster.system
      const layout = new LayoutApi(cluster.layoutManager)
      this.#layout = layout

      const garage = await buildModel({ config, db: storage.db, self: this.#nodeId, cluster, timing, clock: this.#clock, log })
      this.#garage = garage

      const workers = spawnWorkers(garage, stop, log)
      this.#teardown.push(workers.teardown)
      this.#runner = workers.runner

      const apis = { keys: new KeysApi(garage), buckets: new BucketsApi(garage), tokens: new AdminTokensApi(garage), layout }
      this.#keys = apis.keys
      this.#buckets = apis.buckets
      this.#adminTokens = apis.tokens
      const servers = await startServers({
        config,
        garage,
        apis,
        cluster,
        runner: workers.runner,
        node: {
          id: this.#nodeId,
          running: () => this.#state === 'running',
          rpcAddress: () => this.rpcAddress,
          status: () => this.status(),
        },
        log,
      })
      this.#teardown.push(servers.teardown)
      this.#s3 = servers.s3
      this.#web = servers.web
      this.#k2v = servers.k2v
      this.#admin = servers.admin

      this.#state = 'running'
      log.info(`node ${this.#nodeId.slice(0, 16)} started`)
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#state = 'stopping'
      // Servers first, storage last; every step runs even if an earlier one failed.
      const errors = await runInReverse(this.#teardown.splice(0))
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

function notStarted(): GarageError {
  return new GarageError('GARAGE_ERR_CLOSED', 'the node is not started: call start() first')
}
