/**
 * Versioned encoding of stored values: a short ASCII marker naming the format, then msgpack.
 * Decoding reads the marker and, for an older format, runs its migration chain to the newest
 * shape (port of garage_util::migrate). Never rename a marker once data has been written with it.
 */
import { Decoder, Encoder } from '@msgpack/msgpack'
import { CorruptDataError } from './errors.ts'

const encoder = new Encoder({ ignoreUndefined: true })
const decoder = new Decoder({ useBigInt64: false })

/** Plain msgpack, for RPC messages and internal records without their own codec. */
export function encodeMsgpack(value: unknown): Uint8Array {
  return encoder.encode(value)
}

export function decodeMsgpack(bytes: Uint8Array): unknown {
  return decoder.decode(bytes)
}

/** An older format: its marker, and how to turn its decoded value into the next format's. */
export interface PreviousFormat {
  readonly marker: string
  /** Converts a value of this format to the format just after it. */
  migrate(value: unknown): unknown
}

export interface VersionedCodec<T> {
  readonly marker: string
  encode(value: T): Uint8Array
  decode(bytes: Uint8Array): T
}

/**
 * A codec with `marker` for the current format. `previous` lists older formats from the oldest to
 * the most recent; decoding an old value migrates it step by step.
 */
export function defineCodec<T>(marker: string, previous: readonly PreviousFormat[] = []): VersionedCodec<T> {
  const current = Buffer.from(marker, 'ascii')
  const olds = previous.map((p, i) => ({ bytes: Buffer.from(p.marker, 'ascii'), index: i }))
  return {
    marker,
    encode(value: T): Uint8Array {
      const body = encoder.encode(value)
      const out = new Uint8Array(current.length + body.length)
      out.set(current, 0)
      out.set(body, current.length)
      return out
    },
    decode(bytes: Uint8Array): T {
      if (startsWith(bytes, current)) return decodeBody(bytes, current.length, marker) as T
      for (const old of olds) {
        if (!startsWith(bytes, old.bytes)) continue
        let value = decodeBody(bytes, old.bytes.length, old.bytes.toString('ascii'))
        for (let i = old.index; i < previous.length; i++) value = (previous[i] as PreviousFormat).migrate(value)
        return value as T
      }
      throw new CorruptDataError(`unknown format marker for ${marker} value`)
    },
  }
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.length < prefix.length) return false
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false
  return true
}

function decodeBody(bytes: Uint8Array, offset: number, marker: string): unknown {
  try {
    return decoder.decode(bytes.subarray(offset))
  } catch (err) {
    throw new CorruptDataError(`cannot decode ${marker} value`, { cause: err })
  }
}
