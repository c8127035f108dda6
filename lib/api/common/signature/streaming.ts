/**
 * Decoding of `aws-chunked` request bodies (x-amz-content-sha256 = STREAMING-*), as a Transform
 * that never holds more than one chunk-header line in memory. Port of
 * garage_api_common::signature::streaming.
 *
 * Wire format: `<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n` repeated, a final chunk of size
 * 0, then trailer lines `name:value\r\n` (and in signed mode `x-amz-trailer-signature:<sig>\r\n`),
 * then an empty line `\r\n`.
 *
 * Chunk data is passed downstream as it arrives while its SHA-256 is computed; the chunk's
 * signature can only be checked once its last byte is seen, so a bad signature fails the stream at
 * the end of that chunk. Consumers must treat a stream error as an abort of everything written.
 *
 * Unlike Garage, which skips it when a trailer follows, the final zero-size chunk's signature is
 * always checked, and the trailer signature chains from it, as AWS documents
 * (`AWS4-HMAC-SHA256-TRAILER`).
 * @internal
 */
import { createHash, type Hash } from 'node:crypto'
import { Transform, type TransformCallback } from 'node:stream'
import { ApiError } from '../errors.ts'
import { type Authenticated, EMPTY_SHA256_HEX, hmacSha256, signatureMatches } from './sigv4.ts'

/** @internal */
export type AwsChunkedMode = 'signed' | 'signed-trailer' | 'unsigned-trailer'

/** @internal */
export interface AwsChunkedOptions {
  mode: AwsChunkedMode
  /** Required for the signed modes: supplies the signing key, scope, datetime and seed signature. */
  auth?: Authenticated
  /** Trailer names announced by `x-amz-trailer`; each must be present at the end. */
  trailerNames?: string[]
  /** `x-amz-decoded-content-length`, if sent: the decoded size must match it exactly. */
  decodedContentLength?: number
}

/** @internal */
export type AwsChunkedDecoder = Transform & {
  /** Resolves with the trailers (lowercase names) once the body is fully decoded and verified. */
  readonly trailers: Promise<Record<string, string>>
}

const MAX_LINE = 4096
const MAX_TRAILER_LINES = 64
const CHUNK_SIGNATURE_PREFIX = 'chunk-signature='
const TRAILER_SIGNATURE_NAME = 'x-amz-trailer-signature'

type State = 'header' | 'data' | 'data-cr' | 'data-lf' | 'trailer' | 'done'

function framing(message: string): ApiError {
  return new ApiError('InvalidRequest', `Invalid aws-chunked body: ${message}`)
}

function badSignature(what: string): ApiError {
  return new ApiError('SignatureDoesNotMatch', `The ${what} signature we calculated does not match the signature you provided.`)
}

class Decoder extends Transform {
  readonly trailers: Promise<Record<string, string>>
  #resolve!: (t: Record<string, string>) => void
  #reject!: (e: Error) => void

  readonly #signed: boolean
  readonly #hasTrailer: boolean
  readonly #auth: Authenticated | undefined
  readonly #trailerNames: string[]
  readonly #decodedLength: number | undefined

  #state: State = 'header'
  #line: Buffer[] = []
  #lineLength = 0
  #remaining = 0
  #chunkHash: Hash | undefined
  #chunkSignature = ''
  #previousSignature = ''
  #decoded = 0
  #trailerValues: Record<string, string> = {}
  #trailerCanonical = ''
  #trailerSignature: string | undefined
  #trailerLines = 0

  constructor(opts: AwsChunkedOptions) {
    super()
    this.#signed = opts.mode !== 'unsigned-trailer'
    this.#hasTrailer = opts.mode !== 'signed'
    this.#auth = opts.auth
    this.#trailerNames = (opts.trailerNames ?? []).map((n) => n.toLowerCase())
    this.#decodedLength = opts.decodedContentLength
    if (this.#signed) {
      if (opts.auth === undefined) throw new Error('awsChunkedDecoder: signed modes need `auth`')
      this.#previousSignature = opts.auth.seedSignature.toLowerCase()
    }
    this.trailers = new Promise((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
    // The same error is delivered as the stream's 'error'; the promise only mirrors it, so a
    // caller that never awaits `trailers` must not get an unhandled rejection.
    this.trailers.catch(() => undefined)
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.#consume(chunk)
      cb()
    } catch (err) {
      this.#fail(err as Error)
      cb(err as Error)
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      if (this.#state === 'trailer' && this.#lineLength === 0 && this.#completeWithoutEmptyLine()) {
        // The final empty line may be missing; tolerated when everything before it arrived.
        this.#finish()
      }
      if (this.#state !== 'done') {
        throw new ApiError('IncompleteBody', 'The request body terminated unexpectedly (aws-chunked body truncated)')
      }
      cb()
    } catch (err) {
      this.#fail(err as Error)
      cb(err as Error)
    }
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.#fail(err ?? new ApiError('IncompleteBody', 'The request body was aborted'))
    cb(err)
  }

  #fail(err: Error): void {
    if (this.#state === 'done') return
    this.#state = 'done'
    this.#reject(err)
  }

  #consume(buf: Buffer): void {
    let i = 0
    const n = buf.length
    while (i < n) {
      switch (this.#state) {
        case 'header':
        case 'trailer': {
          const line = this.#takeLine(buf, i)
          i = line.next
          if (line.text === undefined) break
          if (this.#state === 'header') this.#onChunkHeader(line.text)
          else this.#onTrailerLine(line.text)
          break
        }
        case 'data': {
          const take = Math.min(this.#remaining, n - i)
          const part = buf.subarray(i, i + take)
          this.#chunkHash?.update(part)
          this.push(part)
          this.#remaining -= take
          this.#decoded += take
          i += take
          if (this.#remaining === 0) {
            this.#endOfChunk()
            this.#state = 'data-cr'
          }
          break
        }
        case 'data-cr':
          if (buf[i] !== 0x0d) throw framing('chunk data is longer than its declared size')
          i++
          this.#state = 'data-lf'
          break
        case 'data-lf':
          if (buf[i] !== 0x0a) throw framing('chunk data is longer than its declared size')
          i++
          this.#state = 'header'
          break
        case 'done':
          // Bytes after the final empty line are ignored, as Garage does.
          return
      }
    }
  }

  /** Accumulates bytes up to a CRLF; returns the line (without CRLF) once complete. */
  #takeLine(buf: Buffer, start: number): { text: string | undefined; next: number } {
    let from = start
    for (;;) {
      const lf = buf.indexOf(0x0a, from)
      if (lf < 0) {
        this.#appendLine(buf.subarray(start))
        return { text: undefined, next: buf.length }
      }
      const prevIsCr = lf > start ? buf[lf - 1] === 0x0d : this.#lastLineByte() === 0x0d
      if (!prevIsCr) {
        // A bare LF inside the line (some clients end trailer values with '\n'): keep scanning.
        from = lf + 1
        continue
      }
      this.#appendLine(buf.subarray(start, lf + 1))
      const all = Buffer.concat(this.#line, this.#lineLength)
      this.#line = []
      this.#lineLength = 0
      return { text: all.subarray(0, all.length - 2).toString('latin1'), next: lf + 1 }
    }
  }

  #appendLine(part: Buffer): void {
    if (part.length === 0) return
    this.#lineLength += part.length
    if (this.#lineLength > MAX_LINE) throw framing('chunk header or trailer line too long')
    this.#line.push(Buffer.from(part)) // copy: a small line must not pin the large buffer it came from
  }

  #lastLineByte(): number | undefined {
    const last = this.#line[this.#line.length - 1]
    return last === undefined ? undefined : last[last.length - 1]
  }

  #onChunkHeader(text: string): void {
    const parts = text.split(';')
    const sizeText = (parts[0] as string).trim()
    if (!/^[0-9a-fA-F]{1,12}$/.test(sizeText)) throw framing(`bad chunk size '${sizeText.slice(0, 32)}'`)
    const size = Number.parseInt(sizeText, 16)
    let signature: string | undefined
    for (const ext of parts.slice(1)) {
      const e = ext.trim()
      if (e.startsWith(CHUNK_SIGNATURE_PREFIX)) signature = e.slice(CHUNK_SIGNATURE_PREFIX.length)
    }
    if (this.#signed) {
      if (signature === undefined) throw framing('missing chunk-signature')
      this.#chunkSignature = signature
      this.#chunkHash = createHash('sha256')
    }
    if (this.#decodedLength !== undefined && this.#decoded + size > this.#decodedLength) {
      throw new ApiError('InvalidRequest', 'The aws-chunked body is longer than x-amz-decoded-content-length')
    }
    if (size === 0) {
      this.#endOfChunk()
      this.#state = 'trailer'
      return
    }
    this.#remaining = size
    this.#state = 'data'
  }

  /** Checks the signature of the chunk just read (data or the final empty one) and advances the chain. */
  #endOfChunk(): void {
    if (!this.#signed) return
    const auth = this.#auth as Authenticated
    const dataHash = (this.#chunkHash as Hash).digest('hex')
    this.#chunkHash = undefined
    const toSign = `AWS4-HMAC-SHA256-PAYLOAD\n${auth.datetime}\n${auth.scope}\n${this.#previousSignature}\n${EMPTY_SHA256_HEX}\n${dataHash}`
    if (!signatureMatches(hmacSha256(auth.signingKey, toSign), this.#chunkSignature)) throw badSignature('chunk')
    this.#previousSignature = this.#chunkSignature.toLowerCase()
  }

  /** Whether the body up to here is complete but for its final empty line. */
  #completeWithoutEmptyLine(): boolean {
    if (!this.#hasTrailer) return true
    if (this.#trailerLines === 0) return false
    return !this.#signed || this.#trailerSignature !== undefined
  }

  #onTrailerLine(text: string): void {
    if (text === '') {
      this.#finish()
      return
    }
    if (++this.#trailerLines > MAX_TRAILER_LINES) throw framing('too many trailer lines')
    const colon = text.indexOf(':')
    if (colon <= 0) throw framing('malformed trailer line')
    const name = text.slice(0, colon).trim().toLowerCase()
    const value = text.slice(colon + 1).trim()
    if (name === TRAILER_SIGNATURE_NAME) {
      if (!this.#signed || !this.#hasTrailer) throw framing('unexpected x-amz-trailer-signature')
      this.#trailerSignature = value
      return
    }
    if (!this.#hasTrailer) throw framing('trailers are not allowed with STREAMING-AWS4-HMAC-SHA256-PAYLOAD')
    if (this.#trailerSignature !== undefined) throw framing('trailer after x-amz-trailer-signature')
    this.#trailerValues[name] = value
    this.#trailerCanonical += `${name}:${value}\n`
  }

  #finish(): void {
    if (this.#signed && this.#hasTrailer) {
      if (this.#trailerSignature === undefined) throw badSignature('trailer (missing x-amz-trailer-signature)')
      const auth = this.#auth as Authenticated
      const hash = createHash('sha256').update(this.#trailerCanonical, 'latin1').digest('hex')
      const toSign = `AWS4-HMAC-SHA256-TRAILER\n${auth.datetime}\n${auth.scope}\n${this.#previousSignature}\n${hash}`
      if (!signatureMatches(hmacSha256(auth.signingKey, toSign), this.#trailerSignature)) throw badSignature('trailer')
    }
    for (const name of this.#trailerNames) {
      if (!(name in this.#trailerValues))
        throw new ApiError('InvalidRequest', `Missing trailer '${name}' announced by x-amz-trailer`)
    }
    if (this.#decodedLength !== undefined && this.#decoded !== this.#decodedLength) {
      throw new ApiError('IncompleteBody', 'The decoded body is shorter than x-amz-decoded-content-length')
    }
    this.#state = 'done'
    this.#resolve({ ...this.#trailerValues })
  }
}

/**
 * A Transform decoding an aws-chunked body and checking its chunk and trailer signatures.
 * Use mode `'signed'` for STREAMING-AWS4-HMAC-SHA256-PAYLOAD, `'signed-trailer'` for
 * STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER and `'unsigned-trailer'` for
 * STREAMING-UNSIGNED-PAYLOAD-TRAILER.
 * Errors: SignatureDoesNotMatch (bad chunk or trailer signature), IncompleteBody (truncated),
 * InvalidRequest (malformed framing, missing announced trailer).
 * @internal
 */
export function awsChunkedDecoder(opts: AwsChunkedOptions): AwsChunkedDecoder {
  return new Decoder(opts)
}

/** The aws-chunked mode of an x-amz-content-sha256 value, if it is a streaming one. @internal */
export function awsChunkedMode(contentSha256: string): AwsChunkedMode | undefined {
  switch (contentSha256) {
    case 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD':
      return 'signed'
    case 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER':
      return 'signed-trailer'
    case 'STREAMING-UNSIGNED-PAYLOAD-TRAILER':
      return 'unsigned-trailer'
    default:
      return undefined
  }
}
