/**
 * The plaintext shapes of RPC messages and the HTTP routes and headers that carry them: what
 * the client and the server must agree on besides the sealed framing (frame.ts) and the
 * handshake (crypto.ts). See docs/design/rpc.md. Port of garage_net::message.
 *
 * @internal
 */
import type { HandlerContext } from './endpoint.ts'
import { RemoteError } from './errors.ts'

/** HTTP routes of the transport (all POST). Wire constants: never change. @internal */
export const RPC_ROUTE = { HELLO: '/rpc/hs1', FINISH: '/rpc/hs2', CALL: '/rpc/call' } as const

/** Header carrying the session id (hex) of a call. @internal */
export const HEADER_SESSION = 'x-garage-session'
/** Header carrying the message number of a call within its session. @internal */
export const HEADER_SEQ = 'x-garage-seq'

/** HEAD frame of a request: endpoint path, message, whether a stream follows. @internal */
export interface RequestHead {
  p: string
  m: unknown
  s: boolean
  /** The one-time key of a body sealed once for several peers (frame.ts, SharedBodySeal). */
  k?: Uint8Array
}

/**
 * HEAD frame of a response: `{ok: true, m, s}` (message, whether a stream follows) or
 * `{ok: false, n, e, c}` (the handler's error name, message and code).
 *
 * @internal
 */
export interface ResponseHead {
  ok: boolean
  m?: unknown
  s?: boolean
  n?: string
  e?: string
  c?: string
}

/** A registered handler with its types erased (the registry holds every endpoint's). @internal */
export type AnyHandler = (req: unknown, from: string, ctx: HandlerContext) => unknown

/** What a caller sees of a handler's failure on node `self`. @internal */
export function toRemoteError(self: string, err: unknown): RemoteError {
  const e = err instanceof Error ? err : new Error(String(err))
  const code = (e as { code?: unknown }).code
  return new RemoteError(self, e.name, e.message, typeof code === 'string' ? code : undefined)
}
