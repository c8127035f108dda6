import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { startTestNode } from '../../../lib/testing.ts'
import { type K2vTarget, k2vRaw } from '../../helpers/k2v.ts'

const b64 = (s: string): string => Buffer.from(s).toString('base64')
const JSON_ONLY = { accept: 'application/json' }

async function k2vNode(t: { after(fn: () => Promise<void>): void }) {
  const n = await startTestNode({ k2v_api: { api_bind_addr: '127.0.0.1:0' } })
  t.after(() => n.close())
  const target: K2vTarget = {
    endpoint: n.node.k2vEndpoint as string,
    region: n.region,
    accessKeyId: n.key.accessKeyId,
    secretAccessKey: n.key.secretAccessKey,
  }
  return { n, bucket: n.bucket, target }
}

// A write racing ahead of the poll's subscription is seen by the poll's first read, so these
// answers do not depend on timing; test/model/k2v/rpc.test.ts checks the wake-up itself.
describe('K2V polling', () => {
  test('PollItem answers when a newer value is written, 304 at its timeout', async (t) => {
    const { bucket, target } = await k2vNode(t)
    await k2vRaw(target, { method: 'PUT', bucket, pk: 'p', query: { sort_key: 's' }, body: 'v1' })
    const read = await k2vRaw(target, { method: 'GET', bucket, pk: 'p', query: { sort_key: 's' }, headers: JSON_ONLY })
    const ct = read.headers.get('x-garage-causality-token') as string

    // Nothing newer than ct: the poll waits, then 304.
    const timedOut = await k2vRaw(target, {
      method: 'GET',
      bucket,
      pk: 'p',
      query: { sort_key: 's', causality_token: ct, timeout: '1' },
    })
    assert.equal(timedOut.status, 304)

    // A poll waiting on its subscription is woken by a write (no re-read loop: one subscriber).
    const poll = k2vRaw(target, {
      method: 'GET',
      bucket,
      pk: 'p',
      query: { sort_key: 's', causality_token: ct, timeout: '60' },
      headers: JSON_ONLY,
    })
    await k2vRaw(target, {
      method: 'PUT',
      bucket,
      pk: 'p',
      query: { sort_key: 's' },
      headers: { 'x-garage-causality-token': ct },
      body: 'v2',
    })
    const r = await poll
    assert.equal(r.status, 200)
    assert.deepEqual(r.json(), [b64('v2')])
    assert.notEqual(r.headers.get('x-garage-causality-token'), ct)

    // An item that does not exist yet: a poll with an empty clock wakes on its creation.
    const empty = 'AAAAAAAAAAA'
    const poll2 = k2vRaw(target, {
      method: 'GET',
      bucket,
      pk: 'p',
      query: { sort_key: 'new', causality_token: empty, timeout: '60' },
      headers: JSON_ONLY,
    })
    await k2vRaw(target, { method: 'PUT', bucket, pk: 'p', query: { sort_key: 'new' }, body: 'n' })
    assert.deepEqual((await poll2).json(), [b64('n')])

    const bad = await k2vRaw(target, {
      method: 'GET',
      bucket,
      pk: 'p',
      query: { sort_key: 's', causality_token: '%%', timeout: '1' },
    })
    assert.equal(bad.status, 400)
  })

  test('PollRange: first call lists, then waits for new items after the seen marker', async (t) => {
    const { bucket, target } = await k2vNode(t)
    await k2vRaw(target, {
      method: 'POST',
      bucket,
      body: JSON.stringify([
        { pk: 'p', sk: 'a', v: b64('1') },
        { pk: 'p', sk: 'b', v: b64('2') },
        { pk: 'p', sk: 'z', v: b64('3') },
      ]),
    })
    const pollRange = (body: unknown, method = 'POST') =>
      k2vRaw(target, { method, bucket, pk: 'p', query: { poll_range: null }, body: JSON.stringify(body) })
    let r = await pollRange({ end: 'y' })
    assert.equal(r.status, 200, r.body.toString())
    let res = r.json() as { items: Array<{ sk: string; v: string[] }>; seenMarker: string }
    assert.deepEqual(
      res.items.map((i) => i.sk),
      ['a', 'b'],
    )
    const marker = res.seenMarker

    r = await pollRange({ end: 'y', seenMarker: marker, timeout: 1 }, 'SEARCH')
    assert.equal(r.status, 304)

    const waiting = pollRange({ end: 'y', seenMarker: marker, timeout: 60 })
    // Outside the range: does not wake the poll.
    await k2vRaw(target, { method: 'PUT', bucket, pk: 'p', query: { sort_key: 'zz' }, body: 'x' })
    await k2vRaw(target, { method: 'PUT', bucket, pk: 'p', query: { sort_key: 'c' }, body: 'y' })
    r = await waiting
    assert.equal(r.status, 200)
    res = r.json() as { items: Array<{ sk: string; v: string[] }>; seenMarker: string }
    assert.deepEqual(
      res.items.map((i) => [i.sk, i.v]),
      [['c', [b64('y')]]],
    )

    r = await pollRange({ seenMarker: 'garbage!' })
    assert.equal(r.status, 400)
  })
})
