/**
 * Calls multiplexed over one long-lived connection per peer, session and priority, as Garage's
 * netapp does (garage_net::send, garage_net::recv): after the handshake the client opens a
 * connection with an HTTP upgrade (`POST /rpc/mux`, naming its session), and from then on both
 * directions carry *records*:
 *
 *     u32 payload length ‖ u8 type ‖ u8 flags ‖ u48 message number ‖ payload
 *
 * A CALL record carries a whole sealed request message (frame.ts, the same bytes an HTTP call's
 * body would be), a REPLY record the whole sealed answer under the same number, CANCEL asks the
 * server to abort a call's handler, REFUSE is the server's transport refusal of one call (u16
 * status ‖ text: 400 did not authenticate, 409 replay), GOAWAY tells the client the server is
 * closing (it stops sending calls there at once, so a call made right after a restart does not go
 * to the closing connection). A message longer than
 * {@link RECORD_PAYLOAD_MAX} is cut into records flagged MORE but the last, and long messages
 * are interleaved slice by slice, so a block in flight delays a small call by one slice at most.
 *
 * Writes made during one turn of the event loop go out in one system call (the socket is corked
 * until `setImmediate`), and neither end parses an HTTP request or answer per call: that, and
 * the objects undici and node:http build per exchange, was most of a small call's transport
 * cost (docs/design/performance.md).
 *
 * The records themselves are not authenticated: the messages they carry are (sealed frames bound
 * to their session, direction and number). Tampering with the framing breaks the connection,
 * which fails the calls in flight on it, as a TCP reset would.
 *
 * @internal
 */
import net, { type Socket } from 'node:net'
import { TimeoutError } from '../util/errors.ts'
import { byteLengthOf } from '../util/data.ts'
import type { TcpAddr } from '../util/config.ts'
import { NetError } from './errors.ts'
import { HEAD_MAX, WHOLE_MESSAGE_MAX } from './frame.ts'

/** The upgrade request's path, and the protocol it names. */
export const MUX_ROUTE = '/rpc/mux'
export const MUX_PROTOCOL = 'garage-rpc-mux'

export const RECORD = { CALL: 1, CANCEL: 2, REPLY: 3, REFUSE: 4, GOAWAY: 5 } as const
const FLAG_MORE = 1
const HEADER_LEN = 12
/**
 * Largest message on a mux connection: a request sent whole (its body up to 4 MiB), or an answer
 * whose head is up to {@link HEAD_MAX} (a page of large rows; answers carry no stream here).
 */
export const MUX_MESSAGE_MAX = HEAD_MAX + WHOLE_MESSAGE_MAX
/** Largest record payload: longer messages are cut (and interleaved with others). */
export const RECORD_PAYLOAD_MAX = 64 * 1024
/**
 * Slices of long messages are written while the socket holds less than this unsent: enough for
 * few system calls per MiB, little for a small call to wait behind.
 */
const BULK_BUFFERED_MAX = 1024 * 1024
/** Largest response head (status line and headers) of the upgrade. */
const UPGRADE_HEAD_MAX = 4096
/** How long a mux connection may take to connect (as undici's connect timeout). */
const CONNECT_TIMEOUT_MS = 10_000
/** TCP keep-alive probes start after this long without traffic. */
const KEEPALIVE_MS = 15_000

function recordHeader(type: number, flags: number, seq: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_LEN)
  h.writeUInt32BE(length, 0)
  h[4] = type
  h[5] = flags
  h.writeUIntBE(seq, 6, 6)
  return h
}

/** A refusal record's payload: u16 status ‖ text. */
export function refusalPayload(status: number, text: string): Buffer {
  const t = Buffer.from(text, 'utf8')
  const out = Buffer.allocUnsafe(2 + t.length)
  out.writeUInt16BE(status, 0)
  t.copy(out, 2)
  return out
}

export function parseRefusal(payload: Buffer): { status: number; text: string } {
  if (payload.length < 2) return { status: 0, text: '' }
  return { status: payload.readUInt16BE(0), text: payload.toString('utf8', 2, Math.min(payload.length, 202)) }
}

/** A sealed message: one buffer, or its pieces in order (a HEAD and a body sealed once for several peers). */
export type SealedMessage = Buffer | readonly Buffer[]

/** A long message being sent slice by slice: its pieces, the one being sent and where in it. */
interface Outgoing {
  type: number
  seq: number
  bufs: readonly Buffer[]
  /** The piece being sent, and the offset in it. */
  i: number
  off: number
  /** Bytes not sent yet. */
  left: number
}

/**
 * The writing half of a mux connection: coalesces the records of one event-loop turn into one
 * write, cuts long messages into slices and sends them round-robin while the socket takes them.
 */
export class RecordWriter {
  readonly #socket: Socket
  #corked = false
  readonly #bulk: Outgoing[] = []
  #waitingDrain = false

  constructor(socket: Socket) {
    this.#socket = socket
  }

  /** Sends a message: its pieces, if it has several, are written as they are (not copied together). */
  send(type: number, seq: number, payload: SealedMessage): void {
    if (this.#socket.destroyed) return
    const bufs = Buffer.isBuffer(payload) ? [payload] : payload
    const length = byteLengthOf(payload)
    if (length <= RECORD_PAYLOAD_MAX) {
      this.#write(recordHeader(type, 0, seq, length))
      for (const b of bufs) if (b.length > 0) this.#write(b)
      return
    }
    this.#bulk.push({ type, seq, bufs, i: 0, off: 0, left: length })
    this.#pump()
  }

  /** Drops a long message not started yet (its call was cancelled); one started is finished. */
  drop(type: number, seq: number): void {
    const i = this.#bulk.findIndex((m) => m.type === type && m.seq === seq && m.i === 0 && m.off === 0)
    if (i >= 0) this.#bulk.splice(i, 1)
  }

  #write(b: Buffer): void {
    if (!this.#corked) {
      this.#corked = true
      this.#socket.cork()
      setImmediate(this.#uncork)
    }
    this.#socket.write(b)
  }

  readonly #uncork = (): void => {
    this.#corked = false
    this.#socket.uncork()
  }

  #pump(): void {
    const s = this.#socket
    while (this.#bulk.length > 0 && s.writableLength < BULK_BUFFERED_MAX && !s.destroyed) {
      const m = this.#bulk.shift() as Outgoing
      const n = Math.min(RECORD_PAYLOAD_MAX, m.left)
      m.left -= n
      const more = m.left > 0
      this.#write(recordHeader(m.type, more ? FLAG_MORE : 0, m.seq, n))
      // The slice's bytes, from one piece or across several.
      for (let want = n; want > 0; ) {
        const b = m.bufs[m.i] as Buffer
        const piece = b.subarray(m.off, m.off + want)
        if (piece.length > 0) this.#write(piece)
        want -= piece.length
        m.off += piece.length
        if (m.off === b.length) {
          m.i++
          m.off = 0
        }
      }
      if (more) this.#bulk.push(m)
    }
    if (this.#bulk.length > 0 && !this.#waitingDrain && !s.destroyed) {
      this.#waitingDrain = true
      s.once('drain', () => {
        this.#waitingDrain = false
        this.#pump()
      })
    }
  }
}

/**
 * The reading half: splits the byte stream into records and reassembles cut messages, calling
 * `onMessage` with each whole one. Throws a `protocol` {@link NetError} on a malformed stream
 * (the connection must then be closed).
 */
export class RecordReader {
  readonly #onMessage: (type: number, seq: number, payload: Buffer) => void
  readonly #concat: (pieces: Buffer[], length: number) => Buffer
  /** Bytes received and not consumed yet: chunks, the first read from #offset. */
  readonly #chunks: Buffer[] = []
  #offset = 0
  #length = 0
  /** The header of the record whose payload is awaited. */
  #header: { len: number; type: number; flags: number; seq: number } | undefined
  /** Messages being reassembled, by type and number: their payload pieces, not copied. */
  readonly #parts = new Map<string, { pieces: Buffer[]; length: number }>()

  /**
   * With `transient`, the payload given to `onMessage` is valid only during that call (the
   * consumer opens it at once and keeps no view of it, as the server does with a call): a message
   * that came in several pieces is then copied into a buffer reused from one message to the next
   * instead of a new one, so a block received does not allocate its size once more (large
   * short-lived buffers are what make V8 run its full collections, docs/design/performance.md).
   */
  constructor(onMessage: (type: number, seq: number, payload: Buffer) => void, options: { transient?: boolean } = {}) {
    this.#onMessage = onMessage
    this.#concat = options.transient === true ? concatTransient : concat
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.#chunks.push(chunk)
    this.#length += chunk.length
    for (;;) {
      if (this.#header === undefined) {
        if (this.#length < HEADER_LEN) return
        const h = concat(this.#take(HEADER_LEN), HEADER_LEN)
        const len = h.readUInt32BE(0)
        if (len > RECORD_PAYLOAD_MAX) throw new NetError('protocol', `RPC record of ${len} bytes exceeds the limit`)
        this.#header = { len, type: h[4] as number, flags: h[5] as number, seq: h.readUIntBE(6, 6) }
      }
      const { len, type, flags, seq } = this.#header
      if (this.#length < len) return
      this.#header = undefined
      this.#record(type, flags, seq, this.#take(len), len)
    }
  }

  /** The next `n` bytes, as pieces of the received chunks (no copy). */
  #take(n: number): Buffer[] {
    const out: Buffer[] = []
    let left = n
    while (left > 0) {
      const c = this.#chunks[0] as Buffer
      const avail = c.length - this.#offset
      if (avail > left) {
        out.push(c.subarray(this.#offset, this.#offset + left))
        this.#offset += left
        left = 0
      } else {
        out.push(this.#offset === 0 ? c : c.subarray(this.#offset))
        this.#chunks.shift()
        this.#offset = 0
        left -= avail
      }
    }
    this.#length -= n
    return out
  }

  #record(type: number, flags: number, seq: number, pieces: Buffer[], len: number): void {
    // The usual record, a whole message with none being reassembled: no key to build.
    if ((flags & FLAG_MORE) === 0 && this.#parts.size === 0) {
      this.#onMessage(type, seq, this.#concat(pieces, len))
      return
    }
    const key = `${type}:${seq}`
    const part = this.#parts.get(key)
    if ((flags & FLAG_MORE) !== 0) {
      const p = part ?? { pieces: [], length: 0 }
      for (const x of pieces) p.pieces.push(x)
      p.length += len
      if (p.length > MUX_MESSAGE_MAX) throw new NetError('protocol', `RPC message over ${MUX_MESSAGE_MAX} bytes`)
      if (part === undefined) this.#parts.set(key, p)
      return
    }
    if (part === undefined) {
      this.#onMessage(type, seq, this.#concat(pieces, len))
      return
    }
    this.#parts.delete(key)
    for (const x of pieces) part.pieces.push(x)
    this.#onMessage(type, seq, this.#concat(part.pieces, part.length + len))
  }
}

/** The pieces as one buffer (copied only if there are several). */
function concat(pieces: Buffer[], length: number): Buffer {
  return pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces, length)
}

/** Messages up to this size are reassembled in {@link scratch}; larger ones in a buffer of their own. */
const SCRATCH_MAX = WHOLE_MESSAGE_MAX + 64 * 1024
/**
 * The buffer transient readers reassemble messages in, shared by all of them: a message is
 * opened synchronously in its reader's callback, before any other record is read.
 */
let scratch: Buffer | undefined

/** {@link concat} into {@link scratch}: the result is valid until the next call. */
function concatTransient(pieces: Buffer[], length: number): Buffer {
  if (pieces.length === 1) return pieces[0] as Buffer
  if (length > SCRATCH_MAX) return Buffer.concat(pieces, length)
  // Grown in steps of 256 KiB up to the largest message seen (at most SCRATCH_MAX).
  if (scratch === undefined || scratch.length < length) scratch = Buffer.allocUnsafe(Math.ceil(length / 262_144) * 262_144)
  let o = 0
  for (const p of pieces) o += p.copy(scratch, o)
  return scratch.subarray(0, length)
}

/** What a mux connection's opener must know of its session. */
export interface MuxClientOptions {
  addr: TcpAddr
  /** The session's id in hex (the upgrade names it). */
  sessionHex: string
  /** The message number the upgrade request uses (the server's unknown-session proof covers it). */
  upgradeSeq: number
  /** Whether a 401 body proves the server does not know our session (then re-handshake). */
  provesUnknown: (proof: Buffer, seq: number) => boolean
  /** Said of the peer in errors. */
  peerName: string
  nodeId: string
  /** Called once when the connection is gone (so its owner stops handing it out). */
  onClose: (mux: MuxClient) => void
  /**
   * Most calls waiting for their answer at once; more wait here, unsent, in order (the bound
   * an HTTP pool of as many connections gave: it keeps a busy peer from taking on every call at
   * once, and the caller's memory of them).
   */
  maxInFlight: number
}

/** The session is unknown to the server, proven: the caller handshakes again and re-sends. */
export const kUnknownSession: unique symbol = Symbol('unknown session')

/**
 * Thrown for a call that was still queued unsent (behind the in-flight bound) when its connection
 * was retired, or closed by the peer (GOAWAY, FIN, reset): nothing of it reached the server, so
 * the caller sends it again on a new connection.
 * @internal
 */
export const kNotSent: unique symbol = Symbol('not sent')

interface PendingCall {
  resolve: (payload: Buffer) => void
  reject: (err: unknown) => void
}

/** A call not sent yet (the connection has `maxInFlight` calls waiting for their answer). */
interface Waiting {
  sent: boolean
  cancelled: boolean
  send: () => void
  fail?: (err: unknown) => void
}

/**
 * The calling side of one mux connection. Calls may be sent as soon as it is built: they are
 * queued behind the upgrade request and go out with it.
 */
export class MuxClient {
  readonly #o: MuxClientOptions
  readonly #socket: Socket
  readonly #writer: RecordWriter
  readonly #pending = new Map<number, PendingCall>()
  readonly #waiting: Waiting[] = []
  #upgraded = false
  #head: Buffer | undefined
  readonly #reader: RecordReader
  /** Why it closed, once closed. */
  #closed: unknown
  #retired = false
  #lastReceived = 0

  constructor(o: MuxClientOptions) {
    this.#o = o
    const { host, port } = o.addr
    // `net.connect` looked up at call time, as undici does: a test's link proxies (and other
    // instrumentation) wrap the CommonJS function, which a named ESM import would not see.
    const socket = net.connect({ host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: KEEPALIVE_MS })
    this.#socket = socket
    socket.setTimeout(CONNECT_TIMEOUT_MS, () =>
      this.#fail(new NetError('connection', `cannot reach ${o.peerName}: connection timed out`, { nodeId: o.nodeId })),
    )
    socket.once('connect', () => socket.setTimeout(0))
    this.#writer = new RecordWriter(socket)
    this.#reader = new RecordReader((type, seq, payload) => this.#onRecord(type, seq, payload))
    socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    socket.on('error', (err) =>
      this.#closedByPeer(
        new NetError('connection', `cannot reach ${o.peerName}: ${err.message}`, { cause: err, nodeId: o.nodeId }),
      ),
    )
    // The server ending its side (it closes, or restarts) closes the connection for calls at once.
    const closed = (): void =>
      this.#closedByPeer(new NetError('connection', `connection to ${o.peerName} closed`, { nodeId: o.nodeId }))
    socket.on('end', closed)
    socket.on('close', closed)
    socket.write(
      `POST ${MUX_ROUTE} HTTP/1.1\r\nHost: ${host.includes(':') ? `[${host}]` : host}:${port}\r\n` +
        `Connection: Upgrade\r\nUpgrade: ${MUX_PROTOCOL}\r\nx-garage-session: ${o.sessionHex}\r\n` +
        `x-garage-seq: ${o.upgradeSeq}\r\nContent-Length: 0\r\n\r\n`,
    )
  }

  /** Closed, or retired: no new call may be sent on it. */
  get closed(): boolean {
    return this.#closed !== undefined || this.#retired
  }

  /**
   * A call's deadline passed with nothing at all received since it was sent: the connection
   * may be dead (a peer gone without a FIN, a black-holed link). New calls go to a new
   * connection; the calls still waiting here keep their own deadlines (failing them all now
   * would cut their time short), and the connection closes once none is left.
   */
  #retire(): void {
    if (this.#retired || this.#closed !== undefined) return
    this.#retired = true
    // No call is sent on a retired connection: those still queued go back to their callers, to be
    // sent on a new one (before, they waited there for their own deadline: up to rpc_timeout_msec).
    this.#returnWaiting(kNotSent)
    this.#o.onClose(this)
    this.#closeIfRetiredAndIdle()
  }

  #closeIfRetiredAndIdle(): void {
    if (this.#retired && this.#pending.size === 0)
      this.close(new NetError('connection', `connection to ${this.#o.peerName} went silent`, { nodeId: this.#o.nodeId }))
  }

  /**
   * Sends the sealed message `sealed` as call `seq`; resolves with the sealed answer. `signal`
   * aborts the call (a CANCEL goes to the server); a deadline passed with nothing heard on the
   * connection since the call was sent retires the connection, which may be dead. `onSent` is
   * called when the call is written (at once, or once it leaves the in-flight bound's queue).
   */
  call(seq: number, sealed: SealedMessage, signal: AbortSignal, onSent?: () => void): Promise<Buffer> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed)
    if (this.#retired) return Promise.reject(new NetError('connection', `connection to ${this.#o.peerName} went silent`))
    // Aborted already (by the caller, between two awaits): its 'abort' event will not come again,
    // and the call would wait for an answer that a black hole never sends.
    if (signal.aborted) return Promise.reject(signal.reason)
    return new Promise<Buffer>((resolve, reject) => {
      const entry: Waiting = {
        sent: false,
        cancelled: false,
        send: () => {
          entry.sent = true
          sentAt = performance.now()
          this.#pending.set(seq, pending)
          this.#writer.send(RECORD.CALL, seq, sealed)
          onSent?.()
        },
      }
      let sentAt = 0
      const onAbort = (): void => {
        const reason: unknown = signal.reason
        if (!entry.sent) {
          // Still queued here: nothing was sent.
          entry.cancelled = true
          reject(reason)
          this.#closeIfRetiredAndIdle()
          return
        }
        if (!this.#pending.delete(seq)) return
        reject(reason)
        if (reason instanceof TimeoutError && this.#lastReceived < sentAt) this.#retire()
        else {
          this.#writer.drop(RECORD.CALL, seq)
          this.#writer.send(RECORD.CANCEL, seq, EMPTY)
        }
        this.#sendWaiting()
        this.#closeIfRetiredAndIdle()
      }
      signal.addEventListener('abort', onAbort, { once: true })
      const pending: PendingCall = {
        resolve: (payload) => {
          signal.removeEventListener('abort', onAbort)
          resolve(payload)
        },
        reject: (err) => {
          signal.removeEventListener('abort', onAbort)
          reject(err)
        },
      }
      entry.fail = pending.reject
      if (this.#pending.size < this.#o.maxInFlight && this.#waiting.length === 0) entry.send()
      else this.#waiting.push(entry)
    })
  }

  /** Sends queued calls while fewer than `maxInFlight` wait for their answer. */
  #sendWaiting(): void {
    if (this.#retired || this.#closed !== undefined) return
    while (this.#pending.size < this.#o.maxInFlight && this.#waiting.length > 0) {
      const next = this.#waiting.shift() as Waiting
      if (!next.cancelled) next.send()
    }
  }

  /** Closes the connection, failing the calls in flight with `reason`. */
  close(reason: unknown): void {
    this.#fail(reason)
    this.#socket.destroy()
  }

  /**
   * The peer closed the connection (GOAWAY, FIN, reset). The calls written to it fail with
   * `reason`: they may have run there. Those still queued unsent behind the in-flight bound go
   * back to their callers ({@link kNotSent}), to be sent on a new connection, if this one was up:
   * a peer that never accepted it (refused, gone before the upgrade's answer) would not take a new
   * one either, so they fail too.
   */
  #closedByPeer(reason: NetError): void {
    this.#fail(reason, this.#upgraded ? kNotSent : reason)
  }

  /** Marks the connection closed, failing calls in flight with `reason` and those queued with `unsent`. */
  #fail(reason: unknown, unsent: unknown = reason): void {
    if (this.#closed !== undefined) return
    this.#closed = reason
    this.#socket.destroy()
    const pending = [...this.#pending.values()]
    this.#pending.clear()
    for (const p of pending) p.reject(reason)
    this.#returnWaiting(unsent)
    if (!this.#retired) this.#o.onClose(this)
  }

  /**
   * Fails the calls still queued unsent with `reason`. With {@link kNotSent}, client.ts sends each
   * again on a new connection (at most 3 times, unless its signal was aborted meanwhile).
   */
  #returnWaiting(reason: unknown): void {
    for (const w of this.#waiting.splice(0)) if (!w.cancelled) w.fail?.(reason)
  }

  #onData(chunk: Buffer): void {
    this.#lastReceived = performance.now()
    try {
      if (this.#upgraded) this.#reader.push(chunk)
      else this.#onUpgradeData(chunk)
    } catch (err) {
      this.close(err)
    }
  }

  /** Reads the answer to the upgrade: 101 (records follow), or a refusal with its body. */
  #onUpgradeData(chunk: Buffer): void {
    const buf = this.#head === undefined ? chunk : Buffer.concat([this.#head, chunk])
    const end = buf.indexOf('\r\n\r\n')
    if (end < 0) {
      if (buf.length > UPGRADE_HEAD_MAX) throw new NetError('protocol', `${this.#o.peerName} sent an oversized answer`)
      this.#head = buf
      return
    }
    const head = buf.toString('latin1', 0, end)
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? Number.NaN)
    if (status === 101) {
      this.#upgraded = true
      this.#head = undefined
      if (buf.length > end + 4) this.#reader.push(buf.subarray(end + 4))
      return
    }
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0)
    if (length > UPGRADE_HEAD_MAX) throw new NetError('protocol', `${this.#o.peerName} sent an oversized answer`)
    if (buf.length < end + 4 + length) {
      this.#head = buf
      return
    }
    const body = buf.subarray(end + 4, end + 4 + length)
    if (status === 401) {
      if (this.#o.provesUnknown(body, this.#o.upgradeSeq)) throw kUnknownSession
      throw new NetError('protocol', `${this.#o.peerName} sent an unauthenticated unknown-session answer`, {
        nodeId: this.#o.nodeId,
      })
    }
    throw new NetError(
      'protocol',
      `${this.#o.peerName} refused the connection (HTTP ${status}: ${body.toString('utf8', 0, 200)})`,
      { nodeId: this.#o.nodeId },
    )
  }

  #onRecord(type: number, seq: number, payload: Buffer): void {
    if (type === RECORD.GOAWAY) {
      this.#closedByPeer(new NetError('connection', `${this.#o.peerName} is closing`, { nodeId: this.#o.nodeId }))
      return
    }
    const p = this.#pending.get(seq)
    if (p === undefined) return // cancelled or timed out meanwhile
    if (type === RECORD.REPLY) {
      this.#pending.delete(seq)
      p.resolve(payload)
    } else if (type === RECORD.REFUSE) {
      this.#pending.delete(seq)
      const r = parseRefusal(payload)
      p.reject(
        new NetError('protocol', `${this.#o.peerName} refused the call (${r.status}: ${r.text})`, { nodeId: this.#o.nodeId }),
      )
    } else throw new NetError('protocol', `${this.#o.peerName} sent an RPC record of unknown type ${type}`)
    this.#sendWaiting()
    this.#closeIfRetiredAndIdle()
  }
}

const EMPTY = Buffer.alloc(0)
