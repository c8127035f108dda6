import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { connect as tcpConnect, type Socket } from 'node:net'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { defineEndpoint } from '../../lib/net/endpoint.ts'
import { NetError } from '../../lib/net/errors.ts'
import { MuxClient } from '../../lib/net/mux.ts'
import { createNetApp } from '../../lib/net/netapp.ts'
import { startTcpProxy } from '../helpers/tcp-proxy.ts'
import { newSecret, recordingLogger, startNode } from './net-fixtures.ts'

const ECHO = defineEndpoint<{ text: string }, { text: string }>('test/mux-echo')
const SINK = defineEndpoint<null, { size: number }>('test/mux-sink')
const HEADER = 12

interface Record {
  type: number
  flags: number
  seq: number
  length: number
}

/** The records of a mux connection's bytes after the upgrade's headers. */
function records(bytes: Buffer): Record[] {
  const out: Record[] = []
  let o = bytes.indexOf('\r\n\r\n') + 4
  while (bytes.length - o >= HEADER) {
    const length = bytes.readUInt32BE(o)
    out.push({ length, type: bytes[o + 4] as number, flags: bytes[o + 5] as number, seq: bytes.readUIntBE(o + 6, 6) })
    o += HEADER + length
  }
  return out
}

function record(type: number, seq: number, payload: Buffer, length = payload.length): Buffer {
  const h = Buffer.alloc(HEADER)
  h.writeUInt32BE(length, 0)
  h[4] = type
  h.writeUIntBE(seq, 6, 6)
  return Buffer.concat([h, payload])
}

/** Opens a raw connection sending `upgrade` (a captured upgrade request); resolves once answered 101. */
function rawMux(port: number, upgrade: Buffer): Promise<{ socket: Socket; received: () => Buffer; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1', () => socket.write(upgrade))
    let got = Buffer.alloc(0)
    const closed = new Promise<void>((r) => socket.once('close', () => r()))
    socket.on('error', () => {})
    let answered = false
    socket.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d])
      if (answered || !got.includes('\r\n\r\n')) return
      answered = true
      if (/^HTTP\/1\.1 101 /.test(got.toString('latin1'))) resolve({ socket, received: () => got, closed })
      else reject(new Error(got.toString('latin1')))
    })
  })
}

async function setup(t: Parameters<typeof startNode>[0], aOptions: Parameters<typeof startNode>[2] = {}) {
  const secret = newSecret()
  const log = recordingLogger()
  const b = await startNode(t, secret, { logger: log })
  const runs = { count: 0 }
  b.net.handle(ECHO, (req) => {
    runs.count++
    return req
  })
  b.net.handle(SINK, async (_req, _from, ctx) => {
    let size = 0
    for await (const c of ctx.stream as AsyncIterable<Buffer>) size += c.length
    return { size }
  })
  const proxy = await startTcpProxy({ target: b.addr })
  t.after(() => proxy.close())
  const a = await startNode(t, secret, aOptions)
  await a.net.connect(b.key.id, proxy.addr)
  return { a, b, proxy, runs, log, secret }
}

/** Waits until `cond()` holds (checked every 5 ms), failing after `ms`. */
async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

/** A handler that never answers: it runs until its call is cancelled or the node closes. */
const HOLD = defineEndpoint<null, null>('test/mux-hold-until-cancelled')
function holdHandler(started: { count: number }) {
  return (_req: null, _from: string, ctx: { signal: AbortSignal }): Promise<null> => {
    started.count++
    return new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)))
  }
}

/** A call to `b`'s never-answering handler; resolves with its error (it must not be answered). */
function holdCall(a: Awaited<ReturnType<typeof setup>>['a'], b: Awaited<ReturnType<typeof setup>>['b']): Promise<Error> {
  return a.net.call(b.key.id, HOLD, null, { timeoutMs: 10_000 }).then(
    () => assert.fail('a held call was answered'),
    (err: unknown) => err as Error,
  )
}

/**
 * One call holding the only in-flight slot of `a`'s normal connection to `b` (its handler
 * running), and three echo calls queued unsent behind it. Resolves with the held call's outcome
 * (its error; it never answers) and the queued calls.
 */
async function holdAndQueue(
  a: Awaited<ReturnType<typeof setup>>['a'],
  b: Awaited<ReturnType<typeof setup>>['b'],
  runs: { count: number },
  held: { count: number },
) {
  const inFlight = holdCall(a, b)
  await until(() => held.count === 1, 'the held call to reach its handler')
  const queued = ['q1', 'q2', 'q3'].map((text) => a.net.call(b.key.id, ECHO, { text }, { timeoutMs: 10_000 }))
  await sleep(50)
  assert.equal(runs.count, 0, 'the echo calls wait unsent behind the in-flight bound')
  return { inFlight, queued }
}

/** The held call failed with a connection error (it was written), and the queued ones were answered. */
async function assertHeldFailedQueuedAnswered(inFlight: Promise<Error>, queued: Promise<{ text: string }>[]): Promise<Error> {
  const err = await inFlight
  assert.ok(err instanceof NetError && err.reason === 'connection', `a connection error: ${String(err)}`)
  assert.deepEqual(
    (await Promise.all(queued)).map((r) => r.text),
    ['q1', 'q2', 'q3'],
    'the queued calls were answered',
  )
  return err
}

test('calls share one connection per priority, and a long message is cut and interleaved with small calls', async (t) => {
  const { a, b, proxy } = await setup(t)
  proxy.startCapture()
  const big = randomBytes(1024 * 1024)
  const [sunk, ...echoed] = await Promise.all([
    a.net.call(b.key.id, SINK, null, { stream: big }),
    ...Array.from({ length: 20 }, (_, i) => a.net.call(b.key.id, ECHO, { text: `n${i}` })),
  ])
  assert.deepEqual(sunk, { size: big.length })
  assert.deepEqual(
    echoed.map((e) => e.text),
    Array.from({ length: 20 }, (_, i) => `n${i}`),
  )
  const conns = proxy.stopCapture().filter((c) => c.up.includes('POST /rpc/mux'))
  assert.equal(conns.length, 1, 'one connection carried all 21 calls')
  const up = records((conns[0] as { up: Buffer }).up)
  assert.equal(up.length > 21, true)
  const bigSeq = up.find((r) => r.flags === 1)?.seq
  assert.notEqual(bigSeq, undefined, 'the 1 MiB call was cut into records flagged MORE')
  const bigRecords = up.filter((r) => r.seq === bigSeq)
  assert.ok(bigRecords.length >= 16, `1 MiB in records of at most 64 KiB (${bigRecords.length})`)
  assert.ok(
    bigRecords.every((r) => r.length <= 64 * 1024),
    'no record over 64 KiB',
  )
  const lastBig = up.lastIndexOf(bigRecords.at(-1) as Record)
  const smallBefore = up.slice(0, lastBig).filter((r) => r.seq !== bigSeq && r.type === 1).length
  assert.ok(smallBefore > 0, 'small calls went out before the long message ended')
  assert.equal(up.filter((r) => r.type === 1 && r.flags === 0).length, 21, 'each call ends once')
})

test('malformed records close the mux connection, are logged, and the node keeps serving', async (t) => {
  const { a, b, proxy, runs, log } = await setup(t)
  proxy.startCapture()
  assert.deepEqual(await a.net.call(b.key.id, ECHO, { text: 'hi' }), { text: 'hi' })
  const conn = proxy.stopCapture().find((c) => c.up.includes('POST /rpc/mux'))
  assert.ok(conn !== undefined)
  const upgrade = conn.up.subarray(0, conn.up.indexOf('\r\n\r\n') + 4)

  // A call that does not authenticate: refused (400), the connection stays.
  const m1 = await rawMux(b.addr.port, upgrade)
  m1.socket.write(record(1, 1_000_000, randomBytes(200)))
  await sleep(100)
  const answers = records(m1.received())
  assert.equal(answers[0]?.type, 4, 'a REFUSE record')
  const refusal = m1.received().subarray(m1.received().indexOf('\r\n\r\n') + 4 + HEADER)
  assert.equal(refusal.readUInt16BE(0), 400)
  assert.equal(m1.socket.destroyed, false, 'the connection stays open')

  // A record longer than the limit, then an unknown record type: the connection is closed.
  m1.socket.write(record(1, 1_000_001, Buffer.alloc(0), 0xffff_ffff))
  await m1.closed
  const m2 = await rawMux(b.addr.port, upgrade)
  m2.socket.write(record(9, 1, Buffer.alloc(4)))
  await m2.closed
  assert.ok(
    log.warnings.some((w) => /closed an RPC connection/.test(w)),
    `logged: ${JSON.stringify(log.warnings)}`,
  )
  assert.equal(runs.count, 1, 'no handler ran for the garbage')
  assert.deepEqual(await a.net.call(b.key.id, ECHO, { text: 'still' }), { text: 'still' }, 'the node still serves')
})

test('an upgrade naming an unknown session gets the 401 proof; a wrong path or protocol is refused', async (t) => {
  const { b } = await setup(t)
  const ask = (head: string): Promise<string> =>
    new Promise((resolve, reject) => {
      // The server leaves closing a refused connection to the client (after reading the answer).
      const s = tcpConnect(b.addr.port, '127.0.0.1', () => s.write(head))
      let got = ''
      s.on('data', (d: Buffer) => {
        got += d.toString('latin1')
        const end = got.indexOf('\r\n\r\n')
        const length = Number(/content-length: (\d+)/i.exec(got)?.[1] ?? Number.NaN)
        if (end >= 0 && got.length >= end + 4 + length) {
          s.destroy()
          resolve(got)
        }
      })
      s.on('error', reject)
    })
  const upgrade = (path: string, proto: string, sid: string): string =>
    `POST ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: ${proto}\r\n` +
    `x-garage-session: ${sid}\r\nx-garage-seq: 7\r\nContent-Length: 0\r\n\r\n`
  const sid = randomBytes(16).toString('hex')
  assert.match(await ask(upgrade('/rpc/mux', 'garage-rpc-mux', sid)), /^HTTP\/1\.1 401 [\s\S]*\r\n\r\n[\s\S]{32}$/)
  assert.match(await ask(upgrade('/rpc/other', 'garage-rpc-mux', sid)), /^HTTP\/1\.1 404 /)
  assert.match(await ask(upgrade('/rpc/mux', 'websocket', sid)), /^HTTP\/1\.1 404 /)
  assert.match(await ask(upgrade('/rpc/mux', 'garage-rpc-mux', 'zz')), /^HTTP\/1\.1 400 /)
})

test('a connection that goes silent is dropped after a deadline, and the next call opens another', async (t) => {
  const { a, b, proxy } = await setup(t)
  assert.deepEqual(await a.net.call(b.key.id, ECHO, { text: 'before' }), { text: 'before' })
  proxy.partition('blackhole')
  await assert.rejects(a.net.call(b.key.id, ECHO, { text: 'lost' }, { timeoutMs: 200 }), { name: 'TimeoutError' })
  proxy.heal()
  // The silent connection was closed: this call goes over a new one (the old one would still
  // be eating bytes if the black hole had kept it).
  proxy.startCapture()
  assert.deepEqual(await a.net.call(b.key.id, ECHO, { text: 'after' }, { timeoutMs: 2000 }), { text: 'after' })
  const conns = proxy.stopCapture().filter((c) => c.up.includes('POST /rpc/mux'))
  assert.equal(conns.length, 1, 'a new connection was opened')
})

test('closing the server fails the calls in flight with a NetError and tells clients to stop using it', async (t) => {
  const { a, b } = await setup(t)
  const WAIT = defineEndpoint<null, null>('test/mux-wait')
  b.net.handle(
    WAIT,
    (_req, _from, ctx) => new Promise((_r, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))),
  )
  const failed = assert.rejects(
    a.net.call(b.key.id, WAIT, null, { timeoutMs: 5000 }),
    (e: unknown) => e instanceof NetError && e.reason === 'connection',
  )
  await sleep(50)
  const t0 = Date.now()
  await b.net.close()
  await failed
  assert.ok(Date.now() - t0 < 900, 'the client closed its side at once (GOAWAY), close() did not wait its full second')
})

test('a call given a signal already aborted fails at once instead of waiting for an answer', async (t) => {
  const { b } = await setup(t)
  const mux = new MuxClient({
    addr: b.addr,
    sessionHex: randomBytes(16).toString('hex'),
    upgradeSeq: 0,
    provesUnknown: () => false,
    peerName: 'node b',
    nodeId: b.key.id,
    onClose: () => {},
    maxInFlight: 8,
  })
  t.after(() => mux.close(new Error('test over')))
  const controller = new AbortController()
  controller.abort(new Error('cancelled between two awaits'))
  const t0 = Date.now()
  await assert.rejects(mux.call(1, Buffer.alloc(16), controller.signal), /cancelled between two awaits/)
  assert.ok(Date.now() - t0 < 1000)
})

test('at most `connections[priority]` calls wait for their answer on a mux connection; the rest are sent as answers come', async (t) => {
  const secret = newSecret()
  const b = await startNode(t, secret)
  const HOLD = defineEndpoint<{ i: number }, number>('test/mux-hold')
  let running = 0
  let most = 0
  const release: Array<() => void> = []
  b.net.handle(HOLD, async (req) => {
    running++
    most = Math.max(most, running)
    await new Promise<void>((r) => release.push(r))
    running--
    return req.i
  })
  const a = await startNode(t, secret, { connections: { normal: 3 } })
  await a.net.connect(b.key.id, b.addr)
  const calls = Array.from({ length: 10 }, (_, i) => a.net.call(b.key.id, HOLD, { i }))
  // A call cancelled while it waits unsent goes away without reaching the server.
  const cancel = new AbortController()
  const cancelled = a.net.call(b.key.id, HOLD, { i: 99 }, { signal: cancel.signal })
  cancel.abort(new Error('not needed'))
  await assert.rejects(cancelled, /not needed/)
  for (let served = 0; served < 10; ) {
    await sleep(20)
    const now = release.splice(0)
    served += now.length
    for (const r of now) r()
  }
  assert.deepEqual(
    await Promise.all(calls),
    Array.from({ length: 10 }, (_, i) => i),
  )
  assert.equal(most, 3, 'three handlers ran at once, never more')
})

test('a quick call waiting unsent behind the in-flight bound does not make a busy peer look silent', async (t) => {
  const secret = newSecret()
  const b = await startNode(t, secret)
  const SLOW = defineEndpoint<null, number>('test/mux-slow-body')
  const QUICK = defineEndpoint<null, number>('test/mux-quick')
  const release: Array<() => void> = []
  b.net.handle(SLOW, async () => {
    await new Promise<void>((r) => release.push(r))
    return 1
  })
  b.net.handle(QUICK, async () => 2)
  const a = await startNode(t, secret, { connections: { normal: 1 } })
  await a.net.connect(b.key.id, b.addr)
  // A call with a body (a block, say) holds the only slot; a quick call queues behind it.
  const slow = a.net.call(b.key.id, SLOW, null, { stream: Buffer.alloc(1024) })
  await sleep(20)
  const quick = a.net.call(b.key.id, QUICK, null)
  await sleep(300)
  assert.equal(a.net.peer(b.key.id)?.callsSilentMs, undefined, 'the queued call was not sent, so it waits on nobody')
  for (const r of release.splice(0)) r()
  assert.equal(await slow, 1)
  assert.equal(await quick, 2)
  assert.equal(a.net.peer(b.key.id)?.callsSilentMs, undefined)
})

test('a call queued behind the in-flight bound on a connection that goes silent is sent again on a new one', async (t) => {
  const { a, b, proxy } = await setup(t, { connections: { normal: 1 } })
  assert.deepEqual(await a.net.call(b.key.id, ECHO, { text: 'before' }), { text: 'before' })
  // The connections open now go silent (their bytes eaten, nothing closed); new ones work.
  const cut = proxy.connections
  proxy.setTamper((_chunk, { conn }) => (conn < cut ? null : undefined))
  const lost = a.net.call(b.key.id, ECHO, { text: 'lost' }, { timeoutMs: 300 })
  // The only slot is taken: this one waits unsent on the same connection.
  const queued = a.net.call(b.key.id, ECHO, { text: 'queued' }, { timeoutMs: 5000 })
  await assert.rejects(lost, { name: 'TimeoutError' })
  const t0 = Date.now()
  // The silent connection is retired when `lost` times out; `queued`, never sent, goes on a new
  // connection at once. Before, it waited there for its own 5 s deadline.
  assert.deepEqual(await queued, { text: 'queued' })
  assert.ok(Date.now() - t0 < 2000, `sent again at once (${Date.now() - t0} ms after the first call's deadline)`)
})

test('calls queued unsent when the server says GOAWAY go to a new connection (its restart); the call in flight fails', async (t) => {
  const { a, b, runs, secret } = await setup(t, { connections: { normal: 1 } })
  const held = { count: 0 }
  b.net.handle(HOLD, holdHandler(held))
  const { inFlight, queued } = await holdAndQueue(a, b, runs, held)
  // b restarts: its close() sends GOAWAY on the mux connection; the new node (same key, same port)
  // listens before the GOAWAY is written (its bind is done in this turn's next tick, the GOAWAY
  // leaves when the corked socket is flushed by setImmediate), so the re-sent calls find it.
  const closing = b.net.close()
  const b2 = createNetApp({ nodeKey: b.key, rpcSecret: secret, bindAddr: b.addr })
  t.after(() => b2.close())
  const runs2 = { count: 0 }
  b2.handle(ECHO, (req) => {
    runs2.count++
    return req
  })
  b2.handle(HOLD, holdHandler(held))
  await b2.listen()
  await closing

  const err = await assertHeldFailedQueuedAnswered(inFlight, queued)
  assert.match(err.message, /is closing/, 'the GOAWAY closed the connection (not its FIN)')
  assert.equal(runs.count, 0, 'none of them reached the closing node')
  assert.equal(runs2.count, 3, 'each ran once on the restarted node')
  assert.equal(held.count, 1, 'the call already written was not sent again')
})

test('calls queued unsent on a connection the link drops go to a new connection; the call written to it fails', async (t) => {
  const { a, b, proxy, runs } = await setup(t, { connections: { normal: 1 } })
  const held = { count: 0 }
  b.net.handle(HOLD, holdHandler(held))
  const { inFlight, queued } = await holdAndQueue(a, b, runs, held)
  const opened = proxy.connections
  proxy.dropConnections()

  await assertHeldFailedQueuedAnswered(inFlight, queued)
  assert.equal(runs.count, 3, 'each queued call ran once')
  assert.equal(held.count, 1, 'the call already written was not sent again')
  assert.equal(proxy.connections, opened + 1, 'one new connection carried them')
})

test('calls queued unsent when the server closes for good fail after one try on a new connection', async (t) => {
  const { a, b, proxy, runs } = await setup(t, { connections: { normal: 1 } })
  const held = { count: 0 }
  b.net.handle(HOLD, holdHandler(held))
  const { inFlight, queued } = await holdAndQueue(a, b, runs, held)
  const opened = proxy.connections
  const t0 = Date.now()
  await b.net.close()
  assert.ok((await inFlight) instanceof NetError)
  for (const r of await Promise.allSettled(queued)) {
    assert.equal(r.status, 'rejected')
    assert.ok(r.reason instanceof NetError && r.reason.reason === 'connection', `a connection error: ${String(r.reason)}`)
  }
  assert.ok(Date.now() - t0 < 2000, `failed at once (${Date.now() - t0} ms), not at their deadline`)
  // The proxy accepts the new connection and drops it (nothing listens behind it): a connection
  // that was never up returns no call to be sent again, so there is no fourth or fifth.
  assert.equal(proxy.connections, opened + 1, 'one try on a new connection')
  assert.equal(runs.count, 0)
})

test('a call that finds its connection closed before it is sent, again and again, fails after 3 re-sends', async (t) => {
  const { a, b, proxy } = await setup(t, { connections: { normal: 1 } })
  const held = { count: 0 }
  b.net.handle(HOLD, holdHandler(held))
  const hold = () => holdCall(a, b)
  const first = hold()
  await until(() => held.count === 1, 'the first call to hold the only slot')
  // Six more wait unsent. Each time the link drops, the one written on the connection fails and
  // the others go to a new connection, where the next one is written and held.
  const queued = Array.from({ length: 6 }, hold)
  const opened = proxy.connections
  for (let written = 1; written <= 4; written++) {
    await until(() => held.count === written, `call ${written} to be held`)
    await sleep(20)
    proxy.dropConnections()
  }
  const errors = await Promise.all([first, ...queued])
  for (const err of errors)
    assert.ok(err instanceof NetError && err.reason === 'connection', `a connection error: ${String(err)}`)
  // The first four were written (each ran once) and fail as the link dropped under them; the last
  // three were re-sent three times and are not sent a fourth.
  assert.equal(held.count, 4, 'every call ran at most once')
  for (const err of errors.slice(4)) assert.match(err.message, /closed before the call was sent, 4 times/)
  for (const err of errors.slice(0, 4)) assert.doesNotMatch(err.message, /times/)
  assert.equal(proxy.connections, opened + 3, 'three new connections')
})
