/**
 * Errors shared by every layer. Each error has a stable `code`; subclasses exist only where
 * callers branch on them. Port of garage_util::error.
 */

/** @internal */
export const kGarageError: unique symbol = Symbol.for('garage.error')

/** Every internal error code. Stable: they may be matched by users. */
export const GARAGE_ERROR_CODES = {
  GARAGE_ERR_INTERNAL: 'an internal invariant failed',
  GARAGE_ERR_QUORUM: 'a quorum of nodes could not be reached',
  GARAGE_ERR_TIMEOUT: 'an operation took longer than its deadline',
  GARAGE_ERR_REMOTE: 'a remote node answered with an error',
  GARAGE_ERR_INVALID_CONFIG: 'the configuration is invalid',
  GARAGE_ERR_CORRUPT_DATA: 'stored data failed its integrity check',
  GARAGE_ERR_DECODE: 'stored data could not be decoded',
  GARAGE_ERR_DB: 'the metadata database failed',
  GARAGE_ERR_KEY_TOO_LONG: 'a metadata key is longer than the database accepts (nothing was read or written)',
  GARAGE_ERR_MODEL: 'a request on the data model was refused',
  GARAGE_ERR_CLOSED: 'the node is stopped',
  GARAGE_ERR_LAYOUT: 'the cluster layout cannot be computed or changed as requested',
} as const

export type GarageErrorCode = keyof typeof GARAGE_ERROR_CODES

/** Base class of every error thrown by this library, except API errors rendered to clients. */
export class GarageError extends Error {
  override name = 'GarageError'
  readonly code: GarageErrorCode
  readonly [kGarageError] = true
  constructor(code: GarageErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
  }
}

/** True for any {@link GarageError}, even one created by another copy of this package. */
export const isGarageError = (v: unknown): v is GarageError =>
  typeof v === 'object' && v !== null && (v as { [kGarageError]?: boolean })[kGarageError] === true

/** A quorum of nodes did not answer in time or answered with errors. */
export class QuorumError extends GarageError {
  override name = 'QuorumError'
  constructor(quorum: number, ok: number, failures: readonly unknown[]) {
    // The failures named in the message too (as Garage's Error::Quorum lists them): an access
    // log line or a 503 body says which call failed and how, not only how many.
    const why = failures.map((e) => (e instanceof Error ? e.message : String(e)))
    super(
      'GARAGE_ERR_QUORUM',
      `quorum ${quorum} not reached: ${ok} ok, ${failures.length} failed${why.length === 0 ? '' : ` (${why.join('; ')})`}`,
      {
        cause: new AggregateError(failures),
      },
    )
  }
}

/** An operation exceeded its deadline. */
export class TimeoutError extends GarageError {
  override name = 'TimeoutError'
  constructor(message: string, options?: ErrorOptions) {
    super('GARAGE_ERR_TIMEOUT', message, options)
  }
}

/** Data read from disk or the network did not match its hash or could not be decoded. */
export class CorruptDataError extends GarageError {
  override name = 'CorruptDataError'
  constructor(message: string, options?: ErrorOptions) {
    super('GARAGE_ERR_CORRUPT_DATA', message, options)
  }
}

/** The configuration is invalid; `key` names the offending setting (dotted path). */
export class InvalidConfigError extends GarageError {
  override name = 'InvalidConfigError'
  readonly key: string
  constructor(key: string, message: string, options?: ErrorOptions) {
    super('GARAGE_ERR_INVALID_CONFIG', `invalid configuration: ${key}: ${message}`, options)
    this.key = key
  }
}

/**
 * Codes of model-level refusals. They carry no HTTP meaning; each API maps them to its own
 * error format. `NameTooLong`: a name (object key, prefix, marker, …) longer than its limit;
 * `InvalidName`: a name that is not well-formed (not valid UTF-8, empty where a value is needed).
 */
export type ModelErrorCode =
  | 'NoSuchBucket'
  | 'NoSuchKey'
  | 'NoSuchAccessKey'
  | 'NoSuchAdminToken'
  | 'NoSuchUpload'
  | 'InvalidBucketName'
  | 'NameTooLong'
  | 'InvalidName'
  | 'BucketAlreadyExists'
  | 'BucketNotEmpty'
  | 'BadRequest'
  | 'Forbidden'

/** A request on the data model was refused (unknown bucket, bad name, ...). */
export class ModelError extends GarageError {
  override name = 'ModelError'
  readonly modelCode: ModelErrorCode
  constructor(modelCode: ModelErrorCode, message: string, options?: ErrorOptions) {
    super('GARAGE_ERR_MODEL', message, options)
    this.modelCode = modelCode
  }
}

/** Throw from the `default` branch of an exhaustive switch. */
export function unreachable(value: never): Error {
  return new GarageError('GARAGE_ERR_INTERNAL', `unreachable: ${JSON.stringify(value)}`)
}
