/**
 * The admin API's endpoints (port of garage_api_admin::router_v2): `GET|POST /v2/<Name>`, the v1
 * and v0 paths Garage 2.x still translates (router-v1.ts), plus the special paths `/health`,
 * `/check`, `/metrics` and `OPTIONS *`. Pure: no I/O and no auth. The endpoint name is also the
 * name a token's scope lists.
 */
import { checkQueryEncoding } from '../common/validate.ts'
import type { AdminApiEndpointName } from './contract.ts'
import { AdminError } from './errors.ts'
import { ADMIN_API_ROUTES } from './routes.ts'
import { parseV1Route, type V1Route } from './router-v1.ts'

type Method = 'GET' | 'POST'

/**
 * Every v2 endpoint, with its HTTP method and whether it addresses nodes (`?node=`): the
 * contract's (contract.ts, which also declares each one's query, body and response), as plain
 * data (routes.ts), so that routing does not load TypeBox.
 */
export const ADMIN_ENDPOINTS = ADMIN_API_ROUTES

export type AdminEndpointName = AdminApiEndpointName

/** Endpoints outside `/v2/`; `Metrics` is also a scope name. */
export type SpecialEndpointName = 'Options' | 'Health' | 'CheckDomain' | 'Metrics' | 'GetOpenApi'

export type AdminRoute =
  | { kind: 'special'; name: SpecialEndpointName; query: URLSearchParams }
  | { kind: 'api'; name: AdminEndpointName; query: URLSearchParams; v1?: V1Route }

export const isAdminEndpointName = (name: string): name is AdminEndpointName => Object.hasOwn(ADMIN_ENDPOINTS, name)

/**
 * Routes a request; throws NoSuchEndpoint (404), MethodNotAllowed (405) or, for a query that is
 * not valid percent-encoded UTF-8, an InvalidArgument ApiError (rendered as InvalidRequest, 400).
 */
export function parseAdminRoute(method: string, rawUrl: string): AdminRoute {
  const q = rawUrl.indexOf('?')
  const path = q < 0 ? rawUrl : rawUrl.slice(0, q)
  const rawQuery = q < 0 ? '' : rawUrl.slice(q + 1)
  // `%FF` would silently become U+FFFD (another name): refused instead (InvalidRequest, 400).
  checkQueryEncoding(rawQuery)
  const query = new URLSearchParams(rawQuery)
  if (method === 'OPTIONS') return { kind: 'special', name: 'Options', query }
  const special = SPECIAL_PATHS[path]
  if (special !== undefined) {
    if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(path, 'GET')
    return { kind: 'special', name: special, query }
  }
  if (path.startsWith('/v1/') || path.startsWith('/v0/')) {
    const v1 = parseV1Route(method, path, query)
    return { kind: 'api', name: v1.name, query: v1.query, v1 }
  }
  if (!path.startsWith('/v2/')) {
    throw new AdminError('NoSuchEndpoint', `unknown admin API endpoint: ${path}`)
  }
  const name = path.slice(4)
  if (!isAdminEndpointName(name)) throw new AdminError('NoSuchEndpoint', `unknown admin API endpoint: ${name}`)
  const expected = ADMIN_ENDPOINTS[name].method
  if (method !== expected) throw methodNotAllowed(name, expected)
  return { kind: 'api', name, query }
}

const SPECIAL_PATHS: Record<string, SpecialEndpointName> = {
  '/health': 'Health',
  '/check': 'CheckDomain',
  '/metrics': 'Metrics',
  '/v2/openapi.json': 'GetOpenApi',
}

function methodNotAllowed(name: string, expected: Method): AdminError {
  return new AdminError('MethodNotAllowed', `${name} expects ${expected}`)
}
