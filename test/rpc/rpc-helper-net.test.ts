/**
 * RpcHelper over real transports and sockets: a peer behind a black hole (a TCP proxy that
 * stops forwarding, sockets left open) costs a quorum read one per-call deadline, after which
 * the next node is asked (Garage's per-call timeout in try_call_many), and the transport's ping
 * state shows the peer unanswering before membership would call it down.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { defineEndpoint } from '../../lib/net/endpoint.ts'
import { RpcHelper } from '../../lib/rpc/rpc-helper.ts'
import { isGarageError, QuorumError } from '../../lib/util/errors.ts'
import { silentLogger } from '../../lib/util/logger.ts'
import { startTcpProxy } from '../helpers/tcp-proxy.ts'
import { newSecret, startNode } from '../net/net-fixtures.ts'

const WHO = defineEndpoint<null, string>('test/who')

/** A caller, a peer behind a proxy (to black-hole), and a peer reached directly. */
async function trio(t: import('node:test').TestContext) {
  const secret = newSecret()
  const far = await startNode(t, secret, { pingTimeoutMs: 1_500 })
  const near = await startNode(t, secret)
  far.net.handle(WHO, () => 'far')
  near.net.handle(WHO, () => 'near')
  const proxy = await startTcpProxy({ target: far.addr })
  t.after(() => proxy.close())
  const me = await startNode(t, secret, { pingTimeoutMs: 1_500 })
  await me.net.connect(far.key.id, proxy.addr)
  await me.net.connect(near.key.id, near.addr)
  return { me, far: far.key.id, near: near.key.id, proxy }
}

test('quorum 1, the first node behind a black hole: the next node answers after that call’s own deadline', async (t) => {
  const { me, far, near, proxy } = await trio(t)
  const helper = new RpcHelper({ log: silentLogger, timeoutMs: 1_500 })
  const call = (node: string, signal: AbortSignal): Promise<string> => me.net.call(node, WHO, null, { signal })
  // Healthy: the first node answers, the second is not asked.
  assert.deepEqual(
    (await helper.tryCallMany([far, near], 1, call, { timeoutMs: 30_000 })).map((a) => a.value),
    ['far'],
  )
  proxy.partition('blackhole')
  const called: string[] = []
  const res = await helper.tryCallMany([far, near], 1, (node, signal) => {
    called.push(node)
    return call(node, signal)
  })
  assert.deepEqual(
    res.map((a) => a.value),
    ['near'],
    'written through the next node (before the fix: QuorumError at the same deadline)',
  )
  assert.deepEqual(called, [far, near], 'the black-holed node first, then the next one')
  // Both behind the black hole: a QuorumError naming each call's timeout.
  await assert.rejects(helper.tryCallMany([far], 1, call), (err: unknown) => {
    assert.ok(err instanceof QuorumError && isGarageError(err) && err.code === 'GARAGE_ERR_QUORUM')
    const causes = (err.cause as AggregateError).errors as Error[]
    assert.equal(causes.length, 1)
    assert.match(causes[0]?.message ?? '', /timed out after 1500 ms/)
    return true
  })
  proxy.heal()
})

test('a ping in flight to a black-holed peer shows as pending, then as a failed ping', async (t) => {
  const { me, far, near, proxy } = await trio(t)
  await me.net.ping(far)
  const info = (id: string) => me.net.peers().find((p) => p.id === id)
  assert.equal(info(far)?.pingPendingMs, undefined, 'no ping in flight')
  assert.equal(info(far)?.failedPings, 0)
  proxy.partition('blackhole')
  const ping = me.net.ping(far).then(
    () => 'answered',
    () => 'failed',
  )
  await new Promise((r) => setTimeout(r, 100))
  const pending = info(far)?.pingPendingMs
  assert.ok(pending !== undefined && pending >= 50, `the ping is pending (${pending} ms)`)
  assert.equal(await ping, 'failed', 'the ping times out behind the black hole')
  assert.equal(info(far)?.pingPendingMs, undefined, 'no ping in flight any more')
  assert.equal(info(far)?.failedPings, 1)
  assert.equal(info(near)?.failedPings, 0, 'the other peer is unaffected')
  proxy.heal()
  await me.net.ping(far)
  assert.equal(info(far)?.failedPings, 0, 'a good ping clears it')
})

test('quick calls unanswered behind a black hole show in callsSilentMs, kept after their timeout, cleared by an answer', async (t) => {
  const { me, far, near, proxy } = await trio(t)
  const info = (id: string) => me.net.peer(id)
  await me.net.call(far, WHO, null)
  assert.equal(info(far)?.callsSilentMs, undefined, 'answered')
  // A call cancelled by its caller says nothing of the peer.
  proxy.partition('blackhole')
  const cancel = new AbortController()
  const cancelled = me.net.call(far, WHO, null, { signal: cancel.signal }).catch(() => 'cancelled')
  await new Promise((r) => setTimeout(r, 50))
  assert.ok((info(far)?.callsSilentMs ?? -1) >= 0, 'a call is waiting')
  cancel.abort()
  assert.equal(await cancelled, 'cancelled')
  assert.equal(info(far)?.callsSilentMs, undefined, 'nothing waits, nothing failed')
  // A call that times out leaves the silence, which keeps growing.
  const failed = await me.net.call(far, WHO, null, { timeoutMs: 300 }).then(
    () => 'answered',
    () => 'failed',
  )
  assert.equal(failed, 'failed')
  const after = info(far)?.callsSilentMs
  assert.ok(after !== undefined && after >= 250, `silent since the call was sent (${after} ms)`)
  // Long polls do not count.
  const poll = me.net.call(near, WHO, null, { waits: true })
  assert.equal(info(near)?.callsSilentMs, undefined, 'a long poll is not a silence')
  await poll
  proxy.heal()
  // The heal resets the black-holed connections: a call may first fail on a pooled one.
  let answer: string | undefined
  for (let i = 0; i < 3 && answer === undefined; i++) answer = await me.net.call(far, WHO, null).catch(() => undefined)
  assert.equal(answer, 'far')
  assert.equal(info(far)?.callsSilentMs, undefined, 'an answer clears it')
})
