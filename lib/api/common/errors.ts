/**
 * API errors shared by the S3, K2V and admin APIs. The code list is the single source of truth for
 * HTTP statuses; each API renders an {@link ApiError} in its own format (XML for S3, JSON for
 * K2V and admin). Port of garage_api_common::common_error and garage_api_s3::error.
 */
import { type GarageError, isGarageError, ModelError, type ModelErrorCode } from '../../util/errors.ts'

export const API_ERROR_STATUS = {
  AccessDenied: 403,
  AuthorizationHeaderMalformed: 400,
  BadDigest: 400,
  BucketAlreadyExists: 409,
  BucketAlreadyOwnedByYou: 409,
  BucketNotEmpty: 409,
  EntityTooLarge: 400,
  EntityTooSmall: 400,
  ExpiredToken: 400,
  IncompleteBody: 400,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidBucketName: 400,
  InvalidBucketState: 409,
  InvalidDigest: 400,
  InvalidEncryptionAlgorithmError: 400,
  InvalidPart: 400,
  InvalidPolicyDocument: 400,
  InvalidPartOrder: 400,
  InvalidRange: 416,
  InvalidRequest: 400,
  InvalidStorageClass: 400,
  KeyTooLongError: 400,
  MalformedPOSTRequest: 400,
  MalformedXML: 400,
  MaxMessageLengthExceeded: 400,
  MaxPostPreDataLengthExceededError: 400,
  MetadataTooLarge: 400,
  MethodNotAllowed: 405,
  MissingContentLength: 411,
  MissingSecurityHeader: 400,
  NoSuchBucket: 404,
  NoSuchCORSConfiguration: 404,
  NoSuchKey: 404,
  NoSuchLifecycleConfiguration: 404,
  NoSuchObjectLockConfiguration: 404,
  ObjectLockConfigurationNotFoundError: 404,
  NoSuchUpload: 404,
  NoSuchVersion: 404,
  NoSuchWebsiteConfiguration: 404,
  NotImplemented: 501,
  NotModified: 304,
  PreconditionFailed: 412,
  QuotaExceeded: 403,
  RequestTimeTooSkewed: 403,
  RequestTimeout: 400,
  ServerSideEncryptionConfigurationNotFoundError: 404,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  SlowDown: 503,
  XAmzContentSHA256Mismatch: 400,
  InvalidLocationConstraint: 400,
  IllegalLocationConstraintException: 400,
  UnexpectedContent: 400,
  InvalidTag: 400,
  ConditionalRequestConflict: 409,
  MalformedPolicy: 400,
  NoSuchBucketPolicy: 404,
  NoSuchTagSet: 404,
  AccessControlListNotSupported: 400,
  UnresolvableGrantByEmailAddress: 400,
  InvalidBucketAclWithObjectOwnership: 400,
  /** A request path that does not percent-decode to UTF-8 (AWS: "Couldn't parse the specified URI."). */
  InvalidURI: 400,
  // K2V's own codes (garage_api_k2v::error).
  /** K2V: the Accept header names neither application/json nor application/octet-stream. */
  NotAcceptable: 406,
  /** K2V: a value in a JSON body is not base64. */
  InvalidBase64: 400,
  /** K2V: a causality token that does not parse. */
  CausalityToken: 400,
  /** K2V: a partition key that does not percent-decode to UTF-8. */
  InvalidUtf8String: 400,
} as const satisfies Record<string, number>

export type ApiErrorCode = keyof typeof API_ERROR_STATUS

/** An error answered to an API client with its S3-style code and HTTP status. */
export class ApiError extends Error {
  override name = 'ApiError'
  readonly code: ApiErrorCode
  readonly status: number
  /** Extra response headers (for instance `x-amz-bucket-region`). */
  readonly headers: Record<string, string>
  /** Extra fields rendered in the error body (for instance the expected region). */
  readonly extra: Record<string, string>
  constructor(
    code: ApiErrorCode,
    message: string,
    options?: ErrorOptions & { headers?: Record<string, string>; extra?: Record<string, string> },
  ) {
    super(message, options)
    this.code = code
    this.status = API_ERROR_STATUS[code]
    this.headers = options?.headers ?? {}
    this.extra = options?.extra ?? {}
  }
}

const MODEL_TO_API: Record<ModelErrorCode, ApiErrorCode> = {
  NoSuchBucket: 'NoSuchBucket',
  NoSuchKey: 'NoSuchKey',
  NoSuchAccessKey: 'InvalidAccessKeyId',
  // Only the admin API manages admin tokens; it maps this code itself (404 NoSuchAdminToken).
  NoSuchAdminToken: 'InvalidRequest',
  NoSuchUpload: 'NoSuchUpload',
  InvalidBucketName: 'InvalidBucketName',
  // The S3 layer maps names that are not object keys (prefixes, markers) to InvalidArgument itself.
  NameTooLong: 'KeyTooLongError',
  InvalidName: 'InvalidArgument',
  BucketAlreadyExists: 'BucketAlreadyExists',
  BucketNotEmpty: 'BucketNotEmpty',
  BadRequest: 'InvalidRequest',
  Forbidden: 'AccessDenied',
}

const UNAVAILABLE = new Set<string>(['GARAGE_ERR_QUORUM', 'GARAGE_ERR_TIMEOUT', 'GARAGE_ERR_REMOTE'])

/**
 * A key the metadata store refused as too long. Only a client's name can be that long (the API
 * layers check names first; this is the net), and nothing was read or written: a 400, not a 500.
 */
export const isKeyTooLong = (err: unknown): boolean =>
  isGarageError(err) && (err as GarageError).code === 'GARAGE_ERR_KEY_TOO_LONG'

/** Quorum, timeout and remote failures: every API answers them 503 (retry later), not 500. */
export const isUnavailable = (err: unknown): boolean => isGarageError(err) && UNAVAILABLE.has((err as GarageError).code)

/**
 * Converts anything thrown by a handler into the error sent to the client. Model refusals map to
 * their API code; quorum, timeout and remote failures become 503; everything else is a 500 whose
 * real cause the server logs (the client sees a generic message).
 */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err
  if (err instanceof ModelError) return new ApiError(MODEL_TO_API[err.modelCode], err.message, { cause: err })
  if (isUnavailable(err)) {
    return new ApiError('ServiceUnavailable', 'Service unavailable, please retry', { cause: err })
  }
  if (isKeyTooLong(err)) return new ApiError('KeyTooLongError', 'Your key is too long', { cause: err })
  return new ApiError('InternalError', 'Internal error, please retry', { cause: err })
}

/** Codes of a request body that ended because the client went away or reset the connection. */
const CLIENT_ABORT_CODES = new Set(['ECONNRESET', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE'])

/**
 * True when `err` (or one of its causes) is a reset, abort or premature close AND the request's
 * own connection is gone (its socket destroyed, or already detached from the request): the
 * client hung up, whether in the middle of its body or after sending it whole but before the
 * body was consumed (node:http then fails the unread body with `aborted`). That is the client's
 * doing: an `IncompleteBody` (400) logged at debug level, not an internal error. A reset of some
 * other connection (a peer node's) while the client is still there is not.
 */
export function isClientAbort(err: unknown, req: { readonly socket: { readonly destroyed: boolean } | null }): boolean {
  if (req.socket !== null && !req.socket.destroyed) return false
  let e: unknown = err
  for (let depth = 0; depth < 8 && typeof e === 'object' && e !== null; depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && CLIENT_ABORT_CODES.has(code)) return true
    e = (e as { cause?: unknown }).cause
  }
  return false
}

/** The error a client that sent less than it announced gets. */
export function incompleteBody(cause: unknown): ApiError {
  return new ApiError('IncompleteBody', 'You did not provide the number of bytes specified by the Content-Length HTTP header', {
    cause,
  })
}
