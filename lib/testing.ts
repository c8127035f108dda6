/**
 * Real nodes for tests, yours and ours: `import { startTestNode, startTestCluster } from
 * 'garage-ts/testing'`. Each node runs on a fresh temporary directory and free ports, with an access
 * key and a bucket ready, and one call stops everything and removes its files.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createGarageNode, type GarageNode, type GarageNodeOptions } from './node.ts'
import type { KeyInfo } from './model/helper/admin.ts'

export interface TestNodeOptions extends GarageNodeOptions {
  /** Name of the bucket created for the key (global alias). Default `test-bucket`. */
  bucket?: string
}

export interface TestNode extends AsyncDisposable {
  node: GarageNode
  /** `http://127.0.0.1:<port>` */
  endpoint: string
  /** `http://127.0.0.1:<port>` of the website endpoint, when `s3_web` is set. */
  webEndpoint: string | undefined
  region: string
  bucket: string
  key: KeyInfo
  /** Settings for an S3 client: endpoint, region, path-style, credentials. */
  s3Config: {
    endpoint: string
    region: string
    forcePathStyle: true
    credentials: { accessKeyId: string; secretAccessKey: string }
  }
  /** The temporary directory holding metadata and data. */
  dir: string
  /** `http://127.0.0.1:<port>` of the admin API, when `admin.api_bind_addr` was given. */
  adminEndpoint: string | undefined
  /** The configured `admin_token`, if any. */
  adminToken: string | undefined
  /** Stops the node and removes its directory. */
  close(): Promise<void>
}

/** Starts a single-node store with a key (allowed to create buckets) and one bucket it owns. */
export async function startTestNode(options: TestNodeOptions = {}): Promise<TestNode> {
  const { bucket = 'test-bucket', ...rest } = options
  const dir = await mkdtemp(join(tmpdir(), 'garage-test-'))
  const node = createGarageNode({
    metadata_dir: join(dir, 'meta'),
    data_dir: join(dir, 'data'),
    env: {},
    ...rest,
    s3_api: { api_bind_addr: '127.0.0.1:0', s3_region: 'garage', ...rest.s3_api },
  })
  let closed: Promise<void> | undefined
  const close = (): Promise<void> =>
    (closed ??= (async () => {
      try {
        await node.stop()
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    })())
  try {
    await node.start()
    const key = await node.keys.create({ name: 'test', allowCreateBucket: true })
    await node.buckets.create(bucket)
    await node.buckets.allowKey(bucket, key.accessKeyId, { read: true, write: true, owner: true })
    const endpoint = node.s3Endpoint as string
    const region = node.config.s3Api.s3Region
    return {
      node,
      endpoint,
      webEndpoint: node.webEndpoint,
      region,
      bucket,
      key,
      dir,
      adminEndpoint: node.adminEndpoint,
      adminToken: node.config.admin.adminToken,
      s3Config: {
        endpoint,
        region,
        forcePathStyle: true,
        credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey },
      },
      close,
      [Symbol.asyncDispose]: close,
    }
  } catch (err) {
    await close()
    throw err
  }
}

export interface TestClusterOptions {
  /** Number of nodes, each in its own zone (`z1`, `z2`, ...). Default 3. */
  nodes?: number
  /** `replication_factor`. Default min(3, nodes). */
  replicationFactor?: number
  /** `consistency_mode`. Default `consistent`. */
  consistencyMode?: 'consistent' | 'degraded' | 'dangerous'
  /** `rpc_timeout_msec`: how long a quorum read or write may wait. Default Garage's (300 s). */
  rpcTimeoutMsec?: number
  /** Name of the bucket created for the key (global alias). Default `test-bucket`. */
  bucket?: string
  /** Capacity of each node's role, in bytes. Default 1 GB. */
  capacity?: number
  /**
   * How many of the nodes (the last ones) are gateways: a role without capacity, so they store
   * no object data but serve every API. Default 0.
   */
  gateways?: number
  /** Settings shared by every node (the cluster sets the addresses, secret, paths and roles). */
  nodeOptions?: GarageNodeOptions
  /** Give up if the cluster is not formed within this many ms. Default 20 s. */
  readyTimeoutMs?: number
}

/** One node of a {@link TestCluster}. */
export interface TestClusterNode {
  /** The running node (a new object after {@link TestClusterNode.restart}). */
  readonly node: GarageNode
  readonly nodeId: string
  /** `http://127.0.0.1:<port>` of its S3 API (kept across restarts). */
  readonly endpoint: string
  /** `http://127.0.0.1:<port>` of its admin API. */
  readonly adminEndpoint: string
  /** Its zone in the layout (`z1`, ...). */
  readonly zone: string
  /** The temporary directory holding its metadata and data. */
  readonly dir: string
  /** Settings for an S3 client talking to this node, with the cluster's key. */
  readonly s3Config: TestNode['s3Config']
  /** Stops the node (like a crash, but clean); its files stay until the cluster stops. */
  stop(): Promise<void>
  /** Starts a stopped node again on the same directory and ports. */
  restart(): Promise<void>
}

/** A cluster of in-process nodes on 127.0.0.1, formed and ready for S3 traffic. */
export interface TestCluster extends AsyncDisposable {
  nodes: TestClusterNode[]
  /** The S3 endpoint of every node, in node order. */
  endpoints: string[]
  region: string
  /** The bucket created for {@link TestCluster.key}. */
  bucket: string
  /** An access key allowed to create buckets, with read, write and owner rights on `bucket`. */
  key: KeyInfo
  credentials: { accessKeyId: string; secretAccessKey: string }
  /** The `admin_token` of every node. */
  adminToken: string
  /** Stops every node and removes their directories. Safe to call twice. */
  stop(): Promise<void>
}

/**
 * Starts `nodes` in-process nodes (default 3) in as many zones, with one random `rpc_secret`,
 * each listening on 127.0.0.1 free ports (S3, RPC and admin), bootstrapped to the first one;
 * assigns and applies a layout (replication factor min(3, nodes) unless given) and waits until
 * every node has it and sees every other node up; then creates a key and a bucket and waits
 * until every node holds them.
 *
 * @example
 * ```ts
 * await using cluster = await startTestCluster()
 * const a = new S3Client({ ...cluster.nodes[0].s3Config })
 * const b = new S3Client({ ...cluster.nodes[1].s3Config })
 * ```
 */
export async function startTestCluster(options: TestClusterOptions = {}): Promise<TestCluster> {
  const n = options.nodes ?? 3
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`nodes must be a positive integer, got ${n}`)
  const gateways = options.gateways ?? 0
  const rf = options.replicationFactor ?? Math.min(3, n - gateways)
  const bucket = options.bucket ?? 'test-bucket'
  const readyTimeoutMs = options.readyTimeoutMs ?? 20_000
  const base = options.nodeOptions ?? {}
  const secret = randomBytes(32).toString('hex')
  const adminToken = base.admin?.admin_token ?? randomBytes(16).toString('hex')
  const root = await mkdtemp(join(tmpdir(), 'garage-test-cluster-'))
  const members: ClusterMember[] = []
  let stopped: Promise<void> | undefined
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      try {
        const results = await Promise.allSettled(members.map((m) => m.current.stop()))
        const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []))
        if (errors.length > 0) throw new AggregateError(errors, 'errors while stopping the test cluster')
      } finally {
        await rm(root, { recursive: true, force: true })
      }
    })())
  try {
    const build = (i: number, bootstrap: string[], ports?: Ports): GarageNode =>
      createGarageNode({
        ...base,
        metadata_dir: join(root, `node${i + 1}`, 'meta'),
        data_dir: join(root, `node${i + 1}`, 'data'),
        replication_factor: rf,
        consistency_mode: options.consistencyMode ?? base.consistency_mode ?? 'consistent',
        ...(options.rpcTimeoutMsec === undefined ? {} : { rpc_timeout_msec: options.rpcTimeoutMsec }),
        rpc_secret: secret,
        rpc_bind_addr: `127.0.0.1:${ports?.rpc ?? 0}`,
        bootstrap_peers: bootstrap,
        s3_api: { s3_region: 'garage', ...base.s3_api, api_bind_addr: `127.0.0.1:${ports?.s3 ?? 0}` },
        admin: { ...base.admin, api_bind_addr: `127.0.0.1:${ports?.admin ?? 0}`, admin_token: adminToken },
        // Secrets only from the given env, never from process.env.
        env: { ...base.env },
        // Membership pings every 200 ms, so a stopped node is seen down within a second.
        timing: { ...CLUSTER_MEMBERSHIP_TIMING, ...base.timing },
      })
    for (let i = 0; i < n; i++) {
      const first = members[0]?.current.rpcAddress
      const node = build(i, first === undefined ? [] : [first])
      const m: ClusterMember = { index: i, current: node, ports: undefined }
      members.push(m)
      await node.start()
      m.ports = portsOf(node)
    }
    const deadline = Date.now() + readyTimeoutMs
    const ids = members.map((m) => m.current.nodeId)
    await waitUntil('every node to see every other node up', deadline, async () => {
      for (const m of members) {
        const up = await upNodeIds(m.current, adminToken)
        if (!ids.every((id) => up.has(id))) return false
      }
      return true
    })
    const first = members[0]?.current as GarageNode
    const version = first.layout.get().version + 1
    await first.layout.stage({
      roles: members.map((m) => ({
        id: m.current.nodeId,
        zone: `z${m.index + 1}`,
        capacity: m.index >= n - gateways ? null : (options.capacity ?? 1_000_000_000),
        tags: [],
      })),
    })
    await first.layout.apply(version)
    await waitUntil(`layout version ${version} on every node`, deadline, async () =>
      members.every((m) => m.current.layout.get().version >= version),
    )
    const key = await first.keys.create({ name: 'test', allowCreateBucket: true })
    await first.buckets.create(bucket)
    await first.buckets.allowKey(bucket, key.accessKeyId, { read: true, write: true, owner: true })
    // Full-copy tables are written at a majority: wait for the last replicas to hold the key and
    // the bucket too, since requests authenticate against the local copy.
    const counts = (node: GarageNode): string =>
      JSON.stringify(
        node
          .status()
          .tables.filter((t) => FULL_COPY_TABLES.includes(t.name))
          .map((t) => [t.name, t.entries]),
      )
    const want = counts(first)
    await waitUntil('the key and the bucket on every node', deadline, async () =>
      members.every((m) => counts(m.current) === want),
    )
    const region = first.config.s3Api.s3Region
    const credentials = { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey }
    // A restarted node finds the others through its saved peer list and these addresses.
    const others = (i: number): string[] =>
      members.flatMap((o) => (o.index === i || o.current.rpcAddress === undefined ? [] : [o.current.rpcAddress]))
    const nodes = members.map((m) => clusterNode(m, region, credentials, root, (ports) => build(m.index, others(m.index), ports)))
    return {
      nodes,
      endpoints: nodes.map((x) => x.endpoint),
      region,
      bucket,
      key,
      credentials,
      adminToken,
      stop,
      [Symbol.asyncDispose]: stop,
    }
  } catch (err) {
    await stop()
    throw err
  }
}

const FULL_COPY_TABLES = ['key', 'bucket_v2', 'bucket_alias']

/** Membership periods of an in-process test cluster: pings, status and reconnection from 200 ms. */
const CLUSTER_MEMBERSHIP_TIMING = {
  pingIntervalMsec: 200,
  statusExchangeIntervalMsec: 200,
  reconnectMinDelayMsec: 200,
  reconnectMaxDelayMsec: 600,
} as const

interface Ports {
  s3: number
  rpc: number
  admin: number
}

interface ClusterMember {
  index: number
  current: GarageNode
  ports: Ports | undefined
}

function portOf(url: string | undefined, what: string): number {
  const port = url === undefined ? Number.NaN : Number(/:(\d+)\/?$/.exec(url)?.[1])
  if (!Number.isInteger(port)) throw new Error(`the test node has no ${what} address (${url})`)
  return port
}

function portsOf(node: GarageNode): Ports {
  return {
    s3: portOf(node.s3Endpoint, 'S3'),
    rpc: portOf(node.rpcAddress, 'RPC'),
    admin: portOf(node.adminEndpoint, 'admin API'),
  }
}

function clusterNode(
  m: ClusterMember,
  region: string,
  credentials: { accessKeyId: string; secretAccessKey: string },
  root: string,
  rebuild: (ports: Ports | undefined) => GarageNode,
): TestClusterNode {
  const endpoint = m.current.s3Endpoint as string
  const adminEndpoint = m.current.adminEndpoint as string
  const nodeId = m.current.nodeId
  let restarting: Promise<void> | undefined
  return {
    get node() {
      return m.current
    },
    nodeId,
    endpoint,
    adminEndpoint,
    zone: `z${m.index + 1}`,
    dir: join(root, `node${m.index + 1}`),
    s3Config: { endpoint, region, forcePathStyle: true, credentials },
    stop: () => m.current.stop(),
    restart: () =>
      (restarting ??= (async () => {
        try {
          await m.current.stop()
          // Same ports, so the other nodes (and S3 clients) reach it where they knew it.
          const node = rebuild(m.ports)
          m.current = node
          await node.start()
        } finally {
          restarting = undefined
        }
      })()),
  }
}

/** Ids of the nodes `node` reports up, through its admin API. */
async function upNodeIds(node: GarageNode, adminToken: string): Promise<Set<string>> {
  const res = await fetch(`${node.adminEndpoint as string}/v2/GetClusterStatus`, {
    headers: { authorization: `Bearer ${adminToken}` },
  })
  if (res.status !== 200) throw new Error(`GetClusterStatus answered ${res.status}: ${await res.text()}`)
  const body = (await res.json()) as { nodes: Array<{ id: string; isUp: boolean }> }
  return new Set(body.nodes.filter((x) => x.isUp).map((x) => x.id))
}

async function waitUntil(what: string, deadline: number, check: () => Promise<boolean>): Promise<void> {
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`test cluster: timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
