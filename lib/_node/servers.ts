/**
 * Start stage 5: the HTTP servers the configuration enables. S3 always; static websites when
 * `[s3_web]` is set; K2V when `[k2v_api]` is set; the admin API when `admin.api_bind_addr` is set, with the metrics every
 * server reports to. Also answers node-scoped admin requests from other nodes (`admin/local`
 * RPC), whether or not this node serves the admin API itself.
 */
import { AdminApiServer } from '../api/admin/api-server.ts'
import { clusterHealth } from '../api/admin/cluster.ts'
import { findConsoleAssets } from '../api/admin/console.ts'
import type { AdminClusterView, AdminNodeView } from '../api/admin/context.ts'
import { LOCAL_ADMIN_ENDPOINTS } from '../api/admin/node-endpoints.ts'
import { callAdminLocal, registerAdminRpc } from '../api/admin/node-rpc.ts'
import { NodeMetrics, type NodeStatsSource } from '../api/common/metrics.ts'
import { type ApiServer, type BindAddress, startApiServer } from '../api/common/server.ts'
import { K2vApiServer } from '../api/k2v/api-server.ts'
import { S3ApiServer } from '../api/s3/api-server.ts'
import { loadMasterKeyring } from '../api/s3/sse-s3.ts'
import type { Garage } from '../model/garage.ts'
import type { AdminTokensApi } from '../model/helper/admin-token.ts'
import type { BucketsApi, KeysApi } from '../model/helper/admin.ts'
import type { LayoutApi } from '../rpc/layout/api.ts'
import type { BackgroundRunner } from '../util/background/worker.ts'
import type { BindAddr, ResolvedConfig } from '../util/config.ts'
import type { Logger } from '../util/logger.ts'
import { GARAGE_TS_VERSION } from '../util/version.ts'
import { WebServer } from '../web/web-server.ts'
import type { ClusterMembership } from './cluster.ts'
import { stage, type Teardown } from './teardown.ts'

export interface StartServersOptions {
  config: ResolvedConfig
  garage: Garage
  /** The node's programmatic APIs, which the admin API serves over HTTP. */
  apis: { keys: KeysApi; buckets: BucketsApi; tokens: AdminTokensApi; layout: LayoutApi }
  cluster: Pick<ClusterMembership, 'netApp' | 'system' | 'layoutManager'>
  runner: BackgroundRunner
  /** Live views of the node object (it changes state after this stage). */
  node: {
    id: string
    running(): boolean
    rpcAddress(): string | undefined
    status: NodeStatsSource['status']
  }
  log: Logger
}

export interface Servers {
  s3: ApiServer
  web: ApiServer | undefined
  /** The K2V API, when `[k2v_api]` is set. */
  k2v: ApiServer | undefined
  admin: ApiServer | undefined
  /** Closes the servers, the last started first. */
  teardown: Teardown
}

export function startServers(o: StartServersOptions): Promise<Servers> {
  const { config: c, garage, log } = o
  return stage(async (defer) => {
    const adminNode = adminNodeView(o)
    const netApp = o.cluster.netApp
    if (netApp !== undefined) registerAdminRpc(netApp, LOCAL_ADMIN_ENDPOINTS, { garage, node: adminNode }, log.withTag('admin'))
    // Metrics are only readable through the admin API: collect them only when it runs.
    const metrics =
      c.admin.apiBindAddr === undefined
        ? undefined
        : new NodeMetrics({
            nodeId: o.node.id,
            replicationFactor: c.replicationFactor,
            version: GARAGE_TS_VERSION,
            status: o.node.status,
            health: () => clusterHealth(adminNode),
          })
    const s3 = c.s3Api
    const s3Log = log.withTag('s3')
    // SSE-S3 master keys: configured, or generated in metadata_dir on a node outside a cluster.
    const sseKeyring = await loadMasterKeyring({
      configured: s3.sseMasterKeys,
      metadataDir: c.metadataDir,
      inCluster: c.rpcSecret !== undefined,
      log: s3Log,
    })
    const s3Handler = new S3ApiServer(
      garage,
      { region: s3.s3Region, rootDomain: s3.rootDomain, sseKeyring, minPartSize: s3.minPartSize },
      s3Log,
    )
    const s3Server = await startApiServer(bindOf(s3.apiBindAddr), s3Handler, s3Log, { observer: metrics?.observer('s3') })
    defer(() => s3Server.close())
    let webServer: ApiServer | undefined
    const web = c.s3Web
    if (web !== undefined) {
      const webLog = log.withTag('web')
      const server = await startApiServer(
        bindOf(web.bindAddr),
        new WebServer(garage, { rootDomain: web.rootDomain, sseKeyring }, webLog),
        webLog,
        {
          observer: metrics?.observer('web'),
        },
      )
      webServer = server
      defer(() => server.close())
    }
    // The K2V API (port 3904 in Garage's examples), signed for the S3 region.
    let k2vServer: ApiServer | undefined
    const k2v = c.k2vApi
    if (k2v !== undefined) {
      const k2vLog = log.withTag('k2v')
      const server = await startApiServer(
        bindOf(k2v.apiBindAddr),
        new K2vApiServer(garage, { region: s3.s3Region }, k2vLog),
        k2vLog,
        {
          observer: metrics?.observer('k2v'),
        },
      )
      k2vServer = server
      defer(() => server.close())
    }
    // The admin API (port 3903 in Garage's examples).
    let adminServer: ApiServer | undefined
    const adminBind = c.admin.apiBindAddr
    if (adminBind !== undefined && metrics !== undefined) {
      const adminLog = log.withTag('admin')
      const handler = new AdminApiServer(
        {
          garage,
          ...o.apis,
          metrics,
          settings: {
            adminToken: c.admin.adminToken,
            metricsToken: c.admin.metricsToken,
            metricsRequireToken: c.admin.metricsRequireToken,
            region: s3.s3Region,
            s3RootDomain: s3.rootDomain,
            webRootDomain: c.s3Web?.rootDomain,
          },
          node: adminNode,
          // The web console (/ui/), which reaches this node's S3 API through /ui/s3/.
          ...(c.admin.console ? { console: { assets: findConsoleAssets(), s3: s3Handler, region: s3.s3Region } } : {}),
        },
        adminLog,
      )
      const server = await startApiServer(bindOf(adminBind), handler, adminLog, { observer: metrics.observer('admin') })
      adminServer = server
      defer(() => server.close())
    }
    return { s3: s3Server, web: webServer, k2v: k2vServer, admin: adminServer }
  })
}

/** This node as the admin API sees it (locally, and for `admin/local` requests from other nodes). */
function adminNodeView(o: StartServersOptions): AdminNodeView {
  const { config: c, runner } = o
  const { netApp, system: sys, layoutManager } = o.cluster
  const cluster: AdminClusterView | undefined =
    sys === undefined
      ? undefined
      : {
          rpcAddress: () => o.node.rpcAddress(),
          nodes: () => sys.peerStatus(),
          layout: () => layoutManager.history(),
          connect: (peer) => sys.connect(peer),
          ...(netApp === undefined ? {} : { callAdmin: callAdminLocal.bind(undefined, netApp) }),
        }
  return {
    nodeId: o.node.id,
    metadataDir: c.metadataDir,
    dataDir: c.dataDir,
    replicationFactor: c.replicationFactor,
    rpcPublicAddr: c.rpcPublicAddr === undefined ? undefined : `${c.rpcPublicAddr.host}:${c.rpcPublicAddr.port}`,
    ...(cluster === undefined ? {} : { cluster }),
    running: () => o.node.running(),
    workers: () => runner.list(),
    variables: () => runner.variables(),
    spawnWorker: (w) => runner.spawn(w),
    log: o.log.withTag('repair'),
  }
}

/** A bind address as node:http takes it (a Unix socket path or host and port). */
function bindOf(a: BindAddr): BindAddress {
  return 'path' in a ? a : { host: a.host, port: a.port }
}
