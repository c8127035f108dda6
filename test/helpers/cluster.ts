/**
 * Clusters of `garage server` child processes: each node gets the same `rpc_secret`,
 * `rpc_bind_addr = 127.0.0.1:0`, an admin API on a free port, and `bootstrap_peers` pointing
 * wherever the test says (usually node 1). Membership runs with 1 s periods
 * (`GARAGE_TS_TEST_RPC_INTERVAL_MSEC`) so failures show within seconds.
 */
import { randomBytes } from 'node:crypto'
import { type ServerProcess, startServerProcess } from './server-process.ts'

export const ADMIN_TOKEN = 'cluster-test-admin-token'
const RPC_INTERVAL_MS = 1_000

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
}

export const newRpcSecret = (): string => randomBytes(32).toString('hex')

/** Starts one node; resolves once its S3 API answers and its RPC address is printed. */
export async function startClusterNode(o: ClusterNodeOptions = {}): Promise<ClusterNodeProcess> {
  const secret = o.secret ?? newRpcSecret()
  const proc = await startServerProcess({
    configLines: [
      `rpc_secret = "${secret}"`,
      'rpc_bind_addr = "127.0.0.1:0"',
      `bootstrap_peers = [${(o.bootstrap ?? []).map((p) => JSON.stringify(p)).join(', ')}]`,
      ...(o.configLines ?? []),
      '[admin]',
      'api_bind_addr = "127.0.0.1:0"',
      `admin_token = "${ADMIN_TOKEN}"`,
    ],
    env: { GARAGE_TS_TEST_RPC_INTERVAL_MSEC: String(RPC_INTERVAL_MS) },
    ...(o.reuse === undefined ? {} : { reuse: { dir: o.reuse.dir, credentials: o.reuse.credentials } }),
  })
  try {
    const deadline = Date.now() + 10_000
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
  o: { secret?: string; configLines?: string[] } = {},
): Promise<ClusterNodeProcess[]> {
  const secret = o.secret ?? newRpcSecret()
  const configLines = o.configLines ?? []
  const first = await startClusterNode({ secret, configLines })
  try {
    const rest = await Promise.all(
      Array.from({ length: n - 1 }, () => startClusterNode({ secret, bootstrap: [first.rpcAddress], configLines })),
    )
    return [first, ...rest]
  } catch (err) {
    await first.proc.kill()
    throw err
  }
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
  })
  const text = await res.text()
  return { status: res.status, data: (text === '' ? undefined : JSON.parse(text)) as T }
}

export async function clusterStatus(node: ClusterNodeProcess): Promise<StatusNode[]> {
  const r = await adminV2<{ nodes: StatusNode[] }>(node, 'GetClusterStatus')
  if (r.status !== 200) throw new Error(`GetClusterStatus answered ${r.status}`)
  return r.data.nodes
}

/** Polls `check` until it returns true; throws with `what` and the last state after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      if (await check()) return
    } catch (err) {
      lastError = err // the node may be restarting: keep polling until the deadline
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`, { cause: lastError })
    await sleep(200)
  }
}

/** Ids of the nodes `node` reports up (itself included). */
export async function upIds(node: ClusterNodeProcess): Promise<string[]> {
  return (await clusterStatus(node)).filter((n) => n.isUp).map((n) => n.id)
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
