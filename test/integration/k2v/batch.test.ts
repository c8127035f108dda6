import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { startTestNode } from '../../../lib/testing.ts'
import { eventually } from '../../helpers/eventually.ts'
import { type K2vTarget, k2vRaw } from '../../helpers/k2v.ts'

const b64 = (s: string): string => Buffer.from(s).toString('base64')

async function k2vNode(t: { after(fn: () => Promise<void>): void }): Promise<{ bucket: string; target: K2vTarget }> {
  const n = await startTestNode({ k2v_api: { api_bind_addr: '127.0.0.1:0' } })
  t.after(() => n.close())
  return {
    bucket: n.bucket,
    target: {
      endpoint: n.node.k2vEndpoint as string,
      region: n.region,
      accessKeyId: n.key.accessKeyId,
      secretAccessKey: n.key.secretAccessKey,
    },
  }
}

interface BatchItem {
  sk: string
  ct: string
  v: Array<string | null>
}
interface BatchResult {
  partitionKey: string
  items: BatchItem[]
  more: boolean
  nextStart: string | null
}

describe('K2V batches and index', () => {
  test('InsertBatch, ReadBatch (POST ?search and SEARCH), ReadIndex counts, DeleteBatch', async (t) => {
    const { bucket, target } = await k2vNode(t)
    const ins = (items: unknown) => k2vRaw(target, { method: 'POST', bucket, body: JSON.stringify(items) })
    let r = await ins([
      { pk: 'root', sk: 'a', ct: null, v: b64('A') },
      { pk: 'root', sk: 'b', ct: null, v: b64('BB') },
      { pk: 'root', sk: 'c', ct: null, v: b64('CCC') },
      { pk: 'root', sk: 'd.1', ct: null, v: b64('D1') },
      { pk: 'root', sk: 'd.2', ct: null, v: b64('D2') },
      { pk: 'other', sk: 'x', ct: null, v: b64('X') },
    ])
    assert.equal(r.status, 204, r.body.toString())
    // A sibling on 'b'.
    r = await ins([{ pk: 'root', sk: 'b', ct: null, v: b64('B2') }])
    assert.equal(r.status, 204)

    const search = async (method: 'POST' | 'SEARCH', queries: unknown): Promise<BatchResult[]> => {
      const res = await k2vRaw(target, {
        method,
        bucket,
        ...(method === 'POST' ? { query: { search: null } } : {}),
        body: JSON.stringify(queries),
      })
      assert.equal(res.status, 200, res.body.toString())
      assert.equal(res.headers.get('content-type'), 'application/json')
      return res.json() as BatchResult[]
    }
    const [all, limited, prefixed, single, conflicts, reversed] = await search('SEARCH', [
      { partitionKey: 'root' },
      { partitionKey: 'root', limit: 2 },
      { partitionKey: 'root', prefix: 'd.' },
      { partitionKey: 'root', start: 'c', singleItem: true },
      { partitionKey: 'root', conflictsOnly: true },
      { partitionKey: 'root', reverse: true, limit: 2, end: 'a' },
    ])
    assert.deepEqual(
      all?.items.map((i) => i.sk),
      ['a', 'b', 'c', 'd.1', 'd.2'],
    )
    assert.deepEqual(all?.items[1]?.v, [b64('BB'), b64('B2')])
    assert.deepEqual([limited?.items.map((i) => i.sk), limited?.more, limited?.nextStart], [['a', 'b'], true, 'c'])
    assert.deepEqual(
      prefixed?.items.map((i) => i.sk),
      ['d.1', 'd.2'],
    )
    assert.deepEqual(
      single?.items.map((i) => i.v),
      [[b64('CCC')]],
    )
    assert.deepEqual(
      conflicts?.items.map((i) => i.sk),
      ['b'],
    )
    assert.deepEqual(
      reversed?.items.map((i) => i.sk),
      ['d.2', 'd.1'],
    )
    assert.equal(reversed?.more, true)
    const [viaPost] = await search('POST', [{ partitionKey: 'root', start: 'b', end: 'd' }])
    assert.deepEqual(
      viaPost?.items.map((i) => i.sk),
      ['b', 'c'],
    )

    const index = async (query: Record<string, string> = {}) => {
      const res = await k2vRaw(target, { method: 'GET', bucket, query })
      assert.equal(res.status, 200, res.body.toString())
      return res.json() as {
        partitionKeys: Array<{ pk: string; entries: number; conflicts: number; values: number; bytes: number }>
        more: boolean
        nextStart: string | null
      }
    }
    // Index counters are updated in the background (as Garage's): each check waits for them.
    await eventually('the first counts', async () =>
      assert.deepEqual((await index()).partitionKeys, [
        { pk: 'other', entries: 1, conflicts: 0, values: 1, bytes: 1 },
        { pk: 'root', entries: 5, conflicts: 1, values: 6, bytes: 1 + 2 + 2 + 3 + 2 + 2 },
      ]),
    )
    const idx = await index({ limit: '1' })
    assert.deepEqual([idx.partitionKeys.map((p) => p.pk), idx.more, idx.nextStart], [['other'], true, 'root'])

    // Resolve the conflict on b with its token: values drop by one.
    const bItem = all?.items[1] as BatchItem
    r = await ins([{ pk: 'root', sk: 'b', ct: bItem.ct, v: b64('B') }])
    assert.equal(r.status, 204)
    await eventually('the conflict resolved in the counts', async () =>
      assert.deepEqual((await index({ prefix: 'ro' })).partitionKeys, [
        { pk: 'root', entries: 5, conflicts: 0, values: 5, bytes: 1 + 1 + 3 + 2 + 2 },
      ]),
    )

    // DeleteBatch: a prefix, then a single item.
    r = await k2vRaw(target, {
      method: 'POST',
      bucket,
      query: { delete: null },
      body: JSON.stringify([
        { partitionKey: 'root', prefix: 'd.' },
        { partitionKey: 'other', start: 'x', singleItem: true },
      ]),
    })
    assert.equal(r.status, 200, r.body.toString())
    assert.deepEqual(r.json(), [
      { partitionKey: 'root', prefix: 'd.', start: null, end: null, singleItem: false, deletedItems: 2 },
      { partitionKey: 'other', prefix: null, start: 'x', end: null, singleItem: true, deletedItems: 1 },
    ])
    // 'other' has no entry left: it leaves the index.
    await eventually('the deletions in the counts', async () =>
      assert.deepEqual((await index()).partitionKeys, [{ pk: 'root', entries: 3, conflicts: 0, values: 3, bytes: 5 }]),
    )

    // Tombstones show only when asked for.
    const [withT, withoutT] = await search('SEARCH', [
      { partitionKey: 'root', prefix: 'd.', tombstones: true },
      { partitionKey: 'root', prefix: 'd.' },
    ])
    assert.deepEqual(
      withT?.items.map((i) => [i.sk, i.v]),
      [
        ['d.1', [null]],
        ['d.2', [null]],
      ],
    )
    assert.deepEqual(withoutT?.items, [])
  })

  test('bad batch bodies are refused with Garage codes and change nothing', async (t) => {
    const { bucket, target } = await k2vNode(t)
    const cases: Array<[string, Record<string, string | null> | undefined, string, number, string]> = [
      ['POST', undefined, 'not json', 400, 'InvalidRequest'],
      ['POST', undefined, JSON.stringify([{ pk: 'p', sk: 's', v: '!!!' }]), 400, 'InvalidBase64'],
      ['POST', undefined, JSON.stringify([{ pk: 'p', sk: 's', ct: 'zz', v: null }]), 400, 'CausalityToken'],
      ['POST', undefined, JSON.stringify([{ sk: 's', v: null }]), 400, 'InvalidRequest'],
      ['POST', { search: null }, JSON.stringify([{ partitionKey: 'p', singleItem: true }]), 400, 'InvalidRequest'],
      ['POST', { search: null }, JSON.stringify([{ partitionKey: 'p', prefix: 'a', start: 'b' }]), 400, 'InvalidRequest'],
      ['POST', { search: null, delete: null }, '[]', 400, 'InvalidRequest'],
    ]
    for (const [method, query, body, status, code] of cases) {
      const r = await k2vRaw(target, { method, bucket, ...(query === undefined ? {} : { query }), body })
      assert.equal(r.status, status, `${body}: ${r.body.toString()}`)
      const e = r.json() as { code: string; message: string; region: string; path: string }
      assert.equal(e.code, code, body)
      assert.equal(e.region, target.region)
      assert.equal(e.path, `/${bucket}`)
    }
    const r = await k2vRaw(target, {
      method: 'POST',
      bucket,
      query: { search: null },
      body: JSON.stringify([{ partitionKey: 'p', tombstones: true }]),
    })
    assert.deepEqual((r.json() as BatchResult[])[0]?.items, [])
  })
})
