import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type TestContext, test } from 'node:test'
import type { Db } from '../../lib/db/db.ts'
import { openLmdb } from '../../lib/db/lmdb.ts'
import { MAX_SORT_KEY_BYTES, TableData } from '../../lib/table/data.ts'
import { InsertQueueWorker } from '../../lib/table/queue.ts'
import { LocalReplication } from '../../lib/table/replication.ts'
import { hashPartitionKey, type TableSchema } from '../../lib/table/schema.ts'
import { Table } from '../../lib/table/table.ts'
import { BackgroundRunner } from '../../lib/util/background/worker.ts'
import { defineCodec } from '../../lib/util/codec.ts'
import { utf8 } from '../../lib/util/data.ts'
import { isGarageError } from '../../lib/util/errors.ts'
import { silentLogger } from '../../lib/util/logger.ts'
import { eventually } from '../helpers/eventually.ts'

/** A grow-only counter per (pk, sk): merge = max. */
interface Counter {
  pk: string
  sk: string
  n: number
}

async function openDb(t: TestContext): Promise<Db> {
  const dir = await mkdtemp(join(tmpdir(), 'garage-table-'))
  const db = await openLmdb(dir, { fsync: false })
  t.after(async () => {
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })
  return db
}

function counterSchema(name: string, updated?: TableSchema<Counter>['updated']): TableSchema<Counter> {
  return {
    tableName: name,
    codec: defineCodec<Counter>('Tcnt1'),
    partitionKey: (e) => utf8(e.pk),
    sortKey: (e) => utf8(e.sk),
    partitionHash: hashPartitionKey,
    merge: (a, b) => ({ ...a, n: Math.max(a.n, b.n) }),
    isTombstone: () => false,
    updated,
  }
}

function makeTable(db: Db, schema: TableSchema<Counter>): Table<Counter> {
  return new Table({
    schema,
    data: new TableData(schema, db),
    replication: new LocalReplication('me'),
    self: 'me',
    log: silentLogger,
  })
}

test('inserts merge with the stored value; reads return the merge', async (t) => {
  const table = makeTable(await openDb(t), counterSchema('c'))
  await table.insert({ pk: 'p', sk: 'a', n: 5 })
  await table.insert({ pk: 'p', sk: 'a', n: 3 })
  assert.equal((await table.get(utf8('p'), utf8('a')))?.n, 5)
  assert.equal(await table.get(utf8('p'), utf8('zz')), undefined)
})

test('ranges stay inside one partition, in sort key order, with filter, limit and reverse', async (t) => {
  const table = makeTable(await openDb(t), counterSchema('c'))
  await table.insertMany(['d', 'b', 'a', 'c'].map((sk, i) => ({ pk: 'p1', sk, n: i })))
  await table.insert({ pk: 'p2', sk: 'a', n: 9 })
  const all = await table.getRange(utf8('p1'), { limit: 100 })
  assert.deepEqual(
    all.map((e) => e.sk),
    ['a', 'b', 'c', 'd'],
  )
  const from = await table.getRange(utf8('p1'), { start: utf8('b'), limit: 2 })
  assert.deepEqual(
    from.map((e) => e.sk),
    ['b', 'c'],
  )
  const filtered = await table.getRange(utf8('p1'), { limit: 100, filter: (e) => e.n % 2 === 0 })
  assert.deepEqual(
    filtered.map((e) => e.sk),
    ['a', 'd'],
  )
  const rev = await table.getRange(utf8('p1'), { start: utf8('c'), limit: 10, reverse: true })
  assert.deepEqual(
    rev.map((e) => e.sk),
    ['c', 'b', 'a'],
  )
})

test('the updated hook runs once per change, inside the write transaction', async (t) => {
  const db = await openDb(t)
  const seen: Array<[number | undefined, number]> = []
  const table = makeTable(
    db,
    counterSchema('c', (_tx, prev, next) => {
      if (next !== undefined) seen.push([prev?.n, next.n])
    }),
  )
  await table.insert({ pk: 'p', sk: 'a', n: 1 })
  await table.insert({ pk: 'p', sk: 'a', n: 1 }) // no change: no hook
  await table.insert({ pk: 'p', sk: 'a', n: 4 })
  assert.deepEqual(seen, [
    [undefined, 1],
    [1, 4],
  ])
})

test('a hook that throws aborts the whole write', async (t) => {
  const db = await openDb(t)
  const table = makeTable(
    db,
    counterSchema('c', (_tx, _prev, next) => {
      if (next !== undefined && next.n > 10) throw new Error('refused')
    }),
  )
  await table.insert({ pk: 'p', sk: 'a', n: 1 })
  await assert.rejects(table.insert({ pk: 'p', sk: 'a', n: 11 }), /refused/)
  assert.equal((await table.get(utf8('p'), utf8('a')))?.n, 1)
})

test('queued inserts are persisted with their cause and applied by the queue worker', async (t) => {
  const db = await openDb(t)
  const target = makeTable(db, counterSchema('target'))
  const source = makeTable(
    db,
    counterSchema('source', (tx, _prev, next) => {
      if (next !== undefined) target.queueInsert(tx, { pk: next.pk, sk: next.sk, n: next.n * 10 })
    }),
  )
  await source.insert({ pk: 'p', sk: 'a', n: 2 })
  // Nothing drains the queue yet: the effect waits in the persistent queue tree.
  assert.equal(target.data.insertQueue.count(), 1)
  assert.equal(await target.get(utf8('p'), utf8('a')), undefined)
  const stop = new AbortController()
  const runner = new BackgroundRunner(silentLogger, stop.signal)
  runner.spawn(new InsertQueueWorker(target))
  t.after(async () => {
    stop.abort()
    await runner.join()
  })
  await eventually('queued insert', async () => (await target.get(utf8('p'), utf8('a')))?.n === 20, { timeoutMs: 3000 })
  assert.equal(target.data.insertQueue.count(), 0)
})

test('sort keys up to MAX_SORT_KEY_BYTES are stored (GC queue included); longer ones are refused before any write', async (t) => {
  const db = await openDb(t)
  // n = 0 is a tombstone: its GC queue key (time ‖ partition hash ‖ sort key) is the longest key a table writes.
  const schema = { ...counterSchema('long'), isTombstone: (e: Counter) => e.n === 0 }
  const table = makeTable(db, schema)
  const atLimit = 'k'.repeat(MAX_SORT_KEY_BYTES)
  await table.insert({ pk: 'p', sk: atLimit, n: 0 })
  assert.deepEqual(await table.get(utf8('p'), utf8(atLimit)), { pk: 'p', sk: atLimit, n: 0 })
  assert.equal(table.data.gcTodo.count(), 1, 'the tombstone was queued for GC')
  assert.equal((await table.getRange(utf8('p'), { start: utf8(atLimit), limit: 10, reverse: true })).length, 1)
  const tooLong = (err: unknown) => isGarageError(err) && err.code === 'GARAGE_ERR_KEY_TOO_LONG'
  for (const n of [MAX_SORT_KEY_BYTES + 1, 2000, 9000]) {
    const sk = 'k'.repeat(n)
    await assert.rejects(table.insert({ pk: 'p', sk, n: 1 }), tooLong, `insert ${n}`)
    await assert.rejects(table.get(utf8('p'), utf8(sk)), tooLong, `get ${n}`)
    await assert.rejects(table.getRange(utf8('p'), { start: utf8(sk), limit: 10 }), tooLong, `range ${n}`)
    assert.throws(() => table.data.read(utf8('p'), utf8(sk)), tooLong, `local read ${n}`)
  }
  assert.equal(table.data.store.count(), 1, 'nothing else was stored')
  assert.equal(table.data.gcTodo.count(), 1)
})
