/**
 * Streaming checks of request bodies: the x-amz-content-sha256 hash, Content-MD5 and
 * `x-amz-checksum-*` (from headers or from an aws-chunked trailer), each as a pass-through
 * Transform so a body is never held in memory. Port of garage_api_common::signature::body.
 *
 * {@link requestBodyStages} picks the stages a request needs; the caller pipes the raw body
 * through them (`stream.pipeline(req, ...stages, sink)`) and reads the computed digests from
 * `result` after the sink has finished.
 * @internal
 */
import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { finished, type Readable, Transform, type TransformCallback } from 'node:stream'
import { ApiError } from '../errors.ts'
import {
  type ChecksumAlgorithm,
  CHECKSUM_LENGTH,
  Checksummer,
  checksumHeaderName,
  type DigestKind,
  decodeBase64Exact,
  parseChecksumHeaders,
  parseTrailerNames,
  type RequestChecksums,
} from './checksum.ts'
import type { Authenticated } from './sigv4.ts'
import { type AwsChunkedDecoder, awsChunkedDecoder, awsChunkedMode } from './streaming.ts'

export {
  type ChecksumAlgorithm,
  Checksummer,
  checksumHeaderName,
  parseChecksumHeaders,
  type RequestChecksums,
} from './checksum.ts'
export { type AwsChunkedDecoder, type AwsChunkedMode, type AwsChunkedOptions, awsChunkedDecoder } from './streaming.ts'

function sha256Mismatch(): ApiError {
  return new ApiError('XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.")
}

/**
 * Passes data through and fails at the end with XAmzContentSHA256Mismatch if its SHA-256 is not
 * `expectedHex`.
 * @internal
 */
export function sha256Check(expectedHex: string): Transform {
  const expected = expectedHex.toLowerCase()
  const hash = createHash('sha256')
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk)
      cb(null, chunk)
    },
    flush(cb) {
      cb(hash.digest('hex') === expected ? null : sha256Mismatch())
    },
  })
}

/** Digests computed over a request body. @internal */
export interface ChecksumResult {
  /** Raw MD5, when requested or when Content-MD5 was sent. */
  md5?: Buffer
  /** Raw SHA-256, when x-amz-content-sha256 carried a hash or SHA256 was computed. */
  sha256?: Buffer
  /** base64 values of the flexible checksums computed (checked ones and `extraAlgorithms`). */
  checksums: Partial<Record<ChecksumAlgorithm, string>>
  /** Trailers of an aws-chunked body (lowercase names). */
  trailers: Record<string, string>
}

/** @internal */
export interface ChecksumCheckOptions {
  /** base64 values to check (from `x-amz-checksum-*` headers). */
  expected?: Partial<Record<ChecksumAlgorithm, string>>
  /** base64 Content-MD5 to check. */
  md5?: string
  /** Lowercase hex x-amz-content-sha256 to check (XAmzContentSHA256Mismatch on mismatch). */
  contentSha256?: string
  /** Compute MD5 even without Content-MD5 (the ETag of a plain object). */
  computeMd5?: boolean
  /** Algorithms to compute without checking (for instance `x-amz-checksum-algorithm`). */
  extraAlgorithms?: ChecksumAlgorithm[]
  /** The algorithm whose expected value arrives in `trailers`. */
  trailerAlgorithm?: ChecksumAlgorithm
  /** The trailers of the aws-chunked decoder upstream. */
  trailers?: Promise<Record<string, string>>
}

/** @internal */
export type ChecksumCheck = Transform & {
  /** Resolves once the data has ended and every check passed; rejects with the stream's error. */
  readonly result: Promise<ChecksumResult>
}

function badDigest(alg: ChecksumAlgorithm): ApiError {
  return new ApiError('BadDigest', `The ${alg} you specified did not match the calculated checksum.`)
}

/** The digests a check computes. */
function checksumKinds(opts: ChecksumCheckOptions): Set<DigestKind> {
  const kinds = new Set<DigestKind>()
  if (opts.md5 !== undefined || opts.computeMd5 === true) kinds.add('MD5')
  if (opts.contentSha256 !== undefined) kinds.add('SHA256')
  for (const alg of Object.keys(opts.expected ?? {}) as ChecksumAlgorithm[]) kinds.add(alg)
  for (const alg of opts.extraAlgorithms ?? []) kinds.add(alg)
  if (opts.trailerAlgorithm !== undefined) kinds.add(opts.trailerAlgorithm)
  return kinds
}

/** The checks of {@link checksumCheck} once every byte went through `summer`. */
async function verifyDigests(
  opts: ChecksumCheckOptions,
  kinds: ReadonlySet<DigestKind>,
  summer: Checksummer,
): Promise<ChecksumResult> {
  const trailers = opts.trailers === undefined ? {} : await opts.trailers
  const digests = summer.digest()
  if (opts.contentSha256 !== undefined && (digests.SHA256 as Buffer).toString('hex') !== opts.contentSha256.toLowerCase()) {
    throw sha256Mismatch()
  }
  if (opts.md5 !== undefined && !(digests.MD5 as Buffer).equals(Buffer.from(opts.md5, 'base64'))) {
    throw new ApiError('BadDigest', 'The Content-MD5 you specified did not match what we received.')
  }
  const wanted: Partial<Record<ChecksumAlgorithm, string>> = { ...opts.expected }
  if (opts.trailerAlgorithm !== undefined) {
    const name = checksumHeaderName(opts.trailerAlgorithm)
    const value = trailers[name]
    if (value === undefined) throw new ApiError('InvalidRequest', `Missing trailer ${name}`)
    if (decodeBase64Exact(value, CHECKSUM_LENGTH[opts.trailerAlgorithm]) === undefined) {
      throw new ApiError('InvalidArgument', `Value for ${name} trailing header is invalid.`)
    }
    wanted[opts.trailerAlgorithm] = value
  }
  for (const [alg, value] of Object.entries(wanted) as [ChecksumAlgorithm, string][]) {
    if (!(digests[alg] as Buffer).equals(Buffer.from(value, 'base64'))) throw badDigest(alg)
  }
  const checksums: Partial<Record<ChecksumAlgorithm, string>> = {}
  for (const kind of kinds) {
    if (kind !== 'MD5') checksums[kind] = (digests[kind] as Buffer).toString('base64')
  }
  const out: ChecksumResult = { checksums, trailers }
  if (digests.MD5 !== undefined) out.md5 = digests.MD5
  if (digests.SHA256 !== undefined) out.sha256 = digests.SHA256
  return out
}

/**
 * The result {@link checksumCheck} gives for an empty body, without a stream: what a request
 * without a body (every GET, HEAD, DELETE, most bucket requests) costs instead of a Transform and
 * a `pipeline` (≈ 15 % of the CPU of a small GET). Rejects as the stream would.
 * @internal
 */
export function checksumOfEmpty(opts: ChecksumCheckOptions): Promise<ChecksumResult> {
  const kinds = checksumKinds(opts)
  const result = verifyDigests(opts, kinds, new Checksummer(kinds))
  result.catch(() => undefined)
  return result
}

/**
 * Passes data through while computing MD5 / SHA-256 / flexible checksums, and at the end checks
 * them against the expected values (from headers or from the aws-chunked trailer).
 * Errors: BadDigest (Content-MD5 or x-amz-checksum-* mismatch), XAmzContentSHA256Mismatch,
 * InvalidRequest (announced trailer checksum missing), InvalidArgument (malformed trailer value).
 * @internal
 */
export function checksumCheck(opts: ChecksumCheckOptions): ChecksumCheck {
  const kinds = checksumKinds(opts)
  const summer = new Checksummer(kinds)

  let resolve!: (r: ChecksumResult) => void
  let reject!: (e: Error) => void
  const result = new Promise<ChecksumResult>((res, rej) => {
    resolve = res
    reject = rej
  })
  // Mirrors the stream's 'error'; whoever handles the stream handles the failure.
  result.catch(() => undefined)
  let settled = false
  const verify = (): Promise<ChecksumResult> => verifyDigests(opts, kinds, summer)

  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      summer.update(chunk)
      cb(null, chunk)
    },
    flush(cb: TransformCallback) {
      verify().then(
        (r) => {
          settled = true
          resolve(r)
          cb()
        },
        (err: unknown) => {
          settled = true
          reject(err as Error)
          cb(err as Error)
        },
      )
    },
    destroy(err, cb) {
      if (!settled) {
        settled = true
        reject(err ?? new ApiError('IncompleteBody', 'The request body was aborted'))
      }
      cb(err)
    },
  })
  return Object.assign(stream, { result })
}

/** @internal */
export interface RequestBodyOptions {
  /** Compute MD5 even without Content-MD5 (the ETag of a plain object). */
  computeMd5?: boolean
  /** Also compute these checksums (for instance the multipart upload's algorithm). */
  extraAlgorithms?: ChecksumAlgorithm[]
  /**
   * The request's checksum headers, already parsed by the caller (once per request); parsed
   * from `headers` when absent.
   */
  checksums?: RequestChecksums
}

/** @internal */
export interface RequestBodyStages {
  /** Transforms to pipe the raw body through, in order. */
  stages: Transform[]
  /** Digests and trailers, once the body has been fully read and checked. */
  result: Promise<ChecksumResult>
  /** The request's Content-Encoding with the `aws-chunked` token removed (what to store). */
  contentEncoding: string | undefined
}

/** True when the request carries no body: no Transfer-Encoding, and no Content-Length or 0. */
function hasNoBody(headers: IncomingHttpHeaders): boolean {
  if (headers['transfer-encoding'] !== undefined) return false
  const length = headers['content-length']
  return length === undefined || length.trim() === '0'
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v.join(',') : v
}

/**
 * Chooses the body stages of a request from its headers and its verified signature: aws-chunked
 * decoding for STREAMING-* payloads (signed chunks need `auth`), the x-amz-content-sha256 check,
 * Content-MD5 and `x-amz-checksum-*` (header or trailer) checks.
 * Port of Garage's `parse_streaming_body`.
 * @throws ApiError InvalidRequest, InvalidArgument, InvalidDigest for unusable headers
 * @internal
 */
export function requestBodyStages(
  headers: IncomingHttpHeaders,
  auth: Authenticated | undefined,
  opts: RequestBodyOptions = {},
): RequestBodyStages {
  const contentSha256 = auth?.contentSha256 ?? headerValue(headers, 'x-amz-content-sha256')?.trim() ?? 'UNSIGNED-PAYLOAD'
  const checksums = opts.checksums ?? parseChecksumHeaders(headers)
  const stages: Transform[] = []
  let contentEncoding = headerValue(headers, 'content-encoding')
  let decoder: AwsChunkedDecoder | undefined
  let contentSha256Hex: string | undefined

  const mode = awsChunkedMode(contentSha256)
  if (mode !== undefined) {
    if (mode !== 'unsigned-trailer' && auth === undefined) {
      throw new ApiError('InvalidRequest', `${contentSha256} requires a signed request`)
    }
    if (mode !== 'signed' && checksums.trailerAlgorithm === undefined) {
      throw new ApiError('InvalidRequest', `Missing x-amz-trailer header for ${contentSha256}`)
    }
    const decodedLength = headerValue(headers, 'x-amz-decoded-content-length')
    if (decodedLength !== undefined && !/^\d{1,16}$/.test(decodedLength.trim())) {
      throw new ApiError('InvalidArgument', 'Invalid x-amz-decoded-content-length')
    }
    // The aws-chunked token describes the transfer, not the object (MinIO's client omits it).
    if (contentEncoding !== undefined) {
      const rest = contentEncoding
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '' && s.toLowerCase() !== 'aws-chunked')
      contentEncoding = rest.length === 0 ? undefined : rest.join(',')
    }
    decoder = awsChunkedDecoder({
      mode,
      auth,
      trailerNames: parseTrailerNames(headers),
      decodedContentLength: decodedLength === undefined ? undefined : Number(decodedLength.trim()),
    })
    stages.push(decoder)
  } else if (contentSha256.startsWith('STREAMING-')) {
    throw new ApiError('InvalidRequest', `Unsupported x-amz-content-sha256: ${contentSha256}`)
  } else if (contentSha256 !== 'UNSIGNED-PAYLOAD') {
    if (!/^[0-9a-fA-F]{64}$/.test(contentSha256)) throw new ApiError('InvalidArgument', 'Invalid x-amz-content-sha256')
    contentSha256Hex = contentSha256.toLowerCase()
  }

  const checkOptions: ChecksumCheckOptions = {
    expected: checksums.expected,
    md5: checksums.md5,
    contentSha256: contentSha256Hex,
    computeMd5: opts.computeMd5,
    extraAlgorithms: opts.extraAlgorithms,
    trailerAlgorithm: decoder === undefined ? undefined : checksums.trailerAlgorithm,
    trailers: decoder?.trailers,
  }
  // No body at all (neither a length nor chunked transfer): nothing to pipe through.
  if (decoder === undefined && hasNoBody(headers)) return { stages, result: checksumOfEmpty(checkOptions), contentEncoding }
  const check = checksumCheck(checkOptions)
  stages.push(check)
  return { stages, result: check.result, contentEncoding }
}

/**
 * Pipes a request body through its stages and returns the last one (or the body itself when
 * there is none), with `stream.pipeline`'s error handling: the first error of any stream (a
 * failed check, a client that went away, a consumer that destroyed the end) destroys every stream
 * not finished yet and is reported once to `onError`. Unlike `pipeline` it builds no
 * AbortController, whose abort at the end of every body built a DOMException with its stack
 * (≈ 40–80 µs of CPU per request body).
 * @internal
 */
export function pipeBody(body: Readable, stages: readonly Transform[], onError: (err: Error) => void): Readable {
  if (stages.length === 0) return body
  const all: Readable[] = [body, ...stages]
  const ended = new Set<Readable>()
  let failed = false
  for (const s of all) {
    finished(s, (err) => {
      if (err === undefined || err === null) {
        ended.add(s)
        return
      }
      if (failed) return
      failed = true
      for (const other of all) if (!ended.has(other) && !other.destroyed) destroyStream(other, err)
      onError(err)
    })
  }
  let prev = body
  for (const stage of stages) prev = prev.pipe(stage)
  return prev
}

/**
 * Destroys a stream as `pipeline` does: a server request is first detached from its socket, so
 * that the connection survives to carry the error answer (the server closes it afterwards, the
 * request being incomplete).
 */
function destroyStream(s: Readable, err: Error): void {
  const req = s as Readable & { _dump?: unknown; _consuming?: unknown; socket?: unknown }
  if (typeof req._dump === 'function' && typeof req._consuming === 'boolean') req.socket = null
  s.destroy(err)
}
