/**
 * The K2V API (port of garage_api_k2v::api_server): routes a request to one typed endpoint,
 * authenticates it with SigV4 (service `k2v`, the S3 region), resolves its bucket with the same
 * keys and permissions as S3, and dispatches to the handler. Errors are JSON, as Garage renders
 * them: `{ code, message, region, path }`.
 * @internal
 */
import type { IncomingMessage } from 'node:http'
import type { Readable } from 'node:stream'
import type { Garage } from '../../model/garage.ts'
import type { Logger } from '../../util/logger.ts'
import { corsHeadersFor, handleOptionsForBucket, handleOptionsPermissive, withCorsHeaders } from '../common/cors.ts'
import { authenticate } from '../common/authenticate.ts'
import { ApiError } from '../common/errors.ts'
import { type ApiHandler, type ApiResponse, type RequestContext, rawTarget } from '../common/server.ts'
import { pipeBody, requestBodyStages } from '../common/signature/body.ts'
import { SigningKeyCache, verifyRequest } from '../common/signature/sigv4.ts'
import { handleDeleteBatch, handleInsertBatch, handlePollRange, handleReadBatch } from './batch.ts'
import type { K2vCtx } from './context.ts'
import { handleDeleteItem, handleInsertItem, handlePollItem, handleReadItem } from './item.ts'
import { handleReadIndex } from './read-index.ts'
import { type K2vEndpoint, k2vAuthorization, parseK2vEndpoint } from './router.ts'

/** Largest request body (a value, or a batch's JSON). Garage sets none; 64 MiB here. @internal */
export const K2V_MAX_BODY_BYTES = 64 * 1024 * 1024

/** @internal */
export interface K2vSettings {
  /** The S3 region, which K2V requests are signed for. */
  region: string
}

/** @internal */
export class K2vApiServer implements ApiHandler {
  readonly name = 'k2v'
  readonly #garage: Garage
  readonly #settings: K2vSettings
  readonly #log: Logger
  /** Derived SigV4 signing keys (as the S3 server's): four HMACs saved per request. */
  readonly #signingKeys = new SigningKeyCache()
  constructor(garage: Garage, settings: K2vSettings, log: Logger) {
    this.#garage = garage
    this.#settings = settings
    this.#log = log
  }

  async handle(req: IncomingMessage, request: RequestContext): Promise<ApiResponse> {
    const { method, rawPath, rawQuery } = rawTarget(req)
    const ep = parseK2vEndpoint(method, rawPath, rawQuery)
    request.endpoint = ep.kind
    const garage = this.#garage
    if (ep.kind === 'Options') {
      const params = (await garage.access.findBucket(ep.bucket))?.params
      return params === undefined ? handleOptionsPermissive(true, req.headers) : handleOptionsForBucket(req.headers, params)
    }

    const { auth, key: apiKey } = await authenticate(garage.access, request, (lookupSecret) =>
      verifyRequest(
        { method, rawPath, rawQuery, headers: req.headers },
        { region: this.#settings.region, service: 'k2v', lookupSecret, signingKeys: this.#signingKeys },
      ),
    )
    if (auth === undefined || apiKey === undefined)
      throw new ApiError('AccessDenied', 'Forbidden: Garage does not support anonymous access yet')

    const bucket = await garage.access.resolveBucket(ep.bucket, apiKey)
    garage.access.checkBucketPermission(apiKey, bucket.id, k2vAuthorization(ep))

    const stages = requestBodyStages(req.headers, auth)
    // Consumers await `result`; this only keeps an early failure from going unhandled.
    stages.result.catch(() => {})
    const body: Readable = pipeBody(req, stages.stages, (err) => this.#log.debug(`request body failed: ${err.message}`))
    // Polls end when the client goes away.
    const gone = new AbortController()
    const onClose = (): void => gone.abort()
    req.socket.once('close', onClose)
    const ctx: K2vCtx = {
      garage,
      req,
      bucketId: bucket.id,
      signal: gone.signal,
      readBody: async () => {
        const chunks: Buffer[] = []
        let len = 0
        for await (const chunk of body as AsyncIterable<Buffer>) {
          len += chunk.length
          if (len > K2V_MAX_BODY_BYTES) {
            body.destroy()
            throw new ApiError('MaxMessageLengthExceeded', `Your request was too big (at most ${K2V_MAX_BODY_BYTES} bytes here).`)
          }
          chunks.push(chunk)
        }
        await stages.result
        return new Uint8Array(Buffer.concat(chunks))
      },
    }
    try {
      const response = await dispatch(ctx, ep)
      // Garage adds CORS headers to successful GET, HEAD and POST answers (others are preflighted).
      if (method === 'GET' || method === 'HEAD' || method === 'POST') {
        return withCorsHeaders(response, corsHeadersFor(bucket.params, method, req.headers))
      }
      return response
    } finally {
      req.socket.off('close', onClose)
    }
  }

  renderError(err: ApiError, req: IncomingMessage): ApiResponse {
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    const body = JSON.stringify({ code: err.code, message: err.message, region: this.#settings.region, path }, null, 2)
    return { status: err.status, headers: { ...err.headers, 'content-type': 'application/json' }, body }
  }
}

function dispatch(ctx: K2vCtx, ep: Exclude<K2vEndpoint, { kind: 'Options' }>): Promise<ApiResponse> {
  switch (ep.kind) {
    case 'ReadItem':
      return handleReadItem(ctx, ep.partitionKey, ep.sortKey)
    case 'PollItem':
      return handlePollItem(ctx, ep.partitionKey, ep.sortKey, ep.causalityToken, ep.timeout)
    case 'InsertItem':
      return handleInsertItem(ctx, ep.partitionKey, ep.sortKey)
    case 'DeleteItem':
      return handleDeleteItem(ctx, ep.partitionKey, ep.sortKey)
    case 'ReadIndex':
      return handleReadIndex(ctx, ep)
    case 'InsertBatch':
      return handleInsertBatch(ctx)
    case 'ReadBatch':
      return handleReadBatch(ctx)
    case 'DeleteBatch':
      return handleDeleteBatch(ctx)
    case 'PollRange':
      return handlePollRange(ctx, ep.partitionKey)
  }
}
