/**
 * SSE-S3, server-side encryption with keys the server manages (`x-amz-server-side-encryption:
 * AES256`), and the bucket default encryption (Put/Get/DeleteBucketEncryption). Design and key
 * rotation: docs/design/sse-s3.md.
 *
 * Each object version gets a random 256-bit data key (DEK). Its data is encrypted with the SSE-C
 * machinery of encryption.ts ({@link ObjectCipher}: chunked AES-256-GCM, so ranges decrypt only
 * what they need) on the API node, before any block leaves it: replicas and disks only hold
 * ciphertext. The DEK is stored in the object row wrapped (AES-256-GCM) by a node master key
 * named by an id (`[s3_api] sse_master_key`), with the id, bucket and version as associated data;
 * a master key is never stored next to the data it protects. Rotation: a new key, listed first,
 * wraps new DEKs; older ids stay listed so their objects stay readable.
 *
 * Rules taken from AWS (S3 API reference, PutObject, GetObject, CopyObject, CreateMultipartUpload,
 * PutBucketEncryption):
 * - `x-amz-server-side-encryption` accepts `AES256`, `aws:kms` and `aws:kms:dsse`. There is no KMS
 *   here: the two KMS values are answered 501 NotImplemented, as a server without KMS does
 *   (MinIO answers so too), rather than silently storing with another method the client did not
 *   ask for. Another value is 400 InvalidArgument.
 * - SSE-C headers with `x-amz-server-side-encryption` is 400 InvalidArgument ("Server Side
 *   Encryption with Customer provided key is incompatible with the encryption method specified").
 * - A KMS key id or context without `aws:kms` is 400 InvalidArgument.
 * - GetObject/HeadObject: "Encryption request headers, like x-amz-server-side-encryption, should
 *   not be sent for the GetObject requests [...] you'll get an HTTP 400 Bad Request error."
 * - The bucket default applies to writes that ask for no encryption; explicit headers (SSE-C or
 *   SSE-S3) win over it. For CopyObject and UploadPartCopy the destination's settings decide
 *   ("the copy is encrypted per the destination bucket's default unless you specify otherwise").
 * @module
 */
import { createCipheriv, createDecipheriv } from 'node:crypto'
import { randomBytes } from '../../util/random.ts'
import { open, readFile } from 'node:fs/promises'
import type { IncomingHttpHeaders } from 'node:http'
import { join } from 'node:path'
import type { BucketEncryption } from '../../model/bucket-table.ts'
import type { ObjectEncryption, SseS3Encryption } from '../../model/s3/object-table.ts'
import { isSseS3 } from '../../model/s3/object-table.ts'
import { parseSseMasterKeys } from '../../util/config.ts'
import { utf8 } from '../../util/data.ts'
import type { Logger } from '../../util/logger.ts'
import { ApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import { readSettingXml, setBucketSetting, storedBucketSetting, xmlAnswer } from './bucket-settings.ts'
import type { BucketCtx } from './context.ts'
import {
  type CustomerKey,
  checkDecryptKey,
  ObjectCipher,
  parseCustomerKey,
  SSE_HEADER,
  type SseS3DataKey,
  sseCResponseHeaders,
  sseS3ResponseHeaders,
} from './encryption.ts'
import { renderXml, type XmlDocument, xmlChildren, xmlOnly, xmlRoot, xmlText } from './xml.ts'

export const SSE_S3_ALGORITHM = 'AES256'
/** The file of a master key generated for a node outside a cluster, in `metadata_dir`. */
export const GENERATED_MASTER_KEY_FILE = 'sse_master_key'
const WRAP_LABEL = 'garage-sse-s3-data-key'
const NONCE_SIZE = 12
const TAG_SIZE = 16
const DEK_SIZE = 32
const KMS_KEY_ID_HEADER = 'x-amz-server-side-encryption-aws-kms-key-id'
const KMS_CONTEXT_HEADER = 'x-amz-server-side-encryption-context'

/** One master key. */
export interface MasterKey {
  id: string
  key: Buffer
}

/**
 * The master keys a node holds: the current one wraps the data keys of new objects, every one
 * unwraps those of the objects it wrapped. @internal
 */
export class MasterKeyring {
  readonly #keys: Map<string, Buffer>
  /** Id of the key that wraps new data keys; undefined when this node may not write SSE-S3. */
  readonly current: string | undefined
  readonly #noWrite: string

  /**
   * @param current id among `keys`, or undefined (then `noWrite` says why SSE-S3 writes are refused).
   */
  constructor(keys: readonly MasterKey[], current: string | undefined, noWrite = 'no SSE-S3 master key is configured') {
    this.#keys = new Map(keys.map((k) => [k.id, k.key]))
    if (current !== undefined && !this.#keys.has(current)) throw new Error(`unknown current master key ${current}`)
    for (const k of keys) if (k.key.length !== 32) throw new Error(`master key ${k.id} is not 32 bytes`)
    this.current = current
    this.#noWrite = noWrite
  }

  /** The ids of the keys held, current first. */
  ids(): string[] {
    const rest = [...this.#keys.keys()].filter((id) => id !== this.current)
    return this.current === undefined ? rest : [this.current, ...rest]
  }

  /** @throws {ApiError} NotImplemented when this node has no key to write with. */
  checkWritable(): void {
    if (this.current === undefined) {
      throw new ApiError('NotImplemented', `Server-side encryption with S3 managed keys is not available: ${this.#noWrite}.`)
    }
  }

  /**
   * A fresh data key for version `versionId` of bucket `bucketId`, wrapped by the current key.
   * @throws {ApiError} NotImplemented when this node has no key to write with.
   */
  newDataKey(bucketId: Uint8Array, versionId: Uint8Array): SseS3DataKey {
    this.checkWritable()
    const keyId = this.current as string
    const master = this.#keys.get(keyId) as Buffer
    const dek = randomBytes(DEK_SIZE)
    const nonce = randomBytes(NONCE_SIZE)
    const c = createCipheriv('aes-256-gcm', master, nonce)
    c.setAAD(wrapAad(keyId, bucketId, versionId))
    const wrappedKey = new Uint8Array(Buffer.concat([nonce, c.update(dek), c.final(), c.getAuthTag()]))
    return { dek, keyId, wrappedKey }
  }

  /**
   * The data key of an SSE-S3 version.
   * @throws {ApiError} InternalError (500) naming the master key when this node lacks it or holds
   *   a different key under that id: a configuration fault, reported as such, never garbage.
   */
  openDataKey(enc: SseS3Encryption, bucketId: Uint8Array, versionId: Uint8Array): SseS3DataKey {
    const master = this.#keys.get(enc.keyId)
    if (master === undefined) {
      throw new ApiError(
        'InternalError',
        `This object is encrypted with SSE-S3 master key '${enc.keyId}', which this node does not have: every node needs the same [s3_api] sse_master_key entries.`,
      )
    }
    const w = Buffer.from(enc.wrappedKey)
    const d = createDecipheriv('aes-256-gcm', master, w.subarray(0, NONCE_SIZE))
    d.setAAD(wrapAad(enc.keyId, bucketId, versionId))
    d.setAuthTag(w.subarray(w.length - TAG_SIZE))
    try {
      const dek = Buffer.concat([d.update(w.subarray(NONCE_SIZE, w.length - TAG_SIZE)), d.final()])
      return { dek, keyId: enc.keyId, wrappedKey: enc.wrappedKey }
    } catch (err) {
      throw new ApiError(
        'InternalError',
        `Cannot unwrap this object's data key with SSE-S3 master key '${enc.keyId}': this node's key with that id is not the one the object was written with.`,
        { cause: err },
      )
    }
  }
}

function wrapAad(keyId: string, bucketId: Uint8Array, versionId: Uint8Array): Buffer {
  return Buffer.concat([utf8(WRAP_LABEL), Buffer.from([0]), utf8(keyId), Buffer.from([0]), bucketId, versionId])
}

/**
 * The keyring of a node. Configured keys come first (the first is current). A node outside a
 * cluster without configured keys generates one in `metadata_dir/sse_master_key` on first start
 * (0600) and writes with it; a node in a cluster never writes with a key the others lack, so it
 * refuses SSE-S3 writes until keys are configured. A generated key, once there, always stays
 * readable, so objects written before keys were configured (or before joining a cluster) remain
 * readable on that node. @internal
 */
export async function loadMasterKeyring(o: {
  configured: ReadonlyArray<{ readonly id: string; readonly key: string }> | undefined
  metadataDir: string
  inCluster: boolean
  log: Logger
}): Promise<MasterKeyring> {
  const file = join(o.metadataDir, GENERATED_MASTER_KEY_FILE)
  let local = await readKeyFile(file)
  const configured = (o.configured ?? []).map((k) => ({ id: k.id, key: Buffer.from(k.key, 'hex') }))
  if (configured.length === 0 && local === undefined && !o.inCluster) {
    local = await generateKeyFile(file)
    o.log.info(`generated an SSE-S3 master key in ${file}: back it up, objects encrypted with it need it`)
  }
  const keys: MasterKey[] = [...configured]
  for (const k of local ?? []) {
    if (!keys.some((c) => c.id === k.id)) keys.push(k)
    else if (!keys.some((c) => c.id === k.id && c.key.equals(k.key))) {
      o.log.warn(`SSE-S3 master key '${k.id}' of ${file} differs from the configured key of that id; the configured one is used`)
    }
  }
  const first = configured[0] ?? (o.inCluster ? undefined : local?.[0])
  return new MasterKeyring(
    keys,
    first?.id,
    'this node is part of a cluster and has no [s3_api] sse_master_key; set the same one on every node',
  )
}

async function readKeyFile(file: string): Promise<MasterKey[] | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  return parseSseMasterKeys(text, file).map((k) => ({ id: k.id, key: Buffer.from(k.key, 'hex') }))
}

async function generateKeyFile(file: string): Promise<MasterKey[]> {
  const key: MasterKey = { id: `local-${randomBytes(4).toString('hex')}`, key: randomBytes(32) }
  // `wx`: never overwrite a key; synced, as losing it loses every object it wraps.
  const fh = await open(file, 'wx', 0o600)
  try {
    await fh.writeFile(
      `# SSE-S3 master key generated by this node (id:key). Keep it; objects encrypted with it need it.\n${key.id}:${key.key.toString('hex')}\n`,
    )
    await fh.sync()
  } finally {
    await fh.close()
  }
  return [key]
}

// ---------------------------------------------------------------------------------------------
// Request headers
// ---------------------------------------------------------------------------------------------

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v.join(',') : v
}

/**
 * `x-amz-server-side-encryption` of a write: `AES256` or undefined.
 * @throws {ApiError} NotImplemented for `aws:kms` and `aws:kms:dsse` (no KMS here),
 *   InvalidArgument for another value, or for KMS headers without `aws:kms`.
 */
export function parseSseHeader(headers: IncomingHttpHeaders): typeof SSE_S3_ALGORITHM | undefined {
  const raw = header(headers, SSE_HEADER)
  const value = raw?.trim()
  if (value === 'aws:kms' || value === 'aws:kms:dsse') {
    throw new ApiError(
      'NotImplemented',
      `Server-side encryption with AWS KMS keys (${value}) is not supported by this server: there is no KMS. Use AES256 (SSE-S3) or customer-provided keys (SSE-C).`,
    )
  }
  for (const name of [KMS_KEY_ID_HEADER, KMS_CONTEXT_HEADER]) {
    if (header(headers, name) !== undefined) {
      throw new ApiError(
        'InvalidArgument',
        'Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms',
        { extra: { ArgumentName: name } },
      )
    }
  }
  if (value === undefined) return undefined
  if (value !== SSE_S3_ALGORITHM) {
    throw new ApiError('InvalidArgument', 'The encryption method specified is not supported', {
      extra: { ArgumentName: SSE_HEADER, ArgumentValue: value.slice(0, 40) },
    })
  }
  return SSE_S3_ALGORITHM
}

/**
 * GetObject and HeadObject take no `x-amz-server-side-encryption`: AWS answers it 400 ("Encryption
 * request headers, like x-amz-server-side-encryption, should not be sent for the GetObject
 * requests", S3 API reference, GetObject).
 */
export function refuseSseHeaderOnRead(headers: IncomingHttpHeaders): void {
  if (header(headers, SSE_HEADER) !== undefined) {
    throw new ApiError(
      'InvalidArgument',
      'Encryption request headers, like x-amz-server-side-encryption, should not be sent for GET or HEAD requests.',
      { extra: { ArgumentName: SSE_HEADER } },
    )
  }
}

/** How a write is encrypted. */
export type WriteEncryption = { t: 'sse-c'; customer: CustomerKey } | { t: 'sse-s3'; keyring: MasterKeyring }

/** What decides a write's encryption besides its headers. */
export interface EncryptionSettings {
  /** The destination bucket's default encryption. */
  bucketDefault: BucketEncryption | null
  /** The node's master keys; undefined: SSE-S3 is refused. */
  keyring: MasterKeyring | undefined
}

/**
 * The encryption a write asks for (PutObject, PostObject, CopyObject's destination,
 * CreateMultipartUpload): SSE-C headers, `x-amz-server-side-encryption`, else the bucket's
 * default; undefined for a plaintext object.
 * @throws {ApiError} InvalidArgument for SSE-C and SSE-S3 together; NotImplemented for KMS, or
 *   for SSE-S3 on a node that has no master key to write with.
 */
export function writeEncryption(headers: IncomingHttpHeaders, s: EncryptionSettings): WriteEncryption | undefined {
  const sse = parseSseHeader(headers)
  const customer = parseCustomerKey(headers)
  if (customer !== undefined) {
    if (sse !== undefined) {
      throw new ApiError(
        'InvalidArgument',
        'Server Side Encryption with Customer provided key is incompatible with the encryption method specified',
        { extra: { ArgumentName: SSE_HEADER, ArgumentValue: sse } },
      )
    }
    return { t: 'sse-c', customer }
  }
  if (sse === undefined && s.bucketDefault?.sseAlgorithm !== SSE_S3_ALGORITHM) return undefined
  // Refused now rather than at the first block, so nothing is read or written.
  return { t: 'sse-s3', keyring: writableKeyring(s.keyring) }
}

/** `keyring` when it can wrap new data keys. @throws {ApiError} NotImplemented otherwise. */
function writableKeyring(keyring: MasterKeyring | undefined): MasterKeyring {
  const ring = keyring ?? new MasterKeyring([], undefined)
  ring.checkWritable()
  return ring
}

/** The cipher of new version `versionId` written with `enc` (for SSE-S3, a fresh data key). */
export function newObjectCipher(enc: WriteEncryption, bucketId: Uint8Array, versionId: Uint8Array, key: string): ObjectCipher {
  const root = enc.t === 'sse-c' ? enc.customer : enc.keyring.newDataKey(bucketId, versionId)
  return new ObjectCipher(root, bucketId, versionId, key)
}

/** The headers answering a write made with `enc`. */
export function writeEncryptionHeaders(enc: WriteEncryption | undefined): Record<string, string> {
  if (enc === undefined) return {}
  return enc.t === 'sse-c' ? sseCResponseHeaders(enc.customer.keyMd5) : sseS3ResponseHeaders()
}

/**
 * The cipher that opens version `at.versionId`, stored with `stored` encryption (undefined for a
 * plaintext version): SSE-C needs the request's key (`copySource`: its copy-source key), SSE-S3
 * the node's master key; a plaintext or SSE-S3 object given SSE-C headers is InvalidRequest.
 */
export function openObjectCipher(
  headers: IncomingHttpHeaders,
  stored: ObjectEncryption | undefined,
  at: { bucketId: Uint8Array; versionId: Uint8Array; key: string },
  keyring: MasterKeyring | undefined,
  copySource = false,
): ObjectCipher | undefined {
  const customer = checkDecryptKey(headers, stored, copySource)
  if (customer !== undefined) return new ObjectCipher(customer, at.bucketId, at.versionId, at.key)
  if (!isSseS3(stored)) return undefined
  const ring = keyring ?? new MasterKeyring([], undefined)
  return new ObjectCipher(ring.openDataKey(stored, at.bucketId, at.versionId), at.bucketId, at.versionId, at.key)
}

// ---------------------------------------------------------------------------------------------
// Put/Get/DeleteBucketEncryption
// ---------------------------------------------------------------------------------------------

const MAX_BODY = 64 * 1024

/**
 * Parses a `<ServerSideEncryptionConfiguration>`: exactly one `<Rule>` whose
 * `<ApplyServerSideEncryptionByDefault>` gives `<SSEAlgorithm>`. @internal
 * @throws {ApiError} MalformedXML for a missing or repeated element; NotImplemented for the KMS
 *   algorithms; InvalidArgument for another algorithm, or a KMSMasterKeyID with AES256.
 */
export function parseBucketEncryption(doc: XmlDocument): BucketEncryption {
  const root = xmlRoot(doc, 'ServerSideEncryptionConfiguration')
  xmlOnly(root, ['Rule'], 'ServerSideEncryptionConfiguration')
  const rules = xmlChildren(root, 'Rule')
  if (rules.length !== 1) {
    throw new ApiError('MalformedXML', '<ServerSideEncryptionConfiguration> must contain exactly one <Rule>')
  }
  const rule = rules[0]
  xmlOnly(rule, ['ApplyServerSideEncryptionByDefault', 'BucketKeyEnabled', 'BlockedEncryptionTypes'], 'Rule')
  const applies = xmlChildren(rule, 'ApplyServerSideEncryptionByDefault')
  if (applies.length !== 1) {
    throw new ApiError('MalformedXML', '<Rule> must contain one <ApplyServerSideEncryptionByDefault>')
  }
  const apply = applies[0]
  xmlOnly(apply, ['SSEAlgorithm', 'KMSMasterKeyID'], 'ApplyServerSideEncryptionByDefault')
  const algorithm = xmlText(apply, 'SSEAlgorithm')
  if (algorithm === undefined) throw new ApiError('MalformedXML', '<ApplyServerSideEncryptionByDefault> needs <SSEAlgorithm>')
  if (algorithm === 'aws:kms' || algorithm === 'aws:kms:dsse') {
    throw new ApiError('NotImplemented', `Default encryption with AWS KMS keys (${algorithm}) is not supported: there is no KMS.`)
  }
  if (algorithm !== SSE_S3_ALGORITHM) {
    throw new ApiError('InvalidArgument', 'The encryption method specified is not supported', {
      extra: { ArgumentName: 'SSEAlgorithm', ArgumentValue: algorithm.slice(0, 40) },
    })
  }
  if (xmlText(apply, 'KMSMasterKeyID') !== undefined) {
    throw new ApiError('InvalidArgument', 'a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms', {
      extra: { ArgumentName: 'ApplyServerSideEncryptionByDefault' },
    })
  }
  const bucketKey = xmlText(rule, 'BucketKeyEnabled')?.trim()
  if (bucketKey !== undefined && bucketKey !== 'true' && bucketKey !== 'false') {
    throw new ApiError('MalformedXML', '<BucketKeyEnabled> must be true or false')
  }
  return { sseAlgorithm: SSE_S3_ALGORITHM, bucketKeyEnabled: bucketKey === 'true' }
}

/** `<ServerSideEncryptionConfiguration>` as AWS returns it. @internal */
export function renderBucketEncryption(e: BucketEncryption): string {
  return renderXml('ServerSideEncryptionConfiguration', {
    Rule: { ApplyServerSideEncryptionByDefault: { SSEAlgorithm: e.sseAlgorithm }, BucketKeyEnabled: e.bucketKeyEnabled },
  })
}

export function handleGetBucketEncryption(ctx: BucketCtx): ApiResponse {
  const e = storedBucketSetting(ctx, 'encryption', {
    code: 'ServerSideEncryptionConfigurationNotFoundError',
    message: 'The server side encryption configuration was not found',
  })
  return xmlAnswer(renderBucketEncryption(e))
}

export async function handlePutBucketEncryption(ctx: BucketCtx): Promise<ApiResponse> {
  const config = parseBucketEncryption(await readSettingXml(ctx, MAX_BODY))
  // A default this node cannot apply would refuse every later write: refused now instead.
  writableKeyring(ctx.settings.sseKeyring)
  await setBucketSetting(ctx, 'encryption', config)
  return { status: 200 }
}

export async function handleDeleteBucketEncryption(ctx: BucketCtx): Promise<ApiResponse> {
  await setBucketSetting(ctx, 'encryption', null)
  return { status: 204 }
}
