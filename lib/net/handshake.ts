/**
 * The handshake over HTTP, both sides, and the server's table of the sessions it established.
 * The cryptography is in crypto.ts (pure); this file moves its three messages and keeps the
 * state between them: pending handshakes (10 s, at most 1024), established sessions (least
 * recently used dropped first), and one warning per refused remote address. See the Handshake
 * section of docs/design/rpc.md. Plays the part of garage_net's kuska-handshake calls in
 * client.rs and server.rs.
 *
 * @internal
 */
import type { Logger } from '../util/logger.ts'
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
  serverHello,
  unknownSessionProof,
  verifyClientFinish,
} from './crypto.ts'
import { HandshakeError } from './errors.ts'
import { RPC_ROUTE } from './message.ts'
import type { NodeKey } from './node-key.ts'
import type { Peers } from './peering.ts'
import { shortId } from './util.ts'

const HANDSHAKE_TTL_MS = 10_000
const MAX_PENDING_HANDSHAKES = 1024
const MAX_REFUSED_LOGGED = 10_000

/** Who we are in a handshake. @internal */
export interface HandshakeIdentity {
  /** The cluster's rpc_secret (32 bytes). */
  readonly secret: Buffer
  readonly key: NodeKey
  /** Our `rpc_public_addr` as `host:port`, advertised to the server. */
  readonly publicAddr: string | undefined
}

/** An HTTP answer: status and body. @internal */
export interface HttpReply {
  status: number
  body: string | Buffer
}

/** Sends one handshake message to the peer; resolves with the status and the (small) answer. @internal */
export type HandshakePost = (route: string, body: Buffer) => Promise<{ status: number; body: Buffer }>

/**
 * Runs the client side against node `peerId`: hello, server hello, finish, key confirmation.
 * Resolves with the session keys; rejects with {@link HandshakeError} when the peer refuses us
 * or proves to be someone else, or with whatever `post` throws.
 *
 * @internal
 */
export async function clientHandshake(me: HandshakeIdentity, peerId: string, post: HandshakePost): Promise<SessionKeys> {
  const fail = (why: string, cause?: unknown): HandshakeError =>
    new HandshakeError(`handshake with node ${shortId(peerId)} failed: ${why}`, { cause, nodeId: peerId })
  const hs = clientHello(me.secret, me.key, Buffer.from(peerId, 'hex'), me.publicAddr)
  const r1 = await post(RPC_ROUTE.HELLO, hs.hello)
  if (r1.status === 403) throw fail('refused (is rpc_secret the same on both nodes?)')
  if (r1.status !== 200) throw fail(`HTTP ${r1.status}: ${r1.body.toString('utf8', 0, 200)}`)
  const fin = clientFinish(me.secret, me.key, hs, r1.body)
  if (typeof fin === 'string') throw fail(fin)
  const r2 = await post(RPC_ROUTE.FINISH, fin.body)
  if (r2.status !== 200) throw fail(`HTTP ${r2.status}: ${r2.body.toString('utf8', 0, 200)}`)
  if (!macEqual(r2.body, confirmation(fin.keys))) throw fail('bad key confirmation')
  return fin.keys
}

/** The server's side of an established session. @internal */
export interface ServerSession {
  readonly keys: SessionKeys
  /** The authenticated id of the client. */
  readonly clientId: string
  /** Message numbers already accepted. */
  readonly window: ReplayWindow
}

/**
 * The server side: answers hello and finish messages, and holds the sessions they establish.
 * A client that completes a handshake becomes a known peer, reachable at the address it
 * advertised.
 *
 * @internal
 */
export class HandshakeServer {
  readonly #me: HandshakeIdentity
  readonly #peers: Peers
  readonly #log: Logger
  readonly #maxSessions: number
  readonly #sessions = new Map<string, ServerSession>()
  readonly #pending = new Map<string, ServerPending & { expires: number; addr: string | undefined }>()
  readonly #refusedLogged = new Set<string>()

  constructor(me: HandshakeIdentity, peers: Peers, log: Logger, maxSessions: number) {
    this.#me = me
    this.#peers = peers
    this.#log = log
    this.#maxSessions = maxSessions
  }

  /** Answers message 1 (client hello) from `remote` (its IP address, for the refusal log). */
  hello(body: Buffer, remote: string | undefined): HttpReply {
    const hello = parseClientHello(this.#me.secret, body)
    if (hello === 'bad-mac') {
      this.#refused(remote, 'it does not hold our rpc_secret')
      return { status: 403, body: 'handshake refused' }
    }
    if (hello === 'bad-version') return { status: 400, body: 'unsupported RPC protocol version' }
    if (!hello.serverId.equals(this.#me.key.publicKey)) return { status: 421, body: `this is node ${this.#me.key.id}` }
    const { body: answer, pending } = serverHello(this.#me.secret, this.#me.key, hello)
    const now = Date.now()
    for (const [k, v] of this.#pending)
      if (v.expires < now || this.#pending.size >= MAX_PENDING_HANDSHAKES) this.#pending.delete(k)
    this.#pending.set(pending.keys.id.toString('hex'), { ...pending, expires: now + HANDSHAKE_TTL_MS, addr: hello.addr })
    return { status: 200, body: answer }
  }

  /** Answers message 3 (client finish) with the key confirmation, and records the session. */
  finish(body: Buffer, remote: string | undefined): HttpReply {
    const id = parseClientFinishId(body)?.toString('hex')
    const pending = id === undefined ? undefined : this.#pending.get(id)
    if (id === undefined || pending === undefined || pending.expires < Date.now())
      return { status: 403, body: 'unknown handshake' }
    this.#pending.delete(id)
    const ok = verifyClientFinish(this.#me.secret, pending, body)
    if (typeof ok === 'string') {
      this.#refused(remote, `its handshake did not verify (${ok})`)
      return { status: 403, body: 'handshake refused' }
    }
    const clientId = pending.clientId.toString('hex')
    if (this.#sessions.size >= this.#maxSessions) {
      const oldest = this.#sessions.keys().next()
      if (oldest.done !== true) this.#sessions.delete(oldest.value)
    }
    this.#sessions.set(id, { keys: pending.keys, clientId, window: new ReplayWindow() })
    const peer = this.#peers.getOrCreate(clientId)
    peer.seen()
    const advertised = pending.addr
    if (advertised !== undefined) {
      try {
        peer.adoptAdvertised(advertised)
      } catch (err) {
        // The address is signed by the peer, so a bad one is its misconfiguration: we just
        // cannot call it back until someone connect()s it explicitly.
        this.#log.debug(`node ${shortId(clientId)} advertised an unusable address ${advertised}`, err)
      }
    }
    return { status: 200, body: ok }
  }

  /**
   * The session a call claims (then the most recently used), or the refusal to send: `401`
   * with a proof that we do not know it (so the client handshakes again), or `400` while its
   * handshake is still in progress (no proof: nobody can collect proofs for a session about to
   * exist).
   */
  session(sidHex: string, seq: number): { session: ServerSession } | { refusal: HttpReply } {
    const session = this.#sessions.get(sidHex)
    if (session === undefined) {
      if (this.#pending.has(sidHex)) return { refusal: { status: 400, body: 'session not established' } }
      return { refusal: { status: 401, body: unknownSessionProof(this.#me.secret, Buffer.from(sidHex, 'hex'), seq) } }
    }
    // Least recently used sessions are evicted first: move this one to the end.
    this.#sessions.delete(sidHex)
    this.#sessions.set(sidHex, session)
    return { session }
  }

  /** Forgets every session and pending handshake (on close). */
  clear(): void {
    this.#sessions.clear()
    this.#pending.clear()
  }

  #refused(remote: string | undefined, why: string): void {
    const from = remote ?? 'unknown'
    if (this.firstTime(`handshake ${from}`))
      this.#log.warn(`refused an RPC handshake from ${from}: ${why} (logged once per address)`)
  }

  /**
   * Whether `what` (a refusal and an address) is seen for the first time, so each is logged once
   * (bounded memory: the set is reset when full).
   */
  firstTime(what: string): boolean {
    if (this.#refusedLogged.has(what)) return false
    if (this.#refusedLogged.size >= MAX_REFUSED_LOGGED) this.#refusedLogged.clear()
    this.#refusedLogged.add(what)
    return true
  }
}
