/**
 * node:http plumbing shared by the S3, K2V, admin and web endpoints (port of
 * garage_api_common::generic_server): listen on TCP or a unix socket, give each request an id,
 * send the handler's response (streaming bodies with backpressure) and turn anything thrown into
 * the API's error format. A failing request never takes the process down.
 */
import { randomBytes } from 'node:crypto'
import { chmod, rm } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Logger } from '../../util/logger.ts'
import { type ApiError, toApiError } from './errors.ts'

export type BindAddress = { host: string; port: number } | { path: string }

export interface ApiResponse {
  status: number
  headers?: Record<string, string | number | string[]>
  body?: string | Uint8Array | Readable | AsyncIterable<Uint8Array>
}

export interface RequestContext {
  readonly requestId: string
  readonly startedAt: number
  readonly log: Logger
}

export interface ApiHandler {
  /** Name used in logs and metrics ('s3', 'k2v', 'admin', 'web'). */
  readonly name: string
  handle(req: IncomingMessage, ctx: RequestContext): Promise<ApiResponse>
  /** Renders an error in this API's format. */
  renderError(err: ApiError, req: IncomingMessage, ctx: RequestContext): ApiResponse
}

export interface ApiServer {
  /** `http://host:port` (or the socket path) actually listened on. */
  readonly url: string
  readonly address: AddressInfo | string
  close(): Promise<void>
}

export function genRequestId(): string {
  return randomBytes(8).toString('hex').toUpperCase()
}

export async function startApiServer(bind: BindAddress, handler: ApiHandler, log: Logger): Promise<ApiServer> {
  const server = createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 30_000 })
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    void serve(handler, req, res, log)
  })
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // Malformed HTTP (or oversized headers): answer 400/431 and close; nothing reached a handler.
    log.debug(`${handler.name}: client error: ${err.code ?? err.message}`)
    if (socket.writable) {
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request'
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
    } else socket.destroy()
  })
  if ('path' in bind) await rm(bind.path, { force: true })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    if ('path' in bind) server.listen(bind.path, resolve)
    else server.listen(bind.port, bind.host, resolve)
  })
  if ('path' in bind) await chmod(bind.path, 0o666)
  const address = server.address() as AddressInfo | string
  const url =
    typeof address === 'string'
      ? address
      : `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`
  log.info(`${handler.name} API listening on ${url}`)
  return { url, address, close: () => closeServer(server) }
}

async function serve(handler: ApiHandler, req: IncomingMessage, res: ServerResponse, log: Logger): Promise<void> {
  const ctx: RequestContext = { requestId: genRequestId(), startedAt: Date.now(), log }
  let response: ApiResponse
  try {
    response = await handler.handle(req, ctx)
  } catch (err) {
    const apiErr = toApiError(err)
    if (apiErr.status >= 500)
      log.error(`${handler.name} ${req.method} ${req.url} → ${apiErr.code} [${ctx.requestId}]`, apiErr.cause ?? apiErr)
    else log.debug(`${handler.name} ${req.method} ${req.url} → ${apiErr.code}: ${apiErr.message}`)
    response = handler.renderError(apiErr, req, ctx)
    // The request body may be unread: close the connection after answering rather than read it.
    if (!req.complete) res.shouldKeepAlive = false
  }
  try {
    await sendResponse(req, res, response, ctx)
  } catch (err) {
    // The client went away or a streamed body failed midway; headers are already sent, so the
    // only thing left to do is to drop the connection (the client sees a truncated body).
    log.warn(`${handler.name} ${req.method} ${req.url}: response aborted [${ctx.requestId}]:`, err)
    res.destroy()
  }
  // Drain whatever the handler did not read so the connection can be reused.
  if (!req.complete && !req.destroyed) req.resume()
}

async function sendResponse(req: IncomingMessage, res: ServerResponse, r: ApiResponse, ctx: RequestContext): Promise<void> {
  res.statusCode = r.status
  res.setHeader('x-amz-request-id', ctx.requestId)
  for (const [k, v] of Object.entries(r.headers ?? {})) res.setHeader(k, v)
  const body = r.body
  if (body === undefined) {
    res.end()
    return
  }
  if (typeof body === 'string' || body instanceof Uint8Array) {
    if (!res.hasHeader('content-length')) res.setHeader('content-length', Buffer.byteLength(body))
    res.end(req.method === 'HEAD' ? undefined : body)
    return
  }
  if (req.method === 'HEAD') {
    if (body instanceof Readable) body.destroy()
    res.end()
    return
  }
  await pipeline(body instanceof Readable ? body : Readable.from(body), res)
}

async function closeServer(server: Server): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve())
    server.closeIdleConnections()
    // Requests still running get a short grace period before their sockets are cut.
    setTimeout(() => server.closeAllConnections(), 2_000).unref()
  })
}
