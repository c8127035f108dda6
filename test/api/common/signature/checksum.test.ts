import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import { Crc32 as SdkCrc32, Crc32cJs, Crc64NvmeJs } from '@aws-sdk/checksums/crc'
import { ApiError } from '../../../../lib/api/common/errors.ts'
import {
  CHECKSUM_ALGORITHMS,
  type ChecksumAlgorithm,
  Checksummer,
  checksumHeaderName,
  parseChecksumHeaders,
} from '../../../../lib/api/common/signature/checksum.ts'
import { type Crc, Crc32, Crc32c, Crc64Nvme } from '../../../../lib/api/common/signature/crc.ts'

const CHECK = Buffer.from('123456789')

function digestOf(C: new () => Crc, ...pieces: Uint8Array[]): string {
  const c = new C()
  for (const p of pieces) c.update(p)
  return c.digest().toString('hex')
}

interface SdkChecksum {
  update(d: Uint8Array): void
  digest(): Promise<Uint8Array>
}

async function sdkDigest(s: SdkChecksum, data: Uint8Array): Promise<string> {
  s.update(data)
  return Buffer.from(await s.digest()).toString('hex')
}

function isApiError(code: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ApiError, `expected ApiError, got ${String(err)}`)
    assert.equal(err.code, code)
    return true
  }
}

describe('CRCs', () => {
  test('catalogue check values of "123456789"', () => {
    assert.equal(digestOf(Crc32, CHECK), 'cbf43926')
    assert.equal(digestOf(Crc32c, CHECK), 'e3069283')
    assert.equal(digestOf(Crc64Nvme, CHECK), 'ae8b14860a799888')
  })

  test('empty input', () => {
    assert.equal(digestOf(Crc32), '00000000')
    assert.equal(digestOf(Crc32c), '00000000')
    assert.equal(digestOf(Crc64Nvme), '0000000000000000')
  })

  test('RFC 3720 CRC32C vectors (32 bytes of zeros, of ones, ascending)', () => {
    assert.equal(digestOf(Crc32c, Buffer.alloc(32, 0)), '8a9136aa')
    assert.equal(digestOf(Crc32c, Buffer.alloc(32, 0xff)), '62a8ab43')
    assert.equal(digestOf(Crc32c, Buffer.from(Array.from({ length: 32 }, (_, i) => i))), '46dd794e')
  })

  test('match the AWS SDK implementations on random data of every length mod 8, split anywhere', async () => {
    for (const len of [1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4099, 65537]) {
      const data = randomBytes(len)
      const cut = Math.floor(len / 3)
      const pieces = [data.subarray(0, cut), data.subarray(cut, cut + 5), data.subarray(cut + 5)]
      assert.equal(digestOf(Crc32, ...pieces), await sdkDigest(new SdkCrc32(), data), `crc32 len ${len}`)
      assert.equal(digestOf(Crc32c, ...pieces), await sdkDigest(new Crc32cJs(), data), `crc32c len ${len}`)
      assert.equal(digestOf(Crc64Nvme, ...pieces), await sdkDigest(new Crc64NvmeJs(), data), `crc64nvme len ${len}`)
    }
  })
})

describe('Checksummer', () => {
  test('computes any subset in one pass, as base64 of the big-endian digest', () => {
    const data = Buffer.from('The quick brown fox jumps over the lazy dog')
    const c = new Checksummer([...CHECKSUM_ALGORITHMS, 'MD5'])
    c.update(data.subarray(0, 10))
    c.update(data.subarray(10))
    const d = c.digest()
    assert.equal(d.MD5?.toString('hex'), createHash('md5').update(data).digest('hex'))
    assert.equal(d.SHA1?.toString('base64'), createHash('sha1').update(data).digest('base64'))
    assert.equal(d.SHA256?.toString('base64'), createHash('sha256').update(data).digest('base64'))
    assert.equal(d.CRC32?.toString('hex'), '414fa339')
    assert.equal(d.CRC32C?.toString('hex'), '22620404')
    assert.equal(d.CRC64NVME?.length, 8)
    assert.equal(c.digest(), d) // idempotent
    assert.throws(() => c.update(data))
    assert.deepEqual(Object.keys(new Checksummer(['CRC32C']).digest()), ['CRC32C'])
  })

  test('header names', () => {
    const names = CHECKSUM_ALGORITHMS.map((a: ChecksumAlgorithm) => checksumHeaderName(a))
    assert.deepEqual(names, [
      'x-amz-checksum-crc32',
      'x-amz-checksum-crc32c',
      'x-amz-checksum-crc64nvme',
      'x-amz-checksum-sha1',
      'x-amz-checksum-sha256',
    ])
  })
})

describe('parseChecksumHeaders', () => {
  test('reads Content-MD5, one x-amz-checksum-*, the trailer algorithm and the requested algorithm', () => {
    assert.deepEqual(parseChecksumHeaders({}), { expected: {} })
    const md5 = createHash('md5').update('x').digest('base64')
    assert.deepEqual(parseChecksumHeaders({ 'content-md5': md5, 'x-amz-checksum-crc32c': 'yZRlqg==' }), {
      expected: { CRC32C: 'yZRlqg==' },
      md5,
    })
    assert.deepEqual(
      parseChecksumHeaders({ 'x-amz-trailer': 'x-amz-checksum-crc64nvme', 'x-amz-sdk-checksum-algorithm': 'crc64nvme' }),
      {
        expected: {},
        trailerAlgorithm: 'CRC64NVME',
        requestedAlgorithm: 'CRC64NVME',
      },
    )
    const sha = createHash('sha256').update('x').digest('base64')
    assert.deepEqual(parseChecksumHeaders({ 'x-amz-checksum-sha256': sha }).expected, { SHA256: sha })
  })

  test('validates base64 form and digest length', () => {
    assert.throws(() => parseChecksumHeaders({ 'content-md5': 'abc' }), isApiError('InvalidDigest'))
    assert.throws(() => parseChecksumHeaders({ 'content-md5': Buffer.alloc(15).toString('base64') }), isApiError('InvalidDigest'))
    assert.throws(() => parseChecksumHeaders({ 'x-amz-checksum-crc32': 'AAAAAAAA' }), isApiError('InvalidArgument'))
    assert.throws(() => parseChecksumHeaders({ 'x-amz-checksum-crc64nvme': 'AAAAAA==' }), isApiError('InvalidArgument'))
    assert.throws(() => parseChecksumHeaders({ 'x-amz-checksum-sha1': 'not base64!' }), isApiError('InvalidArgument'))
    assert.throws(() => parseChecksumHeaders({ 'x-amz-trailer': 'x-amz-checksum-md4' }), isApiError('InvalidArgument'))
    assert.throws(() => parseChecksumHeaders({ 'x-amz-checksum-algorithm': 'XXH3' }), isApiError('InvalidArgument'))
  })

  test('several checksums at once are refused', () => {
    assert.throws(
      () => parseChecksumHeaders({ 'x-amz-checksum-crc32': 'AAAAAA==', 'x-amz-checksum-crc32c': 'AAAAAA==' }),
      isApiError('InvalidRequest'),
    )
    assert.throws(
      () => parseChecksumHeaders({ 'x-amz-checksum-crc32': 'AAAAAA==', 'x-amz-trailer': 'x-amz-checksum-crc32c' }),
      isApiError('InvalidRequest'),
    )
  })
})
