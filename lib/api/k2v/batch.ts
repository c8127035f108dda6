/**
 * InsertBatch, ReadBatch, DeleteBatch and PollRange (port of garage_api_k2v::batch). JSON bodies
 * are checked field by field as serde would: a missing required field or a wrong type is
 * `400 InvalidRequest` ("Invalid JSON"); unknown fields are ignored.
 * @internal
 */
import type { DvvsValue, K2vItem } from '../../model/k2v/item-table.ts'
import { causalContextOf, k2vItemMatches, k2vPartitionBytes } from '../../model/k2v/item-table.ts'
import { serializeCausalContext } from '../../model/k2v/causality.ts'
import type { K2vInsert } from '../../model/k2v/rpc.ts'
import { utf8 } from '../../util/data.ts'
import { ApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import type { K2vCtx } from './context.ts'
import { encodeValues, jsonResponse, parseCausalityToken, pollTimeoutMs } from './item.ts'
import { readRange } from './range.ts'
import { k2vValues } from '../../model/k2v/item-table.ts'

type Json = Record<string, unknown>

const invalidJson = (what: string): ApiError => new ApiError('InvalidRequest', `Invalid JSON: ${what}`)

async function readJson(ctx: K2vCtx): Promise<unknown> {
  const body = await ctx.readBody()
  try {
    return JSON.parse(Buffer.from(body).toString('utf8'))
  } catch (err) {
    throw new ApiError('InvalidRequest', `Invalid JSON: ${(err as Error).message}`, { cause: err })
  }
}

function list(v: unknown): Json[] {
  if (!Array.isArray(v)) throw invalidJson('expected a sequence')
  for (const x of v) if (typeof x !== 'object' || x === null || Array.isArray(x)) throw invalidJson('expected a map')
  return v as Json[]
}

function str(o: Json, k: string): string {
  const v = o[k]
  if (typeof v !== 'string') throw invalidJson(v === undefined ? `missing field \`${k}\`` : `invalid type for \`${k}\``)
  return v
}

function optStr(o: Json, k: string): string | undefined {
  const v = o[k]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string') throw invalidJson(`invalid type for \`${k}\``)
  return v
}

function bool(o: Json, k: string): boolean {
  const v = o[k]
  if (v === undefined) return false
  if (typeof v !== 'boolean') throw invalidJson(`invalid type for \`${k}\``)
  return v
}

function optU64(o: Json, k: string): number | undefined {
  const v = o[k]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw invalidJson(`invalid value for \`${k}\``)
  return v
}

function decodeBase64(s: string): Uint8Array {
  // Garage decodes with the standard alphabet, padding required.
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) throw new ApiError('InvalidBase64', 'Invalid base64 value')
  const b = Buffer.from(s, 'base64')
  if (b.toString('base64') !== s) throw new ApiError('InvalidBase64', 'Invalid base64 value')
  return new Uint8Array(b)
}

/** A row as the batch endpoints answer it: `{ sk, ct, v }`. */
function itemJson(i: K2vItem): { sk: string; ct: string; v: Array<string | null> } {
  return { sk: i.sortKey, ct: serializeCausalContext(causalContextOf(i)), v: encodeValues(k2vValues(i)) }
}

/** InsertBatch: `[{ pk, sk, ct, v }]`, `v` null for a deletion. */
export async function handleInsertBatch(ctx: K2vCtx): Promise<ApiResponse> {
  const items = list(await readJson(ctx))
  const inserts: K2vInsert[] = []
  for (const it of items) {
    const pk = str(it, 'pk')
    const sk = str(it, 'sk')
    const ct = optStr(it, 'ct')
    const v = optStr(it, 'v')
    inserts.push({
      partitionKey: pk,
      sortKey: sk,
      context: ct === undefined ? undefined : parseCausalityToken(ct),
      value: v === undefined ? null : decodeBase64(v),
    })
  }
  await ctx.garage.k2v.rpc.insertBatch(ctx.bucketId, inserts)
  return { status: 204 }
}

interface BatchQuery {
  partitionKey: string
  prefix: string | undefined
  start: string | undefined
  end: string | undefined
  limit: number | undefined
  reverse: boolean
  singleItem: boolean
  conflictsOnly: boolean
  tombstones: boolean
}

function parseQuery(o: Json, read: boolean): BatchQuery {
  return {
    partitionKey: str(o, 'partitionKey'),
    prefix: optStr(o, 'prefix'),
    start: optStr(o, 'start'),
    end: optStr(o, 'end'),
    limit: read ? optU64(o, 'limit') : undefined,
    reverse: read ? bool(o, 'reverse') : false,
    singleItem: bool(o, 'singleItem'),
    conflictsOnly: read ? bool(o, 'conflictsOnly') : false,
    tombstones: read ? bool(o, 'tombstones') : false,
  }
}

/** ReadBatch: for each query, the items of a range or one item. */
export async function handleReadBatch(ctx: K2vCtx): Promise<ApiResponse> {
  const queries = list(await readJson(ctx)).map((q) => parseQuery(q, true))
  const results = await Promise.all(queries.map((q) => readBatchQuery(ctx, q)))
  return jsonResponse(results)
}

async function readBatchQuery(ctx: K2vCtx, q: BatchQuery): Promise<unknown> {
  const table = ctx.garage.k2v.itemTable
  const partition = k2vPartitionBytes(ctx.bucketId, q.partitionKey)
  const filter = { excludeOnlyTombstones: !q.tombstones, conflictsOnly: q.conflictsOnly }
  let items: K2vItem[]
  let more = false
  let nextStart: string | undefined
  if (q.singleItem) {
    if (q.prefix !== undefined || q.end !== undefined || q.limit !== undefined || q.reverse) {
      throw new ApiError(
        'InvalidRequest',
        "Batch query parameters 'prefix', 'end', 'limit' and 'reverse' must not be set when singleItem is true.",
      )
    }
    if (q.start === undefined) throw new ApiError('InvalidRequest', 'start should be specified if single_item is set')
    const item = await table.get(partition, utf8(q.start))
    items = item !== undefined && k2vItemMatches(item, filter) ? [item] : []
  } else {
    const r = await readRange(
      table,
      partition,
      (e) => e.sortKey,
      q,
      (e) => k2vItemMatches(e, filter),
    )
    items = r.entries
    more = r.more
    nextStart = r.nextStart
  }
  return {
    partitionKey: q.partitionKey,
    prefix: q.prefix ?? null,
    start: q.start ?? null,
    end: q.end ?? null,
    limit: q.limit ?? null,
    reverse: q.reverse,
    singleItem: q.singleItem,
    conflictsOnly: q.conflictsOnly,
    tombstones: q.tombstones,
    items: items.map(itemJson),
    more,
    nextStart: nextStart ?? null,
  }
}

/** DeleteBatch: deletes what each query selects (reading it first for the causality tokens). */
export async function handleDeleteBatch(ctx: K2vCtx): Promise<ApiResponse> {
  const queries = list(await readJson(ctx)).map((q) => parseQuery(q, false))
  const results = await Promise.all(queries.map((q) => deleteBatchQuery(ctx, q)))
  return jsonResponse(results)
}

async function deleteBatchQuery(ctx: K2vCtx, q: BatchQuery): Promise<unknown> {
  const g = ctx.garage
  const partition = k2vPartitionBytes(ctx.bucketId, q.partitionKey)
  const filter = { excludeOnlyTombstones: true, conflictsOnly: false }
  const deletion = (i: K2vItem): K2vInsert => ({
    partitionKey: i.partitionKey,
    sortKey: i.sortKey,
    context: causalContextOf(i),
    value: null as DvvsValue,
  })
  let deleted: number
  if (q.singleItem) {
    if (q.prefix !== undefined || q.end !== undefined) {
      throw new ApiError('InvalidRequest', "Batch query parameters 'prefix' and 'end' must not be set when singleItem is true.")
    }
    if (q.start === undefined) throw new ApiError('InvalidRequest', 'start should be specified if single_item is set')
    const item = await g.k2v.itemTable.get(partition, utf8(q.start))
    if (item !== undefined && k2vItemMatches(item, filter)) {
      await g.k2v.rpc.insert(ctx.bucketId, deletion(item))
      deleted = 1
    } else deleted = 0
  } else {
    const r = await readRange(
      g.k2v.itemTable,
      partition,
      (e) => e.sortKey,
      { ...q, limit: undefined, reverse: false },
      (e) => k2vItemMatches(e, filter),
    )
    await g.k2v.rpc.insertBatch(ctx.bucketId, r.entries.map(deletion))
    deleted = r.entries.length
  }
  return {
    partitionKey: q.partitionKey,
    prefix: q.prefix ?? null,
    start: q.start ?? null,
    end: q.end ?? null,
    singleItem: q.singleItem,
    deletedItems: deleted,
  }
}

/** PollRange: the items new since `seenMarker`, or 304 when none came before the timeout. */
export async function handlePollRange(ctx: K2vCtx, pk: string): Promise<ApiResponse> {
  const body = await readJson(ctx)
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalidJson('expected a map')
  const o = body as Json
  const timeout = optU64(o, 'timeout')
  const res = await ctx.garage.k2v.rpc.pollRange(
    {
      bucketId: ctx.bucketId,
      partitionKey: pk,
      prefix: optStr(o, 'prefix'),
      start: optStr(o, 'start'),
      end: optStr(o, 'end'),
    },
    optStr(o, 'seenMarker'),
    pollTimeoutMs(timeout),
    ctx.signal,
  )
  if (res === undefined) return { status: 304 }
  return jsonResponse({ items: res.items.map(itemJson), seenMarker: res.seenMarker })
}
