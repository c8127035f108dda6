/**
 * The SHA-256 / HMAC constructor that the AWS SDK's own SigV4 signer (@smithy/signature-v4)
 * expects, over node:crypto: tests sign with it to check our verifier against an implementation
 * that is not ours.
 */
import { createHash, createHmac } from 'node:crypto'

type SourceData = string | ArrayBuffer | ArrayBufferView

function toBytes(d: SourceData): string | Uint8Array {
  if (typeof d === 'string') return d
  return ArrayBuffer.isView(d) ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength) : new Uint8Array(d)
}

/** The SHA-256 / HMAC constructor the smithy signer expects, over node:crypto. */
export class Sha256 {
  #secret: string | Uint8Array | undefined
  #h: ReturnType<typeof createHash> | ReturnType<typeof createHmac>
  constructor(secret?: SourceData) {
    this.#secret = secret === undefined ? undefined : toBytes(secret)
    this.#h = this.#fresh()
  }
  #fresh(): ReturnType<typeof createHash> | ReturnType<typeof createHmac> {
    return this.#secret === undefined ? createHash('sha256') : createHmac('sha256', this.#secret)
  }
  update(data: SourceData): void {
    this.#h.update(toBytes(data))
  }
  async digest(): Promise<Uint8Array> {
    return this.#h.digest()
  }
  reset(): void {
    this.#h = this.#fresh()
  }
}
