import assert from 'node:assert/strict'
import { createHash, createHmac } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { PassThrough, Readable, type Transform, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { describe, test } from 'node:test'
import { ApiError } from '../../../../lib/api/common/errors.ts'
import {
  type AwsChunkedMode,
  awsChunkedDecoder,
  checksumCheck,
  pipeBody,
  requestBodyStages,
  sha256Check,
} from '../../../../lib/api/common/signature/body.ts'
import { Crc32c } from '../../../../lib/api/common/signature/crc.ts'
import { type Authenticated, signingKey, verifyRequest } from '../../../../lib/api/common/signature/sigv4.ts'

const AK = 'AKIAIOSFODNN7EXAMPLE'
const SK = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
const sha256hex = (d: string | Uint8Array) => createHash('sha256').update(d).digest('hex')

function testAuth(contentSha256: string): Authenticated {
  return {
    accessKeyId: AK,
    contentSha256,
    signingKey: signingKey(SK, '20250601', 'garage', 's3'),
    scope: '20250601/garage/s3/aws4_request',
    datetime: '20250601T120000Z',
    seedSignature: sha256hex('seed'),
    presigned: false,
  }
}

/** Reference aws-chunked encoder, written from the AWS documentation, independent of lib/. */
function encodeChunked(
  chunks: Buffer[],
  mode: AwsChunkedMode,
  auth: Authenticated,
  trailers: Record<string, string> = {},
): { body: Buffer; signatures: string[] } {
  const signed = mode !== 'unsigned-trailer'
  const hmac = (s: string) => createHmac('sha256', auth.signingKey).update(s).digest('hex')
  let prev = auth.seedSignature
  const signatures: string[] = []
  const parts: Buffer[] = []
  for (const data of [...chunks, Buffer.alloc(0)]) {
    if (signed) {
      prev = hmac(['AWS4-HMAC-SHA256-PAYLOAD', auth.datetime, auth.scope, prev, EMPTY, sha256hex(data)].join('\n'))
      signatures.push(prev)
      parts.push(Buffer.from(`${data.length.toString(16)};chunk-signature=${prev}\r\n`))
    } else {
      parts.push(Buffer.from(`${data.length.toString(16)}\r\n`))
    }
    if (data.length > 0) parts.push(data, Buffer.from('\r\n'))
  }
  if (mode !== 'signed') {
    let canonical = ''
    for (const [k, v] of Object.entries(trailers)) {
      parts.push(Buffer.from(`${k}:${v}\r\n`))
      canonical += `${k}:${v}\n`
    }
    if (signed) {
      const sig = hmac(['AWS4-HMAC-SHA256-TRAILER', auth.datetime, auth.scope, prev, sha256hex(canonical)].join('\n'))
      signatures.push(sig)
      parts.push(Buffer.from(`x-amz-trailer-signature:${sig}\r\n`))
    }
  }
  parts.push(Buffer.from('\r\n'))
  return { body: Buffer.concat(parts), signatures }
}

async function run(pieces: Buffer[], stages: Transform[]): Promise<Buffer> {
  const out: Buffer[] = []
  await pipeline(
    Readable.from(pieces),
    ...(stages as [Transform, ...Transform[]]),
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        out.push(chunk)
        cb()
      },
    }),
  )
  return Buffer.concat(out)
}

function isApiError(code: string, message?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ApiError, `expected ApiError, got ${String(err)}`)
    assert.equal(err.code, code)
    if (message !== undefined) assert.match(err.message, message)
    return true
  }
}

function crc32cB64(data: Buffer): string {
  const c = new Crc32c()
  c.update(data)
  return c.digest().toString('base64')
}

describe('aws-chunked: the AWS documented example (sigv4-streaming)', () => {
  const headers: IncomingHttpHeaders = {
    host: 's3.amazonaws.com',
    'x-amz-date': '20130524T000000Z',
    'x-amz-storage-class': 'REDUCED_REDUNDANCY',
    'content-encoding': 'aws-chunked',
    'content-length': '66824',
    'x-amz-decoded-content-length': '66560',
    'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
    authorization:
      `AWS4-HMAC-SHA256 Credential=${AK}/20130524/us-east-1/s3/aws4_request,` +
      'SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,' +
      'Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9',
  }
  const auth = verifyRequest(
    { method: 'PUT', rawPath: '/examplebucket/chunkObject.txt', rawQuery: '', headers },
    { region: 'us-east-1', service: 's3', now: Date.UTC(2013, 4, 24), lookupSecret: () => SK },
  ) as Authenticated
  const data = Buffer.alloc(66560, 'a')

  test('the seed signature verifies and each chunk signature is reproduced', () => {
    assert.equal(auth.seedSignature, '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9')
    assert.equal(auth.contentSha256, 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD')
    const { body, signatures } = encodeChunked([data.subarray(0, 65536), data.subarray(65536)], 'signed', auth)
    assert.deepEqual(signatures, [
      'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648',
      '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497',
      'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9',
    ])
    assert.equal(body.length, 66824) // the documented Content-Length
  })

  test('decodes the example body, through requestBodyStages too', async () => {
    const { body } = encodeChunked([data.subarray(0, 65536), data.subarray(65536)], 'signed', auth)
    const pieces: Buffer[] = []
    for (let i = 0; i < body.length; i += 1000) pieces.push(body.subarray(i, i + 1000))
    assert.deepEqual(await run(pieces, [awsChunkedDecoder({ mode: 'signed', auth })]), data)
    const stages = requestBodyStages(headers, auth, { computeMd5: true })
    assert.equal(stages.contentEncoding, undefined)
    assert.deepEqual(await run(pieces, stages.stages), data)
    const result = await stages.result
    assert.deepEqual(result.md5, createHash('md5').update(data).digest())
  })
})

describe('aws-chunked decoding', () => {
  const parts = [Buffer.from('Hello, '), Buffer.from('aws-chunked'), Buffer.from(' world!\r\n')]
  const whole = Buffer.concat(parts)

  for (const mode of ['signed', 'signed-trailer', 'unsigned-trailer'] as const) {
    test(`${mode}: split at every byte boundary, and fed one byte at a time`, async () => {
      const auth = testAuth('x')
      const trailers: Record<string, string> = mode === 'signed' ? {} : { 'x-amz-checksum-crc32c': crc32cB64(whole) }
      const { body } = encodeChunked(parts, mode, auth, trailers)
      const trailerNames = Object.keys(trailers)
      for (let i = 0; i <= body.length; i++) {
        const dec = awsChunkedDecoder({ mode, auth, trailerNames })
        const out = await run([body.subarray(0, i), body.subarray(i)], [dec])
        assert.deepEqual(out, whole, `split at ${i}`)
        assert.deepEqual(await dec.trailers, trailers)
      }
      const bytes = [...body].map((b) => Buffer.from([b]))
      const dec = awsChunkedDecoder({ mode, auth, trailerNames })
      assert.deepEqual(await run(bytes, [dec]), whole)
    })
  }

  test('a flipped byte in a chunk signature or in the data is SignatureDoesNotMatch', async () => {
    const auth = testAuth('x')
    const { body, signatures } = encodeChunked(parts, 'signed', auth)
    for (const sig of signatures) {
      const at = body.indexOf(sig) + 10
      const bad = Buffer.from(body)
      bad[at] = bad[at] === 0x30 ? 0x31 : 0x30
      await assert.rejects(run([bad], [awsChunkedDecoder({ mode: 'signed', auth })]), isApiError('SignatureDoesNotMatch'))
    }
    const bad = Buffer.from(body)
    const at = body.indexOf('aws-chunked')
    bad[at] = 0x41
    await assert.rejects(run([bad], [awsChunkedDecoder({ mode: 'signed', auth })]), isApiError('SignatureDoesNotMatch'))
    // the wrong seed
    await assert.rejects(
      run([body], [awsChunkedDecoder({ mode: 'signed', auth: { ...auth, seedSignature: sha256hex('other') } })]),
      isApiError('SignatureDoesNotMatch'),
    )
  })

  test('a wrong or missing trailer signature is SignatureDoesNotMatch', async () => {
    const auth = testAuth('x')
    const trailers = { 'x-amz-checksum-crc32c': crc32cB64(whole) }
    const { body } = encodeChunked(parts, 'signed-trailer', auth, trailers)
    const tampered = Buffer.from(body.toString('latin1').replace(trailers['x-amz-checksum-crc32c'], 'AAAAAA=='), 'latin1')
    await assert.rejects(
      run([tampered], [awsChunkedDecoder({ mode: 'signed-trailer', auth })]),
      isApiError('SignatureDoesNotMatch', /trailer/),
    )
    const noSig = Buffer.from(body.toString('latin1').replace(/x-amz-trailer-signature:[0-9a-f]+\r\n/, ''), 'latin1')
    await assert.rejects(run([noSig], [awsChunkedDecoder({ mode: 'signed-trailer', auth })]), isApiError('SignatureDoesNotMatch'))
  })

  test('every truncation is IncompleteBody (only the final CRLF may be missing)', async () => {
    const auth = testAuth('x')
    for (const mode of ['signed', 'signed-trailer', 'unsigned-trailer'] as const) {
      const trailers: Record<string, string> = mode === 'signed' ? {} : { 'x-amz-checksum-crc32c': crc32cB64(whole) }
      const { body } = encodeChunked(parts, mode, auth, trailers)
      for (let len = 0; len < body.length - 2; len++) {
        await assert.rejects(
          run([body.subarray(0, len)], [awsChunkedDecoder({ mode, auth, trailerNames: Object.keys(trailers) })]),
          isApiError('IncompleteBody'),
          `${mode} truncated to ${len}`,
        )
      }
      assert.deepEqual(await run([body.subarray(0, body.length - 2)], [awsChunkedDecoder({ mode, auth })]), whole)
    }
  })

  test('malformed framing is InvalidRequest', async () => {
    const auth = testAuth('x')
    const dec = (mode: AwsChunkedMode = 'signed') => [awsChunkedDecoder({ mode, auth })]
    await assert.rejects(run([Buffer.from('zz;chunk-signature=00\r\n')], dec()), isApiError('InvalidRequest', /chunk size/))
    await assert.rejects(run([Buffer.from('5\r\nhello\r\n0\r\n\r\n')], dec()), isApiError('InvalidRequest', /chunk-signature/))
    await assert.rejects(
      run([Buffer.from('3\r\nhello\r\n0\r\n\r\n')], dec('unsigned-trailer')),
      isApiError('InvalidRequest', /longer/),
    )
    await assert.rejects(run([Buffer.alloc(5000, 0x31)], dec()), isApiError('InvalidRequest', /too long/))
    // unsigned chunks may carry extensions, which are ignored
    assert.deepEqual(
      await run([Buffer.from('5;foo=bar\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n')], dec('unsigned-trailer')),
      Buffer.from('hello'),
    )
  })

  test('an announced trailer that is missing is InvalidRequest', async () => {
    const body = Buffer.from('5\r\nhello\r\n0\r\n\r\n')
    await assert.rejects(
      run([body], [awsChunkedDecoder({ mode: 'unsigned-trailer', trailerNames: ['x-amz-checksum-crc32'] })]),
      isApiError('InvalidRequest', /x-amz-checksum-crc32/),
    )
  })

  test('x-amz-decoded-content-length must match', async () => {
    const body = Buffer.from('5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n')
    const dec = (n: number) => [awsChunkedDecoder({ mode: 'unsigned-trailer', decodedContentLength: n })]
    assert.deepEqual(await run([body], dec(5)), Buffer.from('hello'))
    await assert.rejects(run([body], dec(6)), isApiError('IncompleteBody'))
    await assert.rejects(run([body], dec(4)), isApiError('InvalidRequest'))
  })

  test('a large chunk is passed downstream before its end', async () => {
    const auth = testAuth('x')
    const big = Buffer.alloc(1 << 20, 7)
    const { body } = encodeChunked([big], 'signed', auth)
    const dec = awsChunkedDecoder({ mode: 'signed', auth })
    let received = 0
    dec.on('data', (d: Buffer) => {
      received += d.length
    })
    const ended = new Promise((resolve, reject) => {
      dec.on('end', resolve)
      dec.on('error', reject)
    })
    dec.write(body.subarray(0, 300_000))
    await new Promise((r) => setImmediate(r))
    assert.ok(received > 200_000, `received ${received} bytes before the chunk end`)
    dec.end(body.subarray(300_000))
    await ended
    assert.equal(received, big.length)
  })
})

describe('body checks', () => {
  test('sha256Check passes data through and fails on mismatch', async () => {
    const data = Buffer.from('some body')
    assert.deepEqual(await run([data], [sha256Check(sha256hex(data).toUpperCase())]), data)
    await assert.rejects(run([data], [sha256Check(sha256hex('other'))]), isApiError('XAmzContentSHA256Mismatch'))
  })

  test('checksumCheck: Content-MD5 and x-amz-checksum-* right and wrong', async () => {
    const data = Buffer.from('The quick brown fox')
    const md5 = createHash('md5').update(data).digest('base64')
    const sha = createHash('sha256').update(data).digest('base64')
    const ok = checksumCheck({ md5, expected: { SHA256: sha, CRC32C: crc32cB64(data) }, extraAlgorithms: ['CRC64NVME'] })
    assert.deepEqual(await run([data], [ok]), data)
    const r = await ok.result
    assert.equal(r.md5?.toString('base64'), md5)
    assert.equal(r.checksums.SHA256, sha)
    assert.equal(r.checksums.CRC32C, crc32cB64(data))
    assert.equal(typeof r.checksums.CRC64NVME, 'string')
    await assert.rejects(
      run([data], [checksumCheck({ md5: createHash('md5').update('x').digest('base64') })]),
      isApiError('BadDigest', /Content-MD5/),
    )
    await assert.rejects(run([data], [checksumCheck({ expected: { CRC32C: 'AAAAAA==' } })]), isApiError('BadDigest', /CRC32C/))
    const failing = checksumCheck({ expected: { SHA1: createHash('sha1').update('x').digest('base64') } })
    await assert.rejects(run([data], [failing]), isApiError('BadDigest'))
    await assert.rejects(failing.result, isApiError('BadDigest'))
  })

  test('requestBodyStages: x-amz-content-sha256 hash and header checksums', async () => {
    const data = Buffer.from('payload')
    const headers: IncomingHttpHeaders = {
      'content-length': String(data.length),
      'x-amz-content-sha256': sha256hex(data),
      'x-amz-checksum-crc32c': crc32cB64(data),
    }
    const good = requestBodyStages(headers, testAuth(sha256hex(data)))
    assert.deepEqual(await run([data], good.stages), data)
    assert.equal((await good.result).checksums.CRC32C, crc32cB64(data))
    const bad = requestBodyStages(headers, testAuth(sha256hex('other')))
    await assert.rejects(run([data], bad.stages), isApiError('XAmzContentSHA256Mismatch'))
  })

  test('requestBodyStages checks the checksums its caller parsed, without parsing the headers again', async () => {
    const data = Buffer.from('payload')
    const headers: IncomingHttpHeaders = {
      'content-length': String(data.length),
      'x-amz-content-sha256': sha256hex(data),
      'x-amz-checksum-crc32c': 'AAAAAA==',
    }
    // The caller dropped the header's value (CompleteMultipartUpload does): nothing is checked.
    const parsed = requestBodyStages(headers, testAuth(sha256hex(data)), { checksums: { expected: {} } })
    assert.deepEqual(await run([data], parsed.stages), data)
    const given = requestBodyStages({ 'transfer-encoding': 'chunked' }, testAuth(sha256hex(data)), {
      checksums: { expected: { CRC32C: crc32cB64(data) } },
    })
    assert.deepEqual(await run([data], given.stages), data)
    assert.equal((await given.result).checksums.CRC32C, crc32cB64(data))
  })

  test('requestBodyStages: a request without a body gets no stage, and the checks of an empty body', async () => {
    const md5Empty = createHash('md5').digest()
    for (const length of [{}, { 'content-length': '0' }]) {
      const none = requestBodyStages({ ...length, 'x-amz-content-sha256': EMPTY }, testAuth(EMPTY), { computeMd5: true })
      assert.equal(none.stages.length, 0)
      assert.deepEqual((await none.result).md5, md5Empty)
      // The same checks as the stream would make at its end: a hash that is not the empty one fails.
      const wrongSha = requestBodyStages({ ...length }, testAuth(sha256hex('x')))
      assert.equal(wrongSha.stages.length, 0)
      await assert.rejects(wrongSha.result, isApiError('XAmzContentSHA256Mismatch'))
      const wrongMd5 = requestBodyStages({ ...length, 'content-md5': createHash('md5').update('x').digest('base64') }, undefined)
      await assert.rejects(wrongMd5.result, isApiError('BadDigest'))
    }
    // A length or a chunked transfer: a body to stream through the checks.
    assert.equal(requestBodyStages({ 'content-length': '1' }, undefined).stages.length, 1)
    assert.equal(requestBodyStages({ 'transfer-encoding': 'chunked' }, undefined).stages.length, 1)
  })

  test('requestBodyStages: trailer checksum right and wrong (unsigned trailer, as the JS SDK sends)', async () => {
    const data = Buffer.from('x'.repeat(100_000))
    const headers: IncomingHttpHeaders = {
      'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
      'x-amz-trailer': 'x-amz-checksum-crc32c',
      'content-encoding': 'aws-chunked,gzip',
      'x-amz-decoded-content-length': String(data.length),
    }
    const auth = testAuth('STREAMING-UNSIGNED-PAYLOAD-TRAILER')
    const good = encodeChunked([data.subarray(0, 65536), data.subarray(65536)], 'unsigned-trailer', auth, {
      'x-amz-checksum-crc32c': crc32cB64(data),
    }).body
    const s = requestBodyStages(headers, auth)
    assert.equal(s.contentEncoding, 'gzip')
    assert.deepEqual(await run([good], s.stages), data)
    const r = await s.result
    assert.equal(r.checksums.CRC32C, crc32cB64(data))
    assert.deepEqual(r.trailers, { 'x-amz-checksum-crc32c': crc32cB64(data) })

    const wrong = encodeChunked([data], 'unsigned-trailer', auth, {
      'x-amz-checksum-crc32c': crc32cB64(Buffer.from('nope')),
    }).body
    await assert.rejects(run([wrong], requestBodyStages(headers, auth).stages), isApiError('BadDigest', /CRC32C/))
    const malformed = encodeChunked([data], 'unsigned-trailer', auth, { 'x-amz-checksum-crc32c': 'abc' }).body
    await assert.rejects(run([malformed], requestBodyStages(headers, auth).stages), isApiError('InvalidArgument'))
  })

  test('requestBodyStages: signed trailer checksum right and wrong', async () => {
    const data = Buffer.from('signed trailer body')
    const auth = testAuth('STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER')
    const headers: IncomingHttpHeaders = { 'x-amz-content-sha256': auth.contentSha256, 'x-amz-trailer': 'x-amz-checksum-crc32c' }
    const good = encodeChunked([data], 'signed-trailer', auth, { 'x-amz-checksum-crc32c': crc32cB64(data) }).body
    const s = requestBodyStages(headers, auth)
    assert.deepEqual(await run([good], s.stages), data)
    assert.equal((await s.result).checksums.CRC32C, crc32cB64(data))
    // correctly signed, but the checksum is not the data's
    const wrong = encodeChunked([data], 'signed-trailer', auth, { 'x-amz-checksum-crc32c': crc32cB64(Buffer.from('x')) }).body
    await assert.rejects(run([wrong], requestBodyStages(headers, auth).stages), isApiError('BadDigest'))
  })

  test('requestBodyStages rejects unusable combinations up front', () => {
    assert.throws(
      () =>
        requestBodyStages(
          { 'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER' },
          testAuth('STREAMING-UNSIGNED-PAYLOAD-TRAILER'),
        ),
      isApiError('InvalidRequest', /x-amz-trailer/),
    )
    assert.throws(
      () => requestBodyStages({ 'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD' }, undefined),
      isApiError('InvalidRequest'),
    )
    assert.throws(
      () => requestBodyStages({ 'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD' }, undefined),
      isApiError('InvalidRequest'),
    )
    assert.throws(() => requestBodyStages({ 'content-md5': 'nope' }, undefined), isApiError('InvalidDigest'))
  })
})

describe('pipeBody', () => {
  test('passes the body through every stage, with no stage the body itself', async () => {
    const src = Readable.from([Buffer.from('ab'), Buffer.from('cd')])
    assert.equal(
      pipeBody(src, [], () => assert.fail('no error')),
      src,
    )
    const check = checksumCheck({ computeMd5: true })
    const out = pipeBody(Readable.from([Buffer.from('ab'), Buffer.from('cd')]), [new PassThrough(), check], () =>
      assert.fail('no error'),
    )
    const got: Buffer[] = []
    for await (const c of out) got.push(c as Buffer)
    assert.equal(Buffer.concat(got).toString(), 'abcd')
    assert.deepEqual((await check.result).md5, createHash('md5').update('abcd').digest())
  })

  test('a failing check destroys the body and is reported once; a body cut short fails the last stage', async () => {
    const errors: Error[] = []
    const src = new PassThrough()
    const out = pipeBody(src, [checksumCheck({ md5: createHash('md5').update('x').digest('base64') })], (e) => errors.push(e))
    src.end('y')
    await assert.rejects(
      (async () => {
        for await (const _ of out);
      })(),
      isApiError('BadDigest'),
    )
    assert.equal(errors.length, 1)
    assert.ok(errors[0] instanceof ApiError)

    const cut = new PassThrough()
    const reported: Error[] = []
    const last = pipeBody(cut, [new PassThrough()], (e) => reported.push(e))
    cut.write('partial')
    cut.destroy()
    await assert.rejects(
      (async () => {
        for await (const _ of last);
      })(),
      { code: 'ERR_STREAM_PREMATURE_CLOSE' },
    )
    assert.equal(reported.length, 1)

    // The consumer giving up destroys the body too.
    const body = new PassThrough()
    const end = pipeBody(body, [new PassThrough()], () => {})
    end.destroy()
    await new Promise((r) => setImmediate(r))
    assert.equal(body.destroyed, true)
  })
})
