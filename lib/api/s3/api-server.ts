/**
 * The S3 API (port of garage_api_s3::api_server): routes a request to one typed endpoint,
 * authenticates it, resolves its bucket and checks the key's permission, then dispatches to the
 * handler of its area. Errors are rendered as S3 XML.
 */
import type { IncomingMessage } from 'node:http'
import type { Readable } from 'node:stream'
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
import { authenticate } from '../common/authenticate.ts'
import { ApiError } from '../common/errors.ts'
import { type ApiHandler, type ApiResponse, type RequestContext, rawTarget } from '../common/server.ts'
import { parseChecksumHeaders, pipeBody, requestBodyStages } from '../common/signature/body.ts'
import { type AuthenticatedV2, isSignatureV2, verifyRequestV2 } from '../common/signature/sigv2.ts'
import { type Authenticated, parseQuery, SigningKeyCache, verifyRequest } from '../common/signature/sigv4.ts'
import { authorityToHost, hostToBucket } from '../common/host.ts'
import { checkQueryEncoding } from '../common/validate.ts'
import { handleCreateBucket, handleDeleteBucket, handleGetBucketLocation, handleListBuckets } from './bucket.ts'
import {
  handleGetBucketAcl,
  handleGetBucketOwnershipControls,
  handleGetObjectAcl,
  handlePutBucketAcl,
  handlePutObjectAcl,
  parseCannedAcl,
} from './acl.ts'
import {
  canBypass,
  handleGetObjectLegalHold,
  handleGetObjectLockConfiguration,
  handleGetObjectRetention,
  handlePutObjectLegalHold,
  handlePutObjectLockConfiguration,
  handlePutObjectRetention,
  wantsBypass,
} from './object-lock.ts'
import { handleGetBucketVersioning, handleListObjectVersions, handlePutBucketVersioning } from './versioning.ts'
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
import { authorizationType, type Endpoint, endpointKey, parseBucketAndKey, parseEndpoint } from './router.ts'
import { handleDeleteBucketWebsite, handleGetBucketWebsite, handlePutBucketWebsite } from './website.ts'
import { renderXml } from './xml.ts'
import {
  evaluatePolicy,
  handleDeleteBucketPolicy,
  handleGetBucketPolicy,
  handleGetBucketPolicyStatus,
  handlePutBucketPolicy,
  POLICY_GRANTABLE,
  PolicyCache,
  type PolicyDecision,
  type PolicyRequest,
  policyAction,
  PUBLIC_READ,
} from './policy.ts'
import type { Uuid } from '../../util/data.ts'
import {
  handleDeleteBucketTagging,
  handleDeleteObjectTagging,
  handleGetBucketTagging,
  handleGetObjectTagging,
  handlePutBucketTagging,
  handlePutObjectTagging,
} from './tagging.ts'

export class S3ApiServer implements ApiHandler {
  readonly name = 's3'
  readonly #garage: Garage
  readonly #settings: S3Settings
  /** SigV4 signing keys per (secret, date): four HMACs saved on every request after a client's first of the day. */
  readonly #signingKeys = new SigningKeyCache()
  readonly #log: Logger
  /** Stored bucket policies, parsed once per text. */
  readonly #policies = new PolicyCache()
  constructor(garage: Garage, settings: S3Settings, log: Logger) {
    this.#garage = garage
    this.#settings = settings
    this.#log = log
  }

  async handle(req: IncomingMessage, request: RequestContext): Promise<ApiResponse> {
    const { method, rawPath, rawQuery } = rawTarget(req)
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

    // Signature V2 (`Authorization: AWS …` or `AWSAccessKeyId`/`Signature` in the query) or V4.
    // An anonymous request (no signature at all) goes on only to a bucket whose policy or
    // public-read ACL lets anyone in for its operation (#authorize).
    const v2 = isSignatureV2(req.headers, parseQuery(rawQuery))
    const { auth, key: apiKey } = await authenticate<{ accessKeyId: string }>(garage.access, request, (lookupSecret) =>
      v2
        ? this.#verifyV2(req, method, rawPath, rawQuery, lookupSecret)
        : this.#verifyV4(req, method, rawPath, rawQuery, lookupSecret),
    )

    // The checksum headers, parsed once for the request: the body stages check them, handlers
    // read them from `ctx.checksums`.
    const checksums = parseChecksumHeaders(req.headers)
    // A checksum asked for by name only (`x-amz-checksum-algorithm`) is computed, not checked.
    const requested = checksums.requestedAlgorithm
    // V2 and anonymous requests have no payload hash: their body is checked through Content-MD5
    // (and x-amz-checksum-*) only.
    const stages = requestBodyStages(req.headers, v2 || auth === undefined ? undefined : (auth as Authenticated), {
      computeMd5: true,
      extraAlgorithms: requested === undefined ? [] : [requested],
      // On CompleteMultipartUpload, `x-amz-checksum-*` is the whole object's checksum (checked by
      // the handler against the one combined from the parts), not a checksum of the XML body.
      checksums: ep.kind === 'CompleteMultipartUpload' ? { ...checksums, expected: {} } : checksums,
    })
    // Consumers await `result`; this handler only keeps an early failure from going unhandled.
    stages.result.catch(() => {})
    const body: Readable = pipeBody(req, stages.stages, (err) => this.#log.debug(`request body failed: ${err.message}`))

    if (ep.kind === 'ListBuckets' || ep.kind === 'CreateBucket') {
      if (apiKey === undefined) throw anonymousDenied()
      if (ep.kind === 'ListBuckets') return handleListBuckets(garage, apiKey)
      // x-amz-acl: canned ACLs only (acl.ts), checked before anything is created.
      const publicRead = parseCannedAcl(req.headers, 'bucket') === 'public-read'
      const lock = req.headers['x-amz-bucket-object-lock-enabled']
      const objectLock = typeof lock === 'string' && lock.trim().toLowerCase() === 'true'
      return handleCreateBucket(garage, this.#settings.region, apiKey, ep.bucket, body, stages.result, publicRead, objectLock)
    }
    const bucketName = ep.bucket
    // Anonymous requests name buckets by their global alias; an unknown one is AccessDenied
    // (as a refused one is), so that anonymous clients cannot probe for names.
    const bucket =
      apiKey !== undefined ? await garage.access.resolveBucket(bucketName, apiKey) : await garage.access.findBucket(bucketName)
    if (bucket === undefined) throw anonymousDenied()
    onBucket(bucket.params)
    this.#authorize(req, query, ep, apiKey, bucket)

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

  /**
   * Decides whether the request may go on: the bucket policy first (an explicit Deny refuses
   * anything but an owner's policy management, AWS's lockout protection), then the key's
   * permission on the bucket, else a policy Allow for a grantable operation; an anonymous request
   * needs a policy Allow or, for reads, the bucket's public-read ACL.
   * docs/design/policies.md describes the order.
   */
  #authorize(
    req: IncomingMessage,
    query: URLSearchParams,
    ep: Exclude<Endpoint, { kind: 'Options' | 'ListBuckets' | 'CreateBucket' | 'PostObject' }>,
    apiKey: ExistingKey | undefined,
    bucket: { id: Uuid; params: BucketParams },
  ): void {
    const access = this.#garage.access
    const needed = authorizationType(ep)
    const policyText = bucket.params.policy?.v ?? null
    let decision: PolicyDecision = 'none'
    if (policyText !== null) {
      const key = endpointKey(ep)
      decision = evaluatePolicy(this.#policies.get(policyText), {
        principal: apiKey?.id,
        action: policyAction(ep),
        resource: key === undefined ? '' : `/${key}`,
        context: policyContext(req, query),
      })
    }
    const isOwner = apiKey !== undefined && access.hasBucketPermission(apiKey, bucket.id, 'owner')
    if (decision === 'deny' && !(isOwner && POLICY_ENDPOINTS.has(ep.kind))) throw new ApiError('AccessDenied', 'Access Denied')
    if (apiKey !== undefined) {
      if (needed === 'none' || access.hasBucketPermission(apiKey, bucket.id, needed)) return
      if (decision === 'allow' && POLICY_GRANTABLE.has(ep.kind)) return
      access.checkBucketPermission(apiKey, bucket.id, needed)
      return
    }
    if (decision === 'allow' && POLICY_GRANTABLE.has(ep.kind)) return
    if (bucket.params.publicRead?.v === true && PUBLIC_READ.has(ep.kind)) return
    throw anonymousDenied()
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
    // Listings name an owner: the key's, or for anonymous requests none (an empty id).
    const owner = { id: ctx.apiKey?.id ?? '', displayName: ctx.apiKey?.state.value.name.v ?? '' }
    switch (ep.kind) {
      case 'HeadBucket':
        return { status: 200, headers: { 'x-amz-bucket-region': this.#settings.region } }
      case 'DeleteBucket':
        return handleDeleteBucket(g, ctx.apiKey as ExistingKey, ctx.bucketId, ctx.bucketName)
      case 'GetBucketLocation':
        return handleGetBucketLocation(this.#settings.region)
      case 'GetBucketVersioning':
        return handleGetBucketVersioning(ctx)
      case 'PutBucketVersioning':
        return handlePutBucketVersioning(ctx)
      case 'ListObjectVersions':
        return handleListObjectVersions(ctx, ep, owner)
      case 'GetObjectLockConfiguration':
        return handleGetObjectLockConfiguration(ctx)
      case 'PutObjectLockConfiguration':
        return handlePutObjectLockConfiguration(ctx)
      case 'GetObjectRetention':
        return handleGetObjectRetention(ctx, ep.key, ep.versionId)
      case 'PutObjectRetention':
        return handlePutObjectRetention(ctx, ep.key, ep.versionId)
      case 'GetObjectLegalHold':
        return handleGetObjectLegalHold(ctx, ep.key, ep.versionId)
      case 'PutObjectLegalHold':
        return handlePutObjectLegalHold(ctx, ep.key, ep.versionId)
      case 'GetBucketAcl':
        return handleGetBucketAcl(ctx)
      case 'GetObjectAcl':
        return handleGetObjectAcl(ctx, ep.key)
      case 'PutBucketAcl':
        return handlePutBucketAcl(ctx)
      case 'PutObjectAcl':
        return handlePutObjectAcl(ctx, ep.key)
      case 'GetBucketOwnershipControls':
        return handleGetBucketOwnershipControls()
      case 'GetObjectTagging':
        return handleGetObjectTagging(ctx, ep)
      case 'PutObjectTagging':
        return handlePutObjectTagging(ctx, ep)
      case 'DeleteObjectTagging':
        return handleDeleteObjectTagging(ctx, ep)
      case 'GetBucketTagging':
        return handleGetBucketTagging(ctx)
      case 'PutBucketTagging':
        return handlePutBucketTagging(ctx)
      case 'DeleteBucketTagging':
        return handleDeleteBucketTagging(ctx)
      case 'GetBucketPolicy':
        return handleGetBucketPolicy(ctx)
      case 'PutBucketPolicy':
        return handlePutBucketPolicy(ctx)
      case 'DeleteBucketPolicy':
        return handleDeleteBucketPolicy(ctx)
      case 'GetBucketPolicyStatus':
        return handleGetBucketPolicyStatus(ctx, this.#policies)
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
          versionId: ep.versionId,
          bucketParams: ctx.bucketParams,
        })
      case 'GetObjectAttributes':
        return handleGetObjectAttributes(ctx, ep)
      case 'DeleteObject':
        return handleDeleteObject(g, ctx.bucketId, ctx.bucketParams, ep.key, {
          versionId: ep.versionId,
          bypassGovernance: wantsBypass(ctx.req.headers) && canBypass(ctx),
        })
      case 'DeleteObjects':
        return handleDeleteObjects(g, ctx.bucketId, ctx.bucketParams, ctx.body, ctx.bodyResult, {
          bypassGovernance: wantsBypass(ctx.req.headers) && canBypass(ctx),
        })
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

/** The policy management endpoints an owner key keeps under a Deny (AWS's root-user exemption). */
const POLICY_ENDPOINTS: ReadonlySet<Endpoint['kind']> = new Set<Endpoint['kind']>([
  'GetBucketPolicy',
  'PutBucketPolicy',
  'DeleteBucketPolicy',
])

const anonymousDenied = (): ApiError => new ApiError('AccessDenied', 'Access Denied')

/** The condition keys of a request (aws:SourceIp is the peer's address: a proxy's, behind one). */
function policyContext(req: IncomingMessage, query: URLSearchParams): PolicyRequest['context'] {
  const ctx: PolicyRequest['context'] = {
    'aws:securetransport': String((req.socket as { encrypted?: boolean }).encrypted === true),
  }
  const ip = req.socket.remoteAddress
  if (ip !== undefined) ctx['aws:sourceip'] = ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip
  const ua = req.headers['user-agent']
  if (ua !== undefined) ctx['aws:useragent'] = ua
  const referer = req.headers.referer
  if (referer !== undefined) ctx['aws:referer'] = referer
  for (const [param, key] of [
    ['prefix', 's3:prefix'],
    ['delimiter', 's3:delimiter'],
    ['max-keys', 's3:max-keys'],
  ] as const) {
    const v = query.get(param)
    if (v !== null) ctx[key] = v
  }
  return ctx
}

function notImplemented(kind: string): ApiError {
  return new ApiError('NotImplemented', `${kind} is not implemented`)
}
