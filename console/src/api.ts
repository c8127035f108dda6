/**
 * The console's admin API client, typed against the same contract as the server and the CLI
 * (lib/api/admin/contract.ts): the endpoint names and the static types of their bodies and
 * answers, and the methods and query parameters of the plain route table (routes.ts, checked
 * against the contract by its tests), so TypeBox stays out of the bundle. The token travels in the
 * Authorization header only.
 */
import type { AdminApiEndpointName, AdminApiQuery, AdminApiRequestBody, AdminApiResponse } from '../../lib/api/admin/contract.ts'
import { ADMIN_API_ROUTES } from '../../lib/api/admin/routes.ts'

/** An admin API error answer (`{ code, message }`), or a network failure (`code: 'NetworkError'`). */
export class AdminApiError extends Error {
  override name = 'AdminApiError'
  readonly code: string
  readonly status: number
  constructor(code: string, status: number, message: string) {
    super(message)
    this.code = code
    this.status = status
  }
}

type QueryArg<E extends AdminApiEndpointName> = Partial<Record<keyof AdminApiQuery<E> & string, string | number | boolean>>

export interface CallArgs<E extends AdminApiEndpointName> {
  query?: QueryArg<E>
  body?: AdminApiRequestBody<E>
}

export type Fetch = (url: string, init: { method: string; headers: Record<string, string>; body?: string }) => Promise<Response>

export class AdminClient {
  readonly #token: string
  readonly #base: string
  readonly #fetch: Fetch

  constructor(token: string, base = '', fetchImpl: Fetch = (u, i) => fetch(u, i)) {
    this.#token = token
    this.#base = base
    this.#fetch = fetchImpl
  }

  /** Calls `/v2/<name>`; throws {@link AdminApiError} on an error answer. */
  async call<E extends AdminApiEndpointName>(name: E, args: CallArgs<E> = {}): Promise<AdminApiResponse<E>> {
    const route = ADMIN_API_ROUTES[name]
    const qs = new URLSearchParams()
    for (const [k, v] of Object.entries(args.query ?? {})) if (v !== undefined) qs.set(k, String(v))
    const url = `${this.#base}/v2/${name}${qs.size > 0 ? `?${qs}` : ''}`
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}` }
    let body: string | undefined
    if (route.method === 'POST' && args.body !== undefined) {
      body = JSON.stringify(args.body)
      headers['content-type'] = 'application/json'
    }
    let res: Response
    try {
      res = await this.#fetch(url, { method: route.method, headers, ...(body === undefined ? {} : { body }) })
    } catch (err) {
      throw new AdminApiError('NetworkError', 0, `the node did not answer: ${(err as Error).message}`)
    }
    const text = await res.text()
    let json: unknown
    try {
      json = text === '' ? null : JSON.parse(text)
    } catch {
      throw new AdminApiError('InvalidResponse', res.status, `not JSON (HTTP ${res.status}): ${text.slice(0, 200)}`)
    }
    if (!res.ok) {
      const e = json as { code?: string; message?: string } | null
      throw new AdminApiError(e?.code ?? `HTTP${res.status}`, res.status, e?.message ?? `HTTP ${res.status}`)
    }
    return json as AdminApiResponse<E>
  }

  /** `/metrics` (Prometheus text), with the same token. */
  async metrics(): Promise<string> {
    const res = await this.#fetch(`${this.#base}/metrics`, { method: 'GET', headers: { authorization: `Bearer ${this.#token}` } })
    if (!res.ok) throw new AdminApiError(`HTTP${res.status}`, res.status, `metrics: HTTP ${res.status}`)
    return res.text()
  }
}

/** Where the token lives: the tab's session storage (gone when the tab closes), never a URL. */
export const TOKEN_STORAGE_KEY = 'garage-console-token'
