/**
 * The S3 API (port of garage_api_s3::api_server): routes a request to one typed endpoint,
 * authenticates it, resolves its bucket and checks the key's permission, then dispatches to the
 * handler of its area. Errors are rendered as S3 XML.
 */
import type { IncomingMessage } from 'node:http'
import { type PassThrough, pipeline, type Readable } from 'node:stream'
import type { Garage } from '../../model/garage.ts'
import type { ExistingKey } from '../../model/helper/key.ts'
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
import { type AuthenticatedV2, isSignatureV2, verifyRequestV2 } from '../common/signature/sigv2.ts'
import { type Authenticated, parseQuery, SigningKeyCache, verifyRequest } from '../common/signature/sigv4.ts'
import { authorityToHost, hostToBucket } from '../common/host.ts'
import { checkQueryEncoding } from '../common/validate.ts'
import {
  handleCreateBucket,
  handleDeleteBucket,
  handleGetBucketLocation,
  handleGetBucketVersioning,
  handleListBuckets,
} from './bucket.ts'
import { handleGetBucketAcl } from './acl.ts'
import { handleGetObjectAttributes } from './attributes.ts'
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
import { handleDeleteBucketEncryption, handleGetBucketEncryption, handlePutBucketEncryption } from './sse-s3.ts'
import { authorizationType, type Endpoint, parseBucketAndKey, parseEndpoint } from './router.ts'
import { handleDeleteBucketWebsite, handleGetBucketWebsite, handlePutBucketWebsite } from './website.ts'
import { renderXml } from './xml.ts'

export class S3ApiServer implements ApiHandler {
  readonly name = 's3'
  readonly #garage: Garage
  readonly #settings: S3Settings
  /** SigV4 signing keys per (secret, date): four HMACs saved on every request after a client's first of the day. */
  readonly #signingKeys = new SigningKeyCache()
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
    request.bucket = bucket
    request.key = key
    checkQueryEncoding(rawQuery)
    const query = new URLSearchParams(rawQuery)
    const ep = parseEndpoint({ method, bucket, key, query, headers: req.headers })
    request.endpoint = ep.kind
    // Every name is checked before anything is read, the access key included.
    checkEndpointNames(ep)
    if (ep.kind === 'Options') return await this.#handleOptions(req, ep.bucket)
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

  /**
   * The parameters of the bucket a global alias names, from this node's copy only (the request
   * already failed, perhaps for want of a quorum: its error answer waits for nothing more).
   */
  #globalBucketParams(name: string): BucketParams | undefined {
    return this.#garage.access.localGlobalBucket(name)?.params
  }

  /**
   * An unauthenticated CORS preflight, answered from the rules of the bucket with that global
   * name (port of garage_api_common::cors::handle_options_api).
   */
  async #handleOptions(req: IncomingMessage, bucket: string | undefined): Promise<ApiResponse> {
    if (bucket === undefined) return handleOptionsPermissive(false, req.headers)
    const params = (await this.#garage.access.findBucket(bucket))?.params
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

    // The signature check is synchronous: it first runs on the local copy of the key table (the
    // hot path); a key missing there is resolved with the model's policy (`garage.access`:
    // quorum on a local miss in a cluster, unknown ids cached), and the check runs again.
    let fetched: ExistingKey | undefined
    let missing: string | undefined
    const lookupSecret = (id: string): string | undefined => {
      const k = fetched?.id === id ? fetched : garage.access.localKey(id)
      if (k === undefined) missing = id
      return k?.state.value.secret
    }
    // Signature V2 (`Authorization: AWS …` or `AWSAccessKeyId`/`Signature` in the query) or V4.
    const v2 = isSignatureV2(req.headers, parseQuery(rawQuery))
    const verify = v2
      ? () => this.#verifyV2(req, method, rawPath, rawQuery, lookupSecret)
      : () => this.#verifyV4(req, method, rawPath, rawQuery, lookupSecret)
    let auth: { accessKeyId: string } | undefined
    try {
      auth = verify()
    } catch (err) {
      if (missing === undefined) throw err
      fetched = await garage.access.resolveKey(missing)
      if (fetched === undefined) throw err
      auth = verify()
    }
    if (auth === undefined) throw new ApiError('AccessDenied', 'Anonymous access is not supported')
    request.accessKeyId = auth.accessKeyId
    const apiKey = fetched?.id === auth.accessKeyId ? fetched : garage.access.localKey(auth.accessKeyId)
    if (apiKey === undefined)
      throw new ApiError('InvalidAccessKeyId', 'The access key ID you provided does not exist in our records.')
    garage.access.checkKeyActive(apiKey)

    // The checksum headers, parsed once for the request: the body stages check them, handlers
    // read them from `ctx.checksums`.
    const checksums = parseChecksumHeaders(req.headers)
    // A checksum asked for by name only (`x-amz-checksum-algorithm`) is computed, not checked.
    const requested = checksums.requestedAlgorithm
    // V2 has no payload hash: its body is checked through Content-MD5 (and x-amz-checksum-*) only.
    const stages = requestBodyStages(req.headers, v2 ? undefined : (auth as Authenticated), {
      computeMd5: true,
      extraAlgorithms: requested === undefined ? [] : [requested],
      // On CompleteMultipartUpload, `x-amz-checksum-*` is the whole object's checksum (checked by
      // the handler against the one combined from the parts), not a checksum of the XML body.
      checksums: ep.kind === 'CompleteMultipartUpload' ? { ...checksums, expected: {} } : checksums,
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
    const bucket = await garage.access.resolveBucket(bucketName, apiKey)
    onBucket(bucket.params)
    const needed = authorizationType(ep)
    if (needed !== 'none') garage.access.checkBucketPermission(apiKey, bucket.id, needed)

    const ctx: BucketCtx = {
      garage,
      settings: this.#settings,
      req,
      request,
      log: this.#log,
      apiKey,
      bucketId: bucket.id,
      bucketName,
      bucketParams: bucket.params,
      body,
      bodyResult: stages.result,
      checksums,
      contentEncoding: stages.contentEncoding,
    }
    // A body the client cut short is mapped (to IncompleteBody) by the server, for every API.
    const response = await this.#dispatch(ctx, ep, query)
    return withCorsHeaders(response, corsHeadersFor(ctx.bucketParams, method, req.headers))
  }

  #verifyV4(
    req: IncomingMessage,
    method: string,
    rawPath: string,
    rawQuery: string,
    lookupSecret: (id: string) => string | undefined,
  ): Authenticated | undefined {
    return verifyRequest(
      { method, rawPath, rawQuery, headers: req.headers },
      { region: this.#settings.region, service: 's3', lookupSecret, signingKeys: this.#signingKeys },
    )
  }

  #verifyV2(
    req: IncomingMessage,
    method: string,
    rawPath: string,
    rawQuery: string,
    lookupSecret: (id: string) => string | undefined,
  ): AuthenticatedV2 {
    const host = req.headers.host
    const rootDomain = this.#settings.rootDomain
    const virtualHostBucket =
      host === undefined || host === '' || rootDomain === undefined ? undefined : hostToBucket(authorityToHost(host), rootDomain)
    return verifyRequestV2(
      { method, rawPath, rawQuery, headers: req.headers, headersDistinct: req.headersDistinct, virtualHostBucket },
      { lookupSecret },
    )
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
          keyring: ctx.settings.sseKeyring,
        })
      case 'GetObjectAttributes':
        return handleGetObjectAttributes(ctx, ep)
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
      case 'GetBucketEncryption':
        return handleGetBucketEncryption(ctx)
      case 'PutBucketEncryption':
        return handlePutBucketEncryption(ctx)
      case 'DeleteBucketEncryption':
        return handleDeleteBucketEncryption(ctx)
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

function notImplemented(kind: string): ApiError {
  return new ApiError('NotImplemented', `${kind} is not implemented`)
}
