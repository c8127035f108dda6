/**
 * Cryptographic building blocks of the RPC transport: the three-message handshake (X25519 +
 * Ed25519 + HMAC keyed by the cluster's rpc_secret), session key derivation (HKDF-SHA256), and
 * AES-256-GCM sealed frames with deterministic nonces. See docs/design/rpc.md. Everything here
 * is pure and synchronous; netapp.ts does the I/O.
 *
 * @internal
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
  randomBytes,
  sign,
  timingSafeEqual,
  verify,
} from 'node:crypto'
import type { NodeKey } from './node-key.ts'

/**
 * Version byte of the client hello. 2: a message without an attached stream is its HEAD frame
 * alone (v1 sent an END frame after it); 3: a body sealed once for several peers; 4: calls over
 * mux connections (mux.ts). Nodes of different versions refuse each other.
 */
export const PROTOCOL_VERSION = 4
const LABEL = 'garage-ts rpc v1'
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex')

export const MAC_LEN = 32
export const ID_LEN = 32
export const KEY_LEN = 32
export const NONCE_LEN = 32
export const SESSION_ID_LEN = 16
export const SIG_LEN = 64
const TAG_LEN = 16
const MAX_ADDR_LEN = 255

/** Largest payload of one frame (a stream chunk); bigger chunks are split. */
export const FRAME_PAYLOAD_MAX = 64 * 1024
/** Length-prefix + kind + payload + tag: the largest frame accepted on the wire. */
export const FRAME_WIRE_MAX = 4 + 1 + FRAME_PAYLOAD_MAX + TAG_LEN

export function hmac(key: Uint8Array, label: string, ...parts: Uint8Array[]): Buffer {
  const h = createHmac('sha256', key)
  h.update(`${LABEL} ${label}\0`)
  for (const p of parts) h.update(p)
  return h.digest()
}

export function macEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}

export function ed25519PublicKey(raw: Uint8Array): KeyObject {
  if (raw.length !== ID_LEN) throw new RangeError('an Ed25519 public key is 32 bytes')
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' })
}

interface Ephemeral {
  privateKey: KeyObject
  publicRaw: Buffer
}

function ephemeral(): Ephemeral {
  const { privateKey, publicKey } = generateKeyPairSync('x25519')
  return { privateKey, publicRaw: publicKey.export({ format: 'der', type: 'spki' }).subarray(-32) }
}

function x25519(priv: KeyObject, peerRaw: Uint8Array): Buffer {
  const publicKey = createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, peerRaw]), format: 'der', type: 'spki' })
  const shared = diffieHellman({ privateKey: priv, publicKey })
  if (shared.every((b) => b === 0)) throw new RangeError('low-order X25519 public key')
  return shared
}

/** Keys of one established session (each direction has its own key, so nonces never collide). */
export interface SessionKeys {
  id: Buffer
  /** Client → server. */
  c2s: Buffer
  /** Server → client. */
  s2c: Buffer
  /** Only used for the server's key confirmation. */
  confirm: Buffer
}

function deriveKeys(secret: Uint8Array, shared: Uint8Array, transcript: Uint8Array, id: Buffer): SessionKeys {
  const okm = Buffer.from(hkdfSync('sha256', Buffer.concat([secret, shared]), transcript, `${LABEL} session keys`, 96))
  return { id, c2s: okm.subarray(0, 32), s2c: okm.subarray(32, 64), confirm: okm.subarray(64, 96) }
}

function transcriptHash(hello: Uint8Array, sessionId: Uint8Array, eph: Uint8Array, nonce: Uint8Array): Buffer {
  return createHash('sha256').update(`${LABEL} transcript\0`).update(hello).update(sessionId).update(eph).update(nonce).digest()
}

const sigInput = (role: 'client' | 'server', th: Uint8Array): Buffer => Buffer.concat([Buffer.from(`${LABEL} ${role}\0`), th])

// ---- message 1: client hello ----------------------------------------------------------------

/** Client state between sending the hello and receiving the server hello. */
export interface ClientHandshake {
  hello: Buffer
  payload: Buffer
  eph: Ephemeral
  serverId: Buffer
}

/** `mac ‖ version ‖ client id ‖ expected server id ‖ client ephemeral ‖ nonce ‖ advertised addr` */
export function clientHello(secret: Uint8Array, key: NodeKey, serverId: Buffer, addr: string | undefined): ClientHandshake {
  const eph = ephemeral()
  const addrBytes = Buffer.from(addr ?? '', 'utf8')
  if (addrBytes.length > MAX_ADDR_LEN) throw new RangeError('advertised address too long')
  const payload = Buffer.concat([
    Buffer.of(PROTOCOL_VERSION),
    key.publicKey,
    serverId,
    eph.publicRaw,
    randomBytes(NONCE_LEN),
    addrBytes,
  ])
  return { hello: Buffer.concat([hmac(secret, 'client hello', payload), payload]), payload, eph, serverId }
}

export interface ParsedHello {
  payload: Buffer
  clientId: Buffer
  serverId: Buffer
  eph: Buffer
  addr: string | undefined
}

/** Returns undefined when the MAC does not verify (the sender lacks the secret) or the layout is wrong. */
export function parseClientHello(secret: Uint8Array, body: Buffer): ParsedHello | 'bad-mac' | 'bad-version' {
  const fixed = 1 + ID_LEN * 2 + KEY_LEN + NONCE_LEN
  if (body.length < MAC_LEN + fixed || body.length > MAC_LEN + fixed + MAX_ADDR_LEN) return 'bad-mac'
  const payload = body.subarray(MAC_LEN)
  if (!macEqual(body.subarray(0, MAC_LEN), hmac(secret, 'client hello', payload))) return 'bad-mac'
  if (payload[0] !== PROTOCOL_VERSION) return 'bad-version'
  let o = 1
  const take = (n: number): Buffer => {
    o += n
    return payload.subarray(o - n, o)
  }
  const clientId = take(ID_LEN)
  const serverId = take(ID_LEN)
  const eph = take(KEY_LEN)
  take(NONCE_LEN)
  const addr = payload.subarray(o).toString('utf8')
  return { payload, clientId, serverId, eph, addr: addr === '' ? undefined : addr }
}

// ---- message 2: server hello ----------------------------------------------------------------

export interface ServerPending {
  clientId: Buffer
  transcript: Buffer
  keys: SessionKeys
}

/** `mac ‖ session id ‖ server ephemeral ‖ nonce ‖ signature(transcript)` */
export function serverHello(secret: Uint8Array, key: NodeKey, hello: ParsedHello): { body: Buffer; pending: ServerPending } {
  const eph = ephemeral()
  const id = randomBytes(SESSION_ID_LEN)
  const nonce = randomBytes(NONCE_LEN)
  const th = transcriptHash(hello.payload, id, eph.publicRaw, nonce)
  const sig = sign(null, sigInput('server', th), key.privateKey)
  const mac = hmac(secret, 'server hello', th, sig)
  const keys = deriveKeys(secret, x25519(eph.privateKey, hello.eph), th, id)
  return {
    body: Buffer.concat([mac, id, eph.publicRaw, nonce, sig]),
    pending: { clientId: hello.clientId, transcript: th, keys },
  }
}

export interface ClientFinish {
  body: Buffer
  keys: SessionKeys
}

/** Verifies the server hello (secret and server identity) and builds message 3. Throws a string reason. */
export function clientFinish(secret: Uint8Array, key: NodeKey, hs: ClientHandshake, body: Buffer): ClientFinish | string {
  if (body.length !== MAC_LEN + SESSION_ID_LEN + KEY_LEN + NONCE_LEN + SIG_LEN) return 'malformed server hello'
  let o = MAC_LEN
  const take = (n: number): Buffer => {
    o += n
    return body.subarray(o - n, o)
  }
  const id = take(SESSION_ID_LEN)
  const eph = take(KEY_LEN)
  const nonce = take(NONCE_LEN)
  const sig = take(SIG_LEN)
  const th = transcriptHash(hs.payload, id, eph, nonce)
  if (!macEqual(body.subarray(0, MAC_LEN), hmac(secret, 'server hello', th, sig)))
    return 'server hello MAC mismatch (different rpc_secret?)'
  if (!verify(null, sigInput('server', th), ed25519PublicKey(hs.serverId), sig))
    return 'server does not hold the expected node key'
  const keys = deriveKeys(secret, x25519(hs.eph.privateKey, eph), th, Buffer.from(id))
  const csig = sign(null, sigInput('client', th), key.privateKey)
  return { body: Buffer.concat([hmac(secret, 'client finish', th, csig), id, csig]), keys }
}

// ---- message 3: client finish, and the server's key confirmation ----------------------------

export function parseClientFinishId(body: Buffer): Buffer | undefined {
  return body.length === MAC_LEN + SESSION_ID_LEN + SIG_LEN ? body.subarray(MAC_LEN, MAC_LEN + SESSION_ID_LEN) : undefined
}

/** Verifies message 3; returns the server's key confirmation (message 4) or a reason. */
export function verifyClientFinish(secret: Uint8Array, pending: ServerPending, body: Buffer): Buffer | string {
  const sig = body.subarray(MAC_LEN + SESSION_ID_LEN)
  if (!macEqual(body.subarray(0, MAC_LEN), hmac(secret, 'client finish', pending.transcript, sig))) return 'bad MAC'
  if (!verify(null, sigInput('client', pending.transcript), ed25519PublicKey(pending.clientId), sig))
    return 'bad client signature'
  return confirmation(pending.keys)
}

export const confirmation = (keys: SessionKeys): Buffer => hmac(keys.confirm, 'server confirm', keys.id)

/** Proof, from a holder of the secret, that a session id is unknown (so the client re-handshakes). */
export const unknownSessionProof = (secret: Uint8Array, sessionId: Uint8Array, seq: number): Buffer =>
  hmac(secret, 'unknown session', sessionId, u64(seq))

function u64(n: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(n))
  return b
}

// ---- sealed frames ---------------------------------------------------------------------------

/** Frame kinds (first plaintext byte). A message is HEAD DATA* (END | ERR). */
/**
 * Frame kinds. A HEAD larger than one frame is sent as HEAD_PART frames carrying its first bytes,
 * in order, then a HEAD frame with the rest: a message is `HEAD_PART* HEAD (DATA* (END|ERR))?`.
 */
export const FRAME = { HEAD: 0, DATA: 1, END: 2, ERR: 3, HEAD_PART: 4 } as const
export type FrameKind = (typeof FRAME)[keyof typeof FRAME]

function frameNonce(seq: number, index: number): Buffer {
  const n = Buffer.alloc(12)
  n.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), 0)
  n.writeUInt32BE(seq >>> 0, 4)
  n.writeUInt32BE(index, 8)
  return n
}

/**
 * Seals frame number `index` of message `seq`: `u32 length ‖ AES-256-GCM(kind ‖ payload) ‖ tag`.
 * The nonce is (seq, index) and the AAD the session id, so a frame only opens at its own place
 * in its own message of its own session and direction.
 */
export function sealFrame(
  key: Uint8Array,
  sessionId: Uint8Array,
  seq: number,
  index: number,
  kind: FrameKind,
  payload: Uint8Array,
): Buffer {
  const out = Buffer.allocUnsafe(sealedFrameLength(payload.length))
  sealFrameInto(out, 0, key, sessionId, seq, index, kind, payload)
  return out
}

/**
 * {@link sealFrame} as pieces to write in order (length prefix and kind, ciphertext, tag): the
 * payload's ciphertext is the cipher's own output, not copied into a frame buffer.
 */
export function sealFramePieces(
  key: Uint8Array,
  sessionId: Uint8Array,
  seq: number,
  index: number,
  kind: FrameKind,
  payload: Uint8Array,
): Buffer[] {
  const cipher = createCipheriv('aes-256-gcm', key, frameNonce(seq, index))
  cipher.setAAD(sessionId)
  const head = Buffer.allocUnsafe(5)
  head.writeUInt32BE(1 + payload.length + TAG_LEN, 0)
  cipher.update(KIND_BYTES[kind] as Buffer).copy(head, 4)
  const body = payload.length > 0 ? cipher.update(payload) : undefined
  cipher.final()
  const tag = cipher.getAuthTag()
  return body === undefined ? [head, tag] : [head, body, tag]
}

/** Bytes on the wire of a frame carrying `payloadLength` bytes (length prefix included). */
export const sealedFrameLength = (payloadLength: number): number => 4 + 1 + payloadLength + TAG_LEN

const KIND_BYTES: readonly Buffer[] = Object.values(FRAME).map((k) => Buffer.of(k))

/**
 * {@link sealFrame} into `out` at `offset` (which must have {@link sealedFrameLength} bytes
 * free); returns the offset after the frame. Lets a whole message be sealed into one buffer.
 */
export function sealFrameInto(
  out: Buffer,
  offset: number,
  key: Uint8Array,
  sessionId: Uint8Array,
  seq: number,
  index: number,
  kind: FrameKind,
  payload: Uint8Array,
): number {
  let o = offset
  for (const p of sealFramePieces(key, sessionId, seq, index, kind, payload)) o += p.copy(out, o)
  return o
}

/** Opens one frame body (without its length prefix); undefined when it does not authenticate. */
export function openFrame(
  key: Uint8Array,
  sessionId: Uint8Array,
  seq: number,
  index: number,
  sealed: Buffer,
): { kind: FrameKind; payload: Buffer } | undefined {
  if (sealed.length < 1 + TAG_LEN) return undefined
  const decipher = createDecipheriv('aes-256-gcm', key, frameNonce(seq, index))
  decipher.setAAD(sessionId)
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_LEN))
  let plain: Buffer
  try {
    plain = decipher.update(sealed.subarray(0, sealed.length - TAG_LEN))
    // GCM is a stream mode: final() only checks the tag and returns no bytes.
    decipher.final()
  } catch {
    // GCM tag mismatch: the frame was tampered with, replayed elsewhere, or sealed with another key.
    return undefined
  }
  const kind = plain[0]
  if (kind === undefined || kind > FRAME.HEAD_PART) return undefined
  return { kind: kind as FrameKind, payload: plain.subarray(1) }
}

/**
 * Anti-replay window over message sequence numbers (as IPsec/DTLS): accepts each number once,
 * in any order, as long as it is within `size` of the highest accepted one.
 */
export class ReplayWindow {
  readonly #size: number
  readonly #bits: Uint8Array
  #max = -1
  constructor(size = 4096) {
    this.#size = size
    this.#bits = new Uint8Array(size)
  }
  accept(seq: number): boolean {
    if (!Number.isSafeInteger(seq) || seq < 0) return false
    if (seq > this.#max) {
      const gap = seq - this.#max
      if (gap >= this.#size) this.#bits.fill(0)
      else for (let s = this.#max + 1; s < seq; s++) this.#bits[s % this.#size] = 0
      this.#bits[seq % this.#size] = 1
      this.#max = seq
      return true
    }
    if (this.#max - seq >= this.#size) return false
    if (this.#bits[seq % this.#size] === 1) return false
    this.#bits[seq % this.#size] = 1
    return true
  }
}
