/**
 * SSE-C, server-side encryption with customer-provided keys (port of garage_api_s3::encryption).
 *
 * The client sends its 256-bit key with each request; the server never stores it, only its MD5
 * to recognise it. Each object version is encrypted with its own key derived from the customer
 * key: HMAC-SHA256(customer key, "garage-object-encryption-key" ‖ bucket id ‖ version id ‖
 * object key), as Garage v2 does. With it:
 * - the object's headers and checksum, and inline data, are sealed with AES-256-GCM under a
 *   random 12-byte nonce stored in front (`nonce ‖ ciphertext ‖ tag`);
 * - each data block is cut into 4096-byte plaintext chunks, each sealed with AES-256-GCM
 *   (`nonce ‖ chunk₀ ‖ tag₀ ‖ chunk₁ ‖ tag₁ …`). A chunk's nonce is the block's random 8-byte
 *   prefix followed by the chunk index (31 bits) whose top bit marks the last chunk, as in the
 *   STREAM construction Garage uses (so chunks can be neither reordered nor dropped). A read
 *   of a byte range decrypts only the chunks that hold it.
 * Encrypted blocks are hashed (and deduplicated) by their ciphertext. The ETag of an SSE-C
 * object is random, as the MD5 of its content would reveal something about it.
 *
 * SSE-S3 (sse-s3.ts) uses the same cipher with a random data key per version in place of the
 * customer key; there only the data is encrypted, headers, checksum and MD5 ETag stay in clear.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { randomBytes } from '../../util/random.ts'
import type { IncomingHttpHeaders } from 'node:http'
import { isSseS3, type ObjectEncryption, type ObjectMeta, type SseCEncryption } from '../../model/s3/object-table.ts'
import { utf8 } from '../../util/data.ts'
import { CorruptDataError } from '../../util/errors.ts'
import { ApiError } from '../common/errors.ts'

export const SSE_C_ALGORITHM = 'AES256'
/** Plaintext bytes per encrypted chunk of a block. Never change: stored data depends on it. */
export const ENC_CHUNK_SIZE = 4096
const TAG_SIZE = 16
const BLOB_NONCE_SIZE = 12
const BLOCK_NONCE_PREFIX_SIZE = 8
const KEY_DERIVATION_LABEL = 'garage-object-encryption-key'

const HEADERS = {
  algorithm: 'x-amz-server-side-encryption-customer-algorithm',
  key: 'x-amz-server-side-encryption-customer-key',
  keyMd5: 'x-amz-server-side-encryption-customer-key-md5',
} as const
const COPY_SOURCE_HEADERS = {
  algorithm: 'x-amz-copy-source-server-side-encryption-customer-algorithm',
  key: 'x-amz-copy-source-server-side-encryption-customer-key',
  keyMd5: 'x-amz-copy-source-server-side-encryption-customer-key-md5',
} as const

/** A key given by the client, checked against its MD5. */
export interface CustomerKey {
  key: Buffer
  keyMd5: Buffer
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v.join(',') : v
}

/**
 * The customer key of a request (`copySource`: of its copy source), or undefined when the
 * request asks for no encryption. Inconsistent headers are InvalidArgument; another algorithm
 * than AES256 is InvalidEncryptionAlgorithmError.
 */
export function parseCustomerKey(headers: IncomingHttpHeaders, copySource = false): CustomerKey | undefined {
  const names = copySource ? COPY_SOURCE_HEADERS : HEADERS
  const algorithm = header(headers, names.algorithm)
  const keyB64 = header(headers, names.key)
  const md5B64 = header(headers, names.keyMd5)
  if (algorithm === undefined) {
    if (keyB64 !== undefined || md5B64 !== undefined) {
      throw new ApiError(
        'InvalidArgument',
        'Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm.',
        { extra: { ArgumentName: names.algorithm } },
      )
    }
    return undefined
  }
  if (algorithm.trim() !== SSE_C_ALGORITHM) {
    throw new ApiError(
      'InvalidEncryptionAlgorithmError',
      'The encryption request you specified is not valid. Supported value: AES256.',
      {
        extra: { ArgumentName: names.algorithm, ArgumentValue: algorithm.slice(0, 40) },
      },
    )
  }
  if (keyB64 === undefined) {
    throw new ApiError(
      'InvalidArgument',
      'Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key.',
      { extra: { ArgumentName: names.key } },
    )
  }
  const key = Buffer.from(keyB64.trim(), 'base64')
  if (key.length !== 32 || key.toString('base64') !== keyB64.trim()) {
    throw new ApiError('InvalidArgument', 'The secret key was invalid for the specified algorithm.', {
      extra: { ArgumentName: names.key },
    })
  }
  const keyMd5 = createHash('md5').update(key).digest()
  if (md5B64 === undefined) {
    throw new ApiError(
      'InvalidArgument',
      'Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key.',
      { extra: { ArgumentName: names.keyMd5 } },
    )
  }
  const given = Buffer.from(md5B64.trim(), 'base64')
  if (given.length !== keyMd5.length || !timingSafeEqual(given, keyMd5)) {
    throw new ApiError('InvalidArgument', 'The calculated MD5 hash of the key did not match the hash that was provided.', {
      extra: { ArgumentName: names.keyMd5 },
    })
  }
  return { key, keyMd5 }
}

/** The headers echoed in answers about an encrypted object. */
export function sseCResponseHeaders(keyMd5: Uint8Array): Record<string, string> {
  return { [HEADERS.algorithm]: SSE_C_ALGORITHM, [HEADERS.keyMd5]: Buffer.from(keyMd5).toString('base64') }
}

/** The header that marks an SSE-S3 object in answers (PUT, GET, HEAD, copy, multipart). */
export const SSE_HEADER = 'x-amz-server-side-encryption'

/** The headers echoed in answers about an SSE-S3 object. */
export function sseS3ResponseHeaders(): Record<string, string> {
  return { [SSE_HEADER]: SSE_C_ALGORITHM }
}

/** A random ETag, for SSE-C objects and parts. */
export const randomEtag = (): string => randomBytes(16).toString('hex')

/** Size of a block of `plainSize` bytes once encrypted. */
export function encryptedBlockSize(plainSize: number): number {
  const chunks = Math.max(1, Math.ceil(plainSize / ENC_CHUNK_SIZE))
  return BLOCK_NONCE_PREFIX_SIZE + plainSize + chunks * TAG_SIZE
}

/** The data key of an SSE-S3 version, in clear, with its wrapped form as stored. */
export interface SseS3DataKey {
  dek: Buffer
  keyId: string
  wrappedKey: Uint8Array
}

/** What a cipher was made from: a customer key (SSE-C) or an SSE-S3 data key. */
export type CipherKind = { t: 'sse-c'; keyMd5: Buffer } | { t: 'sse-s3'; keyId: string; wrappedKey: Uint8Array }

/** The keys of one object version. */
export class ObjectCipher {
  readonly #key: Buffer
  readonly kind: CipherKind

  constructor(root: CustomerKey | SseS3DataKey, bucketId: Uint8Array, versionId: Uint8Array, objectKey: string) {
    const secret = 'dek' in root ? root.dek : root.key
    this.#key = createHmac('sha256', secret)
      .update(KEY_DERIVATION_LABEL)
      .update(bucketId)
      .update(versionId)
      .update(utf8(objectKey))
      .digest()
    this.kind =
      'dek' in root ? { t: 'sse-s3', keyId: root.keyId, wrappedKey: root.wrappedKey } : { t: 'sse-c', keyMd5: root.keyMd5 }
  }

  /**
   * True for SSE-C: headers and checksum are sealed and ETags are random. False for SSE-S3,
   * whose ETags stay the MD5 of the data: "Objects created by the PUT Object, POST Object, or
   * Copy operation [...] that are encrypted by SSE-S3 or plaintext, have ETags that are an MD5
   * digest of their object data" (AWS S3 API reference, Object, ETag); and "server-side
   * encryption encrypts only the object data, not the object metadata" (S3 user guide,
   * Protecting data with server-side encryption).
   */
  get sealsMetadata(): boolean {
    return this.kind.t === 'sse-c'
  }

  /** The headers that tell a client how the object is encrypted. */
  responseHeaders(): Record<string, string> {
    return this.kind.t === 'sse-c' ? sseCResponseHeaders(this.kind.keyMd5) : sseS3ResponseHeaders()
  }

  /** True when `other` encrypts with the same customer key, or both are SSE-S3. */
  sameEncryptionAs(other: ObjectCipher): boolean {
    if (this.kind.t === 'sse-c' && other.kind.t === 'sse-c') return this.kind.keyMd5.equals(other.kind.keyMd5)
    return this.kind.t === other.kind.t
  }

  /** `nonce ‖ ciphertext ‖ tag` of a small value (metadata, inline data). */
  encryptBlob(plain: Uint8Array): Buffer {
    const nonce = randomBytes(BLOB_NONCE_SIZE)
    const c = createCipheriv('aes-256-gcm', this.#key, nonce)
    return Buffer.concat([nonce, c.update(plain), c.final(), c.getAuthTag()])
  }

  decryptBlob(blob: Uint8Array): Buffer {
    const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength)
    if (b.length < BLOB_NONCE_SIZE + TAG_SIZE) throw new CorruptDataError('encrypted value too short')
    const d = createDecipheriv('aes-256-gcm', this.#key, b.subarray(0, BLOB_NONCE_SIZE))
    d.setAuthTag(b.subarray(b.length - TAG_SIZE))
    try {
      return Buffer.concat([d.update(b.subarray(BLOB_NONCE_SIZE, b.length - TAG_SIZE)), d.final()])
    } catch (err) {
      throw new CorruptDataError('cannot decrypt an encrypted value: wrong key or corrupted data', { cause: err })
    }
  }

  /** Encrypts one data block, chunk by chunk. */
  encryptBlock(plain: Uint8Array): Buffer {
    const prefix = randomBytes(BLOCK_NONCE_PREFIX_SIZE)
    const chunks = Math.max(1, Math.ceil(plain.length / ENC_CHUNK_SIZE))
    const out: Buffer[] = [prefix]
    for (let i = 0; i < chunks; i++) {
      const c = createCipheriv('aes-256-gcm', this.#key, chunkNonce(prefix, i, i === chunks - 1))
      out.push(c.update(plain.subarray(i * ENC_CHUNK_SIZE, (i + 1) * ENC_CHUNK_SIZE)), c.final(), c.getAuthTag())
    }
    return Buffer.concat(out)
  }

  /**
   * Bytes `from..to` (end excluded) of the plaintext of an encrypted block of `plainSize`
   * bytes; only the chunks holding them are decrypted.
   */
  decryptBlock(block: Buffer, plainSize: number, from = 0, to = plainSize): Buffer {
    if (block.length !== encryptedBlockSize(plainSize)) {
      throw new CorruptDataError(`encrypted block has ${block.length} bytes, expected ${encryptedBlockSize(plainSize)}`)
    }
    if (to <= from) return Buffer.alloc(0)
    const chunks = Math.max(1, Math.ceil(plainSize / ENC_CHUNK_SIZE))
    const prefix = block.subarray(0, BLOCK_NONCE_PREFIX_SIZE)
    const first = Math.floor(from / ENC_CHUNK_SIZE)
    const last = Math.floor((to - 1) / ENC_CHUNK_SIZE)
    const out: Buffer[] = []
    for (let i = first; i <= last; i++) {
      const len = Math.min(ENC_CHUNK_SIZE, plainSize - i * ENC_CHUNK_SIZE)
      const at = BLOCK_NONCE_PREFIX_SIZE + i * (ENC_CHUNK_SIZE + TAG_SIZE)
      const d = createDecipheriv('aes-256-gcm', this.#key, chunkNonce(prefix, i, i === chunks - 1))
      d.setAuthTag(block.subarray(at + len, at + len + TAG_SIZE))
      try {
        out.push(d.update(block.subarray(at, at + len)), d.final())
      } catch (err) {
        throw new CorruptDataError('cannot decrypt a data block: wrong key or corrupted data', { cause: err })
      }
    }
    const plain = out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out)
    const skip = from - first * ENC_CHUNK_SIZE
    return plain.subarray(skip, skip + (to - from))
  }

  /**
   * The marker stored for an encrypted version: with SSE-C, it seals the headers and checksum;
   * with SSE-S3, it holds the wrapped data key (the headers stay in the row, in clear).
   */
  sealMeta(headers: Array<[string, string]>, checksum?: ObjectMeta['checksum']): ObjectEncryption {
    if (this.kind.t === 'sse-s3') {
      return { alg: SSE_C_ALGORITHM, sse: 's3', keyId: this.kind.keyId, wrappedKey: new Uint8Array(this.kind.wrappedKey) }
    }
    const inner = JSON.stringify(checksum === undefined ? { headers } : { headers, checksum })
    return {
      alg: SSE_C_ALGORITHM,
      keyMd5: new Uint8Array(this.kind.keyMd5),
      inner: new Uint8Array(this.encryptBlob(utf8(inner))),
    }
  }

  /** The headers and checksum sealed in an SSE-C marker. */
  openMeta(enc: SseCEncryption): { headers: Array<[string, string]>; checksum?: ObjectMeta['checksum'] } {
    const parsed = JSON.parse(this.decryptBlob(enc.inner).toString('utf8')) as {
      headers: Array<[string, string]>
      checksum?: ObjectMeta['checksum']
    }
    return parsed.checksum === undefined ? { headers: parsed.headers } : { headers: parsed.headers, checksum: parsed.checksum }
  }

  /**
   * The stored meta of a plaintext-described version. SSE-C: headers and checksum sealed, random
   * ETag. SSE-S3: the same meta with the marker added.
   */
  sealObjectMeta(meta: ObjectMeta): ObjectMeta {
    if (!this.sealsMetadata) return { ...meta, encryption: this.sealMeta(meta.headers, meta.checksum) }
    return { size: meta.size, etag: randomEtag(), headers: [], encryption: this.sealMeta(meta.headers, meta.checksum) }
  }

  /** The meta of an encrypted version with its headers and checksum opened (its marker dropped). */
  openObjectMeta(meta: ObjectMeta): ObjectMeta {
    if (meta.encryption === undefined) return meta
    if (isSseS3(meta.encryption)) {
      const { encryption: _, ...clear } = meta
      return clear
    }
    const inner = this.openMeta(meta.encryption)
    const out: ObjectMeta = { size: meta.size, etag: meta.etag, headers: inner.headers }
    if (inner.checksum !== undefined) out.checksum = inner.checksum
    return out
  }
}

function chunkNonce(prefix: Buffer, index: number, last: boolean): Buffer {
  const nonce = Buffer.alloc(BLOCK_NONCE_PREFIX_SIZE + 4)
  prefix.copy(nonce, 0, 0, BLOCK_NONCE_PREFIX_SIZE)
  nonce.writeUInt32BE((index | (last ? 0x80000000 : 0)) >>> 0, BLOCK_NONCE_PREFIX_SIZE)
  return nonce
}

/**
 * Checks the key a request gives for an object stored with `stored` encryption (undefined:
 * plaintext) and returns the customer key to decrypt it with (undefined for a plaintext object).
 * A missing key, a key that is not the one used, or a key for a plaintext object is
 * InvalidRequest (400), as in Garage.
 */
export function checkDecryptKey(
  headers: IncomingHttpHeaders,
  stored: ObjectEncryption | undefined,
  copySource = false,
): CustomerKey | undefined {
  const given = parseCustomerKey(headers, copySource)
  if (stored === undefined || isSseS3(stored)) {
    if (given !== undefined) {
      throw new ApiError(
        'InvalidRequest',
        'The encryption parameters are not applicable to this object (it is not encrypted with a customer-provided key).',
      )
    }
    return undefined
  }
  if (given === undefined) {
    throw new ApiError(
      'InvalidRequest',
      'The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.',
    )
  }
  if (!Buffer.from(stored.keyMd5).equals(given.keyMd5)) {
    throw new ApiError('InvalidRequest', 'The provided encryption key does not match the key the object was stored with.')
  }
  return given
}
