/**
 * A mesh of fault-injecting links between the nodes of a cluster of child processes: one TCP
 * proxy (tcp-proxy.ts) per ordered pair of nodes (source → destination), which the source
 * reaches through link-route-hook.ts (preloaded; it reroutes the source's connections to the
 * destination's RPC port). Each node binds a fixed port chosen here and advertises it, so the
 * routes can be written before the nodes start and survive restarts.
 *
 * Every fault is one of the proxies' operations: latency with jitter on every link, a link that
 * drops its connections and refuses new ones for a moment (flapping), a black hole one way or
 * both, a set of nodes (a zone) cut off from the rest. Counters say how many were injected.
 *
 * @example
 * ```ts
 * const mesh = await startLinkMesh(4)      // slots for 3 nodes and one added later
 * const cluster = await startReplicatedCluster({ nodes: 3, nodeOptions: (i) => mesh.nodeOptions(i) })
 * mesh.setRtt(150, 30)                     // 150 ms RTT on every link, ± 30 ms jitter
 * mesh.isolate([2])                        // node 2 cut off (black hole both ways)
 * mesh.heal()
 * ```
 */
import { mkdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ClusterNodeOptions } from './cluster.ts'
import { startTcpProxy, type TcpProxy } from './tcp-proxy.ts'

const HOOK = fileURLToPath(new URL('./link-route-hook.ts', import.meta.url))

/** What was injected so far. */
export interface FaultCounts {
  /** Links cut (one way or both), zones isolated: one per cut link direction. */
  cuts: number
  /** Flaps: a link whose connections were dropped and refused for a moment. */
  flaps: number
  /** Connections destroyed by the proxies (flaps, refusals, heals). */
  droppedConnections: number
  /** Connection attempts refused while a link was down. */
  refusedConnections: number
  /** Connections the proxies accepted (each is a node (re)connecting to a peer). */
  connections: number
}

export interface LinkMesh {
  /** RPC port of each node slot. */
  readonly ports: readonly number[]
  /** The proxy of link `from` → `to`. */
  link(from: number, to: number): TcpProxy
  /** Options to start node `i` with (fixed RPC port, advertised, and the routes through its links). */
  nodeOptions(i: number): Pick<ClusterNodeOptions, 'rpcBindAddr' | 'rpcPublicAddr' | 'preload' | 'env' | 'startTimeoutMs'>
  /** Same delay on every link: `rttMs / 2` each way, each chunk ± `jitterMs / 2`. */
  setRtt(rttMs: number, jitterMs?: number): void
  /**
   * Cuts `from` → `to`. 'both': the link is a black hole (nothing passes either way on it), so
   * `from` cannot call `to` while `to` may still call `from`. 'one-way': packets from `to` to
   * `from` are lost on every connection between them: `from`'s requests reach `to` but their
   * answers never come back, and `to`'s requests never reach `from`.
   */
  cut(from: number, to: number, how?: 'both' | 'one-way'): void
  /** Cuts every link between `nodes` and the other nodes, both directions (a zone cut off). */
  isolate(nodes: readonly number[]): void
  /** Drops the connections of every link to and from node `i` and refuses new ones for `downMs`. */
  flap(i: number, downMs: number): Promise<void>
  /** Ends every cut (black-holed connections are dropped, as a healed network resets them). */
  heal(): void
  counts(): FaultCounts
  close(): Promise<void>
}

/**
 * A port free right now (bound then released; the node binds it a moment later), below the
 * kernel's ephemeral range: a node killed and restarted binds the same port again, and a port in
 * the ephemeral range can meanwhile become the local end of some outgoing connection (the proxies
 * open thousands), which made a restart fail with EADDRINUSE.
 */
export async function freePort(): Promise<number> {
  const ephemeralStart = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
    .then((s) => Number(s.trim().split(/\s+/)[0]))
    .catch(() => 32_768)
  const low = 10_000
  const high = Number.isInteger(ephemeralStart) && ephemeralStart > low + 1_000 ? ephemeralStart : 32_768
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low))
    const srv = createServer()
    const bound = await new Promise<boolean>((resolve) => {
      srv.once('error', () => resolve(false))
      srv.listen(port, '127.0.0.1', () => resolve(true))
    })
    if (!bound) continue
    await new Promise<void>((resolve) => srv.close(() => resolve()))
    if (!reservePort(port)) continue
    return port
  }
  throw new Error(`no free TCP port in ${low}-${high - 1}`)
}

/**
 * Ports handed out by {@link freePort} are reserved for {@link RESERVATION_MS}: in this process
 * (a set) and across the test processes that run side by side (a file per port, created
 * exclusively). A port is free when checked but bound by its node only seconds later; without
 * this, another pick in that window (here or in the other test worker) could return it again,
 * and a node failed to start with EADDRINUSE (a CI run, 6 Dec). A node of an earlier test file
 * that is still shutting down keeps its port reserved too.
 */
const RESERVATION_MS = 30 * 60_000
const RESERVATIONS = join(tmpdir(), 'garage-test-ports')
const reserved = new Set<number>()

function reservePort(port: number): boolean {
  if (reserved.has(port)) return false
  const file = join(RESERVATIONS, String(port))
  mkdirSync(RESERVATIONS, { recursive: true })
  try {
    if (Date.now() - statSync(file).mtimeMs < RESERVATION_MS) return false
    // An old reservation: taken over (if two processes race here, one `wx` below fails).
    unlinkSync(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return false
  }
  try {
    writeFileSync(file, `${process.pid}\n`, { flag: 'wx' })
  } catch {
    return false
  }
  reserved.add(port)
  return true
}

/** Starts the proxies for `slots` nodes (every ordered pair). */
export async function startLinkMesh(slots: number): Promise<LinkMesh> {
  const ports: number[] = []
  for (let i = 0; i < slots; i++) ports.push(await freePort())
  const links = new Map<string, TcpProxy>()
  const name = (from: number, to: number): string => `${from}>${to}`
  try {
    for (let from = 0; from < slots; from++) {
      for (let to = 0; to < slots; to++) {
        if (from === to) continue
        links.set(name(from, to), await startTcpProxy({ target: { host: '127.0.0.1', port: ports[to] as number } }))
      }
    }
  } catch (err) {
    await Promise.all([...links.values()].map((p) => p.close()))
    throw err
  }
  let cuts = 0
  let flaps = 0
  const link = (from: number, to: number): TcpProxy => {
    const p = links.get(name(from, to))
    if (p === undefined) throw new Error(`no link ${from} → ${to}`)
    return p
  }
  const all = (): TcpProxy[] => [...links.values()]
  return {
    ports,
    link,
    nodeOptions(i) {
      const routes: Record<string, string> = {}
      for (let to = 0; to < slots; to++) if (to !== i) routes[`127.0.0.1:${ports[to]}`] = `127.0.0.1:${link(i, to).port}`
      return {
        rpcBindAddr: `127.0.0.1:${ports[i]}`,
        rpcPublicAddr: `127.0.0.1:${ports[i]}`,
        preload: [HOOK],
        env: { CHAOS_LINK_ROUTES: JSON.stringify(routes) },
        // A start (tsx compiling the sources) takes long on a machine running tests two at a time.
        startTimeoutMs: 90_000,
      }
    },
    setRtt(rttMs, jitterMs = 0) {
      for (const p of all()) p.setLatency(rttMs / 2, jitterMs / 2)
    },
    cut(from, to, how = 'both') {
      cuts++
      if (how === 'both') {
        link(from, to).partition('blackhole')
      } else {
        link(from, to).partition('blackhole', 'down')
        link(to, from).partition('blackhole', 'up')
      }
    },
    isolate(nodes) {
      for (let a = 0; a < slots; a++) {
        for (let b = 0; b < slots; b++) {
          if (a !== b && nodes.includes(a) !== nodes.includes(b)) {
            cuts++
            link(a, b).partition('blackhole')
          }
        }
      }
    },
    async flap(i, downMs) {
      flaps++
      const touched = [...links.entries()].filter(([key]) => key.split('>').map(Number).includes(i)).map(([, p]) => p)
      for (const p of touched) p.partition('refuse')
      await new Promise((resolve) => setTimeout(resolve, downMs))
      for (const p of touched) p.heal()
    },
    heal() {
      for (const p of all()) p.heal()
    },
    counts() {
      const ps = all()
      return {
        cuts,
        flaps,
        droppedConnections: ps.reduce((s, p) => s + p.dropped, 0),
        refusedConnections: ps.reduce((s, p) => s + p.refused, 0),
        connections: ps.reduce((s, p) => s + p.connections, 0),
      }
    },
    async close() {
      await Promise.all(all().map((p) => p.close()))
    },
  }
}
