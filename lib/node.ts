/**
 * `createGarageNode()`: the composition root (port of garage::server and garage_model::garage).
 * The only module that wires layers together. Building the node does no I/O; `start()` opens
 * storage, spawns the background workers and starts the API servers the configuration enables;
 * `stop()` undoes it all in reverse order.
 */
import { S3ApiServer } from './api/s3/api-server.ts'
import { type ApiServer, startApiServer } from './api/common/server.ts'
import type { Db } from './db/db.ts'
import { openLmdb } from './db/lmdb.ts'
import { type BucketsApi as BucketsApiClass, BucketsApi, type KeysApi as KeysApiClass, KeysApi } from './model/helper/admin.ts'
import { Garage } from './model/garage.ts'
import { loadOrCreateNodeKey } from './net/node-key.ts'
import { LocalReplication } from './table/replication.ts'
import { BackgroundRunner, type WorkerInfo } from './util/background/worker.ts'
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
  /** Access keys. Available once started. */
  readonly keys: KeysApiClass
  /** Buckets. Available once started. */
  readonly buckets: BucketsApiClass
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
  const { logger, env, baseDir, ...input } = options
  const { config, warnings } = resolveConfig(input, { env, baseDir })
  return new Node(config, warnings, logger ?? silentLogger)
}

class Node implements GarageNode {
  readonly config: ResolvedConfig
  readonly warnings: readonly string[]
  readonly #log: Logger
  #state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new'
  #stopping: Promise<void> | undefined
  #teardown: Array<() => Promise<void>> = []
  #garage: Garage | undefined
  #runner: BackgroundRunner | undefined
  #nodeId = ''
  #s3: ApiServer | undefined
  #keys: KeysApi | undefined
  #buckets: BucketsApi | undefined

  constructor(config: ResolvedConfig, warnings: string[], log: Logger) {
    this.config = config
    this.warnings = warnings
    this.#log = log
  }

  get nodeId(): string {
    return this.#nodeId
  }
  get s3Endpoint(): string | undefined {
    return this.#s3?.url
  }
  get keys(): KeysApiClass {
    if (this.#keys === undefined) throw notStarted()
    return this.#keys
  }
  get buckets(): BucketsApiClass {
    if (this.#buckets === undefined) throw notStarted()
    return this.#buckets
  }

  async start(): Promise<void> {
    if (this.#state !== 'new') throw new GarageError('GARAGE_ERR_CLOSED', `cannot start a node that is ${this.#state}`)
    this.#state = 'starting'
    const c = this.config
    const log = this.#log
    const stop = new AbortController()
    try {
      const nodeKey = await loadOrCreateNodeKey(c.metadataDir)
      this.#nodeId = nodeKey.id
      const db: Db = await openLmdb(c.metadataDir, { fsync: c.metadataFsync, mapSize: c.lmdbMapSize })
      this.#teardown.push(() => db.close())
      const local = new LocalReplication(nodeKey.id)
      const garage = new Garage({
        db,
        self: nodeKey.id,
        dataDir: c.dataDir,
        dataFsync: c.dataFsync,
        blockSize: c.blockSize,
        blockGcDelayMsec: c.blockGcDelayMsec,
        allowPunycode: c.allowPunycode,
        sharded: local,
        fullCopy: local,
        log,
      })
      this.#garage = garage
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
      const s3Server = await startApiServer(
        'path' in s3.apiBindAddr ? s3.apiBindAddr : { host: s3.apiBindAddr.host, port: s3.apiBindAddr.port },
        new S3ApiServer(garage, { region: s3.s3Region, rootDomain: s3.rootDomain }, log.withTag('s3')),
        log.withTag('s3'),
      )
      this.#s3 = s3Server
      this.#teardown.push(() => s3Server.close())
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

function notStarted(): GarageError {
  return new GarageError('GARAGE_ERR_CLOSED', 'the node is not started: call start() first')
}
