/**
 * Sealed message streams: a message is a HEAD frame (msgpack), then, if the HEAD says a stream
 * is attached, DATA frames carrying it and END (or ERR if the sender's stream failed). A message
 * without a stream is its HEAD frame alone. Each frame is sealed on its own (crypto.ts), so a
 * multi-MiB stream is encrypted and checked 64 KiB at a time and never held whole. Messages
 * whose body is already in memory (every table call, a block) are sealed into one buffer and
 * opened from one ({@link sealWholeMessage}, {@link openWholeMessage}): one HTTP write, no
 * stream machinery per frame. Port of the framing ideas of garage_net::send and garage_net::recv.
 *
 * @internal
 */
import { randomBytes } from '../util/random.ts'
import { decodeMsgpack, encodeMsgpack } from '../util/codec.ts'
import {
  FRAME,
  KEY_LEN,
  FRAME_PAYLOAD_MAX,
  FRAME_WIRE_MAX,
  openFrame,
  sealedFrameLength,
  sealFrame,
  sealFrameInto,
  sealFramePieces,
} from './crypto.ts'
import type { RpcBody } from './endpoint.ts'
import { NetError } from './errors.ts'

/** Where and how one message is sealed or opened. */
export interface FrameContext {
  key: Uint8Array
  sessionId: Uint8Array
  seq: number
}

/**
 * Largest message sent or read whole (in one buffer): bodies up to 4 MiB (a block at the default
 * and usual block sizes) plus the HEAD. Larger ones are sealed and opened frame by frame.
 */
export const WHOLE_MESSAGE_MAX = 4 * 1024 * 1024 + 64 * 1024

/**
 * Largest message HEAD (the msgpack of a call or an answer: a table page, a version row of a
 * 10,000-part upload, a batch of rows). Larger than one frame, it spans several (HEAD_PART*,
 * HEAD); this bounds what a peer can make the receiver buffer before the HEAD is decoded.
 */
export const HEAD_MAX = 64 * 1024 * 1024

/** The frames of a HEAD: every payload but the last goes in a HEAD_PART frame. */
function headPayloads(head: Uint8Array): Uint8Array[] {
  if (head.length > HEAD_MAX) throw new NetError('protocol', `message head of ${head.length} bytes exceeds the limit`)
  if (head.length <= FRAME_PAYLOAD_MAX) return [head]
  const out: Uint8Array[] = []
  for (let o = 0; o < head.length; o += FRAME_PAYLOAD_MAX) out.push(head.subarray(o, o + FRAME_PAYLOAD_MAX))
  return out
}

/** Bytes of the whole message sealing `head` and `body`. */
function wholeLength(head: Uint8Array, body: Uint8Array | undefined): number {
  let n = 0
  for (const p of headPayloads(head)) n += sealedFrameLength(p.length)
  if (body === undefined) return n
  for (let o = 0; o < body.length; o += FRAME_PAYLOAD_MAX) n += sealedFrameLength(Math.min(FRAME_PAYLOAD_MAX, body.length - o))
  return n + sealedFrameLength(0)
}

/**
 * Seals a message whose body is in memory (or absent) into one buffer, or returns undefined when
 * it would exceed `max` (then use {@link sealMessage}). Same frames as
 * sealMessage.
 */
export function sealWholeMessage(
  ctx: FrameContext,
  head: Uint8Array,
  body: Uint8Array | undefined,
  max = WHOLE_MESSAGE_MAX,
): Buffer | undefined {
  const total = wholeLength(head, body)
  if (total > max) return undefined
  const out = Buffer.allocUnsafe(total)
  let o = sealHeadInto(out, ctx, head)
  if (body !== undefined) {
    let index = headPayloads(head).length
    for (let at = 0; at < body.length; at += FRAME_PAYLOAD_MAX)
      o = sealFrameInto(out, o, ctx.key, ctx.sessionId, ctx.seq, index++, FRAME.DATA, body.subarray(at, at + FRAME_PAYLOAD_MAX))
    sealFrameInto(out, o, ctx.key, ctx.sessionId, ctx.seq, index, FRAME.END, EMPTY)
  }
  return out
}

/**
 * A message whose body was sealed once for several peers ({@link SharedBodySeal}): its HEAD
 * sealed here, then the shared frames as they are (the same bytes as {@link sealWholeMessage}
 * with the body sealed under the HEAD's key, without copying the body's frames per peer).
 * Undefined when it would exceed {@link WHOLE_MESSAGE_MAX}.
 */
export function sealWholeMessageShared(ctx: FrameContext, head: Uint8Array, shared: SealedBody): Buffer[] | undefined {
  let headLength = 0
  for (const p of headPayloads(head)) headLength += sealedFrameLength(p.length)
  if (headLength + shared.length > WHOLE_MESSAGE_MAX) return undefined
  const out = Buffer.allocUnsafe(headLength)
  sealHeadInto(out, ctx, head)
  return [out, ...shared.frames]
}

/** Seals the HEAD frames of a message at the start of `out`; the offset after them. */
function sealHeadInto(out: Buffer, ctx: FrameContext, head: Uint8Array): number {
  const heads = headPayloads(head)
  let o = 0
  for (const [i, p] of heads.entries())
    o = sealFrameInto(out, o, ctx.key, ctx.sessionId, ctx.seq, i, i === heads.length - 1 ? FRAME.HEAD : FRAME.HEAD_PART, p)
  return o
}

/** A body's DATA and END frames sealed under a one-time key, and that key. */
export interface SealedBody {
  key: Buffer
  /** The frames' bytes, as pieces to send in order ({@link sealFramePieces}). */
  frames: readonly Buffer[]
  /** Their total length. */
  length: number
}

/** What the frames of a body sealed once are bound to besides their one-time key and index. */
const ONE_TIME_AAD = new Uint8Array(0)

/**
 * One body sent whole to several peers (a block to its replicas), sealed once instead of once
 * per peer: its DATA and END frames are sealed under a fresh random key, which each message's
 * HEAD carries (`k`), sealed with that message's session key. The HEAD still authenticates the
 * call, its sequence number (replays) and the key; the frames are bound to the key and to their
 * index, so they cannot be reordered, cut, or moved into another message (another key). The
 * receivers learn the key, so one of them on the path to another could swap the frames for
 * others sealed under it: nodes of one cluster share the RPC secret and are trusted alike, and a
 * block is checked against its hash on arrival anyway.
 * @internal
 */
export class SharedBodySeal {
  readonly body: Uint8Array
  #sealed: SealedBody | undefined
  constructor(body: Uint8Array) {
    this.body = body
  }

  /** The sealed frames, sealed at the first use. */
  get sealed(): SealedBody {
    if (this.#sealed === undefined) {
      const key = randomBytes(KEY_LEN)
      const body = this.body
      const frames: Buffer[] = []
      let index = 0
      for (let at = 0; at < body.length; at += FRAME_PAYLOAD_MAX)
        frames.push(...sealFramePieces(key, ONE_TIME_AAD, 0, index++, FRAME.DATA, body.subarray(at, at + FRAME_PAYLOAD_MAX)))
      frames.push(...sealFramePieces(key, ONE_TIME_AAD, 0, index, FRAME.END, EMPTY))
      this.#sealed = { key, frames, length: wholeLength(EMPTY, body) - sealedFrameLength(0) }
    }
    return this.#sealed
  }
}

const EMPTY = new Uint8Array(0)

/** Collects the frames of a message's HEAD; {@link add} says when the HEAD is complete. */
class HeadParts {
  readonly #parts: Buffer[] = []
  #length = 0

  /** Takes the next frame of the message; true once it was the HEAD frame (the last one). */
  add(f: { kind: number; payload: Buffer }): boolean {
    if (f.kind !== FRAME.HEAD && f.kind !== FRAME.HEAD_PART)
      throw new NetError('protocol', 'message does not start with a HEAD frame')
    this.#length += f.payload.length
    if (this.#length > HEAD_MAX) throw new NetError('protocol', `message head over ${HEAD_MAX} bytes`)
    this.#parts.push(f.payload)
    return f.kind === FRAME.HEAD
  }

  decode(): unknown {
    try {
      return decodeMsgpack(this.#parts.length === 1 ? (this.#parts[0] as Buffer) : Buffer.concat(this.#parts, this.#length))
    } catch (err) {
      throw new NetError('protocol', 'undecodable message', { cause: err })
    }
  }
}

/** A message opened from one buffer: its HEAD, and the attached stream's payloads if any. */
export interface WholeMessage {
  head: unknown
  /** DATA payloads, in order; undefined when the message has no stream. */
  data: Buffer[] | undefined
  /** The sender's stream failed (an ERR frame): reading the stream must fail with this. */
  error: Error | undefined
}

/**
 * Opens a message held in one buffer, every frame checked before anything is returned. A stream
 * follows the HEAD if and only if the HEAD's `s` is true.
 * @throws NetError on tampering, truncation, bad order or trailing data.
 */
export function openWholeMessage(
  ctx: FrameContext,
  buf: Buffer,
  remoteError: (name: string, message: string) => Error,
): WholeMessage {
  let o = 0
  let index = 0
  let frames: FrameContext = ctx
  const next = (): { kind: number; payload: Buffer } | undefined => {
    if (o === buf.length) return undefined
    if (buf.length - o < 4) throw new NetError('protocol', 'message truncated inside a frame header')
    const len = buf.readUInt32BE(o)
    if (len + 4 > FRAME_WIRE_MAX) throw new NetError('protocol', `frame of ${len} bytes exceeds the limit`)
    if (buf.length - o - 4 < len) throw new NetError('protocol', 'message truncated inside a frame')
    const frame = openFrame(frames.key, frames.sessionId, frames.seq, index++, buf.subarray(o + 4, o + 4 + len))
    if (frame === undefined) throw new NetError('protocol', 'a frame failed authentication (tampered, replayed or wrong key)')
    o += 4 + len
    return frame
  }
  const parts = new HeadParts()
  for (;;) {
    const f = next()
    if (f === undefined) throw new NetError('protocol', 'message truncated (no HEAD frame)')
    if (parts.add(f)) break
  }
  const head = parts.decode()
  // Both request and response HEADs say in `s` whether a stream follows.
  if ((head as { s?: unknown } | null)?.s !== true) {
    if (o !== buf.length) throw new NetError('protocol', 'data after the end of a message')
    return { head, data: undefined, error: undefined }
  }
  // A body sealed once for several peers (SharedBodySeal): its frames under the HEAD's key.
  const k = (head as { k?: unknown }).k
  if (k !== undefined) {
    if (!(k instanceof Uint8Array) || k.length !== KEY_LEN) throw new NetError('protocol', 'malformed body key')
    frames = { key: k, sessionId: ONE_TIME_AAD, seq: 0 }
    index = 0
  }
  let f = next()
  const data: Buffer[] = []
  let error: Error | undefined
  for (; ; f = next()) {
    if (f === undefined) throw new NetError('protocol', 'message truncated (no END frame)')
    if (f.kind === FRAME.DATA) data.push(f.payload)
    else if (f.kind === FRAME.END) break
    else if (f.kind === FRAME.ERR) {
      const e = decodeMsgpack(f.payload) as { n?: unknown; m?: unknown }
      error = remoteError(String(e.n), String(e.m))
      break
    } else throw new NetError('protocol', 'unexpected HEAD frame inside a stream')
  }
  if (o !== buf.length) throw new NetError('protocol', 'data after the end of a message')
  return { head, data, error }
}

/** The attached stream of a {@link WholeMessage}: its payloads, then its error if it had one. */
export async function* wholeStream(m: WholeMessage): AsyncGenerator<Buffer> {
  for (const d of m.data ?? []) yield d
  if (m.error !== undefined) throw m.error
}

/**
 * Yields the sealed frames of one message: HEAD, then DATA* and END (or ERR) if `body` is given.
 * Chunks larger than a frame are split without copying.
 */
export async function* sealMessage(ctx: FrameContext, head: Uint8Array, body: RpcBody | undefined): AsyncGenerator<Buffer> {
  let index = 0
  const seal = (kind: (typeof FRAME)[keyof typeof FRAME], payload: Uint8Array): Buffer =>
    sealFrame(ctx.key, ctx.sessionId, ctx.seq, index++, kind, payload)
  const heads = headPayloads(head)
  for (const [i, p] of heads.entries()) yield seal(i === heads.length - 1 ? FRAME.HEAD : FRAME.HEAD_PART, p)
  if (body === undefined) return
  try {
    for await (const chunk of body instanceof Uint8Array ? [body] : body) {
      for (let o = 0; o < chunk.length; o += FRAME_PAYLOAD_MAX) yield seal(FRAME.DATA, chunk.subarray(o, o + FRAME_PAYLOAD_MAX))
    }
  } catch (err) {
    // The attached stream failed at its source: the receiver gets the error as an ERR frame,
    // which makes its copy of the stream fail in turn.
    const e = err instanceof Error ? err : new Error(String(err))
    yield seal(FRAME.ERR, encodeMsgpack({ n: e.name, m: e.message }))
    return
  }
  yield seal(FRAME.END, EMPTY)
}

/** Splits a byte source into length-prefixed frames (without the prefix). */
class FrameSplitter {
  readonly #it: AsyncIterator<Uint8Array>
  #chunks: Buffer[] = []
  #length = 0
  #done = false
  constructor(source: AsyncIterable<Uint8Array>) {
    this.#it = source[Symbol.asyncIterator]()
  }

  async #fill(n: number): Promise<boolean> {
    while (this.#length < n && !this.#done) {
      const r = await this.#it.next()
      if (r.done === true) this.#done = true
      else if (r.value.length > 0) {
        const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.length)
        this.#chunks.push(b)
        this.#length += b.length
      }
    }
    return this.#length >= n
  }

  #take(n: number): Buffer {
    const all = this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks, this.#length)
    const out = all.subarray(0, n)
    const rest = all.subarray(n)
    this.#chunks = rest.length > 0 ? [rest] : []
    this.#length = rest.length
    return out
  }

  /** The next frame body, or undefined at a clean end of input. */
  async next(): Promise<Buffer | undefined> {
    if (!(await this.#fill(4))) {
      if (this.#length === 0) return undefined
      throw new NetError('protocol', 'message truncated inside a frame header')
    }
    const len = this.#take(4).readUInt32BE(0)
    if (len + 4 > FRAME_WIRE_MAX) throw new NetError('protocol', `frame of ${len} bytes exceeds the limit`)
    if (!(await this.#fill(len))) throw new NetError('protocol', 'message truncated inside a frame')
    return this.#take(len)
  }

  /** Checks that the input ends here. */
  async expectEnd(): Promise<void> {
    if (await this.#fill(1)) throw new NetError('protocol', 'data after the end of a message')
  }

  async return(): Promise<void> {
    if (this.#done) return
    this.#done = true
    await this.#it.return?.()
  }
}

/** Opens the frames of one message in order; any tampering, reordering or truncation fails. */
export class MessageReader {
  readonly #ctx: FrameContext
  readonly #frames: FrameSplitter
  readonly #remoteError: (name: string, message: string) => Error
  #index = 0

  constructor(ctx: FrameContext, source: AsyncIterable<Uint8Array>, remoteError: (name: string, message: string) => Error) {
    this.#ctx = ctx
    this.#frames = new FrameSplitter(source)
    this.#remoteError = remoteError
  }

  async #next(): Promise<{ kind: number; payload: Buffer }> {
    const sealed = await this.#frames.next()
    if (sealed === undefined) throw new NetError('protocol', 'message truncated (no END frame)')
    const frame = openFrame(this.#ctx.key, this.#ctx.sessionId, this.#ctx.seq, this.#index++, sealed)
    if (frame === undefined) throw new NetError('protocol', 'a frame failed authentication (tampered, replayed or wrong key)')
    return frame
  }

  /** The HEAD (its HEAD_PART frames and HEAD frame), decoded. */
  async head(): Promise<unknown> {
    const parts = new HeadParts()
    while (!parts.add(await this.#next()));
    return parts.decode()
  }

  /** The attached stream: DATA payloads until END. Throws on ERR or tampering. */
  async *stream(): AsyncGenerator<Buffer> {
    try {
      for (;;) {
        const f = await this.#next()
        if (f.kind === FRAME.DATA) yield f.payload
        else if (f.kind === FRAME.END) {
          await this.#frames.expectEnd()
          return
        } else if (f.kind === FRAME.ERR) {
          const e = decodeMsgpack(f.payload) as { n?: unknown; m?: unknown }
          throw this.#remoteError(String(e.n), String(e.m))
        } else throw new NetError('protocol', 'unexpected HEAD frame inside a stream')
      }
    } finally {
      await this.#frames.return()
    }
  }

  /** Checks that a message without an attached stream ends after its HEAD. */
  async end(): Promise<void> {
    try {
      await this.#frames.expectEnd()
    } finally {
      await this.#frames.return()
    }
  }

  /** Stops reading (releases the source). */
  async cancel(): Promise<void> {
    await this.#frames.return()
  }
}
