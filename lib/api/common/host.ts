/**
 * Host header helpers shared by the S3 API and the static website server: strip the port from an
 * authority and find a virtual-hosted bucket under a root domain. Port of `authority_to_host` and
 * `host_to_bucket` in garage_api_common::helpers.
 * @module
 */
import { ApiError } from './errors.ts'

/**
 * Extracts the host from an HTTP authority (`Host` header): drops the port, keeps IPv6 brackets,
 * and lowercases the result.
 *
 * @example
 * authorityToHost('Bucket.Garage.tld:3900') // 'bucket.garage.tld'
 * authorityToHost('[::1]:3900')             // '[::1]'
 * @throws {ApiError} `InvalidRequest` when the authority is empty or malformed.
 * @internal
 */
export function authorityToHost(authority: string): string {
  if (authority.length === 0) throw new ApiError('InvalidRequest', 'Authority is empty')
  let host: string
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']')
    if (close < 0) throw malformed(authority)
    const rest = authority.slice(close + 1)
    if (rest.length > 0 && !rest.startsWith(':')) throw malformed(authority)
    host = authority.slice(0, close + 1)
  } else {
    const colon = authority.indexOf(':')
    host = colon < 0 ? authority : authority.slice(0, colon)
  }
  return host.toLowerCase()
}

/**
 * Returns the bucket named by a virtual-hosted-style host, or `undefined` when the host is not a
 * strict subdomain of `rootDomain`. The root domain may be written with or without a leading dot
 * (`.s3.garage.tld` or `s3.garage.tld`); the comparison ignores case. A bucket may itself contain
 * dots (`john.doe.s3.garage.tld` names bucket `john.doe`).
 *
 * @example
 * hostToBucket('photos.s3.garage.tld', '.s3.garage.tld') // 'photos'
 * hostToBucket('s3.garage.tld', '.s3.garage.tld')        // undefined
 * @internal
 */
export function hostToBucket(host: string, rootDomain: string): string | undefined {
  const root = rootDomain.replace(/^\.+/, '').toLowerCase()
  if (root.length === 0) return undefined
  const h = host.toLowerCase()
  const suffix = `.${root}`
  if (h.length <= suffix.length || !h.endsWith(suffix)) return undefined
  return h.slice(0, h.length - suffix.length)
}

function malformed(authority: string): ApiError {
  return new ApiError('InvalidRequest', `Authority ${authority} has an illegal format`)
}
