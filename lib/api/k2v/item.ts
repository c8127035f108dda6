/**
 * ReadItem, PollItem, InsertItem and DeleteItem (port of garage_api_k2v::item).
 * @internal
 */
import type { IncomingHttpHeaders } from 'node:http'
import { parseCausalContext, serializeCausalContext, type VectorClock } from '../../model/k2v/causality.ts'
import { causalContextOf, type DvvsValue, type K2vItem, k2vPartitionBytes, k2vValues } from '../../model/k2v/item-table.ts'
import { utf8 } from '../../util/data.ts'
import { ApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import type { K2vCtx } from './context.ts'

/** The causality token header (Garage's `X-Garage-Causality-Token`). @internal */
export const X_GARAGE_CAUSALITY_TOKEN = 'x-garage-causality-token'

/** Default and longest poll timeouts, in seconds (Garage: 300 and 600). @internal */
export const DEFAULT_POLL_TIMEOUT_S = 300
export const MAX_POLL_TIMEOUT_S = 600

/** A poll timeout in ms from the request's seconds (Garage: `unwrap_or(300).clamp(1, 600)`). @internal */
export function pollTimeoutMs(seconds: number | undefined): number {
  return Math.min(Math.max(seconds ?? DEFAULT_POLL_TIMEOUT_S, 1), MAX_POLL_TIMEOUT_S) * 1000
}

/** @throws ApiError CausalityToken @internal */
export function parseCausalityToken(s: string): VectorClock {
  const vc = parseCausalContext(s)
  if (vc === undefined) throw new ApiError('CausalityToken', 'Invalid causality token')
  return vc
}

type ReturnFormat = 'json' | 'binary' | 'either'

/** Garage's `ReturnFormat::from`: from the Accept header. */
function returnFormat(headers: IncomingHttpHeaders): ReturnFormat {
  const accept = headers.accept
  if (accept === undefined) return 'json'
  const types = accept.split(',').map((s) => s.trim())
  const json = types.includes('application/json') || types.includes('*/*')
  const binary = types.includes('application/octet-stream') || types.includes('*/*')
  if (json && binary) return 'either'
  if (json) return 'json'
  if (binary) return 'binary'
  throw new ApiError(
    'NotAcceptable',
    'Not acceptable: Invalid Accept: header value, must contain either application/json or application/octet-stream (or both)',
  )
}

/** Base64 of each value, null for a deletion. @internal */
export function encodeValues(values: readonly DvvsValue[]): Array<string | null> {
  return values.map((v) => (v === null ? null : Buffer.from(v).toString('base64')))
}

/** Pretty JSON as serde_json's `to_string_pretty` writes it (two spaces). @internal */
export function jsonResponse(value: unknown, headers: Record<string, string> = {}): ApiResponse {
  return { status: 200, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(value, null, 2) }
}

/** Garage's `ReturnFormat::make_response`. */
function makeResponse(format: ReturnFormat, item: K2vItem): ApiResponse {
  const vals = k2vValues(item)
  if (vals.length === 0) throw new ApiError('NoSuchKey', 'Key not found')
  const ct = serializeCausalContext(causalContextOf(item))
  const binary = (v: DvvsValue): ApiResponse =>
    v === null
      ? { status: 204, headers: { [X_GARAGE_CAUSALITY_TOKEN]: ct, 'content-type': 'application/octet-stream' } }
      : { status: 200, headers: { [X_GARAGE_CAUSALITY_TOKEN]: ct, 'content-type': 'application/octet-stream' }, body: v }
  if (format === 'binary' && vals.length > 1) return { status: 409, headers: { [X_GARAGE_CAUSALITY_TOKEN]: ct } }
  if (format === 'binary' || (format === 'either' && vals.length === 1)) return binary(vals[0] as DvvsValue)
  return jsonResponse(encodeValues(vals), { [X_GARAGE_CAUSALITY_TOKEN]: ct })
}

/** ReadItem: the values at a read quorum. */
export async function handleReadItem(ctx: K2vCtx, pk: string, sk: string): Promise<ApiResponse> {
  const format = returnFormat(ctx.req.headers)
  const item = await ctx.garage.k2v.itemTable.get(k2vPartitionBytes(ctx.bucketId, pk), utf8(sk))
  if (item === undefined) throw new ApiError('NoSuchKey', 'Key not found')
  return makeResponse(format, item)
}

/** PollItem: waits for a value newer than the token; 304 when none came before the timeout. */
export async function handlePollItem(
  ctx: K2vCtx,
  pk: string,
  sk: string,
  token: string,
  timeoutS: number | undefined,
): Promise<ApiResponse> {
  const format = returnFormat(ctx.req.headers)
  const vc = parseCausalContext(token)
  if (vc === undefined) throw new ApiError('InvalidRequest', 'Invalid causality token')
  const item = await ctx.garage.k2v.rpc.pollItem(ctx.bucketId, pk, sk, vc, pollTimeoutMs(timeoutS), ctx.signal)
  if (item === undefined) return { status: 304 }
  return makeResponse(format, item)
}

function tokenHeader(headers: IncomingHttpHeaders): VectorClock | undefined {
  const v = headers[X_GARAGE_CAUSALITY_TOKEN]
  if (v === undefined) return undefined
  return parseCausalityToken(Array.isArray(v) ? v.join(',') : v)
}

/** InsertItem: the body is the value; the token, if any, says which values it replaces. */
export async function handleInsertItem(ctx: K2vCtx, pk: string, sk: string): Promise<ApiResponse> {
  const context = tokenHeader(ctx.req.headers)
  const value = await ctx.readBody()
  await ctx.garage.k2v.rpc.insert(ctx.bucketId, { partitionKey: pk, sortKey: sk, context, value })
  return { status: 204 }
}

/** DeleteItem: a deletion marker replacing what the token covers. */
export async function handleDeleteItem(ctx: K2vCtx, pk: string, sk: string): Promise<ApiResponse> {
  const context = tokenHeader(ctx.req.headers)
  await ctx.readBody()
  await ctx.garage.k2v.rpc.insert(ctx.bucketId, { partitionKey: pk, sortKey: sk, context, value: null })
  return { status: 204 }
}
