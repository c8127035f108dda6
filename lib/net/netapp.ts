/**
 * The node-to-node RPC transport: an HTTP server that answers sealed calls, and per-priority
 * keep-alive pools (undici) that make them. Every exchange runs inside a session established
 * by an authenticated handshake (crypto.ts); see docs/design/rpc.md for the protocol.
 * Port of garage_net::netapp, client.rs, server.rs and endpoint.rs, over HTTP instead of a
 * multiplexed TCP stream.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { performance } from 'node:perf_hooks'
import { Readable } from 'node:stream'
import { Agent } from 'undici'
import { decodeMsgpack, encodeMsgpack } from '../util/codec.ts'
import type { TcpAddr } from '../util/config.ts'
import { TimeoutError } from '../util/errors.ts'
import { type Logger, silentLogger } from '../util/logger.ts'
import {
  clientFinish,
  clientHello,
  confirmation,
  macEqual,
  parseClientFinishId,
  parseClientHello,
  ReplayWindow,
  type ServerPending,
  type SessionKeys,
  SESSION_ID_LEN,
  serverHello,
  unknownSessionProof,
  verifyClientFinish,
} from './crypto.ts'
import {
  type CallOptions,
  defineEndpoint,
  type HandlerContext,
  isWithStream,
  RPC_PRIORITIES,
  type RpcBody,
  type RpcEndpoint,
  type RpcHandler,
  type RpcPriority,
  type StreamingCallOptions,
  type StreamingResponse,
} from './endpoint.ts'
import { HandshakeError, NetError, RemoteError } from './errors.ts'
import { type FrameContext, MessageReader, sealMessage } from './frame.ts'
import type { NodeKey } from './node-key.ts'

/** The built-in endpoint measuring round-trip time. */
export const PING_ENDPOINT: RpcEndpoint<{ t: number }, { t: number }> = defineEndpoint('net/ping')

/** Default deadline of a call (Garage's `rpc_timeout_msec`). */
export const DEFAULT_RPC_TIMEOUT_MS = 300_000
/** Default deadline of a ping (Garage's `rpc_ping_timeout_msec`). */
export const DEFAULT_PING_TIMEOUT_MS = 10_000

const HANDSHAKE_TTL_MS = 10_000
const MAX_PENDING_HANDSHAKES = 1024
const PING_SAMPLES = 10
const HEADER_SESSION = 'x-garage-session'
const HEADER_SEQ = 'x-garage-seq'

export interface NetAppOptions {
  /** The node's identity (lib/net/node-key.ts). */
  nodeKey: NodeKey
  /** The cluster's shared secret: 32 bytes, or 64 hex characters. */
  rpcSecret: Uint8Array | string
  /** Where `listen()` binds (`rpc_bind_addr`). */
  bindAddr?: TcpAddr
  /** Our address as other nodes should reach us (`rpc_public_addr`), sent in handshakes. */
  publicAddr?: TcpAddr
  logger?: Logger
  /** Aborting it closes the transport. */
  signal?: AbortSignal
  /** Deadline of calls without their own `timeoutMs`. Default 300 s. */
  timeoutMs?: number
  /** Deadline of pings. Default 10 s. */
  pingTimeoutMs?: number
  /** Most connections to one peer, per priority. Defaults: high 4, normal 32, background 8. */
  connections?: Partial<Record<RpcPriority, number>>
  /** Most sessions the server keeps (least recently used are dropped). Default 4096. */
  maxSessions?: number
}

/** What the transport knows about one peer. */
export interface PeerInfo {
  id: string
  /** Where we call it; for a peer that only called us, the address it advertised. */
  addr: TcpAddr | undefined
  /** We hold an established session to it. */
  connected: boolean
  /** Last time (ms since epoch) it answered us or called us. */
  lastSeen: number | undefined
  /** Mean of the last 10 ping round trips, in ms. */
  avgPingMs: number | undefined
  /** Pings failed since the last successful one. */
  failedPings: number
  /** Handshakes we completed with it (a restart of the peer shows as one more). */
  handshakes: number
}

interface ClientSession {
  keys: SessionKeys
  nextSeq: number
}

interface ServerSession {
  keys: SessionKeys
  clientId: string
  window: ReplayWindow
}

interface PeerState {
  id: string
  addr: TcpAddr | undefined
  origin: string | undefined
  session: ClientSession | undefined
  handshaking: Promise<ClientSession> | undefined
  lastSeen: number | undefined
  pings: number[]
  failedPings: number
  handshakes: number
}

interface RequestHead {
  p: string
  m: unknown
  s: boolean
}

interface ResponseHead {
  ok: boolean
  m?: unknown
  s?: boolean
  n?: string
  e?: string
  c?: string
}

type AnyHandler = (req: unknown, from: string, ctx: HandlerContext) => unknown

/** The session was unknown to the server, proven with the shared secret: re-handshake. */
const kUnknownSession: unique symbol = Symbol('unknown session')

const shortId = (id: string): string => id.slice(0, 16)

/** Parses `<64-hex node id>@<host>:<port>`. */
export function parsePeerAddr(value: string): { nodeId: string; addr: TcpAddr } {
  const at = value.indexOf('@')
  const id = value.slice(0, at)
  if (at < 0 || !/^[0-9a-f]{64}$/i.test(id)) throw new NetError('not-connected', `expected <node id>@<host>:<port>, got ${value}`)
  return { nodeId: id.toLowerCase(), addr: parseHostPort(value.slice(at + 1)) }
}

function parseHostPort(value: string): TcpAddr {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value)
  const port = Number(m?.[3])
  if (m === null || port < 1 || port > 65535) throw new NetError('not-connected', `invalid address ${value}`)
  return { host: (m[1] ?? m[2]) as string, port }
}

const formatAddr = (a: TcpAddr): string => (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`)

function parseSecret(secret: Uint8Array | string): Buffer {
  const b =
    typeof secret === 'string'
      ? /^[0-9a-f]{64}$/i.test(secret)
        ? Buffer.from(secret, 'hex')
        : Buffer.alloc(0)
      : Buffer.from(secret)
  if (b.length !== 32) throw new RangeError('rpcSecret must be 32 bytes (64 hex characters)')
  return b
}

async function readLimited(source: AsyncIterable<Uint8Array>, max: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let n = 0
  for await (const c of source) {
    n += c.length
    if (n > max) throw new NetError('protocol', `message larger than ${max} bytes`)
    chunks.push(Buffer.from(c))
  }
  return Buffer.concat(chunks, n)
}

/**
 * A signal aborted by any of `signals`, with listeners removed by `dispose()`. Used instead of
 * `AbortSignal.any`, which retains every derived signal as long as a long-lived source (our
 * close signal) lives on some Node versions (nodejs/node#55351).
 */
function linkSignals(signals: readonly AbortSignal[]): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController()
  const already = signals.find((s) => s.aborted)
  if (already !== undefined) {
    ac.abort(already.reason)
    return { signal: ac.signal, dispose: () => {} }
  }
  const listeners = signals.map((s) => {
    const onAbort = (): void => ac.abort(s.reason)
    s.addEventListener('abort', onAbort, { once: true })
    return () => s.removeEventListener('abort', onAbort)
  })
  return {
    signal: ac.signal,
    dispose: () => {
      for (const off of listeners) off()
    },
  }
}

function reply(res: ServerResponse, status: number, body: string | Buffer): void {
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/octet-stream' })
  res.end(body)
}

/** Maps a failure of the HTTP client to our errors; ours pass through. */
function connectionError(err: unknown, peer: PeerState): Error {
  if (err instanceof NetError || err instanceof RemoteError || err instanceof TimeoutError) return err
  const where = peer.addr === undefined ? '' : ` at ${formatAddr(peer.addr)}`
  const msg = err instanceof Error ? err.message : String(err)
  return new NetError('connection', `cannot reach node ${shortId(peer.id)}${where}: ${msg}`, { cause: err, nodeId: peer.id })
}

/**
 * One node's RPC transport. Build it, register handlers, `listen()`, then `connect()` to peers
 * and `call()` them. No global state: several instances can live in one process.
 *
 * @example
 * ```ts
 * const ECHO = defineEndpoint<{ text: string }, { text: string }>('test/echo')
 * const net = createNetApp({ nodeKey, rpcSecret, bindAddr: { host: '127.0.0.1', port: 3901 } })
 * net.handle(ECHO, (req) => req)
 * await net.listen()
 * await net.connect(peerId, { host: '10.0.0.2', port: 3901 })
 * const res = await net.call(peerId, ECHO, { text: 'hi' }, { priority: 'normal', timeoutMs: 5000 })
 * ```
 */
export class NetApp implements AsyncDisposable {
  /** Our node id (hex public key). */
  readonly id: string
  readonly #key: NodeKey
  readonly #secret: Buffer
  readonly #log: Logger
  readonly #bindAddr: TcpAddr | undefined
  readonly #publicAddr: string | undefined
  readonly #timeoutMs: number
  readonly #pingTimeoutMs: number
  readonly #maxSessions: number
  readonly #handlers = new Map<string, AnyHandler>()
  readonly #peers = new Map<string, PeerState>()
  readonly #sessions = new Map<string, ServerSession>()
  readonly #pending = new Map<string, ServerPending & { expires: number; addr: string | undefined }>()
  readonly #refusedLogged = new Set<string>()
  readonly #agents: Record<RpcPriority, Agent>
  readonly #closing = new AbortController()
  readonly #server: Server
  readonly #externalSignal: AbortSignal | undefined
  readonly #onExternalAbort = (): void => void this.close()
  #listening = false
  #closed: Promise<void> | undefined

  constructor(options: NetAppOptions) {
    this.#key = options.nodeKey
    this.id = options.nodeKey.id
    this.#secret = parseSecret(options.rpcSecret)
    this.#log = (options.logger ?? silentLogger).withTag('net')
    this.#bindAddr = options.bindAddr
    this.#publicAddr = options.publicAddr === undefined ? undefined : formatAddr(options.publicAddr)
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_RPC_TIMEOUT_MS
    this.#pingTimeoutMs = options.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS
    this.#maxSessions = options.maxSessions ?? 4096
    const conns = { high: 4, normal: 32, background: 8, ...options.connections }
    const agent = (connections: number): Agent =>
      new Agent({
        connections,
        pipelining: 1,
        keepAliveTimeout: 30_000,
        keepAliveMaxTimeout: 120_000,
        headersTimeout: 0,
        bodyTimeout: 0,
        connect: { timeout: 10_000 },
      })
    this.#agents = { high: agent(conns.high), normal: agent(conns.normal), background: agent(conns.background) }
    // Idle sockets live longer on the server than in the client pools, so a client never
    // reuses a socket the server is closing.
    this.#server = createServer({ keepAliveTimeout: 60_000, headersTimeout: 30_000, requestTimeout: 0 }, (req, res) =>
      this.#onRequest(req, res),
    )
    this.#handlers.set(PING_ENDPOINT.path, (req) => req)
    this.#externalSignal = options.signal
    if (options.signal?.aborted === true) void this.close()
    else options.signal?.addEventListener('abort', this.#onExternalAbort, { once: true })
  }

  /** Starts the server on `bindAddr`; resolves with the bound address (useful with port 0). */
  async listen(): Promise<TcpAddr> {
    if (this.#bindAddr === undefined) throw new NetError('closed', 'no bindAddr given')
    if (this.#closed !== undefined) throw new NetError('closed', 'the RPC transport is closed')
    const bind = this.#bindAddr
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(bind.port, bind.host, () => {
        this.#server.off('error', reject)
        resolve()
      })
    })
    this.#listening = true
    this.#server.on('error', (err) => this.#log.error('RPC server error', err))
    return this.address() as TcpAddr
  }

  /** The bound address, once listening. */
  address(): TcpAddr | undefined {
    const a = this.#server.address() as AddressInfo | null
    return a === null ? undefined : { host: a.address, port: a.port }
  }

  /** Registers the local handler of an endpoint (one per path). */
  handle<Req, Res>(endpoint: RpcEndpoint<Req, Res>, handler: RpcHandler<Req, Res>): void {
    if (this.#handlers.has(endpoint.path)) throw new RangeError(`a handler for ${endpoint.path} is already registered`)
    this.#handlers.set(endpoint.path, handler as AnyHandler)
  }

  /**
   * Records where `nodeId` listens and completes a handshake with it. Resolves once a session
   * is established; rejects with {@link HandshakeError} if the peer is not `nodeId` or does not
   * share our secret, or {@link NetError} if it is unreachable.
   */
  async connect(
    nodeId: string,
    addr: TcpAddr | string,
    options: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<void> {
    const a = typeof addr === 'string' ? parseHostPort(addr) : addr
    const peer = this.#peer(nodeId.toLowerCase())
    if (peer.addr === undefined || formatAddr(peer.addr) !== formatAddr(a)) {
      peer.addr = a
      peer.origin = `http://${formatAddr(a)}`
      peer.session = undefined
    }
    await this.#withDeadline(options, `handshake with ${shortId(nodeId)}`, (signal) => this.#session(peer, signal))
  }

  /** Calls `endpoint` on `nodeId` (ourselves included) and returns its response. */
  async call<Req, Res>(nodeId: string, endpoint: RpcEndpoint<Req, Res>, req: Req, options: CallOptions = {}): Promise<Res> {
    const { res, stream } = await this.callStreaming(nodeId, endpoint, req, options)
    stream?.destroy()
    return res
  }

  /**
   * Like {@link call}, with a byte stream attached to the request (`options.stream`) and the
   * response's stream returned. The deadline covers the response message; the returned stream
   * is cancelled by `options.signal`. A request stream given as an async iterable cannot be
   * re-sent, so such a call fails instead of being retried after the peer restarted.
   */
  async callStreaming<Req, Res>(
    nodeId: string,
    endpoint: RpcEndpoint<Req, Res>,
    req: Req,
    options: StreamingCallOptions = {},
  ): Promise<StreamingResponse<Res>> {
    if (this.#closed !== undefined) throw new NetError('closed', 'the RPC transport is closed')
    const id = nodeId.toLowerCase()
    const what = `call ${endpoint.path} on ${shortId(id)}`
    return this.#withDeadline(options, what, async (signal) => {
      if (id === this.id) return (await this.#callLocal(endpoint.path, req, options.stream, signal)) as StreamingResponse<Res>
      const peer = this.#peers.get(id)
      if (peer?.origin === undefined)
        throw new NetError('not-connected', `no address known for node ${shortId(id)}`, { nodeId: id })
      const replayable = options.stream === undefined || options.stream instanceof Uint8Array
      for (let attempt = 0; ; attempt++) {
        const session = await this.#session(peer, signal)
        try {
          const r = await this.#callOnce(peer, session, endpoint.path, req, options.stream, options.priority ?? 'normal', signal)
          peer.lastSeen = Date.now()
          return r as StreamingResponse<Res>
        } catch (err) {
          if (err !== kUnknownSession) throw err
          if (peer.session === session) peer.session = undefined
          this.#log.debug(`node ${shortId(id)} lost our session (restarted?); handshaking again`)
          if (attempt > 0 || !replayable) {
            throw new NetError('connection', `node ${shortId(id)} lost our session and the request stream cannot be re-sent`, {
              nodeId: id,
            })
          }
        }
      }
    })
  }

  /** Measures the round-trip time to `nodeId` on the high-priority pool, in ms. */
  async ping(nodeId: string, options: { signal?: AbortSignal } = {}): Promise<number> {
    const peer = this.#peer(nodeId.toLowerCase())
    const t0 = performance.now()
    try {
      await this.call(nodeId, PING_ENDPOINT, { t: Date.now() }, { priority: 'high', timeoutMs: this.#pingTimeoutMs, ...options })
    } catch (err) {
      peer.failedPings++
      throw err
    }
    const rtt = performance.now() - t0
    peer.failedPings = 0
    peer.pings.push(rtt)
    if (peer.pings.length > PING_SAMPLES) peer.pings.shift()
    return rtt
  }

  /** Every peer we know: those we connected to and those that connected to us. */
  peers(): PeerInfo[] {
    return [...this.#peers.values()].map((p) => ({
      id: p.id,
      addr: p.addr,
      connected: p.session !== undefined,
      lastSeen: p.lastSeen,
      avgPingMs: p.pings.length === 0 ? undefined : p.pings.reduce((a, b) => a + b, 0) / p.pings.length,
      failedPings: p.failedPings,
      handshakes: p.handshakes,
    }))
  }

  /** Stops the server, aborts running handlers and in-flight calls, and closes every pool. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#externalSignal?.removeEventListener('abort', this.#onExternalAbort)
      this.#closing.abort(new NetError('closed', 'the RPC transport is closed'))
      const serverClosed = this.#listening
        ? new Promise<void>((resolve) => this.#server.close(() => resolve()))
        : Promise.resolve()
      this.#server.closeAllConnections()
      await Promise.all([serverClosed, ...RPC_PRIORITIES.map((p) => this.#agents[p].destroy())])
      this.#sessions.clear()
      this.#pending.clear()
    })()
    return this.#closed
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  // ---- client side ----------------------------------------------------------------------------

  #peer(id: string): PeerState {
    let p = this.#peers.get(id)
    if (p === undefined) {
      if (!/^[0-9a-f]{64}$/.test(id)) throw new NetError('not-connected', `invalid node id ${id}`)
      p = {
        id,
        addr: undefined,
        origin: undefined,
        session: undefined,
        handshaking: undefined,
        lastSeen: undefined,
        pings: [],
        failedPings: 0,
        handshakes: 0,
      }
      this.#peers.set(id, p)
    }
    return p
  }

  /** Runs `fn` with a signal that aborts on the caller's signal, the deadline, or close(). */
  async #withDeadline<T>(options: CallOptions, what: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs
    const deadline = new AbortController()
    const timer = setTimeout(() => deadline.abort(new TimeoutError(`${what} timed out after ${timeoutMs} ms`)), timeoutMs)
    const signals = [deadline.signal, this.#closing.signal]
    if (options.signal !== undefined) signals.push(options.signal)
    const { signal, dispose } = linkSignals(signals)
    let held = false
    try {
      signal.throwIfAborted()
      const result = await fn(signal)
      // A returned stream stays cancellable by the caller's signal (and close()) until it ends.
      const stream = (result as { stream?: unknown } | undefined)?.stream
      if (stream instanceof Readable) {
        held = true
        stream.once('close', dispose)
      }
      return result
    } catch (err) {
      if (signal.aborted) throw signal.reason
      throw err
    } finally {
      clearTimeout(timer)
      if (!held) dispose()
    }
  }

  #session(peer: PeerState, signal: AbortSignal): Promise<ClientSession> {
    if (peer.session !== undefined) return Promise.resolve(peer.session)
    if (peer.handshaking === undefined) {
      // The handshake is shared by concurrent callers, so it runs under close() only, bounded
      // by its own deadline, not under the first caller's signal.
      const own = linkSignals([this.#closing.signal, AbortSignal.timeout(this.#pingTimeoutMs)])
      peer.handshaking = this.#handshake(peer, own.signal).finally(() => {
        own.dispose()
        peer.handshaking = undefined
      })
    }
    const hs = peer.handshaking
    return new Promise<ClientSession>((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason)
      signal.addEventListener('abort', onAbort, { once: true })
      hs.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
    })
  }

  async #handshake(peer: PeerState, signal: AbortSignal): Promise<ClientSession> {
    const fail = (why: string, cause?: unknown): HandshakeError =>
      new HandshakeError(`handshake with node ${shortId(peer.id)} failed: ${why}`, { cause, nodeId: peer.id })
    const hs = clientHello(this.#secret, this.#key, Buffer.from(peer.id, 'hex'), this.#publicAddr)
    const r1 = await this.#post(peer, '/rpc/hs1', hs.hello, signal)
    if (r1.status === 403) throw fail('refused (is rpc_secret the same on both nodes?)')
    if (r1.status !== 200) throw fail(`HTTP ${r1.status}: ${r1.body.toString('utf8', 0, 200)}`)
    const fin = clientFinish(this.#secret, this.#key, hs, r1.body)
    if (typeof fin === 'string') throw fail(fin)
    const r2 = await this.#post(peer, '/rpc/hs2', fin.body, signal)
    if (r2.status !== 200) throw fail(`HTTP ${r2.status}: ${r2.body.toString('utf8', 0, 200)}`)
    if (!macEqual(r2.body, confirmation(fin.keys))) throw fail('bad key confirmation')
    const session: ClientSession = { keys: fin.keys, nextSeq: 0 }
    peer.session = session
    peer.handshakes++
    peer.lastSeen = Date.now()
    this.#log.debug(`session established with node ${shortId(peer.id)}`)
    return session
  }

  async #post(peer: PeerState, path: string, body: Buffer, signal: AbortSignal): Promise<{ status: number; body: Buffer }> {
    try {
      const r = await this.#agents.high.request({ origin: peer.origin as string, path, method: 'POST', body, signal })
      return { status: r.statusCode, body: await readLimited(r.body, 4096) }
    } catch (err) {
      if (signal.aborted) throw signal.reason
      throw connectionError(err, peer)
    }
  }

  async #callOnce(
    peer: PeerState,
    session: ClientSession,
    path: string,
    msg: unknown,
    body: RpcBody | undefined,
    priority: RpcPriority,
    signal: AbortSignal,
  ): Promise<StreamingResponse<unknown>> {
    const seq = session.nextSeq++
    const sid = session.keys.id
    const out: FrameContext = { key: session.keys.c2s, sessionId: sid, seq }
    const head = encodeMsgpack({ p: path, m: msg, s: body !== undefined } satisfies RequestHead)
    let r: Awaited<ReturnType<Agent['request']>>
    try {
      r = await this.#agents[priority].request({
        origin: peer.origin as string,
        path: '/rpc/call',
        method: 'POST',
        headers: { [HEADER_SESSION]: sid.toString('hex'), [HEADER_SEQ]: String(seq), 'content-type': 'application/octet-stream' },
        body: Readable.from(sealMessage(out, head, body), { objectMode: false }),
        signal,
      })
    } catch (err) {
      if (signal.aborted) throw signal.reason
      throw connectionError(err, peer)
    }
    try {
      if (r.statusCode === 401) {
        const proof = await readLimited(r.body, 64)
        if (macEqual(proof, unknownSessionProof(this.#secret, sid, seq))) throw kUnknownSession
        throw new NetError('protocol', `node ${shortId(peer.id)} sent an unauthenticated unknown-session answer`, {
          nodeId: peer.id,
        })
      }
      if (r.statusCode !== 200) {
        const text = (await readLimited(r.body, 4096)).toString('utf8', 0, 200)
        throw new NetError('protocol', `node ${shortId(peer.id)} refused the call (HTTP ${r.statusCode}: ${text})`, {
          nodeId: peer.id,
        })
      }
      const inbound: FrameContext = { key: session.keys.s2c, sessionId: sid, seq }
      const reader = new MessageReader(inbound, r.body, (n, m) => new RemoteError(peer.id, n, m))
      const h = (await reader.head()) as ResponseHead
      if (!h.ok) {
        await reader.cancel()
        throw new RemoteError(peer.id, String(h.n), String(h.e), h.c)
      }
      if (h.s !== true) {
        await reader.end()
        return { res: h.m, stream: undefined }
      }
      return { res: h.m, stream: Readable.from(reader.stream(), { objectMode: false }) }
    } catch (err) {
      if (!r.body.destroyed) r.body.destroy()
      if (err === kUnknownSession) throw err
      if (signal.aborted) throw signal.reason
      throw connectionError(err, peer)
    }
  }

  async #callLocal(
    path: string,
    msg: unknown,
    body: RpcBody | undefined,
    signal: AbortSignal,
  ): Promise<StreamingResponse<unknown>> {
    const handler = this.#handlers.get(path)
    if (handler === undefined) throw new RemoteError(this.id, 'NoHandler', `no handler for ${path}`)
    // Same encoding as over the wire, so a handler sees the same values whoever calls it.
    const req = decodeMsgpack(encodeMsgpack(msg))
    const stream =
      body === undefined ? undefined : Readable.from(body instanceof Uint8Array ? [body] : body, { objectMode: false })
    let out: unknown
    try {
      out = await handler(req, this.id, { signal, stream })
    } catch (err) {
      throw toRemoteError(this.id, err)
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

  // ---- server side ----------------------------------------------------------------------------

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const route =
      req.method !== 'POST'
        ? undefined
        : req.url === '/rpc/call'
          ? this.#serveCall(req, res)
          : req.url === '/rpc/hs1'
            ? this.#serveHello(req, res)
            : req.url === '/rpc/hs2'
              ? this.#serveFinish(req, res)
              : undefined
    if (route === undefined) {
      reply(res, 404, 'not found')
      return
    }
    route.catch((err: unknown) => {
      // The exchange is lost (the client went away or sent garbage); the client sees the
      // closed connection or the status, and nothing was changed on our side.
      this.#log.debug(`RPC request ${req.url} from ${req.socket.remoteAddress} failed`, err)
      if (!res.headersSent) reply(res, 400, err instanceof NetError ? err.message : 'bad request')
      else res.destroy()
    })
  }

  #refused(req: IncomingMessage, why: string): void {
    const from = req.socket.remoteAddress ?? 'unknown'
    if (this.#refusedLogged.has(from)) return
    if (this.#refusedLogged.size >= 10_000) this.#refusedLogged.clear()
    this.#refusedLogged.add(from)
    this.#log.warn(`refused an RPC handshake from ${from}: ${why} (logged once per address)`)
  }

  async #serveHello(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readLimited(req, 1024)
    const hello = parseClientHello(this.#secret, body)
    if (hello === 'bad-mac') {
      this.#refused(req, 'it does not hold our rpc_secret')
      return reply(res, 403, 'handshake refused')
    }
    if (hello === 'bad-version') return reply(res, 400, 'unsupported RPC protocol version')
    if (!hello.serverId.equals(this.#key.publicKey)) return reply(res, 421, `this is node ${this.id}`)
    const { body: answer, pending } = serverHello(this.#secret, this.#key, hello)
    const now = Date.now()
    for (const [k, v] of this.#pending)
      if (v.expires < now || this.#pending.size >= MAX_PENDING_HANDSHAKES) this.#pending.delete(k)
    this.#pending.set(pending.keys.id.toString('hex'), { ...pending, expires: now + HANDSHAKE_TTL_MS, addr: hello.addr })
    reply(res, 200, answer)
  }

  async #serveFinish(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readLimited(req, 1024)
    const id = parseClientFinishId(body)?.toString('hex')
    const pending = id === undefined ? undefined : this.#pending.get(id)
    if (id === undefined || pending === undefined || pending.expires < Date.now()) return reply(res, 403, 'unknown handshake')
    this.#pending.delete(id)
    const ok = verifyClientFinish(this.#secret, pending, body)
    if (typeof ok === 'string') {
      this.#refused(req, `its handshake did not verify (${ok})`)
      return reply(res, 403, 'handshake refused')
    }
    const clientId = pending.clientId.toString('hex')
    if (this.#sessions.size >= this.#maxSessions) {
      const oldest = this.#sessions.keys().next()
      if (oldest.done !== true) this.#sessions.delete(oldest.value)
    }
    this.#sessions.set(id, { keys: pending.keys, clientId, window: new ReplayWindow() })
    const peer = this.#peer(clientId)
    peer.lastSeen = Date.now()
    const advertised = pending.addr
    if (peer.addr === undefined && advertised !== undefined) {
      try {
        peer.addr = parseHostPort(advertised)
        peer.origin = `http://${formatAddr(peer.addr)}`
      } catch (err) {
        // The address is signed by the peer, so a bad one is its misconfiguration: we just
        // cannot call it back until someone connect()s it explicitly.
        this.#log.debug(`node ${shortId(clientId)} advertised an unusable address ${advertised}`, err)
      }
    }
    reply(res, 200, ok)
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
      return reply(res, 400, 'missing session headers')
    }
    const session = this.#sessions.get(sidHex)
    if (session === undefined) {
      // The proof lets the client tell a real restart from a forged answer; none is given for a
      // handshake still in progress, so nobody can collect proofs for a session about to exist.
      if (this.#pending.has(sidHex)) return reply(res, 400, 'session not established')
      return reply(res, 401, unknownSessionProof(this.#secret, Buffer.from(sidHex, 'hex'), seq))
    }
    // Least recently used sessions are evicted first: move this one to the end.
    this.#sessions.delete(sidHex)
    this.#sessions.set(sidHex, session)

    const inbound: FrameContext = { key: session.keys.c2s, sessionId: session.keys.id, seq }
    const reader = new MessageReader(
      inbound,
      req.iterator({ destroyOnReturn: false }) as AsyncIterable<Uint8Array>,
      (n, m) => new RemoteError(session.clientId, n, m),
    )
    let head: RequestHead
    try {
      head = (await reader.head()) as RequestHead
    } catch (err) {
      this.#log.warn(`dropped an RPC call from node ${shortId(session.clientId)}: ${(err as Error).message}`)
      return reply(res, 400, 'message failed authentication')
    }
    if (!session.window.accept(seq)) {
      this.#log.warn(`refused a replayed RPC call (seq ${seq}) claiming to come from node ${shortId(session.clientId)}`)
      return reply(res, 409, 'replayed message')
    }
    const peer = this.#peer(session.clientId)
    peer.lastSeen = Date.now()

    const out: FrameContext = { key: session.keys.s2c, sessionId: session.keys.id, seq }
    const aborted = new AbortController()
    res.on('close', () => {
      if (!res.writableFinished) aborted.abort(new NetError('connection', 'the caller went away'))
    })
    const linked = linkSignals([aborted.signal, this.#closing.signal])
    const signal = linked.signal

    let answer: ResponseHead
    let stream: RpcBody | undefined
    const handler = typeof head.p === 'string' ? this.#handlers.get(head.p) : undefined
    const reqStream = head.s === true ? Readable.from(reader.stream(), { objectMode: false }) : undefined
    try {
      if (head.s !== true) await reader.end()
      if (handler === undefined) throw new RemoteError(this.id, 'NoHandler', `no handler for ${String(head.p)}`)
      const r = await handler(head.m, session.clientId, { signal, stream: reqStream })
      if (isWithStream(r)) {
        answer = { ok: true, m: r.res, s: true }
        stream = r.stream
      } else answer = { ok: true, m: r, s: false }
    } catch (err) {
      const e = err instanceof RemoteError && err.nodeId === this.id ? err : toRemoteError(this.id, err)
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
      if (signal.aborted) return void res.destroy()
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      for await (const frame of sealMessage(out, encodeMsgpack(answer), stream)) {
        if (signal.aborted) return void res.destroy()
        if (!res.write(frame)) await drained(res, signal)
      }
      res.end()
    } finally {
      discard()
      linked.dispose()
    }
  }
}

function toRemoteError(self: string, err: unknown): RemoteError {
  const e = err instanceof Error ? err : new Error(String(err))
  const code = (e as { code?: unknown }).code
  return new RemoteError(self, e.name, e.message, typeof code === 'string' ? code : undefined)
}

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

/** Builds a transport; call `listen()` to serve. */
export function createNetApp(options: NetAppOptions): NetApp {
  return new NetApp(options)
}
