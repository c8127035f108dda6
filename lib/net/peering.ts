/**
 * What the transport knows about each peer: where to call it, the session we hold with it (and
 * the handshake establishing one, shared by concurrent callers), when it was last seen, and its
 * ping statistics. Failure detection, retry loops and peer-list exchange are membership's job
 * (lib/rpc/system.ts), as in Garage they are garage_net::peering's and garage_rpc's.
 *
 * @internal
 */
import type { TcpAddr } from '../util/config.ts'
import type { SessionKeys } from './crypto.ts'
import { NetError } from './errors.ts'
import { formatAddr, parseHostPort } from './util.ts'

/** Ping round trips averaged in {@link PeerInfo.avgPingMs}. */
const PING_SAMPLES = 10

/** What the transport knows about one peer. @internal */
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
  /** How long the ping in flight has gone unanswered, in ms (undefined: none in flight). */
  pingPendingMs: number | undefined
  /**
   * How long our quick calls to it (no request body, not a long poll) have gone unanswered, in
   * ms: since the first call sent after its last answer, while a call waits or after one timed
   * out or lost its connection (undefined: it answered the last one, or none was sent). A cut
   * link shows here at once, where pings (every 10 s) take up to a ping interval to notice.
   */
  callsSilentMs: number | undefined
  /** Handshakes we completed with it (a restart of the peer shows as one more). */
  handshakes: number
}

/** Our side of an established session: its keys and the number of our next message. @internal */
export interface ClientSession {
  readonly keys: SessionKeys
  nextSeq: number
}

/** One known peer. @internal */
export class Peer {
  readonly id: string
  #addr: TcpAddr | undefined
  #origin: string | undefined
  #session: ClientSession | undefined
  #handshaking: Promise<ClientSession> | undefined
  #lastSeen: number | undefined
  readonly #pings: number[] = []
  #failedPings = 0
  /** performance.now() at the start of the ping in flight. */
  #pingSince: number | undefined
  /** Quick calls waiting for their answer. */
  #callsWaiting = 0
  /** performance.now() at the first quick call sent since the peer's last answer. */
  #silentSince: number | undefined
  /** A quick call timed out or lost its connection since the peer's last answer. */
  #callFailed = false
  #handshakes = 0

  constructor(id: string) {
    this.id = id
  }

  /** Where we call it, if known. */
  get addr(): TcpAddr | undefined {
    return this.#addr
  }

  /** The HTTP origin of {@link addr}, as the client pools key their connections. */
  get origin(): string | undefined {
    return this.#origin
  }

  /** The established session, if any. */
  get session(): ClientSession | undefined {
    return this.#session
  }

  /**
   * Records where the peer listens. A different address drops the session: it was made with
   * whoever listened at the old one.
   */
  setAddr(addr: TcpAddr): void {
    if (this.#addr !== undefined && formatAddr(this.#addr) === formatAddr(addr)) return
    this.#addr = addr
    this.#origin = `http://${formatAddr(addr)}`
    this.#session = undefined
  }

  /**
   * Adopts the address the peer advertised in its handshake (signed by it), unless we already
   * know where to call it. Throws a {@link NetError} if it is not `host:port`.
   */
  adoptAdvertised(advertised: string): void {
    if (this.#addr === undefined) this.setAddr(parseHostPort(advertised))
  }

  /** It answered us or called us just now. */
  seen(): void {
    this.#lastSeen = Date.now()
  }

  /**
   * The established session, or the one being established: `handshake` runs only when no
   * handshake is in flight, so concurrent callers share one.
   */
  establish(handshake: () => Promise<SessionKeys>): Promise<ClientSession> {
    if (this.#session !== undefined) return Promise.resolve(this.#session)
    this.#handshaking ??= handshake()
      .then((keys) => {
        const session: ClientSession = { keys, nextSeq: 0 }
        this.#session = session
        this.#handshakes++
        this.seen()
        return session
      })
      .finally(() => {
        this.#handshaking = undefined
      })
    return this.#handshaking
  }

  /** Drops `session` if it is still the current one (the peer lost it, e.g. it restarted). */
  forget(session: ClientSession): void {
    if (this.#session === session) this.#session = undefined
  }

  /** A quick call was sent now; {@link callEnded} ends it. */
  callStarted(): void {
    this.#callsWaiting++
    this.#silentSince ??= performance.now()
  }

  /**
   * A quick call ended: 'answered' (the peer's answer, success or error, came back), 'failed'
   * (it timed out or lost its connection) or 'cancelled' (by the caller: says nothing of the peer).
   */
  callEnded(outcome: 'answered' | 'failed' | 'cancelled'): void {
    this.#callsWaiting = Math.max(0, this.#callsWaiting - 1)
    if (outcome === 'answered') {
      this.#callFailed = false
      this.#silentSince = this.#callsWaiting > 0 ? performance.now() : undefined
    } else if (outcome === 'failed') this.#callFailed = true
    else if (this.#callsWaiting === 0 && !this.#callFailed) this.#silentSince = undefined
  }

  /** A ping was sent now (its answer or failure ends it). */
  pingStarted(): void {
    this.#pingSince = performance.now()
  }

  pingSucceeded(rttMs: number): void {
    this.#pingSince = undefined
    this.#failedPings = 0
    this.#pings.push(rttMs)
    if (this.#pings.length > PING_SAMPLES) this.#pings.shift()
  }

  pingFailed(): void {
    this.#pingSince = undefined
    this.#failedPings++
  }

  info(): PeerInfo {
    const pings = this.#pings
    return {
      id: this.id,
      addr: this.#addr,
      connected: this.#session !== undefined,
      lastSeen: this.#lastSeen,
      avgPingMs: pings.length === 0 ? undefined : pings.reduce((a, b) => a + b, 0) / pings.length,
      failedPings: this.#failedPings,
      pingPendingMs: this.#pingSince === undefined ? undefined : performance.now() - this.#pingSince,
      callsSilentMs: this.#silentSince === undefined ? undefined : performance.now() - this.#silentSince,
      handshakes: this.#handshakes,
    }
  }
}

/** Every peer we know: those we connected to and those that connected to us. @internal */
export class Peers {
  readonly #byId = new Map<string, Peer>()

  get(id: string): Peer | undefined {
    return this.#byId.get(id)
  }

  /** The peer with this (lowercase hex) id, created on first use. */
  getOrCreate(id: string): Peer {
    let p = this.#byId.get(id)
    if (p === undefined) {
      if (!/^[0-9a-f]{64}$/.test(id)) throw new NetError('not-connected', `invalid node id ${id}`)
      p = new Peer(id)
      this.#byId.set(id, p)
    }
    return p
  }

  info(): PeerInfo[] {
    return [...this.#byId.values()].map((p) => p.info())
  }
}
