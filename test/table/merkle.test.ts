import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Db } from '../../lib/db/db.ts'
import { TableData } from '../../lib/table/data.ts'
import { decodeMerkleNode, EMPTY_NODE_HASH, MerkleUpdater, merkleNodeKey, partitionOfMerkleKey } from '../../lib/table/merkle.ts'
import { LocalReplication, ShardedReplication, type TableReplication } from '../../lib/table/replication.ts'
import { blake2sum, bytesEqual } from '../../lib/util/data.ts'
import { silentLogger } from '../../lib/util/logger.ts'
import { dump, FixedLayout, helperOf, layoutOf, openDb, type Reg, reg, regSchema } from './ae-fixtures.ts'

const SELF = 'a'.repeat(64)

function store(db: Db): { data: TableData<Reg>; merkle: MerkleUpdater<Reg> } {
  const replication = new ShardedReplication(helperOf(new FixedLayout(layoutOf([SELF], 1)), SELF))
  const data = new TableData(regSchema('t'), db, { replication, self: SELF })
  return { data, merkle: new MerkleUpdater({ data, replication, log: silentLogger }) }
}

const items = (n: number): Reg[] => Array.from({ length: n }, (_, i) => reg(`p${i % 37}`, `s${i}`, 1))

function shuffled<T>(a: readonly T[], seed: number): T[] {
  const out = [...a]
  let s = seed
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31
    const j = s % (i + 1)
    ;[out[i], out[j]] = [out[j] as T, out[i] as T]
  }
  return out
}

/** Checks the canonical shape: leaves sit where their key hash leads, intermediates hold 2+ items. */
function checkShape(m: MerkleUpdater<Reg>, key: Uint8Array): number {
  const n = m.readNode(key)
  const prefix = key.subarray(2)
  if (n.t === 'empty') return 0
  if (n.t === 'leaf') {
    assert.ok(bytesEqual(blake2sum(n.key).subarray(0, prefix.length), prefix), 'a leaf lies under its key hash prefix')
    return 1
  }
  let count = 0
  for (const [b, h] of n.children) {
    const childKey = new Uint8Array([...key, b])
    const raw = m.readNodeRaw(childKey)
    assert.ok(raw !== undefined && bytesEqual(blake2sum(raw), h), 'a child hash matches the stored child')
    count += checkShape(m, childKey)
  }
  assert.ok(count >= 2, `an intermediate node holds at least two items (holds ${count})`)
  return count
}

test('the Merkle tree is the same whatever the order of insertions and deletions', async (t) => {
  const a = store(await openDb(t))
  const b = store(await openDb(t))
  const all = items(400)
  for (const e of all) a.data.update(e)
  a.merkle.updateAll()
  // b sees the items in another order, with extra items written and deleted in between.
  const extra = items(600).slice(400)
  for (const [i, e] of shuffled(all, 7).entries()) {
    b.data.update(e)
    const x = extra[i % extra.length] as Reg
    b.data.update(x)
    if (i % 3 === 0) b.merkle.updateBatch(50)
  }
  for (const x of extra) {
    const key = b.data.entryKey(x)
    const raw = b.data.store.get(key)
    assert.ok(raw !== undefined && b.data.deleteIfEqual(key, raw), 'the extra item is deleted')
  }
  b.merkle.updateAll()
  assert.equal(a.merkle.todoLength(), 0, 'the todo is folded')
  assert.equal(b.merkle.todoLength(), 0, 'the todo is folded')
  assert.deepEqual(dump(b.data.merkleTree), dump(a.data.merkleTree), 'both trees are identical')
  let total = 0
  const partitions = new Set<number>()
  for (const [k] of a.data.merkleTree.range()) partitions.add(partitionOfMerkleKey(k))
  for (const p of partitions) total += checkShape(a.merkle, merkleNodeKey(p))
  assert.equal(total, all.length, 'every item has exactly one leaf')
})

test('the root hash changes on update and deletion, and comes back when the change is undone', async (t) => {
  const s = store(await openDb(t))
  for (const e of items(50)) s.data.update(e)
  s.merkle.updateAll()
  const probe = reg('p-probe', 'x', 1)
  const p = s.data.schema.partitionHash(s.data.schema.partitionKey(probe))[0] as number
  const before = s.merkle.rootHash(p)
  s.data.update(probe)
  s.merkle.updateAll()
  const added = s.merkle.rootHash(p)
  assert.ok(!bytesEqual(before, added), 'adding an item changes the root')
  s.data.update({ ...probe, v: 2 })
  s.merkle.updateAll()
  const updated = s.merkle.rootHash(p)
  assert.ok(!bytesEqual(updated, added), 'updating an item changes the root')
  const key = s.data.entryKey(probe)
  assert.ok(s.data.deleteIfEqual(key, s.data.store.get(key) as Uint8Array), 'the probe is deleted')
  s.merkle.updateAll()
  assert.ok(bytesEqual(s.merkle.rootHash(p), before), 'deleting it restores the previous root')
})

test('an empty partition has the empty hash and no stored node; a single item is a leaf at the root', async (t) => {
  const s = store(await openDb(t))
  assert.ok(bytesEqual(s.merkle.rootHash(3), EMPTY_NODE_HASH), 'empty root')
  const e = reg('only', 'one', 1)
  s.data.update(e)
  s.merkle.updateAll()
  const p = s.data.schema.partitionHash(s.data.schema.partitionKey(e))[0] as number
  const root = decodeMerkleNode(s.merkle.readNodeRaw(merkleNodeKey(p)))
  assert.equal(root.t, 'leaf', 'the root is a leaf')
  assert.ok(root.t === 'leaf' && bytesEqual(root.key, s.data.entryKey(e)), 'the leaf names the item key')
  const raw = s.data.store.get(s.data.entryKey(e)) as Uint8Array
  assert.ok(root.t === 'leaf' && bytesEqual(root.hash, blake2sum(raw)), 'the leaf holds the value hash')
  assert.ok(s.data.deleteIfEqual(s.data.entryKey(e), raw), 'deleted')
  s.merkle.updateAll()
  assert.equal(s.merkle.nodeCount(), 0, 'nothing left in the tree')
})

test('an item changed twice before folding ends with its newest value in the tree', async (t) => {
  const s = store(await openDb(t))
  const e = reg('k', 'v', 1)
  s.data.update(e)
  const key = s.data.entryKey(e)
  const first = s.data.merkleTodo.get(key) as Uint8Array
  s.data.update({ ...e, v: 2 })
  const second = s.data.merkleTodo.get(key) as Uint8Array
  assert.ok(!bytesEqual(first, second), 'the todo holds the newest value hash')
  s.merkle.updateAll()
  const p = s.data.schema.partitionHash(s.data.schema.partitionKey(e))[0] as number
  const root = s.merkle.readNode(merkleNodeKey(p))
  assert.ok(root.t === 'leaf' && bytesEqual(root.hash, second), 'the tree has the newest value')
})

test('a tree built with another partitioning (a node that ran alone) is rebuilt by the worker', async (t) => {
  const db = await openDb(t)
  const local = new LocalReplication(SELF)
  const alone = new TableData(regSchema('t'), db, { replication: local, self: SELF })
  const aloneMerkle = new MerkleUpdater({ data: alone, replication: local, log: silentLogger })
  for (const e of items(2500)) alone.update(e)
  assert.equal(await aloneMerkle.work(new AbortController().signal), 'busy', 'the first step folds items')
  aloneMerkle.updateAll()
  assert.ok(!bytesEqual(aloneMerkle.rootHash(0), EMPTY_NODE_HASH), 'everything is in partition 0')
  // The same store, now placed by the ring.
  const s = store(db)
  const ref = store(await openDb(t))
  for (const e of items(2500)) ref.data.update(e)
  ref.merkle.updateAll()
  // A table bigger than one rebuild chunk (1000 keys) is rebuilt over several transactions.
  assert.equal(await s.merkle.work(new AbortController().signal), 'busy', 'the first step rebuilds, then folds')
  assert.equal(s.merkle.rebuilding, false, 'the rebuild is over once the step returns')
  s.merkle.updateAll()
  for (let p = 0; p < 256; p++) {
    assert.ok(bytesEqual(s.merkle.rootHash(p), ref.merkle.rootHash(p)), `partition ${p} has the root of a fresh build`)
  }
  assert.equal(await s.merkle.checkPartitioning(), false, 'no second rebuild')
})

/** Deterministic pseudo-random integers in [0, n) (a 31-bit LCG). */
function rng(seed: number): (n: number) => number {
  let s = seed
  return (n) => {
    s = (s * 1103515245 + 12345) % 2 ** 31
    return Math.floor((s / 2 ** 31) * n)
  }
}

for (const [name, replicationOf] of [
  ['256 partitions', (): TableReplication => new ShardedReplication(helperOf(new FixedLayout(layoutOf([SELF], 1)), SELF))],
  ['one partition', (): TableReplication => new LocalReplication(SELF)],
] as const) {
  test(`the batched fold builds the same tree as the per-item fold over random writes and deletions (${name})`, async (t) => {
    const open = async (fold: 'batched' | 'per-item'): Promise<{ data: TableData<Reg>; merkle: MerkleUpdater<Reg> }> => {
      const replication = replicationOf()
      const data = new TableData(regSchema('t'), await openDb(t), { replication, self: SELF })
      return { data, merkle: new MerkleUpdater({ data, replication, log: silentLogger, fold }) }
    }
    for (const seed of [1, 2, 3]) {
      const batched = await open('batched')
      const perItem = await open('per-item')
      const rand = rng(seed)
      const live = new Map<string, Reg>()
      let next = 0
      for (let round = 0; round < 12; round++) {
        const ops = 1 + rand(400)
        for (let i = 0; i < ops; i++) {
          const op = rand(10)
          const keys = [...live.keys()]
          if (op < 5 || keys.length === 0) {
            // Few partition keys: items share partitions and deep prefixes of the tree.
            const e = reg(`p${rand(5)}`, `s${next++}`, 1)
            live.set(`${e.pk}/${e.sk}`, e)
            for (const s of [batched, perItem]) s.data.update(e)
          } else if (op < 8) {
            const id = keys[rand(keys.length)] as string
            const e = { ...(live.get(id) as Reg), v: (live.get(id) as Reg).v + 1 }
            live.set(id, e)
            for (const s of [batched, perItem]) s.data.update(e)
          } else {
            const id = keys[rand(keys.length)] as string
            live.delete(id)
            for (const s of [batched, perItem]) {
              const key = s.data.entryKey(reg(id.split('/')[0] as string, id.split('/')[1] as string, 0))
              assert.ok(s.data.deleteIfEqual(key, s.data.store.get(key) as Uint8Array), 'deleted')
            }
          }
          // Partial folds of different sizes between writes: items are folded in other groupings.
          if (rand(50) === 0) batched.merkle.updateBatch(1 + rand(300))
          if (rand(50) === 0) perItem.merkle.updateBatch(1 + rand(300))
        }
        batched.merkle.updateAll(1 + rand(2000))
        perItem.merkle.updateAll()
        assert.equal(batched.merkle.todoLength(), 0, 'the todo is folded')
        assert.deepEqual(dump(batched.data.merkleTree), dump(perItem.data.merkleTree), `seed ${seed}, round ${round}: same tree`)
      }
      let total = 0
      const partitions = new Set<number>()
      for (const [k] of batched.data.merkleTree.range()) if (k.length >= 2) partitions.add(partitionOfMerkleKey(k))
      for (const p of partitions) total += checkShape(batched.merkle, merkleNodeKey(p))
      assert.equal(total, live.size, `seed ${seed}: every live item has exactly one leaf`)
    }
  })
}

test('a node alone keeps no Merkle todo; once in a cluster its tree is built from its entries, a stale todo item dropped', async (t) => {
  const db = await openDb(t)
  const local = new LocalReplication(SELF)
  // An older version of a lone node left a todo item naming a value its entry no longer has.
  const older = new TableData(regSchema('t'), db, { replication: local, self: SELF })
  older.update(reg('stale', 'x', 1))
  const alone = new TableData(regSchema('t'), db, { replication: local, self: SELF, merkle: false })
  const staleKey = alone.entryKey(reg('stale', 'x', 1))
  assert.ok(alone.deleteIfEqual(staleKey, alone.store.get(staleKey) as Uint8Array), 'deleted while alone')
  for (const e of items(1200)) alone.update(e)
  assert.equal(alone.merkleTodo.count(), 1, 'only the older version queued anything')
  // The same store in a cluster: the worker rebuilds, then folds.
  const s = store(db)
  const ref = store(await openDb(t))
  for (const e of items(1200)) ref.data.update(e)
  ref.merkle.updateAll()
  assert.equal(await s.merkle.work(new AbortController().signal), 'busy')
  s.merkle.updateAll()
  for (let p = 0; p < 256; p++) {
    assert.ok(bytesEqual(s.merkle.rootHash(p), ref.merkle.rootHash(p)), `partition ${p} has the root of a fresh build`)
  }
})

test('a tree kept before a spell alone is rebuilt when the node keeps one again, even with the same partitioning', async (t) => {
  const db = await openDb(t)
  const local = new LocalReplication(SELF)
  // Kept: the worker records the partitioning (all in partition 0, as full-copy tables are).
  const kept = new TableData(regSchema('t'), db, { replication: local, self: SELF })
  for (const e of items(300)) kept.update(e)
  const keptMerkle = new MerkleUpdater({ data: kept, replication: local, log: silentLogger })
  await keptMerkle.work(new AbortController().signal)
  keptMerkle.updateAll()
  // Alone: no todo, and the record goes (as TableAntiEntropy does for such a table).
  const alone = new TableData(regSchema('t'), db, { replication: local, self: SELF, merkle: false })
  new MerkleUpdater({ data: alone, replication: local, log: silentLogger }).forget()
  for (const e of items(600)) alone.update(e)
  // Kept again, same partitioning: the tree is rebuilt from the entries, not left stale.
  const again = new MerkleUpdater({ data: kept, replication: local, log: silentLogger })
  await again.work(new AbortController().signal)
  again.updateAll()
  const ref = new TableData(regSchema('t'), await openDb(t), { replication: local, self: SELF })
  for (const e of items(600)) ref.update(e)
  const refMerkle = new MerkleUpdater({ data: ref, replication: local, log: silentLogger })
  await refMerkle.work(new AbortController().signal)
  refMerkle.updateAll()
  assert.ok(bytesEqual(again.rootHash(0), refMerkle.rootHash(0)), 'the root of a fresh build')
})

test('the worker gathers the items written while it waits and folds them in one step', async (t) => {
  const db = await openDb(t)
  const replication = new ShardedReplication(helperOf(new FixedLayout(layoutOf([SELF], 1)), SELF))
  const data = new TableData(regSchema('t'), db, { replication, self: SELF })
  const merkle = new MerkleUpdater({ data, replication, log: silentLogger, gatherMsec: 300 })
  const signal = new AbortController().signal
  const [first, ...rest] = items(50)
  data.update(first as Reg)
  const woken = merkle.waitForWork(signal) // notified by the first write, then gathers
  const early = await Promise.race([woken.then(() => 'woken'), new Promise((r) => setTimeout(r, 50)).then(() => 'still waiting')])
  assert.equal(early, 'still waiting', 'the first write does not wake the worker at once')
  for (const e of rest) data.update(e)
  await woken
  assert.equal(await merkle.work(signal), 'idle', 'a batch that is not full waits for the next items to gather')
  assert.equal(merkle.todoLength(), 0, 'the 49 items written during the wait are folded with the first')
  assert.equal(merkle.info().folded, 50)
  const ref = store(await openDb(t))
  for (const e of items(50)) ref.data.update(e)
  ref.merkle.updateAll()
  for (let p = 0; p < 256; p++) assert.ok(bytesEqual(merkle.rootHash(p), ref.merkle.rootHash(p)), `partition ${p}`)
})
