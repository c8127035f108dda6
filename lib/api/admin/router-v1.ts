/**
 * The admin API v1 (and v0) paths that Garage 2.x still serves, translated into v2 endpoints
 * (port of garage_api_admin::router_v1, `Endpoint::from_v0` and `AdminApiRequest::from_v1` of
 * router_v2.rs), so that tools written for Garage 1.x keep working. The answer is the v2
 * endpoint's. The four v1 endpoints whose meaning changed in v2 (GetClusterStatus,
 * UpdateClusterLayout, DeleteKey, DeleteBucket) are refused with 400, as Garage does; v0 has the
 * same paths under `/v0/`, fewer of them kept (`V0_UNSUPPORTED`), and its GetKeyInfo always
 * showed the secret key. Pure: no I/O and no auth.
 */
import { AdminError } from './errors.ts'
import type { AdminEndpointName } from './router.ts'

/** A v1 request as the v2 endpoint it stands for. */
export interface V1Route {
  /** Garage's v1 endpoint name (for logs and metrics). */
  v1Name: string
  name: AdminEndpointName
  /** The v2 query parameters. */
  query: URLSearchParams
  /**
   * Where the v2 body comes from: the request's JSON body, none, or one built from the v1 query
   * (the alias endpoints took their parameters in the query).
   */
  body: { from: 'request' } | { from: 'none' } | { from: 'query'; value: Record<string, string> }
}

const REQUEST_BODY = { from: 'request' } as const
const NO_BODY = { from: 'none' } as const

/** Garage's names of the v1 endpoints refused by 2.x, with the reason (router_v2.rs). */
const NO_LONGER_SUPPORTED: Record<string, string> = {
  GetClusterStatus: 'its answer no longer describes the local node; use GET /v2/GetClusterStatus',
  UpdateClusterLayout: 'its body changed; use POST /v2/UpdateClusterLayout',
  DeleteKey: 'it now answers 200 to a POST; use POST /v2/DeleteKey?id=',
  DeleteBucket: 'it now answers 200 to a POST; use POST /v2/DeleteBucket?id=',
}

/** The endpoints Garage 2.x no longer serves under `/v0/` (router_v1.rs `from_v0`). */
const V0_UNSUPPORTED: readonly string[] = [
  'GetClusterStatus',
  'GetClusterHealth',
  'GetClusterLayout',
  'UpdateClusterLayout',
  'ApplyClusterLayout',
  'ImportKey',
  'UpdateKey',
]

/** A query parameter the v1 endpoint requires. */
function required(query: URLSearchParams, name: string, endpoint: string): string {
  const v = query.get(name)
  if (v === null) throw new AdminError('InvalidRequest', `${endpoint}: missing query parameter '${name}'`)
  return v
}

/** Only the named parameters of `query`, in a fresh object. */
function pick(query: URLSearchParams, names: readonly string[]): URLSearchParams {
  const out = new URLSearchParams()
  for (const n of names) {
    const v = query.get(n)
    if (v !== null) out.set(n, v)
  }
  return out
}

/**
 * The v2 route of a `/v1/…` (or `/v0/…`) request; throws NoSuchEndpoint (404) for a path that
 * version never had, and InvalidRequest (400) for the endpoints Garage 2.x refuses.
 */
export function parseV1Route(method: string, path: string, query: URLSearchParams): V1Route {
  const v0 = path.startsWith('/v0/')
  const v1 = matchV1(method, v0 ? `/v1/${path.slice(4)}` : path, query)
  if (v1 === undefined)
    throw new AdminError('NoSuchEndpoint', `unknown admin API ${v0 ? 'v0' : 'v1'} endpoint: ${method} ${path}`)
  if (v0 && V0_UNSUPPORTED.includes(v1)) throw new AdminError('InvalidRequest', `v0/ endpoint is no longer supported: ${v1}`)
  // v0's GetKeyInfo always showed the secret key.
  if (v0 && v1 === 'GetKeyInfo') query.set('showSecretKey', 'true')
  const reason = NO_LONGER_SUPPORTED[v1]
  if (reason !== undefined) throw new AdminError('InvalidRequest', `v1/ endpoint is no longer supported: ${v1} (${reason})`)
  const route = (name: AdminEndpointName, q: URLSearchParams, body: V1Route['body']): V1Route => ({
    v1Name: v1,
    name,
    query: q,
    body,
  })
  const none = new URLSearchParams()
  switch (v1) {
    case 'GetClusterHealth':
      return route('GetClusterHealth', none, NO_BODY)
    case 'ConnectClusterNodes':
      return route('ConnectClusterNodes', none, REQUEST_BODY)
    case 'GetClusterLayout':
      return route('GetClusterLayout', none, NO_BODY)
    case 'ApplyClusterLayout':
      return route('ApplyClusterLayout', none, REQUEST_BODY)
    case 'RevertClusterLayout':
      return route('RevertClusterLayout', none, NO_BODY)
    case 'ListKeys':
      return route('ListKeys', none, NO_BODY)
    case 'GetKeyInfo': {
      const q = pick(query, ['id', 'search'])
      // v1 showed the secret only for `showSecretKey=true`, as v2 does.
      if (query.get('showSecretKey') === 'true') q.set('showSecretKey', 'true')
      return route('GetKeyInfo', q, NO_BODY)
    }
    case 'CreateKey':
      return route('CreateKey', none, REQUEST_BODY)
    case 'ImportKey':
      return route('ImportKey', none, REQUEST_BODY)
    case 'UpdateKey':
      return route('UpdateKey', pick(query, ['id']), REQUEST_BODY)
    case 'ListBuckets':
      return route('ListBuckets', none, NO_BODY)
    case 'GetBucketInfo':
      return route('GetBucketInfo', pick(query, ['id', 'globalAlias']), NO_BODY)
    case 'CreateBucket':
      return route('CreateBucket', none, REQUEST_BODY)
    case 'UpdateBucket':
      return route('UpdateBucket', pick(query, ['id']), REQUEST_BODY)
    case 'BucketAllowKey':
      return route('AllowBucketKey', none, REQUEST_BODY)
    case 'BucketDenyKey':
      return route('DenyBucketKey', none, REQUEST_BODY)
    case 'GlobalAliasBucket':
    case 'GlobalUnaliasBucket': {
      const value = { bucketId: required(query, 'id', v1), globalAlias: required(query, 'alias', v1) }
      return route(v1 === 'GlobalAliasBucket' ? 'AddBucketAlias' : 'RemoveBucketAlias', none, { from: 'query', value })
    }
    case 'LocalAliasBucket':
    case 'LocalUnaliasBucket': {
      const value = {
        bucketId: required(query, 'id', v1),
        accessKeyId: required(query, 'accessKeyId', v1),
        localAlias: required(query, 'alias', v1),
      }
      return route(v1 === 'LocalAliasBucket' ? 'AddBucketAlias' : 'RemoveBucketAlias', none, { from: 'query', value })
    }
    default:
      throw new AdminError('NoSuchEndpoint', `unknown admin API v1 endpoint: ${v1}`)
  }
}

/** Garage's v1 endpoint name for a method and path (router_v1.rs, in its order). */
function matchV1(method: string, path: string, query: URLSearchParams): string | undefined {
  const has = (n: string): boolean => query.has(n)
  switch (`${method} ${path}`) {
    case 'GET /v1/status':
      return 'GetClusterStatus'
    case 'GET /v1/health':
      return 'GetClusterHealth'
    case 'POST /v1/connect':
      return 'ConnectClusterNodes'
    case 'GET /v1/layout':
      return 'GetClusterLayout'
    case 'POST /v1/layout':
      return 'UpdateClusterLayout'
    case 'POST /v1/layout/apply':
      return 'ApplyClusterLayout'
    case 'POST /v1/layout/revert':
      return 'RevertClusterLayout'
    case 'GET /v1/key':
      return has('id') || has('search') ? 'GetKeyInfo' : 'ListKeys'
    case 'POST /v1/key':
      return has('id') ? 'UpdateKey' : 'CreateKey'
    case 'POST /v1/key/import':
      return 'ImportKey'
    case 'DELETE /v1/key':
      return has('id') ? 'DeleteKey' : undefined
    case 'GET /v1/bucket':
      return has('id') || has('globalAlias') ? 'GetBucketInfo' : 'ListBuckets'
    case 'POST /v1/bucket':
      return 'CreateBucket'
    case 'DELETE /v1/bucket':
      return has('id') ? 'DeleteBucket' : undefined
    case 'PUT /v1/bucket':
      return has('id') ? 'UpdateBucket' : undefined
    case 'POST /v1/bucket/allow':
      return 'BucketAllowKey'
    case 'POST /v1/bucket/deny':
      return 'BucketDenyKey'
    case 'PUT /v1/bucket/alias/global':
      return 'GlobalAliasBucket'
    case 'DELETE /v1/bucket/alias/global':
      return 'GlobalUnaliasBucket'
    case 'PUT /v1/bucket/alias/local':
      return 'LocalAliasBucket'
    case 'DELETE /v1/bucket/alias/local':
      return 'LocalUnaliasBucket'
    default:
      return undefined
  }
}
