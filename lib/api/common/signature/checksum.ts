/**
 * Request checksums: Content-MD5 and the flexible `x-amz-checksum-*` family. Port of
 * garage_api_common::signature::checksum. Values travel as base64 of the big-endian digest.
 * @internal
 */
import { createHash, type Hash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { ApiError } from '../errors.ts'
import { type Crc, Crc32, Crc32c, Crc64Nvme } from './crc.ts'

/** The algorithms of `x-amz-checksum-<alg>`. @internal */
export type ChecksumAlgorithm = 'CRC32' | 'CRC32C' | 'CRC64NVME' | 'SHA1' | 'SHA256'

/** Every checksum algorithm, in a stable order. @internal */
export const CHECKSUM_ALGORITHMS: readonly ChecksumAlgorithm[] = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256']

/** Digest length in bytes of each algorithm. @internal */
export const CHECKSUM_LENGTH: Readonly<Record<ChecksumAlgorithm, number>> = {
  CRC32: 4,
  CRC32C: 4,
  CRC64NVME: 8,
  SHA1: 20,
  SHA256: 32,
}

/** `x-amz-checksum-crc32` for `'CRC32'`, and so on. @internal */
export function checksumHeaderName(alg: ChecksumAlgorithm): string {
  return `x-amz-checksum-${alg.toLowerCase()}`
}

/** Parses an algorithm name as clients write it (`crc32c`, `CRC32C`); undefined if unknown. @internal */
export function parseChecksumAlgorithm(name: string): ChecksumAlgorithm | undefined {
  const upper = name.trim().toUpperCase()
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(upper) ? (upper as ChecksumAlgorithm) : undefined
}

/** What a checksummer can compute: a flexible checksum or the MD5 used for ETags. @internal */
export type DigestKind = ChecksumAlgorithm | 'MD5'

/** Raw digests computed by a {@link Checksummer}. @internal */
export type Digests = Partial<Record<DigestKind, Buffer>>

function hashAdapter(hash: Hash): Crc {
  return { update: (d) => void hash.update(d), digest: () => hash.digest() }
}

function newDigester(kind: DigestKind): Crc {
  switch (kind) {
    case 'CRC32':
      return new Crc32()
    case 'CRC32C':
      return new Crc32c()
    case 'CRC64NVME':
      return new Crc64Nvme()
    case 'SHA1':
      return hashAdapter(createHash('sha1'))
    case 'SHA256':
      return hashAdapter(createHash('sha256'))
    case 'MD5':
      return hashAdapter(createHash('md5'))
  }
}

/**
 * Computes any subset of the checksums incrementally, in one pass over the data.
 * @example
 * const c = new Checksummer(['MD5', 'CRC32C'])
 * c.update(chunk)
 * const { MD5, CRC32C } = c.digest()
 * @internal
 */
export class Checksummer {
  #digesters = new Map<DigestKind, Crc>()
  #digests: Digests | undefined
  constructor(kinds: Iterable<DigestKind>) {
    for (const kind of kinds) if (!this.#digesters.has(kind)) this.#digesters.set(kind, newDigester(kind))
  }
  /** The kinds being computed. */
  get kinds(): DigestKind[] {
    return [...this.#digesters.keys()]
  }
  update(data: Uint8Array): void {
    if (this.#digests !== undefined) throw new Error('Checksummer.update() after digest()')
    for (const d of this.#digesters.values()) d.update(data)
  }
  /** Finalises (once; later calls return the same values). */
  digest(): Digests {
    if (this.#digests === undefined) {
      const out: Digests = {}
      for (const [kind, d] of this.#digesters) out[kind] = d.digest()
      this.#digests = out
    }
    return this.#digests
  }
}

/** Checksums announced by a request's headers. @internal */
export interface RequestChecksums {
  /** base64 values of the `x-amz-checksum-*` headers (at most one, as S3 allows). */
  expected: Partial<Record<ChecksumAlgorithm, string>>
  /** base64 Content-MD5, if sent. */
  md5?: string
  /** The algorithm whose value comes in the aws-chunked trailer (`x-amz-trailer: x-amz-checksum-…`). */
  trailerAlgorithm?: ChecksumAlgorithm
  /** `x-amz-checksum-algorithm` / `x-amz-sdk-checksum-algorithm`, if sent. */
  requestedAlgorithm?: ChecksumAlgorithm
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v.join(',') : v
}

/** Strict base64 decoding: undefined unless `value` is canonical padded base64 of `length` bytes. @internal */
export function decodeBase64Exact(value: string, length: number): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) return undefined
  const buf = Buffer.from(value, 'base64')
  return buf.length === length && buf.toString('base64') === value ? buf : undefined
}

/**
 * Reads Content-MD5, `x-amz-checksum-*`, `x-amz-trailer` and `x-amz-checksum-algorithm`,
 * validating every value's base64 form and digest length.
 * @throws ApiError InvalidDigest (bad Content-MD5), InvalidArgument (bad checksum value or
 * algorithm), InvalidRequest (several checksums at once)
 * @internal
 */
export function parseChecksumHeaders(headers: IncomingHttpHeaders): RequestChecksums {
  const out: RequestChecksums = { expected: {} }
  const md5 = headerValue(headers, 'content-md5')
  if (md5 !== undefined) {
    if (decodeBase64Exact(md5.trim(), 16) === undefined) {
      throw new ApiError('InvalidDigest', 'The Content-MD5 you specified was invalid.')
    }
    out.md5 = md5.trim()
  }
  let count = 0
  for (const alg of CHECKSUM_ALGORITHMS) {
    const name = checksumHeaderName(alg)
    const value = headerValue(headers, name)
    if (value === undefined) continue
    if (decodeBase64Exact(value.trim(), CHECKSUM_LENGTH[alg]) === undefined) {
      throw new ApiError('InvalidArgument', `Value for ${name} header is invalid.`)
    }
    out.expected[alg] = value.trim()
    count++
  }
  if (count > 1) {
    throw new ApiError('InvalidRequest', 'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.')
  }
  const trailer = headerValue(headers, 'x-amz-trailer')
  if (trailer !== undefined) {
    for (const raw of trailer.split(',')) {
      const name = raw.trim().toLowerCase()
      if (!name.startsWith('x-amz-checksum-')) continue
      const alg = parseChecksumAlgorithm(name.slice('x-amz-checksum-'.length))
      if (alg === undefined) throw new ApiError('InvalidArgument', `Unsupported trailer checksum: ${name}`)
      if (out.trailerAlgorithm !== undefined || count > 0) {
        throw new ApiError(
          'InvalidRequest',
          'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.',
        )
      }
      out.trailerAlgorithm = alg
    }
  }
  const requested = headerValue(headers, 'x-amz-checksum-algorithm') ?? headerValue(headers, 'x-amz-sdk-checksum-algorithm')
  if (requested !== undefined) {
    const alg = parseChecksumAlgorithm(requested)
    if (alg === undefined) throw new ApiError('InvalidArgument', `Checksum algorithm ${requested} is not supported.`)
    out.requestedAlgorithm = alg
  }
  return out
}

/** Names of the trailers announced by `x-amz-trailer`, lowercased. @internal */
export function parseTrailerNames(headers: IncomingHttpHeaders): string[] {
  const trailer = headerValue(headers, 'x-amz-trailer')
  if (trailer === undefined) return []
  return trailer
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '')
}
