/**
 * aws-chunked request bodies built by hand (the SDK never sends signed chunks), for any signed
 * head made by {@link signRequest} with `payloadHash` set to a STREAMING-* value: the seed
 * signature is the head's, then each chunk (and the trailer) is signed in a chain, as AWS's
 * "Transferring Payload in Multiple Chunks" describes. Used by the fuzzer and the bad-input
 * tables; test/integration/s3/streaming.test.ts has its own copy with tampering options.
 */
import { createHash, createHmac } from 'node:crypto'
import type { SignedRequest } from './s3.ts'

export const STREAMING_SIGNED = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD'
export const STREAMING_SIGNED_TRAILER = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER'
export const STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER'
export type StreamingMode = typeof STREAMING_SIGNED | typeof STREAMING_SIGNED_TRAILER | typeof STREAMING_UNSIGNED_TRAILER

const EMPTY_SHA256 = createHash('sha256').digest('hex')
const hmac = (key: string | Buffer, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest()
const sha256Hex = (b: string | Uint8Array): string => createHash('sha256').update(b).digest('hex')

export interface AwsChunkedBody {
  mode: StreamingMode
  data: Uint8Array
  /** Sizes of the data chunks, in order; the rest of the data goes in one last chunk. */
  chunkSizes?: number[]
  trailer?: { name: string; value: string }
}

/** The state of a signature chain: what the next chunk signature is computed from. */
export interface ChunkSigner {
  /** Signature of one chunk of `data`, chained after the previous one (advances the chain). */
  sign(data: Uint8Array): string
  /** Signature of the trailer block `canonical` (`name:value\n` lines), chained after the last chunk. */
  signTrailer(canonical: string): string
}

/** A signature chain seeded by the head of `request` (signed with `secret`). */
export function chunkSigner(request: SignedRequest, secret: string): ChunkSigner {
  const auth = request.headers.authorization ?? ''
  const seed = /Signature=([0-9a-f]{64})/.exec(auth)?.[1]
  const credential = /Credential=([^,]+)/.exec(auth)?.[1]
  if (seed === undefined || credential === undefined) throw new Error(`not a SigV4 header signature: '${auth}'`)
  const amzDate = request.headers['x-amz-date'] ?? ''
  const scope = credential.split('/').slice(1).join('/')
  const [date, region, service] = scope.split('/') as [string, string, string]
  const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request')
  let previous = seed
  return {
    sign(data) {
      previous = hmac(
        key,
        `AWS4-HMAC-SHA256-PAYLOAD\n${amzDate}\n${scope}\n${previous}\n${EMPTY_SHA256}\n${sha256Hex(data)}`,
      ).toString('hex')
      return previous
    },
    signTrailer(canonical) {
      return hmac(key, `AWS4-HMAC-SHA256-TRAILER\n${amzDate}\n${scope}\n${previous}\n${sha256Hex(canonical)}`).toString('hex')
    },
  }
}

/** Splits `data` into chunks of `sizes` (then the rest), followed by the final empty chunk. */
export function splitChunks(data: Uint8Array, sizes: number[] = []): Uint8Array[] {
  const out: Uint8Array[] = []
  let at = 0
  for (const size of sizes) {
    if (at >= data.length) break
    out.push(data.subarray(at, at + size))
    at += size
  }
  if (at < data.length) out.push(data.subarray(at))
  out.push(new Uint8Array(0))
  return out
}

/** The encoded body for the signed head `request` (which must carry `o.mode` as its payload hash). */
export function encodeAwsChunked(request: SignedRequest, secret: string, o: AwsChunkedBody): Buffer {
  const signed = o.mode !== STREAMING_UNSIGNED_TRAILER
  const signer = signed ? chunkSigner(request, secret) : undefined
  const parts: Buffer[] = []
  for (const chunk of splitChunks(o.data, o.chunkSizes)) {
    const size = chunk.length.toString(16)
    parts.push(Buffer.from(signer === undefined ? `${size}\r\n` : `${size};chunk-signature=${signer.sign(chunk)}\r\n`))
    if (chunk.length > 0) parts.push(Buffer.from(chunk), Buffer.from('\r\n'))
  }
  if (o.trailer !== undefined) {
    const line = `${o.trailer.name}:${o.trailer.value}`
    parts.push(Buffer.from(`${line}\r\n`))
    if (signer !== undefined) parts.push(Buffer.from(`x-amz-trailer-signature:${signer.signTrailer(`${line}\n`)}\r\n`))
  }
  parts.push(Buffer.from('\r\n'))
  return Buffer.concat(parts)
}
