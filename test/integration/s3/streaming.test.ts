/**
 * aws-chunked request bodies built by hand (the SDK never sends signed chunks): the seed signature
 * comes from the SigV4 header signature over x-amz-content-sha256 = STREAMING-*, then each chunk
 * (and the trailer) is signed in a chain, as AWS's "Transferring Payload in Multiple Chunks"
 * describes. Valid uploads are stored; a bad chunk signature, a truncated body, a wrong trailer
 * checksum or trailer signature store nothing and leave the previous version intact.
 */
import assert from 'node:assert/strict'
import { createHash, createHmac } from 'node:crypto'
import { describe, test } from 'node:test'
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import type { TestNode } from '../../../lib/testing.ts'
import {
  crc32Base64,
  getBytes,
  objectExists,
  randomBuffer,
  type SignedRequest,
  sendRequest,
  sendTruncated,
  signRequest,
  xmlField,
  useTestNode,
} from '../../helpers/s3.ts'

const SIGNED = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD'
const SIGNED_TRAILER = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER'
const UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER'
const EMPTY_SHA256 = createHash('sha256').digest('hex')
const KiB = 1024
const MiB = 1024 * KiB

let node: TestNode
let s3: S3Client

// The admin API is on so the metrics observer runs after every request: it once read the
// socket of a connection that a bad body had already destroyed, and the process died.
useTestNode({ admin: { api_bind_addr: '127.0.0.1:0', admin_token: 'streaming-test-token' } }, (n, c) => {
  node = n
  s3 = c
})

const hmac = (key: string | Buffer, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest()
const sha256Hex = (b: string | Uint8Array): string => createHash('sha256').update(b).digest('hex')

interface Trailer {
  name: string
  value: string
}

interface ChunkedOptions {
  mode: typeof SIGNED | typeof SIGNED_TRAILER | typeof UNSIGNED_TRAILER
  key: string
  data: Buffer
  /** Sizes of the data chunks, in order; the rest of the data goes in one last chunk. */
  chunkSizes: number[]
  trailer?: Trailer
  /** Tampering: flip one hex digit of the signature of chunk `index` (0-based; the final empty chunk counts). */
  corruptChunkSignature?: number
  /** Tampering: flip one hex digit of the trailer signature. */
  corruptTrailerSignature?: boolean
}

interface ChunkedRequest {
  request: SignedRequest
  /** The whole encoded body. */
  body: Buffer
}

function splitChunks(data: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = []
  let at = 0
  for (const size of sizes) {
    if (at >= data.length) break
    out.push(data.subarray(at, at + size))
    at += size
  }
  if (at < data.length) out.push(data.subarray(at))
  return out
}

const flipHex = (sig: string): string => `${sig[0] === '0' ? '1' : '0'}${sig.slice(1)}`

/** Builds an aws-chunked PUT: head signed with SigV4, chunks and trailer signed in chain. */
async function buildChunked(o: ChunkedOptions): Promise<ChunkedRequest> {
  const chunks = splitChunks(o.data, o.chunkSizes)
  chunks.push(Buffer.alloc(0))
  const signed = o.mode !== UNSIGNED_TRAILER
  // The encoded length does not depend on the signature values (always 64 hex digits).
  const sigExt = signed ? ';chunk-signature='.length + 64 : 0
  let encodedLength = 0
  for (const c of chunks) encodedLength += c.length.toString(16).length + sigExt + 2 + (c.length > 0 ? c.length + 2 : 0)
  let trailerText = ''
  if (o.trailer !== undefined) {
    trailerText = `${o.trailer.name}:${o.trailer.value}\r\n`
    encodedLength += trailerText.length
    if (signed) encodedLength += 'x-amz-trailer-signature:'.length + 64 + 2
  }
  encodedLength += 2 // the final empty line

  const headers: Record<string, string> = {
    'content-encoding': 'aws-chunked',
    'content-length': String(encodedLength),
    'x-amz-decoded-content-length': String(o.data.length),
  }
  if (o.trailer !== undefined) headers['x-amz-trailer'] = o.trailer.name
  const request = await signRequest(node, {
    method: 'PUT',
    path: `/${node.bucket}/${o.key}`,
    headers,
    payloadHash: o.mode,
  })

  const parts: Buffer[] = []
  let previous = ''
  let amzDate = ''
  let scope = ''
  let signingKey: Buffer = Buffer.alloc(0)
  if (signed) {
    const auth = request.headers.authorization ?? ''
    const seed = /Signature=([0-9a-f]{64})/.exec(auth)?.[1]
    const credential = /Credential=([^,]+)/.exec(auth)?.[1]
    assert.ok(seed !== undefined && credential !== undefined, `unexpected Authorization header: ${auth}`)
    previous = seed
    amzDate = request.headers['x-amz-date'] ?? ''
    scope = credential.split('/').slice(1).join('/')
    const [date, region, service] = scope.split('/') as [string, string, string]
    const secret = node.s3Config.credentials.secretAccessKey
    signingKey = hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request')
  }

  chunks.forEach((chunk, index) => {
    const size = chunk.length.toString(16)
    if (signed) {
      const toSign = `AWS4-HMAC-SHA256-PAYLOAD\n${amzDate}\n${scope}\n${previous}\n${EMPTY_SHA256}\n${sha256Hex(chunk)}`
      const sig = hmac(signingKey, toSign).toString('hex')
      previous = sig
      const sent = o.corruptChunkSignature === index ? flipHex(sig) : sig
      parts.push(Buffer.from(`${size};chunk-signature=${sent}\r\n`))
    } else {
      parts.push(Buffer.from(`${size}\r\n`))
    }
    if (chunk.length > 0) parts.push(chunk, Buffer.from('\r\n'))
  })
  if (o.trailer !== undefined) {
    parts.push(Buffer.from(trailerText))
    if (signed) {
      const canonical = `${o.trailer.name}:${o.trailer.value}\n`
      const toSign = `AWS4-HMAC-SHA256-TRAILER\n${amzDate}\n${scope}\n${previous}\n${sha256Hex(canonical)}`
      const sig = hmac(signingKey, toSign).toString('hex')
      parts.push(Buffer.from(`x-amz-trailer-signature:${o.corruptTrailerSignature === true ? flipHex(sig) : sig}\r\n`))
    }
  }
  parts.push(Buffer.from('\r\n'))
  const body = Buffer.concat(parts)
  assert.equal(body.length, encodedLength, 'encoded length computed up front')
  return { request: { ...request, body }, body }
}

/** Puts `v1` at `key` with the SDK, so each failure can be checked to keep it. */
async function putPrevious(key: string): Promise<Buffer> {
  const v1 = Buffer.from(`previous content of ${key}`)
  await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: key, Body: v1 }))
  return v1
}

// Chunk sizes not aligned to the 1 MiB block size, nor to each other.
const ODD_CHUNKS = [64 * KiB + 3, 1 * MiB + 17, 700 * KiB - 5, 1 * MiB + 1 * KiB]

describe('STREAMING-AWS4-HMAC-SHA256-PAYLOAD', () => {
  test('a multi-MiB body in several signed chunks is stored', async () => {
    const data = randomBuffer(3 * MiB + 12345)
    const { request } = await buildChunked({ mode: SIGNED, key: 'chunked/valid', data, chunkSizes: ODD_CHUNKS })
    const r = await sendRequest(request)
    assert.equal(r.status, 200, r.text)
    const got = await getBytes(s3, node.bucket, 'chunked/valid')
    assert.equal(got.length, data.length)
    assert.ok(got.equals(data), 'stored bytes equal the decoded body')
    assert.equal(r.headers.etag, `"${createHash('md5').update(data).digest('hex')}"`)
  })

  test('an empty body (only the final chunk) is stored', async () => {
    const { request } = await buildChunked({ mode: SIGNED, key: 'chunked/empty', data: Buffer.alloc(0), chunkSizes: [] })
    const r = await sendRequest(request)
    assert.equal(r.status, 200, r.text)
    assert.equal((await getBytes(s3, node.bucket, 'chunked/empty')).length, 0)
  })

  for (const [label, index] of [
    ['the first', 0],
    ['a middle', 2],
    ['the final empty', 4],
  ] as const) {
    test(`a flipped byte in ${label} chunk signature is SignatureDoesNotMatch and keeps the previous version`, async () => {
      const key = `chunked/bad-sig-${index}`
      const v1 = await putPrevious(key)
      const data = randomBuffer(3 * MiB + 999)
      const { request } = await buildChunked({ mode: SIGNED, key, data, chunkSizes: ODD_CHUNKS, corruptChunkSignature: index })
      const r = await sendRequest(request)
      assert.equal(r.status, 403, r.text)
      assert.equal(xmlField(r.text, 'Code'), 'SignatureDoesNotMatch')
      assert.ok((await getBytes(s3, node.bucket, key)).equals(v1), 'previous version intact')
    })
  }

  test('a flipped byte in a chunk signature of a new key stores nothing', async () => {
    const data = randomBuffer(2 * MiB)
    const { request } = await buildChunked({
      mode: SIGNED,
      key: 'chunked/bad-sig-new',
      data,
      chunkSizes: ODD_CHUNKS,
      corruptChunkSignature: 1,
    })
    const r = await sendRequest(request)
    assert.equal(xmlField(r.text, 'Code'), 'SignatureDoesNotMatch')
    assert.equal(await objectExists(s3, node.bucket, 'chunked/bad-sig-new'), false)
  })

  test('a body cut mid-chunk (socket ended) is IncompleteBody or a closed connection; nothing stored', async () => {
    const key = 'chunked/truncated'
    const v1 = await putPrevious(key)
    const data = randomBuffer(3 * MiB)
    const { request, body } = await buildChunked({ mode: SIGNED, key, data, chunkSizes: ODD_CHUNKS })
    // Cut inside the third chunk's data.
    const answer = await sendTruncated(request, body.subarray(0, 64 * KiB + 1 * MiB + 300 * KiB))
    assert.ok(answer === '' || /IncompleteBody/.test(answer), `unexpected answer: ${answer.slice(0, 300)}`)
    assert.ok((await getBytes(s3, node.bucket, key)).equals(v1), 'previous version intact')
  })

  test('a body cut between chunks is refused too', async () => {
    const key = 'chunked/truncated-boundary'
    const v1 = await putPrevious(key)
    const data = randomBuffer(2 * MiB)
    const { request, body } = await buildChunked({ mode: SIGNED, key, data, chunkSizes: [1 * MiB] })
    const firstChunkEnd = body.indexOf('\r\n', body.indexOf('\r\n') + 2 + 1 * MiB) + 2
    const answer = await sendTruncated(request, body.subarray(0, firstChunkEnd))
    assert.ok(answer === '' || /IncompleteBody/.test(answer), `unexpected answer: ${answer.slice(0, 300)}`)
    assert.ok((await getBytes(s3, node.bucket, key)).equals(v1), 'previous version intact')
  })
})

describe('STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER', () => {
  test('a correct x-amz-checksum-crc32 trailer with its signature is stored with the checksum', async () => {
    const data = randomBuffer(2 * MiB + 77)
    const crc = crc32Base64(data)
    const { request } = await buildChunked({
      mode: SIGNED_TRAILER,
      key: 'trailer/valid',
      data,
      chunkSizes: ODD_CHUNKS,
      trailer: { name: 'x-amz-checksum-crc32', value: crc },
    })
    const r = await sendRequest(request)
    assert.equal(r.status, 200, r.text)
    assert.equal(r.headers['x-amz-checksum-crc32'], crc)
    assert.ok((await getBytes(s3, node.bucket, 'trailer/valid')).equals(data), 'stored bytes equal the decoded body')
  })

  test('a wrong trailer checksum is BadDigest and keeps the previous version', async () => {
    const key = 'trailer/bad-crc'
    const v1 = await putPrevious(key)
    const data = randomBuffer(2 * MiB + 77)
    const { request } = await buildChunked({
      mode: SIGNED_TRAILER,
      key,
      data,
      chunkSizes: ODD_CHUNKS,
      trailer: { name: 'x-amz-checksum-crc32', value: crc32Base64(Buffer.from('something else')) },
    })
    const r = await sendRequest(request)
    assert.equal(r.status, 400, r.text)
    assert.equal(xmlField(r.text, 'Code'), 'BadDigest')
    assert.ok((await getBytes(s3, node.bucket, key)).equals(v1), 'previous version intact')
  })

  test('a wrong trailer signature is SignatureDoesNotMatch and keeps the previous version', async () => {
    const key = 'trailer/bad-sig'
    const v1 = await putPrevious(key)
    const data = randomBuffer(1 * MiB + 5)
    const { request } = await buildChunked({
      mode: SIGNED_TRAILER,
      key,
      data,
      chunkSizes: ODD_CHUNKS,
      trailer: { name: 'x-amz-checksum-crc32', value: crc32Base64(data) },
      corruptTrailerSignature: true,
    })
    const r = await sendRequest(request)
    assert.equal(r.status, 403, r.text)
    assert.equal(xmlField(r.text, 'Code'), 'SignatureDoesNotMatch')
    assert.ok((await getBytes(s3, node.bucket, key)).equals(v1), 'previous version intact')
  })
})

describe('STREAMING-UNSIGNED-PAYLOAD-TRAILER', () => {
  test('a correct x-amz-checksum-crc32 trailer is stored', async () => {
    const data = randomBuffer(1 * MiB + 3)
    const { request } = await buildChunked({
      mode: UNSIGNED_TRAILER,
      key: 'unsigned/valid',
      data,
      chunkSizes: [300 * KiB + 1],
      trailer: { name: 'x-amz-checksum-crc32', value: crc32Base64(data) },
    })
    const r = await sendRequest(request)
    assert.equal(r.status, 200, r.text)
    assert.ok((await getBytes(s3, node.bucket, 'unsigned/valid')).equals(data), 'stored bytes equal the decoded body')
  })

  test('a wrong x-amz-checksum-crc32c trailer is BadDigest and keeps the previous version', async () => {
    const key = 'unsigned/bad-crc32c'
    const v1 = await putPrevious(key)
    const data = randomBuffer(2 * MiB + 1)
    const { request } = await buildChunked({
      mode: UNSIGNED_TRAILER,
      key,
      data,
      chunkSizes: ODD_CHUNKS,
      trailer: { name: 'x-amz-checksum-crc32c', value: 'AAAAAA==' },
    })
    const r = await sendRequest(request)
    assert.equal(r.status, 400, r.text)
    assert.equal(xmlField(r.text, 'Code'), 'BadDigest')
    assert.ok((await getBytes(s3, node.bucket, key)).equals(v1), 'previous version intact')
  })
})

describe('malformed aws-chunked framing', () => {
  // Each body follows a correctly signed head; the framing is broken in one way. The node
  // answers 400 (or 403 for a signature), stores nothing, and keeps serving: the next
  // request on a new connection succeeds.
  const zeros = '0'.repeat(64)
  const cases: Array<[string, string]> = [
    ['a chunk size that is not hex', `zz;chunk-signature=${zeros}\r\n0123456789\r\n`],
    ['a chunk size larger than the data', `ff;chunk-signature=${zeros}\r\n0123456789\r\n0;chunk-signature=${zeros}\r\n\r\n`],
    ['a chunk size smaller than the data', `2;chunk-signature=${zeros}\r\n0123456789\r\n0;chunk-signature=${zeros}\r\n\r\n`],
    ['a 64-bit chunk size', `ffffffffffffffff;chunk-signature=${zeros}\r\n0123456789\r\n`],
    ['a negative chunk size', `-1;chunk-signature=${zeros}\r\n0123456789\r\n`],
    ['no CRLF after the data', `a;chunk-signature=${zeros}\r\n0123456789XX0;chunk-signature=${zeros}\r\n\r\n`],
    ['a 1 MiB chunk header line without CRLF', `a;chunk-signature=${'f'.repeat(1024 * 1024)}`],
  ]
  for (const [label, body] of cases) {
    test(`${label}: a 4xx answer, nothing stored, the node keeps serving`, async () => {
      const key = `chunked/malformed-${label.replaceAll(' ', '-')}`
      const raw = Buffer.from(body)
      const request = await signRequest(node, {
        method: 'PUT',
        path: `/${node.bucket}/${key}`,
        headers: {
          'content-encoding': 'aws-chunked',
          'content-length': String(raw.length),
          'x-amz-decoded-content-length': '10',
        },
        payloadHash: SIGNED,
      })
      const answer = await sendTruncated({ ...request, body: raw }, raw)
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0)
      assert.ok(status >= 400 && status < 500, `a 4xx answer, got ${status}: ${answer.slice(0, 300)}`)
      // The process is alive and its S3 and admin servers answer.
      assert.equal(await objectExists(s3, node.bucket, key), false)
      const health = await fetch(`${node.adminEndpoint}/health`)
      assert.equal(health.status, 200)
      const metrics = await fetch(`${node.adminEndpoint}/metrics`, {
        headers: { authorization: 'Bearer streaming-test-token' },
      })
      assert.equal(metrics.status, 200)
    })
  }
})
