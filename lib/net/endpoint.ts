/**
 * Typed RPC endpoints. An endpoint is a stable path string plus phantom request and response
 * types; the same value is used to register the local handler and to call remote nodes. Port of
 * garage_net::endpoint and the priorities of garage_net::message.
 */
import type { Readable } from 'node:stream'
import type { SharedBodySeal } from './frame.ts'

/**
 * A typed endpoint. `path` is part of the wire protocol: never rename one once shipped.
 * Request and response values must be msgpack-encodable (plain objects, arrays, strings,
 * numbers, booleans, null, Uint8Array).
 */
export interface RpcEndpoint<Req, Res> {
  readonly path: string
  /** Phantom field carrying the types; never set. */
  readonly __types?: (req: Req) => Res
}

/** Defines an endpoint; paths are at most 255 bytes of UTF-8. */
export function defineEndpoint<Req, Res>(path: string): RpcEndpoint<Req, Res> {
  if (path.length === 0 || Buffer.byteLength(path) > 255) throw new RangeError(`invalid endpoint path ${JSON.stringify(path)}`)
  return { path }
}

/**
 * Traffic classes. Each has its own connection pool to every peer, so a call never queues
 * behind a call of another class: 'high' for pings and layout changes, 'normal' for metadata,
 * 'background' for sync and bulk block transfers.
 */
export type RpcPriority = 'high' | 'normal' | 'background'

export const RPC_PRIORITIES: readonly RpcPriority[] = ['high', 'normal', 'background']

/** A byte stream attached to a request or a response. A Uint8Array can be re-sent on retry. */
export type RpcBody = Uint8Array | AsyncIterable<Uint8Array>

const kWithStream: unique symbol = Symbol('garage.net.withStream')

/** A response with an attached byte stream; build it with {@link withStream}. */
export interface WithStream<Res> {
  readonly [kWithStream]: true
  readonly res: Res
  readonly stream: RpcBody
}

/** Attaches a byte stream to a handler's response. */
export function withStream<Res>(res: Res, stream: RpcBody): WithStream<Res> {
  return { [kWithStream]: true, res, stream }
}

/** @internal */
export function isWithStream<Res>(v: Res | WithStream<Res>): v is WithStream<Res> {
  return typeof v === 'object' && v !== null && (v as { [kWithStream]?: boolean })[kWithStream] === true
}

/** What a handler receives besides the request. */
export interface HandlerContext {
  /** Aborted when the caller cancels, times out, disconnects, or the local transport closes. */
  readonly signal: AbortSignal
  /**
   * The byte stream attached to the request, if any. Consume it or leave it: an unread stream
   * is discarded after the handler returns.
   */
  readonly stream: Readable | undefined
  /**
   * The attached stream's bytes when the message arrived whole (a block sent to a replica):
   * the same bytes as `stream`, already in memory, in order. Read one or the other.
   */
  readonly body?: readonly Buffer[]
}

/** Handles one endpoint. `from` is the authenticated id of the calling node. */
export type RpcHandler<Req, Res> = (
  req: Req,
  from: string,
  ctx: HandlerContext,
) => Res | WithStream<Res> | Promise<Res | WithStream<Res>>

/** Options of one call. */
export interface CallOptions {
  /** Default 'normal'. */
  priority?: RpcPriority
  /** Deadline until the response message arrives (not the attached stream). Default: the transport's. */
  timeoutMs?: number
  /** Cancels the call (and the attached response stream); the remote handler's signal aborts. */
  signal?: AbortSignal
  /**
   * The call may stay unanswered for long on purpose (a long poll): it is left out of the peer's
   * `callsSilentMs`, which otherwise tells a peer that has stopped answering.
   */
  waits?: boolean
}

/** Options of a call that may attach a byte stream to the request. */
export interface StreamingCallOptions extends CallOptions {
  stream?: RpcBody
  /**
   * `stream` (a buffer) sealed once for every peer it is sent to (frame.ts): the same object
   * passed with each call. Ignored for a call to oneself and for a body sent frame by frame.
   */
  sharedSeal?: SharedBodySeal
}

/** A response and its attached stream. Read the stream to the end or destroy it. */
export interface StreamingResponse<Res> {
  res: Res
  stream: Readable | undefined
}
