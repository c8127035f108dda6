/** What every admin handler receives (port of the `Admin` / `Garage` pair Garage passes around). */
import type { Garage } from '../../model/garage.ts'
import type { AdminTokenInfo, AdminTokensApi } from '../../model/helper/admin-token.ts'
import type { BucketsApi, KeysApi } from '../../model/helper/admin.ts'
import type { LayoutApi } from '../../rpc/layout/api.ts'
import type { LayoutHistory } from '../../rpc/layout/history.ts'
import type { Logger } from '../../util/logger.ts'
import type { PeerStatus } from '../../rpc/system.ts'
import type { Worker, WorkerInfo, WorkerVariable } from '../../util/background/worker.ts'
import type { NodeMetrics } from '../common/metrics.ts'
import type { AdminLocalRequest, AdminLocalResponse } from './node-rpc.ts'

/** The cluster as membership (lib/rpc/system.ts) and the layout manager see it. */
export interface AdminClusterView {
  /** `<node id>@host:port` of this node, if it has an address others can reach. */
  rpcAddress(): string | undefined
  /** Every known node, this one first. */
  nodes(): PeerStatus[]
  /** The current layout history. */
  layout(): LayoutHistory
  /** Connects to `<node id>@host:port`. */
  connect(peer: string): Promise<void>
  /**
   * Runs the local handler of a node-scoped admin request on another node (the `admin/local`
   * RPC, see node-rpc.ts).
   */
  callAdmin?(nodeId: string, req: AdminLocalRequest): Promise<AdminLocalResponse>
}

/** This node as the admin API sees it; node.ts provides it. */
export interface AdminNodeView {
  readonly nodeId: string
  readonly metadataDir: string
  readonly dataDir: string
  readonly replicationFactor: number
  /** `host:port` other nodes reach this one at, if known. */
  readonly rpcPublicAddr?: string
  /** Membership and layout, when the node runs in a cluster (`rpc_secret` set). */
  readonly cluster?: AdminClusterView
  running(): boolean
  workers(): WorkerInfo[]
  variables(): ReadonlyMap<string, WorkerVariable>
  /** Starts a background worker on this node (repairs). */
  spawnWorker?(worker: Worker): void
  /** Where node-scoped operations (repairs) log. */
  readonly log?: Logger
}

export interface AdminSettings {
  /** `admin_token` of the config: every endpoint. */
  adminToken?: string
  /** `metrics_token` of the config: `/metrics` only. */
  metricsToken?: string
  metricsRequireToken: boolean
  /** Region named in error bodies (the S3 region, as Garage). */
  region: string
  s3RootDomain?: string
  webRootDomain?: string
}

/** Who called: a token from the config, or one of the admin token table. */
export type Caller =
  | { kind: 'none' }
  | { kind: 'config'; which: 'admin_token' | 'metrics_token' }
  | { kind: 'token'; info: AdminTokenInfo }

export interface AdminContext {
  readonly garage: Garage
  readonly keys: KeysApi
  readonly buckets: BucketsApi
  readonly tokens: AdminTokensApi
  /** The cluster layout (`node.layout`). */
  readonly layout: LayoutApi
  readonly node: AdminNodeView
  readonly settings: AdminSettings
  readonly metrics: NodeMetrics
  readonly query: URLSearchParams
  /** The parsed JSON body (undefined for GET or an empty body). */
  readonly body: unknown
  readonly caller: Caller
}

/** `{ success: { <node id>: … }, error: { <node id>: message } }`, Garage's per-node answer. */
export interface MultiResponse<T> {
  success: Record<string, T>
  error: Record<string, string>
}

/** What a node-scoped handler needs: this node's model and view, on whichever node runs it. */
export type NodeAdminContext = Pick<AdminContext, 'garage' | 'node'>
