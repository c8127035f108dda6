/**
 * The answering side of the transport: the registry of local handlers, the `node:http` server
 * that routes handshake messages (to handshake.ts) and sealed calls, and the dispatch of a call
 * to its handler with its response sealed back, streams included. Calls to oneself go through
 * the same registry without the network. Port of garage_net::server and the handler half of
 * garage_net::endpoint.
 *
 * @internal
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { type Duplex, Readable } from 'node:stream'
import { decodeMsgpack, encodeMsgpack } from '../util/codec.ts'
import type { TcpAddr } from '../util/config.ts'
import type { Logger } from '../util/logger.ts'
import { SESSION_ID_LEN } from './crypto.ts'
import { type HandlerContext, isWithStream, type RpcBody, type StreamingResponse } from './endpoint.ts'
import { NetError, RemoteError } from './errors.ts'
import {
  type FrameContext,
  MessageReader,
  openWholeMessage,
  sealMessage,
  sealWholeMessage,
  WHOLE_MESSAGE_MAX,
  wholeStream,
} from './frame.ts'
import type { HandshakeServer, HttpReply } from './handshake.ts'
import {
  type AnyHandler,
  HEADER_SEQ,
  HEADER_SESSION,
  type RequestHead,
  type ResponseHead,
  RPC_ROUTE,
  toRemoteError,
} from './message.ts'
import { MUX_MESSAGE_MAX, MUX_PROTOCOL, MUX_ROUTE, RECORD, RecordReader, RecordWriter, refusalPayload } from './mux.ts'
import type { Peers } from './peering.ts'
import type { ServerSession } from './handshake.ts'
import { linkSignals, readLimited, shortId } from './util.ts'

/** How long a refused upgrade's connection stays open for the client to read the answer and close it. */
const REFUSED_UPGRADE_CLOSE_MS = 10_000

/** How long close() waits for mux clients to close their connections after GOAWAY. */
const GOAWAY_WAIT_MS = 1000

/** Largest handshake message accepted. */
const MAX_HANDSHAKE_BODY = 1024

function reply(res: ServerResponse, r: HttpReply): void {
  res.writeHead(r.status, { 'content-type': typeof r.body === 'string' ? 'text/plain' : 'application/octet-stream' })
  res.end(r.body)
}

/** Resolves when `res` can take more data, closes, or `signal` aborts. */
function drained(res: ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done)
      res.off('close', done)
      signal.removeEventListener('abort', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
    signal.addEventListener('abort', done, { once: true })
  })
}

/** Reads a request body of `length` bytes (its content-length) into one buffer. */
function readBody(req: IncomingMessage, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let n = 0
    const cleanup = (): void => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onGone)
      req.off('close', onGone)
    }
    const onData = (c: Buffer): void => {
      chunks.push(c)
      n += c.length
    }
    const onEnd = (): void => {
      cleanup()
      if (n !== length) reject(new NetError('protocol', `message of ${n} bytes, ${length} announced`))
      else resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, n))
    }
    const onGone = (): void => {
      cleanup()
      reject(new NetError('connection', 'the caller went away while sending its message'))
    }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onGone)
    req.on('close', onGone)
  })
}

/** The session and message number a call or an upgrade names in its headers, if well-formed. */
function sessionHeaders(req: IncomingMessage): { sidHex: string; seq: number } | undefined {
  const sidHex = req.headers[HEADER_SESSION]
  const seq = Number(req.headers[HEADER_SEQ])
  if (
    typeof sidHex !== 'string' ||
    sidHex.length !== SESSION_ID_LEN * 2 ||
    !/^[0-9a-f]+$/.test(sidHex) ||
    !Number.isSafeInteger(seq) ||
    seq < 0
  )
    return undefined
  return { sidHex, seq }
}

/**
 * A raw HTTP answer on a socket taken over by an upgrade. The client closes the connection once
 * it has read it (or after {@link REFUSED_UPGRADE_CLOSE_MS}, we do): closing first would race the
 * answer on some paths (a proxy that drops what it still holds when the other side closes), and
 * a client that never reads the 401 would never handshake again. What the client sent after its
 * request (calls it did not wait to send) is read and dropped.
 */
function refuseUpgrade(socket: Socket, r: HttpReply): void {
  const body = typeof r.body === 'string' ? Buffer.from(r.body) : r.body
  const text = r.status === 401 ? 'Unauthorized' : r.status === 404 ? 'Not Found' : 'Bad Request'
  socket.resume()
  socket.once('end', () => socket.destroy())
  socket.setTimeout(REFUSED_UPGRADE_CLOSE_MS, () => socket.destroy())
  socket.write(
    Buffer.concat([
      Buffer.from(`HTTP/1.1 ${r.status} ${text}\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n`),
      body,
    ]),
  )
}

/**
 * What a served call's handler may learn of its caller going away: the handler's signal is built
 * only if the handler reads it (table handlers do not), since an AbortController and its
 * listeners cost ≈ 10 µs per call on Node 20. Going away aborts it directly.
 */
class CallState {
  readonly #closing: AbortSignal
  #gone: NetError | undefined
  #linked: ReturnType<typeof linkSignals> | undefined

  constructor(closing: AbortSignal) {
    this.#closing = closing
  }

  get signal(): AbortSignal {
    if (this.#linked === undefined) {
      this.#linked = linkSignals([this.#closing])
      if (this.#gone !== undefined) this.#linked.abort(this.#gone)
    }
    return this.#linked.signal
  }

  /** The caller went away or cancelled. */
  cancel(why: NetError): void {
    if (this.#gone !== undefined) return
    this.#gone = why
    this.#linked?.abort(why)
  }

  get aborted(): boolean {
    return this.#gone !== undefined || this.#closing.aborted
  }

  dispose(): void {
    this.#linked?.dispose()
  }
}

/** The local handlers, one per endpoint path, and calls to them from this node. @internal */
export class Handlers {
  /** Our node id: the caller of a local call, and the node named in its errors. */
  readonly #self: string
  readonly #byPath = new Map<string, AnyHandler>()

  constructor(self: string) {
    this.#self = self
  }

  /** Registers the handler of `path`; throws if one is already registered. */
  register(path: string, handler: AnyHandler): void {
    if (this.#byPath.has(path)) throw new RangeError(`a handler for ${path} is already registered`)
    this.#byPath.set(path, handler)
  }

  get(path: string): AnyHandler | undefined {
    return this.#byPath.get(path)
  }

  /**
   * Runs the handler of `path` for ourselves. Messages go through msgpack both ways, as over
   * the wire, so a handler sees the same values whoever calls it.
   */
  async callLocal(
    path: string,
    msg: unknown,
    body: RpcBody | undefined,
    signal: AbortSignal,
  ): Promise<StreamingResponse<unknown>> {
    const handler = this.#byPath.get(path)
    if (handler === undefined) throw new RemoteError(this.#self, 'NoHandler', `no handler for ${path}`)
    const req = decodeMsgpack(encodeMsgpack(msg))
    const stream =
      body === undefined ? undefined : Readable.from(body instanceof Uint8Array ? [body] : body, { objectMode: false })
    let out: unknown
    try {
      out = await handler(req, this.#self, { signal, stream })
    } catch (err) {
      throw toRemoteError(this.#self, err)
    } finally {
      stream?.resume()
    }
    if (isWithStream(out)) {
      const s = out.stream
      return {
        res: decodeMsgpack(encodeMsgpack(out.res)),
        stream: Readable.from(s instanceof Uint8Array ? [s] : s, { objectMode: false }),
      }
    }
    return { res: decodeMsgpack(encodeMsgpack(out)), stream: undefined }
  }
}

/** @internal */
export interface RpcServerOptions {
  /** Our node id. */
  self: string
  handlers: Handlers
  handshakes: HandshakeServer
  peers: Peers
  /** Aborted by close(): aborts running handlers. */
  closing: AbortSignal
  log: Logger
}

/** The HTTP server answering handshakes and calls. @internal */
export class RpcServer {
  readonly #self: string
  readonly #handlers: Handlers
  readonly #handshakes: HandshakeServer
  readonly #peers: Peers
  readonly #closing: AbortSignal
  readonly #log: Logger
  readonly #server: Server
  /** Sockets taken over as mux connections (node:http no longer tracks them), and their writers. */
  readonly #muxSockets = new Map<Socket, RecordWriter>()
  /** The bind in progress or done, if listen() was called. */
  #binding: Promise<void> | undefined

  constructor(options: RpcServerOptions) {
    this.#self = options.self
    this.#handlers = options.handlers
    this.#handshakes = options.handshakes
    this.#peers = options.peers
    this.#closing = options.closing
    this.#log = options.log
    // Idle sockets live longer on the server than in the client pools, so a client never
    // reuses a socket the server is closing.
    this.#server = createServer({ keepAliveTimeout: 60_000, headersTimeout: 30_000, requestTimeout: 0 }, (req, res) =>
      this.#onRequest(req, res),
    )
    // Bytes that are not HTTP (a port scanner, a misdirected client, garbage): answered 400 and
    // closed, logged once per address. Without this listener node:http answers silently.
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.#onClientError(err, socket))
    this.#server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.#onUpgrade(req, socket, head))
  }

  /**
   * Binds `bind`; resolves once listening. If the transport closes while binding, the server
   * is closed again and this rejects with a `closed` {@link NetError}.
   */
  async listen(bind: TcpAddr): Promise<void> {
    const bound = new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(bind.port, bind.host, () => {
        this.#server.off('error', reject)
        resolve()
      })
    })
    this.#binding = bound
    await bound
    if (this.#closing.aborted) throw new NetError('closed', 'the RPC transport closed while it was binding')
    this.#server.on('error', (err) => this.#log.error('RPC server error', err))
  }

  /** The bound address, once listening. */
  address(): TcpAddr | undefined {
    const a = this.#server.address() as AddressInfo | null
    return a === null ? undefined : { host: a.address, port: a.port }
  }

  /**
   * Stops listening and closes every connection (running handlers see `closing` abort). Also
   * waits for a bind in progress, so a server bound after close() began does not outlive it.
   */
  async close(): Promise<void> {
    const closeServer = (): Promise<void> => new Promise((resolve) => this.#server.close(() => resolve()))
    const closed = this.#server.listening ? closeServer() : undefined
    this.#server.closeAllConnections()
    await this.#closeMuxes()
    await closed
    await this.#binding?.catch(() => {})
    if (this.#server.listening) await closeServer()
  }

  /**
   * Tells each mux client we are closing (GOAWAY) and waits, at most {@link GOAWAY_WAIT_MS}, for
   * it to close the connection: a client then sends no call to a closing connection, even one
   * made the moment we are gone (a restart).
   */
  async #closeMuxes(): Promise<void> {
    const sockets = [...this.#muxSockets]
    this.#muxSockets.clear()
    await Promise.all(
      sockets.map(([socket, writer]) => {
        if (socket.destroyed) return undefined
        const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
        writer.send(RECORD.GOAWAY, 0, Buffer.alloc(0))
        const timer = setTimeout(() => socket.destroy(), GOAWAY_WAIT_MS)
        return closed.finally(() => clearTimeout(timer))
      }),
    )
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    // No Date header: nothing reads it, and undici's parser calls back into JavaScript for each
    // header of every answer (≈ 4 % of a node's CPU under small writes, docs/design/performance.md).
    res.sendDate = false
    // The socket is taken now: `req.socket` is null once the connection is destroyed (a client
    // gone, a body refused midway), and a failure handler reading it would throw out of the
    // process. Its address is read only when used (a getpeername system call per read).
    const socket = req.socket
    const route =
      req.method !== 'POST'
        ? undefined
        : req.url === RPC_ROUTE.CALL
          ? this.#serveCall(req, res)
          : req.url === RPC_ROUTE.HELLO
            ? this.#serveHandshake(req, res, socket.remoteAddress, (body, remote) => this.#handshakes.hello(body, remote))
            : req.url === RPC_ROUTE.FINISH
              ? this.#serveHandshake(req, res, socket.remoteAddress, (body, remote) => this.#handshakes.finish(body, remote))
              : undefined
    if (route === undefined) {
      reply(res, { status: 404, body: 'not found' })
      return
    }
    route.catch((err: unknown) => {
      // The exchange is lost (the client went away or sent garbage); the client sees the
      // closed connection or the status, and nothing was changed on our side.
      this.#log.debug(`RPC request ${req.url} from ${socket.remoteAddress ?? 'unknown'} failed`, err)
      if (!res.headersSent) reply(res, { status: 400, body: err instanceof NetError ? err.message : 'bad request' })
      else res.destroy()
    })
  }

  async #serveHandshake(
    req: IncomingMessage,
    res: ServerResponse,
    from: string | undefined,
    answer: (body: Buffer, remote: string | undefined) => HttpReply,
  ): Promise<void> {
    const body = await readLimited(req, MAX_HANDSHAKE_BODY)
    reply(res, answer(body, from))
  }

  #onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    // A peer hanging up mid-request is routine (the caller gave up): nothing to answer or log.
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy()
      return
    }
    const from = (socket as Duplex & { remoteAddress?: string }).remoteAddress ?? 'unknown'
    if (this.#handshakes.firstTime(`malformed ${from}`)) {
      this.#log.warn(`refused malformed RPC traffic from ${from}: ${err.code ?? err.message} (logged once per address)`)
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request'
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
  }

  async #serveCall(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const named = sessionHeaders(req)
    if (named === undefined) return reply(res, { status: 400, body: 'missing session headers' })
    const { sidHex, seq } = named
    const found = this.#handshakes.session(sidHex, seq)
    if ('refusal' in found) return reply(res, found.refusal)
    const { session } = found

    const inbound: FrameContext = { key: session.keys.c2s, sessionId: session.keys.id, seq }
    const remoteError = (n: string, m: string): Error => new RemoteError(session.clientId, n, m)
    // A message sent whole (with a content-length, see client.ts) is read and opened in one
    // piece, every frame checked before the handler runs; a streamed one frame by frame.
    const length = Number(req.headers['content-length'] ?? Number.NaN)
    const whole = Number.isSafeInteger(length) && length <= WHOLE_MESSAGE_MAX ? await readBody(req, length) : undefined
    let head: RequestHead
    let reader: MessageReader | undefined
    let reqStream: Readable | undefined
    let body: Buffer[] | undefined
    try {
      if (whole !== undefined) {
        const m = openWholeMessage(inbound, whole, remoteError)
        head = m.head as RequestHead
        if (m.data !== undefined) reqStream = Readable.from(wholeStream(m), { objectMode: false })
        if (m.error === undefined) body = m.data
      } else {
        reader = new MessageReader(inbound, req.iterator({ destroyOnReturn: false }) as AsyncIterable<Uint8Array>, remoteError)
        head = (await reader.head()) as RequestHead
      }
    } catch (err) {
      this.#log.warn(`dropped an RPC call from node ${shortId(session.clientId)}: ${(err as Error).message}`)
      return reply(res, { status: 400, body: 'message failed authentication' })
    }
    if (!this.#accept(session, seq)) return reply(res, { status: 409, body: 'replayed message' })

    const out: FrameContext = { key: session.keys.s2c, sessionId: session.keys.id, seq }
    if (reader !== undefined && head.s === true) reqStream = Readable.from(reader.stream(), { objectMode: false })
    const state = new CallState(this.#closing)
    res.on('close', () => {
      if (!res.writableFinished) state.cancel(new NetError('connection', 'the caller went away'))
    })
    const { answer, stream } = await this.#run(head, session, reqStream, body, state, async () => {
      if (reader !== undefined && head.s !== true) await reader.end()
    })
    // An unread request stream is discarded, so the connection can carry the next call; unless
    // the handler sends it back as its response stream, which is then read as it is sent.
    const discard = (): void => {
      reqStream?.destroy()
      if (!req.readableEnded) req.resume()
    }
    if (stream !== reqStream) discard()
    try {
      if (state.aborted) return void res.destroy()
      const headBytes = encodeMsgpack(answer)
      // An answer in memory goes whole, with a content-length: one write (headers included).
      const sealed = stream === undefined || stream instanceof Uint8Array ? sealWholeMessage(out, headBytes, stream) : undefined
      if (sealed !== undefined) {
        // No content-type (nothing reads it): one header line less to write and to parse.
        res.writeHead(200, { 'content-length': sealed.length })
        res.end(sealed)
        return
      }
      res.writeHead(200)
      for await (const frame of sealMessage(out, headBytes, stream)) {
        if (state.aborted) return void res.destroy()
        if (!res.write(frame)) await drained(res, state.signal)
      }
      res.end()
    } finally {
      discard()
      state.dispose()
    }
  }

  /** Accepts message `seq` of `session` once (replays are refused and logged). */
  #accept(session: ServerSession, seq: number): boolean {
    if (!session.window.accept(seq)) {
      this.#log.warn(`refused a replayed RPC call (seq ${seq}) claiming to come from node ${shortId(session.clientId)}`)
      return false
    }
    this.#peers.getOrCreate(session.clientId).seen()
    return true
  }

  /** Runs the handler a call names; its failure becomes the answer. */
  async #run(
    head: RequestHead,
    session: ServerSession,
    reqStream: Readable | undefined,
    body: Buffer[] | undefined,
    state: CallState,
    before?: () => Promise<void>,
  ): Promise<{ answer: ResponseHead; stream: RpcBody | undefined }> {
    const ctx: HandlerContext = {
      get signal(): AbortSignal {
        return state.signal
      },
      stream: reqStream,
      ...(body === undefined ? {} : { body }),
    }
    const handler = typeof head.p === 'string' ? this.#handlers.get(head.p) : undefined
    try {
      await before?.()
      if (handler === undefined) throw new RemoteError(this.#self, 'NoHandler', `no handler for ${String(head.p)}`)
      const r = await handler(head.m, session.clientId, ctx)
      if (isWithStream(r)) return { answer: { ok: true, m: r.res, s: true }, stream: r.stream }
      return { answer: { ok: true, m: r, s: false }, stream: undefined }
    } catch (err) {
      const e = err instanceof RemoteError && err.nodeId === this.#self ? err : toRemoteError(this.#self, err)
      return { answer: { ok: false, n: e.remoteName, e: e.message, c: e.remoteCode }, stream: undefined }
    }
  }

  /** A client opening a mux connection (mux.ts) for one of its sessions. */
  #onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => {}) // a reset: 'close' follows, which is handled
    if (req.method !== 'POST' || req.url !== MUX_ROUTE || req.headers.upgrade?.toLowerCase() !== MUX_PROTOCOL) {
      refuseUpgrade(socket, { status: 404, body: 'not found' })
      return
    }
    const named = sessionHeaders(req)
    const found = named === undefined ? undefined : this.#handshakes.session(named.sidHex, named.seq)
    if (found === undefined || 'refusal' in found) {
      refuseUpgrade(socket, found?.refusal ?? { status: 400, body: 'missing session headers' })
      return
    }
    if (this.#closing.aborted) {
      socket.destroy()
      return
    }
    const { session } = found
    socket.setTimeout(0)
    socket.setNoDelay(true)
    socket.setKeepAlive(true, 15_000)
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${MUX_PROTOCOL}\r\n\r\n`)
    const writer = new RecordWriter(socket)
    this.#muxSockets.set(socket, writer)
    const calls = new Map<number, CallState>()
    const reader = new RecordReader(
      (type, seq, payload) => {
        if (type === RECORD.CALL) this.#muxCall(session, seq, payload, writer, calls)
        else if (type === RECORD.CANCEL) {
          calls.get(seq)?.cancel(new NetError('connection', 'the caller cancelled the call'))
          writer.drop(RECORD.REPLY, seq)
        } else throw new NetError('protocol', `RPC record of unknown type ${type}`)
        // A call is opened (and its payload no longer used) before #muxCall returns.
      },
      { transient: true },
    )
    const push = (chunk: Buffer): void => {
      try {
        reader.push(chunk)
      } catch (err) {
        this.#log.warn(`closed an RPC connection from node ${shortId(session.clientId)}: ${(err as Error).message}`)
        socket.destroy()
      }
    }
    socket.on('data', push)
    // node:http's sockets allow half-open connections: the client ending its side ends ours.
    socket.on('end', () => socket.destroy())
    socket.on('close', () => {
      this.#muxSockets.delete(socket)
      const gone = new NetError('connection', 'the caller went away')
      for (const c of calls.values()) c.cancel(gone)
      calls.clear()
    })
    if (head.length > 0) push(head)
  }

  /** One call received on a mux connection: opened, run, answered whole. */
  #muxCall(session: ServerSession, seq: number, payload: Buffer, writer: RecordWriter, calls: Map<number, CallState>): void {
    const inbound: FrameContext = { key: session.keys.c2s, sessionId: session.keys.id, seq }
    let head: RequestHead
    let reqStream: Readable | undefined
    let body: Buffer[] | undefined
    try {
      const m = openWholeMessage(inbound, payload, (n, e) => new RemoteError(session.clientId, n, e))
      head = m.head as RequestHead
      if (m.data !== undefined) reqStream = Readable.from(wholeStream(m), { objectMode: false })
      if (m.error === undefined) body = m.data
    } catch (err) {
      this.#log.warn(`dropped an RPC call from node ${shortId(session.clientId)}: ${(err as Error).message}`)
      writer.send(RECORD.REFUSE, seq, refusalPayload(400, 'message failed authentication'))
      return
    }
    if (!this.#accept(session, seq)) {
      writer.send(RECORD.REFUSE, seq, refusalPayload(409, 'replayed message'))
      return
    }
    const state = new CallState(this.#closing)
    calls.set(seq, state)
    void this.#run(head, session, reqStream, body, state).then(({ answer, stream }) => {
      calls.delete(seq)
      state.dispose()
      reqStream?.destroy()
      // The caller reads no response stream over a mux connection (client.ts): it is not sent.
      if (stream !== undefined && !(stream instanceof Uint8Array) && stream !== reqStream) {
        const s = stream as Partial<Readable>
        if (typeof s.destroy === 'function') s.destroy()
      }
      if (state.aborted) return
      const out: FrameContext = { key: session.keys.s2c, sessionId: session.keys.id, seq }
      const failed = (e: string): Buffer =>
        sealWholeMessage(out, encodeMsgpack({ ok: false, n: 'NetError', e } satisfies ResponseHead), undefined) as Buffer
      let sealed: Buffer | undefined
      try {
        const headBytes = encodeMsgpack(answer.ok ? { ok: true, m: answer.m, s: false } : answer)
        sealed =
          sealWholeMessage(out, headBytes, undefined, MUX_MESSAGE_MAX) ??
          failed(`answer of ${headBytes.length} bytes is too large`)
      } catch (err) {
        // An answer msgpack cannot encode: the caller gets the error, as from the handler.
        sealed = failed(`cannot send the answer: ${(err as Error).message}`)
      }
      writer.send(RECORD.REPLY, seq, sealed)
    })
  }
}
