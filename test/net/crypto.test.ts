import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { FRAME, FRAME_PAYLOAD_MAX, openFrame, ReplayWindow, sealFrame } from '../../lib/net/crypto.ts'
import { NetError } from '../../lib/net/errors.ts'
import {
  type FrameContext,
  MessageReader,
  openWholeMessage,
  sealMessage,
  sealWholeMessage,
  WHOLE_MESSAGE_MAX,
} from '../../lib/net/frame.ts'
import { encodeMsgpack } from '../../lib/util/codec.ts'

const key = randomBytes(32)
const sid = randomBytes(16)

async function collect(gen: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = []
  for await (const f of gen) out.push(f)
  return out
}

async function* from(frames: Buffer[]): AsyncGenerator<Buffer> {
  yield* frames
}

test('the replay window accepts each sequence number once, in any order, within its size', () => {
  const w = new ReplayWindow(8)
  assert.equal(w.accept(3), true)
  assert.equal(w.accept(1), true, 'an older number not yet seen')
  assert.equal(w.accept(3), false, 'a replay')
  assert.equal(w.accept(1), false, 'a replay of an older one')
  assert.equal(w.accept(10), true)
  assert.equal(w.accept(2), false, 'too old: outside the window')
  assert.equal(w.accept(5), true, 'inside the window after a jump')
  assert.equal(w.accept(100), true)
  assert.equal(w.accept(99), true)
  assert.equal(w.accept(92), false, 'the window moved')
  assert.equal(w.accept(-1), false)
  assert.equal(w.accept(1.5), false)
})

test('a frame opens only with its key, session, message number and position', () => {
  const sealed = sealFrame(key, sid, 7, 2, FRAME.DATA, Buffer.from('hello')).subarray(4)
  assert.deepEqual(openFrame(key, sid, 7, 2, sealed), { kind: FRAME.DATA, payload: Buffer.from('hello') })
  assert.equal(openFrame(key, sid, 7, 3, sealed), undefined, 'another position')
  assert.equal(openFrame(key, sid, 8, 2, sealed), undefined, 'another message')
  assert.equal(openFrame(key, randomBytes(16), 7, 2, sealed), undefined, 'another session')
  assert.equal(openFrame(randomBytes(32), sid, 7, 2, sealed), undefined, 'another key')
  const flipped = Buffer.from(sealed)
  flipped[1] = (flipped[1] as number) ^ 0x80
  assert.equal(openFrame(key, sid, 7, 2, flipped), undefined, 'a flipped bit')
})

test('a sealed message round-trips; big chunks are split into frames', async () => {
  const ctx: FrameContext = { key, sessionId: sid, seq: 1 }
  const body = randomBytes(FRAME_PAYLOAD_MAX * 2 + 10)
  const frames = await collect(sealMessage(ctx, encodeMsgpack({ hi: 1 }), body))
  assert.equal(frames.length, 1 + 3 + 1, 'HEAD, three DATA, END')
  const reader = new MessageReader(ctx, from([Buffer.concat(frames)]), (_n, m) => new Error(m))
  assert.deepEqual(await reader.head(), { hi: 1 })
  assert.deepEqual(Buffer.concat(await collect(reader.stream())), body)
})

test('dropped, reordered or truncated frames are detected', async () => {
  const ctx: FrameContext = { key, sessionId: sid, seq: 1 }
  const frames = await collect(sealMessage(ctx, encodeMsgpack(null), from([Buffer.from('a'), Buffer.from('b')])))
  const variants: [string, Buffer[]][] = [
    ['a dropped frame', [frames[0], frames[2], frames[3]] as Buffer[]],
    ['swapped frames', [frames[0], frames[2], frames[1], frames[3]] as Buffer[]],
    ['no END', frames.slice(0, 3)],
    ['cut inside a frame', [Buffer.concat(frames).subarray(0, -3)]],
  ]
  for (const [what, parts] of variants) {
    const reader = new MessageReader(ctx, from(parts), (_n, m) => new Error(m))
    await assert.rejects(
      (async () => {
        await reader.head()
        await collect(reader.stream())
      })(),
      (e: unknown) => e instanceof NetError && e.reason === 'protocol',
      what,
    )
  }
})

test('a source error reaches the receiver as an error of its stream', async () => {
  const ctx: FrameContext = { key, sessionId: sid, seq: 4 }
  async function* failing(): AsyncGenerator<Uint8Array> {
    yield Buffer.from('partial')
    throw new Error('disk read failed')
  }
  const frames = await collect(sealMessage(ctx, encodeMsgpack(null), failing()))
  const reader = new MessageReader(ctx, from(frames), (n, m) => new Error(`${n}: ${m}`))
  await reader.head()
  await assert.rejects(collect(reader.stream()), /Error: disk read failed/)
})

test('an oversized frame length is refused before buffering it', async () => {
  const ctx: FrameContext = { key, sessionId: sid, seq: 0 }
  const huge = Buffer.alloc(4)
  huge.writeUInt32BE(1 << 30)
  const reader = new MessageReader(ctx, from([huge]), (_n, m) => new Error(m))
  await assert.rejects(reader.head(), /exceeds the limit/)
})

test('a message sealed whole is the same frames as one sealed as a stream, and opens either way', async () => {
  const ctx: FrameContext = { key, sessionId: sid, seq: 9 }
  const body = randomBytes(FRAME_PAYLOAD_MAX * 2 + 10)
  const head = encodeMsgpack({ hi: 2, s: true })
  const whole = sealWholeMessage(ctx, head, body) as Buffer
  assert.deepEqual(whole, Buffer.concat(await collect(sealMessage(ctx, head, body))), 'identical bytes')
  const m = openWholeMessage(ctx, whole, (_n, msg) => new Error(msg))
  assert.deepEqual(m.head, { hi: 2, s: true })
  assert.deepEqual(Buffer.concat(m.data ?? []), body)
  assert.equal(m.error, undefined)
  const reader = new MessageReader(ctx, from([whole]), (_n, msg) => new Error(msg))
  assert.deepEqual(await reader.head(), { hi: 2, s: true })
  assert.deepEqual(Buffer.concat(await collect(reader.stream())), body)
  // An empty attached stream is HEAD then END, not HEAD alone.
  assert.deepEqual(
    openWholeMessage(ctx, sealWholeMessage(ctx, head, new Uint8Array(0)) as Buffer, (_n, msg) => new Error(msg)).data,
    [],
  )
  // Too large to seal whole: the caller streams it instead.
  assert.equal(sealWholeMessage(ctx, head, new Uint8Array(WHOLE_MESSAGE_MAX)), undefined)
})

test('a message without a stream is its HEAD frame alone; anything after it is refused', async () => {
  const ctx: FrameContext = { key, sessionId: sid, seq: 10 }
  const frames = await collect(sealMessage(ctx, encodeMsgpack({ q: 1 }), undefined))
  assert.equal(frames.length, 1, 'HEAD only')
  const whole = sealWholeMessage(ctx, encodeMsgpack({ q: 1 }), undefined) as Buffer
  assert.deepEqual(whole, frames[0])
  const m = openWholeMessage(ctx, whole, (_n, msg) => new Error(msg))
  assert.deepEqual(m, { head: { q: 1 }, data: undefined, error: undefined })
  const reader = new MessageReader(ctx, from([whole]), (_n, msg) => new Error(msg))
  assert.deepEqual(await reader.head(), { q: 1 })
  await reader.end()
  // A frame of the right session appended (sealed at index 1): refused by both readers, and a
  // HEAD saying a stream follows with nothing after it is a truncation.
  const extra = sealFrame(key, sid, 10, 1, FRAME.END, Buffer.alloc(0))
  const streamed = new MessageReader(ctx, from([whole, extra]), (_n, msg) => new Error(msg))
  await streamed.head()
  await assert.rejects(streamed.end(), /data after the end/)
  assert.throws(
    () => openWholeMessage(ctx, Buffer.concat([whole, extra]), (_n, msg) => new Error(msg)),
    (e: unknown) => e instanceof NetError && e.reason === 'protocol',
  )
  assert.throws(
    () =>
      openWholeMessage(ctx, sealWholeMessage(ctx, encodeMsgpack({ s: true }), undefined) as Buffer, (_n, msg) => new Error(msg)),
    /no END/,
  )
})

test('tampered, truncated or reordered whole messages are refused', () => {
  const ctx: FrameContext = { key, sessionId: sid, seq: 11 }
  const whole = sealWholeMessage(ctx, encodeMsgpack({ s: true }), randomBytes(FRAME_PAYLOAD_MAX + 5)) as Buffer
  const flipped = Buffer.from(whole)
  flipped[40] = (flipped[40] as number) ^ 1
  const firstLen = 4 + whole.readUInt32BE(0)
  const variants: [string, Buffer][] = [
    ['a flipped bit', flipped],
    ['cut inside a frame', whole.subarray(0, -3)],
    ['no END', whole.subarray(0, whole.length - (4 + 1 + 16))],
    ['HEAD dropped', whole.subarray(firstLen)],
    ['another message number', Buffer.from(whole)],
  ]
  for (const [what, buf] of variants) {
    const c = what === 'another message number' ? { ...ctx, seq: 12 } : ctx
    assert.throws(
      () => openWholeMessage(c, buf, (_n, msg) => new Error(msg)),
      (e: unknown) => e instanceof NetError && e.reason === 'protocol',
      what,
    )
  }
})

test('a HEAD larger than a frame spans HEAD_PART frames and opens whole or streamed', async () => {
  const ctx: FrameContext = { key, sessionId: sid, seq: 12 }
  // A 10,000-entry row list, as a version row of a 10,000-part upload: ~600 KB of msgpack.
  const rows = Array.from({ length: 10_000 }, (_, i) => ({ n: i, h: randomBytes(32), s: 1024 + i }))
  const head = encodeMsgpack({ rows, s: true })
  assert.ok(head.length > 4 * FRAME_PAYLOAD_MAX)
  const body = randomBytes(FRAME_PAYLOAD_MAX + 5)
  const frames = await collect(sealMessage(ctx, head, body))
  assert.equal(frames.length, Math.ceil(head.length / FRAME_PAYLOAD_MAX) + 3, 'head frames, 2 DATA, END')
  const whole = sealWholeMessage(ctx, head, body) as Buffer
  assert.deepEqual(whole, Buffer.concat(frames))
  const m = openWholeMessage(ctx, whole, (_n, msg) => new Error(msg))
  assert.deepEqual((m.head as { rows: unknown[] }).rows.length, 10_000)
  assert.deepEqual((m.head as { rows: { h: Uint8Array }[] }).rows[9_999]?.h, rows[9_999]?.h)
  assert.deepEqual(Buffer.concat(m.data ?? []), body)
  const reader = new MessageReader(ctx, from(frames), (_n, msg) => new Error(msg))
  assert.deepEqual(await reader.head(), m.head)
  assert.deepEqual(Buffer.concat(await collect(reader.stream())), body)
  // A HEAD_PART frame dropped, or the message cut after one: refused by both readers.
  const dropped = [frames[0] as Buffer, ...frames.slice(2)]
  assert.throws(() => openWholeMessage(ctx, Buffer.concat(dropped), (_n, msg) => new Error(msg)), NetError)
  await assert.rejects(new MessageReader(ctx, from(dropped), (_n, msg) => new Error(msg)).head(), NetError)
  assert.throws(() => openWholeMessage(ctx, frames[0] as Buffer, (_n, msg) => new Error(msg)), /no HEAD frame/)
  // HEAD_PART after the HEAD (inside the stream) is refused.
  const late = sealFrame(key, sid, 12, 1, FRAME.HEAD_PART, Buffer.alloc(3))
  const small = sealFrame(key, sid, 12, 0, FRAME.HEAD, encodeMsgpack({ s: true }))
  assert.throws(() => openWholeMessage(ctx, Buffer.concat([small, late]), (_n, msg) => new Error(msg)), /HEAD frame inside/)
})
