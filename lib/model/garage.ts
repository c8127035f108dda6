/**
 * The container of every table, the block manager and the helpers (port of
 * garage_model::garage). Building it does no I/O; `spawnWorkers` starts the background work.
 */
import { type Db, prefixEnd } from '../db/db.ts'
import { defineEndpoint } from '../net/endpoint.ts'
import type { NetApp } from '../net/netapp.ts'
import { RpcHelper } from '../rpc/rpc-helper.ts'
import { concatBytes, type Uuid } from '../util/data.ts'
import type { LayoutHelper } from '../rpc/layout/helper.ts'
import type { BlockPaths } from '../block/layout.ts'
import { BlockManager, type BlockSettings } from '../block/manager.ts'
import { OneShotWorker } from '../block/resync.ts'
import type { BackgroundRunner } from '../util/background/worker.ts'
import type { Logger } from '../util/logger.ts'
import { nextTimestamp, nowMsec } from '../util/time.ts'
import { TableData } from '../table/data.ts'
import { InsertQueueWorker } from '../table/queue.ts'
import { TableAntiEntropy } from '../table/sync.ts'
import { TableBatch } from '../table/batch.ts'
import { NetAppTableTransport, registerTableBatchHandler, registerTableHandler } from '../table/rpc.ts'
import type { NodeId, TableReplication } from '../table/replication.ts'
import type { TableSchema } from '../table/schema.ts'
import { Table, type TableTransport } from '../table/table.ts'
import { type AdminTokenEntry, adminTokenTableSchema } from './admin-token-table.ts'
import { type BucketAliasEntry, bucketAliasTableSchema } from './bucket-alias-table.ts'
import { type BucketEntry, bucketTableSchema } from './bucket-table.ts'
import { AccessResolver } from './helper/access.ts'
import { BucketHelper } from './helper/bucket.ts'
import { KeyHelper } from './helper/key.ts'
import { BucketObjectCounter, type CounterEntry, counterTableSchema, IndexCounter, type ObjectCounts } from './index-counter.ts'
import { countK2vItem, type K2vItem, k2vItemTableSchema } from './k2v/item-table.ts'
import { K2vRpcHandler } from './k2v/rpc.ts'
import { SubscriptionManager } from './k2v/sub.ts'
import { type KeyEntry, keyTableSchema } from './key-table.ts'
import { LifecycleWorker } from './s3/lifecycle-worker.ts'
import { type BlockRefEntry, blockRefTableSchema } from './s3/block-ref-table.ts'
import { type MpuEntry, mpuTableSchema } from './s3/mpu-table.ts'
import { type ObjectEntry, objectTableSchema } from './s3/object-table.ts'
import { UploadGuard } from './s3/upload-guard.ts'
import { type VersionEntry, versionTableSchema } from './s3/version-table.ts'

/**
 * What a node in a cluster gives the model: the RPC transport, where data lives, and which
 * peers are up. Absent on a node without `rpc_secret`.
 */
export interface ClusterContext {
  netApp: NetApp
  layout: LayoutHelper
  /** Ids of the peers currently up (without this node). */
  upPeers(): string[]
  /** Called when a peer comes up (after being down or unknown). */
  onPeerUp(cb: (nodeId: string) => void): void
  /** Aborted when the node stops. */
  signal: AbortSignal
}

/** A node's own object counters of one bucket (for quota checks on nodes that do not hold the bucket). */
const BUCKET_COUNTS = defineEndpoint<{ bucket: Uint8Array }, ObjectCounts>('model/bucket-object-counts')

/**
 * Blocks of one PUT or UploadPart written at once unless `block_max_concurrent_writes_per_request`
 * says otherwise: Garage's PUT_BLOCKS_MAX_PARALLEL, and its default for that setting.
 */
export const DEFAULT_BLOCK_WRITES_PER_REQUEST = 3

export interface GarageModelOptions {
  db: Db
  self: NodeId
  dataDir: string
  /** Where block files live among several data directories; default: `dataDir` alone. */
  blockPaths?: BlockPaths
  dataFsync: boolean
  blockSize: number
  /** Blocks of one request written at once (`block_max_concurrent_writes_per_request`). Default 3. */
  blockWritesPerRequest?: number
  blockGcDelayMsec: number
  allowPunycode: boolean
  /** Replication of sharded tables (object, version, block_ref, mpu). */
  sharded: TableReplication
  /** Replication of tables stored on every node (bucket, alias, key, admin token). */
  fullCopy: TableReplication
  /** Reaches other nodes' tables; default: over `cluster.netApp` when `cluster` is set. */
  transport?: TableTransport
  /** Deadline of table quorum reads and writes (`rpc_timeout_msec`). Default 300 s. */
  rpcTimeoutMs?: number
  /** Set on a node that is part of a cluster (`rpc_secret`). */
  cluster?: ClusterContext
  /**
   * Whether table changes are queued for the Merkle trees anti-entropy compares. Default: in a
   * cluster only (TableDataOptions.merkle); tools loading rows offline for a cluster set it.
   */
  merkle?: boolean
  /** Block manager settings (`block_ram_buffer_max`, `disable_scrub`, test timings). */
  block?: BlockSettings
  /** Age at which table tombstones are garbage-collected. Default 24 h (tests shorten it). */
  tableGcDelayMsec?: number
  log: Logger
  /** Current time in ms for date-driven work (the lifecycle worker). Default `Date.now`; tests drive it. */
  clock?: () => number
  /** Lifecycle days start at local midnight instead of UTC midnight (`use_local_tz`). */
  useLocalTz?: boolean
}

/** K2V's tables and RPC (port of garage_model::garage::GarageK2V). @internal */
export interface K2vModel {
  readonly itemTable: Table<K2vItem>
  /** `k2v_index_counter_v2`: per bucket and partition key, each storage node's counts. */
  readonly counter: IndexCounter<K2vItem>
  readonly rpc: K2vRpcHandler
  readonly subscriptions: SubscriptionManager
  /** The nodes whose counts an index read takes (the current storage nodes). */
  storageNodes(): string[]
}

export class Garage {
  readonly db: Db
  readonly blockSize: number
  /** Blocks of one PUT or UploadPart written at once (`block_max_concurrent_writes_per_request`). */
  readonly blockWritesPerRequest: number
  readonly blockManager: BlockManager
  readonly bucketTable: Table<BucketEntry>
  readonly bucketAliasTable: Table<BucketAliasEntry>
  readonly keyTable: Table<KeyEntry>
  readonly adminTokenTable: Table<AdminTokenEntry>
  readonly objectTable: Table<ObjectEntry>
  readonly versionTable: Table<VersionEntry>
  readonly blockRefTable: Table<BlockRefEntry>
  readonly mpuTable: Table<MpuEntry>
  /** Objects, bytes and unfinished uploads per bucket, for quotas and stats. */
  readonly objectCounter: BucketObjectCounter
  readonly buckets: BucketHelper
  readonly keys: KeyHelper
  /** Access keys, bucket names and permissions for request paths (local first, quorum on a miss). */
  readonly access: AccessResolver
  readonly uploads: UploadGuard
  readonly lifecycle: LifecycleWorker
  /** Inserts into several tables with one request per node (one round trip, one transaction each). */
  readonly tableBatch: TableBatch
  /** The K2V data model (Garage's `garage.k2v`). */
  readonly k2v: K2vModel
  readonly #tables: Array<Table<unknown>> = []
  /** Merkle updater, tombstone GC and sync worker of each table. */
  readonly #antiEntropy: Array<TableAntiEntropy<unknown>> = []
  readonly #log: Logger
  /** Set on a node that is part of a cluster. */
  readonly cluster: ClusterContext | undefined
  readonly #sharded: TableReplication
  readonly #rpc: RpcHelper

  /** The node's logger (silent when embedded without one). */
  get log(): Logger {
    return this.#log
  }

  /**
   * The timestamp of a new object version after `previous` (the newest the write read):
   * Garage's next_timestamp on the cluster's clock (lib/net/clock.ts), which is this node's
   * own clock unless a peer's runs ahead of it.
   */
  nextTimestamp(previous: number | undefined): number {
    return nextTimestamp(previous, this.cluster?.netApp.clock.now() ?? nowMsec())
  }

  constructor(o: GarageModelOptions) {
    this.db = o.db
    this.blockSize = o.blockSize
    this.blockWritesPerRequest = o.blockWritesPerRequest ?? DEFAULT_BLOCK_WRITES_PER_REQUEST
    this.#log = o.log
    this.cluster = o.cluster
    this.#sharded = o.sharded
    this.#rpc = new RpcHelper({
      log: o.log.withTag('rpc'),
      ...(o.rpcTimeoutMs === undefined ? {} : { timeoutMs: o.rpcTimeoutMs }),
    })
    this.blockManager = new BlockManager({
      db: o.db,
      dataDir: o.dataDir,
      ...(o.blockPaths === undefined ? {} : { paths: o.blockPaths }),
      fsync: o.dataFsync,
      gcDelayMsec: o.blockGcDelayMsec,
      log: o.log.withTag('block'),
      ...o.block,
      ...(o.cluster === undefined ? {} : { cluster: o.cluster }),
      ...(o.rpcTimeoutMs === undefined ? {} : { rpcTimeoutMs: o.rpcTimeoutMs }),
    })
    // In a cluster every table calls its peers through NetApp and answers them on `table/<name>`.
    const cluster = o.cluster
    const transport = o.transport ?? (cluster === undefined ? undefined : new NetAppTableTransport(cluster.netApp))
    const make = <E>(schema: TableSchema<E>, replication: TableReplication): Table<E> => {
      const t = new Table<E>({
        schema,
        // A node alone keeps no Merkle tree (TableDataOptions.merkle).
        data: new TableData(schema, o.db, { replication, self: o.self, merkle: o.merkle ?? cluster !== undefined }),
        replication,
        self: o.self,
        log: o.log.withTag(`table:${schema.tableName}`),
        ...(transport === undefined ? {} : { transport }),
        ...(o.rpcTimeoutMs === undefined ? {} : { timeoutMs: o.rpcTimeoutMs }),
        ...(cluster === undefined ? {} : { signal: cluster.signal }),
      })
      if (cluster !== undefined) registerTableHandler(cluster.netApp, t)
      this.#antiEntropy.push(
        new TableAntiEntropy(t.data, replication, {
          self: o.self,
          log: o.log.withTag(`table:${schema.tableName}`),
          ...(cluster === undefined ? {} : { cluster }),
          ...(o.tableGcDelayMsec === undefined ? {} : { gcDelayMs: o.tableGcDelayMsec }),
        }) as TableAntiEntropy<unknown>,
      )
      this.#tables.push(t as Table<unknown>)
      return t
    }
    this.blockRefTable = make(blockRefTableSchema(this.blockManager), o.sharded)
    const blockRefTable = this.blockRefTable
    this.versionTable = make(versionTableSchema({ queueBlockRef: (tx, e) => blockRefTable.queueInsert(tx, e) }), o.sharded)
    const versionTable = this.versionTable
    // The upload's own rows, read in the hook's transaction (see mpu-table.ts).
    const mpuRows = (): TableData<MpuEntry> => this.mpuTable.data
    this.mpuTable = make(
      mpuTableSchema({
        queueVersion: (tx, e) => versionTable.queueInsert(tx, e),
        queueMpu: (tx, e) => this.mpuTable.queueInsert(tx, e),
        localUpload(tx, uploadId) {
          const d = mpuRows()
          const raw = tx.get(d.store, d.treeKey(uploadId, new Uint8Array(0)))
          return raw === undefined ? undefined : d.schema.codec.decode(raw)
        },
        *localPartKeys(tx, uploadId) {
          const d = mpuRows()
          const hash = d.schema.partitionHash(uploadId)
          // Part rows sort after the upload row's empty sort key: start one byte past it.
          for (const [k] of tx.range(d.store, { start: concatBytes(hash, new Uint8Array([0])), end: prefixEnd(hash) })) {
            yield k.subarray(hash.length)
          }
        },
      }),
      o.sharded,
    )
    const mpuTable = this.mpuTable
    const objectCounter = new BucketObjectCounter(o.db)
    this.objectCounter = objectCounter
    o.cluster?.netApp.handle(BUCKET_COUNTS, (req) => objectCounter.get(req.bucket))
    this.objectTable = make(
      objectTableSchema({
        queueVersion: (tx, e) => versionTable.queueInsert(tx, e),
        queueMpu: (tx, e) => mpuTable.queueInsert(tx, e),
        countObject: (tx, previous, next) => objectCounter.update(tx, previous, next),
      }),
      o.sharded,
    )
    this.bucketTable = make(bucketTableSchema, o.fullCopy)
    this.bucketAliasTable = make(bucketAliasTableSchema, o.fullCopy)
    this.keyTable = make(keyTableSchema, o.fullCopy)
    this.adminTokenTable = make(adminTokenTableSchema, o.fullCopy)
    // K2V: the counter table first, the item table's hook counts into it.
    const counterTable: Table<CounterEntry> = make(counterTableSchema('k2v_index_counter_v2'), o.sharded)
    const counter = new IndexCounter<K2vItem>({
      db: o.db,
      self: o.self,
      table: counterTable,
      counted: {
        counterPartition: (i) => i.bucketId,
        counterSortKey: (i) => i.partitionKey,
        counts: countK2vItem,
      },
    })
    const subscriptions = new SubscriptionManager()
    const itemTable = make(
      k2vItemTableSchema({ count: (tx, prev, next) => counter.count(tx, prev, next), notify: (i) => subscriptions.notify(i) }),
      o.sharded,
    )
    const layout = o.cluster?.layout
    this.k2v = {
      itemTable,
      counter,
      subscriptions,
      rpc: new K2vRpcHandler({
        self: o.self,
        db: o.db,
        itemTable,
        replication: o.sharded,
        subscriptions,
        log: o.log.withTag('k2v'),
        netApp: o.cluster?.netApp,
        rpcTimeoutMs: o.rpcTimeoutMs,
      }),
      storageNodes: () => (layout === undefined ? [o.self] : layout.allStorageNodes()),
    }
    this.buckets = new BucketHelper(
      {
        bucket: this.bucketTable,
        alias: this.bucketAliasTable,
        key: this.keyTable,
        object: this.objectTable,
        mpu: this.mpuTable,
        k2vIndex: { table: counterTable, storageNodes: this.k2v.storageNodes },
      },
      { allowPunycode: o.allowPunycode },
    )
    this.keys = new KeyHelper(this.keyTable, this.buckets)
    this.access = new AccessResolver(
      { bucket: this.bucketTable, alias: this.bucketAliasTable, key: this.keyTable },
      { cluster: o.cluster !== undefined },
    )
    this.tableBatch = new TableBatch(this.#tables, {
      self: o.self,
      transaction: (fn) => o.db.transaction(fn),
      log: o.log.withTag('table:batch'),
      ...(transport === undefined ? {} : { transport }),
      ...(o.rpcTimeoutMs === undefined ? {} : { timeoutMs: o.rpcTimeoutMs }),
      ...(cluster === undefined ? {} : { signal: cluster.signal }),
    })
    if (cluster !== undefined) registerTableBatchHandler(cluster.netApp, this.tableBatch)
    // Rows that travel with a block (a one-round PUT) are merged by the same batch handler.
    this.blockManager.rowsHandler = (rows, local) => this.tableBatch.handle(rows, local)
    this.uploads = new UploadGuard(o.db)
    this.lifecycle = new LifecycleWorker({
      db: o.db,
      objects: this.objectTable,
      mpus: this.mpuTable,
      buckets: this.bucketTable,
      clock: o.clock ?? Date.now,
      timestamp: (previous) => this.nextTimestamp(previous),
      useLocalTz: o.useLocalTz ?? false,
      log: o.log.withTag('lifecycle'),
    })
  }

  get tables(): ReadonlyArray<Table<unknown>> {
    return this.#tables
  }

  /**
   * Objects, bytes and unfinished uploads of a bucket. Every object of a bucket lives in one
   * partition, whose holders each count all of them: on a cluster this asks a read quorum of
   * them and keeps the highest figures (Garage's counter table reads the max over the
   * partition's storage nodes), so a node that does not hold the bucket answers right too.
   */
  async bucketCounts(bucketId: Uuid): Promise<ObjectCounts> {
    const local = this.objectCounter.get(bucketId)
    const cluster = this.cluster
    if (cluster === undefined) return local
    const nodes = this.#sharded.readNodes(this.objectTable.schema.partitionHash(bucketId))
    const answers = await this.#rpc.tryCallMany(
      nodes,
      this.#sharded.readQuorum(),
      (node, signal) => cluster.netApp.call(node, BUCKET_COUNTS, { bucket: bucketId }, { signal }),
      {
        hedgeAfterMs: (node) => this.#sharded.hedgeDelayOf?.(node),
        isUnresponsive: (node) => this.#sharded.isUnresponsive?.(node) ?? false,
      },
    )
    const max = { objects: 0, bytes: 0, unfinishedUploads: 0 }
    for (const { value } of answers) {
      max.objects = Math.max(max.objects, value.objects)
      max.bytes = Math.max(max.bytes, value.bytes)
      max.unfinishedUploads = Math.max(max.unfinishedUploads, value.unfinishedUploads)
    }
    return max
  }

  /** Starts a full anti-entropy pass of every table now (`garage repair tables`). */
  launchTableSync(): void {
    for (const a of this.#antiEntropy) a.syncer?.addFullSync()
  }

  /** Starts the background workers: insert queues and block resync. */
  spawnWorkers(runner: BackgroundRunner): void {
    for (const t of this.#tables) runner.spawn(new InsertQueueWorker(t))
    for (const a of this.#antiEntropy) for (const w of a.workers()) runner.spawn(w)
    for (const w of this.blockManager.workers()) runner.spawn(w)
    runner.spawn(this.lifecycle)
    // Uploads a previous stop interrupted that the start could not undo (no quorum then).
    if (this.uploads.leftovers() > 0) {
      runner.spawn(
        new OneShotWorker('upload-leftovers', async () => {
          const n = await this.uploads.abortLeftovers(this.objectTable, this.versionTable, this.mpuTable)
          this.#log.info(`aborted ${n} upload(s) interrupted by the previous stop`)
        }),
      )
    }
    const lifecycle = this.lifecycle
    runner.defineVariable('lifecycle-last-completed', {
      get: () => lifecycle.lastCompleted,
      set: () => {
        throw new Error('lifecycle-last-completed is read-only')
      },
    })
    const bm = this.blockManager
    runner.defineVariable('resync-tranquility', {
      get: () => String(bm.resyncTranquility),
      set: (value) => {
        const n = Number(value)
        if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n))
          throw new Error('resync-tranquility must be a non-negative integer')
        bm.resyncTranquility = n
      },
    })
    runner.defineVariable('resync-worker-count', {
      get: () => String(bm.resync.workerCount),
      set: (value) => {
        bm.resync.workerCount = /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN
      },
    })
    const scrub = bm.scrub
    if (scrub !== undefined) {
      runner.defineVariable('scrub-tranquility', {
        get: () => String(scrub.tranquility),
        set: (value) => {
          const n = Number(value)
          if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n))
            throw new Error('scrub-tranquility must be a non-negative integer')
          scrub.tranquility = n
        },
      })
      const ro = (name: string, get: () => string): void =>
        runner.defineVariable(name, {
          get,
          set: () => {
            throw new Error(`${name} is read-only`)
          },
        })
      ro('scrub-last-completed', () => new Date(scrub.status().lastComplete).toISOString())
      ro('scrub-next-run', () => new Date(scrub.status().nextRun).toISOString())
      ro('scrub-corruptions_detected', () => String(scrub.status().corruptionsDetected))
    }
    this.#log.debug(`started ${this.#tables.length + 2} workers`)
  }
}
