/**
 * Cluster membership (port of garage_rpc::system and the peering loop of garage_net::peering):
 * which nodes exist, which are up, and what each one last said about itself.
 *
 * - Discovery: at start, connect to `bootstrap_peers` and to the persisted `peer_list`; every
 *   status exchange carries our list of known peers, so a full mesh forms from one address.
 * - Failure detection: every node pings every other one each `pingIntervalMs`; a peer is down
 *   after {@link FAILED_PINGS_DOWN} failed pings in a row (Garage: 4), then reconnection is tried
 *   with exponential backoff. A call from a peer we think down triggers an immediate retry, so a
 *   restarted node is back up at once.
 * - Status exchange: hostname, version, replication factor, layout digest and disk space, every
 *   `statusIntervalMs` and right after a (re)connection.
 */
import { readFile, rename, statfs, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { defineEndpoint, type RpcEndpoint } from '../net/endpoint.ts'
import { HandshakeError, NetError } from '../net/errors.ts'
import { type NetApp, parsePeerAddr } from '../net/netapp.ts'
import type { NodeKey } from '../net/node-key.ts'
import type { TcpAddr } from '../util/config.ts'
import type { Logger } from '../util/logger.ts'
import { GARAGE_TS_VERSION } from '../util/version.ts'
import { currentVersion, type LayoutHistory, presentRoles } from './layout/history.ts'
import { NB_PARTITIONS } from './layout/types.ts'
import { nodesOfPartition } from './layout/version.ts'

/** A peer is down after this many failed pings in a row (Garage's peering.rs). @internal */
export const FAILED_PINGS_DOWN = 4
const PEER_LIST_FILE = 'peer_list'
/** A ping failing with a connection error within this many ms is sent again once (#pingOnce). */
const STALE_SOCKET_MS = 1_000
const MAX_RETRIES_NEVER_SEEN = 10

/** Disk space of a partition, in bytes. @internal */
export interface DiskSpace {
  available: number
  total: number
}

/** What a node tells the others about itself (Garage's `NodeStatus`). @internal */
export interface NodeStatusMsg {
  hostname: string
  garageVersion: string
  replicationFactor: number
  layoutDigest: string
  metaDisk: DiskSpace | null
  dataDisk: DiskSpace | null
}

interface ExchangeMsg {
  status: NodeStatusMsg
  /** The sender's RPC address (`host:port`), if it knows one others can reach. */
  addr: string | null
  /** Every peer the sender knows an address of: `[node id, host:port]`. */
  peers: Array<[string, string]>
}

/** The status exchange endpoint: both sides send their status and peer list. @internal */
export const SYSTEM_EXCHANGE: RpcEndpoint<ExchangeMsg, ExchangeMsg> = defineEndpoint('system/exchange')

/** One node as membership sees it (ourselves included, always up). @internal */
export interface PeerStatus {
  id: string
  /** `host:port` we reach it at. */
  addr: string | undefined
  isUp: boolean
  /** Last successful contact, ms since the epoch (now for ourselves). */
  lastSeen: number | undefined
  hostname: string | undefined
  garageVersion: string | undefined
  avgPingMs: number | undefined
  layoutDigest: string | undefined
  metaDisk: DiskSpace | null
  dataDisk: DiskSpace | null
}

/** Intervals of the membership loops; tests shorten them. @internal */
export interface SystemTiming {
  /** Ping every peer this often. Default 10 s. */
  pingIntervalMs: number
  /** Exchange statuses and peer lists this often. Default 10 s (Garage's STATUS_EXCHANGE_INTERVAL). */
  statusIntervalMs: number
  /** First reconnection delay, doubled on each failure. Default 5 s. */
  retryMinMs: number
  /** Longest reconnection delay. Default 30 s (Garage's CONN_RETRY_INTERVAL). */
  retryMaxMs: number
}

const DEFAULT_TIMING: SystemTiming = { pingIntervalMs: 10_000, statusIntervalMs: 10_000, retryMinMs: 5_000, retryMaxMs: 30_000 }

/** @internal */
export interface SystemOptions {
  netApp: NetApp
  nodeKey: NodeKey
  metadataDir: string
  dataDir?: string
  bootstrapPeers: Array<{ nodeId: string; addr: TcpAddr }>
  /** `rpc_public_addr`; else the bound address is advertised unless it is a wildcard. */
  publicAddr?: TcpAddr
  replicationFactor: number
  log: Logger
  signal: AbortSignal
  statusExtra: () => { layoutDigest: string }
  timing?: Partial<SystemTiming>
}

interface Peer {
  id: string
  addr: TcpAddr | undefined
  up: boolean
  /** It was up at some point since we started. */
  everUp: boolean
  failedPings: number
  lastSeen: number | undefined
  lastExchange: number
  status: NodeStatusMsg | undefined
  retries: number
  nextRetry: number
  busy: boolean
  /** The last connection failure was logged at warn level (logged once until it changes). */
  loggedFailure: string | undefined
  rfMismatchLogged: boolean
}

const formatAddr = (a: TcpAddr): string => (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`)
const shortId = (id: string): string => id.slice(0, 16)
const isWildcard = (host: string): boolean => host === '0.0.0.0' || host === '::' || host === ''
const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err))

/** Free and total space of the filesystem holding `path`, or null if it cannot be read. @internal */
export async function diskSpace(path: string): Promise<DiskSpace | null> {
  try {
    const s = await statfs(path)
    return { available: s.bavail * s.bsize, total: s.blocks * s.bsize }
  } catch (err) {
    // A directory statfs cannot read (missing, unsupported filesystem): the field is optional.
    if ((err as NodeJS.ErrnoException).code !== undefined) return null
    throw err
  }
}

/**
 * The cluster membership of one node. Build it, register nothing else on its endpoint, then
 * `start()` once the transport listens; `close()` (or aborting `signal`) stops the loops.
 */
export class System {
  readonly id: string
  readonly #net: NetApp
  readonly #metadataDir: string
  readonly #dataDir: string | undefined
  readonly #bootstrap: Array<{ nodeId: string; addr: TcpAddr }>
  readonly #publicAddr: TcpAddr | undefined
  readonly #rf: number
  readonly #log: Logger
  readonly #stop = new AbortController()
  readonly #statusExtra: () => { layoutDigest: string }
  readonly #timing: SystemTiming
  readonly #peers = new Map<string, Peer>()
  readonly #onPeerUp: Array<(nodeId: string) => void> = []
  readonly #onStatus: Array<(nodeId: string, status: NodeStatusMsg) => void> = []
  #selfAddr: string | undefined
  #localStatus: NodeStatusMsg
  #peerListSaved = ''
  #loop: Promise<void> | undefined
  readonly #tasks = new Set<Promise<void>>()

  constructor(opts: SystemOptions) {
    this.#net = opts.netApp
    this.id = opts.nodeKey.id
    this.#metadataDir = opts.metadataDir
    this.#dataDir = opts.dataDir
    this.#bootstrap = opts.bootstrapPeers
    this.#publicAddr = opts.publicAddr
    this.#rf = opts.replicationFactor
    this.#log = opts.log
    this.#statusExtra = opts.statusExtra
    this.#timing = { ...DEFAULT_TIMING, ...opts.timing }
    this.#localStatus = {
      hostname: hostname(),
      garageVersion: GARAGE_TS_VERSION,
      replicationFactor: opts.replicationFactor,
      layoutDigest: '',
      metaDisk: null,
      dataDisk: null,
    }
    if (opts.signal.aborted) this.#stop.abort()
    else opts.signal.addEventListener('abort', () => this.#stop.abort(), { once: true })
    this.#net.handle(SYSTEM_EXCHANGE, (req, from) => this.#handleExchange(req, from))
  }

  /** Our RPC address as `host:port`, once started (undefined if only a wildcard is bound). */
  get address(): string | undefined {
    return this.#selfAddr
  }

  /** Loads the persisted peer list, connects to it and to the bootstrap peers, starts the loops. */
  async start(): Promise<void> {
    const bound = this.#net.address()
    const adv = this.#publicAddr ?? (bound !== undefined && !isWildcard(bound.host) ? bound : undefined)
    this.#selfAddr = adv === undefined ? undefined : formatAddr(adv)
    if (this.#selfAddr === undefined) {
      this.#log.warn('no rpc_public_addr and a wildcard rpc_bind_addr: other nodes learn our address only when we call them')
    }
    await this.#updateLocalStatus()
    for (const p of this.#bootstrap) this.#learn(p.nodeId, p.addr)
    for (const p of await this.#loadPeerList()) this.#learn(p.nodeId, p.addr)
    this.#peerListSaved = this.#peerListJson()
    this.#tick()
    this.#loop = this.#run()
  }

  /** Ids of the peers currently up, ourselves excluded. */
  upPeers(): string[] {
    return [...this.#peers.values()].filter((p) => p.up).map((p) => p.id)
  }

  /** Every known node, ourselves first. */
  peerStatus(): PeerStatus[] {
    const pings = new Map(this.#net.peers().map((p) => [p.id, p.avgPingMs]))
    const self: PeerStatus = {
      id: this.id,
      addr: this.#selfAddr,
      isUp: true,
      lastSeen: Date.now(),
      hostname: this.#localStatus.hostname,
      garageVersion: this.#localStatus.garageVersion,
      avgPingMs: undefined,
      layoutDigest: this.#localStatus.layoutDigest,
      metaDisk: this.#localStatus.metaDisk,
      dataDisk: this.#localStatus.dataDisk,
    }
    // Peers never reached nor heard from (a bootstrap address that refuses us) are not listed.
    const known = [...this.#peers.values()].filter((p) => p.lastSeen !== undefined)
    return [
      self,
      ...known.map((p) => ({
        id: p.id,
        addr: p.addr === undefined ? undefined : formatAddr(p.addr),
        isUp: p.up,
        lastSeen: p.lastSeen,
        hostname: p.status?.hostname,
        garageVersion: p.status?.garageVersion,
        avgPingMs: pings.get(p.id),
        layoutDigest: p.status?.layoutDigest,
        metaDisk: p.status?.metaDisk ?? null,
        dataDisk: p.status?.dataDisk ?? null,
      })),
    ]
  }

  /** Connects to `<id>@host:port` now; rejects if the handshake or the first ping fails. */
  async connect(peer: string): Promise<void> {
    const { nodeId, addr } = parsePeerAddr(peer)
    if (nodeId === this.id) return
    const p = this.#learn(nodeId, addr, true)
    if (p.up) return
    await this.#reconnect(p)
  }

  /** `cb(nodeId)` runs each time a peer comes up (first connection or back from down). */
  onPeerUp(cb: (nodeId: string) => void): void {
    this.#onPeerUp.push(cb)
  }

  /** `cb(nodeId, status)` runs on every status received from a peer. */
  onStatus(cb: (nodeId: string, status: NodeStatusMsg) => void): void {
    this.#onStatus.push(cb)
  }

  /** Stops the loops and waits for them; the transport is closed by its owner. Idempotent. */
  async close(): Promise<void> {
    this.#stop.abort()
    if (this.#loop === undefined) return
    await this.#loop
    await Promise.allSettled([...this.#tasks])
    await this.#savePeerList()
  }

  // ---- loops ----------------------------------------------------------------------------------

  async #run(): Promise<void> {
    const signal = this.#stop.signal
    let lastStatusUpdate = Date.now()
    while (!signal.aborted) {
      await sleep(this.#timing.pingIntervalMs, signal)
      if (signal.aborted) break
      if (Date.now() - lastStatusUpdate >= this.#timing.statusIntervalMs) {
        lastStatusUpdate = Date.now()
        await this.#updateLocalStatus()
      }
      this.#tick()
      await this.#savePeerList()
    }
  }

  /** Starts the check of every peer that is not being checked already. */
  #tick(): void {
    for (const p of this.#peers.values()) this.#kick(p)
  }

  #kick(p: Peer): void {
    if (p.busy || this.#stop.signal.aborted) return
    p.busy = true
    const task = this.#check(p)
      .catch((err: unknown) => this.#log.error(`membership check of node ${shortId(p.id)} failed`, err))
      .finally(() => {
        p.busy = false
        this.#tasks.delete(task)
      })
    this.#tasks.add(task)
  }

  async #check(p: Peer): Promise<void> {
    if (!p.up) {
      if (Date.now() >= p.nextRetry) await this.#reconnect(p).catch(() => {}) // #reconnect logged it and scheduled the retry
      return
    }
    try {
      await this.#pingOnce(p)
      p.failedPings = 0
      p.lastSeen = Date.now()
    } catch (err) {
      if (this.#stop.signal.aborted) return
      p.failedPings++
      this.#log.debug(`ping to node ${shortId(p.id)} failed (${p.failedPings} in a row): ${errorMessage(err)}`)
      if (p.failedPings >= FAILED_PINGS_DOWN) {
        p.up = false
        p.retries = 0
        p.nextRetry = Date.now() + this.#timing.retryMinMs
        this.#log.warn(`node ${shortId(p.id)} is down: ${FAILED_PINGS_DOWN} pings failed in a row`)
      }
      return
    }
    if (Date.now() - p.lastExchange >= this.#timing.statusIntervalMs) await this.#exchange(p)
  }

  /**
   * One ping, counted as one. A ping that fails at once with a connection error (a pooled
   * socket the peer or the network closed while idle: "other side closed", ECONNRESET) is sent
   * again at once on a fresh connection, and only the second outcome counts: a socket that
   * died during a 1 s outage would otherwise fail one more ping after the outage ended, the
   * 4th of a 1 s flap with pings 500 ms apart (docs/design/chaos.md). A refusal or a timeout
   * fails the second try too, so a peer that is really gone is not detected any later.
   */
  async #pingOnce(p: Peer): Promise<void> {
    const t0 = Date.now()
    try {
      await this.#net.ping(p.id, { signal: this.#stop.signal })
    } catch (err) {
      if (this.#stop.signal.aborted || !(err instanceof NetError) || err.reason !== 'connection') throw err
      if (Date.now() - t0 > STALE_SOCKET_MS) throw err
      this.#log.debug(`ping to node ${shortId(p.id)} failed at once (${errorMessage(err)}): sent again on a new connection`)
      await this.#net.ping(p.id, { signal: this.#stop.signal })
    }
  }

  /** Handshakes (if needed) and pings; on success the peer is up and statuses are exchanged. */
  async #reconnect(p: Peer): Promise<void> {
    if (p.addr === undefined) throw new Error(`no address known for node ${shortId(p.id)}`)
    try {
      // Bounded by the transport's handshake timeout (the ping timeout, 10 s by default), not by
      // the reconnection delay: with short test periods (1.5 s) a handshake on a loaded machine
      // was cut off before it could finish, and ConnectClusterNodes failed.
      await this.#net.connect(p.id, p.addr, { signal: this.#stop.signal })
      await this.#net.ping(p.id, { signal: this.#stop.signal })
    } catch (err) {
      if (this.#stop.signal.aborted) throw err
      p.retries++
      p.nextRetry = Date.now() + Math.min(this.#timing.retryMinMs * 2 ** (p.retries - 1), this.#timing.retryMaxMs)
      // Like Garage (CONN_MAX_RETRIES), give up on a peer never reached, unless it is a bootstrap peer.
      if (!p.everUp && p.retries >= MAX_RETRIES_NEVER_SEEN && !this.#bootstrap.some((b) => b.nodeId === p.id)) {
        this.#peers.delete(p.id)
        this.#log.info(`giving up on node ${shortId(p.id)} at ${formatAddr(p.addr)}: never reached after ${p.retries} attempts`)
      }
      const kind = err instanceof HandshakeError ? `refused: ${err.message}` : 'unreachable'
      // A refusal (wrong secret, wrong node id) is logged once per peer, not on every retry.
      if (p.loggedFailure !== kind) {
        p.loggedFailure = kind
        const msg = `cannot connect to node ${shortId(p.id)} at ${formatAddr(p.addr)}: ${errorMessage(err)}`
        if (err instanceof HandshakeError) this.#log.warn(`${msg} (logged once for this node; retrying)`)
        else this.#log.debug(msg)
      }
      throw err
    }
    const wasKnown = p.everUp
    p.everUp = true
    p.up = true
    p.failedPings = 0
    p.retries = 0
    p.loggedFailure = undefined
    p.lastSeen = Date.now()
    this.#log.info(`node ${shortId(p.id)} at ${formatAddr(p.addr)} is ${wasKnown ? 'up again' : 'connected'}`)
    for (const cb of this.#onPeerUp) cb(p.id)
    await this.#exchange(p)
  }

  async #exchange(p: Peer): Promise<void> {
    p.lastExchange = Date.now()
    try {
      const res = await this.#net.call(p.id, SYSTEM_EXCHANGE, this.#exchangeMsg(), {
        priority: 'high',
        timeoutMs: Math.max(this.#timing.statusIntervalMs, 5_000),
        signal: this.#stop.signal,
      })
      this.#received(p, res)
    } catch (err) {
      // The next ping decides whether the peer is down; the exchange is retried next period.
      if (!this.#stop.signal.aborted) this.#log.debug(`status exchange with node ${shortId(p.id)} failed: ${errorMessage(err)}`)
    }
  }

  #handleExchange(req: ExchangeMsg, from: string): ExchangeMsg {
    const addr = req.addr === null ? undefined : tryParseAddr(req.addr)
    if (from === this.id) return this.#exchangeMsg()
    const p = this.#learn(from, addr)
    p.lastSeen = Date.now()
    this.#received(p, req)
    // It called us: if we think it is down (it restarted, or we never reached it), retry now.
    if (!p.up) {
      p.nextRetry = 0
      this.#kick(p)
    }
    return this.#exchangeMsg()
  }

  #received(p: Peer, msg: ExchangeMsg): void {
    for (const [id, a] of msg.peers) {
      const addr = tryParseAddr(a)
      if (addr !== undefined && id !== this.id && /^[0-9a-f]{64}$/.test(id)) this.#learn(id, addr)
    }
    if (msg.status.replicationFactor !== this.#rf) {
      if (!p.rfMismatchLogged) {
        p.rfMismatchLogged = true
        this.#log.error(
          `node ${shortId(p.id)} has replication factor ${msg.status.replicationFactor}, ours is ${this.#rf}: ignoring its status`,
        )
      }
      return
    }
    p.status = msg.status
    for (const cb of this.#onStatus) cb(p.id, msg.status)
  }

  #exchangeMsg(): ExchangeMsg {
    this.#localStatus = { ...this.#localStatus, layoutDigest: this.#statusExtra().layoutDigest }
    const peers: Array<[string, string]> = []
    for (const p of this.#peers.values()) if (p.addr !== undefined && p.up) peers.push([p.id, formatAddr(p.addr)])
    return { status: this.#localStatus, addr: this.#selfAddr ?? null, peers }
  }

  /** Adds a peer, or updates the address of one that is not up (or on request, `force`). */
  #learn(id: string, addr: TcpAddr | undefined, force = false): Peer {
    let p = this.#peers.get(id)
    if (id === this.id) throw new RangeError('a node cannot be its own peer')
    if (p === undefined) {
      p = {
        id,
        addr,
        up: false,
        everUp: false,
        failedPings: 0,
        lastSeen: undefined,
        lastExchange: 0,
        status: undefined,
        retries: 0,
        nextRetry: 0,
        busy: false,
        loggedFailure: undefined,
        rfMismatchLogged: false,
      }
      this.#peers.set(id, p)
      this.#kick(p)
    } else if (addr !== undefined && (force || !p.up) && (p.addr === undefined || formatAddr(p.addr) !== formatAddr(addr))) {
      p.addr = addr
      p.nextRetry = 0
    }
    return p
  }

  async #updateLocalStatus(): Promise<void> {
    const [metaDisk, dataDisk] = await Promise.all([
      diskSpace(this.#metadataDir),
      this.#dataDir === undefined ? Promise.resolve(null) : diskSpace(this.#dataDir),
    ])
    this.#localStatus = { ...this.#localStatus, metaDisk, dataDisk, layoutDigest: this.#statusExtra().layoutDigest }
  }

  // ---- persisted peer list (metadata_dir/peer_list) --------------------------------------------

  #peerListJson(): string {
    const peers = [...this.#peers.values()]
      .filter((p) => p.addr !== undefined && p.lastSeen !== undefined)
      .map((p) => ({ id: p.id, addr: formatAddr(p.addr as TcpAddr) }))
      .sort((a, b) => a.id.localeCompare(b.id))
    return JSON.stringify({ version: 1, peers })
  }

  async #loadPeerList(): Promise<Array<{ nodeId: string; addr: TcpAddr }>> {
    let text: string
    try {
      text = await readFile(join(this.#metadataDir, PEER_LIST_FILE), 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
    try {
      const parsed = JSON.parse(text) as { peers?: Array<{ id?: unknown; addr?: unknown }> }
      const out: Array<{ nodeId: string; addr: TcpAddr }> = []
      for (const e of parsed.peers ?? []) {
        const addr = typeof e.addr === 'string' ? tryParseAddr(e.addr) : undefined
        if (typeof e.id === 'string' && /^[0-9a-f]{64}$/.test(e.id) && e.id !== this.id && addr !== undefined)
          out.push({ nodeId: e.id, addr })
      }
      return out
    } catch (err) {
      // A damaged peer list only costs discovery (bootstrap peers still work): warn and go on.
      this.#log.warn(`ignoring unreadable ${PEER_LIST_FILE}: ${errorMessage(err)}`)
      return []
    }
  }

  async #savePeerList(): Promise<void> {
    const json = this.#peerListJson()
    if (json === this.#peerListSaved) return
    const file = join(this.#metadataDir, PEER_LIST_FILE)
    try {
      await writeFile(`${file}.tmp`, json)
      await rename(`${file}.tmp`, file)
      this.#peerListSaved = json
    } catch (err) {
      // Like Garage: the list only speeds up the next start; retried at the next period.
      this.#log.warn(`could not save ${PEER_LIST_FILE}: ${errorMessage(err)}`)
    }
  }
}

function tryParseAddr(value: string): TcpAddr | undefined {
  try {
    return parsePeerAddr(`${'0'.repeat(64)}@${value}`).addr
  } catch {
    return undefined // an address we cannot use is simply not learned
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done(): void {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}

// ---- health (Garage's System::health) ------------------------------------------------------------

/** Cluster health as the admin API reports it. @internal */
export interface ClusterHealth {
  status: 'healthy' | 'degraded' | 'unavailable'
  knownNodes: number
  connectedNodes: number
  storageNodes: number
  storageNodesOk: number
  partitions: number
  partitionsQuorum: number
  partitionsAllOk: number
}

/** Write quorum of the consistent mode: rf − ⌈rf/2⌉ + 1. @internal */
export const writeQuorum = (rf: number): number => rf - Math.ceil(rf / 2) + 1

/**
 * Health from the layout and which nodes are up: a partition has quorum when, in every layout
 * version in use, a write quorum of its nodes is up; it is all-ok when all its nodes are.
 * Healthy: every partition all-ok and every storage node up. Degraded: every partition has
 * quorum. Unavailable otherwise, which includes a cluster without a layout yet. @internal
 */
export function computeClusterHealth(layout: LayoutHistory, nodes: ReadonlyArray<{ id: string; isUp: boolean }>): ClusterHealth {
  const up = new Set(nodes.filter((n) => n.isUp).map((n) => n.id))
  const storage = [...presentRoles(currentVersion(layout).roles)].filter(([, r]) => r.capacity !== null).map(([id]) => id)
  let quorum = 0
  let allOk = 0
  for (let part = 0; part < NB_PARTITIONS; part++) {
    let hasQuorum = true
    let ok = true
    for (const v of layout.versions) {
      const set = nodesOfPartition(v, part)
      const nUp = set.filter((id) => up.has(id)).length
      if (set.length === 0 || nUp < writeQuorum(v.replicationFactor)) hasQuorum = false
      if (set.length === 0 || nUp < set.length) ok = false
    }
    if (hasQuorum) quorum++
    if (ok) allOk++
  }
  const storageOk = storage.filter((id) => up.has(id)).length
  const status =
    quorum < NB_PARTITIONS ? 'unavailable' : allOk === NB_PARTITIONS && storageOk === storage.length ? 'healthy' : 'degraded'
  return {
    status,
    knownNodes: nodes.length,
    connectedNodes: up.size,
    storageNodes: storage.length,
    storageNodesOk: storageOk,
    partitions: NB_PARTITIONS,
    partitionsQuorum: quorum,
    partitionsAllOk: allOk,
  }
}
