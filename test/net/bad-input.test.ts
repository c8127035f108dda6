/**
 * The RPC port fed bytes that are not our protocol (issue 10): garbage, malformed HTTP, huge
 * bodies and frame lengths. Each is refused without a handler running; the node keeps serving
 * its peers, and the refusal is logged once per address, not once per attempt.
 */
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { test } from 'node:test'
import { defineEndpoint } from '../../lib/net/endpoint.ts'
import { newSecret, recordingLogger, startNode } from './net-fixtures.ts'

const ECHO = defineEndpoint<{ text: string }, { text: string }>('test/echo')

/** Writes `bytes` on a fresh connection, half-closes, and returns whatever came back. */
function sendBytes(addr: { host: string; port: number }, bytes: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(addr.port, addr.host)
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', () => undefined) // a reset is an answer too: whatever arrived is kept
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')))
    socket.on('connect', () => socket.end(bytes))
  })
}

const head = (path: string, headers: Record<string, string>): string =>
  `POST ${path} HTTP/1.1\r\nhost: x\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`

test('garbage, malformed HTTP, huge bodies and frame lengths on the RPC port are refused, logged once, and the node keeps serving', async (t) => {
  const secret = newSecret()
  const log = recordingLogger()
  const server = await startNode(t, secret, { logger: log })
  let handled = 0
  server.net.handle(ECHO, (req) => {
    handled++
    return req
  })
  const cases: Array<[string, Buffer, RegExp]> = [
    ['random bytes', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) & 0xff)), /^(HTTP\/1\.1 400|)/],
    ['NUL bytes', Buffer.alloc(1024), /^(HTTP\/1\.1 400|)/],
    ['a TLS ClientHello', Buffer.from('16030100a5010000a10303', 'hex'), /^(HTTP\/1\.1 400|)/],
    ['a 1 MiB request line', Buffer.from(`GET /${'a'.repeat(1 << 20)} HTTP/1.1\r\n\r\n`), /^HTTP\/1\.1 (400|431)/],
    ['an unknown path', Buffer.from(head('/nope', { 'content-length': '0', connection: 'close' })), /^HTTP\/1\.1 404/],
    [
      'a 1 MiB handshake',
      Buffer.concat([Buffer.from(head('/rpc/hs1', { 'content-length': String(1 << 20) })), Buffer.alloc(1 << 20, 1)]),
      /^HTTP\/1\.1 400/,
    ],
    [
      'a handshake of garbage',
      Buffer.concat([Buffer.from(head('/rpc/hs1', { 'content-length': '100', connection: 'close' })), Buffer.alloc(100, 0xab)]),
      /^HTTP\/1\.1 (400|403)/,
    ],
    [
      'a finish for no handshake',
      Buffer.concat([Buffer.from(head('/rpc/hs2', { 'content-length': '64', connection: 'close' })), Buffer.alloc(64, 0xcd)]),
      /^HTTP\/1\.1 (400|403)/,
    ],
    [
      'a call with a 4 GiB frame length on an unknown session',
      Buffer.concat([
        Buffer.from(
          head('/rpc/call', {
            'x-garage-session': 'ab'.repeat(16),
            'x-garage-seq': '1',
            'content-length': '8',
            connection: 'close',
          }),
        ),
        Buffer.from('ffffffff00000000', 'hex'),
      ]),
      /^HTTP\/1\.1 (400|401)/,
    ],
    [
      'a huge Content-Length',
      Buffer.from(head('/rpc/call', { 'content-length': '99999999999999999999', connection: 'close' })),
      /^(HTTP\/1\.1 400|)/,
    ],
    [
      'chunked and Content-Length together',
      Buffer.from(head('/rpc/hs1', { 'content-length': '5', 'transfer-encoding': 'chunked' })),
      /^HTTP\/1\.1 400/,
    ],
  ]
  for (const [label, bytes, expected] of cases) {
    const answer = await sendBytes(server.addr, bytes)
    assert.match(answer.slice(0, 40), expected, `${label}: ${JSON.stringify(answer.slice(0, 80))}`)
    // The node still serves a real peer after each.
    const client = await startNode(t, secret)
    await client.net.connect(server.key.id, server.addr)
    assert.deepEqual(await client.net.call(server.key.id, ECHO, { text: label }), { text: label })
  }
  assert.equal(handled, cases.length, 'only the real calls reached the handler')
  const malformed = log.warnings.filter((w) => /malformed RPC traffic/.test(w))
  assert.equal(malformed.length, 1, `malformed traffic is logged once per address: ${JSON.stringify(log.warnings)}`)
})
