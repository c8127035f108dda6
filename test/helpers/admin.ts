/** Admin API test helpers: a JSON client over fetch, and a Prometheus text parser. */
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { Value } from '@sinclair/typebox/value'
import { ADMIN_API } from '../../lib/api/admin/contract.ts'
import type { TestNode } from '../../lib/testing.ts'

export interface AdminResult {
  status: number
  headers: Headers
  text: string
  /** The parsed body when it is JSON, else undefined. */
  json: unknown
}

export interface AdminCallOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'OPTIONS'
  query?: Record<string, string>
  body?: unknown
  /** Raw body text (for invalid JSON). */
  rawBody?: string
  /** Bearer token; default the node's admin token; null sends no Authorization header. */
  token?: string | null
}

/** Calls `path` (`/v2/ListKeys`, `/health`, ...) on the node's admin API. */
export async function adminCall(node: TestNode, path: string, o: AdminCallOptions = {}): Promise<AdminResult> {
  const url = new URL(path, node.adminEndpoint)
  for (const [k, v] of Object.entries(o.query ?? {})) url.searchParams.set(k, v)
  const token = o.token === undefined ? node.adminToken : o.token
  const headers: Record<string, string> = {}
  if (token !== null && token !== undefined) headers.authorization = `Bearer ${token}`
  const body = o.rawBody ?? (o.body === undefined ? undefined : JSON.stringify(o.body))
  if (body !== undefined) headers['content-type'] = 'application/json'
  const method = o.method ?? (body === undefined ? 'GET' : 'POST')
  const res = await fetch(url, { method, headers, body })
  const text = await res.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, headers: res.headers, text, json }
}

/**
 * Checks a successful answer of `/v2/<name>` against the contract's response schema, so that every
 * test calling {@link v2} also checks that the handlers and the declared contract agree.
 */
export function assertMatchesContract(name: string, json: unknown): void {
  if (!Object.hasOwn(ADMIN_API, name)) return
  const schema = (ADMIN_API as Record<string, { response?: Parameters<typeof Value.Check>[0] }>)[name]?.response
  if (schema === undefined || Value.Check(schema, json)) return
  const e = Value.Errors(schema, json).First()
  assert.fail(
    `${name}: the response does not match the contract at '${e?.path}': ${e?.message} (got ${JSON.stringify(e?.value)})`,
  )
}

/**
 * `/v2/<name>`: GET with a query, or POST with a body; the JSON answer (any status). A 200 answer
 * must match the contract's response schema.
 */
export async function v2(
  node: TestNode,
  name: string,
  o: AdminCallOptions = {},
): Promise<AdminResult & { data: Record<string, unknown>; list: Array<Record<string, unknown>> }> {
  const r = await adminCall(node, `/v2/${name}`, o)
  if (r.status === 200) assertMatchesContract(name, r.json)
  return {
    ...r,
    data: (r.json ?? {}) as Record<string, unknown>,
    list: Array.isArray(r.json) ? (r.json as Array<Record<string, unknown>>) : [],
  }
}

export interface PromMetric {
  labels?: Record<string, string>
  value?: string
  count?: string
  sum?: string
  buckets?: Record<string, string>
}
export interface PromFamily {
  name: string
  help: string
  type: string
  metrics: PromMetric[]
}

const require = createRequire(import.meta.url)
const parsePrometheus = require('parse-prometheus-text-format') as (text: string) => PromFamily[]

/** Parses a Prometheus text exposition into families by name. */
export function parseMetrics(text: string): Map<string, PromFamily> {
  return new Map(parsePrometheus(text).map((f) => [f.name, f]))
}

/** The value of a counter or gauge sample with exactly these labels (0 when absent). */
export function sample(families: Map<string, PromFamily>, name: string, labels: Record<string, string> = {}): number {
  const f = families.get(name)
  const m = f?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v))
  return m === undefined ? 0 : Number(m.value ?? m.count ?? 0)
}
