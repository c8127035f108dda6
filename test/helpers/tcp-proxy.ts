/**
 * A userland TCP proxy for fault injection: forwards every connection to a target, and can add
 * latency, drop live connections, partition (refuse or black-hole new traffic), capture the
 * bytes that pass, and rewrite or drop chunks on the way.
 *
 * @example
 * ```ts
 * const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port } })
 * t.after(() => proxy.close())
 * proxy.setLatency(50)            // each chunk is delivered 50 ms later, order kept
 * proxy.partition('blackhole')    // new and live connections stall (timeouts)
 * proxy.heal()
 * ```
 */
import { createServer, type Server, type Socket, connect } from 'node:net'

export type Direction = 'up' | 'down'

/** Rewrites a chunk: return a Buffer to forward, `null` to drop it, `undefined` to keep it. */
export type Tamper = (chunk: Buffer, info: { direction: Direction; conn: number; offset: number }) => Buffer | null | undefined

export interface TcpProxyOptions {
  target: { host: string; port: number }
  /** Default 127.0.0.1. */
  host?: string
  /** Default 0 (any free port). */
  port?: number
  latencyMs?: number
}

export interface CapturedConnection {
  conn: number
  up: Buffer
  down: Buffer
}

export interface TcpProxy {
  readonly host: string
  readonly port: number
  /** `{ host, port }` of the proxy, ready to give to clients. */
  readonly addr: { host: string; port: number }
  /** Connections accepted so far. */
  readonly connections: number
  /** Connections accepted and refused (reset at once) so far. */
  readonly refused: number
  /** Connections destroyed by `dropConnections`, `partition('refuse')` or `heal()` so far. */
  readonly dropped: number
  /**
   * Delay applied to every chunk in both directions (order is kept). With `jitterMs`, each
   * chunk's delay is drawn uniformly in `ms ± jitterMs` (never below 0), order still kept.
   */
  setLatency(ms: number, jitterMs?: number): void
  /** Destroys every live connection (both sides see a reset). */
  dropConnections(): void
  /**
   * Cuts the link. 'refuse': live connections are dropped and new ones reset at once.
   * 'blackhole': nothing is forwarded any more, sockets stay open (the peer sees timeouts).
   * With `direction` ('up': client to target, 'down': target to client), a black hole eats only
   * the bytes going that way (packets lost one way: requests arrive, answers never do).
   */
  partition(mode?: 'refuse' | 'blackhole', direction?: Direction): void
  /** Ends a partition; black-holed connections are dropped, new ones are forwarded again. */
  heal(): void
  setTamper(fn: Tamper | undefined): void
  /** Starts recording the bytes of connections (live ones from now on, and new ones). */
  startCapture(): void
  /** Stops recording and returns what was captured, per connection. */
  stopCapture(): CapturedConnection[]
  close(): Promise<void>
}

interface Conn {
  id: number
  client: Socket
  server: Socket
  offsets: Record<Direction, number>
  /** Delayed chunks, per direction, in order, with when each is due. */
  queue: Record<Direction, Array<{ at: number; data: Buffer }>>
  capture: { up: Buffer[]; down: Buffer[] } | undefined
}

export async function startTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  let latency = options.latencyMs ?? 0
  let jitter = 0
  let mode: 'open' | 'refuse' | 'blackhole' = 'open'
  /** With a black hole: the direction it eats, or both. */
  let holeDirection: Direction | 'both' = 'both'
  let refused = 0
  let dropped = 0
  let tamper: Tamper | undefined
  let capturing = false
  let captured: CapturedConnection[] = []
  let nextId = 0
  const live = new Set<Conn>()
  const timers = new Set<NodeJS.Timeout>()

  const drop = (c: Conn): void => {
    if (c.capture !== undefined) {
      captured.push({ conn: c.id, up: Buffer.concat(c.capture.up), down: Buffer.concat(c.capture.down) })
      c.capture = undefined
    }
    c.client.destroy()
    c.server.destroy()
    live.delete(c)
  }

  const eaten = (direction: Direction): boolean =>
    mode === 'blackhole' && (holeDirection === 'both' || holeDirection === direction)

  const forward = (c: Conn, direction: Direction, chunk: Buffer): void => {
    if (eaten(direction)) return
    const offset = c.offsets[direction]
    c.offsets[direction] += chunk.length
    const out = tamper?.(chunk, { direction, conn: c.id, offset })
    if (out === null) return
    const data = out ?? chunk
    c.capture?.[direction].push(Buffer.from(data))
    const to = direction === 'up' ? c.server : c.client
    const delay = jitter > 0 ? Math.max(0, latency - jitter + Math.random() * 2 * jitter) : latency
    const q = c.queue[direction]
    if (delay <= 0 && q.length === 0) {
      to.write(data)
      return
    }
    const at = Math.max(Date.now() + delay, q[q.length - 1]?.at ?? 0)
    q.push({ at, data })
    if (q.length === 1) drain(c, direction)
  }

  /**
   * Writes the chunks of one direction that are due, in order, then waits for the next one. One
   * timer per direction: separate timers per chunk could fire out of order (a timer's start is
   * the event loop's cached time, not Date.now()), which would reorder the stream's bytes.
   */
  const drain = (c: Conn, direction: Direction): void => {
    const q = c.queue[direction]
    const to = direction === 'up' ? c.server : c.client
    const now = Date.now()
    while (q.length > 0 && (q[0] as { at: number }).at <= now) {
      const { data } = q.shift() as { data: Buffer }
      if (!to.destroyed && !eaten(direction)) to.write(data)
    }
    const head = q[0]
    if (head === undefined) return
    const timer = setTimeout(() => {
      timers.delete(timer)
      drain(c, direction)
    }, head.at - now)
    timers.add(timer)
  }

  const server: Server = createServer((client) => {
    if (mode === 'refuse') {
      refused++
      client.resetAndDestroy()
      return
    }
    const upstream = connect(options.target.port, options.target.host)
    // Forward each chunk when it is due: with Nagle's algorithm a small chunk written while the
    // previous one is unacknowledged waits for the peer's delayed ACK (40 ms on Linux loopback),
    // which would add latency the proxy was not asked for.
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    const c: Conn = {
      id: nextId++,
      client,
      server: upstream,
      offsets: { up: 0, down: 0 },
      queue: { up: [], down: [] },
      capture: capturing ? { up: [], down: [] } : undefined,
    }
    live.add(c)
    client.on('data', (d: Buffer) => forward(c, 'up', d))
    upstream.on('data', (d: Buffer) => forward(c, 'down', d))
    const end = (): void => drop(c)
    client.on('close', end)
    upstream.on('close', end)
    // Errors (resets) just end the connection pair, which is what a proxy should show.
    client.on('error', end)
    upstream.on('error', end)
  })
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('proxy did not bind a TCP port')
  const host = options.host ?? '127.0.0.1'

  return {
    host,
    port: address.port,
    addr: { host, port: address.port },
    get connections() {
      return nextId
    },
    get refused() {
      return refused
    },
    get dropped() {
      return dropped
    },
    setLatency(ms, jitterMs = 0) {
      latency = ms
      jitter = jitterMs
    },
    dropConnections() {
      dropped += live.size
      for (const c of [...live]) drop(c)
    },
    partition(m = 'refuse', direction) {
      mode = m
      holeDirection = m === 'blackhole' && direction !== undefined ? direction : 'both'
      if (m === 'refuse') {
        dropped += live.size
        for (const c of [...live]) drop(c)
      }
    },
    heal() {
      if (mode === 'blackhole') {
        dropped += live.size
        for (const c of [...live]) drop(c)
      }
      mode = 'open'
      holeDirection = 'both'
    },
    setTamper(fn) {
      tamper = fn
    },
    startCapture() {
      capturing = true
      for (const c of live) c.capture ??= { up: [], down: [] }
    },
    stopCapture() {
      capturing = false
      for (const c of live) {
        if (c.capture !== undefined)
          captured.push({ conn: c.id, up: Buffer.concat(c.capture.up), down: Buffer.concat(c.capture.down) })
        c.capture = undefined
      }
      const out = captured
      captured = []
      return out.sort((a, b) => a.conn - b.conn)
    },
    async close() {
      for (const t of timers) clearTimeout(t)
      for (const c of [...live]) drop(c)
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
