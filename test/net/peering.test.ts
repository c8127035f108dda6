import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import type { SessionKeys } from '../../lib/net/crypto.ts'
import { NetError } from '../../lib/net/errors.ts'
import { Peers } from '../../lib/net/peering.ts'

const ID = 'ab'.repeat(32)
const keys = (): SessionKeys => ({ id: randomBytes(16), c2s: randomBytes(32), s2c: randomBytes(32), confirm: randomBytes(32) })

test('concurrent callers share one handshake, and the session is reused after it', async () => {
  const peer = new Peers().getOrCreate(ID)
  let runs = 0
  const handshake = async (): Promise<SessionKeys> => {
    runs++
    await new Promise((resolve) => setTimeout(resolve, 10))
    return keys()
  }
  const [a, b] = await Promise.all([peer.establish(handshake), peer.establish(handshake)])
  assert.equal(runs, 1, 'one handshake for two callers')
  assert.equal(a, b)
  assert.equal(await peer.establish(handshake), a, 'the established session is reused')
  assert.equal(runs, 1)
  assert.equal(peer.info().handshakes, 1)
  assert.equal(peer.info().connected, true)
})

test('a failed handshake is not cached: the next caller tries again', async () => {
  const peer = new Peers().getOrCreate(ID)
  await assert.rejects(
    peer.establish(() => Promise.reject(new Error('refused'))),
    /refused/,
  )
  const s = await peer.establish(async () => keys())
  assert.equal(peer.session, s)
  assert.equal(peer.info().handshakes, 1)
})

test('forget() drops only the current session; a new address drops it too', async () => {
  const peer = new Peers().getOrCreate(ID)
  peer.setAddr({ host: '127.0.0.1', port: 3901 })
  const first = await peer.establish(async () => keys())
  peer.forget({ keys: keys(), nextSeq: 0 })
  assert.equal(peer.session, first, 'a stale session does not evict the current one')
  peer.setAddr({ host: '127.0.0.1', port: 3901 })
  assert.equal(peer.session, first, 'the same address keeps the session')
  peer.setAddr({ host: '127.0.0.1', port: 3902 })
  assert.equal(peer.session, undefined, 'another address drops it')
  assert.equal(peer.origin, 'http://127.0.0.1:3902')
  const second = await peer.establish(async () => keys())
  peer.forget(second)
  assert.equal(peer.session, undefined)
})

test('an advertised address is adopted only when none is known', () => {
  const peers = new Peers()
  const a = peers.getOrCreate(ID)
  a.adoptAdvertised('[::1]:3901')
  assert.deepEqual(a.addr, { host: '::1', port: 3901 })
  assert.equal(a.origin, 'http://[::1]:3901')
  a.adoptAdvertised('10.0.0.1:3901')
  assert.deepEqual(a.addr, { host: '::1', port: 3901 }, 'the known address wins')
  const b = peers.getOrCreate('cd'.repeat(32))
  assert.throws(() => b.adoptAdvertised('not an address'), NetError)
  assert.equal(b.addr, undefined)
})

test('ping statistics average the last 10 samples; a success resets the failure count', () => {
  const peer = new Peers().getOrCreate(ID)
  for (let i = 1; i <= 12; i++) peer.pingSucceeded(i)
  assert.equal(peer.info().avgPingMs, (3 + 12) / 2, 'samples 3..12')
  peer.pingFailed()
  peer.pingFailed()
  assert.equal(peer.info().failedPings, 2)
  peer.pingSucceeded(1)
  assert.equal(peer.info().failedPings, 0)
})

test('Peers refuses ids that are not 64 lowercase hex characters and lists the others', () => {
  const peers = new Peers()
  assert.throws(
    () => peers.getOrCreate('AB'.repeat(32)),
    (e: unknown) => e instanceof NetError && e.reason === 'not-connected',
  )
  assert.throws(() => peers.getOrCreate('ab'), NetError)
  peers.getOrCreate(ID)
  assert.equal(peers.get(ID)?.id, ID)
  assert.deepEqual(
    peers.info().map((p) => p.id),
    [ID],
  )
})
