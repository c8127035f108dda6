/**
 * node:http plumbing shared by the S3, K2V, admin and web endpoints (port of
 * garage_api_common::generic_server): listen on TCP or a unix socket, give each request an id,
 * send the handler's response (streaming bodies with backpressure) and turn anything thrown into
 * the API's error format. A failing request never takes the process down.
 */
import { randomBytes } from '../../util/random.ts'
import { chmod, rm } from 'node:fs/promises'
import { createServer, type IncomingMessage, STATUS_CODES, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Duplex, Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Logger } from '../../util/logger.ts'
import { ApiError, incompleteBody, isClientAbort, toApiError } from './errors.ts'

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
  /** The endpoint name (`GetObject`, `ListKeys`, ...), set by the handler once known; for metrics. */
  endpoint?: string
  /** The bucket named by the request, set by the handler once parsed; for the access log. */
  bucket?: string | undefined
  /** The object key named by the request, set by the handler once parsed; for the access log. */
  key?: string | undefined
  /** The access key that signed the request, set once the signature is checked; for the access log. */
  accessKeyId?: string | undefined
}

/**
 * One access log entry: what the node's logger receives (tag `access`, level info) as the second
 * argument of `info(line, entry)`, after the text line, for loggers that write structured records.
 */
export interface AccessLogEntry {
  /** The API: `s3`, `k2v`, `admin`, `web`. */
  api: string
  method: string
  /** The request's path (no query string). */
  path: string
  endpoint: string
  bucket: string | undefined
  key: string | undefined
  status: number
  /** Bytes sent on the connection for this request, headers included. */
  bytesSent: number
  /** Bytes received on the connection for this request, headers included. */
  bytesReceived: number
  durationMsec: number
  accessKeyId: string | undefined
  requestId: string
}

/** The access log line of an entry: `s3 PUT photos/cat.jpg 200 312B 4.1ms key=GK… req=…`. */
export function formatAccessLine(e: AccessLogEntry): string {
  const target = e.bucket === undefined ? e.path : e.key === undefined ? e.bucket : `${e.bucket}/${e.key}`
  return (
    `${e.api} ${e.method} ${target} ${e.status} ${e.bytesSent}B ${e.durationMsec.toFixed(1)}ms` +
    ` key=${e.accessKeyId ?? '-'} req=${e.requestId}`
  )
}

/** What {@link RequestObserver} learns about each answered request. */
export interface RequestInfo {
  /** The handler's name ('s3', 'admin', ...). */
  api: string
  method: string
  /** `ctx.endpoint`, else the observer's `endpointName(req)`, else 'Unknown'. */
  endpoint: string
  status: number
  durationMsec: number
  /**
   * Bytes read from / written to the connection since the previous request on it ended (headers
   * included; approximate when requests are pipelined).
   */
  bytesReceived: number
  bytesSent: number
}

/** Per-request hook (metrics): called once each request has been answered. Must not throw. */
export interface RequestObserver {
  /** Names the endpoint of a request whose handler did not set `ctx.endpoint`. */
  endpointName?(req: IncomingMessage): string
  onResponse(info: RequestInfo): void
}

export interface ApiServerOptions {
  observer?: RequestObserver
  /** Where access log entries go (one per request, at info). Default: `log.withTag('access')`. */
  accessLog?: Logger
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

export async function startApiServer(
  bind: BindAddress,
  handler: ApiHandler,
  log: Logger,
  options: ApiServerOptions = {},
): Promise<ApiServer> {
  const server = createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 30_000 })
  // The request being handled on each connection, so a client error in the middle of its body
  // can be answered in the API's format.
  const inFlight = new WeakMap<Duplex, { req: IncomingMessage; res: ServerResponse; ctx: RequestContext }>()
  // Bytes of each connection already attributed to earlier requests (observer, access log).
  const counted = new WeakMap<Duplex, { read: number; written: number }>()
  const accessLog = options.accessLog ?? log.withTag('access')
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const ctx: RequestContext = { requestId: genRequestId(), startedAt: Date.now(), log }
    const socket = req.socket
    inFlight.set(socket, { req, res, ctx })
    res.on('close', () => {
      if (inFlight.get(socket)?.req === req) inFlight.delete(socket)
    })
    serve(handler, req, res, ctx, socket, log, { observer: options.observer, counted, accessLog }).catch((err: unknown) => {
      // The last line of defence: serve() answers or drops every failure itself, so reaching
      // here is a bug of ours. Log it with the request id, drop this one connection, keep the
      // node running.
      log.error(`${handler.name} ${req.method} ${req.url}: unexpected failure [${ctx.requestId}]:`, err)
      if (!res.destroyed) res.destroy()
    })
  }
  server.on('request', onRequest)
  // node:http answers 417 Expectation Failed to any Expect other than 100-continue unless this
  // event has a listener; AWS ignores expectations it does not know, so the request is served as
  // if there were none. (`100-continue` keeps node:http's default: 100 Continue, then 'request'.)
  server.on('checkExpectation', onRequest)
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const current = inFlight.get(socket)
    if (current !== undefined && !current.req.complete && socket.writable) {
      // The client ended or broke its side in the middle of a request body. Its handler sees the
      // body abort and gives up (its own answer is dropped, and serve() logs it once); the
      // client gets IncompleteBody.
      inFlight.delete(socket)
      const apiErr = incompleteBody(err)
      socket.end(rawResponse(handler.renderError(apiErr, current.req, current.ctx), current.ctx))
      return
    }
    log.debug(`${handler.name}: client error: ${err.code ?? err.message}`)
    // Malformed HTTP (or oversized headers): answer 400/431 and close; nothing reached a handler.
    const refuse = (): void => {
      if (socket.writable) {
        const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request'
        socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
      } else socket.destroy()
    }
    if (current !== undefined && !current.res.writableFinished) {
      // The bytes after a whole request are malformed (a body longer than its Content-Length,
      // garbage pipelined behind it). That request is being handled and may write: its answer
      // goes first, in order, then the refusal of what followed. Refusing at once answered 400
      // for a request that was carried out.
      current.res.once('close', refuse)
      return
    }
    refuse()
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

/**
 * The handler's rendering of an error; if rendering itself fails (a bug), a bare 500 so the
 * client still gets an answer.
 */
function renderErrorSafely(
  handler: ApiHandler,
  err: ApiError,
  req: IncomingMessage,
  ctx: RequestContext,
  log: Logger,
): ApiResponse {
  try {
    return handler.renderError(err, req, ctx)
  } catch (renderErr) {
    log.error(`${handler.name}: rendering ${err.code} failed [${ctx.requestId}]:`, renderErr)
    return { status: 500, headers: { 'content-type': 'text/plain' }, body: 'Internal error\n' }
  }
}

/** An error response as raw HTTP/1.1 bytes, for a socket no ServerResponse owns. */
function rawResponse(r: ApiResponse, ctx: RequestContext): Buffer {
  const body = typeof r.body === 'string' || r.body instanceof Uint8Array ? Buffer.from(r.body) : Buffer.alloc(0)
  const lines = [`HTTP/1.1 ${r.status} ${STATUS_CODES[r.status] ?? ''}`]
  for (const [k, v] of Object.entries(r.headers ?? {})) lines.push(`${k}: ${Array.isArray(v) ? v.join(', ') : String(v)}`)
  lines.push(`x-amz-request-id: ${ctx.requestId}`, `content-length: ${body.length}`, 'connection: close')
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`), body])
}

async function serve(
  handler: ApiHandler,
  req: IncomingMessage,
  res: ServerResponse,
  ctx: RequestContext,
  socket: Duplex & { bytesRead?: number; bytesWritten?: number },
  log: Logger,
  after: {
    observer: RequestObserver | undefined
    counted: WeakMap<Duplex, { read: number; written: number }>
    accessLog: Logger
  },
): Promise<void> {
  const started = performance.now()
  let response: ApiResponse
  try {
    response = await handler.handle(req, ctx)
  } catch (err) {
    // A body the client cut short is its doing, not ours: a 400, logged at debug level below.
    const apiErr = isClientAbort(err, req) ? incompleteBody(err) : toApiError(err)
    if (apiErr.status >= 500)
      log.error(`${handler.name} ${req.method} ${req.url} → ${apiErr.code} [${ctx.requestId}]`, apiErr.cause ?? apiErr)
    else log.debug(`${handler.name} ${req.method} ${req.url} → ${apiErr.code}: ${apiErr.message}`)
    response = renderErrorSafely(handler, apiErr, req, ctx, log)
    // The request body may be unread: close the connection after answering rather than read it.
    if (!req.complete) res.shouldKeepAlive = false
  }
  try {
    await sendResponse(req, res, response, ctx)
  } catch (err) {
    if (!res.headersSent && !res.destroyed) {
      // Nothing was sent yet: a header the handler built was refused (by `setHeader`). Values
      // from requests are checked where they are read, so this is a bug of ours; the client
      // still gets an answer in the API's format instead of a dropped connection.
      log.error(`${handler.name} ${req.method} ${req.url}: response refused before sending [${ctx.requestId}]:`, err)
      discardBody(response.body)
      for (const name of res.getHeaderNames()) res.removeHeader(name)
      const apiErr = new ApiError('InternalError', 'Internal error, please retry', { cause: err })
      if (!req.complete) res.shouldKeepAlive = false
      try {
        await sendResponse(req, res, renderErrorSafely(handler, apiErr, req, ctx, log), ctx)
      } catch (sendErr) {
        log.error(`${handler.name}: sending the error answer failed [${ctx.requestId}]:`, sendErr)
        res.destroy()
      }
    } else {
      // The client went away or a streamed body failed midway; headers are already sent, so the
      // only thing left to do is to drop the connection (the client sees a truncated body).
      // A client hanging up is routine (debug); a body failing midway is worth a warning.
      if (res.destroyed || isClientGone(err)) {
        log.debug(`${handler.name} ${req.method} ${req.url}: the client left before the answer was sent [${ctx.requestId}]`)
      } else log.warn(`${handler.name} ${req.method} ${req.url}: response aborted [${ctx.requestId}]:`, err)
      res.destroy()
    }
  }
  // Drain whatever the handler did not read so the connection can be reused.
  if (!req.complete && !req.destroyed) req.resume()
  const { observer, counted, accessLog } = after
  // `socket` is the one captured when the request arrived: `req.socket` is null once the
  // connection is destroyed (an answered bad body, a client gone), and the byte counters of a
  // destroyed net.Socket keep their last values.
  const before = counted.get(socket) ?? { read: 0, written: 0 }
  const now = { read: socket.bytesRead ?? before.read, written: socket.bytesWritten ?? before.written }
  counted.set(socket, now)
  const method = req.method ?? 'GET'
  const durationMsec = performance.now() - started
  const bytesReceived = now.read - before.read
  const bytesSent = now.written - before.written
  const endpoint = ctx.endpoint ?? observer?.endpointName?.(req) ?? 'Unknown'
  const entry: AccessLogEntry = {
    api: handler.name,
    method,
    path: rawTarget(req).rawPath,
    endpoint,
    bucket: ctx.bucket,
    key: ctx.key,
    status: res.statusCode,
    bytesSent,
    bytesReceived,
    durationMsec,
    accessKeyId: ctx.accessKeyId,
    requestId: ctx.requestId,
  }
  accessLog.info(formatAccessLine(entry), entry)
  if (observer !== undefined) {
    try {
      observer.onResponse({ api: handler.name, method, endpoint, status: res.statusCode, durationMsec, bytesReceived, bytesSent })
    } catch (err) {
      // Metrics are best effort: a failing observer must not affect the request, which is done.
      log.warn(`${handler.name}: request observer failed:`, err)
    }
  }
}

/** Errors of writing to a connection the client closed. */
function isClientGone(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ERR_STREAM_DESTROYED'
}

/** Releases a response body that will not be sent (a stream is destroyed, a generator ended). */
function discardBody(body: ApiResponse['body']): void {
  if (body instanceof Readable) body.destroy()
  else if (body !== undefined && typeof body === 'object' && !(body instanceof Uint8Array)) {
    const it = body[Symbol.asyncIterator]()
    it.return?.().catch(() => {
      // The generator's own cleanup failed; the answer is an error already, nothing to add.
    })
  }
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
    // A long string (a listing page: ~170 KB built by concatenation) is encoded once; measuring
    // it, then writing it, walked it twice (flattening the concatenation, then encoding it).
    const bytes = typeof body === 'string' && body.length > 4096 ? Buffer.from(body, 'utf8') : body
    if (!res.hasHeader('content-length')) res.setHeader('content-length', Buffer.byteLength(bytes))
    res.end(req.method === 'HEAD' ? undefined : bytes)
    return
  }
  if (req.method === 'HEAD') {
    if (body instanceof Readable) body.destroy()
    res.end()
    return
  }
  if (body instanceof Readable) await pipeline(body, res)
  else await writeIterable(body, res)
}

/**
 * Writes an async iterable (a handler's generator) to `res` with backpressure, then ends it.
 * Cheaper than `pipeline(Readable.from(body), res)`, which builds a Readable and an
 * AbortController per response and aborts the latter (a DOMException with a stack trace) at the
 * end: a measurable share of small GETs. Stops the iterable (its `finally` runs) if the client
 * goes away, and rejects so the caller drops the connection.
 */
async function writeIterable(body: AsyncIterable<Uint8Array>, res: ServerResponse): Promise<void> {
  for await (const chunk of body) {
    if (res.destroyed) throw new Error('the client closed the connection')
    if (!res.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          res.off('drain', done)
          res.off('close', done)
          resolve()
        }
        res.on('drain', done)
        res.on('close', done)
      })
      if (res.destroyed) throw new Error('the client closed the connection')
    }
  }
  res.end()
}

async function closeServer(server: Server): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve())
    server.closeIdleConnections()
    // Requests still running get a short grace period before their sockets are cut.
    setTimeout(() => server.closeAllConnections(), 2_000).unref()
  })
}

/** The parts of a request's target as they came on the wire (nothing decoded). */
export interface RawTarget {
  method: string
  rawPath: string
  rawQuery: string
}

export function rawTarget(req: { url?: string | undefined; method?: string | undefined }): RawTarget {
  const rawUrl = req.url ?? '/'
  const q = rawUrl.indexOf('?')
  return {
    method: (req.method ?? 'GET').toUpperCase(),
    rawPath: q < 0 ? rawUrl : rawUrl.slice(0, q),
    rawQuery: q < 0 ? '' : rawUrl.slice(q + 1),
  }
}
