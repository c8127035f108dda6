import assert from 'node:assert/strict'
import { test } from 'node:test'
import { clientHello, macEqual, unknownSessionProof } from '../../lib/net/crypto.ts'
import { HandshakeError } from '../../lib/net/errors.ts'
import { clientHandshake, type HandshakeIdentity, HandshakeServer, type HttpReply } from '../../lib/net/handshake.ts'
import { RPC_ROUTE } from '../../lib/net/message.ts'
import { Peers } from '../../lib/net/peering.ts'
import { parseSecret } from '../../lib/net/util.ts'
import { memoryNodeKey, newSecret, recordingLogger } from './net-fixtures.ts'

/** A server and a way for clients to reach it in memory (no sockets: the HTTP part is server.ts's). */
function setup(maxSessions = 16) {
  const secret = parseSecret(newSecret())
  const serverMe: HandshakeIdentity = { secret, key: memoryNodeKey(), publicAddr: undefined }
  const peers = new Peers()
  const log = recordingLogger()
  const server = new HandshakeServer(serverMe, peers, log, maxSessions)
  const post =
    (remote: string) =>
    async (route: string, body: Buffer): Promise<{ status: number; body: Buffer }> => {
      const r: HttpReply = route === RPC_ROUTE.HELLO ? server.hello(body, remote) : server.finish(body, remote)
      return { status: r.status, body: Buffer.from(r.body) }
    }
  const client = (publicAddr?: string): HandshakeIdentity => ({ secret, key: memoryNodeKey(), publicAddr })
  return { server, serverMe, peers, log, post, client, secret }
}

test('a handshake gives both sides the same session, and the client becomes a known peer', async () => {
  const { server, serverMe, peers, post, client } = setup()
  const me = client('10.0.0.7:3901')
  const keys = await clientHandshake(me, serverMe.key.id, post('10.0.0.7'))
  const found = server.session(keys.id.toString('hex'), 0)
  assert.ok('session' in found, 'the server knows the session')
  assert.equal(found.session.clientId, me.key.id, 'and who opened it')
  assert.ok(macEqual(found.session.keys.c2s, keys.c2s) && macEqual(found.session.keys.s2c, keys.s2c), 'same keys')
  assert.deepEqual(peers.get(me.key.id)?.addr, { host: '10.0.0.7', port: 3901 }, 'reachable at its advertised address')
})

test('an unknown session is refused with a proof; a session whose handshake is pending gets none', async () => {
  const { server, serverMe, secret, client } = setup()
  const sid = Buffer.alloc(16, 7)
  const r = server.session(sid.toString('hex'), 5)
  assert.ok('refusal' in r)
  assert.equal(r.refusal.status, 401)
  assert.ok(macEqual(Buffer.from(r.refusal.body), unknownSessionProof(secret, sid, 5)), 'the proof verifies')

  const me = client()
  const hello = server.hello(clientHello(secret, me.key, Buffer.from(serverMe.key.id, 'hex'), undefined).hello, 'x')
  assert.equal(hello.status, 200)
  const pendingId = Buffer.from(hello.body).subarray(32, 48).toString('hex')
  const p = server.session(pendingId, 0)
  assert.ok('refusal' in p)
  assert.equal(p.refusal.status, 400, 'no proof for a session about to exist')
})

test('the least recently used session is dropped first', async () => {
  const { server, serverMe, post, client } = setup(2)
  const [a, b] = [
    await clientHandshake(client(), serverMe.key.id, post('1')),
    await clientHandshake(client(), serverMe.key.id, post('2')),
  ]
  assert.ok('session' in server.session(a.id.toString('hex'), 0), 'touch a: b is now the oldest')
  const c = await clientHandshake(client(), serverMe.key.id, post('3'))
  assert.ok('refusal' in server.session(b.id.toString('hex'), 0), 'b was evicted')
  assert.ok('session' in server.session(a.id.toString('hex'), 1))
  assert.ok('session' in server.session(c.id.toString('hex'), 0))
  server.clear()
  assert.ok('refusal' in server.session(a.id.toString('hex'), 2), 'clear() forgets every session')
})

test('a client without the secret is refused and logged once per address; a wrong server id is refused', async () => {
  const { serverMe, post, log, client } = setup()
  const outsider: HandshakeIdentity = { ...client(), secret: parseSecret(newSecret()) }
  for (let i = 0; i < 3; i++) await assert.rejects(clientHandshake(outsider, serverMe.key.id, post('192.0.2.1')), HandshakeError)
  await assert.rejects(clientHandshake(outsider, serverMe.key.id, post('192.0.2.2')), HandshakeError)
  assert.equal(log.warnings.length, 2, `one warning per address: ${log.warnings.join(' | ')}`)
  await assert.rejects(clientHandshake(client(), memoryNodeKey().id, post('1')), /HTTP 421/)
})

test('a finish for an unknown handshake is refused', () => {
  const { server } = setup()
  assert.equal(server.finish(Buffer.alloc(32 + 16 + 64), 'x').status, 403)
  assert.equal(server.finish(Buffer.alloc(3), 'x').status, 403)
})
