import assert from 'node:assert/strict'
import { type TestContext, test } from 'node:test'
import type { NetApp } from '../../lib/net/netapp.ts'
import type { LayoutHistory } from '../../lib/rpc/layout/history.ts'
import { TableData } from '../../lib/table/data.ts'
import { TableGc } from '../../lib/table/gc.ts'
import { LocalReplication, ShardedReplication } from '../../lib/table/replication.ts'
import { blake2sum, genUuid, utf8 } from '../../lib/util/data.ts'
import { silentLogger } from '../../lib/util/logger.ts'
import { startModel } from '../helpers/model.ts'
import { FixedLayout, helperOf, layoutOf, openDb, type Reg, type RegHooks, reg, regSchema, startMesh } from './ae-fixtures.ts'

const DELAY = 1_000
const RETRY = 500

interface GcNode {
  id: string
  data: TableData<Reg>
  gc: TableGc<Reg>
  hooks: RegHooks
  replication: ShardedReplication
}

/** A clock the test moves by hand. */
const clock = { now: 1_000_000 }
const now = (): number => clock.now

async function gcNodes(t: TestContext, nets: NetApp[], history: LayoutHistory, register: boolean[]): Promise<GcNode[]> {
  const out: GcNode[] = []
  for (const [i, net] of nets.entries()) {
    const db = await openDb(t)
    const replication = new ShardedReplication(helperOf(new FixedLayout(history), net.id))
    const hooks: RegHooks = { deletedLocally: [] }
    const data = new TableData(regSchema('reg', hooks), db, { replication, self: net.id, clock: now })
    const gc = new TableGc({
      data,
      replication,
      self: net.id,
      netApp: net,
      log: silentLogger,
      delayMs: DELAY,
      retryMs: RETRY,
      clock: now,
    })
    if (register[i]) gc.register()
    out.push({ id: net.id, data, gc, hooks, replication })
  }
  return out
}

const has = (n: GcNode, e: Reg): Reg | undefined => n.data.read(utf8(e.pk), utf8(e.sk))

/** Entries whose GC leader (first storage node) is `leader`. */
function ledBy(leader: GcNode, count: number, prefix: string, deleted: boolean): Reg[] {
  const out: Reg[] = []
  for (let i = 0; out.length < count; i++) {
    if (i > 100_000) throw new Error(`node ${leader.id.slice(0, 8)} leads no partition`)
    const e = reg(`${prefix}${i}`, 's', 5, deleted)
    const hash = leader.data.schema.partitionHash(leader.data.schema.partitionKey(e))
    if (leader.replication.storageNodes(hash)[0] === leader.id) out.push(e)
  }
  return out
}

const signal = new AbortController().signal

test('tombstones are collected on every holder only after the delay, and only once every holder acknowledged', async (t) => {
  const nets = await startMesh(t, 3)
  const history = layoutOf(
    nets.map((n) => n.id),
    3,
  )
  const all = await gcNodes(t, nets, history, [false, false, false])
  // A is the GC leader (first storage node) of the entries used; C does not answer GC requests at first.
  const first = all[0] as GcNode
  const leaderId = first.replication.storageNodes(first.data.schema.partitionHash(utf8('tomb0')))[0]
  const a = all.find((n) => n.id === leaderId) as GcNode
  const [b, c] = all.filter((n) => n !== a) as [GcNode, GcNode]
  a.gc.register()
  b.gc.register()
  const nodes = [a, b, c]
  const tombstones = ledBy(a, 20, 'tomb', true)
  const live = ledBy(a, 5, 'live', false)
  for (const e of [...tombstones, ...live]) {
    a.data.update(e)
    b.data.update(e)
  }
  // C missed the tombstones: it has older live values.
  for (const e of tombstones) c.data.update({ ...e, v: 1, deleted: false })
  assert.equal(a.gc.todoLength(), tombstones.length, 'the leader queued each tombstone')
  assert.equal(b.gc.todoLength(), 0, 'other holders queue nothing')

  // Before the delay nothing happens.
  assert.equal(await a.gc.work(signal), 'idle', 'the GC step is idle')
  for (const e of tombstones) assert.ok(has(a, e) !== undefined && has(b, e) !== undefined, 'still there before the delay')

  // After the delay, C's refusal stops everything: nothing is deleted anywhere.
  clock.now += DELAY + 1
  await assert.rejects(a.gc.work(signal), /GC of reg/, 'the batch fails while C refuses')
  for (const e of tombstones) {
    assert.ok(
      has(a, e)?.deleted === true && has(b, e)?.deleted === true,
      'the tombstone is kept while a holder did not acknowledge',
    )
  }
  assert.equal(a.gc.todoLength(), tombstones.length, 'the queue is kept for the retry')
  // The retry waits for the retry delay.
  assert.equal(await a.gc.work(signal), 'idle', 'no retry before the pause')

  // C answers now; after the pause the batch goes through.
  c.gc.register()
  clock.now += RETRY + 1
  assert.equal(await a.gc.work(signal), 'busy', 'the GC step is busy')
  for (const n of nodes) for (const e of tombstones) assert.equal(has(n, e), undefined, 'the tombstone is gone from every holder')
  for (const n of nodes.slice(0, 2)) for (const e of live) assert.ok(has(n, e) !== undefined, 'live entries stay')
  assert.equal(a.gc.todoLength(), 0, 'the queue is empty')
  assert.equal(c.hooks.deletedLocally.length, tombstones.length, "C's deletions ran its hook")
  assert.equal(await a.gc.work(signal), 'idle', 'the GC step is idle')
})

test('a tombstone overwritten by a newer value is dropped from the queue and kept in the table', async (t) => {
  const db = await openDb(t)
  const replication = new LocalReplication('me')
  const data = new TableData(regSchema('reg'), db, { replication, self: 'me', clock: now })
  const gc = new TableGc({ data, replication, self: 'me', log: silentLogger, delayMs: DELAY, clock: now })
  const e = reg('k', 's', 1, true)
  data.update(e)
  data.update(reg('k2', 's', 1, true))
  assert.equal(gc.todoLength(), 2, 'both tombstones are queued')
  data.update({ ...e, v: 2, deleted: false })
  clock.now += DELAY + 1
  assert.equal(await gc.work(signal), 'busy', 'the GC step is busy')
  assert.deepEqual(data.read(utf8('k'), utf8('s')), reg('k', 's', 2), 'the newer value stays')
  assert.equal(data.read(utf8('k2'), utf8('s')), undefined, 'the other tombstone is collected (no other holder)')
  assert.equal(gc.todoLength(), 0, 'the queue is empty')
})

test('deleting rows locally runs the model hooks: a live block ref releases its block, an object row leaves the counters', async (t) => {
  const { garage } = await startModel(t)
  const block = genUuid()
  const ref = { block, version: genUuid(), deleted: false }
  garage.blockRefTable.data.update(ref)
  assert.equal(garage.blockManager.rc.get(block), 1, 'the live ref counts')
  const refData = garage.blockRefTable.data
  const refKey = refData.entryKey(ref)
  assert.ok(refData.deleteIfEqual(refKey, refData.store.get(refKey) as Uint8Array), 'the ref is deleted')
  assert.equal(garage.blockManager.rc.get(block), 0, 'its deletion released the block')

  const bucketId = genUuid()
  const row = {
    bucketId,
    key: 'k',
    versions: [
      {
        uuid: genUuid(),
        ts: 1,
        state: {
          t: 'complete' as const,
          data: { t: 'inline' as const, meta: { size: 7, etag: 'e', headers: [] }, bytes: new Uint8Array(7) },
        },
      },
    ],
  }
  garage.objectTable.data.update(row)
  assert.deepEqual(garage.objectCounter.get(bucketId), { objects: 1, bytes: 7, unfinishedUploads: 0 }, 'the row counts')
  const objData = garage.objectTable.data
  const objKey = objData.entryKey(row)
  assert.ok(objData.deleteIfEqual(objKey, objData.store.get(objKey) as Uint8Array), 'the row is deleted')
  assert.deepEqual(garage.objectCounter.get(bucketId), { objects: 0, bytes: 0, unfinishedUploads: 0 }, 'the counters drop it')
  assert.equal(garage.versionTable.data.insertQueue.count(), 0, 'no version is tombstoned by a local deletion')
})

test('a former holder still holding a stale live copy gets the tombstone, so its handover cannot resurrect the entry', async (t) => {
  const nets = await startMesh(t, 2)
  const [na, nf] = nets as [NetApp, NetApp]
  // A alone holds everything now; F held it in a retired version and has not handed it over yet.
  const history = layoutOf([na.id], 1)
  const [a, f] = (await gcNodes(t, [na, nf], history, [true, true])) as [GcNode, GcNode]
  const formerGc = new TableGc({
    data: a.data,
    replication: a.replication,
    self: a.id,
    netApp: na,
    log: silentLogger,
    delayMs: DELAY,
    clock: now,
    formerHolders: () => [f.id],
  })
  const e = reg('former', 's', 2, true)
  a.data.update(e)
  f.data.update({ ...e, v: 1, deleted: false })
  clock.now += DELAY + 1
  assert.equal(await formerGc.work(signal), 'busy', 'the GC step is busy')
  assert.equal(has(a, e), undefined, 'collected on the holder')
  assert.equal(has(f, e), undefined, 'the former holder dropped its stale copy too')
  // A former holder that does not answer does not block the collection.
  const e2 = reg('former2', 's', 2, true)
  a.data.update(e2)
  await nf.close()
  clock.now += DELAY + 1
  assert.equal(await formerGc.work(signal), 'busy', 'the GC step is busy')
  assert.equal(has(a, e2), undefined, 'collected on the holder even with the former holder away')
})

test('deleting a batch of tombstones in one transaction deletes only those whose value is unchanged', async (t) => {
  const hooks: RegHooks = { deletedLocally: [] }
  const data = new TableData(regSchema('reg', hooks), await openDb(t), { replication: new LocalReplication('n'), self: 'n' })
  const tombstones = Array.from({ length: 20 }, (_, i) => reg('p', `k${i}`, 1, true))
  for (const e of tombstones) data.update(e)
  const items = tombstones.map((e) => {
    const key = data.entryKey(e)
    return [key, blake2sum(data.store.get(key) as Uint8Array)] as const
  })
  // Two rows change after their hash was taken: a newer write must survive the GC.
  data.update(reg('p', 'k3', 2))
  data.update(reg('p', 'k7', 2, true))
  assert.equal(data.deleteManyIfEqualHash(items), 18, 'the 18 unchanged tombstones are deleted')
  assert.equal(data.store.count(), 2, 'the two rewritten rows remain')
  assert.equal(data.read(utf8('p'), utf8('k3'))?.v, 2, 'the newer value of k3 is kept')
  assert.equal(hooks.deletedLocally.length, 18, 'the hook saw each deletion')
  for (const [key] of items) {
    const todo = data.merkleTodo.get(key)
    const kept = data.store.get(key) !== undefined
    assert.ok(todo !== undefined && (kept ? todo.length > 0 : todo.length === 0), 'each deletion is queued for the Merkle tree')
  }
})
