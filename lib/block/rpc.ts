/**
 * Block exchange between nodes (port of garage_block's `BlockRpc`): `block/put` sends a block
 * as a byte stream attached to the request, `block/get` answers one as a stream attached to the
 * response, `block/need` asks whether a node lacks a block it references. Both ends verify the
 * BLAKE2 hash of every block that crosses the wire.
 * @internal
 */
import type { Readable } from 'node:stream'
import { defineEndpoint, type RpcPriority, withStream } from '../net/endpoint.ts'
import type { NetApp } from '../net/netapp.ts'
import type { SharedBodySeal } from '../net/frame.ts'
import { blake2sumOf, byteLengthOf, bytesEqual, type Hash, toHex } from '../util/data.ts'
import type { BlockData } from './store.ts'
import { CorruptDataError, GarageError, TimeoutError } from '../util/errors.ts'
import { checkPrevAnswer, parseTableBatchRequest } from '../table/rpc.ts'
import type { TableBatchRequest } from '../table/table.ts'

/** @internal */
export interface BlockHashReq {
  h: Uint8Array
}

/** `block/put`: the block's hash, and table rows to merge once the block is stored. @internal */
export interface BlockPutReq extends BlockHashReq {
  /**
   * Rows that must not be on this node without the block (the `complete` object row of a
   * one-round PUT, docs/design/round-trips.md): merged after the block is written, in one
   * transaction; the answer is what the batch answers (its `prev` copies).
   */
  rows?: TableBatchRequest
}

/** Answer of `block/need`. @internal */
export interface BlockNeedRes {
  /** The node references the block and does not have it. */
  needed: boolean
  /** The node has a copy. */
  present: boolean
  /** The node references the block (its block_ref rows are there). */
  referenced?: boolean
}

/** @internal */
export const BLOCK_PUT_ENDPOINT = defineEndpoint<BlockPutReq, Uint8Array[] | null>('block/put')
/** @internal */
export const BLOCK_GET_ENDPOINT = defineEndpoint<BlockHashReq, { len: number }>('block/get')
/** @internal */
export const BLOCK_NEED_ENDPOINT = defineEndpoint<BlockHashReq, BlockNeedRes>('block/need')

/** Largest block accepted over the wire (Garage caps `block_size` far below this). @internal */
export const MAX_BLOCK_TRANSFER_BYTES = 256 * 1024 * 1024

/** What a node does with block requests (the block manager). @internal */
export interface BlockRpcHandlers {
  /** Stores a block whose hash was verified, then merges `rows` if any (answering their `prev`). */
  put(hash: Hash, data: BlockData, rows?: TableBatchRequest): Promise<Uint8Array[]>
  /** Reads a local, verified block; throws when absent or corrupt. */
  get(hash: Hash): Promise<Uint8Array>
  need(hash: Hash): Promise<BlockNeedRes>
}

/** Registers the block endpoints on `net`. @internal */
export function serveBlockRpc(net: NetApp, h: BlockRpcHandlers): void {
  net.handle(BLOCK_PUT_ENDPOINT, async (req, from, ctx) => {
    const hash = checkHash(req)
    if (ctx.stream === undefined) throw new GarageError('GARAGE_ERR_INTERNAL', 'block/put without a data stream')
    // A block that came whole is taken as its frames were opened (not copied together).
    const data = ctx.body ?? (await readAll(ctx.stream, MAX_BLOCK_TRANSFER_BYTES))
    if (byteLengthOf(data) > MAX_BLOCK_TRANSFER_BYTES)
      throw new GarageError('GARAGE_ERR_INTERNAL', `block data longer than ${MAX_BLOCK_TRANSFER_BYTES} bytes`)
    // Checked before the block is stored: a malformed batch stores nothing. (Its entries are
    // decoded after, in the transaction: one that fails leaves the block to be checked again.)
    const rows = req.rows === undefined || req.rows === null ? undefined : parseTableBatchRequest(req.rows)
    verify(hash, data, `sent by node ${from.slice(0, 16)}`)
    const prev = await h.put(hash, data, rows)
    return rows?.prev === undefined ? null : prev
  })
  net.handle(BLOCK_GET_ENDPOINT, async (req) => {
    const data = await h.get(checkHash(req))
    return withStream({ len: data.byteLength }, data)
  })
  net.handle(BLOCK_NEED_ENDPOINT, (req) => h.need(checkHash(req)))
}

/** Options of one block call. @internal */
export interface BlockCallOptions {
  priority: RpcPriority
  /** Deadline of the whole call, stream included. */
  timeoutMs: number
  signal?: AbortSignal
  /** The block sealed once for every replica it is sent to (the same object for each call). */
  sharedSeal?: SharedBodySeal
}

/** Calls the block endpoints of other nodes. @internal */
export class BlockRpcClient {
  readonly #net: NetApp
  constructor(net: NetApp) {
    this.#net = net
  }

  /** Sends a block (and `rows`, merged after it there); answers the rows' `prev` copies. */
  async put(node: string, hash: Hash, data: Uint8Array, o: BlockCallOptions, rows?: TableBatchRequest): Promise<Uint8Array[]> {
    // The answer comes after the handler stored the block, so the call's own deadline covers
    // the whole transfer: no timer or linked signal of our own per block.
    const res = await this.#net.call(node, BLOCK_PUT_ENDPOINT, rows === undefined ? { h: hash } : { h: hash, rows }, {
      priority: o.priority,
      timeoutMs: o.timeoutMs,
      stream: data,
      ...(o.signal === undefined ? {} : { signal: o.signal }),
      ...(o.sharedSeal === undefined ? {} : { sharedSeal: o.sharedSeal }),
    })
    return rows === undefined ? [] : checkPrevAnswer(node, rows, res)
  }

  /** Fetches a block from `node` and verifies it. */
  async get(node: string, hash: Hash, o: BlockCallOptions): Promise<Buffer> {
    const started = performance.now()
    const { res, stream } = await this.#net.callStreaming(
      node,
      BLOCK_GET_ENDPOINT,
      { h: hash },
      { priority: o.priority, timeoutMs: o.timeoutMs, ...(o.signal === undefined ? {} : { signal: o.signal }) },
    )
    if (stream === undefined) throw new GarageError('GARAGE_ERR_INTERNAL', `node ${node.slice(0, 16)} sent no block data`)
    // The call's deadline ends with the response message; the rest of it bounds reading the
    // attached block (the caller's signal still cancels the stream, see NetApp.callStreaming).
    const left = Math.max(0, o.timeoutMs - (performance.now() - started))
    const timer = setTimeout(
      () =>
        stream.destroy(
          new TimeoutError(`block ${toHex(hash)} from node ${node.slice(0, 16)}: timed out after ${o.timeoutMs} ms`),
        ),
      left,
    )
    try {
      const data = await readAll(stream, Math.min(res.len, MAX_BLOCK_TRANSFER_BYTES))
      verify(hash, data, `received from node ${node.slice(0, 16)}`)
      return data
    } finally {
      clearTimeout(timer)
    }
  }

  need(node: string, hash: Hash, o: BlockCallOptions): Promise<BlockNeedRes> {
    return this.#net.call(
      node,
      BLOCK_NEED_ENDPOINT,
      { h: hash },
      { priority: o.priority, timeoutMs: o.timeoutMs, ...(o.signal === undefined ? {} : { signal: o.signal }) },
    )
  }
}

function checkHash(req: BlockHashReq): Hash {
  const h = req?.h
  if (!(h instanceof Uint8Array) || h.byteLength !== 32)
    throw new GarageError('GARAGE_ERR_INTERNAL', 'invalid block hash in request')
  return h
}

function verify(hash: Hash, data: BlockData, what: string): void {
  if (!bytesEqual(blake2sumOf(data), hash)) throw new CorruptDataError(`block ${toHex(hash)} ${what} does not match its hash`)
}

/** Reads a stream to its end; fails beyond `limit` bytes. */
async function readAll(stream: Readable, limit: number): Promise<Buffer> {
  const parts: Buffer[] = []
  let n = 0
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    n += chunk.byteLength
    if (n > limit) {
      stream.destroy()
      throw new GarageError('GARAGE_ERR_INTERNAL', `block data longer than ${limit} bytes`)
    }
    parts.push(chunk)
  }
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, n)
}
