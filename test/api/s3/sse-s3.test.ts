/**
 * SSE-S3 pieces without a server: the master keyring (wrap, unwrap, the errors of a node with a
 * missing or different key), master key parsing, the keyring a node builds at start, the bucket
 * encryption XML, and the migration of GTbkt1 bucket rows.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { encode } from '@msgpack/msgpack'
import { ApiError } from '../../../lib/api/common/errors.ts'
import { ObjectCipher } from '../../../lib/api/s3/encryption.ts'
import {
  loadMasterKeyring,
  MasterKeyring,
  openObjectCipher,
  parseBucketEncryption,
  parseSseHeader,
  renderBucketEncryption,
  writeEncryption,
} from '../../../lib/api/s3/sse-s3.ts'
import { parseXml } from '../../../lib/api/s3/xml.ts'
import { bucketCodec, newBucketParams } from '../../../lib/model/bucket-table.ts'
import type { SseS3Encryption } from '../../../lib/model/s3/object-table.ts'
import { parseSseMasterKeys } from '../../../lib/util/config.ts'
import { InvalidConfigError } from '../../../lib/util/errors.ts'
import { silentLogger } from '../../../lib/util/logger.ts'

const bucket = randomBytes(32)
const version = randomBytes(32)
const k1 = { id: 'k1', key: randomBytes(32) }
const k2 = { id: 'k2', key: randomBytes(32) }

const apiError = (code: string, status: number, message?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof ApiError, String(err))
  assert.equal(err.code, code)
  assert.equal(err.status, status)
  if (message !== undefined) assert.match(err.message, message)
  return true
}

function sealed(ring: MasterKeyring): { enc: SseS3Encryption; data: Buffer; plain: Buffer } {
  const dk = ring.newDataKey(bucket, version)
  const cipher = new ObjectCipher(dk, bucket, version, 'obj')
  const plain = randomBytes(10_000)
  return { enc: cipher.sealMeta([]) as SseS3Encryption, data: cipher.encryptBlock(plain), plain }
}

test('a data key wrapped by the current key opens with any keyring holding that key id, rotated or not', () => {
  const { enc, data, plain } = sealed(new MasterKeyring([k1], 'k1'))
  assert.equal(enc.keyId, 'k1')
  assert.equal(enc.wrappedKey.length, 12 + 32 + 16)
  // After rotation: k2 writes, k1 still opens its objects.
  const rotated = new MasterKeyring([k2, k1], 'k2')
  const cipher = openObjectCipher({}, enc, { bucketId: bucket, versionId: version, key: 'obj' }, rotated)
  assert.ok(cipher?.decryptBlock(data, plain.length).equals(plain))
  assert.equal(rotated.newDataKey(bucket, version).keyId, 'k2')
  assert.deepEqual(rotated.ids(), ['k2', 'k1'])
})

test('a node without the key id, or with another key under it, answers a clear 500, never garbage', () => {
  const { enc } = sealed(new MasterKeyring([k1], 'k1'))
  const at = { bucketId: bucket, versionId: version, key: 'obj' }
  assert.throws(
    () => openObjectCipher({}, enc, at, new MasterKeyring([k2], 'k2')),
    apiError('InternalError', 500, /'k1'.*does not have/),
  )
  assert.throws(() => openObjectCipher({}, enc, at, undefined), apiError('InternalError', 500, /'k1'/))
  const impostor = new MasterKeyring([{ id: 'k1', key: randomBytes(32) }], 'k1')
  assert.throws(() => openObjectCipher({}, enc, at, impostor), apiError('InternalError', 500, /not the one/))
  // The wrapped key is bound to its version: moved to another one, it does not open.
  assert.throws(
    () => openObjectCipher({}, enc, { ...at, versionId: randomBytes(32) }, new MasterKeyring([k1], 'k1')),
    apiError('InternalError', 500),
  )
})

test('a keyring without a current key refuses writes (501) but reads', () => {
  const { enc } = sealed(new MasterKeyring([k1], 'k1'))
  const readOnly = new MasterKeyring([k1], undefined, 'no key for you')
  assert.throws(() => readOnly.newDataKey(bucket, version), apiError('NotImplemented', 501, /no key for you/))
  assert.ok(openObjectCipher({}, enc, { bucketId: bucket, versionId: version, key: 'obj' }, readOnly))
  assert.throws(
    () => writeEncryption({ 'x-amz-server-side-encryption': 'AES256' }, { bucketDefault: null, keyring: readOnly }),
    apiError('NotImplemented', 501),
  )
  // Plaintext writes need no key.
  assert.equal(writeEncryption({}, { bucketDefault: null, keyring: undefined }), undefined)
})

test('x-amz-server-side-encryption values', () => {
  assert.equal(parseSseHeader({}), undefined)
  assert.equal(parseSseHeader({ 'x-amz-server-side-encryption': 'AES256' }), 'AES256')
  assert.throws(() => parseSseHeader({ 'x-amz-server-side-encryption': 'aws:kms' }), apiError('NotImplemented', 501))
  assert.throws(() => parseSseHeader({ 'x-amz-server-side-encryption': 'aws:kms:dsse' }), apiError('NotImplemented', 501))
  assert.throws(() => parseSseHeader({ 'x-amz-server-side-encryption': 'aes256' }), apiError('InvalidArgument', 400))
  assert.throws(
    () => parseSseHeader({ 'x-amz-server-side-encryption': 'AES256', 'x-amz-server-side-encryption-aws-kms-key-id': 'x' }),
    apiError('InvalidArgument', 400),
  )
})

test('master keys: id:hex entries, first is current; bad entries name the setting', () => {
  const hex1 = randomBytes(32).toString('hex')
  const hex2 = randomBytes(32).toString('hex').toUpperCase()
  assert.deepEqual(parseSseMasterKeys(`# comment\nnew:${hex1}\n\nold:${hex2} # rotated\n`, 'x'), [
    { id: 'new', key: hex1 },
    { id: 'old', key: hex2.toLowerCase() },
  ])
  assert.equal(parseSseMasterKeys(`a:${hex1},b:${hex1}`, 'x').length, 2)
  for (const bad of ['', 'nokey', `a:${hex1.slice(2)}`, `a b:${hex1}`, `a:${hex1}\na:${hex1}`, `:${hex1}`]) {
    assert.throws(
      () => parseSseMasterKeys(bad, 's3_api.sse_master_key'),
      (err: unknown) => {
        assert.ok(err instanceof InvalidConfigError)
        assert.match(err.message, /s3_api\.sse_master_key/)
        return true
      },
    )
  }
})

test('a node outside a cluster generates a master key once; a node in a cluster writes only with a configured one', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'garage-sse-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const single = await loadMasterKeyring({ configured: undefined, metadataDir: dir, inCluster: false, log: silentLogger })
  const file = join(dir, 'sse_master_key')
  assert.equal((await stat(file)).mode & 0o077, 0)
  const text = await readFile(file, 'utf8')
  assert.match(single.current ?? '', /^local-[0-9a-f]{8}$/)
  // The same key on the next start.
  const again = await loadMasterKeyring({ configured: undefined, metadataDir: dir, inCluster: false, log: silentLogger })
  assert.equal(again.current, single.current)
  assert.equal(await readFile(file, 'utf8'), text)
  const { enc } = sealed(single)
  // Joined a cluster without configured keys: writes refused, the generated key still reads.
  const clustered = await loadMasterKeyring({ configured: undefined, metadataDir: dir, inCluster: true, log: silentLogger })
  assert.equal(clustered.current, undefined)
  assert.throws(() => clustered.checkWritable(), apiError('NotImplemented', 501, /cluster/))
  assert.ok(openObjectCipher({}, enc, { bucketId: bucket, versionId: version, key: 'obj' }, clustered))
  // Configured keys: the first is current, the generated one stays readable.
  const configured = await loadMasterKeyring({
    configured: [{ id: 'c1', key: randomBytes(32).toString('hex') }],
    metadataDir: dir,
    inCluster: true,
    log: silentLogger,
  })
  assert.deepEqual(configured.ids(), ['c1', single.current])
  // No file is created in a cluster.
  const dir2 = await mkdtemp(join(tmpdir(), 'garage-sse-'))
  t.after(() => rm(dir2, { recursive: true, force: true }))
  await loadMasterKeyring({ configured: undefined, metadataDir: dir2, inCluster: true, log: silentLogger })
  await assert.rejects(stat(join(dir2, 'sse_master_key')), { code: 'ENOENT' })
})

test('ServerSideEncryptionConfiguration: AES256 accepted and rendered back; KMS, others and bad shapes refused', () => {
  const doc = (inner: string) =>
    parseXml(
      `<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${inner}</ServerSideEncryptionConfiguration>`,
    )
  const ok = parseBucketEncryption(
    doc(
      '<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>true</BucketKeyEnabled></Rule>',
    ),
  )
  assert.deepEqual(ok, { sseAlgorithm: 'AES256', bucketKeyEnabled: true })
  assert.deepEqual(parseBucketEncryption(parseXml(renderBucketEncryption(ok))), ok)
  const rule = (alg: string, extra = '') =>
    doc(
      `<Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>${alg}</SSEAlgorithm>${extra}</ApplyServerSideEncryptionByDefault></Rule>`,
    )
  assert.throws(() => parseBucketEncryption(rule('aws:kms')), apiError('NotImplemented', 501))
  assert.throws(() => parseBucketEncryption(rule('DES')), apiError('InvalidArgument', 400))
  assert.throws(
    () => parseBucketEncryption(rule('AES256', '<KMSMasterKeyID>k</KMSMasterKeyID>')),
    apiError('InvalidArgument', 400),
  )
  assert.throws(() => parseBucketEncryption(doc('')), apiError('MalformedXML', 400))
  assert.throws(() => parseBucketEncryption(doc('<Rule></Rule>')), apiError('MalformedXML', 400))
  assert.throws(() => parseBucketEncryption(doc('<Rule><X/></Rule>')), apiError('MalformedXML', 400))
})

test('GTbkt1 bucket rows decode with no default encryption; GTbkt2 round-trips it', () => {
  const { encryption: _, ...old } = newBucketParams(5)
  const id = new Uint8Array(randomBytes(32))
  const v1 = Buffer.concat([Buffer.from('GTbkt1'), encode({ id, state: { deleted: false, value: old } })])
  const decoded = bucketCodec.decode(v1)
  assert.ok(!decoded.state.deleted)
  assert.deepEqual(decoded.state.value.encryption, { ts: 0, v: null })
  const deleted = Buffer.concat([Buffer.from('GTbkt1'), encode({ id, state: { deleted: true } })])
  assert.deepEqual(bucketCodec.decode(deleted).state, { deleted: true })
  const withEnc = {
    id,
    state: {
      deleted: false as const,
      value: { ...newBucketParams(5), encryption: { ts: 9, v: { sseAlgorithm: 'AES256' as const, bucketKeyEnabled: false } } },
    },
  }
  assert.deepEqual(bucketCodec.decode(bucketCodec.encode(withEnc)), withEnc)
})
