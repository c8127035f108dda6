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
import type { AddressInfo } from 'node:net'
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
import type { Peers } from './peering.ts'
import { linkSignals, readLimited, shortId } from './util.ts'

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
    await closed
    await this.#binding?.catch(() => {})
    if (this.#server.listening) await closeServer()
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
    const sidHex = req.headers[HEADER_SESSION]
    const seq = Number(req.headers[HEADER_SEQ])
    if (
      typeof sidHex !== 'string' ||
      !/^[0-9a-f]+$/.test(sidHex) ||
      sidHex.length !== SESSION_ID_LEN * 2 ||
      !Number.isSafeInteger(seq) ||
      seq < 0
    ) {
      return reply(res, { status: 400, body: 'missing session headers' })
    }
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
    try {
      if (whole !== undefined) {
        const m = openWholeMessage(inbound, whole, remoteError)
        head = m.head as RequestHead
        if (m.data !== undefined) reqStream = Readable.from(wholeStream(m), { objectMode: false })
      } else {
        reader = new MessageReader(inbound, req.iterator({ destroyOnReturn: false }) as AsyncIterable<Uint8Array>, remoteError)
        head = (await reader.head()) as RequestHead
      }
    } catch (err) {
      this.#log.warn(`dropped an RPC call from node ${shortId(session.clientId)}: ${(err as Error).message}`)
      return reply(res, { status: 400, body: 'message failed authentication' })
    }
    if (!session.window.accept(seq)) {
      this.#log.warn(`refused a replayed RPC call (seq ${seq}) claiming to come from node ${shortId(session.clientId)}`)
      return reply(res, { status: 409, body: 'replayed message' })
    }
    this.#peers.getOrCreate(session.clientId).seen()

    const out: FrameContext = { key: session.keys.s2c, sessionId: session.keys.id, seq }
    if (reader !== undefined && head.s === true) reqStream = Readable.from(reader.stream(), { objectMode: false })
    // The handler's signal is built only if the handler reads it (table handlers do not): an
    // AbortController and its listeners cost ≈ 10 µs per call on Node 20. A caller that goes
    // away aborts it directly.
    const closing = this.#closing
    let gone: NetError | undefined
    let linked: ReturnType<typeof linkSignals> | undefined
    res.on('close', () => {
      if (res.writableFinished) return
      gone = new NetError('connection', 'the caller went away')
      linked?.abort(gone)
    })
    const ctx: HandlerContext = {
      get signal(): AbortSignal {
        if (linked === undefined) {
          linked = linkSignals([closing])
          if (gone !== undefined) linked.abort(gone)
        }
        return linked.signal
      },
      stream: reqStream,
    }
    const aborted = (): boolean => gone !== undefined || closing.aborted

    let answer: ResponseHead
    let stream: RpcBody | undefined
    const handler = typeof head.p === 'string' ? this.#handlers.get(head.p) : undefined
    try {
      if (reader !== undefined && head.s !== true) await reader.end()
      if (handler === undefined) throw new RemoteError(this.#self, 'NoHandler', `no handler for ${String(head.p)}`)
      const r = await handler(head.m, session.clientId, ctx)
      if (isWithStream(r)) {
        answer = { ok: true, m: r.res, s: true }
        stream = r.stream
      } else answer = { ok: true, m: r, s: false }
    } catch (err) {
      const e = err instanceof RemoteError && err.nodeId === this.#self ? err : toRemoteError(this.#self, err)
      answer = { ok: false, n: e.remoteName, e: e.message, c: e.remoteCode }
    }
    // An unread request stream is discarded, so the connection can carry the next call; unless
    // the handler sends it back as its response stream, which is then read as it is sent.
    const discard = (): void => {
      reqStream?.destroy()
      if (!req.readableEnded) req.resume()
    }
    if (stream !== reqStream) discard()
    try {
      if (aborted()) return void res.destroy()
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
        if (aborted()) return void res.destroy()
        if (!res.write(frame)) await drained(res, ctx.signal)
      }
      res.end()
    } finally {
      discard()
      linked?.dispose()
    }
  }
}
