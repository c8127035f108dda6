import assert from 'node:assert/strict'
import { Encoder } from '@msgpack/msgpack'
import { type TestContext, test } from 'node:test'
import type { NetApp } from '../../lib/net/netapp.ts'
import type { LayoutHistory } from '../../lib/rpc/layout/history.ts'
import { TableData } from '../../lib/table/data.ts'
import { ShardedReplication } from '../../lib/table/replication.ts'
import { MerkleUpdater } from '../../lib/table/merkle.ts'
import { SYNC_CONCURRENCY, type SyncRequest, type SyncResponse, TableAntiEntropy, TableSyncer } from '../../lib/table/sync.ts'
import { BackgroundRunner } from '../../lib/util/background/worker.ts'
import { defineCodec, encodeMsgpack } from '../../lib/util/codec.ts'
import { blake2sum } from '../../lib/util/data.ts'
import { silentLogger } from '../../lib/util/logger.ts'
import { eventually } from '../helpers/eventually.ts'
import {
  dump,
  FixedLayout,
  helperOf,
  layoutOf,
  openDb,
  type Reg,
  type RegHooks,
  reg,
  regSchema,
  startMesh,
} from './ae-fixtures.ts'

interface SyncNode {
  id: string
  net: NetApp
  source: FixedLayout
  data: TableData<Reg>
  ae: TableAntiEntropy<Reg>
  hooks: RegHooks
  /** Spawns the workers (Merkle updater, GC, sync) on a runner stopped at the end of the test. */
  run(): void
}

async function syncNodes(t: TestContext, nets: NetApp[], history: LayoutHistory, intervalMs: number): Promise<SyncNode[]> {
  const out: SyncNode[] = []
  for (const net of nets) {
    const db = await openDb(t)
    const source = new FixedLayout(history)
    const layout = helperOf(source, net.id)
    const replication = new ShardedReplication(layout, intervalMs)
    const hooks: RegHooks = { deletedLocally: [] }
    const data = new TableData(regSchema('reg', hooks), db, { replication, self: net.id })
    const ae = new TableAntiEntropy(data, replication, {
      self: net.id,
      cluster: { netApp: net, layout, onPeerUp: () => {} },
      log: silentLogger,
    })
    const run = (): void => {
      const stop = new AbortController()
      const runner = new BackgroundRunner(silentLogger, stop.signal)
      for (const w of ae.workers()) runner.spawn(w)
      t.after(async () => {
        stop.abort()
        await runner.join()
      })
    }
    out.push({ id: net.id, net, source, data, ae, hooks, run })
  }
  return out
}

const contents = (n: SyncNode): Map<string, string> => dump(n.data.store)

function sameMaps(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false
  for (const [k, v] of a) if (b.get(k) !== v) return false
  return true
}

test('three nodes holding every partition converge after divergent writes, and report the sync', async (t) => {
  const nets = await startMesh(t, 3)
  const history = layoutOf(
    nets.map((n) => n.id),
    3,
  )
  const nodes = await syncNodes(t, nets, history, 300)
  const [a, b, c] = nodes as [SyncNode, SyncNode, SyncNode]
  // Each node gets its own items, and conflicting values for shared keys.
  for (let i = 0; i < 300; i++) a.data.update(reg(`pk${i % 20}`, `a${i}`, 1))
  for (let i = 0; i < 200; i++) b.data.update(reg(`pk${i % 50}`, `b${i}`, 1))
  for (let i = 0; i < 30; i++) {
    a.data.update(reg('shared', `k${i}`, 1))
    b.data.update(reg('shared', `k${i}`, 2))
    c.data.update(reg('shared', `k${i}`, 3, i % 2 === 0))
  }
  for (const n of nodes) n.run()
  await eventually(
    'the three stores to hold the same entries',
    () => sameMaps(contents(a), contents(b)) && sameMaps(contents(a), contents(c)),
    { timeoutMs: 15_000 },
  )
  assert.equal(contents(a).size, 300 + 200 + 30, 'every item is everywhere')
  const shared = a.data.read(new TextEncoder().encode('shared'), new TextEncoder().encode('k4'))
  assert.deepEqual(shared, reg('shared', 'k4', 3, true), 'the merge of the conflicting values won')
  await eventually('sync reports', () => nodes.every((n) => n.source.synced.includes(history.versions.at(-1)?.version ?? -1)))
  await eventually('identical Merkle trees', () => {
    for (const n of nodes) n.ae.merkle.updateAll()
    return (
      sameMaps(dump(a.data.merkleTree), dump(b.data.merkleTree)) && sameMaps(dump(a.data.merkleTree), dump(c.data.merkleTree))
    )
  })
})

test('a node that is no longer a holder hands its partitions over, then deletes them through the hooks', async (t) => {
  const nets = await startMesh(t, 2)
  const [na, nb] = nets as [NetApp, NetApp]
  // Version 1: only A stores data.
  const v1 = layoutOf([na.id], 1)
  const nodes = await syncNodes(t, nets, v1, 60_000)
  const [a, b] = nodes as [SyncNode, SyncNode]
  for (let i = 0; i < 1500; i++) a.data.update(reg(`pk${i % 300}`, `s${i}`, 1, i % 10 === 0))
  a.ae.merkle.updateAll()
  const before = contents(a)
  // Version 2 moves everything to B, and version 1 has retired (every node synced it).
  const v2full = layoutOf([nb.id], 1, v1)
  const v2: LayoutHistory = { ...v2full, versions: v2full.versions.slice(-1) }
  for (const n of nodes) n.source.set(v2)
  // The version change starts a pass at once.
  for (const n of nodes) n.run()
  await eventually('A to hand everything over', () => contents(a).size === 0, { timeoutMs: 15_000 })
  assert.ok(sameMaps(contents(b), before), 'B holds exactly what A held')
  assert.equal(a.hooks.deletedLocally.length, before.size, 'every local deletion went through the hook')
  assert.equal(b.hooks.deletedLocally.length, 0, 'B deleted nothing')
  await eventually("A's Merkle tree to be empty", () => a.ae.merkle.todoLength() === 0 && a.ae.merkle.nodeCount() === 0)
  await eventually('A to report its sync of version 2', () => a.source.synced.includes(2))
})

test('a pass with an unreachable holder is not reported as synced', async (t) => {
  const nets = await startMesh(t, 2)
  const [na, nb] = nets as [NetApp, NetApp]
  const history = layoutOf([na.id, nb.id], 2)
  const nodes = await syncNodes(t, [na], history, 60_000)
  const a = nodes[0] as SyncNode
  a.data.update(reg('x', 'y', 1))
  a.ae.merkle.updateAll()
  // B never registered its sync endpoint: every call to it fails.
  const syncer = a.ae.syncer
  assert.ok(syncer !== undefined, 'a node in a cluster has a syncer')
  syncer.addFullSync()
  const signal = new AbortController().signal
  while ((await syncer.work(signal)) === 'busy') {}
  assert.deepEqual(a.source.synced, [], 'no sync reported')
  assert.ok(Number(syncer.info().failedPartitions) > 0, 'the failed partition is counted')
})

test('a pass syncs several partitions at once, up to its concurrency', async (t) => {
  const nets = await startMesh(t, 2)
  const [na, nb] = nets as [NetApp, NetApp]
  const history = layoutOf([na.id, nb.id], 2)
  const db = await openDb(t)
  const layout = helperOf(new FixedLayout(history), na.id)
  const replication = new ShardedReplication(layout, 60_000)
  const data = new TableData(regSchema('reg'), db, { replication, self: na.id })
  const merkle = new MerkleUpdater({ data, replication, log: silentLogger })
  // Items in many partitions: each has a root to compare with the other holder.
  for (let i = 0; i < 200; i++) data.update(reg(`pk${i}`, 's', 1))
  merkle.updateAll()
  const pass = async (concurrency: number | undefined): Promise<{ calls: number; most: number }> => {
    let inFlight = 0
    let most = 0
    let calls = 0
    // A stand-in for the network (only `handle` and `call` are used): each root comparison takes
    // a few ms and answers "no difference", so the walk stops at the root.
    const net = {
      id: na.id,
      handle: () => {},
      call: async (_node: string, _ep: unknown, req: SyncRequest): Promise<SyncResponse> => {
        assert.equal(req.op, 'root')
        calls++
        inFlight++
        most = Math.max(most, inFlight)
        await new Promise((r) => setTimeout(r, 3))
        inFlight--
        return { different: false }
      },
    } as unknown as NetApp // a stub: the syncer calls nothing else
    const syncer = new TableSyncer({
      data,
      merkle,
      replication,
      netApp: net,
      self: na.id,
      log: silentLogger,
      ...(concurrency === undefined ? {} : { concurrency }),
    })
    syncer.addFullSync()
    const signal = new AbortController().signal
    while ((await syncer.work(signal)) === 'busy') {}
    assert.equal(Number(syncer.info().failedPartitions), 0)
    assert.equal(Number(syncer.info().passes), 1, 'the pass completed')
    return { calls, most }
  }
  const parallel = await pass(undefined)
  assert.ok(parallel.calls >= 2 * SYNC_CONCURRENCY, `enough partitions to compare (${parallel.calls})`)
  assert.equal(parallel.most, SYNC_CONCURRENCY, 'partitions compared at once, up to the bound')
  const serial = await pass(1)
  assert.equal(serial.calls, parallel.calls, 'the same partitions compared')
  assert.equal(serial.most, 1, 'one at a time with concurrency 1')
})

test('entries received from a peer: the same bytes change nothing, new ones are stored as sent, older formats migrate', async (t) => {
  const db = await openDb(t)
  // The register table with an older format, 'Treg0', that had no `deleted` field.
  const codec = defineCodec<Reg>('Treg1', [
    { marker: 'Treg0', migrate: (v) => ({ ...(v as Omit<Reg, 'deleted'>), deleted: false }) },
  ])
  const updates: Array<[Reg | undefined, Reg | undefined]> = []
  const schema = {
    ...regSchema('raw'),
    codec,
    updated: (_tx: unknown, p: Reg | undefined, n: Reg | undefined) => updates.push([p, n]),
  }
  const data = new TableData(schema, db)
  const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
  const keyOf = (e: Reg): string => hex(data.entryKey(e))
  const clearTodo = (): void =>
    db.transaction((tx) => {
      for (const [k] of data.merkleTodo.range()) tx.remove(data.merkleTodo, k)
    })

  // A page as a peer sends it: its stored bytes, encoded by its codec.
  const page = Array.from({ length: 300 }, (_, i) => codec.encode(reg(`pk${i % 7}`, `s${i}`, i)))
  data.updateManyRaw(page)
  assert.equal(updates.length, 300, 'each new entry went through the hook once')
  const stored = dump(data.store)
  const todo = dump(data.merkleTodo)
  for (const raw of page) {
    const k = keyOf(codec.decode(raw))
    assert.equal(stored.get(k), hex(raw), 'stored as sent')
    assert.equal(todo.get(k), hex(blake2sum(raw)), 'queued for the Merkle tree with the hash of those bytes')
  }

  // The same page again (a second old holder pushing it): nothing written, nothing queued.
  clearTodo()
  updates.length = 0
  data.updateManyRaw(page)
  data.updateManyRaw(page.slice(0, 10))
  assert.equal(updates.length, 0, 'no hook ran')
  assert.equal(dump(data.merkleTodo).size, 0, 'nothing queued for the Merkle tree')
  assert.deepEqual(dump(data.store), stored)

  // Different bytes: a newer value wins (merged, re-encoded), an older one changes nothing.
  const newer = reg('pk1', 's1', 1_000)
  const older = reg('pk2', 's2', -1)
  data.updateManyRaw([codec.encode(older), codec.encode(newer)])
  assert.equal(updates.length, 1, 'one change')
  assert.equal(dump(data.store).get(keyOf(newer)), hex(codec.encode(newer)))
  assert.equal(dump(data.store).get(keyOf(older)), stored.get(keyOf(older)), 'the older value did not win')

  // Bytes another encoder wrote (its integers as float64): decoded and re-encoded they would
  // differ, so the node stores them as sent, which keeps its Merkle hash the sender's.
  const odd = reg('pk3', 'float', 7)
  const floatBody = new Encoder({ forceIntegerToFloat: true }).encode(odd)
  const sent = new Uint8Array([...Buffer.from('Treg1'), ...floatBody])
  assert.notEqual(hex(sent), hex(codec.encode(odd)))
  data.updateManyRaw([sent])
  assert.equal(dump(data.store).get(keyOf(odd)), hex(sent))
  assert.equal(dump(data.merkleTodo).get(keyOf(odd)), hex(blake2sum(sent)))

  // A new entry sent in the older format is migrated and stored in the current one.
  const oldFormat = reg('pk9', 'old', 5)
  const { deleted: _, ...body } = oldFormat
  const legacy = new Uint8Array([...Buffer.from('Treg0'), ...encodeMsgpack(body)])
  data.updateManyRaw([legacy])
  assert.equal(dump(data.store).get(keyOf(oldFormat)), hex(codec.encode(oldFormat)), 're-encoded in the current format')
  assert.deepEqual(updates[updates.length - 1], [undefined, oldFormat])
})

test('a peer asked for a root folds its pending writes first, so writes of the last second are no difference', async (t) => {
  const nets = await startMesh(t, 2)
  const history = layoutOf(
    nets.map((n) => n.id),
    2,
  )
  const [a, b] = (await syncNodes(t, nets, history, 60_000)) as [SyncNode, SyncNode]
  // The same writes on both; `a` folded them, `b`'s worker would still be gathering (none runs).
  for (let i = 0; i < 50; i++) {
    a.data.update(reg(`pk${i}`, 's', 1))
    b.data.update(reg(`pk${i}`, 's', 1))
  }
  a.ae.merkle.updateAll()
  assert.ok(b.ae.merkle.todoLength() > 0)
  const syncer = b.ae.syncer
  assert.ok(syncer !== undefined)
  for (let p = 0; p < 256; p++) {
    const r: SyncResponse = syncer.handle({ op: 'root', partition: p, hash: a.ae.merkle.rootHash(p) })
    assert.deepEqual(r, { different: false }, `partition ${p}`)
  }
})
