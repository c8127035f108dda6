/**
 * The calling side of the transport: the session to each peer (handshaking on first use and
 * again when the peer lost it), and calls sent as sealed messages with their responses opened.
 * A call whose message is in memory and whose caller reads no response stream (every table
 * call, a block sent to a replica) goes over the peer's mux connection of its priority
 * (mux.ts), as Garage's netapp sends every call; a call streaming its body or reading a response
 * stream (a block fetched) is an HTTP exchange through one undici keep-alive pool per priority.
 * Port of garage_net::client.
 *
 * @internal
 */
import { Readable } from 'node:stream'
import { Agent } from 'undici'
import { encodeMsgpack } from '../util/codec.ts'
import { TimeoutError } from '../util/errors.ts'
import type { Logger } from '../util/logger.ts'
import { macEqual, unknownSessionProof } from './crypto.ts'
import { RPC_PRIORITIES, type RpcBody, type RpcPriority, type StreamingResponse } from './endpoint.ts'
import { NetError, RemoteError } from './errors.ts'
import {
  type FrameContext,
  MessageReader,
  openWholeMessage,
  type SharedBodySeal,
  sealMessage,
  sealWholeMessage,
  sealWholeMessageShared,
  WHOLE_MESSAGE_MAX,
  wholeStream,
} from './frame.ts'
import { clientHandshake, type HandshakeIdentity } from './handshake.ts'
import { HEADER_SEQ, HEADER_SESSION, RPC_ROUTE, type RequestHead, type ResponseHead } from './message.ts'
import { kNotSent, kUnknownSession, MuxClient, type SealedMessage } from './mux.ts'
import type { ClientSession, Peer } from './peering.ts'
import { formatAddr, linkSignals, readLimited, shortId } from './util.ts'

/** The mux connections of one peer: those of its current session, by priority. */
interface PeerMuxes {
  session: ClientSession
  byPriority: Partial<Record<RpcPriority, MuxClient>>
}

/** @internal */
export interface RpcClientOptions {
  me: HandshakeIdentity
  /** Most connections to one peer per priority (HTTP pools), and most calls in flight on a mux connection. */
  connections: Record<RpcPriority, number>
  /** Deadline of a handshake (shared by its callers, so not bounded by theirs). */
  handshakeTimeoutMs: number
  /** Aborted by close(): fails handshakes in flight. */
  closing: AbortSignal
  log: Logger
}

/** Maps a failure of the HTTP client to our errors; ours pass through. */
function connectionError(err: unknown, peer: Peer): Error {
  if (err instanceof NetError || err instanceof RemoteError || err instanceof TimeoutError) return err
  const where = peer.addr === undefined ? '' : ` at ${formatAddr(peer.addr)}`
  const msg = err instanceof Error ? err.message : String(err)
  return new NetError('connection', `cannot reach node ${shortId(peer.id)}${where}: ${msg}`, { cause: err, nodeId: peer.id })
}

/** A session id in hex (the session header), computed once per session rather than per call. */
const hexIds = new WeakMap<Buffer, string>()
function sessionHex(id: Buffer): string {
  let hex = hexIds.get(id)
  if (hex === undefined) {
    hex = id.toString('hex')
    hexIds.set(id, hex)
  }
  return hex
}

function originOf(peer: Peer): string {
  const origin = peer.origin
  if (origin === undefined)
    throw new NetError('not-connected', `no address known for node ${shortId(peer.id)}`, { nodeId: peer.id })
  return origin
}

/**
 * What a failed quick call says of its peer: an error the peer sent back is an answer; a call
 * cancelled by its caller says nothing; a timeout or a lost connection is a silence.
 */
function callOutcome(err: unknown, signal: AbortSignal): 'answered' | 'failed' | 'cancelled' {
  if (err === kUnknownSession || err instanceof RemoteError || (err instanceof NetError && err.reason === 'protocol')) {
    return 'answered'
  }
  if (signal.aborted && !(signal.reason instanceof TimeoutError)) return 'cancelled'
  return 'failed'
}

/**
 * How many times a call queued on a connection that was retired or closed by the peer before
 * sending it is sent again.
 */
const MAX_RESENDS = 3

/** @internal */
export class RpcClient {
  readonly #me: HandshakeIdentity
  readonly #agents: Record<RpcPriority, Agent>
  readonly #handshakeTimeoutMs: number
  readonly #closing: AbortSignal
  readonly #log: Logger
  readonly #muxes = new Map<Peer, PeerMuxes>()
  readonly #connections: Record<RpcPriority, number>
  readonly #openMuxes = new Set<MuxClient>()

  constructor(options: RpcClientOptions) {
    this.#me = options.me
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs
    this.#closing = options.closing
    this.#log = options.log
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
    const c = options.connections
    this.#connections = c
    this.#agents = { high: agent(c.high), normal: agent(c.normal), background: agent(c.background) }
  }

  /**
   * The session to `peer`, handshaking if there is none. The handshake is shared by concurrent
   * callers, so it runs under close() and its own deadline only; `signal` just stops waiting.
   */
  session(peer: Peer, signal: AbortSignal): Promise<ClientSession> {
    // The usual case, once per call: no listener, no promise chain.
    const current = peer.session
    if (current !== undefined) return signal.aborted ? Promise.reject(signal.reason) : Promise.resolve(current)
    const hs = peer.establish(async () => {
      const own = linkSignals([this.#closing, AbortSignal.timeout(this.#handshakeTimeoutMs)])
      try {
        const keys = await clientHandshake(this.#me, peer.id, (route, body) => this.#post(peer, route, body, own.signal))
        this.#log.debug(`session established with node ${shortId(peer.id)}`)
        return keys
      } finally {
        own.dispose()
      }
    })
    return new Promise<ClientSession>((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason)
      signal.addEventListener('abort', onAbort, { once: true })
      hs.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
    })
  }

  /**
   * Calls `path` on `peer`. If the peer proves it lost our session (it restarted), handshakes
   * again and re-sends once, unless the request stream is an async iterable, which cannot be
   * re-sent: that call fails with a {@link NetError}.
   *
   * A quick call (no request body, not `waits`) counts in the peer's `callsSilentMs` while it
   * waits for its answer. Unless `wantsStream`, a response stream is not transferred (the
   * result's `stream` is undefined).
   */
  async call(
    peer: Peer,
    path: string,
    msg: unknown,
    body: RpcBody | undefined,
    priority: RpcPriority,
    signal: AbortSignal,
    shared?: SharedBodySeal,
    waits = false,
    wantsStream = true,
  ): Promise<StreamingResponse<unknown>> {
    const replayable = body === undefined || body instanceof Uint8Array
    const watched = body === undefined && !waits
    let resends = 0
    for (let attempt = 0; ; attempt++) {
      const session = await this.session(peer, signal)
      // A call counts in the peer's silence from when it is sent, not while it waits unsent
      // behind the connection's in-flight bound (mux.ts): a busy peer that answers is not silent.
      let started = false
      const sent = watched
        ? (): void => {
            started = true
            peer.callStarted()
          }
        : undefined
      try {
        const r = await this.#callOnce(peer, session, path, msg, body, priority, signal, shared, wantsStream, sent)
        if (started) peer.callEnded('answered')
        peer.seen()
        return r
      } catch (err) {
        if (started) peer.callEnded(callOutcome(err, signal))
        if (err === kNotSent) {
          // Queued on a connection retired, or closed by the peer, before its turn came (mux.ts):
          // never sent, so sent again on a new connection; a few times at most (a retirement took
          // a call's deadline, and a peer closing every connection should fail the call).
          if (signal.aborted) throw signal.reason
          if (++resends <= MAX_RESENDS) {
            attempt--
            continue
          }
          throw new NetError(
            'connection',
            `connection to node ${shortId(peer.id)} went silent or was closed before the call was sent, ${resends} times`,
            { nodeId: peer.id },
          )
        }
        if (err !== kUnknownSession) throw err
        peer.forget(session)
        this.#log.debug(`node ${shortId(peer.id)} lost our session (restarted?); handshaking again`)
        if (attempt > 0 || !replayable) {
          throw new NetError('connection', `node ${shortId(peer.id)} lost our session and the request stream cannot be re-sent`, {
            nodeId: peer.id,
          })
        }
      }
    }
  }

  /** Closes every pool and mux connection, failing the calls in flight on them. */
  async close(): Promise<void> {
    const reason = new NetError('closed', 'the RPC transport is closed')
    for (const m of this.#openMuxes) m.close(reason)
    this.#openMuxes.clear()
    this.#muxes.clear()
    await Promise.all(RPC_PRIORITIES.map((p) => this.#agents[p].destroy()))
  }

  /**
   * The mux connection to `peer` for `session` and `priority`, opened if there is none (or it
   * closed). Connections of an older session of the peer are closed.
   */
  #mux(peer: Peer, session: ClientSession, priority: RpcPriority): MuxClient {
    let entry = this.#muxes.get(peer)
    if (entry?.session !== session) {
      for (const m of Object.values(entry?.byPriority ?? {})) m.close(new NetError('connection', 'session replaced'))
      entry = { session, byPriority: {} }
      this.#muxes.set(peer, entry)
    }
    const current = entry.byPriority[priority]
    if (current !== undefined && !current.closed) return current
    const addr = peer.addr
    if (addr === undefined)
      throw new NetError('not-connected', `no address known for node ${shortId(peer.id)}`, { nodeId: peer.id })
    if (this.#closing.aborted) throw new NetError('closed', 'the RPC transport is closed')
    const sid = session.keys.id
    const byPriority = entry.byPriority
    const m = new MuxClient({
      addr,
      sessionHex: sessionHex(sid),
      upgradeSeq: session.nextSeq++,
      provesUnknown: (proof, seq) => macEqual(proof, unknownSessionProof(this.#me.secret, sid, seq)),
      peerName: `node ${shortId(peer.id)} at ${formatAddr(addr)}`,
      nodeId: peer.id,
      maxInFlight: this.#connections[priority],
      onClose: (closed) => {
        this.#openMuxes.delete(closed)
        if (byPriority[priority] === closed) delete byPriority[priority]
      },
    })
    byPriority[priority] = m
    this.#openMuxes.add(m)
    return m
  }

  async #post(peer: Peer, route: string, body: Buffer, signal: AbortSignal): Promise<{ status: number; body: Buffer }> {
    try {
      const r = await this.#agents.high.request({ origin: originOf(peer), path: route, method: 'POST', body, signal })
      return { status: r.statusCode, body: await readLimited(r.body, 4096) }
    } catch (err) {
      if (signal.aborted) throw signal.reason
      throw connectionError(err, peer)
    }
  }

  async #callOnce(
    peer: Peer,
    session: ClientSession,
    path: string,
    msg: unknown,
    body: RpcBody | undefined,
    priority: RpcPriority,
    signal: AbortSignal,
    shared: SharedBodySeal | undefined,
    wantsStream: boolean,
    onSent?: () => void,
  ): Promise<StreamingResponse<unknown>> {
    const seq = session.nextSeq++
    const sid = session.keys.id
    const out: FrameContext = { key: session.keys.c2s, sessionId: sid, seq }
    const plainHead = (): Uint8Array => encodeMsgpack({ p: path, m: msg, s: body !== undefined } satisfies RequestHead)
    // A body in memory (every table call, a block) goes as one sealed buffer with a
    // content-length: one write, no stream per call. Only async-iterable bodies are streamed.
    // A body shared by several calls (a block to its replicas) is sealed once for all of them,
    // its key in the HEAD; one too large to go whole is sealed per call, frame by frame.
    let whole: SealedMessage | undefined
    let head: Uint8Array | undefined
    if (shared !== undefined && body instanceof Uint8Array && shared.body === body && body.length <= WHOLE_MESSAGE_MAX) {
      const sealed = shared.sealed
      whole = sealWholeMessageShared(
        out,
        encodeMsgpack({ p: path, m: msg, s: true, k: sealed.key } satisfies RequestHead),
        sealed,
      )
    }
    if (whole === undefined) {
      head = plainHead()
      whole = body === undefined || body instanceof Uint8Array ? sealWholeMessage(out, head, body) : undefined
    }
    const inbound: FrameContext = { key: session.keys.s2c, sessionId: sid, seq }
    const remoteError = (n: string, m: string): Error => new RemoteError(peer.id, n, m)
    if (whole !== undefined && !wantsStream) {
      // The usual call: over the peer's mux connection, answered whole (mux.ts).
      let answer: Buffer
      try {
        answer = await this.#mux(peer, session, priority).call(seq, whole, signal, onSent)
      } catch (err) {
        if (err === kUnknownSession || err === kNotSent) throw err
        if (signal.aborted) throw signal.reason
        throw connectionError(err, peer)
      }
      let m: ReturnType<typeof openWholeMessage>
      try {
        m = openWholeMessage(inbound, answer, remoteError)
      } catch (err) {
        throw connectionError(err, peer)
      }
      const h = m.head as ResponseHead
      if (!h.ok) throw new RemoteError(peer.id, String(h.n), String(h.e), h.c)
      return { res: h.m, stream: undefined }
    }
    let r: Awaited<ReturnType<Agent['request']>>
    onSent?.()
    try {
      r = await this.#agents[priority].request({
        origin: originOf(peer),
        path: RPC_ROUTE.CALL,
        method: 'POST',
        // No content-type: neither end reads it, and each header line is parsed on both ends.
        headers: { [HEADER_SESSION]: sessionHex(sid), [HEADER_SEQ]: String(seq) },
        body:
          whole === undefined
            ? Readable.from(sealMessage(out, head ?? plainHead(), body), { objectMode: false })
            : Buffer.isBuffer(whole)
              ? whole
              : Buffer.concat(whole),
        signal,
      })
    } catch (err) {
      if (signal.aborted) throw signal.reason
      throw connectionError(err, peer)
    }
    try {
      if (r.statusCode === 401) {
        const proof = await readLimited(r.body, 64)
        if (macEqual(proof, unknownSessionProof(this.#me.secret, sid, seq))) throw kUnknownSession
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
      const length = Number(r.headers['content-length'] ?? Number.NaN)
      if (Number.isSafeInteger(length) && length <= WHOLE_MESSAGE_MAX) {
        // Sent whole (see server.ts): read it in one piece and open it synchronously.
        const m = openWholeMessage(inbound, Buffer.from(await r.body.arrayBuffer()), remoteError)
        const h = m.head as ResponseHead
        if (!h.ok) throw new RemoteError(peer.id, String(h.n), String(h.e), h.c)
        return { res: h.m, stream: m.data === undefined ? undefined : Readable.from(wholeStream(m), { objectMode: false }) }
      }
      const reader = new MessageReader(inbound, r.body, remoteError)
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
}
