/**
 * Errors of the RPC transport. Callers (the quorum helper) count every one of them as a failed
 * call; they branch only on {@link RemoteError} (the remote handler ran and failed) versus the
 * rest (the call may not have reached the handler). Timeouts are the shared
 * {@link TimeoutError}. Port of garage_net::error.
 */
import { GarageError } from '../util/errors.ts'

/** Why a call failed below the remote handler. */
export type NetErrorReason =
  /** No address is known for the node, or `connect()` was never called. */
  | 'not-connected'
  /** TCP connection or HTTP exchange failed (refused, reset, closed). */
  | 'connection'
  /** The handshake was refused or its proof did not verify (wrong secret, wrong node id). */
  | 'handshake'
  /** A message failed authentication or framing (tampered, truncated, replayed). */
  | 'protocol'
  /** The local transport is closed. */
  | 'closed'

/**
 * A call failed in the transport: the peer was unreachable, refused us, or sent something that
 * did not authenticate. The remote handler may or may not have run.
 *
 * Uses the code `GARAGE_ERR_REMOTE` until util gains a dedicated network code; `reason` tells
 * the cases apart.
 */
export class NetError extends GarageError {
  override name = 'NetError'
  readonly reason: NetErrorReason
  /** The node we were talking to, when known. */
  readonly nodeId: string | undefined
  constructor(reason: NetErrorReason, message: string, options?: ErrorOptions & { nodeId?: string }) {
    super(reason === 'closed' ? 'GARAGE_ERR_CLOSED' : 'GARAGE_ERR_REMOTE', message, options)
    this.reason = reason
    this.nodeId = options?.nodeId
  }
}

/** The handshake with a peer failed: wrong `rpc_secret`, wrong node id, or a forged answer. */
export class HandshakeError extends NetError {
  override name = 'HandshakeError'
  constructor(message: string, options?: ErrorOptions & { nodeId?: string }) {
    super('handshake', message, options)
  }
}

/** The remote handler ran and threw; `message` is the remote error's message. */
export class RemoteError extends GarageError {
  override name = 'RemoteError'
  /** The node whose handler failed. */
  readonly nodeId: string
  /** The remote error's `name` (e.g. `ModelError`). */
  readonly remoteName: string
  /** The remote error's `code`, when it had one (e.g. `GARAGE_ERR_MODEL`). */
  readonly remoteCode: string | undefined
  constructor(nodeId: string, remoteName: string, message: string, remoteCode?: string) {
    super('GARAGE_ERR_REMOTE', message)
    this.nodeId = nodeId
    this.remoteName = remoteName
    this.remoteCode = remoteCode
  }
}
