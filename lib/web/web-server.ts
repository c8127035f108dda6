/**
 * The static website endpoint (port of garage_web::web_server): serves the objects of buckets that
 * have a website configuration, anonymously, with GET and HEAD (and CORS preflights). The Host
 * names the bucket (`<bucket><root_domain>`, or the whole host), through global aliases only,
 * resolved with the model's one policy (`garage.access`: this node's copy, quorum on a miss).
 * Objects are served by the S3 GET path (ranges and conditional requests included).
 *
 * Order of evaluation for a path:
 * 1. `/` and paths ending in `/` mean their index document;
 * 2. the first routing rule whose `KeyPrefixEquals` matches decides: without an error condition
 *    it redirects (or, with codes 200/404, serves another key) before any lookup; with
 *    `HttpErrorCodeReturnedEquals` 404 it applies only if the key is missing;
 * 3. a missing `a/b` whose `a/b/<index>` exists is a 302 to `a/b/`;
 * 4. an object with `x-amz-website-redirect-location` is a 301 there;
 * 5. a 4xx on GET serves the error document, with the original status and `x-garage-error`.
 * Departures from Garage: other methods answer 405 (Garage: 400), CORS headers are also put on
 * error answers, and a redirect without protocol keeps the request's (`X-Forwarded-Proto`).
 * @module
 */
import type { IncomingMessage } from 'node:http'
import { STATUS_CODES } from 'node:http'
import { corsHeadersFor, handleOptionsForBucket, withCorsError, withCorsHeaders } from '../api/common/cors.ts'
import { ApiError, toApiError } from '../api/common/errors.ts'
import { authorityToHost, hostToBucket } from '../api/common/host.ts'
import { type ApiHandler, type ApiResponse, type RequestContext, rawTarget } from '../api/common/server.ts'
import { currentVersion, handleGetObject } from '../api/s3/get.ts'
import type { MasterKeyring } from '../api/s3/sse-s3.ts'
import { WEBSITE_REDIRECT_LOCATION } from '../api/s3/website.ts'
import type { RoutingRule, WebsiteConfig } from '../model/bucket-table.ts'
import type { Garage } from '../model/garage.ts'
import { checkObjectKey } from '../model/helper/names.ts'
import type { Uuid } from '../util/data.ts'
import { utf8 } from '../util/data.ts'
import type { Logger } from '../util/logger.ts'

export interface WebSettings {
  /** Suffix of website host names (`.web.garage.tld`). */
  rootDomain: string
  /** SSE-S3 master keys, so SSE-S3 objects are served decrypted (as AWS's website endpoint does). */
  sseKeyring?: MasterKeyring | undefined
}

/** What to do with a request path, before looking anything up. @internal */
export type WebRoute =
  | { t: 'redirect'; code: number; location: string }
  | { t: 'rewrite'; code: number; key: string }
  | {
      t: 'load'
      key: string
      /** When `key` is missing and `ifExists` is there: 302 to `location`. */
      implicitRedirect?: { ifExists: string; location: string }
      /** What a 404 turns into (a routing rule with `HttpErrorCodeReturnedEquals` 404). */
      onNotFound?: { t: 'redirect'; code: number; location: string } | { t: 'rewrite'; code: number; key: string }
    }

/** A key as a URL path (segments percent-encoded, slashes kept). */
function encodePath(key: string): string {
  return key
    .split('/')
    .map((s) => encodeURIComponent(s))
    .join('/')
}

function ruleAction(
  rule: RoutingRule,
  baseKey: string,
  index: string,
  protocol: string,
): { t: 'redirect'; code: number; location: string } | { t: 'rewrite'; code: number; key: string } {
  const r = rule.redirect
  const prefix = rule.condition?.keyPrefix ?? ''
  let key = r.replaceKey ?? (r.replaceKeyPrefix !== null ? r.replaceKeyPrefix + baseKey.slice(prefix.length) : baseKey)
  if (r.httpCode === 200 || r.httpCode === 404) {
    if (key === '' || key.endsWith('/')) key += index
    return { t: 'rewrite', code: r.httpCode, key }
  }
  const path = `/${encodePath(key)}`
  const location = r.hostname === null ? path : `${r.protocol ?? protocol}://${r.hostname}${path}`
  return { t: 'redirect', code: r.httpCode, location }
}

/**
 * Maps a request path to a route (Garage's `path_to_keys` plus routing rules).
 *
 * @param rawPath - the path as received (percent-encoded), starting with `/`
 * @param protocol - the request's protocol, for redirects to another host without `Protocol`
 * @throws {ApiError} `InvalidRequest` for a path that is not absolute or not valid UTF-8.
 * @internal
 */
export function routeWebRequest(rawPath: string, website: WebsiteConfig, protocol = 'http'): WebRoute {
  let path: string
  try {
    path = decodeURIComponent(rawPath)
  } catch (err) {
    throw new ApiError('InvalidRequest', 'The path is not valid percent-encoded UTF-8', { cause: err })
  }
  if (!path.startsWith('/')) throw new ApiError('InvalidRequest', 'Path must start with a / (slash)')
  const baseKey = path.slice(1)
  const index = website.indexDocument
  const isFolder = baseKey === '' || baseKey.endsWith('/')
  const key = isFolder ? `${baseKey}${index}` : baseKey
  const implicitRedirect = isFolder ? undefined : { ifExists: `${baseKey}/${index}`, location: `${rawPath}/` }
  for (const rule of website.routingRules) {
    const prefix = rule.condition?.keyPrefix ?? null
    if (prefix !== null && !baseKey.startsWith(prefix)) continue
    const action = ruleAction(rule, baseKey, index, protocol)
    if (rule.condition?.httpErrorCode == null) return action
    return implicitRedirect === undefined
      ? { t: 'load', key, onNotFound: action }
      : { t: 'load', key, implicitRedirect, onNotFound: action }
  }
  return implicitRedirect === undefined ? { t: 'load', key } : { t: 'load', key, implicitRedirect }
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

const NOT_FOUND = (): ApiError => new ApiError('NoSuchBucket', 'The specified website does not exist')

/** True when `key` may name an object; any other path names none (no table is read for it). */
function isObjectKey(key: string): boolean {
  try {
    checkObjectKey(key)
    return true
  } catch {
    // Too long, empty or not UTF-8: no object has that key, which is all a visitor needs to know.
    return false
  }
}

/** The S3 GET of `key`, or NoSuchKey for a key no object can have (a path over 1024 bytes). */
function getWebObject(
  garage: Garage,
  headers: IncomingMessage['headers'],
  bucketId: Uuid,
  key: string,
  head: boolean,
  keyring: MasterKeyring | undefined,
): Promise<ApiResponse> {
  if (!isObjectKey(key)) return Promise.reject(new ApiError('NoSuchKey', 'The specified key does not exist.'))
  return handleGetObject(garage, headers, bucketId, key, { head, query: new URLSearchParams(), keyring })
}

export class WebServer implements ApiHandler {
  readonly name = 'web'
  readonly #garage: Garage
  readonly #settings: WebSettings
  readonly #log: Logger
  constructor(garage: Garage, settings: WebSettings, log: Logger) {
    this.#garage = garage
    this.#settings = settings
    this.#log = log
  }

  async handle(req: IncomingMessage, ctx: RequestContext): Promise<ApiResponse> {
    const method = (req.method ?? 'GET').toUpperCase()
    const authority = req.headers.host
    if (authority === undefined) throw new ApiError('InvalidRequest', 'HOST header required')
    const host = authorityToHost(authority)
    const bucketName = hostToBucket(host, this.#settings.rootDomain) ?? host
    ctx.bucket = bucketName
    // Global aliases only, resolved as every request path does (local first, quorum on a miss).
    const bucket = await this.#garage.access.findBucket(bucketName)
    if (bucket === undefined) throw NOT_FOUND()
    const { id: bucketId, params } = bucket
    const website = params.website.v
    if (website === null) throw NOT_FOUND()

    if (method === 'OPTIONS') {
      ctx.endpoint = 'Options'
      return handleOptionsForBucket(req.headers, params)
    }
    try {
      if (method !== 'GET' && method !== 'HEAD') {
        throw new ApiError('MethodNotAllowed', `The ${method} method is not allowed on a website`, {
          headers: { allow: 'GET, HEAD, OPTIONS' },
        })
      }
      ctx.endpoint = method === 'HEAD' ? 'HeadObject' : 'GetObject'
      const response = await this.#serve(req, method === 'HEAD', bucketId, website)
      return withCorsHeaders(response, corsHeadersFor(params, method, req.headers))
    } catch (err) {
      throw withCorsError(err, corsHeadersFor(params, method, req.headers))
    }
  }

  async #serve(req: IncomingMessage, head: boolean, bucketId: Uuid, website: WebsiteConfig): Promise<ApiResponse> {
    const { rawPath } = rawTarget(req)
    const forwarded = req.headers['x-forwarded-proto']
    const protocol = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim() || 'http'
    const route = routeWebRequest(rawPath, website, protocol)
    if (route.t === 'redirect') return redirect(route.code, route.location)
    try {
      if (route.t === 'rewrite') return await this.#rewrite(bucketId, route.key, route.code, head)
      let response: ApiResponse
      try {
        response = await getWebObject(this.#garage, req.headers, bucketId, route.key, head, this.#settings.sseKeyring)
      } catch (err) {
        if (toApiError(err).code !== 'NoSuchKey') throw err
        if (route.implicitRedirect !== undefined && (await this.#exists(bucketId, route.implicitRedirect.ifExists))) {
          return redirect(302, route.implicitRedirect.location)
        }
        const alt = route.onNotFound
        if (alt === undefined) throw err
        if (alt.t === 'redirect') return redirect(alt.code, alt.location)
        return await this.#rewrite(bucketId, alt.key, alt.code, head)
      }
      const target = response.headers?.[WEBSITE_REDIRECT_LOCATION]
      // A streamed body is a generator not started yet: dropping it reads no block.
      if (typeof target === 'string') return redirect(301, target)
      return response
    } catch (err) {
      const apiErr = toApiError(err)
      if (head || apiErr.status < 400 || apiErr.status >= 500 || website.errorDocument === null) throw apiErr
      return this.#errorDocument(bucketId, website.errorDocument, apiErr)
    }
  }

  /** Serves `key` in place of the requested one, with `code` (routing rules 200 and 404). */
  async #rewrite(bucketId: Uuid, key: string, code: number, head: boolean): Promise<ApiResponse> {
    const r = await getWebObject(this.#garage, {}, bucketId, key, head, this.#settings.sseKeyring)
    return { ...r, status: code }
  }

  async #errorDocument(bucketId: Uuid, document: string, error: ApiError): Promise<ApiResponse> {
    try {
      const key = document.replace(/^\/+/, '')
      const doc = await getWebObject(this.#garage, {}, bucketId, key, false, this.#settings.sseKeyring)
      const headers: Record<string, string | number | string[]> = { ...doc.headers, ...error.headers }
      headers['x-garage-error'] = error.message.split('\n').filter((l) => /^[\t\x20-\x7e]*$/.test(l))
      return { ...doc, status: error.status, headers }
    } catch (docErr) {
      // The original error is what the client should see; the document's failure is only logged.
      this.#log.warn(`could not serve error document ${document}: ${toApiError(docErr).message}`)
      throw error
    }
  }

  async #exists(bucketId: Uuid, key: string): Promise<boolean> {
    if (!isObjectKey(key)) return false
    return currentVersion(await this.#garage.objectTable.get(bucketId, utf8(key))) !== undefined
  }

  renderError(err: ApiError, _req: IncomingMessage, _ctx: RequestContext): ApiResponse {
    const title = `${err.status} ${STATUS_CODES[err.status] ?? 'Unknown'}`
    const body = `<!DOCTYPE html>
<html>
<head><title>${title}</title></head>
<body>
<h1>${title}</h1>
<ul>
<li>Code: ${escapeHtml(err.code)}</li>
<li>Message: ${escapeHtml(err.message)}</li>
</ul>
</body>
</html>
`
    return { status: err.status, headers: { ...err.headers, 'content-type': 'text/html; charset=utf-8' }, body }
  }
}

function redirect(status: number, location: string): ApiResponse {
  return { status, headers: { location } }
}
