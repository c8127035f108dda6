/**
 * The admin API server (port of garage_api_admin::api_server): routes `/v2/<Endpoint>` requests,
 * checks the bearer token (the config's `admin_token` / `metrics_token`, or a token of the
 * admin_token table checked against its scope and expiry), runs the handler and answers JSON.
 * Errors are JSON too: `{ code, message, region, path }`.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { Garage } from '../../model/garage.ts'
import type { AdminTokensApi } from '../../model/helper/admin-token.ts'
import type { BucketsApi, KeysApi } from '../../model/helper/admin.ts'
import type { LayoutApi } from '../../rpc/layout/api.ts'
import { unreachable } from '../../util/errors.ts'
import type { Logger } from '../../util/logger.ts'
import { type ApiError, incompleteBody, isClientAbort } from '../common/errors.ts'
import { type ApiHandler, type ApiResponse, type RequestContext, rawTarget } from '../common/server.ts'
import * as bucket from './bucket.ts'
import * as cluster from './cluster.ts'
import { type ConsoleOptions, handleConsole, isConsolePath } from './console.ts'
import type { AdminContext, AdminNodeView, AdminSettings, Caller } from './context.ts'
import { AdminError, adminErrorBody, toAdminError } from './errors.ts'
import * as key from './key.ts'
import * as layout from './layout.ts'
import { LOCAL_ADMIN_ENDPOINTS } from './node-endpoints.ts'
import { handleNodeScoped } from './node-rpc.ts'
import type { NodeMetrics } from '../common/metrics.ts'
import { ADMIN_ENDPOINTS, type AdminEndpointName, type AdminRoute, parseAdminRoute } from './router.ts'
import { readJsonBody } from './request.ts'
import type { AdminRequestValidator } from './validate.ts'
import * as special from './special.ts'
import * as token from './token.ts'

export interface AdminApiDeps {
  garage: Garage
  keys: KeysApi
  buckets: BucketsApi
  tokens: AdminTokensApi
  layout: LayoutApi
  node: AdminNodeView
  settings: AdminSettings
  metrics: NodeMetrics
  /** The web console under `/ui/` (console.ts); absent: no console. */
  console?: ConsoleOptions
}

const CORS = { 'access-control-allow-origin': '*' }

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest()

/** Constant-time comparison of two secrets of any length (their digests are compared). */
function secretEquals(given: string, expected: string): boolean {
  return timingSafeEqual(sha256(given), sha256(expected))
}

export class AdminApiServer implements ApiHandler {
  readonly name = 'admin'
  readonly #d: AdminApiDeps
  readonly #log: Logger
  #openApi: Promise<string> | undefined
  /**
   * Loaded with the first `/v2/` request: validation compiles the contract with TypeBox, which
   * adds ≈ 15–25 MB to the RSS of a node that may never be administered over HTTP.
   */
  #validator: Promise<AdminRequestValidator> | undefined

  constructor(deps: AdminApiDeps, log: Logger) {
    this.#d = deps
    this.#log = log
  }

  async handle(req: IncomingMessage, rctx: RequestContext): Promise<ApiResponse> {
    try {
      return await this.#handle(req, rctx)
    } catch (err) {
      // A client that hung up is its own doing (InvalidRequest, logged at debug), as on S3.
      const e = toAdminError(isClientAbort(err, req) ? incompleteBody(err) : err)
      if (e.status >= 500) this.#log.error(`${req.method} ${req.url} → ${e.code} [${rctx.requestId}]`, e.cause ?? e)
      else this.#log.debug(`${req.method} ${req.url} → ${e.code}: ${e.message}`)
      return this.#errorResponse(e, req)
    }
  }

  renderError(err: ApiError, req: IncomingMessage): ApiResponse {
    return this.#errorResponse(toAdminError(err), req)
  }

  #errorResponse(e: AdminError, req: IncomingMessage): ApiResponse {
    const path = (req.url ?? '/').split('?')[0] as string
    const headers: Record<string, string> = { 'content-type': 'application/json', ...CORS }
    if (e.code === 'Unauthorized') headers['www-authenticate'] = 'Bearer'
    return { status: e.status, headers, body: adminErrorBody(e, this.#d.settings.region, path) }
  }

  async #handle(req: IncomingMessage, rctx: RequestContext): Promise<ApiResponse> {
    const { method, rawPath: path } = rawTarget(req)
    const rawUrl = req.url ?? '/'
    if (this.#d.console !== undefined && isConsolePath(path)) return await handleConsole(this.#d.console, req, rctx, path)
    const route = parseAdminRoute(method, rawUrl)
    rctx.endpoint = route.name
    const d = this.#d
    if (route.kind === 'special') {
      const name = route.name
      switch (name) {
        case 'Options':
          return special.handleOptions()
        case 'Health':
          return special.handleHealth(d)
        case 'CheckDomain':
          return await special.handleCheckDomain({ garage: d.garage, settings: d.settings, query: route.query })
        case 'GetOpenApi':
          this.#openApi ??= import('./openapi.ts').then((m) => JSON.stringify(m.buildOpenApiDocument(), null, 2))
          return { status: 200, headers: { 'content-type': 'application/json', ...CORS }, body: await this.#openApi }
        case 'Metrics':
          await this.#authorizeMetrics(req)
          return await special.handleMetrics(d)
        default:
          throw unreachable(name)
      }
    }
    const caller = await this.#authorize(req, route.name)
    const body = await requestBody(route, req)
    this.#validator ??= import('./validate.ts').then((m) => new m.AdminRequestValidator())
    const validator = await this.#validator
    validator.check(route.name, route.query, body)
    const ctx: AdminContext = { ...d, query: route.query, body, caller }
    const result = await dispatch(route.name, ctx)
    return { status: 200, headers: { 'content-type': 'application/json', ...CORS }, body: JSON.stringify(result, null, 2) }
  }

  /** The bearer token of the request, or undefined when there is none. */
  #bearer(req: IncomingMessage): string | undefined {
    const h = req.headers.authorization
    if (h === undefined) return undefined
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h)
    if (m === null) throw new AdminError('Unauthorized', 'Authorization header must be "Bearer <token>"')
    return m[1]
  }

  async #authorize(req: IncomingMessage, endpoint: AdminEndpointName): Promise<Caller> {
    const s = this.#d.settings
    const bearer = this.#bearer(req)
    if (bearer === undefined) {
      if (s.adminToken === undefined && (await this.#d.tokens.list()).length === 0) throw notConfigured()
      throw new AdminError('Unauthorized', 'Authorization token must be provided')
    }
    if (bearer.includes('.')) {
      const info = await this.#d.tokens.verify(bearer, endpoint)
      if (info === undefined) throw invalidToken()
      return { kind: 'token', info }
    }
    if (s.adminToken !== undefined && secretEquals(bearer, s.adminToken)) return { kind: 'config', which: 'admin_token' }
    if (s.adminToken === undefined && (await this.#d.tokens.list()).length === 0) throw notConfigured()
    throw invalidToken()
  }

  /** `/metrics`: open unless a metrics token is set or required; admin tokens work too. */
  async #authorizeMetrics(req: IncomingMessage): Promise<void> {
    const s = this.#d.settings
    if (s.metricsToken === undefined && !s.metricsRequireToken) return
    const bearer = this.#bearer(req)
    if (bearer === undefined) throw new AdminError('Unauthorized', 'Authorization token must be provided')
    if (bearer.includes('.')) {
      if ((await this.#d.tokens.verify(bearer, 'Metrics')) === undefined) throw invalidToken()
      return
    }
    const okMetrics = s.metricsToken !== undefined && secretEquals(bearer, s.metricsToken)
    const okAdmin = s.adminToken !== undefined && secretEquals(bearer, s.adminToken)
    if (!(okMetrics || okAdmin)) throw invalidToken()
  }
}

/** The v2 body of a request: its JSON body for a POST, or what a v1 request stands for. */
async function requestBody(route: Extract<AdminRoute, { kind: 'api' }>, req: IncomingMessage): Promise<unknown> {
  const v1 = route.v1?.body
  if (v1 === undefined) return ADMIN_ENDPOINTS[route.name].method === 'POST' ? await readJsonBody(req) : undefined
  if (v1.from === 'request') return await readJsonBody(req)
  return v1.from === 'query' ? v1.value : undefined
}

function notConfigured(): AdminError {
  return new AdminError('AccessDenied', "Admin token isn't configured, admin API access is disabled for security.")
}

function invalidToken(): AdminError {
  return new AdminError('AccessDenied', 'Invalid authorization token provided')
}

function dispatch(name: AdminEndpointName, ctx: AdminContext): unknown {
  switch (name) {
    case 'GetClusterStatus':
      return cluster.handleGetClusterStatus(ctx)
    case 'GetClusterHealth':
      return cluster.handleGetClusterHealth(ctx)
    case 'GetClusterStatistics':
      return cluster.handleGetClusterStatistics(ctx)
    case 'ListAdminTokens':
      return token.handleListAdminTokens(ctx)
    case 'GetAdminTokenInfo':
      return token.handleGetAdminTokenInfo(ctx)
    case 'GetCurrentAdminTokenInfo':
      return token.handleGetCurrentAdminTokenInfo(ctx)
    case 'CreateAdminToken':
      return token.handleCreateAdminToken(ctx)
    case 'UpdateAdminToken':
      return token.handleUpdateAdminToken(ctx)
    case 'DeleteAdminToken':
      return token.handleDeleteAdminToken(ctx)
    case 'ListKeys':
      return key.handleListKeys(ctx)
    case 'GetKeyInfo':
      return key.handleGetKeyInfo(ctx)
    case 'CreateKey':
      return key.handleCreateKey(ctx)
    case 'ImportKey':
      return key.handleImportKey(ctx)
    case 'UpdateKey':
      return key.handleUpdateKey(ctx)
    case 'DeleteKey':
      return key.handleDeleteKey(ctx)
    case 'ListBuckets':
      return bucket.handleListBuckets(ctx)
    case 'GetBucketInfo':
      return bucket.handleGetBucketInfo(ctx)
    case 'CreateBucket':
      return bucket.handleCreateBucket(ctx)
    case 'UpdateBucket':
      return bucket.handleUpdateBucket(ctx)
    case 'DeleteBucket':
      return bucket.handleDeleteBucket(ctx)
    case 'CleanupIncompleteUploads':
      return bucket.handleCleanupIncompleteUploads(ctx)
    case 'InspectObject':
      return bucket.handleInspectObject(ctx)
    case 'AllowBucketKey':
      return bucket.handleAllowBucketKey(ctx)
    case 'DenyBucketKey':
      return bucket.handleDenyBucketKey(ctx)
    case 'AddBucketAlias':
      return bucket.handleAddBucketAlias(ctx)
    case 'RemoveBucketAlias':
      return bucket.handleRemoveBucketAlias(ctx)
    case 'GetClusterLayout':
      return layout.handleGetClusterLayout(ctx)
    case 'GetClusterLayoutHistory':
      return layout.handleGetClusterLayoutHistory(ctx)
    case 'UpdateClusterLayout':
      return layout.handleUpdateClusterLayout(ctx)
    case 'PreviewClusterLayoutChanges':
      return layout.handlePreviewClusterLayoutChanges(ctx)
    case 'ApplyClusterLayout':
      return layout.handleApplyClusterLayout(ctx)
    case 'RevertClusterLayout':
      return layout.handleRevertClusterLayout(ctx)
    case 'ClusterLayoutSkipDeadNodes':
      return layout.handleClusterLayoutSkipDeadNodes(ctx)
    case 'ConnectClusterNodes':
      return cluster.handleConnectClusterNodes(ctx)
    case 'GetNodeInfo':
    case 'GetNodeStatistics':
    case 'CreateMetadataSnapshot':
    case 'LaunchRepairOperation':
    case 'ListWorkers':
    case 'GetWorkerInfo':
    case 'GetWorkerVariable':
    case 'SetWorkerVariable':
    case 'ListBlockErrors':
    case 'GetBlockInfo':
    case 'RetryBlockResync':
    case 'PurgeBlocks':
      return handleNodeScoped(LOCAL_ADMIN_ENDPOINTS, name, ctx)
    default:
      throw unreachable(name)
  }
}
