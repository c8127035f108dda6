/**
 * The node-to-node RPC transport, as one object: it composes the pieces below and owns the
 * options, deadlines and lifecycle. See docs/design/rpc.md for the protocol. Port of
 * garage_net::netapp, over HTTP instead of a multiplexed TCP stream.
 *
 * - client.ts: per-priority pools, sessions to peers, sending calls (garage_net::client)
 * - server.ts: the HTTP server, the handler registry, answering calls (garage_net::server)
 * - handshake.ts: the handshake over HTTP and the server's sessions (crypto.ts has the math)
 * - peering.ts: known peers, their addresses, sessions and ping statistics
 * - frame.ts, message.ts: sealed framing and the plaintext message shapes
 */
import { channel } from 'node:diagnostics_channel'
import { setMaxListeners } from 'node:events'
import { performance } from 'node:perf_hooks'
import { Readable } from 'node:stream'
import type { TcpAddr } from '../util/config.ts'
import { TimeoutError } from '../util/errors.ts'
import { type Logger, silentLogger } from '../util/logger.ts'
import { RpcClient } from './client.ts'
import {
  type CallOptions,
  defineEndpoint,
  type RpcEndpoint,
  type RpcHandler,
  type RpcPriority,
  type StreamingCallOptions,
  type StreamingResponse,
} from './endpoint.ts'
import { ClusterClock } from './clock.ts'
import { NetError } from './errors.ts'
import { HandshakeServer } from './handshake.ts'
import type { AnyHandler } from './message.ts'
import type { NodeKey } from './node-key.ts'
import { type PeerInfo, Peers } from './peering.ts'
import { Handlers, RpcServer } from './server.ts'
import { formatAddr, linkSignals, parseHostPort, parseSecret, shortId } from './util.ts'

export type { PeerInfo } from './peering.ts'
export { parsePeerAddr } from './util.ts'

/** The built-in endpoint measuring round-trip time. */
/**
 * Pings. The answer echoes `t` and, since the cluster clock (clock.ts), carries the answering
 * node's cluster time in `now` (absent in answers of older nodes).
 */
export const PING_ENDPOINT: RpcEndpoint<{ t: number }, { t: number; now?: number }> = defineEndpoint('net/ping')

/**
 * What `garage:net:call` publishes once a call has answered or failed (for a stream, once its
 * response message arrived). Times are ms since the epoch with sub-ms precision
 * (`performance.timeOrigin + performance.now()`), comparable across processes of one machine.
 * Nothing is measured or built while the channel has no subscriber. Used by the geo bench
 * (bench/geo.ts) to list the round trips of each S3 request.
 * @internal
 */
export interface NetCallEvent {
  from: string
  to: string
  path: string
  /** The request message itself (not a copy): lets a subscriber tell a table read from a write. */
  req: unknown
  startMs: number
  endMs: number
  ok: boolean
}

const callChannel = channel('garage:net:call')
const nowMs = (): number => performance.timeOrigin + performance.now()

/** Default deadline of a call (Garage's `rpc_timeout_msec`). */
export const DEFAULT_RPC_TIMEOUT_MS = 300_000
/** Default deadline of a ping (Garage's `rpc_ping_timeout_msec`). */
export const DEFAULT_PING_TIMEOUT_MS = 10_000

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
  /** The cluster's clock, fed by ping answers (version timestamps use it). */
  readonly clock: ClusterClock
  readonly #bindAddr: TcpAddr | undefined
  readonly #timeoutMs: number
  readonly #pingTimeoutMs: number
  readonly #peers = new Peers()
  readonly #handlers: Handlers
  readonly #handshakes: HandshakeServer
  readonly #client: RpcClient
  readonly #server: RpcServer
  readonly #closing = new AbortController()
  /** Aborts each call in flight (and each returned stream still open); close() calls them all. */
  readonly #inFlight = new Set<(reason: unknown) => void>()
  readonly #externalSignal: AbortSignal | undefined
  readonly #onExternalAbort = (): void => void this.close()
  #closed: Promise<void> | undefined

  constructor(options: NetAppOptions) {
    this.id = options.nodeKey.id
    const log = (options.logger ?? silentLogger).withTag('net')
    const me = {
      secret: parseSecret(options.rpcSecret),
      key: options.nodeKey,
      publicAddr: options.publicAddr === undefined ? undefined : formatAddr(options.publicAddr),
    }
    this.#bindAddr = options.bindAddr
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_RPC_TIMEOUT_MS
    this.#pingTimeoutMs = options.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS
    const closing = this.#closing.signal
    // Handshakes and served calls whose handler reads its signal listen on it until they end
    // (linkSignals): hundreds at once are normal, not a leak, so Node's warning past 10
    // listeners would be noise. (Sent calls are reached through #inFlight instead.)
    setMaxListeners(0, closing)
    this.#handlers = new Handlers(this.id)
    this.#handshakes = new HandshakeServer(me, this.#peers, log, options.maxSessions ?? 4096)
    this.#client = new RpcClient({
      me,
      connections: { high: 4, normal: 32, background: 8, ...options.connections },
      handshakeTimeoutMs: this.#pingTimeoutMs,
      closing,
      log,
    })
    this.#server = new RpcServer({
      self: this.id,
      handlers: this.#handlers,
      handshakes: this.#handshakes,
      peers: this.#peers,
      closing,
      log,
    })
    this.clock = new ClusterClock(log.withTag('clock'))
    this.#handlers.register(PING_ENDPOINT.path, (req) => ({ t: (req as { t: number }).t, now: this.clock.now() }))
    this.#externalSignal = options.signal
    if (options.signal?.aborted === true) void this.close()
    else options.signal?.addEventListener('abort', this.#onExternalAbort, { once: true })
  }

  /** Starts the server on `bindAddr`; resolves with the bound address (useful with port 0). */
  async listen(): Promise<TcpAddr> {
    if (this.#bindAddr === undefined) throw new NetError('closed', 'no bindAddr given')
    if (this.#closed !== undefined) throw new NetError('closed', 'the RPC transport is closed')
    await this.#server.listen(this.#bindAddr)
    return this.address() as TcpAddr
  }

  /** The bound address, once listening. */
  address(): TcpAddr | undefined {
    return this.#server.address()
  }

  /** Registers the local handler of an endpoint (one per path). */
  handle<Req, Res>(endpoint: RpcEndpoint<Req, Res>, handler: RpcHandler<Req, Res>): void {
    this.#handlers.register(endpoint.path, handler as AnyHandler)
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
    const peer = this.#peers.getOrCreate(nodeId.toLowerCase())
    peer.setAddr(a)
    await this.#withDeadline(options, `handshake with ${shortId(nodeId)}`, (signal) => this.#client.session(peer, signal))
  }

  /**
   * Calls `endpoint` on `nodeId` (ourselves included) and returns its response. A byte stream
   * may be attached to the request (`options.stream`); one attached to the response is not
   * transferred (use {@link callStreaming} to read it).
   */
  async call<Req, Res>(
    nodeId: string,
    endpoint: RpcEndpoint<Req, Res>,
    req: Req,
    options: StreamingCallOptions = {},
  ): Promise<Res> {
    const { res, stream } = await this.#call(nodeId, endpoint, req, options, false)
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
    return this.#call(nodeId, endpoint, req, options, true)
  }

  async #call<Req, Res>(
    nodeId: string,
    endpoint: RpcEndpoint<Req, Res>,
    req: Req,
    options: StreamingCallOptions,
    wantsStream: boolean,
  ): Promise<StreamingResponse<Res>> {
    if (this.#closed !== undefined) throw new NetError('closed', 'the RPC transport is closed')
    const id = nodeId.toLowerCase()
    const what = `call ${endpoint.path} on ${shortId(id)}`
    const traced = callChannel.hasSubscribers
    const startMs = traced ? nowMs() : 0
    const answer = this.#withDeadline(options, what, async (signal) => {
      // The registry and the wire are typed by path only; `endpoint` ties the path to Res.
      if (id === this.id)
        return (await this.#handlers.callLocal(endpoint.path, req, options.stream, signal)) as StreamingResponse<Res>
      const peer = this.#peers.get(id)
      if (peer?.origin === undefined)
        throw new NetError('not-connected', `no address known for node ${shortId(id)}`, { nodeId: id })
      const r = await this.#client.call(
        peer,
        endpoint.path,
        req,
        options.stream,
        options.priority ?? 'normal',
        signal,
        options.sharedSeal,
        options.waits,
        wantsStream,
      )
      return r as StreamingResponse<Res>
    })
    if (!traced) return answer
    const publish = (ok: boolean): void =>
      callChannel.publish({ from: this.id, to: id, path: endpoint.path, req, startMs, endMs: nowMs(), ok } satisfies NetCallEvent)
    return answer.then(
      (r) => {
        publish(true)
        return r
      },
      (err: unknown) => {
        publish(false)
        throw err
      },
    )
  }

  /** Measures the round-trip time to `nodeId` on the high-priority pool, in ms. */
  async ping(nodeId: string, options: { signal?: AbortSignal } = {}): Promise<number> {
    const peer = this.#peers.getOrCreate(nodeId.toLowerCase())
    const t0 = performance.now()
    peer.pingStarted()
    try {
      const res = await this.call(
        nodeId,
        PING_ENDPOINT,
        { t: Date.now() },
        { priority: 'high', timeoutMs: this.#pingTimeoutMs, ...options },
      )
      if (typeof res.now === 'number') this.clock.observe(nodeId.toLowerCase(), res.now)
    } catch (err) {
      peer.pingFailed()
      throw err
    }
    const rtt = performance.now() - t0
    peer.pingSucceeded(rtt)
    return rtt
  }

  /** Every peer we know: those we connected to and those that connected to us. */
  peers(): PeerInfo[] {
    return this.#peers.info()
  }

  /** What we know of one peer (undefined: never heard of). */
  peer(nodeId: string): PeerInfo | undefined {
    return this.#peers.get(nodeId.toLowerCase())?.info()
  }

  /** Stops the server, aborts running handlers and in-flight calls, and closes every pool. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#externalSignal?.removeEventListener('abort', this.#onExternalAbort)
      const reason = new NetError('closed', 'the RPC transport is closed')
      this.#closing.abort(reason)
      for (const abort of this.#inFlight) abort(reason)
      this.#inFlight.clear()
      await Promise.all([this.#server.close(), this.#client.close()])
      this.#handshakes.clear()
    })()
    return this.#closed
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  /** Runs `fn` with a signal that aborts on the caller's signal, the deadline, or close(). */
  async #withDeadline<T>(options: CallOptions, what: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs
    // One controller per call, aborted directly by the deadline; close() reaches it through
    // #inFlight rather than a listener on the closing signal per call (AbortSignal listeners
    // cost several µs each on Node 20). Only a caller's own signal gets a listener.
    const { signal, abort, dispose } = linkSignals(options.signal === undefined ? [] : [options.signal])
    const timer = setTimeout(() => abort(new TimeoutError(`${what} timed out after ${timeoutMs} ms`)), timeoutMs)
    if (this.#closing.signal.aborted) abort(this.#closing.signal.reason)
    this.#inFlight.add(abort)
    let held = false
    const release = (): void => {
      this.#inFlight.delete(abort)
      dispose()
    }
    try {
      signal.throwIfAborted()
      const result = await fn(signal)
      // A returned stream stays cancellable by the caller's signal (and close()) until it ends.
      const stream = (result as { stream?: unknown } | undefined)?.stream
      if (stream instanceof Readable) {
        held = true
        stream.once('close', release)
      }
      return result
    } catch (err) {
      if (signal.aborted) throw signal.reason
      throw err
    } finally {
      clearTimeout(timer)
      if (!held) release()
    }
  }
}

/** Builds a transport; call `listen()` to serve. */
export function createNetApp(options: NetAppOptions): NetApp {
  return new NetApp(options)
}
