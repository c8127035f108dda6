/**
 * Clusters of `garage server` child processes: each node gets the same `rpc_secret`,
 * `rpc_bind_addr = 127.0.0.1:0`, an admin API on a free port, and `bootstrap_peers` pointing
 * wherever the test says (usually node 1). Membership runs with 1 s periods
 * (`GARAGE_TS_TEST_RPC_INTERVAL_MSEC`, which `garage server` maps into the node's `timing`
 * option; docs/design/timing.md) so failures show within seconds.
 *
 * `startReplicatedCluster()` goes further: N nodes in N zones with a layout applied, a shared
 * access key and bucket created through node 1's admin API, short background periods
 * (`FAST_ENV`), and kill / restart / freeze / add-node operations that keep the node handles
 * current. The disk readers at the end (`blockFilesOf`, `readTableContents`,
 * `readCurrentLayout`) let a test compare what each node actually stores.
 */
import { randomBytes } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3'
import { open as openLmdbEnv } from 'lmdb'
import type { LayoutVersion } from '../../lib/rpc/layout/history.ts'
import { CLUSTER_LAYOUT_FILE, LAYOUT_HISTORY_CODEC } from '../../lib/rpc/layout/manager.ts'
import { nodesOfPartition, partitionOf } from '../../lib/rpc/layout/version.ts'
import { CLUSTER_WAIT, eventually } from './eventually.ts'
import { type Credentials, type S3Target, type ServerProcess, startServerProcess } from './server-process.ts'

export const ADMIN_TOKEN = 'cluster-test-admin-token'
const RPC_INTERVAL_MS = 1_000

/**
 * Short periods for clusters that must heal within a test: pings and status every 500 ms (a
 * killed node is down after ~2 s), table anti-entropy every 2 s, tombstone GC after 10 s (well
 * over a sync pass, so a tombstone reaches every holder before it is collected), a missing block
 * fetched 200 ms after it is referenced, failed resyncs retried from 500 ms on.
 * Test-only variables that `garage server` maps into `timing` (lib/cli/_timing.ts).
 */
export const FAST_ENV: Readonly<Record<string, string>> = {
  GARAGE_TS_TEST_RPC_INTERVAL_MSEC: '500',
  GARAGE_TS_TEST_SYNC_INTERVAL_MSEC: '2000',
  GARAGE_TS_TEST_TABLE_GC_DELAY_MSEC: '10000',
  GARAGE_TS_TEST_RESYNC_DELAY_MSEC: '200',
  GARAGE_TS_TEST_RESYNC_RETRY_MSEC: '500',
}

export interface ClusterNodeProcess {
  readonly proc: ServerProcess
  /** Hex node id. */
  readonly id: string
  /** `<id>@127.0.0.1:<port>` */
  readonly rpcAddress: string
  /** `127.0.0.1:<port>` of the RPC server. */
  readonly rpcHostPort: string
  readonly adminEndpoint: string
  readonly secret: string
}

export interface ClusterNodeOptions {
  /** 64 hex characters; default a fresh random secret. */
  secret?: string
  /** `<id>@host:port` entries for `bootstrap_peers`. */
  bootstrap?: string[]
  /** Restart on the directory of an earlier process (killed or stopped with `keepDir`). */
  reuse?: ServerProcess
  /** Extra top-level toml lines. */
  configLines?: string[]
  /** Extra lines of the `[s3_api]` section. */
  s3ApiLines?: string[]
  /** Extra environment for the child (after the default `GARAGE_TS_TEST_RPC_INTERVAL_MSEC=1000`). */
  env?: Record<string, string>
  /**
   * The node-local bucket provisioned before start (see startServerProcess). Default a unique
   * `node-<hex>` name, so that nodes joining a cluster never fight over one global alias.
   */
  bucket?: string
  /** `rpc_bind_addr`; default `127.0.0.1:0`. */
  rpcBindAddr?: string
  /** `rpc_public_addr` (what the node advertises, e.g. a proxy in front of it); default unset. */
  rpcPublicAddr?: string
  /** Modules the child imports after tsx (startServerProcess's `preload`). */
  preload?: string[]
  /** How long the node may take to start listening (startServerProcess's `startTimeoutMs`). Default 30 s. */
  startTimeoutMs?: number
  /** Node.js flags before the script (startServerProcess's `nodeArgs`, e.g. `--cpu-prof`). */
  nodeArgs?: string[]
  /** What the node runs: the sources through tsx (default) or the built package (startServerProcess's `entry`). */
  entry?: 'source' | 'package'
}

export const newRpcSecret = (): string => randomBytes(32).toString('hex')

/** Starts one node; resolves once its S3 API answers and its RPC address is printed. */
export async function startClusterNode(o: ClusterNodeOptions = {}): Promise<ClusterNodeProcess> {
  const secret = o.secret ?? newRpcSecret()
  const proc = await startServerProcess({
    bucket: o.bucket ?? `node-${randomBytes(6).toString('hex')}`,
    configLines: [
      `rpc_secret = "${secret}"`,
      `rpc_bind_addr = "${o.rpcBindAddr ?? '127.0.0.1:0'}"`,
      ...(o.rpcPublicAddr === undefined ? [] : [`rpc_public_addr = "${o.rpcPublicAddr}"`]),
      `bootstrap_peers = [${(o.bootstrap ?? []).map((p) => JSON.stringify(p)).join(', ')}]`,
      ...(o.configLines ?? []),
      '[admin]',
      'api_bind_addr = "127.0.0.1:0"',
      `admin_token = "${ADMIN_TOKEN}"`,
    ],
    env: { GARAGE_TS_TEST_RPC_INTERVAL_MSEC: String(RPC_INTERVAL_MS), ...o.env },
    ...(o.s3ApiLines === undefined ? {} : { s3ApiLines: o.s3ApiLines }),
    ...(o.preload === undefined ? {} : { preload: o.preload }),
    ...(o.nodeArgs === undefined ? {} : { nodeArgs: o.nodeArgs }),
    ...(o.entry === undefined ? {} : { entry: o.entry }),
    ...(o.startTimeoutMs === undefined ? {} : { startTimeoutMs: o.startTimeoutMs }),
    ...(o.reuse === undefined ? {} : { reuse: { dir: o.reuse.dir, credentials: o.reuse.credentials } }),
  })
  try {
    const deadline = Date.now() + Math.max(10_000, o.startTimeoutMs ?? 0)
    for (;;) {
      const out = proc.output()
      const rpc = /RPC address of this node: ([0-9a-f]{64})@(\S+)/.exec(out)
      const admin = /admin API listening on (http:\/\/\S+)/.exec(out)
      if (rpc !== null && admin !== null) {
        const [, id, hostPort] = rpc as unknown as [string, string, string]
        return {
          proc,
          id,
          rpcAddress: `${id}@${hostPort}`,
          rpcHostPort: hostPort,
          adminEndpoint: (admin[1] as string).replace(/\/$/, ''),
          secret,
        }
      }
      if (Date.now() > deadline) throw new Error(`no RPC address or admin endpoint in the output:\n${out}`)
      await sleep(25)
    }
  } catch (err) {
    await proc.kill()
    throw err
  }
}

/** Starts `n` nodes with one secret, all bootstrapped from node 1. */
export async function startCluster(
  n: number,
  o: { secret?: string; configLines?: string[]; env?: Record<string, string> } = {},
): Promise<ClusterNodeProcess[]> {
  const secret = o.secret ?? newRpcSecret()
  const configLines = o.configLines ?? []
  const env = o.env ?? {}
  const first = await startClusterNode({ secret, configLines, env })
  const started = await Promise.allSettled(
    Array.from({ length: n - 1 }, () => startClusterNode({ secret, bootstrap: [first.rpcAddress], configLines, env })),
  )
  const rest = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []))
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected')
  if (failed !== undefined) {
    await Promise.all([first, ...rest].map((x) => x.proc.kill()))
    throw failed.reason
  }
  return [first, ...rest]
}

export interface StatusNode {
  id: string
  addr: string | null
  isUp: boolean
  hostname: string | null
  garageVersion: string | null
  lastSeenSecsAgo: number | null
}

/** Calls an admin endpoint (`/v2/<name>`) with the cluster's admin token. */
export async function adminV2<T>(node: ClusterNodeProcess, name: string, body?: unknown): Promise<{ status: number; data: T }> {
  const res = await fetch(`${node.adminEndpoint}/v2/${name}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    // Generous: on a loaded machine a node's first admin requests take tens of seconds.
    signal: AbortSignal.timeout(120_000),
  })
  const text = await res.text()
  let data: T
  try {
    data = (text === '' ? undefined : JSON.parse(text)) as T
  } catch (err) {
    throw new Error(`${name} answered ${res.status} with a body that is not JSON: ${text.slice(0, 300)}`, { cause: err })
  }
  return { status: res.status, data }
}

/** Like adminV2, but throws unless the answer is 200. */
export async function adminOk<T>(node: ClusterNodeProcess, name: string, body?: unknown): Promise<T> {
  const r = await adminV2<T>(node, name, body)
  if (r.status !== 200) throw new Error(`${name} on ${node.id.slice(0, 8)} answered ${r.status}: ${JSON.stringify(r.data)}`)
  return r.data
}

export async function clusterStatus(node: ClusterNodeProcess): Promise<StatusNode[]> {
  const r = await adminV2<{ nodes: StatusNode[] }>(node, 'GetClusterStatus')
  if (r.status !== 200) throw new Error(`GetClusterStatus answered ${r.status}`)
  return r.data.nodes
}

/** Ids of the nodes `node` reports up (itself included). */
export async function upIds(node: ClusterNodeProcess): Promise<string[]> {
  return (await clusterStatus(node)).filter((n) => n.isUp).map((n) => n.id)
}

// ---------------------------------------------------------------------------------------------
// Layouts

export interface LayoutRole {
  id: string
  zone: string
  /** Bytes; default 1 GB. */
  capacity?: number
}

export interface LayoutHistoryAnswer {
  currentVersion: number
  minAck: number
  versions: Array<{ version: number; status: 'Current' | 'Draining' | 'Historical'; storageNodes: number; gatewayNodes: number }>
  updateTrackers: Record<string, { ack: number; sync: number; syncAck: number }> | null
}

export const layoutVersionOf = async (n: ClusterNodeProcess): Promise<number> =>
  (await adminOk<{ version: number }>(n, 'GetClusterLayout')).version

/**
 * Stages `roles` (and removals) through `via`'s admin API, applies them as the next version and
 * waits until every node of `reach` has it. Returns the new version number.
 */
export async function applyLayout(
  via: ClusterNodeProcess,
  change: { roles?: LayoutRole[]; remove?: string[] },
  reach: ClusterNodeProcess[] = [via],
  waitMs = CLUSTER_WAIT.timeoutMs,
): Promise<number> {
  const roles = [
    ...(change.roles ?? []).map((r) => ({ id: r.id, zone: r.zone, capacity: r.capacity ?? 1_000_000_000, tags: [] })),
    ...(change.remove ?? []).map((id) => ({ id, remove: true })),
  ]
  await adminOk(via, 'UpdateClusterLayout', { roles })
  const version = (await layoutVersionOf(via)) + 1
  await adminOk(via, 'ApplyClusterLayout', { version })
  // In parallel: on a loaded machine each node's first admin request alone can take seconds.
  await Promise.all(
    reach.map((n) =>
      eventually(
        `node ${n.id.slice(0, 8)} to have layout version ${version}`,
        async () => (await layoutVersionOf(n)) >= version,
        { ...CLUSTER_WAIT, timeoutMs: waitMs },
      ),
    ),
  )
  return version
}

/** Versions still live (Current or Draining) in `n`'s layout history. */
export async function activeLayoutVersions(n: ClusterNodeProcess): Promise<number[]> {
  const h = await adminOk<LayoutHistoryAnswer>(n, 'GetClusterLayoutHistory')
  return h.versions.filter((v) => v.status !== 'Historical').map((v) => v.version)
}

/**
 * The current layout version as `n` persisted it (`metadata_dir/cluster_layout`): the exact
 * partition assignment, which the admin API does not expose.
 */
export async function readCurrentLayout(n: ClusterNodeProcess): Promise<LayoutVersion> {
  const bytes = await readFile(join(n.proc.dir, 'meta', CLUSTER_LAYOUT_FILE))
  const h = LAYOUT_HISTORY_CODEC.decode(new Uint8Array(bytes))
  const v = h.versions[h.versions.length - 1]
  if (v === undefined) throw new Error(`node ${n.id.slice(0, 8)} has an empty layout history`)
  return v
}

/** The ids of the nodes that store block `hashHex` in `layout`. */
export function storageNodesOfBlock(layout: LayoutVersion, hashHex: string): string[] {
  return nodesOfPartition(layout, partitionOf(Buffer.from(hashHex, 'hex')))
}

// ---------------------------------------------------------------------------------------------
// What a node stores on disk

export interface BlockFileInfo {
  /** Hex hashes of the block files (64 hex characters, with or without a compression suffix). */
  blocks: Set<string>
  /** Paths of files moved aside as corrupted (`*.corrupted`). */
  corrupted: string[]
}

/** Walks a node's data directory (or any directory) for block files. */
export async function blockFilesOf(n: ClusterNodeProcess | string): Promise<BlockFileInfo> {
  const dir = typeof n === 'string' ? n : join(n.proc.dir, 'data')
  let names: string[]
  try {
    names = await readdir(dir, { recursive: true })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { blocks: new Set(), corrupted: [] }
    throw err
  }
  const blocks = new Set<string>()
  const corrupted: string[] = []
  for (const rel of names) {
    const base = rel.split(/[\\/]/).pop() as string
    if (/^[0-9a-f]{64}(\.zst)?$/.test(base)) blocks.add(base.slice(0, 64))
    else if (/^[0-9a-f]{64}.*\.corrupted$/.test(base)) corrupted.push(join(dir, rel))
  }
  return { blocks, corrupted }
}

/** The path of block `hashHex` in a node's data directory (Garage's `<aa>/<bb>/<hash>` layout). */
export function blockPathOf(n: ClusterNodeProcess, hashHex: string): string {
  return join(n.proc.dir, 'data', hashHex.slice(0, 2), hashHex.slice(2, 4), hashHex)
}

/** Every table's lmdb tree (`<name>:table`), for content comparisons. */
export const TABLE_NAMES = [
  'bucket_v2',
  'bucket_alias',
  'key',
  'admin_token',
  'object',
  'version',
  'block_ref',
  'multipart_upload',
] as const

/**
 * The entries of every table as `n` stores them: table name → (hex key → hex value). Reads the
 * node's lmdb environment read-only while the node runs (lmdb is multi-process safe), so a test
 * can poll until the replicas agree byte for byte — the same criterion as the Merkle trees.
 */
export async function readTableContents(n: ClusterNodeProcess): Promise<Map<string, Map<string, string>>> {
  const out = new Map<string, Map<string, string>>()
  for (const name of TABLE_NAMES) {
    const raw = await readTree(n, `${name}:table`)
    out.set(name, new Map([...raw].map(([k, v]) => [k, v.toString('hex')])))
  }
  return out
}

/**
 * The raw entries of any lmdb tree of `n` (hex key → value bytes), read-only while it runs:
 * `block_local_rc`, `block_local_resync_queue`, `<table>:table`, … Empty when the tree does not
 * exist.
 */
export async function readTree(n: ClusterNodeProcess, tree: string): Promise<Map<string, Buffer>> {
  const env = openLmdbEnv({ path: join(n.proc.dir, 'meta', 'db.lmdb'), readOnly: true, maxDbs: 64, compression: false })
  try {
    let db: ReturnType<typeof env.openDB<Buffer, Buffer>> | undefined
    try {
      db = env.openDB<Buffer, Buffer>({ name: tree, encoding: 'binary', keyEncoding: 'binary' })
    } catch {
      db = undefined // never created on this node
    }
    const out = new Map<string, Buffer>()
    if (db !== undefined) for (const { key, value } of db.getRange({})) out.set(key.toString('hex'), Buffer.from(value))
    return out
  } finally {
    await env.close()
  }
}

/** Describes how two table dumps differ (empty string when equal). */
export function diffTables(a: Map<string, Map<string, string>>, b: Map<string, Map<string, string>>): string {
  const lines: string[] = []
  for (const name of TABLE_NAMES) {
    const ta = a.get(name) ?? new Map<string, string>()
    const tb = b.get(name) ?? new Map<string, string>()
    let onlyA = 0
    let onlyB = 0
    let differ = 0
    for (const [k, v] of ta) {
      const w = tb.get(k)
      if (w === undefined) onlyA++
      else if (w !== v) differ++
    }
    for (const k of tb.keys()) if (!ta.has(k)) onlyB++
    if (onlyA + onlyB + differ > 0)
      lines.push(`${name}: ${onlyA} only in the first, ${onlyB} only in the second, ${differ} differ`)
  }
  return lines.join('; ')
}

// ---------------------------------------------------------------------------------------------
// Replicated clusters

export interface ReplicatedClusterOptions {
  /** Number of storage nodes. Default 3. */
  nodes?: number
  /** Zone of each node; default `z1`, `z2`, … (one zone per node). */
  zones?: string[]
  /** Default 3. */
  replicationFactor?: number
  /** More toml lines (e.g. `rpc_timeout_msec = 2000`, `block_size = "256K"`). */
  configLines?: string[]
  /** More environment (after FAST_ENV). */
  env?: Record<string, string>
  /** Name of the shared bucket created through node 1's admin API. Default `shared`. */
  bucket?: string
  /**
   * Per-node RPC addresses, preloads and environment (e.g. `rpc_public_addr` pointing at a proxy
   * in front of node `i`, as the geo bench does, or the chaos suite's per-link routes); kept for
   * restarts of that node, and asked for the index of a node added with `addNode`. `env` comes
   * on top of the cluster's.
   */
  nodeOptions?: (
    i: number,
  ) => Pick<
    ClusterNodeOptions,
    'rpcBindAddr' | 'rpcPublicAddr' | 'preload' | 'env' | 'startTimeoutMs' | 's3ApiLines' | 'nodeArgs' | 'entry'
  >
  /**
   * How long each step of the start (mesh, layout on every node, bucket usable through every
   * node) may take. Default 30 s for the mesh, 20 s for the others: raise it for many nodes.
   */
  startStepTimeoutMs?: number
  /** Timeout of each request of `client(i)`. Default 30 s. */
  requestTimeoutMs?: number
  /** Called after each step of the start with its name and duration (for tests that report timings). */
  onStartStep?: (step: string, ms: number) => void
}

/**
 * A running cluster with a layout, a shared key and bucket. Node indexes are stable: a restart
 * replaces `nodes[i]` with the new process on the same directory (same id, new ports).
 */
export class ReplicatedCluster {
  readonly secret: string
  readonly configLines: string[]
  readonly env: Record<string, string>
  readonly nodes: ClusterNodeProcess[]
  readonly zones: string[]
  readonly bucket: string
  credentials: Credentials = { accessKeyId: '', secretAccessKey: '' }
  readonly #down = new Set<number>()
  readonly #frozen = new Set<number>()
  readonly #retired = new Set<number>()
  /** The output of each node's killed processes, oldest first (a restart starts a new one). */
  readonly #killedOutputs = new Map<number, string[]>()
  readonly #clients = new Map<string, S3Client>()
  readonly #nodeOptions: NonNullable<ReplicatedClusterOptions['nodeOptions']>
  readonly #requestTimeoutMs: number

  constructor(o: {
    secret: string
    configLines: string[]
    env: Record<string, string>
    nodes: ClusterNodeProcess[]
    zones: string[]
    bucket: string
    nodeOptions?: ReplicatedClusterOptions['nodeOptions']
    requestTimeoutMs?: number
  }) {
    this.#nodeOptions = o.nodeOptions ?? (() => ({}))
    this.#requestTimeoutMs = o.requestTimeoutMs ?? 30_000
    this.secret = o.secret
    this.configLines = o.configLines
    this.env = o.env
    this.nodes = o.nodes
    this.zones = o.zones
    this.bucket = o.bucket
  }

  node(i: number): ClusterNodeProcess {
    const n = this.nodes[i]
    if (n === undefined) throw new Error(`no node ${i}`)
    return n
  }

  /** Indexes of the nodes that are neither killed nor frozen. */
  upIndexes(): number[] {
    return this.nodes.map((_, i) => i).filter((i) => !this.#down.has(i) && !this.#frozen.has(i))
  }

  /** Indexes of the nodes clients may use: every node but the retired ones (down or not). */
  clientIndexes(): number[] {
    return this.nodes.map((_, i) => i).filter((i) => !this.#retired.has(i))
  }

  /** Running nodes clients may use. */
  servingIndexes(): number[] {
    return this.upIndexes().filter((i) => !this.#retired.has(i))
  }

  /**
   * Stops sending client requests to node `i` (a node about to leave the layout); it keeps
   * running and is still part of the mesh and of disk checks.
   */
  retire(i: number): void {
    this.#retired.add(i)
  }

  /** Lets clients use node `i` again (after `retire`, or a node added with `addNode`). */
  serve(i: number): void {
    this.#retired.delete(i)
  }

  isDown(i: number): boolean {
    return this.#down.has(i) || this.#frozen.has(i)
  }

  /** Raw-request target of node `i`'s S3 API with the shared key. */
  target(i: number): S3Target {
    return { endpoint: this.node(i).proc.endpoint, region: this.node(i).proc.region, credentials: this.credentials }
  }

  /** An AWS SDK client for node `i` (no retries, bounded timeouts); recreated after a restart. */
  client(i: number): S3Client {
    const endpoint = this.node(i).proc.endpoint
    let c = this.#clients.get(endpoint)
    if (c === undefined) {
      c = new S3Client({
        endpoint,
        region: this.node(i).proc.region,
        credentials: this.credentials,
        forcePathStyle: true,
        maxAttempts: 1,
        requestHandler: { connectionTimeout: 3_000, requestTimeout: this.#requestTimeoutMs },
      })
      this.#clients.set(endpoint, c)
    }
    return c
  }

  /** SIGKILL node `i`, keeping its directory for a restart. */
  async kill(i: number): Promise<void> {
    this.#down.add(i)
    const proc = this.node(i).proc
    await proc.kill({ keepDir: true })
    const l = this.#killedOutputs.get(i)
    if (l === undefined) this.#killedOutputs.set(i, [proc.output()])
    else l.push(proc.output())
  }

  /** What node `i`'s killed processes printed, oldest first (its current process: `proc.output()`). */
  killedOutputs(i: number): string[] {
    return this.#killedOutputs.get(i) ?? []
  }

  /** SIGSTOP node `i`: its sockets stay open but nothing answers (a black hole). */
  freeze(i: number): void {
    this.#frozen.add(i)
    this.node(i).proc.child.kill('SIGSTOP')
  }

  /** SIGCONT a frozen node. */
  thaw(i: number): void {
    if (!this.#frozen.delete(i)) return
    this.node(i).proc.child.kill('SIGCONT')
  }

  /**
   * Restarts a killed (or stopped with keepDir) node on its directory and waits until every
   * running node sees every running node up again.
   */
  async restart(i: number, o: { waitMesh?: boolean } = {}): Promise<ClusterNodeProcess> {
    const old = this.node(i)
    const bootstrap = this.upIndexes()
      .filter((j) => j !== i)
      .map((j) => this.node(j).rpcAddress)
    const fresh = await startClusterNode({
      ...this.#nodeOptions(i),
      secret: this.secret,
      configLines: this.configLines,
      env: { ...this.env, ...this.#nodeOptions(i).env },
      reuse: old.proc,
      bootstrap,
    })
    if (fresh.id !== old.id) throw new Error(`node ${i} came back with another id (${fresh.id} instead of ${old.id})`)
    this.nodes[i] = fresh
    this.#down.delete(i)
    if (o.waitMesh !== false) await this.waitMesh()
    return fresh
  }

  /**
   * Starts one more node (no role yet), bootstrapped from the running ones; returns its index.
   * Clients do not use it until `serve(i)`: it has no layout role, so no tables, yet.
   */
  async addNode(zone: string, opts: { meshTimeoutMs?: number } = {}): Promise<number> {
    const bootstrap = this.upIndexes().map((j) => this.node(j).rpcAddress)
    const o = this.#nodeOptions(this.nodes.length)
    const n = await startClusterNode({
      ...o,
      secret: this.secret,
      configLines: this.configLines,
      env: { ...this.env, ...o.env },
      bootstrap,
    })
    this.nodes.push(n)
    this.zones.push(zone)
    const i = this.nodes.length - 1
    this.retire(i)
    await this.waitMesh(opts.meshTimeoutMs)
    return i
  }

  /** Waits until each running node sees every running node up. */
  async waitMesh(timeoutMs = 30_000): Promise<void> {
    const up = this.upIndexes().map((i) => this.node(i))
    const ids = up.map((n) => n.id)
    await Promise.all(
      up.map((n) =>
        eventually(
          `node ${n.id.slice(0, 8)} to see ${ids.length} nodes up`,
          async () => {
            const seen = await upIds(n)
            return ids.every((id) => seen.includes(id))
          },
          { ...CLUSTER_WAIT, timeoutMs },
        ),
      ),
    )
  }

  /** Stops every node and removes every directory. */
  async stop(): Promise<void> {
    for (const i of this.#frozen) this.thaw(i)
    for (const c of this.#clients.values()) c.destroy()
    this.#clients.clear()
    await Promise.allSettled(this.nodes.map((n) => n.proc.stop(5_000)))
  }
}

/**
 * Starts a replicated cluster: N nodes in N zones (by default), RF 3, FAST_ENV, a layout applied
 * and seen everywhere, then a key and a bucket created through node 1's admin API and usable
 * through every node. On failure every started process is stopped.
 */
export async function startReplicatedCluster(o: ReplicatedClusterOptions = {}): Promise<ReplicatedCluster> {
  const count = o.nodes ?? 3
  const zones = o.zones ?? Array.from({ length: count }, (_, i) => `z${i + 1}`)
  const configLines = [`replication_factor = ${o.replicationFactor ?? 3}`, ...(o.configLines ?? [])]
  const env = { ...FAST_ENV, ...o.env }
  const secret = newRpcSecret()
  // All at once (a start costs seconds on a busy machine), then node 1 is told the others'
  // addresses; status exchange completes the mesh.
  let last = Date.now()
  const step = (name: string): void => {
    const now = Date.now()
    o.onStartStep?.(name, now - last)
    last = now
  }
  const started = await Promise.allSettled(
    Array.from({ length: count }, (_, i) => {
      const own = o.nodeOptions?.(i)
      return startClusterNode({ ...own, secret, configLines, env: { ...env, ...own?.env } })
    }),
  )
  const nodes = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []))
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected')
  if (failed !== undefined) {
    await Promise.all(nodes.map((x) => x.proc.kill()))
    throw failed.reason
  }
  step(`${count} processes started`)
  const cluster = new ReplicatedCluster({
    secret,
    configLines,
    env,
    nodes,
    zones: [...zones],
    bucket: o.bucket ?? 'shared',
    ...(o.nodeOptions === undefined ? {} : { nodeOptions: o.nodeOptions }),
    ...(o.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: o.requestTimeoutMs }),
  })
  try {
    const first = cluster.node(0)
    // Retried for the peers not reached yet: on a loaded machine a handshake can time out.
    let pending = nodes.slice(1).map((n) => n.rpcAddress)
    let failures = ''
    await eventually(
      'ConnectClusterNodes to reach every node',
      async () => {
        const r = await adminOk<Array<{ success: boolean; error: string | null }>>(first, 'ConnectClusterNodes', pending)
        failures = JSON.stringify(r.filter((x) => !x.success))
        pending = pending.filter((_, i) => r[i]?.success !== true)
        return pending.length === 0
      },
      { ...CLUSTER_WAIT, timeoutMs: o.startStepTimeoutMs ?? CLUSTER_WAIT.timeoutMs },
    ).catch((err: unknown) => {
      throw new Error(`ConnectClusterNodes failed: ${failures}`, { cause: err })
    })
    step('ConnectClusterNodes')
    await cluster.waitMesh(o.startStepTimeoutMs)
    step('mesh complete')
    await applyLayout(
      first,
      { roles: nodes.map((n, i) => ({ id: n.id, zone: zones[i] as string })) },
      nodes,
      o.startStepTimeoutMs,
    )
    step('layout on every node')
    cluster.credentials = await createKeyAndBucket(first, cluster.bucket)
    await waitBucketUsable(cluster, o.startStepTimeoutMs)
    step('key and bucket usable through every node')
    return cluster
  } catch (err) {
    await cluster.stop()
    throw err
  }
}

/** Creates an access key and a bucket (global alias `bucket`) allowed to it, through `n`'s admin API. */
export async function createKeyAndBucket(n: ClusterNodeProcess, bucket: string): Promise<Credentials> {
  // A 503 (a quorum write that timed out on a loaded machine, e.g. 5 nodes just started) is
  // retried, as a client would; a CreateBucket whose lost attempt did create the bucket then
  // answers 409, and the bucket is looked up by its alias.
  const retried = async <T>(name: string, body: unknown): Promise<{ status: number; data: T }> => {
    let r = await adminV2<T>(n, name, body)
    for (let attempt = 0; attempt < 4 && r.status === 503; attempt++) {
      await sleep(2_000)
      r = await adminV2<T>(n, name, body)
    }
    return r
  }
  const k = await retried<{ accessKeyId: string; secretAccessKey: string }>('CreateKey', { name: `${bucket}-key` })
  if (k.status !== 200) throw new Error(`CreateKey on ${n.id.slice(0, 8)} answered ${k.status}: ${JSON.stringify(k.data)}`)
  const key = k.data
  const created = await retried<{ id: string }>('CreateBucket', { globalAlias: bucket })
  if (created.status !== 200 && created.status !== 409)
    throw new Error(`CreateBucket on ${n.id.slice(0, 8)} answered ${created.status}: ${JSON.stringify(created.data)}`)
  const b =
    created.status === 409
      ? await adminOk<{ id: string }>(n, `GetBucketInfo?globalAlias=${encodeURIComponent(bucket)}`)
      : created.data
  await adminOk(n, 'AllowBucketKey', {
    bucketId: b.id,
    accessKeyId: key.accessKeyId,
    permissions: { read: true, write: true, owner: true },
  })
  return { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey }
}

/** Waits until the shared key can list the shared bucket through the given nodes (default: every serving node). */
export async function waitBucketUsable(
  cluster: ReplicatedCluster,
  timeoutMs = 20_000,
  indexes: number[] = cluster.servingIndexes(),
): Promise<void> {
  await Promise.all(
    indexes.map((i) =>
      eventually(
        `the shared key and bucket to be usable through node ${i}`,
        async () => {
          await cluster.client(i).send(new ListObjectsV2Command({ Bucket: cluster.bucket, MaxKeys: 1 }))
          return true
        },
        { ...CLUSTER_WAIT, timeoutMs },
      ),
    ),
  )
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
