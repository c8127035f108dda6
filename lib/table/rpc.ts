/**
 * Tables over the RPC transport (the RPC side of garage_table::table): one endpoint per table,
 * `table/<tableName>`, answered by {@link Table.handle}, and a {@link TableTransport} that calls
 * it on other nodes at 'normal' priority.
 * @internal
 */
import type { RpcEndpoint } from '../net/endpoint.ts'
import { defineEndpoint } from '../net/endpoint.ts'
import type { NetApp } from '../net/netapp.ts'
import { GarageError } from '../util/errors.ts'
import type { NodeId } from './replication.ts'
import type { TableBatch } from './batch.ts'
import type { Table, TableBatchRequest, TableCallOptions, TableRequest, TableTransport } from './table.ts'

/** The endpoint of table `tableName`. Part of the wire protocol: never rename a table. @internal */
export function tableEndpoint(tableName: string): RpcEndpoint<TableRequest, Uint8Array[]> {
  return defineEndpoint<TableRequest, Uint8Array[]>(`table/${tableName}`)
}

/** Answers `table`'s requests from other nodes on `netApp`. @internal */
export function registerTableHandler<E>(netApp: NetApp, table: Table<E>): void {
  netApp.handle(tableEndpoint(table.name), (req) => table.handle(parseTableRequest(req)))
}

/**
 * The endpoint of cross-table batches ({@link TableBatch}). Part of the wire protocol; a node
 * without it (older than this endpoint) answers an error, which counts against the quorum.
 * @internal
 */
export const TABLE_BATCH_ENDPOINT = defineEndpoint<TableBatchRequest, Uint8Array[] | null>('table/_batch')

/** Answers other nodes' cross-table batches on `netApp`. @internal */
export function registerTableBatchHandler(netApp: NetApp, batch: TableBatch): void {
  netApp.handle(TABLE_BATCH_ENDPOINT, (req) => {
    const request = parseTableBatchRequest(req)
    const prev = batch.handle(request)
    // Without `prev`, the answer stays what it was before `prev` existed.
    return request.prev === undefined ? null : prev
  })
}

/** Calls other nodes' tables through NetApp. @internal */
export class NetAppTableTransport implements TableTransport {
  readonly #net: NetApp
  readonly #endpoints = new Map<string, RpcEndpoint<TableRequest, Uint8Array[]>>()
  constructor(netApp: NetApp) {
    this.#net = netApp
  }

  async call(node: NodeId, table: string, request: TableRequest, options: TableCallOptions = {}): Promise<Uint8Array[]> {
    let endpoint = this.#endpoints.get(table)
    if (endpoint === undefined) {
      endpoint = tableEndpoint(table)
      this.#endpoints.set(table, endpoint)
    }
    const res = await this.#net.call(node, endpoint, request, { priority: 'normal', ...options })
    if (!Array.isArray(res) || !res.every((r) => r instanceof Uint8Array)) {
      throw new GarageError('GARAGE_ERR_REMOTE', `node ${node.slice(0, 16)} sent a malformed ${table} table answer`)
    }
    return res
  }

  async callBatch(node: NodeId, request: TableBatchRequest, options: TableCallOptions = {}): Promise<Uint8Array[]> {
    const res = await this.#net.call(node, TABLE_BATCH_ENDPOINT, request, { priority: 'normal', ...options })
    return checkPrevAnswer(node, request, res)
  }
}

/**
 * The answer of a batch (or of a block put carrying rows) checked against its request: the
 * previous copies `prev` asks for, one per entry of that table; nothing without `prev`.
 * @throws GarageError GARAGE_ERR_REMOTE for an answer of another shape.
 * @internal
 */
export function checkPrevAnswer(node: NodeId, request: TableBatchRequest, res: unknown): Uint8Array[] {
  if (request.prev === undefined) return []
  const want = request.items.reduce((n, i) => (i.table === request.prev ? n + i.entries.length : n), 0)
  if (!Array.isArray(res) || res.length !== want || !res.every((r) => r instanceof Uint8Array)) {
    throw new GarageError('GARAGE_ERR_REMOTE', `node ${node.slice(0, 16)} sent a malformed answer to a table batch`)
  }
  return res as Uint8Array[]
}

/**
 * Checks the shape of a batch received from a peer.
 * @throws GarageError GARAGE_ERR_DECODE for anything else.
 * @internal
 */
export function parseTableBatchRequest(v: unknown): TableBatchRequest {
  const r = v as { items?: unknown } | null
  if (typeof r === 'object' && r !== null && Array.isArray(r.items)) {
    const items: TableBatchRequest['items'] = []
    for (const i of r.items as unknown[]) {
      const it = i as { table?: unknown; entries?: unknown } | null
      if (
        typeof it !== 'object' ||
        it === null ||
        typeof it.table !== 'string' ||
        !Array.isArray(it.entries) ||
        !it.entries.every((e) => e instanceof Uint8Array)
      ) {
        throw new GarageError('GARAGE_ERR_DECODE', 'malformed table batch')
      }
      items.push({ table: it.table, entries: it.entries as Uint8Array[] })
    }
    const prev = (r as { prev?: unknown }).prev
    if (prev === undefined || prev === null) return { items }
    if (typeof prev !== 'string') throw new GarageError('GARAGE_ERR_DECODE', 'malformed table batch')
    return { items, prev }
  }
  throw new GarageError('GARAGE_ERR_DECODE', 'malformed table batch')
}

/**
 * Checks the shape of a request received from a peer (msgpack gives back plain values).
 * @throws GarageError GARAGE_ERR_DECODE for anything else.
 * @internal
 */
export function parseTableRequest(v: unknown): TableRequest {
  const r = v as Record<string, unknown> | null
  const bytes = (x: unknown): x is Uint8Array => x instanceof Uint8Array
  if (typeof r === 'object' && r !== null) {
    if (r.op === 'update' && Array.isArray(r.entries) && r.entries.every(bytes)) {
      return { op: 'update', entries: r.entries }
    }
    if (r.op === 'get' && bytes(r.partitionKey) && bytes(r.sortKey)) {
      return { op: 'get', partitionKey: r.partitionKey, sortKey: r.sortKey }
    }
    if (
      r.op === 'getMany' &&
      Array.isArray(r.partitionKeys) &&
      Array.isArray(r.sortKeys) &&
      r.partitionKeys.length === r.sortKeys.length &&
      r.partitionKeys.every(bytes) &&
      r.sortKeys.every(bytes)
    ) {
      return { op: 'getMany', partitionKeys: r.partitionKeys, sortKeys: r.sortKeys }
    }
    if (
      r.op === 'range' &&
      bytes(r.partitionKey) &&
      (r.start === undefined || r.start === null || bytes(r.start)) &&
      typeof r.limit === 'number' &&
      Number.isInteger(r.limit) &&
      r.limit >= 0 &&
      typeof r.reverse === 'boolean'
    ) {
      return {
        op: 'range',
        partitionKey: r.partitionKey,
        ...(bytes(r.start) ? { start: r.start } : {}),
        limit: r.limit,
        reverse: r.reverse,
      }
    }
  }
  throw new GarageError('GARAGE_ERR_DECODE', 'malformed table request')
}
