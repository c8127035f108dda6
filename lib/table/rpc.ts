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
import type { Table, TableCallOptions, TableRequest, TableTransport } from './table.ts'

/** The endpoint of table `tableName`. Part of the wire protocol: never rename a table. @internal */
export function tableEndpoint(tableName: string): RpcEndpoint<TableRequest, Uint8Array[]> {
  return defineEndpoint<TableRequest, Uint8Array[]>(`table/${tableName}`)
}

/** Answers `table`'s requests from other nodes on `netApp`. @internal */
export function registerTableHandler<E>(netApp: NetApp, table: Table<E>): void {
  netApp.handle(tableEndpoint(table.name), (req) => table.handle(parseTableRequest(req)))
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
