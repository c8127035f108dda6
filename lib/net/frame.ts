/**
 * Sealed message streams: a message is a HEAD frame (msgpack), then DATA frames carrying the
 * attached byte stream, then END (or ERR if the sender's stream failed). Each frame is sealed
 * on its own (crypto.ts), so a multi-MiB block is encrypted and checked 64 KiB at a time and
 * never held whole. Port of the framing ideas of garage_net::send and garage_net::recv.
 *
 * @internal
 */
import { decodeMsgpack, encodeMsgpack } from '../util/codec.ts'
import { FRAME, FRAME_PAYLOAD_MAX, FRAME_WIRE_MAX, openFrame, sealFrame } from './crypto.ts'
import type { RpcBody } from './endpoint.ts'
import { NetError } from './errors.ts'

/** Where and how one message is sealed or opened. */
export interface FrameContext {
  key: Uint8Array
  sessionId: Uint8Array
  seq: number
}

/** Yields the sealed frames of one message. Chunks larger than a frame are split without copying. */
export async function* sealMessage(ctx: FrameContext, head: Uint8Array, body: RpcBody | undefined): AsyncGenerator<Buffer> {
  let index = 0
  const seal = (kind: (typeof FRAME)[keyof typeof FRAME], payload: Uint8Array): Buffer =>
    sealFrame(ctx.key, ctx.sessionId, ctx.seq, index++, kind, payload)
  yield seal(FRAME.HEAD, head)
  if (body !== undefined) {
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
  }
  yield seal(FRAME.END, new Uint8Array(0))
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

  /** The HEAD frame's payload, decoded. */
  async head(): Promise<unknown> {
    const f = await this.#next()
    if (f.kind !== FRAME.HEAD) throw new NetError('protocol', 'message does not start with a HEAD frame')
    try {
      return decodeMsgpack(f.payload)
    } catch (err) {
      throw new NetError('protocol', 'undecodable message', { cause: err })
    }
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

  /** Reads the END frame of a message without an attached stream. */
  async end(): Promise<void> {
    for await (const _ of this.stream()) throw new NetError('protocol', 'unexpected stream data')
  }

  /** Stops reading (releases the source). */
  async cancel(): Promise<void> {
    await this.#frames.return()
  }
}
