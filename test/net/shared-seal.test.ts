/**
 * A body sealed once for several peers (lib/net/frame.ts, SharedBodySeal): each peer's message
 * carries the same DATA frames after its own HEAD, opens with its own session, and its frames
 * cannot be swapped for frames sealed under another key.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { FRAME_PAYLOAD_MAX } from '../../lib/net/crypto.ts'
import { defineEndpoint } from '../../lib/net/endpoint.ts'
import { type FrameContext, openWholeMessage, SharedBodySeal, sealWholeMessageShared } from '../../lib/net/frame.ts'
import { encodeMsgpack } from '../../lib/util/codec.ts'
import { newSecret, startNode } from './net-fixtures.ts'

const remoteError = (_n: string, m: string): Error => new Error(m)

test('one sealing, two sessions: each message opens with its own key and carries the body', () => {
  const body = randomBytes(FRAME_PAYLOAD_MAX * 2 + 77)
  const shared = new SharedBodySeal(body)
  const toB: FrameContext = { key: randomBytes(32), sessionId: randomBytes(16), seq: 4 }
  const toC: FrameContext = { key: randomBytes(32), sessionId: randomBytes(16), seq: 9 }
  const head = encodeMsgpack({ p: 'x', m: null, s: true, k: shared.sealed.key })
  const partsB = sealWholeMessageShared(toB, head, shared.sealed) as Buffer[]
  const partsC = sealWholeMessageShared(toC, head, shared.sealed) as Buffer[]
  const frames = shared.sealed.frames
  // The body's frames are the shared buffers themselves, not a copy per peer.
  assert.deepEqual(partsB.slice(1), frames)
  assert.ok(partsB.slice(1).every((p, i) => p === frames[i] && partsC[i + 1] === p))
  assert.equal(Buffer.concat(frames).length, shared.sealed.length)
  const mB = Buffer.concat(partsB)
  const mC = Buffer.concat(partsC)
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
  const spliced = Buffer.concat(sealWholeMessageShared(ctx, head, b.sealed) as Buffer[])
  assert.throws(() => openWholeMessage(ctx, spliced, remoteError), /failed authentication/)
  const short = encodeMsgpack({ p: 'x', m: null, s: true, k: a.sealed.key.subarray(0, 16) })
  assert.throws(
    () => openWholeMessage(ctx, Buffer.concat(sealWholeMessageShared(ctx, short, a.sealed) as Buffer[]), remoteError),
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

const PIECES = defineEndpoint<{ n: number }, { n: number; sum: string; pieces: number }>('test/shared-pieces')

test('blocks sent whole arrive as their opened frames (ctx.body), intact while many are reassembled one after another', async (t) => {
  const secret = newSecret()
  const a = await startNode(t, secret)
  const b = await startNode(t, secret)
  b.net.handle(PIECES, async (req, _from, ctx) => {
    // Read after an await: the bytes must not be a view of a buffer reused by later messages.
    await new Promise((resolve) => setTimeout(resolve, 5))
    const body = ctx.body ?? []
    return { n: req.n, sum: createHash('sha256').update(Buffer.concat(body)).digest('hex'), pieces: body.length }
  })
  await a.net.connect(b.key.id, b.addr)
  // Odd sizes, sent concurrently: their records interleave and each is reassembled in turn.
  const bodies = Array.from({ length: 12 }, (_, i) => randomBytes(300_000 + i * 70_001))
  const answers = await Promise.all(
    bodies.map(async (body, n) => {
      const { res, stream } = await a.net.callStreaming(
        b.key.id,
        PIECES,
        { n },
        { stream: body, sharedSeal: new SharedBodySeal(body) },
      )
      stream?.destroy()
      return res
    }),
  )
  for (const [i, r] of answers.entries()) {
    assert.equal(r.n, i)
    assert.equal(
      r.sum,
      createHash('sha256')
        .update(bodies[i] as Buffer)
        .digest('hex'),
      `body ${i} arrived intact`,
    )
    assert.ok(r.pieces > 1, 'the body came as its frames, not copied into one buffer')
  }
})
