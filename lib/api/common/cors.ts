/**
 * CORS for the S3 API and the website endpoint (port of garage_api_common::cors): which bucket
 * rule a cross-origin request matches, the headers of the answer, and the unauthenticated
 * OPTIONS preflight.
 *
 * Departures from Garage, following AWS: `Access-Control-Allow-Origin` echoes the request's
 * origin (or `*` for a `*` rule) instead of joining every allowed origin, which browsers reject
 * when a rule lists several; one `*` wildcard may appear inside an allowed origin or header
 * (`https://*.example.com`, `x-amz-*`); header names compare case-insensitively; `Vary` is set
 * whenever the bucket has CORS rules, so caches keep answers for different origins apart.
 * @module
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { BucketParams, CorsRule } from '../../model/bucket-table.ts'
import { ApiError, toApiError } from './errors.ts'
import type { ApiResponse } from './server.ts'

const VARY = 'Origin, Access-Control-Request-Headers, Access-Control-Request-Method'

/** A header of a request, as one string (repeated headers joined with commas). */
function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v.join(',') : v
}

/** `Access-Control-Request-Headers` split into names (empty when absent). */
export function requestedHeaders(headers: IncomingHttpHeaders): string[] {
  const h = header(headers, 'access-control-request-headers')
  if (h === undefined) return []
  return h
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
}

/** `pattern` with at most one `*` standing for any run of characters. */
function wildcardMatch(pattern: string, value: string): boolean {
  const star = pattern.indexOf('*')
  if (star < 0) return pattern === value
  const prefix = pattern.slice(0, star)
  const suffix = pattern.slice(star + 1)
  return value.length >= prefix.length + suffix.length && value.startsWith(prefix) && value.endsWith(suffix)
}

/**
 * True when `rule` allows a request from `origin` with `method` sending `headers`.
 *
 * @example
 * corsRuleMatches(rule, 'https://app.example.com', 'PUT', ['content-type'])
 * @internal
 */
export function corsRuleMatches(rule: CorsRule, origin: string, method: string, headers: readonly string[]): boolean {
  return (
    rule.allowOrigins.some((o) => wildcardMatch(o, origin)) &&
    rule.allowMethods.some((m) => m === '*' || m === method) &&
    headers.every((h) => rule.allowHeaders.some((a) => wildcardMatch(a.toLowerCase(), h.toLowerCase())))
  )
}

/** The first rule of `rules` that allows the request, if any. @internal */
export function findCorsRule(
  rules: readonly CorsRule[] | null,
  origin: string,
  method: string,
  headers: readonly string[],
): CorsRule | undefined {
  return rules?.find((r) => corsRuleMatches(r, origin, method, headers))
}

/**
 * The CORS headers answering a request from `origin` that `rule` allows. A preflight also gets
 * the allowed methods, the headers it asked for and the max age.
 * @internal
 */
export function corsResponseHeaders(
  rule: CorsRule,
  origin: string,
  preflight?: { requestHeaders: readonly string[] },
): Record<string, string> {
  const anyOrigin = rule.allowOrigins.includes('*')
  const out: Record<string, string> = {
    'access-control-allow-origin': anyOrigin ? '*' : origin,
    'access-control-allow-methods': rule.allowMethods.join(', '),
    vary: VARY,
  }
  if (!anyOrigin) out['access-control-allow-credentials'] = 'true'
  if (rule.exposeHeaders.length > 0) out['access-control-expose-headers'] = rule.exposeHeaders.join(', ')
  if (rule.maxAgeSeconds !== null) out['access-control-max-age'] = String(rule.maxAgeSeconds)
  if (preflight !== undefined && preflight.requestHeaders.length > 0) {
    out['access-control-allow-headers'] = preflight.requestHeaders.join(', ')
  }
  return out
}

/**
 * The CORS headers for a non-preflight request to a bucket: those of the first rule matching its
 * `Origin` and method, `Vary` alone when the bucket has rules but none matches, nothing for a
 * request without `Origin` or a bucket without rules.
 * @internal
 */
export function corsHeadersFor(
  params: Pick<BucketParams, 'cors'> | undefined,
  method: string,
  headers: IncomingHttpHeaders,
): Record<string, string> {
  const rules = params?.cors.v ?? null
  const origin = header(headers, 'origin')
  if (rules === null || rules.length === 0 || origin === undefined) return {}
  const rule = findCorsRule(rules, origin, method, [])
  return rule === undefined ? { vary: VARY } : corsResponseHeaders(rule, origin)
}

/** Copies `cors` into a response's headers (existing values of the same names are replaced). @internal */
export function withCorsHeaders(response: ApiResponse, cors: Record<string, string>): ApiResponse {
  if (Object.keys(cors).length === 0) return response
  return { ...response, headers: { ...response.headers, ...cors } }
}

/**
 * `err` as an API error carrying `cors` among its headers too (a copy: the original is left alone,
 * its headers object may be shared).
 * @internal
 */
export function withCorsError(err: unknown, cors: Record<string, string>): ApiError {
  const e = toApiError(err)
  if (Object.keys(cors).length === 0) return e
  return new ApiError(e.code, e.message, { cause: e.cause ?? e, headers: { ...e.headers, ...cors }, extra: e.extra })
}

/**
 * Answers a preflight for a bucket from its rules: 200 with the CORS headers of the first rule
 * allowing the requested origin, method and headers.
 *
 * @throws {ApiError} `InvalidRequest` without `Origin` or `Access-Control-Request-Method`;
 *   `AccessDenied` (403) when no rule allows the request.
 * @internal
 */
export function handleOptionsForBucket(headers: IncomingHttpHeaders, params: Pick<BucketParams, 'cors'>): ApiResponse {
  const origin = header(headers, 'origin')
  if (origin === undefined) throw new ApiError('InvalidRequest', 'Missing Origin header')
  const method = header(headers, 'access-control-request-method')
  if (method === undefined) throw new ApiError('InvalidRequest', 'Missing Access-Control-Request-Method header')
  const requestHeaders = requestedHeaders(headers)
  const rule = findCorsRule(params.cors.v, origin.trim(), method.trim(), requestHeaders)
  if (rule === undefined) {
    throw new ApiError('AccessDenied', 'CORSResponse: This CORS request is not allowed.', { headers: { vary: VARY } })
  }
  return { status: 200, headers: corsResponseHeaders(rule, origin.trim(), { requestHeaders }) }
}

/**
 * Answers a preflight whose bucket cannot be known without authentication: a name that is no
 * global alias may be some key's local alias, so everything is allowed (as Garage does); without
 * a bucket (ListBuckets) only GET is.
 * @internal
 */
export function handleOptionsPermissive(hasBucket: boolean, headers: IncomingHttpHeaders): ApiResponse {
  const out: Record<string, string> = {
    'access-control-allow-origin': '*',
    'access-control-allow-methods': hasBucket ? '*' : 'GET',
  }
  const requested = requestedHeaders(headers)
  if (requested.length > 0) out['access-control-allow-headers'] = requested.join(', ')
  return { status: 200, headers: out }
}
