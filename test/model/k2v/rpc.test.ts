import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { causalContextOf, k2vPartitionBytes, updateK2vItem } from '../../../lib/model/k2v/item-table.ts'
import { utf8 } from '../../../lib/util/data.ts'
import { startModel } from '../../helpers/model.ts'

const bucket = new Uint8Array(32).fill(7)
const text = (v: Uint8Array | null | undefined): string | null | undefined => (v == null ? v : Buffer.from(v).toString())

/** Resolves once `cond` holds, checking after each turn of the event loop. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 10_000 && !cond(); i++) await new Promise((r) => setImmediate(r))
  assert.ok(cond())
}

describe('K2V RPC on one node', () => {
  test('a poll subscribes, is woken by a change that arrives as a replicated row, and unsubscribes', async (t) => {
    const { garage } = await startModel(t)
    const k2v = garage.k2v
    await k2v.rpc.insert(bucket, { partitionKey: 'p', sortKey: 's', value: utf8('v1') })
    const item = await k2v.itemTable.get(k2vPartitionBytes(bucket, 'p'), utf8('s'))
    assert.ok(item !== undefined)
    const seen = causalContextOf(item)

    const poll = k2v.rpc.pollItem(bucket, 'p', 's', seen, 60_000)
    await until(() => k2v.subscriptions.size === 1)
    // What another node's write looks like here: a merged row from the table RPC.
    const remote = updateK2vItem(item, 'ffffffffffffffff', seen, utf8('v2'), Date.now()).item
    k2v.itemTable.handle({ op: 'update', entries: [k2v.itemTable.schema.codec.encode(remote)] })
    const got = await poll
    assert.deepEqual(got === undefined ? undefined : Object.values(got.items).flatMap((e) => e.values.map(([, v]) => text(v))), [
      'v2',
    ])
    assert.equal(k2v.subscriptions.size, 0)
  })

  test('a poll that sees nothing new answers nothing at its timeout and unsubscribes', async (t) => {
    const { garage } = await startModel(t)
    const k2v = garage.k2v
    const none = await k2v.rpc.pollItem(bucket, 'p', 'missing', new Map(), 20)
    assert.equal(none, undefined)
    assert.equal(k2v.subscriptions.size, 0)
  })

  test('PollRange wakes on an item of its range only', async (t) => {
    const { garage } = await startModel(t)
    const k2v = garage.k2v
    const first = await k2v.rpc.pollRange({ bucketId: bucket, partitionKey: 'p', prefix: 'a' }, undefined, 1000)
    assert.ok(first !== undefined)
    assert.deepEqual(first.items, [])
    const waiting = k2v.rpc.pollRange({ bucketId: bucket, partitionKey: 'p', prefix: 'a' }, first.seenMarker, 60_000)
    await until(() => k2v.subscriptions.size === 1)
    await k2v.rpc.insert(bucket, { partitionKey: 'p', sortKey: 'b1', value: utf8('no') })
    assert.equal(k2v.subscriptions.size, 1)
    await k2v.rpc.insert(bucket, { partitionKey: 'p', sortKey: 'a1', value: utf8('yes') })
    const got = await waiting
    assert.deepEqual(
      got?.items.map((i) => i.sortKey),
      ['a1'],
    )
    assert.equal(k2v.subscriptions.size, 0)
  })
})
