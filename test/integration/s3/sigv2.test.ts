/**
 * Signature Version 2 over real HTTP: the `Authorization: AWS key:signature` header (path-style
 * and virtual-hosted), presigned V2 URLs, Content-MD5 as the only body check, the same
 * permission checks as V4, and every error answer AWS gives to a bad V2 request.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import type { TestNode } from '../../../lib/testing.ts'
import { getBytes, md5Base64, objectExists, s3Client, sendRequest, useTestNode, xmlField } from '../../helpers/s3.ts'
import { presignV2Url, signV2Request, type V2Request } from '../../helpers/sigv2.ts'

const ROOT = 's3.garage.localhost'
let node: TestNode
let s3: S3Client

useTestNode({ s3_api: { root_domain: `.${ROOT}` } }, (n, c) => {
  node = n
  s3 = c
})

const v2 = (r: V2Request) => sendRequest(signV2Request(node, r))

function expectError(r: { status: number; text: string }, status: number, code: string): void {
  assert.equal(r.status, status, r.text)
  assert.equal(xmlField(r.text, 'Code'), code, r.text)
}

async function fetchUrl(url: URL, init: RequestInit = {}): Promise<{ status: number; text: string }> {
  const res = await fetch(url, init)
  return { status: res.status, text: await res.text() }
}

describe('Signature V2: Authorization header', () => {
  test('PUT, GET, HEAD, list and DELETE with a Date header', async () => {
    const path = `/${node.bucket}/v2/plain.txt`
    const put = await v2({ method: 'PUT', path, body: 'hello v2', headers: { 'content-type': 'text/plain' } })
    assert.equal(put.status, 200, put.text)
    const get = await v2({ method: 'GET', path })
    assert.equal(get.status, 200, get.text)
    assert.equal(get.text, 'hello v2')
    assert.equal(get.headers['content-type'], 'text/plain')
    const head = await v2({ method: 'HEAD', path })
    assert.equal(head.status, 200)
    const list = await v2({ method: 'GET', path: `/${node.bucket}`, query: { prefix: 'v2/', 'list-type': '2' } })
    assert.equal(list.status, 200, list.text)
    assert.match(list.text, /<Key>v2\/plain.txt<\/Key>/)
    const buckets = await v2({ method: 'GET', path: '/' })
    assert.equal(buckets.status, 200, buckets.text)
    assert.match(buckets.text, new RegExp(`<Name>${node.bucket}</Name>`))
    const del = await v2({ method: 'DELETE', path })
    assert.equal(del.status, 204, del.text)
    assert.equal(await objectExists(s3, node.bucket, 'v2/plain.txt'), false)
  })

  test('a key past its expiration is AccessDenied with V2 too, and writes nothing', async () => {
    const k = await node.node.keys.create({ name: 'v2-expired' })
    await node.node.buckets.allowKey(node.bucket, k.accessKeyId, { read: true, write: true })
    const credentials = { accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey }
    const path = `/${node.bucket}/v2/expired-key.txt`
    assert.equal((await v2({ method: 'GET', path: `/${node.bucket}`, credentials })).status, 200, 'usable before')
    await node.node.keys.update(k.accessKeyId, { expiresAt: new Date(Date.now() - 1000) })
    expectError(await v2({ method: 'PUT', path, body: 'late', credentials }), 403, 'AccessDenied')
    assert.equal(await objectExists(s3, node.bucket, 'v2/expired-key.txt'), false)
  })

  test('x-amz-date instead of Date, with x-amz-meta headers and an encoded key', async () => {
    const path = `/${node.bucket}/v2/with%20space%2Bplus.txt`
    const put = await v2({ method: 'PUT', path, body: 'dated', amzDate: true, headers: { 'x-amz-meta-colour': 'blue' } })
    assert.equal(put.status, 200, put.text)
    const get = await v2({ method: 'GET', path, amzDate: true })
    assert.equal(get.text, 'dated')
    assert.equal(get.headers['x-amz-meta-colour'], 'blue')
    assert.equal((await getBytes(s3, node.bucket, 'v2/with space+plus.txt')).toString(), 'dated')
  })

  test('sub-resources are signed: multipart upload, ?location, response-* overrides', async () => {
    const path = `/${node.bucket}/v2/multi.bin`
    const create = await v2({ method: 'POST', path, query: { uploads: '' } })
    assert.equal(create.status, 200, create.text)
    const uploadId = xmlField(create.text, 'UploadId') as string
    const part = await v2({ method: 'PUT', path, query: { partNumber: '1', uploadId }, body: 'part one' })
    assert.equal(part.status, 200, part.text)
    const etag = part.headers.etag as string
    const body = `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>${etag}</ETag></Part></CompleteMultipartUpload>`
    const done = await v2({ method: 'POST', path, query: { uploadId }, body })
    assert.equal(done.status, 200, done.text)
    const get = await v2({ method: 'GET', path, query: { 'response-content-type': 'text/x-v2' } })
    assert.equal(get.text, 'part one')
    assert.equal(get.headers['content-type'], 'text/x-v2')
    const loc = await v2({ method: 'GET', path: `/${node.bucket}`, query: { location: '' } })
    assert.equal(loc.status, 200, loc.text)
  })

  test('?encryption and ?retention are accepted signed either way (botocore leaves them out, MinIO and s3cmd sign them)', async () => {
    const path = `/${node.bucket}`
    const botocore = await v2({ method: 'GET', path, query: { encryption: '' } })
    const minio = await v2({ method: 'GET', path, query: { encryption: '' }, extraSubResources: ['encryption'] })
    for (const r of [botocore, minio]) {
      assert.notEqual(r.status, 403, r.text)
      assert.ok(r.status === 200 || xmlField(r.text, 'Code') === 'ServerSideEncryptionConfigurationNotFoundError', r.text)
    }
    // The resource still counts: a signature of the plain bucket GET is not one of ?uploads.
    const uploads = await v2({ method: 'GET', path, query: { uploads: '' } })
    assert.equal(uploads.status, 200, uploads.text)
    const signedPlain = signV2Request(node, { method: 'GET', path })
    const replayed = await sendRequest({ ...signedPlain, url: new URL(`${signedPlain.url.href}?uploads`) })
    assert.equal(replayed.status, 403, replayed.text)
    assert.equal(xmlField(replayed.text, 'Code'), 'SignatureDoesNotMatch')
  })

  test('virtual-hosted style puts the bucket in the signed resource', async () => {
    const port = new URL(node.endpoint).port
    const host = `${node.bucket}.${ROOT}:${port}`
    const put = await v2({ method: 'PUT', path: '/v2/vhost.txt', host, virtualHostBucket: node.bucket, body: 'vhost' })
    assert.equal(put.status, 200, put.text)
    assert.equal((await getBytes(s3, node.bucket, 'v2/vhost.txt')).toString(), 'vhost')
    // Signed without the bucket: the resource differs.
    const bad = await v2({ method: 'GET', path: '/v2/vhost.txt', host })
    expectError(bad, 403, 'SignatureDoesNotMatch')
  })

  test('Content-MD5 is checked when present; a wrong one is BadDigest and stores nothing', async () => {
    const ok = await v2({
      method: 'PUT',
      path: `/${node.bucket}/v2/md5-ok`,
      body: 'checked',
      headers: { 'content-md5': md5Base64('checked') },
    })
    assert.equal(ok.status, 200, ok.text)
    const bad = await v2({
      method: 'PUT',
      path: `/${node.bucket}/v2/md5-bad`,
      body: 'checked',
      headers: { 'content-md5': md5Base64('something else') },
    })
    expectError(bad, 400, 'BadDigest')
    assert.equal(await objectExists(s3, node.bucket, 'v2/md5-bad'), false)
  })

  test('the same permission checks as V4: a read-only key cannot write, an unrelated key sees nothing', async () => {
    const ro = await node.node.keys.create({ name: 'v2-read-only' })
    await node.node.buckets.allowKey(node.bucket, ro.accessKeyId, { read: true })
    const credentials = { accessKeyId: ro.accessKeyId, secretAccessKey: ro.secretAccessKey }
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'v2/readable', Body: 'r' }))
    const get = await v2({ method: 'GET', path: `/${node.bucket}/v2/readable`, credentials })
    assert.equal(get.status, 200, get.text)
    const put = await v2({ method: 'PUT', path: `/${node.bucket}/v2/ro-write`, body: 'x', credentials })
    expectError(put, 403, 'AccessDenied')
    const other = await node.node.keys.create({ name: 'v2-other' })
    const none = await v2({
      method: 'GET',
      path: `/${node.bucket}/v2/readable`,
      credentials: { accessKeyId: other.accessKeyId, secretAccessKey: other.secretAccessKey },
    })
    expectError(none, 403, 'AccessDenied')
  })

  test('a wrong secret is SignatureDoesNotMatch (403) with the StringToSign, and stores nothing', async () => {
    const r = await v2({
      method: 'PUT',
      path: `/${node.bucket}/v2/wrong-secret`,
      body: 'x',
      credentials: { accessKeyId: node.key.accessKeyId, secretAccessKey: 'not the secret' },
    })
    expectError(r, 403, 'SignatureDoesNotMatch')
    assert.match(xmlField(r.text, 'StringToSign') ?? '', /^PUT\n/)
    assert.equal(await objectExists(s3, node.bucket, 'v2/wrong-secret'), false)
  })

  test('an unknown access key is InvalidAccessKeyId (403)', async () => {
    const r = await v2({
      method: 'GET',
      path: '/',
      credentials: { accessKeyId: 'GK00000000000000000000dead', secretAccessKey: 'x' },
    })
    expectError(r, 403, 'InvalidAccessKeyId')
    assert.equal(xmlField(r.text, 'AWSAccessKeyId'), 'GK00000000000000000000dead')
  })

  test('no Date nor x-amz-date is AccessDenied (403)', async () => {
    expectError(await v2({ method: 'GET', path: '/', noDate: true }), 403, 'AccessDenied')
  })

  test('a date 20 minutes off is RequestTimeTooSkewed (403), 5 minutes is accepted', async () => {
    const late = await v2({ method: 'PUT', path: `/${node.bucket}/v2/skew`, body: 'x', date: new Date(Date.now() - 20 * 60_000) })
    expectError(late, 403, 'RequestTimeTooSkewed')
    const early = await v2({ method: 'GET', path: '/', amzDate: true, date: new Date(Date.now() + 20 * 60_000) })
    expectError(early, 403, 'RequestTimeTooSkewed')
    assert.equal(await objectExists(s3, node.bucket, 'v2/skew'), false)
    const fine = await v2({ method: 'GET', path: '/', date: new Date(Date.now() - 5 * 60_000) })
    assert.equal(fine.status, 200, fine.text)
  })

  test('a malformed AWS header is InvalidArgument (400), never 501', async () => {
    for (const authorization of ['AWS', `AWS ${'GK'.padEnd(26, '0')}`, 'AWS :c2ln']) {
      const r = await v2({ method: 'GET', path: '/', authorization })
      expectError(r, 400, 'InvalidArgument')
      assert.equal(xmlField(r.text, 'ArgumentName'), 'Authorization')
    }
  })
})

describe('Signature V2: presigned URLs', () => {
  const inAMinute = () => Math.floor(Date.now() / 1000) + 60

  test('GET and PUT through presigned URLs', async () => {
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'v2/presigned.txt', Body: 'shared' }))
    const get = await fetchUrl(
      presignV2Url(node, { method: 'GET', path: `/${node.bucket}/v2/presigned.txt`, expires: inAMinute() }),
    )
    assert.equal(get.status, 200, get.text)
    assert.equal(get.text, 'shared')
    const url = presignV2Url(node, { method: 'PUT', path: `/${node.bucket}/v2/uploaded.txt`, expires: inAMinute() })
    // A Uint8Array body: fetch would add a Content-Type (signed in V2) to a string one.
    const put = await fetchUrl(url, { method: 'PUT', body: Buffer.from('uploaded') })
    assert.equal(put.status, 200, put.text)
    assert.equal((await getBytes(s3, node.bucket, 'v2/uploaded.txt')).toString(), 'uploaded')
    // The URL is for PUT only.
    expectError(await fetchUrl(url), 403, 'SignatureDoesNotMatch')
  })

  test('a response-* override is part of the signature', async () => {
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'v2/override', Body: 'o' }))
    const url = presignV2Url(node, {
      method: 'GET',
      path: `/${node.bucket}/v2/override`,
      query: { 'response-content-disposition': 'attachment; filename="o.txt"' },
      expires: inAMinute(),
    })
    const res = await fetch(url)
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('content-disposition'), 'attachment; filename="o.txt"')
    url.searchParams.set('response-content-disposition', 'inline')
    expectError(await fetchUrl(url), 403, 'SignatureDoesNotMatch')
  })

  test('Expires in the past is AccessDenied "Request has expired"', async () => {
    const url = presignV2Url(node, { method: 'GET', path: `/${node.bucket}/v2/presigned.txt`, expires: inAMinute() - 120 })
    const r = await fetchUrl(url)
    expectError(r, 403, 'AccessDenied')
    assert.equal(xmlField(r.text, 'Message'), 'Request has expired')
  })

  test('a missing parameter or a malformed Expires is AccessDenied; an unknown key InvalidAccessKeyId', async () => {
    const url = presignV2Url(node, { method: 'GET', path: `/${node.bucket}/v2/presigned.txt`, expires: inAMinute() })
    const noExpires = new URL(url)
    noExpires.searchParams.delete('Expires')
    expectError(await fetchUrl(noExpires), 403, 'AccessDenied')
    const badExpires = new URL(url)
    badExpires.searchParams.set('Expires', 'tomorrow')
    expectError(await fetchUrl(badExpires), 403, 'AccessDenied')
    const stranger = presignV2Url(node, {
      method: 'GET',
      path: `/${node.bucket}/v2/presigned.txt`,
      expires: inAMinute(),
      credentials: { accessKeyId: 'GK00000000000000000000dead', secretAccessKey: 'x' },
    })
    expectError(await fetchUrl(stranger), 403, 'InvalidAccessKeyId')
  })

  test('a tampered signature is SignatureDoesNotMatch', async () => {
    const url = presignV2Url(node, { method: 'GET', path: `/${node.bucket}/v2/presigned.txt`, expires: inAMinute() })
    url.searchParams.set('Expires', String(inAMinute() + 3600))
    expectError(await fetchUrl(url), 403, 'SignatureDoesNotMatch')
  })
})

test('V4 requests still work next to V2 (SDK client)', async () => {
  const c = s3Client(node)
  await c.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'v2/v4-still', Body: 'v4' }))
  c.destroy()
  assert.equal((await getBytes(s3, node.bucket, 'v2/v4-still')).toString(), 'v4')
})
