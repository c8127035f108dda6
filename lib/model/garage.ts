/**
 * The container of every table, the block manager and the helpers (port of
 * garage_model::garage). Building it does no I/O; `spawnWorkers` starts the background work.
 */
import type { Db } from '../db/db.ts'
import { BlockManager } from '../block/manager.ts'
import type { BackgroundRunner } from '../util/background/worker.ts'
import type { Logger } from '../util/logger.ts'
import { TableData } from '../table/data.ts'
import { InsertQueueWorker } from '../table/queue.ts'
import type { NodeId, TableReplication } from '../table/replication.ts'
import type { TableSchema } from '../table/schema.ts'
import { Table, type TableTransport } from '../table/table.ts'
import { type BucketAliasEntry, bucketAliasTableSchema } from './bucket-alias-table.ts'
import { type BucketEntry, bucketTableSchema } from './bucket-table.ts'
import { BucketHelper } from './helper/bucket.ts'
import { KeyHelper } from './helper/key.ts'
import { type KeyEntry, keyTableSchema } from './key-table.ts'
import { type BlockRefEntry, blockRefTableSchema } from './s3/block-ref-table.ts'
import { type MpuEntry, mpuTableSchema } from './s3/mpu-table.ts'
import { type ObjectEntry, objectTableSchema } from './s3/object-table.ts'
import { UploadGuard } from './s3/upload-guard.ts'
import { type VersionEntry, versionTableSchema } from './s3/version-table.ts'

export interface GarageModelOptions {
  db: Db
  self: NodeId
  dataDir: string
  dataFsync: boolean
  blockSize: number
  blockGcDelayMsec: number
  allowPunycode: boolean
  /** Replication of sharded tables (object, version, block_ref, mpu). */
  sharded: TableReplication
  /** Replication of tables stored on every node (bucket, alias, key). */
  fullCopy: TableReplication
  transport?: TableTransport
  log: Logger
}

export class Garage {
  readonly db: Db
  readonly blockSize: number
  readonly blockManager: BlockManager
  readonly bucketTable: Table<BucketEntry>
  readonly bucketAliasTable: Table<BucketAliasEntry>
  readonly keyTable: Table<KeyEntry>
  readonly objectTable: Table<ObjectEntry>
  readonly versionTable: Table<VersionEntry>
  readonly blockRefTable: Table<BlockRefEntry>
  readonly mpuTable: Table<MpuEntry>
  readonly buckets: BucketHelper
  readonly keys: KeyHelper
  readonly uploads: UploadGuard
  readonly #tables: Array<Table<unknown>> = []
  readonly #log: Logger

  constructor(o: GarageModelOptions) {
    this.db = o.db
    this.blockSize = o.blockSize
    this.#log = o.log
    this.blockManager = new BlockManager({
      db: o.db,
      dataDir: o.dataDir,
      fsync: o.dataFsync,
      gcDelayMsec: o.blockGcDelayMsec,
      log: o.log.withTag('block'),
    })
    const make = <E>(schema: TableSchema<E>, replication: TableReplication): Table<E> => {
      const t = new Table<E>({
        schema,
        data: new TableData(schema, o.db),
        replication,
        self: o.self,
        log: o.log.withTag(`table:${schema.tableName}`),
        transport: o.transport,
      })
      this.#tables.push(t as Table<unknown>)
      return t
    }
    this.blockRefTable = make(blockRefTableSchema(this.blockManager), o.sharded)
    const blockRefTable = this.blockRefTable
    this.versionTable = make(versionTableSchema({ queueBlockRef: (tx, e) => blockRefTable.queueInsert(tx, e) }), o.sharded)
    const versionTable = this.versionTable
    this.mpuTable = make(mpuTableSchema({ queueVersion: (tx, e) => versionTable.queueInsert(tx, e) }), o.sharded)
    this.objectTable = make(objectTableSchema({ queueVersion: (tx, e) => versionTable.queueInsert(tx, e) }), o.sharded)
    this.bucketTable = make(bucketTableSchema, o.fullCopy)
    this.bucketAliasTable = make(bucketAliasTableSchema, o.fullCopy)
    this.keyTable = make(keyTableSchema, o.fullCopy)
    this.buckets = new BucketHelper(
      {
        bucket: this.bucketTable,
        alias: this.bucketAliasTable,
        key: this.keyTable,
        object: this.objectTable,
        mpu: this.mpuTable,
      },
      { allowPunycode: o.allowPunycode },
    )
    this.keys = new KeyHelper(this.keyTable, this.buckets)
    this.uploads = new UploadGuard(o.db)
  }

  get tables(): ReadonlyArray<Table<unknown>> {
    return this.#tables
  }

  /** Starts the background workers: insert queues and block resync. */
  spawnWorkers(runner: BackgroundRunner): void {
    for (const t of this.#tables) runner.spawn(new InsertQueueWorker(t))
    runner.spawn(this.blockManager.resyncWorker())
    this.#log.debug(`started ${this.#tables.length + 1} workers`)
  }
}
