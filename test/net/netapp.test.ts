import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { defineEndpoint, withStream } from '../../lib/net/endpoint.ts'
import { NetError, RemoteError } from '../../lib/net/errors.ts'
import { parsePeerAddr } from '../../lib/net/netapp.ts'
import { isGarageError } from '../../lib/util/errors.ts'
import { newSecret, pattern, startNode } from './net-fixtures.ts'

const ADD = defineEndpoint<{ a: number; b: number }, { sum: number; from: string }>('test/add')
const FAIL = defineEndpoint<{ why: string }, never>('test/fail')
const HASH = defineEndpoint<{ label: string }, { label: string; size: number; sha256: string }>('test/hash')
const PRODUCE = defineEndpoint<{ size: number }, { size: number }>('test/produce')
const ECHO_STREAM = defineEndpoint<null, null>('test/echo-stream')
const SUM_ALL = defineEndpoint<{ xs: number[] }, { sum: number; echo: number[] }>('test/sum-all')

async function digest(source: AsyncIterable<Uint8Array>): Promise<{ size: number; sha256: string }> {
  const h = createHash('sha256')
  let size = 0
  for await (const c of source) {
    h.update(c)
    size += c.length
  }
  return { size, sha256: h.digest('hex') }
}

async function threeNodes(t: Parameters<typeof startNode>[0]) {
  const secret = newSecret()
  const nodes = await Promise.all([startNode(t, secret), startNode(t, secret), startNode(t, secret)])
  for (const { net } of nodes) {
    net.handle(ADD, (req, from) => ({ sum: req.a + req.b, from }))
    net.handle(FAIL, (req) => {
      throw Object.assign(new Error(`refused: ${req.why}`), { code: 'E_TEST' })
    })
    net.handle(HASH, async (req, _from, ctx) => {
      assert.ok(ctx.stream !== undefined, 'the request carries a stream')
      return { label: req.label, ...(await digest(ctx.stream)) }
    })
    net.handle(PRODUCE, (req) => withStream({ size: req.size }, pattern(req.size)))
    net.handle(ECHO_STREAM, (_req, _from, ctx) => withStream(null, ctx.stream ?? new Uint8Array(0)))
    net.handle(SUM_ALL, (req) => ({ sum: req.xs.reduce((s, x) => s + x, 0), echo: req.xs }))
  }
  for (const a of nodes) for (const b of nodes) if (a !== b) await a.net.connect(b.key.id, b.addr)
  return nodes
}

test('typed calls between three nodes, in every direction and to oneself', async (t) => {
  const nodes = await threeNodes(t)
  for (const a of nodes) {
    for (const b of nodes) {
      const r = await a.net.call(b.key.id, ADD, { a: 2, b: 40 })
      assert.deepEqual(r, { sum: 42, from: a.key.id }, 'the handler sees the authenticated caller id')
    }
  }
})

test('many concurrent calls all get their own answer, without a listener-leak warning', async (t) => {
  const [a, b, c] = await threeNodes(t)
  // Each call in flight listens on the transport's close signal (both ends); hundreds at once
  // are normal, not a leak, and must not print Node's MaxListenersExceededWarning.
  const warnings: string[] = []
  const onWarning = (w: Error): void => {
    if (w.name === 'MaxListenersExceededWarning') warnings.push(w.message)
  }
  process.on('warning', onWarning)
  t.after(() => process.off('warning', onWarning))
  const calls = Array.from({ length: 300 }, (_, i) => {
    const from = i % 2 === 0 ? a : c
    return from.net.call(b.key.id, ADD, { a: i, b: 1 }).then((r) => assert.equal(r.sum, i + 1, `call ${i}`))
  })
  await Promise.all(calls)
  await new Promise((r) => setImmediate(r))
  assert.deepEqual(warnings, [])
})

test('a remote handler error comes back as a RemoteError with its message', async (t) => {
  const [a, b] = await threeNodes(t)
  const err = await a.net.call(b.key.id, FAIL, { why: 'quota' }).then(
    () => undefined,
    (e: unknown) => e,
  )
  assert.ok(err instanceof RemoteError, 'RemoteError')
  assert.ok(isGarageError(err), 'a GarageError')
  assert.equal(err.code, 'GARAGE_ERR_REMOTE')
  assert.equal(err.message, 'refused: quota')
  assert.equal(err.remoteCode, 'E_TEST')
  assert.equal(err.nodeId, b.key.id)
  await assert.rejects(a.net.call(a.key.id, FAIL, { why: 'local' }), RemoteError, 'a local call fails the same way')
  const missing = defineEndpoint<null, null>('test/missing')
  await assert.rejects(
    a.net.call(b.key.id, missing, null),
    (e: unknown) => e instanceof RemoteError && e.remoteName === 'NoHandler',
  )
})

test('streams of several MiB travel both ways intact', async (t) => {
  const [a, b] = await threeNodes(t)
  const size = 5 * 1024 * 1024 + 123
  const expected = await digest(pattern(size))
  const up = await a.net.callStreaming(b.key.id, HASH, { label: 'x' }, { stream: pattern(size, 300_000), priority: 'background' })
  assert.deepEqual(up.res, { label: 'x', ...expected }, 'the handler read the whole request stream')

  const down = await a.net.callStreaming(b.key.id, PRODUCE, { size }, { priority: 'background' })
  assert.equal(down.res.size, size)
  assert.ok(down.stream !== undefined, 'a response stream')
  assert.deepEqual(await digest(down.stream), expected, 'the response stream is intact')

  const echo = await a.net.callStreaming(b.key.id, ECHO_STREAM, null, { stream: pattern(3 * 1024 * 1024) })
  assert.ok(echo.stream !== undefined, 'an echoed stream')
  assert.deepEqual(await digest(echo.stream), await digest(pattern(3 * 1024 * 1024)), 'echo')

  const buf = Buffer.from('a small buffer body')
  const local = await a.net.callStreaming(a.key.id, HASH, { label: 'l' }, { stream: buf })
  assert.equal(local.res.sha256, createHash('sha256').update(buf).digest('hex'), 'local streaming call')
})

test('concurrent streams do not mix', async (t) => {
  const [a, b, c] = await threeNodes(t)
  const sizes = [1_000_000, 2_000_001, 65_536, 0, 3_000_000]
  await Promise.all(
    sizes.map(async (size, i) => {
      const from = i % 2 === 0 ? a : c
      const r = await from.net.callStreaming(b.key.id, HASH, { label: String(i) }, { stream: pattern(size, 70_000) })
      assert.deepEqual(r.res, { label: String(i), ...(await digest(pattern(size))) }, `stream ${i}`)
    }),
  )
})

test('ping measures the round trip and peers() reports it', async (t) => {
  const [a, b] = await threeNodes(t)
  for (let i = 0; i < 3; i++) await a.net.ping(b.key.id)
  const info = a.net.peers().find((p) => p.id === b.key.id)
  assert.ok(info !== undefined, 'b is a known peer')
  assert.equal(info.connected, true)
  assert.deepEqual(info.addr, b.addr)
  assert.ok(info.avgPingMs !== undefined && info.avgPingMs > 0 && info.avgPingMs < 1000, `avg ping ${info.avgPingMs}`)
  assert.ok(info.lastSeen !== undefined && Date.now() - info.lastSeen < 5000, 'last seen recently')
  assert.equal(info.failedPings, 0)
  assert.equal(info.handshakes, 1)
})

test('a ping answer carries the cluster time: the pinging node follows a peer ahead of it', async (t) => {
  const [a, b] = await threeNodes(t)
  // b's clock runs ahead: its cluster clock has seen a time 2 minutes ahead of the machine's.
  b.net.clock.observe(a.key.id, Date.now() + 120_000)
  assert.ok(a.net.clock.aheadMs() < 1_000, 'a follows its own clock before pinging b')
  await a.net.ping(b.key.id)
  const ahead = a.net.clock.aheadMs()
  assert.ok(ahead > 119_000 && ahead <= 120_000 + 1_000, `a runs ${ahead} ms ahead after pinging b`)
})

test('a node that called us becomes a peer we can call back on its advertised address', async (t) => {
  const secret = newSecret()
  const b = await startNode(t, secret)
  const a = await startNode(t, secret, { publicAddr: { host: '127.0.0.1', port: 1 } })
  await a.net.connect(b.key.id, b.addr)
  const seen = b.net.peers().find((p) => p.id === a.key.id)
  assert.ok(seen !== undefined, 'the caller is listed')
  assert.deepEqual(seen.addr, { host: '127.0.0.1', port: 1 }, 'with the address it advertised')
  assert.equal(seen.connected, false, 'b has no session of its own to a yet')
})

test('calling an unknown node fails with a NetError', async (t) => {
  const { net } = await startNode(t, newSecret())
  await assert.rejects(
    net.call('ab'.repeat(32), ADD, { a: 1, b: 1 }),
    (e: unknown) => e instanceof NetError && e.reason === 'not-connected',
  )
})

test('parsePeerAddr reads <id>@<host>:<port>', () => {
  const id = 'AB'.repeat(32)
  assert.deepEqual(parsePeerAddr(`${id}@10.0.0.1:3901`), { nodeId: id.toLowerCase(), addr: { host: '10.0.0.1', port: 3901 } })
  assert.deepEqual(parsePeerAddr(`${id}@[::1]:3901`).addr, { host: '::1', port: 3901 })
  assert.throws(() => parsePeerAddr('nope@1.2.3.4:1'), NetError)
  assert.throws(() => parsePeerAddr(`${id}@host`), NetError)
})

test('calls and answers larger than one frame (a 10,000-part version row) travel intact', async (t) => {
  const [a, b] = await threeNodes(t)
  const big = Array.from({ length: 20_000 }, (_, i) => i * 7919)
  const r = await a.net.call(b.key.id, SUM_ALL, { xs: big })
  assert.equal(
    r.sum,
    big.reduce((s, x) => s + x, 0),
  )
  assert.equal(r.echo.length, big.length, 'the answer is larger than a frame too')
  assert.deepEqual(r.echo, big)
})
