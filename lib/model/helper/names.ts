/**
 * The names clients give the data model, and their limits: the one place that says which bucket
 * names, object keys, list parameters and (later) K2V keys may reach a table. The S3, web, admin
 * (and K2V) layers check every name from a request with these functions before touching any
 * table, and map the {@link ModelError} codes to their own errors; the table layer refuses
 * anything longer than lmdb takes (`GARAGE_ERR_KEY_TOO_LONG`) as a last net.
 *
 * Model codes used: `InvalidBucketName`, `NameTooLong` (a name over its byte limit) and
 * `InvalidName` (not well-formed UTF-8, or empty where a value is required).
 * @module
 */
import { isIP } from 'node:net'
import { ModelError } from '../../util/errors.ts'
import type { MAX_SORT_KEY_BYTES } from '../../table/data.ts'

/** Object keys: at most 1024 bytes of UTF-8, as S3 allows. */
export const MAX_OBJECT_KEY_BYTES = 1024

/** Bucket names: 3 to 63 characters (ASCII, so bytes), as S3 and Garage allow. */
export const MIN_BUCKET_NAME_BYTES = 3
export const MAX_BUCKET_NAME_BYTES = 63

/** Access key ids: AWS allows up to 128 characters; ours are `GK` + 24 hex digits. */
export const MAX_ACCESS_KEY_ID_BYTES = 128

/**
 * K2V partition and sort keys: the same limit as object keys (Garage sets none; the sort key is a
 * table sort key, so it must stay well under {@link MAX_SORT_KEY_BYTES}).
 */
export const MAX_K2V_KEY_BYTES = 1024

export const INVALID_BUCKET_NAME_MESSAGE =
  'Invalid bucket name. See AWS documentation for constraints on S3 bucket names:\nhttps://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html'

/**
 * Garage's (and AWS's) rules for a new bucket name: 3–63 characters of `a-z 0-9 . -`, starting
 * and ending with a letter or digit, not an IP address, not ending in `-s3alias`, and not
 * starting with `xn--` unless punycode is allowed (`allow_punycode`). Port of
 * `is_valid_bucket_name` (src/model/helper/bucket.rs).
 */
export function isValidBucketName(name: string, allowPunycode = false): boolean {
  return (
    name.length >= MIN_BUCKET_NAME_BYTES &&
    name.length <= MAX_BUCKET_NAME_BYTES &&
    /^[a-z0-9.-]+$/.test(name) &&
    !/^[.-]/.test(name) &&
    !/[.-]$/.test(name) &&
    // Only digits and dots can make an address here (no ':' passed the test above): the common
    // name skips node's address parser, a long regular expression run per request otherwise.
    !(/^[0-9.]+$/.test(name) && isIP(name) !== 0) &&
    (allowPunycode || !name.startsWith('xn--')) &&
    !name.endsWith('-s3alias')
  )
}

/**
 * True when `name` may name an existing bucket: the creation rules with punycode allowed (a
 * bucket may have been named while `allow_punycode` was on). Any other name names no bucket, so
 * a lookup can answer without reading a table.
 */
export function couldBeBucketName(name: string): boolean {
  return isValidBucketName(name, true)
}

/**
 * Checks a bucket name a request addresses (any operation, read or write).
 * @throws {ModelError} `InvalidBucketName` for a name no bucket can have.
 */
export function checkBucketNameForLookup(name: string): void {
  if (!couldBeBucketName(name)) throw new ModelError('InvalidBucketName', `${truncate(name)}: ${INVALID_BUCKET_NAME_MESSAGE}`)
}

/** True when `s` is well-formed UTF-16 (no lone surrogate), i.e. encodes to UTF-8 losslessly. */
export function isWellFormed(s: string): boolean {
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s)
}

/**
 * Checks a name used as (or compared with) a table key: well-formed UTF-8 of at most `maxBytes`
 * bytes; `allowEmpty` for prefixes and markers. `what` names it in the message.
 * @throws {ModelError} `NameTooLong` or `InvalidName`.
 */
export function checkName(value: string, what: string, maxBytes: number, allowEmpty = false): void {
  if (value.length === 0) {
    if (allowEmpty) return
    throw new ModelError('InvalidName', `${what} must not be empty`)
  }
  // A UTF-16 code unit is at most 3 UTF-8 bytes: long strings are measured, short ones are not.
  if (value.length * 3 > maxBytes) {
    const bytes = Buffer.byteLength(value)
    if (bytes > maxBytes) throw new ModelError('NameTooLong', `${what} is ${bytes} bytes long; the limit is ${maxBytes}`)
  }
  if (!isWellFormed(value)) throw new ModelError('InvalidName', `${what} is not valid UTF-8`)
}

/**
 * Checks an object key: 1 to 1024 bytes of well-formed UTF-8. Control characters are allowed,
 * as on S3 (listings return them encoded with `encoding-type=url`).
 * @throws {ModelError} `NameTooLong` or `InvalidName`.
 */
export function checkObjectKey(key: string, what = 'object key'): void {
  checkName(key, what, MAX_OBJECT_KEY_BYTES)
}

/**
 * Checks a list parameter compared with object keys (prefix, marker, start-after, key-marker,
 * delimiter, …): empty or up to 1024 bytes of well-formed UTF-8.
 * @throws {ModelError} `NameTooLong` or `InvalidName`.
 */
export function checkKeyParameter(value: string, what: string): void {
  checkName(value, what, MAX_OBJECT_KEY_BYTES, true)
}

/**
 * Checks a K2V partition or sort key (for the K2V API, which reuses this module): 1 to 1024
 * bytes of well-formed UTF-8; `allowEmpty` for range bounds and prefixes.
 * @throws {ModelError} `NameTooLong` or `InvalidName`.
 */
export function checkK2vKey(value: string, what: string, allowEmpty = false): void {
  checkName(value, what, MAX_K2V_KEY_BYTES, allowEmpty)
}

/** True when `id` may be an access key id (looked up in the key table). */
export function couldBeAccessKeyId(id: string): boolean {
  return id.length > 0 && id.length <= MAX_ACCESS_KEY_ID_BYTES && Buffer.byteLength(id) <= MAX_ACCESS_KEY_ID_BYTES
}

/** A name cut short for an error message. */
function truncate(s: string): string {
  return s.length <= 80 ? s : `${s.slice(0, 80)}… (${Buffer.byteLength(s)} bytes)`
}
