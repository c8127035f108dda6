/**
 * The version table's encoding: blocks as records (`GTver2`), rows written as tuples (`GTver1`)
 * still read, from lmdb and from a peer that still sends them, and merged with new ones.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type TestContext, test } from 'node:test'
import { openLmdb } from '../../../lib/db/lmdb.ts'
import type { BlockRefEntry } from '../../../lib/model/s3/block-ref-table.ts'
import {
  type VersionBlock,
  type VersionEntry,
  versionBlock,
  versionCodec,
  versionTableSchema,
} from '../../../lib/model/s3/version-table.ts'
import { TableData } from '../../../lib/table/data.ts'
import type { TableReplication } from '../../../lib/table/replication.ts'
import { NetAppTableTransport, registerTableHandler } from '../../../lib/table/rpc.ts'
import type { TableSchema } from '../../../lib/table/schema.ts'
import { Table } from '../../../lib/table/table.ts'
import { defineCodec } from '../../../lib/util/codec.ts'
import { blake2sum, genUuid, type Hash } from '../../../lib/util/data.ts'
import { silentLogger } from '../../../lib/util/logger.ts'
import { eventually } from '../../helpers/eventually.ts'
import { startModel } from '../../helpers/model.ts'
import { newSecret, startNode } from '../../net/net-fixtures.ts'
import { FixedReplication } from '../../table/replication-fixtures.ts'

const EMPTY = new Uint8Array(0)

/** A version row as the previous code built it: blocks as `[partNumber, offset, hash, size]`. */
interface TupleVersionEntry extends Omit<VersionEntry, 'blocks'> {
  blocks: Array<[number, number, Hash, number]>
}
/** The previous encoder, exactly: marker `GTver1`, then msgpack of the tuple form. */
const tupleCodec = defineCodec<TupleVersionEntry>('GTver1')

const h = (s: string): Hash => blake2sum(s)

function tupleVersion(uuid: Uint8Array, blocks: TupleVersionEntry['blocks']): TupleVersionEntry {
  return { uuid, deleted: false, blocks, partsEtags: [[1, 'etag1']], backlink: { t: 'object', bucketId: h('bucket'), key: 'k' } }
}

function recordVersion(uuid: Uint8Array, blocks: VersionBlock[]): VersionEntry {
  return { uuid, deleted: false, blocks, partsEtags: [[1, 'etag1']], backlink: { t: 'object', bucketId: h('bucket'), key: 'k' } }
}

/** Compares hashes as bytes (msgpack gives back Uint8Array where the caller may hold a Buffer). */
function plain(v: VersionEntry | undefined): unknown {
  if (v === undefined) return undefined
  return {
    ...v,
    uuid: Buffer.from(v.uuid).toString('hex'),
    blocks: v.blocks.map((b) => ({ ...b, hash: Buffer.from(b.hash).toString('hex') })),
    backlink:
      v.backlink.t === 'object' ? { ...v.backlink, bucketId: Buffer.from(v.backlink.bucketId).toString('hex') } : v.backlink,
  }
}

test('a GTver1 row (blocks as tuples) decodes to block records', () => {
  const uuid = genUuid()
  const old = tupleCodec.encode(
    tupleVersion(uuid, [
      [1, 0, h('a'), 1024],
      [2, 0, h('b'), 7],
    ]),
  )
  assert.equal(Buffer.from(old.subarray(0, 6)).toString('ascii'), 'GTver1')
  const v = versionCodec.decode(old)
  assert.deepEqual(plain(v), plain(recordVersion(uuid, [versionBlock(1, 0, h('a'), 1024), versionBlock(2, 0, h('b'), 7)])))
  // Re-encoded in the current format, and stable from then on.
  const again = versionCodec.encode(v)
  assert.equal(Buffer.from(again.subarray(0, 6)).toString('ascii'), 'GTver2')
  assert.deepEqual(versionCodec.encode(versionCodec.decode(again)), again)
})

test('encoding does not depend on the order a block record was built in', () => {
  const uuid = genUuid()
  const hash = h('a')
  const built = recordVersion(uuid, [versionBlock(1, 0, hash, 10)])
  const shuffled = recordVersion(uuid, [{ size: 10, hash, offset: 0, partNumber: 1 }])
  assert.deepEqual(versionCodec.encode(shuffled), versionCodec.encode(built))
})

test('replicas holding the old and the new format merge to the same entry, in either order', () => {
  const schema = versionTableSchema({ queueBlockRef: () => {} })
  const uuid = genUuid()
  const oldRow = versionCodec.decode(
    tupleCodec.encode(
      tupleVersion(uuid, [
        [1, 0, h('a'), 10],
        [1, 10, h('x'), 5],
      ]),
    ),
  )
  const newRow = versionCodec.decode(
    versionCodec.encode(recordVersion(uuid, [versionBlock(1, 10, h('y'), 5), versionBlock(2, 0, h('b'), 3)])),
  )
  const ab = schema.merge(oldRow, newRow)
  const ba = schema.merge(newRow, oldRow)
  assert.deepEqual(versionCodec.encode(ab), versionCodec.encode(ba), 'commutative, to the byte')
  const slot = Buffer.compare(h('x'), h('y')) >= 0 ? h('x') : h('y')
  assert.deepEqual(
    plain(ab),
    plain(recordVersion(uuid, [versionBlock(1, 0, h('a'), 10), versionBlock(1, 10, slot, 5), versionBlock(2, 0, h('b'), 3)])),
  )
  assert.deepEqual(versionCodec.encode(schema.merge(ab, oldRow)), versionCodec.encode(ab), 'idempotent')
})

test('an old-format row in lmdb is read, merged, rewritten and its deletion still releases its blocks', async (t) => {
  const { garage } = await startModel(t)
  const data = garage.versionTable.data
  const uuid = genUuid()
  const key = data.treeKey(uuid, EMPTY)
  // Written by the previous code: raw GTver1 bytes straight into the table's lmdb tree.
  data.db.transaction((tx) => tx.insert(data.store, key, tupleCodec.encode(tupleVersion(uuid, [[1, 0, h('a'), 10]]))))

  assert.deepEqual(
    plain(await garage.versionTable.get(uuid, EMPTY)),
    plain(recordVersion(uuid, [versionBlock(1, 0, h('a'), 10)])),
  )

  // A new block merges with the old row; the row is stored in the current format.
  await garage.versionTable.insert(recordVersion(uuid, [versionBlock(1, 10, h('b'), 4)]))
  const raw = data.store.get(key) as Uint8Array
  assert.equal(Buffer.from(raw.subarray(0, 6)).toString('ascii'), 'GTver2')
  assert.deepEqual(
    plain(await garage.versionTable.get(uuid, EMPTY)),
    plain(recordVersion(uuid, [versionBlock(1, 0, h('a'), 10), versionBlock(1, 10, h('b'), 4)])),
  )

  // Deleting an old-format row: the `updated` hook reads its blocks and tombstones their refs.
  const other = genUuid()
  data.db.transaction((tx) =>
    tx.insert(data.store, data.treeKey(other, EMPTY), tupleCodec.encode(tupleVersion(other, [[1, 0, h('c'), 10]]))),
  )
  await garage.blockRefTable.insert({ block: h('c'), version: other, deleted: false })
  await garage.versionTable.insert({ ...recordVersion(other, []), deleted: true })
  await eventually(
    'the block reference is tombstoned',
    async () => (await garage.blockRefTable.get(h('c'), other))?.deleted === true,
  )
})

async function tableOn<E>(
  t: TestContext,
  node: Awaited<ReturnType<typeof startNode>>,
  schema: TableSchema<E>,
  replication: TableReplication,
): Promise<Table<E>> {
  const dir = await mkdtemp(join(tmpdir(), 'garage-version-table-'))
  const db = await openLmdb(dir, { fsync: false })
  const stop = new AbortController()
  const table = new Table<E>({
    schema,
    data: new TableData(schema, db),
    replication,
    self: node.key.id,
    log: silentLogger,
    transport: new NetAppTableTransport(node.net),
    signal: stop.signal,
  })
  registerTableHandler(node.net, table)
  t.after(async () => {
    stop.abort()
    await table.settled()
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })
  return table
}

test('over RPC, a node on the new format reads and merges entries a node still on tuples sends', async (t) => {
  const secret = newSecret()
  const [oldNode, newNode] = await Promise.all([startNode(t, secret), startNode(t, secret)])
  await oldNode.net.connect(newNode.key.id, newNode.addr)
  await newNode.net.connect(oldNode.key.id, oldNode.addr)
  const both = [oldNode.key.id, newNode.key.id]
  const current = versionTableSchema({ queueBlockRef: (_tx: unknown, _e: BlockRefEntry) => {} })
  // The previous code's table: same name (so same RPC endpoint), tuple codec.
  const previous: TableSchema<TupleVersionEntry> = {
    ...(current as unknown as TableSchema<TupleVersionEntry>),
    codec: tupleCodec,
    merge: (a, b) => ({ ...a, blocks: [...a.blocks, ...b.blocks].sort((x, y) => x[0] - y[0] || x[1] - y[1]) }),
    updated: undefined,
  }
  const oldTable = await tableOn(t, oldNode, previous, new FixedReplication({ read: [oldNode.key.id], write: both }))
  // The new node reads only from the old one: every answer it decodes is a GTver1 one.
  const newTable = await tableOn(t, newNode, current, new FixedReplication({ read: [oldNode.key.id], write: [newNode.key.id] }))

  const uuid = genUuid()
  await newTable.insert(recordVersion(uuid, [versionBlock(2, 0, h('b'), 3)]))
  // An `update` RPC carrying GTver1 bytes, merged into the new node's GTver2 row.
  await oldTable.insert(tupleVersion(uuid, [[1, 0, h('a'), 10]]))
  const expected = plain(recordVersion(uuid, [versionBlock(1, 0, h('a'), 10), versionBlock(2, 0, h('b'), 3)]))
  assert.deepEqual(plain(newTable.data.read(uuid, EMPTY)), expected, 'merged on the new node')
  const raw = newTable.data.store.get(newTable.data.treeKey(uuid, EMPTY)) as Uint8Array
  assert.equal(Buffer.from(raw.subarray(0, 6)).toString('ascii'), 'GTver2')

  // `get` and `range` answers from the old node are GTver1 bytes too.
  assert.deepEqual(plain(await newTable.get(uuid, EMPTY)), plain(recordVersion(uuid, [versionBlock(1, 0, h('a'), 10)])))
  const listed = await newTable.getRange(uuid, { limit: 10 })
  assert.deepEqual(listed.map(plain), [plain(recordVersion(uuid, [versionBlock(1, 0, h('a'), 10)]))])
})
