import assert from 'node:assert/strict'
import { connect as tcpConnect } from 'node:net'
import { test } from 'node:test'
import { clientFinish, clientHello, parseClientHello, serverHello } from '../../lib/net/crypto.ts'
import { defineEndpoint } from '../../lib/net/endpoint.ts'
import { HandshakeError, NetError } from '../../lib/net/errors.ts'
import { startTcpProxy, type Tamper } from '../helpers/tcp-proxy.ts'
import { memoryNodeKey, newSecret, recordingLogger, startNode } from './net-fixtures.ts'

const ECHO = defineEndpoint<{ text: string }, { text: string }>('test/secret-echo-endpoint')

/** B serves ECHO (counting runs) behind a proxy; A is connected to B through the proxy. */
async function pairThroughProxy(t: Parameters<typeof startNode>[0]) {
  const secret = newSecret()
  const b = await startNode(t, secret)
  const runs = { count: 0 }
  b.net.handle(ECHO, (req) => {
    runs.count++
    return req
  })
  const proxy = await startTcpProxy({ target: b.addr })
  t.after(() => proxy.close())
  const a = await startNode(t, secret)
  await a.net.connect(b.key.id, proxy.addr)
  return { a, b, proxy, runs }
}

/** Bytes before a mux record's payload: u32 length, type, flags, u48 message number. */
const RECORD_HEADER = 12

/**
 * Flips one byte, `bodyOffset` bytes into the sealed message of the first call or answer on the
 * next mux connection (the upgrade's request or answer, then the first record).
 */
function flipInNextCall(direction: 'up' | 'down', bodyOffset: number): Tamper {
  let target: number | undefined
  let done = false
  const marker = direction === 'up' ? 'POST /rpc/mux' : 'HTTP/1.1 101'
  return (chunk, info) => {
    if (done || info.direction !== direction) return undefined
    if (target === undefined) {
      const start = chunk.indexOf(marker)
      if (start < 0) return undefined
      const headerEnd = chunk.indexOf('\r\n\r\n', start)
      assert.ok(headerEnd >= 0, 'headers arrive in one chunk')
      target = info.offset + headerEnd + 4 + RECORD_HEADER + bodyOffset
    }
    if (target < info.offset || target >= info.offset + chunk.length) return undefined
    const out = Buffer.from(chunk)
    out[target - info.offset] = (out[target - info.offset] as number) ^ 0x01
    done = true
    return out
  }
}

/** Sends `bytes` (a captured connection's) on a new connection to `addr`; resolves with what came back once `done` says so. */
function replay(addr: { host: string; port: number }, bytes: Buffer, done: (got: Buffer) => boolean): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const s = tcpConnect(addr.port, addr.host, () => s.write(bytes))
    let got = Buffer.alloc(0)
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d])
      if (done(got)) {
        s.destroy()
        resolve(got)
      }
    })
    s.on('error', reject)
  })
}

test('a node with another rpc_secret can neither handshake nor call, and is logged once', async (t) => {
  const log = recordingLogger()
  const b = await startNode(t, newSecret(), { logger: log })
  b.net.handle(ECHO, (req) => req)
  const c = await startNode(t, newSecret())
  for (let i = 0; i < 3; i++) {
    await assert.rejects(c.net.connect(b.key.id, b.addr), HandshakeError, `attempt ${i} is refused`)
  }
  await assert.rejects(c.net.call(b.key.id, ECHO, { text: 'hi' }), HandshakeError, 'a call needs a handshake first')
  assert.equal(log.warnings.length, 1, `one warning for one address, got ${JSON.stringify(log.warnings)}`)
  assert.match(log.warnings[0] as string, /rpc_secret/)
  assert.equal(c.net.peers()[0]?.connected, false)
})

test('a client expecting another node id refuses the server', async (t) => {
  const secret = newSecret()
  const b = await startNode(t, secret)
  const a = await startNode(t, secret)
  const someoneElse = memoryNodeKey()
  await assert.rejects(a.net.connect(someoneElse.id, b.addr), HandshakeError)
  await a.net.connect(b.key.id, b.addr)
})

test('a server that answers for a node key it does not hold is refused by the client', () => {
  // A server that holds the secret but ignores the expected id: only its signature betrays it.
  const secret = Buffer.from(newSecret(), 'hex')
  const client = memoryNodeKey()
  const expected = memoryNodeKey()
  const impostor = memoryNodeKey()
  const hs = clientHello(secret, client, Buffer.from(expected.publicKey), undefined)
  const parsed = parseClientHello(secret, hs.hello)
  assert.ok(typeof parsed === 'object', 'the hello verifies')
  const { body } = serverHello(secret, impostor, parsed)
  assert.equal(clientFinish(secret, client, hs, body), 'server does not hold the expected node key')
})

test('a flipped byte in a sealed request is refused and the handler does not run', async (t) => {
  const { a, b, proxy, runs } = await pairThroughProxy(t)
  proxy.setTamper(flipInNextCall('up', 100))
  await assert.rejects(
    a.net.call(b.key.id, ECHO, { text: 'x'.repeat(1000) }),
    (e: unknown) => e instanceof NetError && e.reason === 'protocol',
  )
  assert.equal(runs.count, 0, 'the handler never ran')
  proxy.setTamper(undefined)
  assert.deepEqual(await a.net.call(b.key.id, ECHO, { text: 'ok' }), { text: 'ok' }, 'the session still works')
  assert.equal(runs.count, 1)
})

test('a flipped byte in a sealed response is detected by the caller', async (t) => {
  const { a, b, proxy } = await pairThroughProxy(t)
  proxy.setTamper(flipInNextCall('down', 60))
  await assert.rejects(
    a.net.call(b.key.id, ECHO, { text: 'y'.repeat(1000) }),
    (e: unknown) => e instanceof NetError && e.reason === 'protocol',
  )
})

test('a captured request replayed on a new connection is refused', async (t) => {
  const { a, b, proxy, runs } = await pairThroughProxy(t)
  proxy.startCapture()
  await a.net.call(b.key.id, ECHO, { text: 'pay 100' }, { priority: 'background' })
  const captured = proxy.stopCapture().filter((c) => c.up.includes('POST /rpc/mux'))
  assert.equal(captured.length, 1, 'one connection carried the call')
  assert.equal(runs.count, 1)
  // The connection's bytes from the client: the upgrade naming the session, then the call.
  const request = (captured[0] as { up: Buffer }).up
  const answer = await replay(b.addr, request, (got) => {
    const end = got.indexOf('\r\n\r\n')
    return end >= 0 && got.length >= end + 4 + RECORD_HEADER + 2
  })
  assert.match(answer.toString('latin1'), /^HTTP\/1\.1 101 /, 'the session is known, so the connection is taken')
  const record = answer.subarray(answer.indexOf('\r\n\r\n') + 4)
  assert.equal(record[4], 4, 'the server answers with a REFUSE record')
  assert.equal(record.readUInt16BE(RECORD_HEADER), 409, 'the replay is refused')
  assert.equal(runs.count, 1, 'the handler ran once')
})

test('a captured HTTP call (a streamed one) replayed on a new connection is refused', async (t) => {
  const { a, b, proxy, runs } = await pairThroughProxy(t)
  proxy.startCapture()
  const { res, stream } = await a.net.callStreaming(b.key.id, ECHO, { text: 'pay 100' }, { priority: 'background' })
  stream?.destroy()
  assert.deepEqual(res, { text: 'pay 100' })
  const captured = proxy.stopCapture().filter((c) => c.up.includes('POST /rpc/call'))
  assert.equal(captured.length, 1, 'one connection carried the call')
  assert.equal(runs.count, 1)
  const request = (captured[0] as { up: Buffer }).up
  const answer = (await replay(b.addr, request, (got) => got.includes('\r\n\r\n'))).toString('latin1')
  assert.match(answer, /^HTTP\/1\.1 409/, 'the replay is refused')
  assert.equal(runs.count, 1, 'the handler ran once')
})

test('no plaintext crosses the wire: neither the message nor the endpoint name', async (t) => {
  const secret = newSecret()
  const b = await startNode(t, secret)
  b.net.handle(ECHO, (req) => req)
  const proxy = await startTcpProxy({ target: b.addr })
  t.after(() => proxy.close())
  const a = await startNode(t, secret)
  proxy.startCapture()
  await a.net.connect(b.key.id, proxy.addr)
  const text = 'TOP-SECRET-PLAINTEXT-the-quick-brown-fox-0123456789'
  for (const priority of ['high', 'normal', 'background'] as const) {
    assert.deepEqual(await a.net.call(b.key.id, ECHO, { text }, { priority }), { text })
    // A call reading a response stream goes as an HTTP exchange: sealed the same way.
    const { res, stream } = await a.net.callStreaming(b.key.id, ECHO, { text }, { priority })
    stream?.destroy()
    assert.deepEqual(res, { text })
  }
  const wire = Buffer.concat(proxy.stopCapture().flatMap((c) => [c.up, c.down]))
  assert.ok(wire.includes('POST /rpc/mux'), 'the capture saw the multiplexed calls')
  assert.ok(wire.includes('POST /rpc/call'), 'and the HTTP ones')
  assert.ok(!wire.includes(text), 'the message never appears in clear')
  assert.ok(!wire.includes('TOP-SECRET'), 'not even a prefix')
  assert.ok(!wire.includes(ECHO.path), 'the endpoint name never appears in clear')
})
