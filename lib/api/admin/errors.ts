/**
 * Admin API errors (port of garage_api_admin::error): a code, an HTTP status from one table, and
 * a JSON body `{ code, message, region, path }`. {@link toAdminError} converts anything thrown by
 * a handler: model refusals map to their code, quorum and timeout failures become 503, the rest a
 * 500 whose real cause the server logs.
 */
import { ModelError, type ModelErrorCode } from '../../util/errors.ts'
import { ApiError, isKeyTooLong, isUnavailable } from '../common/errors.ts'

export const ADMIN_ERROR_STATUS = {
  /** Bad parameters or body (Garage's `bad_request`, code `InvalidRequest`). */
  InvalidRequest: 400,
  InvalidBucketName: 400,
  /** No `Authorization: Bearer` header. */
  Unauthorized: 401,
  /** Wrong, expired or out-of-scope token, or no admin token configured. */
  AccessDenied: 403,
  NoSuchAccessKey: 404,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  NoSuchAdminToken: 404,
  /** GetBlockInfo: no block reference matches the hash (prefix). */
  NoSuchBlock: 404,
  NoSuchEndpoint: 404,
  MethodNotAllowed: 405,
  BucketAlreadyExists: 409,
  BucketNotEmpty: 409,
  KeyAlreadyExists: 409,
  EntityTooLarge: 413,
  InternalError: 500,
  NotImplemented: 501,
  ServiceUnavailable: 503,
} as const satisfies Record<string, number>

export type AdminErrorCode = keyof typeof ADMIN_ERROR_STATUS

export class AdminError extends Error {
  override name = 'AdminError'
  readonly code: AdminErrorCode
  readonly status: number
  constructor(code: AdminErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.status = ADMIN_ERROR_STATUS[code]
  }
}

export const badRequest = (message: string): AdminError => new AdminError('InvalidRequest', message)

const MODEL_TO_ADMIN: Record<ModelErrorCode, AdminErrorCode> = {
  NoSuchBucket: 'NoSuchBucket',
  NoSuchKey: 'NoSuchKey',
  NoSuchAccessKey: 'NoSuchAccessKey',
  NoSuchAdminToken: 'NoSuchAdminToken',
  NoSuchUpload: 'InvalidRequest',
  InvalidBucketName: 'InvalidBucketName',
  NameTooLong: 'InvalidRequest',
  InvalidName: 'InvalidRequest',
  BucketAlreadyExists: 'BucketAlreadyExists',
  BucketNotEmpty: 'BucketNotEmpty',
  BadRequest: 'InvalidRequest',
  Forbidden: 'AccessDenied',
}

export function toAdminError(err: unknown): AdminError {
  if (err instanceof AdminError) return err
  if (err instanceof ModelError) return new AdminError(MODEL_TO_ADMIN[err.modelCode], err.message, { cause: err })
  if (err instanceof ApiError) {
    const code =
      err.code in ADMIN_ERROR_STATUS ? (err.code as AdminErrorCode) : err.status < 500 ? 'InvalidRequest' : 'InternalError'
    return new AdminError(code, err.message, { cause: err })
  }
  if (isUnavailable(err)) {
    return new AdminError('ServiceUnavailable', 'Service unavailable, please retry', { cause: err })
  }
  if (isKeyTooLong(err)) return new AdminError('InvalidRequest', 'a name in the request is too long', { cause: err })
  return new AdminError('InternalError', 'Internal error, please retry', { cause: err })
}

/** The JSON error body Garage sends. */
export function adminErrorBody(err: AdminError, region: string, path: string): string {
  return JSON.stringify({ code: err.code, message: err.message, region, path }, null, 2)
}
