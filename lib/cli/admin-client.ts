/**
 * The CLI's client for the admin API v2 (`GET|POST /v2/<Endpoint>`, bearer token, JSON in and
 * out, errors as `{code, message}`). Garage's own CLI talks to the node over RPC; ours uses the
 * admin HTTP API, so it needs `[admin] api_bind_addr` and a token. Uses `node:http`, which also
 * reaches unix sockets (`api_bind_addr = "/run/garage/admin.sock"`).
 * @internal
 */

import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { existsSync } from 'node:fs'
import {
  ADMIN_API_ROUTES,
  type AdminApiEndpointName,
  type AdminApiMultiResponse,
  type AdminApiResponse,
  type AdminApiRoute,
  type BindAddr,
  readConfigFile,
  resolveConfig,
} from '../index.ts'
import { CliError } from './_errors.ts'

/** Where the admin API listens. */
export type AdminTarget =
  | { kind: 'tcp'; protocol: 'http:' | 'https:'; host: string; port: number }
  | { kind: 'unix'; path: string }

/** `http://127.0.0.1:3903` or `unix:/run/garage/admin.sock`: how messages name a target. */
export function formatTarget(t: AdminTarget): string {
  if (t.kind === 'unix') return `unix:${t.path}`
  const host = t.host.includes(':') ? `[${t.host}]` : t.host
  return `${t.protocol}//${host}:${t.port}`
}

/** A wildcard listen address is reached through the loopback of the same family. */
function connectHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1'
  if (host === '::' || host === '[::]') return '::1'
  return host
}

/**
 * Parse `--admin-addr` / `GARAGE_ADMIN_ADDR`: `host:port`, `[ipv6]:port`, `http(s)://host:port`
 * or a unix socket path.
 */
export function parseAdminAddr(text: string): AdminTarget {
  const value = text.trim()
  if (value.startsWith('/')) return { kind: 'unix', path: value }
  if (value.startsWith('unix:')) return { kind: 'unix', path: value.slice('unix:'.length) }
  if (/^https?:\/\//i.test(value)) {
    let url: URL
    try {
      url = new URL(value)
    } catch (err) {
      throw new CliError(`invalid admin API address '${text}'`, { cause: err })
    }
    const protocol = url.protocol === 'https:' ? 'https:' : 'http:'
    const port = url.port === '' ? (protocol === 'https:' ? 443 : 80) : Number(url.port)
    return { kind: 'tcp', protocol, host: connectHost(url.hostname.replace(/^\[|\]$/g, '')), port }
  }
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(value) ?? /^([^:]*):(\d+)$/.exec(value)
  const port = m === null ? Number.NaN : Number(m[2])
  if (m === null || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new CliError(
      `invalid admin API address '${text}': expected host:port, [ipv6]:port, http://host:port or a unix socket path`,
    )
  }
  return { kind: 'tcp', protocol: 'http:', host: connectHost(m[1] as string), port }
}

/** The target for a configured `[admin] api_bind_addr`. */
export function targetFromBindAddr(addr: BindAddr): AdminTarget {
  if ('path' in addr) return { kind: 'unix', path: addr.path }
  return { kind: 'tcp', protocol: 'http:', host: connectHost(addr.host), port: addr.port }
}

/** What the operator gave on the command line and in the environment. */
export interface ConnectionOptions {
  /** `-c/--config`. */
  config?: string | undefined
  /** `--admin-addr`. */
  adminAddr?: string | undefined
  /** `--admin-token`. */
  adminToken?: string | undefined
  /** Default `process.env`. */
  env?: Record<string, string | undefined>
}

/** Garage's default configuration file, read when it exists and nothing else is given. */
export const DEFAULT_CONFIG_FILE = '/etc/garage.toml'

const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : v)

/**
 * Find the admin API and its token. Address: `--admin-addr`, `GARAGE_ADMIN_ADDR`, then the
 * config file's `[admin] api_bind_addr`. Token: `--admin-token`, `GARAGE_ADMIN_TOKEN`, then the
 * config file's `admin_token` / `admin_token_file`. Config file: `-c`, `GARAGE_CONFIG_FILE`, then
 * /etc/garage.toml if it exists.
 */
export async function resolveConnection(opts: ConnectionOptions): Promise<{ target: AdminTarget; token: string | undefined }> {
  const env = opts.env ?? process.env
  let target: AdminTarget | undefined
  const addr = nonEmpty(opts.adminAddr) ?? nonEmpty(env.GARAGE_ADMIN_ADDR)
  if (addr !== undefined) target = parseAdminAddr(addr)
  let token = nonEmpty(opts.adminToken) ?? nonEmpty(env.GARAGE_ADMIN_TOKEN)

  if (target === undefined || token === undefined) {
    const explicit = nonEmpty(opts.config) ?? nonEmpty(env.GARAGE_CONFIG_FILE)
    const file = explicit ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined)
    if (file !== undefined) {
      const { config } = resolveConfig(await readConfigFile(file), { env })
      if (target === undefined && config.admin.apiBindAddr !== undefined) target = targetFromBindAddr(config.admin.apiBindAddr)
      token ??= config.admin.adminToken
      if (target === undefined) {
        throw new CliError(
          `${file} has no [admin] api_bind_addr: set it (and admin_token) and restart the node, or pass --admin-addr`,
        )
      }
    }
  }
  if (target === undefined) {
    throw new CliError(
      'no admin API address: pass --admin-addr host:port (or GARAGE_ADMIN_ADDR), or -c garage.toml with [admin] api_bind_addr',
    )
  }
  return { target, token }
}

/** How `endpoint` is called: the contract's route, or POST with no query fields for a name it lacks. */
function routeOf(endpoint: string): AdminApiRoute {
  return (ADMIN_API_ROUTES as Readonly<Record<string, AdminApiRoute | undefined>>)[endpoint] ?? NO_ROUTE
}
const NO_ROUTE: AdminApiRoute = { method: 'POST', perNode: false, queryParams: [] }

/** Answer of a per-node endpoint. */
export type MultiResponse<T> = AdminApiMultiResponse<T>

/** One node's answer of the per-node endpoint `E`. */
export type NodeResponse<E extends AdminApiEndpointName> = AdminApiResponse<E> extends AdminApiMultiResponse<infer T> ? T : never

export type QueryValue = string | number | boolean | undefined

/** One admin API call. */
export interface AdminCall {
  query?: Record<string, QueryValue>
  /** JSON body; POST endpoints without one send none. */
  body?: unknown
}

/** The API answered with an error status. */
export class AdminApiError extends CliError {
  override name = 'AdminApiError'
  readonly endpoint: string
  readonly status: number
  /** The API's error code (`NoSuchBucket`, `Forbidden`, …), or `HTTP <status>` without a JSON body. */
  readonly code: string
  readonly apiMessage: string
  constructor(endpoint: string, status: number, code: string, apiMessage: string) {
    const hint =
      status === 401 || status === 403
        ? ' — check --admin-token, GARAGE_ADMIN_TOKEN or [admin] admin_token in the config file'
        : ''
    super(`${endpoint} returned ${code} (${status}): ${apiMessage}${hint}`)
    this.endpoint = endpoint
    this.status = status
    this.code = code
    this.apiMessage = apiMessage
  }
}

/** Options of {@link AdminClient}. */
export interface AdminClientOptions {
  target: AdminTarget
  token?: string | undefined
  /** Idle timeout of one request, default 10 minutes (cleanups of large buckets are slow). */
  timeoutMs?: number
}

const CONNECT_HINTS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ENOENT: 'no such socket',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host not found',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset',
  EACCES: 'permission denied',
  ETIMEDOUT: 'timed out',
}

/** A small typed client for the admin API v2. */
export class AdminClient {
  readonly target: AdminTarget
  readonly #token: string | undefined
  readonly #timeoutMs: number

  constructor(opts: AdminClientOptions) {
    this.target = opts.target
    this.#token = opts.token
    this.#timeoutMs = opts.timeoutMs ?? 600_000
  }

  /** Call `endpoint`; resolves to its answer, typed by the admin API contract. */
  call<E extends AdminApiEndpointName>(endpoint: E, call: AdminCall = {}): Promise<AdminApiResponse<E>> {
    return this.#call(endpoint, call) as Promise<AdminApiResponse<E>>
  }

  /** Call any endpoint by name; resolves to the parsed JSON answer (undefined for an empty body). */
  async #call(endpoint: string, call: AdminCall): Promise<unknown> {
    const method = routeOf(endpoint).method
    const params = new URLSearchParams()
    for (const [k, v] of Object.entries(call.query ?? {})) if (v !== undefined) params.set(k, String(v))
    const qs = params.toString()
    const path = `/v2/${encodeURIComponent(endpoint)}${qs === '' ? '' : `?${qs}`}`
    const body = method === 'POST' && call.body !== undefined ? Buffer.from(JSON.stringify(call.body)) : undefined
    const { status, text } = await this.#send(method, path, body)
    if (status >= 200 && status < 300) {
      if (text.trim() === '') return undefined
      try {
        return JSON.parse(text) as unknown
      } catch (err) {
        throw new CliError(`${endpoint} returned a response that is not JSON: ${text.slice(0, 200)}`, { cause: err })
      }
    }
    let code = `HTTP ${status}`
    let message = text.trim() === '' ? (status === 404 ? 'no such endpoint' : 'no message') : text.trim().slice(0, 500)
    try {
      const parsed = JSON.parse(text) as { code?: unknown; message?: unknown }
      if (typeof parsed.code === 'string') code = parsed.code
      if (typeof parsed.message === 'string') message = parsed.message
    } catch {
      // Not JSON (a proxy's error page, say): the raw text above is the best message there is.
    }
    throw new AdminApiError(endpoint, status, code, message)
  }

  /**
   * Call a per-node endpoint on one node (default `self`) and return that node's answer; a
   * node-level error becomes a {@link CliError}.
   */
  async callNode<E extends AdminApiEndpointName>(endpoint: E, body?: unknown, node = 'self'): Promise<NodeResponse<E>> {
    const res = (await this.#call(endpoint, { query: { node }, body })) as MultiResponse<NodeResponse<E>> | undefined
    const [failed] = Object.entries(res?.error ?? {})
    if (failed !== undefined) throw new CliError(`${endpoint} failed on node ${failed[0].slice(0, 16)}: ${failed[1]}`)
    const ok = Object.values(res?.success ?? {})
    if (ok.length !== 1) throw new CliError(`${endpoint} returned ${ok.length} node responses, expected 1`)
    return ok[0] as NodeResponse<E>
  }

  /**
   * A raw call as `garage json-api <Endpoint> <json>` takes it: fields named like the
   * endpoint's query parameters go in the query string (`node` defaults to `self` for per-node
   * endpoints), `body` if present is the JSON body, otherwise the remaining fields are.
   */
  callJson(endpoint: string, payload: unknown): Promise<unknown> {
    const route = routeOf(endpoint)
    const names = new Set(route.queryParams)
    if (route.perNode) names.add('node')
    const query: Record<string, QueryValue> = {}
    let body: unknown = payload
    if (payload !== null && typeof payload === 'object' && !Array.isArray(payload)) {
      const rest: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(payload)) {
        if (names.has(k) && (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')) query[k] = v
        else rest[k] = v
      }
      body = 'body' in rest && Object.keys(rest).length === 1 ? rest.body : rest
      if (Object.keys(rest).length === 0) body = undefined
    }
    if (route.perNode) query.node ??= 'self'
    return this.#call(endpoint, { query, body })
  }

  #send(method: string, path: string, body: Buffer | undefined): Promise<{ status: number; text: string }> {
    const t = this.target
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`
    if (body !== undefined) {
      headers['content-type'] = 'application/json'
      headers['content-length'] = String(body.length)
    }
    const options: RequestOptions =
      t.kind === 'unix' ? { socketPath: t.path, method, path, headers } : { host: t.host, port: t.port, method, path, headers }
    const send = t.kind === 'tcp' && t.protocol === 'https:' ? httpsRequest : httpRequest
    return new Promise((resolve, reject) => {
      const req = send(options, (res: IncomingMessage) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('error', (err) => reject(this.#unreachable(err)))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }))
      })
      req.setTimeout(this.#timeoutMs, () => {
        req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }))
      })
      req.on('error', (err) => reject(this.#unreachable(err)))
      req.end(body)
    })
  }

  #unreachable(err: Error): CliError {
    const code = (err as NodeJS.ErrnoException).code ?? ''
    const where = formatTarget(this.target)
    const reason = CONNECT_HINTS[code] ?? err.message
    const hint =
      code === 'ECONNREFUSED' || code === 'ENOENT' ? ' — is `garage server` running with [admin] api_bind_addr set?' : ''
    return new CliError(`cannot reach the admin API at ${where}: ${reason}${hint}`, { cause: err })
  }
}

/** Build a client from the command-line options (see {@link resolveConnection}). */
export async function connectAdmin(opts: ConnectionOptions): Promise<AdminClient> {
  const { target, token } = await resolveConnection(opts)
  return new AdminClient({ target, token })
}
