/**
 * Cross-table batches (lib/table/batch.ts) on three in-process nodes: real NetApp transports on
 * 127.0.0.1 and real lmdb stores. One request per node carries every table's entries and each
 * node merges them in one transaction; insertInOrder falls back to one table after the other when
 * a node would store a later item without an earlier one.
 */
import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type TestContext, test } from 'node:test'
import type { Transaction } from '../../lib/db/db.ts'
import { openLmdb } from '../../lib/db/lmdb.ts'
import type { NetCallEvent } from '../../lib/net/netapp.ts'
import { batchItem, TableBatch } from '../../lib/table/batch.ts'
import { TableData } from '../../lib/table/data.ts'
import type { NodeId } from '../../lib/table/replication.ts'
import {
  NetAppTableTransport,
  parseTableBatchRequest,
  registerTableBatchHandler,
  registerTableHandler,
} from '../../lib/table/rpc.ts'
import { hashPartitionKey, type TableSchema } from '../../lib/table/schema.ts'
import { Table } from '../../lib/table/table.ts'
import { defineCodec } from '../../lib/util/codec.ts'
import { utf8 } from '../../lib/util/data.ts'
import { GarageError, QuorumError } from '../../lib/util/errors.ts'
import { silentLogger } from '../../lib/util/logger.ts'
import { eventually } from '../helpers/eventually.ts'
import { newSecret, startNode } from '../net/net-fixtures.ts'
import { FixedReplication, onNodes } from './replication-fixtures.ts'

interface Row {
  pk: string
  sk: string
  n: number
}

/** A max-merged row table; its hook refuses n = 666 (to show that a batch commits as one). */
const schemaOf = (tableName: string): TableSchema<Row> => ({
  tableName,
  codec: defineCodec<Row>(`T${tableName}1`),
  partitionKey: (e) => utf8(e.pk),
  sortKey: (e) => utf8(e.sk),
  partitionHash: hashPartitionKey,
  merge: (a, b) => ({ ...a, n: Math.max(a.n, b.n) }),
  isTombstone: () => false,
  updated: (_tx, _old, next) => {
    if (next?.n === 666) throw new Error('the hook refuses 666')
  },
})

interface BatchNode {
  id: NodeId
  transport: NetAppTableTransport
  a: Table<Row>
  b: Table<Row>
  batch: TableBatch
  local(table: 'a' | 'b', sk: string): number | undefined
}

/**
 * Three nodes with tables `a` (on all three) and `b` (on all three, or on nodes 1 and 2 only with
 * `bOnLastTwo`); node `silent` registers no batch handler (an older node).
 */
async function threeNodes(t: TestContext, o: { bOnLastTwo?: boolean; silent?: number } = {}): Promise<BatchNode[]> {
  const secret = newSecret()
  const nets = await Promise.all([0, 1, 2].map(() => startNode(t, secret)))
  for (const x of nets) for (const y of nets) if (x !== y) await x.net.connect(y.key.id, y.addr)
  const ids = nets.map((n) => n.key.id)
  const stop = new AbortController()
  const out: BatchNode[] = []
  for (const [i, { net, key }] of nets.entries()) {
    const dir = await mkdtemp(join(tmpdir(), 'garage-table-batch-'))
    const db = await openLmdb(dir, { fsync: false })
    const transport = new NetAppTableTransport(net)
    const make = (name: string, nodes: NodeId[]): Table<Row> => {
      const schema = schemaOf(name)
      const table = new Table<Row>({
        schema,
        data: new TableData(schema, db),
        replication: onNodes(key.id, nodes),
        self: key.id,
        log: silentLogger,
        transport,
        signal: stop.signal,
        timeoutMs: 5000,
      })
      registerTableHandler(net, table)
      return table
    }
    const a = make('a', ids)
    const b = make('b', o.bOnLastTwo === true ? ids.slice(1) : ids)
    const batch = new TableBatch([a, b] as Array<Table<unknown>>, {
      self: key.id,
      transaction: (fn) => db.transaction(fn),
      log: silentLogger,
      transport,
      timeoutMs: 5000,
      signal: stop.signal,
    })
    if (o.silent !== i) registerTableBatchHandler(net, batch)
    t.after(async () => {
      stop.abort()
      await net.close()
      await db.close()
      await rm(dir, { recursive: true, force: true })
    })
    out.push({
      id: key.id,
      transport,
      a,
      b,
      batch,
      local: (table, sk) => (table === 'a' ? a : b).data.read(utf8('p'), utf8(sk))?.n,
    })
  }
  return out
}

/** The paths of the RPCs made while `fn` runs. */
async function callsDuring(fn: () => Promise<void>): Promise<string[]> {
  const paths: string[] = []
  const onCall = (m: unknown): void => {
    paths.push((m as NetCallEvent).path)
  }
  subscribe('garage:net:call', onCall)
  try {
    await fn()
  } finally {
    unsubscribe('garage:net:call', onCall)
  }
  return paths.sort()
}

test('a batch sends one request per remote node carrying every table, and reaches the write quorum', async (t) => {
  const nodes = await threeNodes(t)
  const [n0] = nodes as [BatchNode]
  const paths = await callsDuring(() =>
    n0.batch.insert([batchItem(n0.a, [{ pk: 'p', sk: 'x', n: 1 }]), batchItem(n0.b, [{ pk: 'p', sk: 'y', n: 2 }])]),
  )
  // Those answered before the quorum; the third one may still be running.
  assert.ok(paths.length >= 1 && paths.every((p) => p === 'table/_batch'), `one batch per node: ${paths}`)
  const both = nodes.filter((n) => n.local('a', 'x') === 1 && n.local('b', 'y') === 2).length
  assert.ok(both >= 2, `the quorum holds both rows at once (${both} nodes)`)
  await eventually('every replica', async () => nodes.every((n) => n.local('a', 'x') === 1 && n.local('b', 'y') === 2), {
    timeoutMs: 5000,
  })
  // insertInOrder with co-located tables is the same single request.
  const ordered = await callsDuring(() =>
    n0.batch.insertInOrder([batchItem(n0.a, [{ pk: 'p', sk: 'x2', n: 3 }]), batchItem(n0.b, [{ pk: 'p', sk: 'y2', n: 4 }])]),
  )
  assert.ok(
    ordered.every((p) => p === 'table/_batch'),
    `ordered, co-located: ${ordered}`,
  )
})

test("a node merges a batch in one transaction: a refused entry keeps the other table's entry out too", async (t) => {
  const [n0] = (await threeNodes(t)) as [BatchNode]
  const request = {
    items: [
      { table: 'a', entries: [n0.a.schema.codec.encode({ pk: 'p', sk: 'x', n: 5 })] },
      { table: 'b', entries: [n0.b.schema.codec.encode({ pk: 'p', sk: 'y', n: 666 })] },
    ],
  }
  assert.throws(() => n0.batch.handle(request), /refuses 666/)
  assert.equal(n0.local('a', 'x'), undefined, 'the first table entry was rolled back')
  assert.throws(
    () => n0.batch.handle({ items: [{ table: 'nope', entries: [] }] }),
    (e: unknown) => e instanceof GarageError && e.code === 'GARAGE_ERR_DECODE',
  )
  for (const bad of [null, {}, { items: [{ table: 1, entries: [] }] }, { items: [{ table: 'a', entries: ['x'] }] }]) {
    assert.throws(
      () => parseTableBatchRequest(bad),
      (e: unknown) => e instanceof GarageError && e.code === 'GARAGE_ERR_DECODE',
    )
  }
  assert.deepEqual(parseTableBatchRequest({ items: [{ table: 'a', entries: [new Uint8Array([1])] }] }), {
    items: [{ table: 'a', entries: [new Uint8Array([1])] }],
  })
})

test('insertInOrder writes one table after the other when a node stores the later one without the earlier', async (t) => {
  // b lives on nodes 1 and 2 only; written from node 1, a is on 0, 1, 2: b ⊆ a, one batch.
  const nodes = await threeNodes(t, { bOnLastTwo: true })
  const [, n1] = nodes as [BatchNode, BatchNode]
  const together = await callsDuring(() =>
    n1.batch.insertInOrder([batchItem(n1.a, [{ pk: 'p', sk: 'x', n: 1 }]), batchItem(n1.b, [{ pk: 'p', sk: 'y', n: 1 }])]),
  )
  assert.ok(
    together.every((p) => p === 'table/_batch'),
    `b's nodes all store a: one batch (${together})`,
  )
  // The other order: a after b, but node 0 stores a without b: b first, at quorum, then a.
  const apart = await callsDuring(() =>
    n1.batch.insertInOrder([batchItem(n1.b, [{ pk: 'p', sk: 'y2', n: 2 }]), batchItem(n1.a, [{ pk: 'p', sk: 'x2', n: 2 }])]),
  )
  assert.ok(!apart.includes('table/_batch'), `written table by table: ${apart}`)
  assert.ok(apart.includes('table/a') && apart.includes('table/b'), `both tables written: ${apart}`)
  assert.ok(nodes.filter((n) => n.local('a', 'x2') === 2).length >= 2)
  assert.ok(nodes.filter((n) => n.local('b', 'y2') === 2).length >= 2)
})

test('without a batch-capable transport, insertInOrder writes table after table and insert table by table', async (t) => {
  const nodes = await threeNodes(t)
  const [n0] = nodes as [BatchNode]
  const events: NetCallEvent[] = []
  const onCall = (m: unknown): void => {
    events.push(m as NetCallEvent)
  }
  // A transport of the older kind: `call` only.
  const plain = new TableBatch([n0.a, n0.b] as Array<Table<unknown>>, {
    self: n0.id,
    transaction: (fn) => n0.a.data.db.transaction(fn),
    log: silentLogger,
    transport: { call: (node, table, request, options) => n0.transport.call(node, table, request, options) },
    timeoutMs: 5000,
  })
  subscribe('garage:net:call', onCall)
  try {
    await plain.insertInOrder([batchItem(n0.a, [{ pk: 'p', sk: 'x', n: 1 }]), batchItem(n0.b, [{ pk: 'p', sk: 'y', n: 1 }])])
    const firstB = Math.min(...events.filter((e) => e.path === 'table/b').map((e) => e.startMs))
    const aDone = events.filter((e) => e.path === 'table/a' && e.endMs <= firstB).length
    assert.ok(aDone >= 1, 'a reached a remote replica before b was sent')
    assert.ok(!events.some((e) => e.path === 'table/_batch'))
    await plain.insert([batchItem(n0.a, [{ pk: 'p', sk: 'x2', n: 2 }]), batchItem(n0.b, [{ pk: 'p', sk: 'y2', n: 2 }])])
    assert.ok(!events.some((e) => e.path === 'table/_batch'))
  } finally {
    unsubscribe('garage:net:call', onCall)
  }
  assert.ok(nodes.filter((n) => n.local('a', 'x2') === 2 && n.local('b', 'y2') === 2).length >= 2)
})

test('a node without the batch endpoint counts as a failed replica: the quorum still holds, two such fail', async (t) => {
  const nodes = await threeNodes(t, { silent: 2 })
  const [n0] = nodes as [BatchNode]
  await n0.batch.insert([batchItem(n0.a, [{ pk: 'p', sk: 'x', n: 1 }]), batchItem(n0.b, [{ pk: 'p', sk: 'y', n: 1 }])])
  assert.equal(nodes.filter((n) => n.local('a', 'x') === 1 && n.local('b', 'y') === 1).length, 2)

  const lonely = await threeNodes(t, { silent: 1 })
  const [m0] = lonely as [BatchNode]
  // Node 1 has no handler (silent: 1); node 0 itself and node 2 refuse 666 in their hook: no quorum.
  // Two tables: a batch of one table is that table's own insert (which node 1 would take).
  await assert.rejects(
    m0.batch.insert([batchItem(m0.a, [{ pk: 'p', sk: 'x', n: 666 }]), batchItem(m0.b, [{ pk: 'p', sk: 'y', n: 1 }])]),
    (e: unknown) => e instanceof QuorumError,
  )
})

test("local writes go with a lone node's batch in its one transaction, and are undone with it", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'garage-table-batch-'))
  const db = await openLmdb(dir, { fsync: false })
  t.after(async () => {
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })
  const self = 'lone' as NodeId
  const make = (name: string): Table<Row> => {
    const schema = schemaOf(name)
    const replication = new FixedReplication({ read: [self], write: [self], readQuorum: 1, writeQuorum: 1 })
    return new Table<Row>({ schema, data: new TableData(schema, db), replication, self, log: silentLogger })
  }
  const [a, b] = [make('a'), make('b')]
  let commits = 0
  const batch = new TableBatch([a, b] as Array<Table<unknown>>, {
    self,
    transaction: (fn) => {
      commits++
      return db.transaction(fn)
    },
    log: silentLogger,
  })
  const own = db.openTree('own')
  const mark = (k: string) => (tx: Transaction) => tx.insert(own, utf8(k), utf8('1'))
  const marked = (k: string): boolean => own.get(utf8(k)) !== undefined
  const row = (table: Table<Row>, sk: string): number | undefined => table.data.read(utf8('p'), utf8(sk))?.n

  await batch.insert([batchItem(a, [{ pk: 'p', sk: 'x', n: 1 }]), batchItem(b, [{ pk: 'p', sk: 'y', n: 2 }])], {
    before: mark('before'),
    after: mark('after'),
  })
  assert.equal(commits, 1, 'the rows and both local writes: one commit')
  assert.deepEqual([row(a, 'x'), row(b, 'y'), marked('before'), marked('after')], [1, 2, true, true])

  await assert.rejects(
    batch.insertInOrder([batchItem(a, [{ pk: 'p', sk: 'x2', n: 1 }]), batchItem(b, [{ pk: 'p', sk: 'y2', n: 666 }])], {
      before: mark('before2'),
      after: mark('after2'),
    }),
    /refuses 666/,
  )
  assert.deepEqual([row(a, 'x2'), marked('before2'), marked('after2')], [undefined, false, false], 'nothing kept')

  // Nothing to write: the local writes alone, in one commit.
  commits = 0
  await batch.insert([], { before: mark('before3'), after: mark('after3') })
  assert.equal(commits, 1)
  assert.ok(marked('before3') && marked('after3'))
})

test('on a cluster, `before` commits before any replica is written and `after` once the quorum is reached, never on failure', async (t) => {
  const nodes = await threeNodes(t)
  const [n0] = nodes as [BatchNode]
  const db = n0.a.data.db
  const own = db.openTree('own')
  const seen: string[] = []
  await n0.batch.insert([batchItem(n0.a, [{ pk: 'p', sk: 'x', n: 1 }]), batchItem(n0.b, [{ pk: 'p', sk: 'y', n: 1 }])], {
    before: (tx) => {
      tx.insert(own, utf8('before'), utf8('1'))
      seen.push(`before: ${nodes.filter((n) => n.local('a', 'x') !== undefined).length} replicas`)
    },
    after: (tx) => {
      tx.insert(own, utf8('after'), utf8('1'))
      seen.push(`after: ${nodes.filter((n) => n.local('a', 'x') === 1 && n.local('b', 'y') === 1).length >= 2}`)
    },
  })
  assert.deepEqual(seen, ['before: 0 replicas', 'after: true'])
  assert.ok(own.get(utf8('before')) !== undefined && own.get(utf8('after')) !== undefined)

  // Every replica refuses 666: no quorum, so no `after`.
  await assert.rejects(
    n0.batch.insert([batchItem(n0.a, [{ pk: 'p', sk: 'x2', n: 666 }]), batchItem(n0.b, [{ pk: 'p', sk: 'y2', n: 1 }])], {
      after: (tx) => tx.insert(own, utf8('after2'), utf8('1')),
    }),
    (e: unknown) => e instanceof QuorumError,
  )
  assert.equal(own.get(utf8('after2')), undefined)
})
