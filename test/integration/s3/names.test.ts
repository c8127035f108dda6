/**
 * Names that reach the metadata store (bucket names, object keys, upload ids, list parameters,
 * copy sources) and header values taken from requests: each class at its limit, one over and far
 * over, with control characters and invalid UTF-8, on every operation, over raw signed requests
 * (smithy's signer) against one node with its website and admin endpoints. Each refusal must be
 * the status and code AWS gives, must store nothing, and no request may end in a 500 or a dropped
 * connection.
 */
import assert from 'node:assert/strict'
import { request as httpRequest } from 'node:http'
import { after, before, describe, test } from 'node:test'
import { CreateMultipartUploadCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import type { Logger } from '../../../lib/util/logger.ts'
import { v2 } from '../../helpers/admin.ts'
import { encodeKey, presignUrl, type RawResponse, rawRequest, s3Client, sendRequest, xmlField } from '../../helpers/s3.ts'

/** Every line logged at error level (none is expected: bad names are the client's doing). */
const errors: string[] = []
const logger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: (m: unknown, ...args: unknown[]) => {
    errors.push([m, ...args].map(String).join(' '))
  },
  withTag: () => logger,
}

let node: TestNode
let s3: S3Client
/** The bucket every test uses; holds exactly SEEDED plus what a test adds and removes itself. */
let bucket: string
let uploadId: string
const SEEDED = ['a/one', 'plain']

before(async () => {
  node = await startTestNode({
    logger,
    s3_web: { bind_addr: '127.0.0.1:0', root_domain: '.web.localhost' },
    admin: { api_bind_addr: '127.0.0.1:0', admin_token: 'tok' },
  })
  s3 = s3Client(node)
  bucket = node.bucket
  for (const k of SEEDED) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: `body of ${k}` }))
  const mpu = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'a/one' }))
  uploadId = mpu.UploadId as string
  const website = '<WebsiteConfiguration><IndexDocument><Suffix>index.html</Suffix></IndexDocument></WebsiteConfiguration>'
  const r = await rawRequest(node, { method: 'PUT', path: `/${bucket}`, query: { website: '' }, body: website })
  assert.equal(r.status, 200, r.text)
})
after(async () => {
  s3?.destroy()
  await node?.close()
  assert.deepEqual(errors, [], 'nothing was logged as an error')
})

/** The keys in the bucket (one listing; the bucket stays small). */
async function keys(): Promise<string[]> {
  const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket }))
  return (r.Contents ?? []).map((o) => o.Key as string)
}

/** Asserts the answer: status, and the S3 code for answers with a body. */
function expectError(r: RawResponse, status: number, code: string | undefined, what: string): void {
  assert.equal(r.status, status, `${what}: ${r.text.slice(0, 300)}`)
  if (code !== undefined) assert.equal(xmlField(r.text, 'Code'), code, `${what}: ${r.text.slice(0, 300)}`)
}

/** A request sent as is (no signature): for names refused before authentication, raw bytes included. */
async function unsigned(method: string, pathAndQuery: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  const url = new URL(`${node.endpoint}${pathAndQuery}`)
  return sendRequest({ url, method, headers: { host: url.host, ...headers }, body: new Uint8Array(0) })
}

const ascii = (n: number): string => 'k'.repeat(n)
/** `n` bytes of UTF-8 made of two-byte characters (n even). */
const twoByte = (n: number): string => 'é'.repeat(n / 2)

describe('object keys', () => {
  test('a key of 1024 bytes (ASCII or multi-byte) is stored, read and deleted', async () => {
    for (const key of [ascii(1024), twoByte(1024)]) {
      const path = `/${bucket}/${encodeKey(key)}`
      expectError(await rawRequest(node, { method: 'PUT', path, body: 'at the limit' }), 200, undefined, 'put')
      const get = await rawRequest(node, { method: 'GET', path })
      assert.equal(get.text, 'at the limit')
      expectError(await rawRequest(node, { method: 'HEAD', path }), 200, undefined, 'head')
      const url = await presignUrl(node, { method: 'GET', path, expiresIn: 60 })
      const presigned = await sendRequest({ url, method: 'GET', headers: { host: url.host }, body: new Uint8Array(0) })
      assert.equal(presigned.text, 'at the limit')
      expectError(await rawRequest(node, { method: 'DELETE', path }), 204, undefined, 'delete')
    }
    assert.deepEqual(await keys(), SEEDED)
  })

  test('a key with control characters is an ordinary key, as on S3', async () => {
    const key = 'ctl/\x01\x1f\x7f-tab\t'
    const path = `/${bucket}/${encodeKey(key)}`
    expectError(await rawRequest(node, { method: 'PUT', path, body: 'ctl' }), 200, undefined, 'put')
    assert.equal((await rawRequest(node, { method: 'GET', path })).text, 'ctl')
    expectError(await rawRequest(node, { method: 'DELETE', path }), 204, undefined, 'delete')
    assert.deepEqual(await keys(), SEEDED)
  })

  // One over (ASCII and multi-byte), lmdb's old failure zone, and far over.
  const long: Array<[string, string]> = [
    ['1025 bytes', ascii(1025)],
    ['1026 bytes of é', twoByte(1026)],
    ['2000 bytes', ascii(2000)],
    ['9000 bytes', ascii(9000)],
  ]
  for (const [label, key] of long) {
    test(`a key of ${label} is KeyTooLongError on every operation, and nothing is stored`, async () => {
      const path = `/${bucket}/${encodeKey(key)}`
      const cases: Array<[string, () => Promise<RawResponse>]> = [
        ['GetObject', () => rawRequest(node, { method: 'GET', path })],
        ['HeadObject', () => rawRequest(node, { method: 'HEAD', path })],
        ['PutObject', () => rawRequest(node, { method: 'PUT', path, body: 'x' })],
        ['DeleteObject', () => rawRequest(node, { method: 'DELETE', path })],
        ['CreateMultipartUpload', () => rawRequest(node, { method: 'POST', path, query: { uploads: '' } })],
        ['ListParts', () => rawRequest(node, { method: 'GET', path, query: { uploadId } })],
        ['AbortMultipartUpload', () => rawRequest(node, { method: 'DELETE', path, query: { uploadId } })],
        ['UploadPart', () => rawRequest(node, { method: 'PUT', path, query: { uploadId, partNumber: '1' }, body: 'x' })],
        [
          'CopyObject (destination)',
          () => rawRequest(node, { method: 'PUT', path, headers: { 'x-amz-copy-source': `/${bucket}/plain` } }),
        ],
        [
          'CopyObject (source)',
          () =>
            rawRequest(node, {
              method: 'PUT',
              path: `/${bucket}/copy-dest`,
              headers: { 'x-amz-copy-source': `/${bucket}/${encodeKey(key)}` },
            }),
        ],
        [
          'presigned GET',
          async () => {
            const url = await presignUrl(node, { method: 'GET', path, expiresIn: 60 })
            return sendRequest({ url, method: 'GET', headers: { host: url.host }, body: new Uint8Array(0) })
          },
        ],
      ]
      for (const [op, send] of cases) {
        const r = await send()
        expectError(r, 400, op === 'HeadObject' ? undefined : 'KeyTooLongError', `${op} ${label}`)
      }
      assert.deepEqual(await keys(), SEEDED)
    })
  }

  test('invalid UTF-8 in a path is InvalidURI; in a copy source, InvalidArgument', async () => {
    for (const raw of ['%FF', 'a%C3', '%ED%A0%80']) {
      // AWS answers a path that does not decode with InvalidURI ("Couldn't parse the specified URI").
      expectError(await unsigned('GET', `/${bucket}/${raw}`), 400, 'InvalidURI', `path ${raw}`)
      const r = await rawRequest(node, {
        method: 'PUT',
        path: `/${bucket}/copy-dest`,
        headers: { 'x-amz-copy-source': `/${bucket}/${raw}` },
      })
      expectError(r, 400, 'InvalidArgument', `copy source ${raw}`)
    }
    assert.deepEqual(await keys(), SEEDED)
  })

  test('DeleteObjects reports an over-long key as KeyTooLongError and deletes the others', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'to-delete', Body: 'x' }))
    const xml = (k: string) => `<Object><Key>${k}</Key></Object>`
    const body = `<Delete>${xml('to-delete')}${xml(ascii(1025))}${xml(ascii(9000))}</Delete>`
    const r = await rawRequest(node, {
      method: 'POST',
      path: `/${bucket}`,
      query: { delete: '' },
      body,
      headers: { 'content-md5': Buffer.from(await md5(body)).toString('base64') },
    })
    assert.equal(r.status, 200, r.text)
    assert.equal([...r.text.matchAll(/<Code>KeyTooLongError<\/Code>/g)].length, 2, r.text)
    assert.match(r.text, /<Deleted><Key>to-delete<\/Key>/)
    assert.deepEqual(await keys(), SEEDED)
  })
})

async function md5(s: string): Promise<Uint8Array> {
  const { createHash } = await import('node:crypto')
  return createHash('md5').update(s).digest()
}

describe('bucket names', () => {
  test('a 63-byte name that names no bucket is NoSuchBucket; 64 bytes and 9000 bytes are InvalidBucketName', async () => {
    expectError(await rawRequest(node, { method: 'GET', path: `/${'b'.repeat(63)}/k` }), 404, 'NoSuchBucket', '63')
    for (const name of ['b'.repeat(64), 'b'.repeat(9000), 'Upper', 'a_b', 'ab']) {
      const label = `${name.slice(0, 8)} (${name.length})`
      const cases: Array<[string, () => Promise<RawResponse>]> = [
        ['GetObject', () => rawRequest(node, { method: 'GET', path: `/${name}/k` })],
        ['ListObjectsV2', () => rawRequest(node, { method: 'GET', path: `/${name}`, query: { 'list-type': '2' } })],
        ['AbortMultipartUpload', () => rawRequest(node, { method: 'DELETE', path: `/${name}/k`, query: { uploadId } })],
        ['ListMultipartUploads', () => rawRequest(node, { method: 'GET', path: `/${name}`, query: { uploads: '' } })],
        ['PutObject', () => rawRequest(node, { method: 'PUT', path: `/${name}/k`, body: 'x' })],
        [
          'CopyObject (source bucket)',
          () => rawRequest(node, { method: 'PUT', path: `/${bucket}/copy-dest`, headers: { 'x-amz-copy-source': `/${name}/k` } }),
        ],
        [
          'PostObject',
          () => unsigned('POST', `/${name}`, { 'content-type': 'multipart/form-data; boundary=x', 'content-length': '0' }),
        ],
      ]
      for (const [op, send] of cases) expectError(await send(), 400, 'InvalidBucketName', `${op} ${label}`)
    }
    assert.deepEqual(await keys(), SEEDED)
  })
})

describe('upload ids', () => {
  test('a malformed upload id is NoSuchUpload (404), as on AWS; nothing changes', async () => {
    for (const id of ['zz', 'ab'.repeat(31), 'x'.repeat(9000)]) {
      const path = `/${bucket}/a/one`
      expectError(await rawRequest(node, { method: 'GET', path, query: { uploadId: id } }), 404, 'NoSuchUpload', 'ListParts')
      expectError(
        await rawRequest(node, { method: 'DELETE', path, query: { uploadId: id } }),
        404,
        'NoSuchUpload',
        'AbortMultipartUpload',
      )
      expectError(
        await rawRequest(node, { method: 'PUT', path, query: { uploadId: id, partNumber: '1' }, body: 'x' }),
        404,
        'NoSuchUpload',
        'UploadPart',
      )
    }
    const list = await rawRequest(node, { method: 'GET', path: `/${bucket}`, query: { uploads: '' } })
    assert.match(list.text, new RegExp(`<UploadId>${uploadId}</UploadId>`), 'the real upload is still there')
  })
})

describe('list parameters', () => {
  const listV1 = (q: Record<string, string>) => rawRequest(node, { method: 'GET', path: `/${bucket}`, query: q })
  const listV2 = (q: Record<string, string>) =>
    rawRequest(node, { method: 'GET', path: `/${bucket}`, query: { 'list-type': '2', ...q } })
  const uploads = (q: Record<string, string>) =>
    rawRequest(node, { method: 'GET', path: `/${bucket}`, query: { uploads: '', ...q } })
  const params: Array<[string, (v: string) => Promise<RawResponse>]> = [
    ['ListObjects prefix', (v) => listV1({ prefix: v })],
    ['ListObjects marker', (v) => listV1({ marker: v })],
    ['ListObjects delimiter', (v) => listV1({ delimiter: v })],
    ['ListObjectsV2 prefix', (v) => listV2({ prefix: v })],
    ['ListObjectsV2 start-after', (v) => listV2({ 'start-after': v })],
    ['ListMultipartUploads prefix', (v) => uploads({ prefix: v })],
    ['ListMultipartUploads key-marker', (v) => uploads({ 'key-marker': v })],
    ['ListMultipartUploads upload-id-marker', (v) => uploads({ 'key-marker': 'a', 'upload-id-marker': v })],
  ]

  test('parameters of 1024 bytes are answered (200)', async () => {
    for (const [what, send] of params) expectError(await send(ascii(1024)), 200, undefined, what)
    expectError(await listV2({ 'continuation-token': Buffer.from(ascii(1024)).toString('base64url') }), 200, undefined, 'token')
  })

  test('parameters over 1024 bytes (1025, 2000, 15000) are InvalidArgument', async () => {
    for (const n of [1025, 2000, 15_000]) {
      for (const [what, send] of params) expectError(await send(ascii(n)), 400, 'InvalidArgument', `${what} ${n}`)
      const token = Buffer.from(ascii(n)).toString('base64url')
      if (token.length < 15_000) expectError(await listV2({ 'continuation-token': token }), 400, 'InvalidArgument', `token ${n}`)
    }
  })

  test('invalid percent-encoded UTF-8 in a query parameter is InvalidArgument, not U+FFFD', async () => {
    for (const q of ['list-type=2&prefix=%FF', 'list-type=2&start-after=a%C3', 'marker=%ED%A0%80', 'uploads&key-marker=%FF']) {
      expectError(await unsigned('GET', `/${bucket}?${q}`), 400, 'InvalidArgument', q)
    }
    // The same character sent properly encoded is fine (and matches nothing).
    expectError(await listV2({ prefix: '\uFFFD' }), 200, undefined, 'U+FFFD')
  })
})

describe('response-* overrides', () => {
  const path = () => `/${bucket}/plain`
  const bad = ['text/plain\r\nx-injected: yes', 'a\nb', 'nul\0', 'bell\x07', 'del\x7f', 'euro €', 'emoji 😀']

  test('valid values (Latin-1 included) are sent back', async () => {
    const r = await rawRequest(node, {
      method: 'GET',
      path: path(),
      query: { 'response-content-type': 'text/x-test; charset=latin1', 'response-content-disposition': 'inline;\tname="x"' },
    })
    assert.equal(r.status, 200)
    assert.equal(r.headers['content-type'], 'text/x-test; charset=latin1')
    assert.equal(r.headers['content-disposition'], 'inline;\tname="x"')
    // Latin-1 (obs-text) is a valid field value; how its bytes travel is Node's business.
    const latin1 = await rawRequest(node, { method: 'GET', path: path(), query: { 'response-content-language': 'fr-é' } })
    assert.equal(latin1.status, 200, latin1.text)
  })

  test('a value with control or non-Latin-1 characters is InvalidArgument (GET, HEAD, presigned), never a dropped connection', async () => {
    for (const value of bad) {
      for (const name of ['response-content-type', 'response-cache-control', 'response-content-disposition']) {
        const r = await rawRequest(node, { method: 'GET', path: path(), query: { [name]: value } })
        expectError(r, 400, 'InvalidArgument', `${name}=${JSON.stringify(value)}`)
        assert.equal(r.headers['x-injected'], undefined)
      }
      expectError(
        await rawRequest(node, { method: 'HEAD', path: path(), query: { 'response-content-type': value } }),
        400,
        undefined,
        'HEAD',
      )
      const url = await presignUrl(node, {
        method: 'GET',
        path: path(),
        query: { 'response-content-type': value },
        expiresIn: 60,
      })
      const r = await sendRequest({ url, method: 'GET', headers: { host: url.host }, body: new Uint8Array(0) })
      expectError(r, 400, 'InvalidArgument', `presigned ${JSON.stringify(value)}`)
    }
  })
})

describe('website endpoint', () => {
  async function web(pathname: string, host = `${bucket}.web.localhost`): Promise<RawResponse> {
    const url = new URL(pathname, node.webEndpoint)
    return sendRequest({ url, method: 'GET', headers: { host }, body: new Uint8Array(0) })
  }
  test('a path over 1024 bytes is 404, a host naming no possible bucket is 404', async () => {
    assert.equal((await web('/plain')).status, 200)
    for (const n of [1025, 2000, 9000]) {
      const r = await web(`/${ascii(n)}`)
      assert.equal(r.status, 404, `path ${n}: ${r.text.slice(0, 200)}`)
      assert.match(r.text, /NoSuchKey/)
    }
    for (const host of [`${'b'.repeat(9000)}.web.localhost`, 'b'.repeat(2000)]) {
      const r = await web('/plain', host)
      assert.equal(r.status, 404, r.text.slice(0, 200))
      assert.match(r.text, /NoSuchBucket/)
    }
  })
})

describe('admin endpoints', () => {
  test('bucket names, object keys and key ids too long for any entry are 400/404, never 500', async () => {
    const info = await v2(node, 'GetBucketInfo', { query: { globalAlias: bucket } })
    const id = info.data.id as string
    for (const alias of ['b'.repeat(64), 'b'.repeat(9000), 'Bad_Name']) {
      const r = await v2(node, 'GetBucketInfo', { query: { globalAlias: alias } })
      assert.equal(r.status, 400, r.text)
      assert.equal(r.data.code, 'InvalidBucketName')
      const rm = await v2(node, 'RemoveBucketAlias', { body: { bucketId: id, globalAlias: alias } })
      assert.equal(rm.status, 400, rm.text)
      assert.equal(rm.data.code, 'InvalidBucketName')
      const add = await v2(node, 'AddBucketAlias', { body: { bucketId: id, globalAlias: alias } })
      assert.equal(add.status, 400, add.text)
      assert.equal(add.data.code, 'InvalidBucketName')
    }
    const search = await v2(node, 'GetBucketInfo', { query: { search: 'b'.repeat(9000) } })
    assert.equal(search.status, 404, search.text)
    for (const n of [1025, 9000]) {
      const r = await v2(node, 'InspectObject', { query: { bucketId: id, key: ascii(n) } })
      assert.equal(r.status, 400, r.text)
      assert.equal(r.data.code, 'InvalidRequest')
    }
    const key = await v2(node, 'GetKeyInfo', { query: { id: `GK${'0'.repeat(9000)}` } })
    // An id no key can have names no key: 404, as for any unknown id (Garage's NoSuchAccessKey).
    assert.equal(key.status, 404, key.text)
    const allow = await v2(node, 'AllowBucketKey', {
      body: { bucketId: id, accessKeyId: `GK${'0'.repeat(9000)}`, permissions: { read: true } },
    })
    assert.equal(allow.status, 404, allow.text)
    const aliases = (await v2(node, 'GetBucketInfo', { query: { id } })).data.globalAliases
    assert.deepEqual(aliases, [bucket], 'no alias was added or removed')
  })
})

describe('authentication', () => {
  test('an over-long access key id is InvalidAccessKeyId (403)', async () => {
    const r = await rawRequest(node, {
      method: 'GET',
      path: `/${bucket}/plain`,
      credentials: { accessKeyId: `GK${'0'.repeat(5000)}`, secretAccessKey: 'x' },
    })
    expectError(r, 403, 'InvalidAccessKeyId', 'long access key id')
  })
})

describe('a body the client aborts', () => {
  test('is not an internal error: nothing is logged as an error, nothing is stored', async () => {
    const before = errors.length
    const url = new URL(`${node.endpoint}/${bucket}`)
    const boundary = 'boundary1234'
    // Cut inside the form fields: the handler is reading the body when the client goes away.
    const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="key"\r\n\r\naborted-post`)
    await new Promise<void>((resolve) => {
      const req = httpRequest(url, {
        method: 'POST',
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(head.length + 100_000) },
      })
      req.on('error', () => resolve())
      req.on('response', (res) => {
        res.resume()
        res.on('end', resolve)
      })
      req.write(head)
      setTimeout(() => {
        req.destroy()
        resolve()
      }, 200)
    })
    // Give the server the time to see the abort and log it.
    await new Promise((r) => setTimeout(r, 300))
    assert.deepEqual(errors.slice(before), [])
    assert.deepEqual(await keys(), SEEDED)
  })
})
