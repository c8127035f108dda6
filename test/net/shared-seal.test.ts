/**
 * A body sealed once for several peers (lib/net/frame.ts, SharedBodySeal): each peer's message
 * carries the same DATA frames after its own HEAD, opens with its own session, and its frames
 * cannot be swapped for frames sealed under another key.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { FRAME_PAYLOAD_MAX } from '../../lib/net/crypto.ts'
import { defineEndpoint } from '../../lib/net/endpoint.ts'
import { type FrameContext, openWholeMessage, SharedBodySeal, sealWholeMessage } from '../../lib/net/frame.ts'
import { encodeMsgpack } from '../../lib/util/codec.ts'
import { newSecret, startNode } from './net-fixtures.ts'

const remoteError = (_n: string, m: string): Error => new Error(m)

test('one sealing, two sessions: each message opens with its own key and carries the body', () => {
  const body = randomBytes(FRAME_PAYLOAD_MAX * 2 + 77)
  const shared = new SharedBodySeal(body)
  const toB: FrameContext = { key: randomBytes(32), sessionId: randomBytes(16), seq: 4 }
  const toC: FrameContext = { key: randomBytes(32), sessionId: randomBytes(16), seq: 9 }
  const head = encodeMsgpack({ p: 'x', m: null, s: true, k: shared.sealed.key })
  const mB = sealWholeMessage(toB, head, body, shared.sealed) as Buffer
  const mC = sealWholeMessage(toC, head, body, shared.sealed) as Buffer
  const frames = shared.sealed.frames
  assert.ok(mB.subarray(mB.length - frames.length).equals(frames), 'the body frames are the shared ones')
  assert.ok(mC.subarray(mC.length - frames.length).equals(frames))
  for (const [ctx, m] of [
    [toB, mB],
    [toC, mC],
  ] as const) {
    const opened = openWholeMessage(ctx, m, remoteError)
    assert.ok(Buffer.concat(opened.data ?? []).equals(body))
  }
  // B's HEAD does not open under C's session.
  assert.throws(() => openWholeMessage(toC, mB, remoteError), /failed authentication/)
})

test('frames sealed under another key, or a malformed key, are refused', () => {
  const body = randomBytes(1000)
  const ctx: FrameContext = { key: randomBytes(32), sessionId: randomBytes(16), seq: 1 }
  const a = new SharedBodySeal(body)
  const b = new SharedBodySeal(body)
  const head = encodeMsgpack({ p: 'x', m: null, s: true, k: a.sealed.key })
  const spliced = sealWholeMessage(ctx, head, body, b.sealed) as Buffer
  assert.throws(() => openWholeMessage(ctx, spliced, remoteError), /failed authentication/)
  const short = encodeMsgpack({ p: 'x', m: null, s: true, k: a.sealed.key.subarray(0, 16) })
  assert.throws(
    () => openWholeMessage(ctx, sealWholeMessage(ctx, short, body, a.sealed) as Buffer, remoteError),
    /malformed body key/,
  )
})

const SINK = defineEndpoint<null, { sum: string }>('test/shared-sink')

test('a block-sized body sent to two peers with one shared seal arrives whole at both', async (t) => {
  const secret = newSecret()
  const a = await startNode(t, secret)
  const peers = [await startNode(t, secret), await startNode(t, secret)]
  const got: Buffer[] = []
  for (const p of peers) {
    p.net.handle(SINK, async (_req, _from, ctx) => {
      const chunks: Buffer[] = []
      for await (const c of ctx.stream ?? []) chunks.push(c as Buffer)
      got.push(Buffer.concat(chunks))
      return { sum: 'ok' }
    })
    await a.net.connect(p.key.id, p.addr)
  }
  const body = randomBytes(1024 * 1024 + 5)
  const sharedSeal = new SharedBodySeal(body)
  for (const p of peers) {
    const { res, stream } = await a.net.callStreaming(p.key.id, SINK, null, { stream: body, sharedSeal })
    stream?.destroy()
    assert.deepEqual(res, { sum: 'ok' })
  }
  assert.equal(got.length, 2)
  for (const g of got) assert.ok(g.equals(body), 'the body arrived intact')
  // A call to oneself ignores the seal and gets the body too.
  a.net.handle(SINK, async (_req, _from, ctx) => {
    let n = 0
    for await (const c of ctx.stream ?? []) n += (c as Buffer).length
    return { sum: String(n) }
  })
  assert.deepEqual((await a.net.callStreaming(a.key.id, SINK, null, { stream: body, sharedSeal })).res, {
    sum: String(body.length),
  })
})
