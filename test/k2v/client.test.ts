import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { K2vClient, K2vError } from '../../lib/k2v/client.ts'
import { startTestNode } from '../../lib/testing.ts'
import { eventually } from '../helpers/eventually.ts'

const text = (v: Uint8Array | null | undefined): string | null | undefined => (v == null ? v : Buffer.from(v).toString())

async function client(t: { after(fn: () => Promise<void>): void }) {
  const n = await startTestNode({ k2v_api: { api_bind_addr: '127.0.0.1:0' } })
  t.after(() => n.close())
  const make = (o: { bucket?: string; secretAccessKey?: string; region?: string } = {}) =>
    new K2vClient({
      endpoint: n.node.k2vEndpoint as string,
      region: o.region ?? n.region,
      accessKeyId: n.key.accessKeyId,
      secretAccessKey: o.secretAccessKey ?? n.key.secretAccessKey,
      bucket: o.bucket ?? n.bucket,
    })
  return { n, k2v: make(), make }
}

async function rejectsWith(p: Promise<unknown>, code: string, status: number): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof K2vError, String(err))
    assert.equal(err.code, code)
    assert.equal(err.status, status)
    return true
  })
}

describe('K2vClient', () => {
  test('items: insert, read, siblings, replace with the token, delete, poll', async (t) => {
    const { k2v } = await client(t)
    await rejectsWith(k2v.readItem('pk', 'sk'), 'NoSuchKey', 404)
    await k2v.insertItem('pk é', 'sk/1', 'one')
    await k2v.insertItem('pk é', 'sk/1', new Uint8Array([0, 1, 2]))
    const both = await k2v.readItem('pk é', 'sk/1')
    assert.deepEqual(
      both.values.map((v) => (v === null ? null : [...v])),
      [[...Buffer.from('one')], [0, 1, 2]],
    )
    await k2v.insertItem('pk é', 'sk/1', 'merged', both.causality)
    const merged = await k2v.readItem('pk é', 'sk/1')
    assert.deepEqual(merged.values.map(text), ['merged'])

    // A poll with the latest token times out (undefined); one with an older token answers at once.
    assert.equal(await k2v.pollItem('pk é', 'sk/1', merged.causality, { timeoutSeconds: 1 }), undefined)
    const older = await k2v.pollItem('pk é', 'sk/1', both.causality, { timeoutSeconds: 5 })
    assert.deepEqual(older?.values.map(text), ['merged'])

    // A poll can be aborted by its signal.
    const ac = new AbortController()
    const aborted = k2v.pollItem('pk é', 'sk/1', merged.causality, { timeoutSeconds: 60, signal: ac.signal })
    ac.abort()
    await assert.rejects(aborted, { name: 'AbortError' })

    // A poll woken by a write.
    const waiting = k2v.pollItem('pk é', 'sk/1', merged.causality, { timeoutSeconds: 60 })
    await k2v.insertItem('pk é', 'sk/1', 'next', merged.causality)
    assert.deepEqual((await waiting)?.values.map(text), ['next'])

    const latest = await k2v.readItem('pk é', 'sk/1')
    await k2v.deleteItem('pk é', 'sk/1', latest.causality)
    assert.deepEqual((await k2v.readItem('pk é', 'sk/1')).values, [null])
    await rejectsWith(k2v.insertItem('pk', 'sk', 'x', 'garbage'), 'CausalityToken', 400)
  })

  test('batches, index, poll range', async (t) => {
    const { k2v } = await client(t)
    await k2v.insertBatch([
      { partitionKey: 'a', sortKey: '1', value: 'x' },
      { partitionKey: 'a', sortKey: '2', value: 'yy' },
      { partitionKey: 'b', sortKey: '1', value: 'z' },
    ])
    // Index counters are updated in the background (as Garage's).
    await eventually('the counts', async () => {
      const index = await k2v.readIndex()
      assert.deepEqual(index.items, [
        { partitionKey: 'a', entries: 2, conflicts: 0, values: 2, bytes: 3 },
        { partitionKey: 'b', entries: 1, conflicts: 0, values: 1, bytes: 1 },
      ])
      assert.equal(index.more, false)
    })
    const page = await k2v.readIndex({ limit: 1 })
    assert.deepEqual([page.items.map((p) => p.partitionKey), page.more, page.nextStart], [['a'], true, 'b'])

    const [ra, rb] = await k2v.readBatch([{ partitionKey: 'a' }, { partitionKey: 'b', start: '1', singleItem: true }])
    assert.deepEqual(
      ra?.items.map((i) => [i.sortKey, i.values.map(text)]),
      [
        ['1', ['x']],
        ['2', ['yy']],
      ],
    )
    assert.deepEqual(
      rb?.items.map((i) => i.sortKey),
      ['1'],
    )

    const first = await k2v.pollRange('a')
    assert.ok(first !== undefined)
    assert.deepEqual([...first.items.keys()], ['1', '2'])
    assert.equal(await k2v.pollRange('a', {}, first.seenMarker, { timeoutSeconds: 1 }), undefined)
    const waiting = k2v.pollRange('a', {}, first.seenMarker, { timeoutSeconds: 60 })
    await k2v.insertBatch([{ partitionKey: 'a', sortKey: '3', value: 'new' }])
    const next = await waiting
    assert.deepEqual([...(next?.items.keys() ?? [])], ['3'])

    assert.deepEqual(
      await k2v.deleteBatch([
        { partitionKey: 'a', prefix: '' },
        { partitionKey: 'b', start: '1', singleItem: true },
      ]),
      [3, 1],
    )
    await eventually('an empty index', async () => assert.deepEqual((await k2v.readIndex()).items, []))
    const [tomb] = await k2v.readBatch([{ partitionKey: 'a', tombstones: true }])
    assert.deepEqual(
      tomb?.items.map((i) => i.values),
      [[null], [null], [null]],
    )
  })

  test('errors carry Garage codes', async (t) => {
    const { k2v, make } = await client(t)
    await rejectsWith(make({ bucket: 'no-such-bucket' }).readItem('a', 'b'), 'NoSuchBucket', 404)
    await rejectsWith(make({ secretAccessKey: 'wrong' }).readItem('a', 'b'), 'SignatureDoesNotMatch', 403)
    await rejectsWith(make({ region: 'elsewhere' }).readItem('a', 'b'), 'AuthorizationHeaderMalformed', 400)
    await rejectsWith(k2v.readBatch([{ partitionKey: 'a', singleItem: true }]), 'InvalidRequest', 400)
    await rejectsWith(k2v.readBatch([{ partitionKey: 'a', prefix: 'x', start: 'y' }]), 'InvalidRequest', 400)
    await rejectsWith(k2v.readIndex({ prefix: 'x', start: 'y' }), 'InvalidRequest', 400)
    await rejectsWith(k2v.deleteItem('a', 'b', 'AAAA'), 'CausalityToken', 400)
    await rejectsWith(k2v.pollItem('a', 'b', 'AAAA', { timeoutSeconds: 1 }), 'InvalidRequest', 400)
    await rejectsWith(k2v.pollRange('a', {}, 'not a marker'), 'InvalidRequest', 400)
    await rejectsWith(
      k2v.insertBatch([{ partitionKey: 'a', sortKey: 'b', value: 'v', causality: 'AAAA' }]),
      'CausalityToken',
      400,
    )
    await rejectsWith(k2v.deleteBatch([{ partitionKey: 'a', singleItem: true }]), 'InvalidRequest', 400)
    // Nothing was written by the refused requests.
    await rejectsWith(k2v.readItem('a', 'b'), 'NoSuchKey', 404)
  })
})
