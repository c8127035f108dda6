import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { DeleteBucketCommand, S3Client } from '@aws-sdk/client-s3'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { eventually } from '../../helpers/eventually.ts'
import { type K2vTarget, k2vRaw } from '../../helpers/k2v.ts'

// fetch sends "Accept: */*" by default, which lets a single value come back raw.
const JSON_ONLY = { accept: 'application/json' }

async function k2vNode(t: { after(fn: () => Promise<void>): void }): Promise<{ n: TestNode; target: K2vTarget }> {
  const n = await startTestNode({ k2v_api: { api_bind_addr: '127.0.0.1:0' } })
  t.after(() => n.close())
  const target = {
    endpoint: n.node.k2vEndpoint as string,
    region: n.region,
    accessKeyId: n.key.accessKeyId,
    secretAccessKey: n.key.secretAccessKey,
  }
  return { n, target }
}

describe('K2V items over raw signed requests', () => {
  test('insert, read (json and binary), siblings, supersede, delete', async (t) => {
    const { n, target } = await k2vNode(t)
    const b = n.bucket
    let r = await k2vRaw(target, { method: 'GET', bucket: b, pk: 'p', query: { sort_key: 's' }, headers: JSON_ONLY })
    assert.equal(r.status, 404)
    assert.equal(r.headers.get('content-type'), 'application/json')
    assert.equal((r.json() as { code: string }).code, 'NoSuchKey')

    r = await k2vRaw(target, { method: 'PUT', bucket: b, pk: 'p', query: { sort_key: 's' }, body: 'hello' })
    assert.equal(r.status, 204)
    r = await k2vRaw(target, { method: 'GET', bucket: b, pk: 'p', query: { sort_key: 's' }, headers: JSON_ONLY })
    assert.equal(r.status, 200)
    assert.equal(r.headers.get('content-type'), 'application/json')
    assert.deepEqual(r.json(), [Buffer.from('hello').toString('base64')])
    const ct1 = r.headers.get('x-garage-causality-token') as string
    assert.match(ct1, /^[A-Za-z0-9_-]+$/)

    r = await k2vRaw(target, {
      method: 'GET',
      bucket: b,
      pk: 'p',
      query: { sort_key: 's' },
      headers: { accept: 'application/octet-stream' },
    })
    assert.equal(r.status, 200)
    assert.equal(r.body.toString(), 'hello')
    assert.equal(r.headers.get('content-type'), 'application/octet-stream')

    // A second write without a token: two concurrent values.
    r = await k2vRaw(target, { method: 'PUT', bucket: b, pk: 'p', query: { sort_key: 's' }, body: 'world' })
    assert.equal(r.status, 204)
    r = await k2vRaw(target, { method: 'GET', bucket: b, pk: 'p', query: { sort_key: 's' }, headers: JSON_ONLY })
    assert.deepEqual(
      r.json(),
      ['hello', 'world'].map((s) => Buffer.from(s).toString('base64')),
    )
    const ct2 = r.headers.get('x-garage-causality-token') as string
    r = await k2vRaw(target, {
      method: 'GET',
      bucket: b,
      pk: 'p',
      query: { sort_key: 's' },
      headers: { accept: 'application/octet-stream' },
    })
    assert.equal(r.status, 409)
    assert.equal(r.headers.get('x-garage-causality-token'), ct2)
    r = await k2vRaw(target, { method: 'GET', bucket: b, pk: 'p', query: { sort_key: 's' }, headers: { accept: 'text/plain' } })
    assert.equal(r.status, 406)
    assert.equal((r.json() as { code: string }).code, 'NotAcceptable')

    // A write with the token supersedes both.
    r = await k2vRaw(target, {
      method: 'PUT',
      bucket: b,
      pk: 'p',
      query: { sort_key: 's' },
      headers: { 'x-garage-causality-token': ct2 },
      body: 'merged',
    })
    assert.equal(r.status, 204)
    r = await k2vRaw(target, { method: 'GET', bucket: b, pk: 'p', query: { sort_key: 's' }, headers: { accept: '*/*' } })
    assert.equal(r.status, 200)
    assert.equal(r.body.toString(), 'merged')
    const ct3 = r.headers.get('x-garage-causality-token') as string

    // Delete with the token: a tombstone, 204 in binary, [null] in JSON.
    r = await k2vRaw(target, {
      method: 'DELETE',
      bucket: b,
      pk: 'p',
      query: { sort_key: 's' },
      headers: { 'x-garage-causality-token': ct3 },
    })
    assert.equal(r.status, 204)
    r = await k2vRaw(target, { method: 'GET', bucket: b, pk: 'p', query: { sort_key: 's' }, headers: JSON_ONLY })
    assert.equal(r.status, 200)
    assert.deepEqual(r.json(), [null])
    r = await k2vRaw(target, {
      method: 'GET',
      bucket: b,
      pk: 'p',
      query: { sort_key: 's' },
      headers: { accept: 'application/octet-stream' },
    })
    assert.equal(r.status, 204)
    assert.ok(r.headers.get('x-garage-causality-token'))

    // A bad token is refused and changes nothing.
    r = await k2vRaw(target, {
      method: 'PUT',
      bucket: b,
      pk: 'p',
      query: { sort_key: 's' },
      headers: { 'x-garage-causality-token': 'not-a-token' },
      body: 'x',
    })
    assert.equal(r.status, 400)
    assert.equal((r.json() as { code: string }).code, 'CausalityToken')
    r = await k2vRaw(target, { method: 'GET', bucket: b, pk: 'p', query: { sort_key: 's' }, headers: JSON_ONLY })
    assert.deepEqual(r.json(), [null])
  })

  test('non-ASCII partition and sort keys', async (t) => {
    const { n, target } = await k2vNode(t)
    const pk = 'clé/été ü+%'
    const sk = 'trié 日本 +&='
    let r = await k2vRaw(target, { method: 'PUT', bucket: n.bucket, pk, query: { sort_key: sk }, body: 'v' })
    assert.equal(r.status, 204, r.body.toString())
    r = await k2vRaw(target, {
      method: 'POST',
      bucket: n.bucket,
      query: { search: null },
      body: JSON.stringify([{ partitionKey: pk }]),
    })
    assert.equal(r.status, 200, r.body.toString())
    const [res] = r.json() as Array<{ items: Array<{ sk: string }> }>
    assert.deepEqual(
      res?.items.map((i) => i.sk),
      [sk],
    )
    await eventually('the key in the index', async () => {
      const idx = await k2vRaw(target, { method: 'GET', bucket: n.bucket })
      assert.deepEqual(
        (idx.json() as { partitionKeys: Array<{ pk: string }> }).partitionKeys.map((p) => p.pk),
        [pk],
      )
    })
  })

  test('same keys and bucket permissions as S3', async (t) => {
    const { n, target } = await k2vNode(t)
    const reader = await n.node.keys.create({ name: 'reader' })
    await n.node.buckets.allowKey(n.bucket, reader.accessKeyId, { read: true, write: false, owner: false })
    const stranger = await n.node.keys.create({ name: 'stranger' })
    const as = (k: { accessKeyId: string; secretAccessKey: string }) => ({ ...target, ...k })
    const put = { method: 'PUT', bucket: n.bucket, pk: 'p', query: { sort_key: 's' }, body: 'v' }
    const get = { method: 'GET', bucket: n.bucket, pk: 'p', query: { sort_key: 's' }, headers: JSON_ONLY }

    let r = await k2vRaw(as(reader), put)
    assert.equal(r.status, 403)
    assert.equal((r.json() as { code: string }).code, 'AccessDenied')
    r = await k2vRaw(as(reader), get)
    assert.equal(r.status, 404)
    r = await k2vRaw(as(stranger), get)
    assert.equal(r.status, 403)
    r = await k2vRaw(target, { ...get, bucket: 'no-such-bucket' })
    assert.equal(r.status, 404)
    assert.equal((r.json() as { code: string }).code, 'NoSuchBucket')
    r = await k2vRaw({ ...target, secretAccessKey: 'x'.repeat(40) }, get)
    assert.equal(r.status, 403)
    assert.equal((r.json() as { code: string }).code, 'SignatureDoesNotMatch')
    r = await k2vRaw({ ...target, accessKeyId: 'GK000000000000000000000000' }, get)
    assert.equal(r.status, 403)
    assert.equal((r.json() as { code: string }).code, 'InvalidAccessKeyId')
    // Unsigned: anonymous access is refused.
    const res = await fetch(`${target.endpoint}/${n.bucket}/p?sort_key=s`)
    assert.equal(res.status, 403)
    assert.equal(res.headers.get('content-type'), 'application/json')
    // Nothing was written by the refused requests.
    r = await k2vRaw(target, get)
    assert.equal(r.status, 404)
  })

  test('a bucket holding K2V items is not empty for DeleteBucket (Garage: is_bucket_empty)', async (t) => {
    const { n, target } = await k2vNode(t)
    const s3 = new S3Client(n.s3Config)
    t.after(() => s3.destroy())
    await k2vRaw(target, { method: 'PUT', bucket: n.bucket, pk: 'p', query: { sort_key: 's' }, body: 'v' })
    // Index counters are updated in the background (as Garage's): wait until the item counts.
    const indexed = async () => (await k2vRaw(target, { method: 'GET', bucket: n.bucket })).json() as { partitionKeys: unknown[] }
    await eventually('the item in the index', async () => (await indexed()).partitionKeys.length === 1)
    await assert.rejects(s3.send(new DeleteBucketCommand({ Bucket: n.bucket })), { name: 'BucketNotEmpty' })
    const r = await k2vRaw(target, { method: 'GET', bucket: n.bucket, pk: 'p', query: { sort_key: 's' }, headers: JSON_ONLY })
    await k2vRaw(target, {
      method: 'DELETE',
      bucket: n.bucket,
      pk: 'p',
      query: { sort_key: 's' },
      headers: { 'x-garage-causality-token': r.headers.get('x-garage-causality-token') as string },
    })
    await eventually('the index empty', async () => (await indexed()).partitionKeys.length === 0)
    await s3.send(new DeleteBucketCommand({ Bucket: n.bucket }))
  })

  test('bad item and index requests get Garage codes and change nothing', async (t) => {
    const { n, target } = await k2vNode(t)
    const b = n.bucket
    const cases: Array<[Parameters<typeof k2vRaw>[1], number, string]> = [
      [{ method: 'PUT', bucket: b, pk: 'p', body: 'v' }, 400, 'InvalidRequest'],
      [{ method: 'PUT', bucket: b, pk: 'p', query: { sort_key: 's', search: null }, body: 'v' }, 400, 'InvalidRequest'],
      [
        { method: 'DELETE', bucket: b, pk: 'p', query: { sort_key: 's' }, headers: { 'x-garage-causality-token': 'AAAA' } },
        400,
        'CausalityToken',
      ],
      [{ method: 'GET', bucket: b, query: { limit: 'ten' } }, 400, 'InvalidRequest'],
      [{ method: 'GET', bucket: b, query: { prefix: 'a', start: 'b' } }, 400, 'InvalidRequest'],
      [
        { method: 'GET', bucket: b, pk: 'p', query: { sort_key: 's', causality_token: 'AAAAAAAAAAA', timeout: 'soon' } },
        400,
        'InvalidRequest',
      ],
      [{ method: 'PATCH', bucket: b, pk: 'p', query: { sort_key: 's' } }, 400, 'InvalidRequest'],
      // Keys longer than the metadata store takes (Garage sets no limit of its own).
      [{ method: 'PUT', bucket: b, pk: 'p', query: { sort_key: 's'.repeat(2000) }, body: 'v' }, 400, 'KeyTooLongError'],
      [{ method: 'PUT', bucket: b, pk: 'p'.repeat(2000), query: { sort_key: 's' }, body: 'v' }, 400, 'KeyTooLongError'],
      [{ method: 'POST', bucket: b, body: JSON.stringify([{ pk: 'p', sk: 's'.repeat(2000), v: null }]) }, 400, 'KeyTooLongError'],
      [{ method: 'GET', bucket: b, pk: 'p', query: { sort_key: 's'.repeat(2000) } }, 400, 'KeyTooLongError'],
    ]
    for (const [req, status, code] of cases) {
      const r = await k2vRaw(target, req)
      assert.equal(r.status, status, `${req.method} ${JSON.stringify(req.query)}: ${r.body.toString()}`)
      assert.equal(r.headers.get('content-type'), 'application/json')
      assert.equal((r.json() as { code: string }).code, code)
    }
    const r = await k2vRaw(target, { method: 'GET', bucket: b, pk: 'p', query: { sort_key: 's' }, headers: JSON_ONLY })
    assert.equal(r.status, 404)
  })
})
