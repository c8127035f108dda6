/**
 * Small helpers shared by the pieces of the RPC transport: node and peer address parsing, the
 * secret's format, bounded reads of small bodies, and signal linking. Port of garage_net::util.
 *
 * @internal
 */
import type { TcpAddr } from '../util/config.ts'
import { NetError } from './errors.ts'

/** The first 16 hex characters of a node id, for log lines and error messages. @internal */
export const shortId = (id: string): string => id.slice(0, 16)

/** Parses `<64-hex node id>@<host>:<port>`. @internal */
export function parsePeerAddr(value: string): { nodeId: string; addr: TcpAddr } {
  const at = value.indexOf('@')
  const id = value.slice(0, at)
  if (at < 0 || !/^[0-9a-f]{64}$/i.test(id)) throw new NetError('not-connected', `expected <node id>@<host>:<port>, got ${value}`)
  return { nodeId: id.toLowerCase(), addr: parseHostPort(value.slice(at + 1)) }
}

/** Parses `host:port` or `[v6]:port`. @internal */
export function parseHostPort(value: string): TcpAddr {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value)
  const port = Number(m?.[3])
  if (m === null || port < 1 || port > 65535) throw new NetError('not-connected', `invalid address ${value}`)
  return { host: (m[1] ?? m[2]) as string, port }
}

/** `host:port`, with IPv6 hosts in brackets. @internal */
export const formatAddr = (a: TcpAddr): string => (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`)

/** The cluster secret as 32 bytes; accepts 32 bytes or 64 hex characters. @internal */
export function parseSecret(secret: Uint8Array | string): Buffer {
  const b =
    typeof secret === 'string'
      ? /^[0-9a-f]{64}$/i.test(secret)
        ? Buffer.from(secret, 'hex')
        : Buffer.alloc(0)
      : Buffer.from(secret)
  if (b.length !== 32) throw new RangeError('rpcSecret must be 32 bytes (64 hex characters)')
  return b
}

/** Reads a whole small body, failing once it exceeds `max` bytes. @internal */
export async function readLimited(source: AsyncIterable<Uint8Array>, max: number): Promise<Buffer> {
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
 *
 * @internal
 */
export function linkSignals(signals: readonly AbortSignal[]): {
  signal: AbortSignal
  /** Aborts the linked signal itself (a deadline, a peer that went away): no controller of its own needed. */
  abort: (reason: unknown) => void
  dispose: () => void
} {
  const ac = new AbortController()
  const abort = (reason: unknown): void => ac.abort(reason)
  const already = signals.find((s) => s.aborted)
  if (already !== undefined) {
    ac.abort(already.reason)
    return { signal: ac.signal, abort, dispose: () => {} }
  }
  const listeners = signals.map((s) => {
    const onAbort = (): void => ac.abort(s.reason)
    s.addEventListener('abort', onAbort, { once: true })
    return () => s.removeEventListener('abort', onAbort)
  })
  return {
    signal: ac.signal,
    abort,
    dispose: () => {
      for (const off of listeners) off()
    },
  }
}
