/**
 * A table replicated on three in-process nodes: real NetApp transports on 127.0.0.1 and real
 * lmdb stores, with a fixed placement (every entry on the three nodes, quorums of two). Covers
 * quorum writes and reads, read repair, ranges merged across replicas, and failures.
 */
import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type TestContext, test } from 'node:test'
import { isUnavailable, toApiError } from '../../lib/api/common/errors.ts'
import { openLmdb } from '../../lib/db/lmdb.ts'
import type { NetApp, NetCallEvent } from '../../lib/net/netapp.ts'
import { TableData } from '../../lib/table/data.ts'
import { InsertQueueWorker } from '../../lib/table/queue.ts'
import type { NodeId } from '../../lib/table/replication.ts'
import { NetAppTableTransport, parseTableRequest, registerTableHandler, tableEndpoint } from '../../lib/table/rpc.ts'
import { hashPartitionKey, type TableSchema } from '../../lib/table/schema.ts'
import { Table } from '../../lib/table/table.ts'
import { defineCodec } from '../../lib/util/codec.ts'
import { utf8 } from '../../lib/util/data.ts'
import { QuorumError } from '../../lib/util/errors.ts'
import { silentLogger } from '../../lib/util/logger.ts'
import { eventually } from '../helpers/eventually.ts'
import { newSecret, startNode } from '../net/net-fixtures.ts'
import { FixedReplication, onNodes } from './replication-fixtures.ts'

/** A grow-only counter per (pk, sk): merge = max. */
interface Counter {
  pk: string
  sk: string
  n: number
}

const schema: TableSchema<Counter> = {
  tableName: 'counter',
  codec: defineCodec<Counter>('Tcnt1'),
  partitionKey: (e) => utf8(e.pk),
  sortKey: (e) => utf8(e.sk),
  partitionHash: hashPartitionKey,
  merge: (a, b) => ({ ...a, n: Math.max(a.n, b.n) }),
  isTombstone: () => false,
}

interface ClusterNode {
  id: NodeId
  net: NetApp
  table: Table<Counter>
  /** The local copy, read without any RPC. */
  local(sk: string, pk?: string): number | undefined
}

/**
 * Three nodes; node i's table is registered on its NetApp unless `hang` names it, in which case
 * its handler never answers (until the caller gives up).
 */
/** `r` with other quorums (the consistency modes' read and write quorums). */
function withQuorums(r: FixedReplication, q: { read: number; write: number } | undefined): FixedReplication {
  if (q === undefined) return r
  return new FixedReplication({ read: r.readNodes(), write: r.storageNodes(), readQuorum: q.read, writeQuorum: q.write })
}

async function threeNodes(
  t: TestContext,
  o: { timeoutMs?: number; hang?: number; quorums?: { read: number; write: number } } = {},
): Promise<ClusterNode[]> {
  const secret = newSecret()
  const nets = await Promise.all([0, 1, 2].map(() => startNode(t, secret)))
  for (const a of nets) for (const b of nets) if (a !== b) await a.net.connect(b.key.id, b.addr)
  const ids = nets.map((n) => n.key.id)
  const stop = new AbortController()
  const out: ClusterNode[] = []
  for (const [i, { net, key }] of nets.entries()) {
    const dir = await mkdtemp(join(tmpdir(), 'garage-table-cluster-'))
    const db = await openLmdb(dir, { fsync: false })
    const table = new Table<Counter>({
      schema,
      data: new TableData(schema, db),
      replication: withQuorums(onNodes(key.id, ids), o.quorums),
      self: key.id,
      log: silentLogger,
      transport: new NetAppTableTransport(net),
      signal: stop.signal,
      ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
    })
    if (o.hang === i) {
      net.handle(
        tableEndpoint(schema.tableName),
        (_req, _from, ctx) =>
          new Promise<Uint8Array[]>((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))),
      )
    } else registerTableHandler(net, table)
    t.after(async () => {
      stop.abort()
      await table.settled()
      await net.close()
      await db.close()
      await rm(dir, { recursive: true, force: true })
    })
    out.push({
      id: key.id,
      net,
      table,
      local: (sk, pk = 'p') => table.data.read(utf8(pk), utf8(sk))?.n,
    })
  }
  return out
}

test('a write through one node reaches every replica; reads through any node see it', async (t) => {
  const [a, b, c] = (await threeNodes(t)) as [ClusterNode, ClusterNode, ClusterNode]
  await a.table.insert({ pk: 'p', sk: 'x', n: 7 })
  const stored = [a, b, c].filter((n) => n.local('x') === 7).length
  assert.ok(stored >= 2, `the write quorum holds it at once (${stored} nodes)`)
  await eventually('the third replica', async () => [a, b, c].every((n) => n.local('x') === 7), { timeoutMs: 3000 })
  for (const n of [b, c]) assert.equal((await n.table.get(utf8('p'), utf8('x')))?.n, 7, 'read through another node')
  assert.equal(await c.table.get(utf8('p'), utf8('none')), undefined, 'a missing entry reads as undefined')
})

test('a read merges the copies it got and repairs the replicas that were behind', async (t) => {
  const [a, b, c] = (await threeNodes(t)) as [ClusterNode, ClusterNode, ClusterNode]
  // Divergent local copies, written around the quorum path.
  a.table.data.update({ pk: 'p', sk: 'x', n: 1 })
  b.table.data.update({ pk: 'p', sk: 'x', n: 5 })
  c.table.data.update({ pk: 'p', sk: 'x', n: 3 })
  // A asks itself and B (closest first, quorum 2).
  assert.equal((await a.table.get(utf8('p'), utf8('x')))?.n, 5, 'the merge of A and B')
  await a.table.settled()
  assert.equal(a.local('x'), 5, 'A repaired')
  assert.equal(b.local('x'), 5, 'B unchanged')
  assert.equal(c.local('x'), 3, 'C was not asked, so not repaired')
  // An entry missing on the reading node is written back to it.
  b.table.data.update({ pk: 'p', sk: 'y', n: 2 })
  assert.equal((await a.table.get(utf8('p'), utf8('y')))?.n, 2)
  await a.table.settled()
  assert.equal(a.local('y'), 2, 'the missing copy was repaired')
})

/** The paths of the RPCs made while `fn` runs, and its result. */
async function callsDuring<T>(fn: () => Promise<T>): Promise<{ paths: string[]; value: T }> {
  const paths: string[] = []
  const onCall = (m: unknown): void => {
    paths.push((m as NetCallEvent).path)
  }
  subscribe('garage:net:call', onCall)
  try {
    const value = await fn()
    return { paths, value }
  } finally {
    unsubscribe('garage:net:call', onCall)
  }
}

test('getMany reads 300 entries of 300 partitions in a few calls per node, equal to one get each', async (t) => {
  const nodes = (await threeNodes(t)) as [ClusterNode, ClusterNode, ClusterNode]
  const [a, b] = nodes
  const rows = Array.from({ length: 300 }, (_, i) => ({ pk: `p${i}`, sk: 's', n: i + 1 }))
  await a.table.insertMany(rows)
  await eventually('every replica', async () => nodes.every((x) => rows.every((r) => x.local('s', r.pk) === r.n)), {
    timeoutMs: 5000,
  })
  // Keys in a shuffled order, with absent ones among them.
  const keys = [...rows.map((r) => r.pk), 'absent1', 'absent2']
    .sort()
    .map((pk) => ({ partitionKey: utf8(pk), sortKey: utf8('s') }))
  const batched = await callsDuring(() => b.table.getMany(keys))
  const oneByOne = await callsDuring(() => Promise.all(keys.map((k) => b.table.get(k.partitionKey, k.sortKey))))
  assert.deepEqual(batched.value, oneByOne.value, 'the same entries, in the order of the keys')
  assert.equal(batched.value.filter((e) => e === undefined).length, 2, 'absent keys read as undefined')
  // 302 keys: two calls (256 keys per call), each answered by this node and one or two others.
  assert.ok(batched.paths.length >= 2 && batched.paths.length <= 4, `two calls per remote node at most: ${batched.paths.length}`)
  assert.ok(oneByOne.paths.length >= keys.length, `one call per key the other way: ${oneByOne.paths.length}`)
  assert.deepEqual(await b.table.getMany([]), [])
})

test('getMany merges divergent copies and repairs the replicas that were behind, as get does', async (t) => {
  const [a, b, c] = (await threeNodes(t)) as [ClusterNode, ClusterNode, ClusterNode]
  a.table.data.update({ pk: 'p', sk: 'x', n: 1 })
  b.table.data.update({ pk: 'p', sk: 'x', n: 5 })
  b.table.data.update({ pk: 'p', sk: 'y', n: 2 })
  c.table.data.update({ pk: 'p', sk: 'x', n: 9 })
  // A asks itself and B (closest first, quorum 2).
  const got = await a.table.getMany(['x', 'y', 'z'].map((sk) => ({ partitionKey: utf8('p'), sortKey: utf8(sk) })))
  assert.deepEqual(
    got.map((e) => e?.n),
    [5, 2, undefined],
  )
  await a.table.settled()
  assert.equal(a.local('x'), 5, 'A repaired')
  assert.equal(a.local('y'), 2, 'the copy A missed was written back')
  assert.equal(c.local('x'), 9, 'C was not asked')
})

test('ranges merge the replicas per sort key, in order, and repair what each replica missed', async (t) => {
  const [a, b] = (await threeNodes(t)) as [ClusterNode, ClusterNode, ClusterNode]
  for (let i = 0; i < 10; i++) a.table.data.update({ pk: 'p', sk: `k0${i}`, n: i })
  b.table.data.update({ pk: 'p', sk: 'k00', n: 100 })
  b.table.data.update({ pk: 'p', sk: 'k10', n: 10 })
  b.table.data.update({ pk: 'q', sk: 'other', n: 1 })
  const all = await a.table.getRange(utf8('p'), { limit: 100 })
  assert.deepEqual(
    all.map((e) => [e.sk, e.n]),
    [['k00', 100], ...Array.from({ length: 9 }, (_, i) => [`k0${i + 1}`, i + 1]), ['k10', 10]],
  )
  // A small limit with a filter: pages of A fill up before B's k10, which still comes last.
  const odd = await a.table.getRange(utf8('p'), { limit: 4, filter: (e) => e.n % 2 === 0 && e.n > 2 })
  assert.deepEqual(
    odd.map((e) => e.sk),
    ['k00', 'k04', 'k06', 'k08'],
  )
  const tail = await a.table.getRange(utf8('p'), { limit: 3, filter: (e) => e.n >= 8 })
  assert.deepEqual(
    tail.map((e) => e.sk),
    ['k00', 'k08', 'k09'],
  )
  const rev = await a.table.getRange(utf8('p'), { start: utf8('k05'), limit: 3, reverse: true })
  assert.deepEqual(
    rev.map((e) => e.sk),
    ['k05', 'k04', 'k03'],
  )
  const from = await a.table.getRange(utf8('p'), { start: utf8('k09'), limit: 5 })
  assert.deepEqual(
    from.map((e) => e.sk),
    ['k09', 'k10'],
  )
  await a.table.settled()
  assert.equal(a.local('k10'), 10, 'A got the entry only B had')
  assert.equal(a.local('k00'), 100, 'A got the newer copy')
  assert.equal(b.local('k05'), 5, 'B got the entries only A had')
})

test('with one replica down, writes and reads still reach their quorum', async (t) => {
  const [a, b, c] = (await threeNodes(t)) as [ClusterNode, ClusterNode, ClusterNode]
  await c.net.close()
  await a.table.insert({ pk: 'p', sk: 'x', n: 4 })
  assert.equal(a.local('x'), 4)
  assert.equal(b.local('x'), 4)
  assert.equal((await b.table.get(utf8('p'), utf8('x')))?.n, 4)
  assert.deepEqual(
    (await b.table.getRange(utf8('p'), { limit: 10 })).map((e) => e.sk),
    ['x'],
  )
})

test('with two replicas down, writes and reads fail fast with QuorumError', async (t) => {
  const [a, b, c] = (await threeNodes(t, { timeoutMs: 60_000 })) as [ClusterNode, ClusterNode, ClusterNode]
  await b.net.close()
  await c.net.close()
  const t0 = Date.now()
  await assert.rejects(a.table.insert({ pk: 'p', sk: 'x', n: 1 }), QuorumError)
  await assert.rejects(a.table.get(utf8('p'), utf8('x')), QuorumError)
  await assert.rejects(a.table.getRange(utf8('p'), { limit: 10 }), (err: unknown) => {
    assert.ok(err instanceof QuorumError, 'a QuorumError')
    // What API clients see: 503, for the quorum failure and for each transport failure in it.
    assert.equal(toApiError(err).status, 503)
    const causes = (err.cause as AggregateError).errors
    assert.ok(causes.length > 0, 'the node failures are kept')
    for (const cause of causes) assert.ok(isUnavailable(cause), `${(cause as Error).name} counts as unavailable`)
    return true
  })
  assert.ok(Date.now() - t0 < 5_000, 'refused connections fail at once, not at the deadline')
})

test('replicas that never answer make the operation fail at the deadline', async (t) => {
  const [a, b] = (await threeNodes(t, { timeoutMs: 200, hang: 2 })) as [ClusterNode, ClusterNode, ClusterNode]
  await b.net.close()
  const t0 = Date.now()
  await assert.rejects(a.table.insert({ pk: 'p', sk: 'x', n: 1 }), QuorumError)
  const took = Date.now() - t0
  assert.ok(took >= 150 && took < 3_000, `failed at the 200 ms deadline (${took} ms)`)
})

test('queued inserts stay queued while their write quorum cannot be reached', async (t) => {
  const [a, b, c] = (await threeNodes(t, { timeoutMs: 60_000 })) as [ClusterNode, ClusterNode, ClusterNode]
  const worker = new InsertQueueWorker(a.table)
  await b.net.close()
  await c.net.close()
  a.table.data.db.transaction((tx) => a.table.queueInsert(tx, { pk: 'p', sk: 'q', n: 3 }))
  await assert.rejects(worker.work(), QuorumError)
  assert.equal(a.table.data.insertQueue.count(), 1, 'the item is still queued')
  assert.equal(a.local('q'), 3, 'this node stored its copy; the retry will merge the same value')
})

test('the table endpoint refuses malformed requests', () => {
  assert.deepEqual(parseTableRequest({ op: 'get', partitionKey: utf8('p'), sortKey: utf8('s') }), {
    op: 'get',
    partitionKey: utf8('p'),
    sortKey: utf8('s'),
  })
  assert.deepEqual(parseTableRequest({ op: 'range', partitionKey: utf8('p'), limit: 3, reverse: false }), {
    op: 'range',
    partitionKey: utf8('p'),
    limit: 3,
    reverse: false,
  })
  assert.deepEqual(parseTableRequest({ op: 'getMany', partitionKeys: [utf8('p')], sortKeys: [utf8('s')] }), {
    op: 'getMany',
    partitionKeys: [utf8('p')],
    sortKeys: [utf8('s')],
  })
  for (const bad of [
    null,
    'x',
    { op: 'get' },
    { op: 'getMany', partitionKeys: [utf8('p')], sortKeys: [] },
    { op: 'getMany', partitionKeys: ['p'], sortKeys: [utf8('s')] },
    { op: 'update', entries: ['x'] },
    { op: 'range', partitionKey: utf8('p'), limit: -1, reverse: false },
    { op: 'drop' },
  ]) {
    assert.throws(() => parseTableRequest(bad), /malformed table request/, JSON.stringify(bad))
  }
})

test('dangerous-mode quorums (read 1, write 1): a read asks itself; seeEveryWrite asks every replica and finds the newer copy', async (t) => {
  const [a, b, c] = (await threeNodes(t, { quorums: { read: 1, write: 1 } })) as [ClusterNode, ClusterNode, ClusterNode]
  // A write acknowledged by B alone; A and C hold an older copy.
  a.table.data.update({ pk: 'p', sk: 'x', n: 1 })
  c.table.data.update({ pk: 'p', sk: 'x', n: 1 })
  b.table.data.update({ pk: 'p', sk: 'x', n: 9 })
  assert.equal((await a.table.get(utf8('p'), utf8('x')))?.n, 1, 'read quorum 1: its own stale copy')
  // The GET that found its version gone retries this way (lib/api/s3/get.ts): n - W + 1 = 3.
  assert.equal((await a.table.get(utf8('p'), utf8('x'), { seeEveryWrite: true }))?.n, 9, 'every replica: the newer copy')
  await a.table.settled()
  assert.equal(a.local('x'), 9, 'and A is repaired')
})

test('consistent quorums: seeEveryWrite asks the read quorum only (n - W + 1 = 2), so it still works with a replica down', async (t) => {
  const [a, b, c] = (await threeNodes(t, { hang: 2, timeoutMs: 500 })) as [ClusterNode, ClusterNode, ClusterNode]
  a.table.data.update({ pk: 'p', sk: 'x', n: 1 })
  b.table.data.update({ pk: 'p', sk: 'x', n: 4 })
  c.table.data.update({ pk: 'p', sk: 'x', n: 7 })
  assert.equal((await a.table.get(utf8('p'), utf8('x'), { seeEveryWrite: true }))?.n, 4, 'A and B answer; C hangs')
})
