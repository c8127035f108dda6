/**
 * `node --import tsx bench/merkle-fold.ts`: rows/s of the Merkle fold, per-item (Garage's
 * algorithm) against batched (lib/table/merkle.ts), on the same table (issue 21).
 *
 * Loads MERKLE_ROWS rows (default 200,000) of ~200 bytes into a register table on a temp lmdb,
 * partitioned as a sharded table is (256 partitions), then folds the todo once per mode: the
 * per-item fold first, then a rebuild (tree cleared, every row queued again) folded by the
 * batched fold at each batch size of MERKLE_BATCHES (default 1000,10000). One JSON line per fold.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openLmdb } from '../lib/db/lmdb.ts'
import { TableData } from '../lib/table/data.ts'
import { MerkleUpdater } from '../lib/table/merkle.ts'
import { LocalReplication, type TableReplication } from '../lib/table/replication.ts'
import { hashPartitionKey, type TableSchema } from '../lib/table/schema.ts'
import { defineCodec } from '../lib/util/codec.ts'
import type { Hash } from '../lib/util/data.ts'
import { utf8 } from '../lib/util/data.ts'
import { silentLogger } from '../lib/util/logger.ts'
import { loadavg } from 'node:os'

const ROWS = Number(process.env.MERKLE_ROWS ?? 200_000)
const BATCHES = (process.env.MERKLE_BATCHES ?? '1000,10000').split(',').map(Number)

interface Row {
  pk: string
  sk: string
  pad: Uint8Array
}
const schema: TableSchema<Row> = {
  tableName: 'bench',
  codec: defineCodec<Row>('Bmkl1'),
  partitionKey: (e) => utf8(e.pk),
  sortKey: (e) => utf8(e.sk),
  partitionHash: hashPartitionKey,
  merge: (_a, b) => b,
  isTombstone: () => false,
}

/** A single node's table placed as a sharded one: partition = first byte of the hash. */
function shardedLocal(self: string): TableReplication {
  return Object.assign(new LocalReplication(self), { partitionOf: (hash: Hash): number => hash[0] ?? 0 })
}

const dir = await mkdtemp(join(tmpdir(), 'garage-merkle-bench-'))
const db = await openLmdb(dir, { fsync: false })
try {
  const replication = shardedLocal('bench')
  const data = new TableData(schema, db, { replication, self: 'bench' })
  const pad = new Uint8Array(150).fill(1)
  const t0 = performance.now()
  for (let i = 0; i < ROWS; i += 10_000) {
    data.updateMany(
      Array.from({ length: Math.min(10_000, ROWS - i) }, (_, j) => ({ pk: `b${(i + j) % 1000}`, sk: `k${i + j}`, pad })),
    )
  }
  const load = loadavg()[0]
  process.stderr.write(`loaded ${ROWS} rows in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`)
  const run = (fold: 'per-item' | 'batched', batch: number): void => {
    const m = new MerkleUpdater({ data, replication, log: silentLogger, fold })
    const todo = m.todoLength()
    const s = performance.now()
    m.updateAll(batch)
    const secs = (performance.now() - s) / 1000
    const root = Buffer.from(m.rootHash(7)).toString('hex').slice(0, 16)
    process.stdout.write(
      `${JSON.stringify({ bench: 'merkle-fold', fold, batch, rows: todo, secs: Math.round(secs * 10) / 10, rows_s: Math.round(todo / secs), root7: root, load1: [load ?? 0, loadavg()[0] ?? 0].map((x) => Math.round(x * 10) / 10) })}\n`,
    )
  }
  run('per-item', 256)
  for (const b of BATCHES) {
    await new MerkleUpdater({ data, replication, log: silentLogger }).rebuild()
    run('batched', b)
  }
} finally {
  await db.close()
  await rm(dir, { recursive: true, force: true })
}
