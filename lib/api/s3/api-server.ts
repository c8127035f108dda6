/**
 * The S3 API (port of garage_api_s3::api_server): routes a request to one typed endpoint,
 * authenticates it, resolves its bucket and checks the key's permission, then dispatches to the
 * handler of its area. Errors are rendered as S3 XML.
 */
import type { IncomingMessage } from 'node:http'
import { type PassThrough, pipeline, type Readable } from 'node:stream'
import type { Garage } from '../../model/garage.ts'
import type { ExistingKey } from '../../model/helper/key.ts'
import { crdtMapGet } from '../../util/crdt/crdt.ts'
import { toHex } from '../../util/data.ts'
import { unreachable } from '../../util/errors.ts'
import type { Logger } from '../../util/logger.ts'
import type { BucketParams } from '../../model/bucket-table.ts'
import {
  corsHeadersFor,
  handleOptionsForBucket,
  handleOptionsPermissive,
  withCorsError,
  withCorsHeaders,
} from '../common/cors.ts'
import { ApiError } from '../common/errors.ts'
import type { ApiHandler, ApiResponse, RequestContext } from '../common/server.ts'
import { parseChecksumHeaders, requestBodyStages } from '../common/signature/body.ts'
import { verifyRequest } from '../common/signature/sigv4.ts'
import { checkQueryEncoding } from '../common/validate.ts'
import {
  handleCreateBucket,
  handleDeleteBucket,
  handleGetBucketLocation,
  handleGetBucketVersioning,
  handleListBuckets,
} from './bucket.ts'
import { handleGetBucketAcl } from './acl.ts'
import type { BucketCtx, S3Settings } from './context.ts'
import { handleDeleteBucketCors, handleGetBucketCors, handlePutBucketCors } from './cors.ts'
import { handleCopyObject, handleUploadPartCopy } from './copy.ts'
import { handleDeleteObject, handleDeleteObjects } from './delete.ts'
import { handleGetObject } from './get.ts'
import {
  handleDeleteBucketLifecycle,
  handleGetBucketLifecycleConfiguration,
  handlePutBucketLifecycleConfiguration,
} from './lifecycle.ts'
import { handleListObjectsV1, handleListObjectsV2 } from './list.ts'
import {
  handleAbortMultipartUpload,
  handleCompleteMultipartUpload,
  handleCreateMultipartUpload,
  handleListMultipartUploads,
  handleListParts,
  handleUploadPart,
} from './multipart.ts'
import { handlePostObject } from './post-object.ts'
import { checkEndpointNames } from './names.ts'
import { handlePutObject } from './put.ts'
import { authorizationType, type Endpoint, parseBucketAndKey, parseEndpoint } from './router.ts'
import { handleDeleteBucketWebsite, handleGetBucketWebsite, handlePutBucketWebsite } from './website.ts'
import { renderXml } from './xml.ts'

export class S3ApiServer implements ApiHandler {
  /**
   * Access key ids a quorum read just found unknown: requests naming them are refused from this
   * cache for a few seconds instead of costing a cluster read each.
   */
  readonly #unknownKeys = new ExpiringSet(10_000, 1_000)
  readonly name = 's3'
  readonly #garage: Garage
  readonly #settings: S3Settings
  readonly #log: Logger
  constructor(garage: Garage, settings: S3Settings, log: Logger) {
    this.#garage = garage
    this.#settings = settings
    this.#log = log
  }

  async handle(req: IncomingMessage, request: RequestContext): Promise<ApiResponse> {
    const rawUrl = req.url ?? '/'
    const q = rawUrl.indexOf('?')
    const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q)
    const rawQuery = q < 0 ? '' : rawUrl.slice(q + 1)
    const method = (req.method ?? 'GET').toUpperCase()
    const { bucket, key } = parseBucketAndKey({ host: req.headers.host, rawPath, rootDomain: this.#settings.rootDomain })
    checkQueryEncoding(rawQuery)
    const query = new URLSearchParams(rawQuery)
    const ep = parseEndpoint({ method, bucket, key, query, headers: req.headers })
    request.endpoint = ep.kind
    // Every name is checked before anything is read, the access key included.
    checkEndpointNames(ep)
    if (ep.kind === 'Options') return this.#handleOptions(req, ep.bucket)
    // CORS headers go on errors too, so a browser lets the page read them. Until the bucket is
    // known through the key, its global alias (if any) stands for it.
    let corsParams: BucketParams | undefined
    try {
      return await this.#handleAuthenticated(req, request, method, rawPath, rawQuery, query, ep, (p) => {
        corsParams = p
      })
    } catch (err) {
      if (req.headers.origin === undefined || bucket === undefined) throw err
      corsParams ??= this.#globalBucketParams(bucket)
      throw withCorsError(err, corsHeadersFor(corsParams, method, req.headers))
    }
  }

  /** The parameters of the bucket a global alias names, read locally; undefined when none. */
  #globalBucketParams(name: string): BucketParams | undefined {
    const id = this.#garage.buckets.resolveLocal(name)
    if (id === undefined) return undefined
    const b = this.#garage.bucketTable.data.read(new Uint8Array(0), id)
    return b === undefined || b.state.deleted ? undefined : b.state.value
  }

  /**
   * An unauthenticated CORS preflight, answered from the rules of the bucket with that global
   * name (port of garage_api_common::cors::handle_options_api).
   */
  #handleOptions(req: IncomingMessage, bucket: string | undefined): ApiResponse {
    if (bucket === undefined) return handleOptionsPermissive(false, req.headers)
    const params = this.#globalBucketParams(bucket)
    return params === undefined ? handleOptionsPermissive(true, req.headers) : handleOptionsForBucket(req.headers, params)
  }

  async #handleAuthenticated(
    req: IncomingMessage,
    request: RequestContext,
    method: string,
    rawPath: string,
    rawQuery: string,
    query: URLSearchParams,
    ep: Exclude<Endpoint, { kind: 'Options' }>,
    onBucket: (params: BucketParams) => void,
  ): Promise<ApiResponse> {
    const garage = this.#garage
    if (ep.kind === 'PostObject') {
      // Authenticated by the signed policy in the form, not by SigV4 headers.
      const post = { garage, settings: this.#settings, req, log: this.#log, bucketName: ep.bucket, rawPath }
      let params: BucketParams | undefined
      const response = await handlePostObject(post, (p) => {
        params = p
        onBucket(p)
      })
      return withCorsHeaders(response, corsHeadersFor(params, method, req.headers))
    }

    // Keys are read from the local copy of the key table (the hot path). On a cluster, a key
    // this node does not hold yet (it just joined, or has no role) is read at quorum instead.
    let fetched: ExistingKey | undefined
    let missing: string | undefined
    const lookupSecret = (id: string): string | undefined => {
      const k = garage.keys.getLocal(id) ?? (fetched?.id === id ? fetched : undefined)
      if (k === undefined) missing = id
      return k?.state.value.secret
    }
    const signed = { method, rawPath, rawQuery, headers: req.headers }
    const sigOptions = { region: this.#settings.region, service: 's3', lookupSecret }
    let auth: ReturnType<typeof verifyRequest>
    try {
      auth = verifyRequest(signed, sigOptions)
    } catch (err) {
      if (missing === undefined || garage.cluster === undefined || this.#unknownKeys.has(missing)) throw err
      fetched = await garage.keys.get(missing)
      if (fetched === undefined) {
        this.#unknownKeys.add(missing)
        throw err
      }
      auth = verifyRequest(signed, sigOptions)
    }
    if (auth === undefined) throw new ApiError('AccessDenied', 'Anonymous access is not supported')
    const apiKey = garage.keys.getLocal(auth.accessKeyId) ?? (fetched?.id === auth.accessKeyId ? fetched : undefined)
    if (apiKey === undefined)
      throw new ApiError('InvalidAccessKeyId', 'The access key ID you provided does not exist in our records.')
    const expiration = apiKey.state.value.expiration.v
    if (expiration !== null && expiration <= Date.now()) throw new ApiError('AccessDenied', 'The access key has expired')

    // A checksum asked for by name only (`x-amz-checksum-algorithm`) is computed, not checked.
    const requested = parseChecksumHeaders(req.headers).requestedAlgorithm
    // On CompleteMultipartUpload, `x-amz-checksum-*` is the whole object's checksum (checked by
    // the handler against the one combined from the parts), not a checksum of the XML body.
    const bodyHeaders = ep.kind === 'CompleteMultipartUpload' ? withoutChecksumValues(req.headers) : req.headers
    const stages = requestBodyStages(bodyHeaders, auth, {
      computeMd5: true,
      extraAlgorithms: requested === undefined ? [] : [requested],
    })
    // Consumers await `result`; this handler only keeps an early failure from going unhandled.
    stages.result.catch(() => {})
    const body: Readable =
      stages.stages.length === 0
        ? req
        : (pipeline(req, ...(stages.stages as [PassThrough]), (err) => {
            if (err) this.#log.debug(`request body failed: ${err.message}`)
          }) as Readable)

    if (ep.kind === 'ListBuckets') return handleListBuckets(garage, apiKey)
    if (ep.kind === 'CreateBucket') {
      return handleCreateBucket(garage, this.#settings.region, apiKey, ep.bucket, body, stages.result)
    }
    const bucketName = ep.bucket
    let bucketId = garage.buckets.resolveLocal(bucketName, apiKey)
    if (bucketId === undefined && garage.cluster !== undefined) bucketId = await garage.buckets.resolve(bucketName, apiKey.id)
    if (bucketId === undefined) throw new ApiError('NoSuchBucket', 'The specified bucket does not exist')
    let bucketEntry = garage.bucketTable.data.read(new Uint8Array(0), bucketId)
    if (bucketEntry === undefined && garage.cluster !== undefined) {
      bucketEntry = await garage.bucketTable.get(new Uint8Array(0), bucketId)
    }
    if (bucketEntry === undefined || bucketEntry.state.deleted) {
      throw new ApiError('NoSuchBucket', 'The specified bucket does not exist')
    }
    onBucket(bucketEntry.state.value)
    checkPermission(apiKey, toHex(bucketId), authorizationType(ep))

    const ctx: BucketCtx = {
      garage,
      settings: this.#settings,
      req,
      request,
      log: this.#log,
      apiKey,
      bucketId,
      bucketName,
      bucketParams: bucketEntry.state.value,
      body,
      bodyResult: stages.result,
      contentEncoding: stages.contentEncoding,
    }
    // A body the client cut short is mapped (to IncompleteBody) by the server, for every API.
    const response = await this.#dispatch(ctx, ep, query)
    return withCorsHeaders(response, corsHeadersFor(ctx.bucketParams, method, req.headers))
  }

  async #dispatch(ctx: BucketCtx, ep: Endpoint, query: URLSearchParams): Promise<ApiResponse> {
    const g = ctx.garage
    const owner = { id: ctx.apiKey.id, displayName: ctx.apiKey.state.value.name.v }
    switch (ep.kind) {
      case 'HeadBucket':
        return { status: 200, headers: { 'x-amz-bucket-region': this.#settings.region } }
      case 'DeleteBucket':
        return handleDeleteBucket(g, ctx.apiKey, ctx.bucketId, ctx.bucketName)
      case 'GetBucketLocation':
        return handleGetBucketLocation(this.#settings.region)
      case 'GetBucketVersioning':
        return handleGetBucketVersioning()
      case 'GetBucketAcl':
        return handleGetBucketAcl(ctx)
      case 'GetBucketCors':
        return handleGetBucketCors(ctx)
      case 'PutBucketCors':
        return handlePutBucketCors(ctx)
      case 'DeleteBucketCors':
        return handleDeleteBucketCors(ctx)
      case 'GetBucketWebsite':
        return handleGetBucketWebsite(ctx)
      case 'PutBucketWebsite':
        return handlePutBucketWebsite(ctx)
      case 'DeleteBucketWebsite':
        return handleDeleteBucketWebsite(ctx)
      case 'ListObjects':
        return handleListObjectsV1(g, ctx.bucketId, ctx.bucketName, ep, owner)
      case 'ListObjectsV2':
        return handleListObjectsV2(g, ctx.bucketId, ctx.bucketName, ep, owner)
      case 'PutObject':
        return handlePutObject(ctx, ep.key)
      case 'GetObject':
      case 'HeadObject':
        return handleGetObject(g, ctx.req.headers, ctx.bucketId, ep.key, {
          head: ep.kind === 'HeadObject',
          query,
          partNumber: ep.partNumber,
        })
      case 'DeleteObject':
        return handleDeleteObject(g, ctx.bucketId, ep.key)
      case 'DeleteObjects':
        return handleDeleteObjects(g, ctx.bucketId, ctx.body, ctx.bodyResult)
      case 'CopyObject':
        return handleCopyObject(ctx, ep.key)
      case 'CreateMultipartUpload':
        return handleCreateMultipartUpload(ctx, ep.key)
      case 'UploadPart':
        return handleUploadPart(ctx, ep)
      case 'UploadPartCopy':
        return handleUploadPartCopy(ctx, ep)
      case 'CompleteMultipartUpload':
        return handleCompleteMultipartUpload(ctx, ep)
      case 'AbortMultipartUpload':
        return handleAbortMultipartUpload(ctx, ep)
      case 'ListParts':
        return handleListParts(ctx, ep, owner)
      case 'ListMultipartUploads':
        return handleListMultipartUploads(ctx, ep, owner)
      case 'GetBucketLifecycleConfiguration':
        return handleGetBucketLifecycleConfiguration(ctx)
      case 'PutBucketLifecycleConfiguration':
        return handlePutBucketLifecycleConfiguration(ctx)
      case 'DeleteBucketLifecycle':
        return handleDeleteBucketLifecycle(ctx)
      default:
        throw notImplemented(ep.kind)
    }
  }

  renderError(err: ApiError, req: IncomingMessage, ctx: RequestContext): ApiResponse {
    const resource = (req.url ?? '/').split('?')[0] ?? '/'
    const xml = renderXml(
      'Error',
      {
        Code: err.code,
        Message: err.message,
        ...err.extra,
        Resource: resource,
        Region: this.#settings.region,
        RequestId: ctx.requestId,
      },
      null,
    )
    return { status: err.status, headers: { 'content-type': 'application/xml', ...err.headers }, body: xml }
  }
}

function withoutChecksumValues(headers: IncomingMessage['headers']): IncomingMessage['headers'] {
  const out: IncomingMessage['headers'] = {}
  for (const [k, v] of Object.entries(headers)) {
    if (k.startsWith('x-amz-checksum-') && k !== 'x-amz-checksum-algorithm' && k !== 'x-amz-checksum-type') continue
    out[k] = v
  }
  return out
}

function notImplemented(kind: string): ApiError {
  return new ApiError('NotImplemented', `${kind} is not implemented`)
}

function checkPermission(key: ExistingKey, bucketHex: string, needed: ReturnType<typeof authorizationType>): void {
  if (needed === 'none') return
  const p = crdtMapGet(key.state.value.authorizedBuckets, bucketHex)
  const ok =
    p !== undefined &&
    (needed === 'read' ? p.read : needed === 'write' ? p.write : needed === 'owner' ? p.owner : unreachableAuth(needed))
  if (!ok) throw new ApiError('AccessDenied', 'Access Denied')
}

function unreachableAuth(x: never): boolean {
  throw unreachable(x)
}

/** A bounded set whose members expire after `ttlMs`. */
class ExpiringSet {
  readonly #ttlMs: number
  readonly #max: number
  readonly #until = new Map<string, number>()
  constructor(ttlMs: number, max: number) {
    this.#ttlMs = ttlMs
    this.#max = max
  }
  has(v: string): boolean {
    const until = this.#until.get(v)
    if (until === undefined) return false
    if (until > Date.now()) return true
    this.#until.delete(v)
    return false
  }
  add(v: string): void {
    if (this.#until.size >= this.#max) {
      // Drop the oldest entry (Map keeps insertion order).
      const first = this.#until.keys().next()
      if (first.done !== true) this.#until.delete(first.value)
    }
    this.#until.set(v, Date.now() + this.#ttlMs)
  }
}
