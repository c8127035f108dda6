/**
 * Checks every name an S3 request carries (bucket, object key, upload id, list parameters,
 * version id, copy source), with the rules of model/helper/names.ts, before the request
 * touches any table (the access key lookup included), and maps each refusal to the error AWS
 * answers:
 *
 * | name | rule | error |
 * | --- | --- | --- |
 * | bucket (path, Host, PostObject, copy source) | 3–63 bytes, a name Garage can create (punycode allowed) | 400 InvalidBucketName |
 * | object key (path, copy source, PostObject `key`, DeleteObjects `Key`) | 1–1024 bytes of valid UTF-8 | 400 KeyTooLongError / 400 InvalidArgument |
 * | `uploadId` | 64 hex digits (ours) | 404 NoSuchUpload |
 * | `prefix`, `marker`, `start-after`, `key-marker`, `delimiter`, `upload-id-marker`, `version-id-marker` | ≤ 1024 bytes of valid UTF-8 | 400 InvalidArgument |
 * | `continuation-token` | base64url of at most 1024 bytes | 400 InvalidArgument |
 * | `versionId`, `id` | ≤ 1024 bytes of valid UTF-8 | 400 InvalidArgument |
 *
 * Invalid percent-encoding (`%FF`) is refused earlier: in the path by the router, in the query by
 * `checkQueryEncoding`.
 * @module
 */
import {
  checkBucketNameForLookup,
  checkKeyParameter,
  checkName,
  checkObjectKey,
  MAX_OBJECT_KEY_BYTES,
} from '../../model/helper/names.ts'
import { parseUuid, type Uuid } from '../../util/data.ts'
import { ModelError } from '../../util/errors.ts'
import { ApiError } from '../common/errors.ts'
import type { Endpoint } from './router.ts'

/** Longest continuation token: base64url (no padding) of {@link MAX_OBJECT_KEY_BYTES} bytes. */
const MAX_CONTINUATION_TOKEN_CHARS = Math.ceil((MAX_OBJECT_KEY_BYTES * 4) / 3)

export function noSuchUpload(): ApiError {
  return new ApiError(
    'NoSuchUpload',
    'The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
  )
}

/**
 * Upload ids are the hex of a 32-byte uuid; anything else names no upload (AWS also answers
 * NoSuchUpload for a malformed id).
 * @throws {ApiError} `NoSuchUpload`.
 */
export function parseUploadId(s: string): Uuid {
  const id = parseUuid(s)
  if (id === undefined) throw noSuchUpload()
  return id
}

/** Maps a model refusal of a name to the S3 error; `asKey` for object keys (KeyTooLongError). */
function toS3NameError(err: unknown, asKey: boolean): unknown {
  if (!(err instanceof ModelError)) return err
  switch (err.modelCode) {
    case 'InvalidBucketName':
      return new ApiError('InvalidBucketName', err.message, { cause: err })
    case 'NameTooLong':
      return asKey
        ? new ApiError('KeyTooLongError', 'Your key is too long', {
            cause: err,
            extra: { MaxSizeAllowed: String(MAX_OBJECT_KEY_BYTES) },
          })
        : new ApiError('InvalidArgument', err.message, { cause: err })
    case 'InvalidName':
      return new ApiError('InvalidArgument', err.message, { cause: err })
    default:
      return err
  }
}

/**
 * Checks a bucket name a request addresses.
 * @throws {ApiError} `InvalidBucketName`.
 */
export function checkS3BucketName(name: string): void {
  try {
    checkBucketNameForLookup(name)
  } catch (err) {
    throw toS3NameError(err, false)
  }
}

/**
 * Checks an object key (`what` names its source in the message).
 * @throws {ApiError} `KeyTooLongError` over 1024 bytes, `InvalidArgument` when empty or not UTF-8.
 */
export function checkS3ObjectKey(key: string, what = 'Object key'): void {
  try {
    checkObjectKey(key, what)
  } catch (err) {
    throw toS3NameError(err, true)
  }
}

function checkParam(what: string, value: string | undefined): void {
  if (value === undefined) return
  try {
    checkKeyParameter(value, what)
  } catch (err) {
    throw toS3NameError(err, false)
  }
}

function checkOpaque(what: string, value: string | undefined): void {
  if (value === undefined) return
  try {
    checkName(value, what, MAX_OBJECT_KEY_BYTES, true)
  } catch (err) {
    throw toS3NameError(err, false)
  }
}

/**
 * Checks every name `ep` carries (see the module's table). CORS preflights (`Options`) are not
 * checked: they are answered from a local lookup that names with no bucket skip.
 * @throws {ApiError} the error AWS answers for the first offending name.
 */
export function checkEndpointNames(ep: Endpoint): void {
  if (ep.kind === 'Options' || ep.kind === 'ListBuckets') return
  checkS3BucketName(ep.bucket)
  const p = ep as Partial<Record<string, unknown>>
  const str = (name: string): string | undefined => (typeof p[name] === 'string' ? (p[name] as string) : undefined)
  const key = str('key')
  if (key !== undefined) checkS3ObjectKey(key)
  const uploadId = str('uploadId')
  if (uploadId !== undefined) parseUploadId(uploadId)
  checkParam('prefix', str('prefix'))
  checkParam('marker', str('marker'))
  checkParam('start-after', str('startAfter'))
  checkParam('key-marker', str('keyMarker'))
  checkParam('delimiter', str('delimiter'))
  checkParam('upload-id-marker', str('uploadIdMarker'))
  checkParam('version-id-marker', str('versionIdMarker'))
  checkOpaque('versionId', str('versionId'))
  checkOpaque('id', str('id'))
  const token = str('continuationToken')
  if (token !== undefined && token.length > MAX_CONTINUATION_TOKEN_CHARS) {
    throw new ApiError('InvalidArgument', 'The continuation token provided is incorrect')
  }
}
