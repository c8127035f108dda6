import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import { defineEndpoint, withStream } from '../../lib/net/endpoint.ts'
import { NetError } from '../../lib/net/errors.ts'
import { createNetApp } from '../../lib/net/netapp.ts'
import { TimeoutError } from '../../lib/util/errors.ts'
import { startTcpProxy } from '../helpers/tcp-proxy.ts'
import { memoryNodeKey, newSecret, pattern, startNode } from './net-fixtures.ts'

const SLOW_SINK = defineEndpoint<null, { size: number }>('test/slow-sink')
const PRODUCE = defineEndpoint<{ size: number }, null>('test/produce')
const WAIT = defineEndpoint<null, null>('test/wait')
const ADD = defineEndpoint<{ a: number; b: number }, number>('test/add')

/** Resolves when `signal` aborts, or fails the test after `ms`. */
function abortedWithin(signal: AbortSignal, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(() => reject(new Error('the handler signal was not aborted')), ms)
    signal.addEventListener('abort', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

async function pair(t: Parameters<typeof startNode>[0]) {
  const secret = newSecret()
  const b = await startNode(t, secret)
  const a = await startNode(t, secret)
  await a.net.connect(b.key.id, b.addr)
  return { a, b, secret }
}

test('a ping completes quickly while a large background transfer is in flight', async (t) => {
  const { a, b } = await pair(t)
  b.net.handle(SLOW_SINK, async (_req, _from, ctx) => {
    let size = 0
    for await (const chunk of ctx.stream ?? []) {
      size += (chunk as Buffer).length
      await sleep(4) // a slow disk: 384 frames × 4 ms keep the sender's connection full for 1.5 s or more
    }
    return { size }
  })
  const total = 24 * 1024 * 1024
  let finished = false
  const bulk = a.net
    .callStreaming(b.key.id, SLOW_SINK, null, { stream: pattern(total, 1024 * 1024), priority: 'background' })
    .then((r) => {
      finished = true
      return r.res.size
    })
  await sleep(150)
  const rtts: number[] = []
  for (let i = 0; i < 5; i++) rtts.push(await a.net.ping(b.key.id))
  assert.equal(finished, false, 'the bulk transfer was still running during the pings')
  // A ping queued behind the bulk transfer would take over a second; the bound leaves room for a loaded CI box.
  assert.ok(Math.max(...rtts) < 500, `pings stayed fast: ${rtts.map((r) => r.toFixed(1)).join(', ')} ms`)
  assert.equal(await bulk, total, 'the bulk transfer completes')
})

test('a call times out with a TimeoutError and the remote handler is aborted', async (t) => {
  const { a, b } = await pair(t)
  let handlerSignal: AbortSignal | undefined
  b.net.handle(WAIT, async (_req, _from, ctx) => {
    handlerSignal = ctx.signal
    await sleep(20_000, undefined, { signal: ctx.signal }).catch(() => undefined)
    return null
  })
  const t0 = Date.now()
  await assert.rejects(a.net.call(b.key.id, WAIT, null, { timeoutMs: 200 }), TimeoutError)
  assert.ok(Date.now() - t0 < 2000, 'it failed at the deadline')
  assert.ok(handlerSignal !== undefined, 'the handler ran')
  await abortedWithin(handlerSignal, 2000)
})

test('a call is cancelled by its AbortSignal, and so is the remote handler', async (t) => {
  const { a, b } = await pair(t)
  let handlerSignal: AbortSignal | undefined
  b.net.handle(WAIT, async (_req, _from, ctx) => {
    handlerSignal = ctx.signal
    await sleep(20_000, undefined, { signal: ctx.signal }).catch(() => undefined)
    return null
  })
  const ac = new AbortController()
  setTimeout(() => ac.abort(), 100)
  await assert.rejects(a.net.call(b.key.id, WAIT, null, { signal: ac.signal }), { name: 'AbortError' })
  assert.ok(handlerSignal !== undefined, 'the handler ran')
  await abortedWithin(handlerSignal, 2000)
})

test('cancelling a response stream stops the remote producer', async (t) => {
  const { a, b } = await pair(t)
  let producerStopped!: () => void
  const stopped = new Promise<void>((resolve) => {
    producerStopped = resolve
  })
  b.net.handle(PRODUCE, (req) => {
    async function* produce() {
      try {
        yield* pattern(req.size)
      } finally {
        producerStopped()
      }
    }
    return withStream(null, produce())
  })
  const ac = new AbortController()
  const r = await a.net.callStreaming(
    b.key.id,
    PRODUCE,
    { size: 1024 * 1024 * 1024 },
    { signal: ac.signal, priority: 'background' },
  )
  assert.ok(r.stream !== undefined, 'a stream')
  let got = 0
  await assert.rejects(
    (async () => {
      for await (const c of r.stream as AsyncIterable<Buffer>) {
        got += c.length
        if (got > 1024 * 1024) ac.abort()
      }
    })(),
    { name: 'AbortError' },
  )
  const guard = new AbortController()
  await Promise.race([
    stopped,
    sleep(3000, undefined, { signal: guard.signal }).then(() => assert.fail('the producer kept running')),
  ])
  guard.abort()
})

test('after the server restarts, the client handshakes again transparently', async (t) => {
  const { a, b, secret } = await pair(t)
  b.net.handle(ADD, (req) => req.a + req.b)
  assert.equal(await a.net.call(b.key.id, ADD, { a: 1, b: 2 }), 3)
  await b.net.close()

  const b2 = createNetApp({ nodeKey: b.key, rpcSecret: secret, bindAddr: b.addr })
  t.after(() => b2.close())
  b2.handle(ADD, (req) => req.a * req.b)
  await b2.listen()
  assert.equal(await a.net.call(b.key.id, ADD, { a: 3, b: 4 }), 12, 'the call reached the restarted node')
  assert.equal(a.net.peers().find((p) => p.id === b.key.id)?.handshakes, 2, 'one new handshake')
  assert.equal(await a.net.call(b.key.id, ADD, { a: 5, b: 5 }), 25, 'and the new session is reused')
  assert.equal(a.net.peers().find((p) => p.id === b.key.id)?.handshakes, 2)
})

test('an unreachable peer fails with a NetError the quorum helper can count', async (t) => {
  const { a, b } = await pair(t)
  b.net.handle(ADD, (req) => req.a + req.b)
  await b.net.close()
  await assert.rejects(
    a.net.call(b.key.id, ADD, { a: 1, b: 1 }),
    (e: unknown) => e instanceof NetError && e.reason === 'connection',
  )
  await assert.rejects(a.net.ping(b.key.id), NetError)
  assert.equal(a.net.peers()[0]?.failedPings, 1)
})

test('a partitioned peer times out; healing the partition restores calls', async (t) => {
  const secret = newSecret()
  const b = await startNode(t, secret)
  b.net.handle(ADD, (req) => req.a + req.b)
  const proxy = await startTcpProxy({ target: b.addr })
  t.after(() => proxy.close())
  const a = await startNode(t, secret)
  await a.net.connect(b.key.id, proxy.addr)
  proxy.partition('blackhole')
  await assert.rejects(a.net.call(b.key.id, ADD, { a: 1, b: 1 }, { timeoutMs: 300 }), TimeoutError)
  proxy.heal()
  assert.equal(await a.net.call(b.key.id, ADD, { a: 1, b: 1 }, { timeoutMs: 2000 }), 2)
  proxy.partition('refuse')
  await assert.rejects(a.net.call(b.key.id, ADD, { a: 1, b: 1 }, { timeoutMs: 2000 }), NetError)
  proxy.heal()
  proxy.setLatency(100)
  const t0 = Date.now()
  assert.equal(await a.net.call(b.key.id, ADD, { a: 2, b: 2 }), 4)
  assert.ok(Date.now() - t0 >= 190, 'latency applies both ways')
})

test('close() stops the server, aborts running handlers and refuses new calls', async (t) => {
  const { a, b } = await pair(t)
  let handlerSignal: AbortSignal | undefined
  b.net.handle(WAIT, async (_req, _from, ctx) => {
    handlerSignal = ctx.signal
    await sleep(20_000, undefined, { signal: ctx.signal }).catch(() => undefined)
    return null
  })
  const pending = a.net.call(b.key.id, WAIT, null).then(
    () => undefined,
    (e: unknown) => e,
  )
  while (handlerSignal === undefined) await sleep(5)
  await b.net.close()
  await abortedWithin(handlerSignal, 1000)
  assert.ok((await pending) instanceof NetError, 'the caller sees a NetError')
  await a.net.close()
  await assert.rejects(a.net.call(b.key.id, WAIT, null), (e: unknown) => e instanceof NetError && e.code === 'GARAGE_ERR_CLOSED')
})

test('aborting the signal given at construction closes the transport', async (t) => {
  const ac = new AbortController()
  const { net } = await startNode(t, newSecret(), { signal: ac.signal })
  ac.abort()
  await assert.rejects(net.call(net.id, ADD, { a: 1, b: 1 }), (e: unknown) => e instanceof NetError && e.reason === 'closed')
})

test('close() while listen() is binding leaves no server listening', async () => {
  const net = createNetApp({ nodeKey: memoryNodeKey(), rpcSecret: newSecret(), bindAddr: { host: '127.0.0.1', port: 0 } })
  const listening = net.listen().then(
    () => undefined,
    (e: unknown) => e,
  )
  await net.close()
  const err = await listening
  assert.ok(err instanceof NetError && err.reason === 'closed', 'listen() rejects as closed')
  assert.equal(net.address(), undefined, 'the port is released')
})
