/**
 * Loads objects straight into stopped nodes' lmdb through the model layer, for benches and tests
 * that need many objects without hours of S3 requests (issue 21): `TableData.updateMany` on the
 * object table, in transactions of `batch` rows, with the same hooks as a real write (bucket
 * counters, Merkle todo), then the Merkle todo folded so the trees are ready for anti-entropy.
 *
 * Rows are inline objects (64 bytes). The same rows, byte for byte, go to every node given, so
 * that replicas of a cluster agree as if the writes had been replicated. Items are placed in the
 * layout's partitions (`partitionOf` of their hash), as a clustered node places them: a node
 * restarted on the directory keeps its Merkle trees instead of rebuilding them.
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import type { Db } from '../lib/db/db.ts'
import { openLmdb } from '../lib/db/lmdb.ts'
import { Garage } from '../lib/model/garage.ts'
import type { ObjectEntry } from '../lib/model/s3/object-table.ts'
import { partitionOf } from '../lib/rpc/layout/version.ts'
import { MerkleUpdater } from '../lib/table/merkle.ts'
import { LocalReplication, type TableReplication } from '../lib/table/replication.ts'
import { silentLogger } from '../lib/util/logger.ts'

/** Partitions of a clustered node (256 ring partitions for sharded tables), on one node. */
class LoaderReplication extends LocalReplication {
  override partitionOf(hash?: Uint8Array): number {
    return hash === undefined ? 0 : partitionOf(hash)
  }
}

/**
 * The model of one loading node on `db` (`dir`/data for blocks): every table's rows on this node
 * (`sharded` places them; default one partition), no background work, no logs. With the default
 * placement the node is loaded as a node alone, which keeps no Merkle todo; with a cluster's
 * placement (withModels) changes are queued for the Merkle trees, as a clustered node's are.
 */
export function loaderGarage(db: Db, dir: string, sharded: TableReplication = new LocalReplication('loader')): Garage {
  return new Garage({
    merkle: sharded instanceof LoaderReplication,
    db,
    self: 'loader',
    dataDir: join(dir, 'data'),
    dataFsync: false,
    blockSize: 1024 * 1024,
    blockGcDelayMsec: 600_000,
    allowPunycode: false,
    sharded,
    fullCopy: new LocalReplication('loader'),
    log: silentLogger,
  })
}

/** Opens the model of each node directory (`<dir>/meta`, `<dir>/data`), runs `fn`, closes them. */
export async function withModels<T>(dirs: readonly string[], fn: (gs: Garage[]) => Promise<T> | T): Promise<T> {
  const dbs = await Promise.all(dirs.map((dir) => openLmdb(join(dir, 'meta'), { fsync: false })))
  try {
    const gs = dbs.map((db, i) => {
      const dir = dirs[i] as string
      return loaderGarage(db, dir, new LoaderReplication('loader'))
    })
    return await fn(gs)
  } finally {
    await Promise.all(dbs.map((db) => db.close()))
  }
}

const BODY = new Uint8Array(64).fill(42)
const ETAG = createHash('md5').update(BODY).digest('hex')

/** A complete inline object of 64 bytes; `uuid` (16 bytes) and `ts` fixed by the caller. */
export function inlineObjectRow(bucketId: Uint8Array, key: string, uuid: Uint8Array, ts: number): ObjectEntry {
  return {
    bucketId,
    key,
    versions: [
      {
        uuid,
        ts,
        state: {
          t: 'complete',
          data: {
            t: 'inline',
            meta: { size: 64, etag: ETAG, headers: [['content-type', 'application/octet-stream']] },
            bytes: BODY,
          },
        },
      },
    ],
  }
}

/**
 * Writes `rows` to the object table of every model, `batch` rows per transaction; calls
 * `progress` after each batch with the rows written so far. Returns the number of rows.
 */
export function loadObjectRows(
  gs: readonly Garage[],
  rows: Iterable<ObjectEntry>,
  o: { batch?: number; progress?: (done: number) => void } = {},
): number {
  const size = o.batch ?? 10_000
  let batch: ObjectEntry[] = []
  let done = 0
  const flush = (): void => {
    for (const g of gs) g.objectTable.data.updateMany(batch)
    done += batch.length
    batch = []
    o.progress?.(done)
  }
  for (const r of rows) {
    batch.push(r)
    if (batch.length >= size) flush()
  }
  if (batch.length > 0) flush()
  return done
}

/** Folds the object table's Merkle todo of a model; returns how many items were folded. */
export async function foldObjectMerkle(g: Garage): Promise<number> {
  const merkle = new MerkleUpdater({
    data: g.objectTable.data,
    replication: new LoaderReplication('loader'),
    log: silentLogger,
  })
  await merkle.checkPartitioning()
  const todo = merkle.todoLength()
  merkle.updateAll()
  return todo
}
