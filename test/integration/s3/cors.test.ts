/**
 * Bucket CORS: Put/Get/DeleteBucketCors through the AWS SDK, unauthenticated OPTIONS preflights,
 * and CORS headers on authenticated answers (successes and errors).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import {
  type CORSRule,
  DeleteBucketCorsCommand,
  GetBucketCorsCommand,
  PutBucketCorsCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { type RawResponse, rawRequest, s3Client, s3Error, sendRequest, xmlField } from '../../helpers/s3.ts'

const APP = 'https://app.example.com'
const RULES: CORSRule[] = [
  {
    ID: 'app',
    AllowedOrigins: [APP],
    AllowedMethods: ['GET', 'PUT'],
    AllowedHeaders: ['Content-Type', 'x-amz-*'],
    ExposeHeaders: ['ETag'],
    MaxAgeSeconds: 600,
  },
  { AllowedOrigins: ['*'], AllowedMethods: ['HEAD'] },
]

let node: TestNode
let s3: S3Client

before(async () => {
  node = await startTestNode()
  s3 = s3Client(node)
  await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'hello.txt', Body: 'hello' }))
})
after(async () => {
  s3.destroy()
  await node.close()
})

async function putRules(rules: CORSRule[] = RULES): Promise<void> {
  await s3.send(new PutBucketCorsCommand({ Bucket: node.bucket, CORSConfiguration: { CORSRules: rules } }))
}

/** An unsigned request to the S3 endpoint. */
async function anonymous(method: string, path: string, headers: Record<string, string>): Promise<RawResponse> {
  const url = new URL(path, node.endpoint)
  return sendRequest({ url, method, headers: { host: url.host, ...headers }, body: new Uint8Array(0) })
}

function preflight(path: string, origin: string, method: string, headers?: string): Promise<RawResponse> {
  const h: Record<string, string> = { origin, 'access-control-request-method': method }
  if (headers !== undefined) h['access-control-request-headers'] = headers
  return anonymous('OPTIONS', path, h)
}

describe('Put/Get/DeleteBucketCors', () => {
  test('a bucket without rules answers NoSuchCORSConfiguration', async () => {
    await assert.rejects(s3.send(new GetBucketCorsCommand({ Bucket: node.bucket })), s3Error('NoSuchCORSConfiguration', 404))
  })

  test('rules are stored and read back as given', async () => {
    await putRules()
    const r = await s3.send(new GetBucketCorsCommand({ Bucket: node.bucket }))
    assert.deepEqual(r.CORSRules, [{ ...RULES[0] }, { AllowedOrigins: ['*'], AllowedMethods: ['HEAD'] }])
  })

  test('malformed XML is MalformedXML and leaves the rules as they were', async () => {
    await putRules()
    for (const body of [
      '<CORSConfiguration><CORSRule><AllowedOrigin>x</AllowedOrigin>',
      '<CORSConfiguration></CORSConfiguration>',
      '<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>',
      '<Other/>',
    ]) {
      const r = await rawRequest(node, { method: 'PUT', path: `/${node.bucket}`, query: { cors: '' }, body })
      assert.equal(r.status, 400, r.text)
      assert.equal(xmlField(r.text, 'Code'), 'MalformedXML', body)
    }
    const r = await s3.send(new GetBucketCorsCommand({ Bucket: node.bucket }))
    assert.equal(r.CORSRules?.length, 2)
  })

  test('an unsupported method or a bad header name is InvalidRequest', async () => {
    await assert.rejects(putRules([{ AllowedOrigins: ['*'], AllowedMethods: ['PATCH'] }]), s3Error('InvalidRequest', 400))
    await assert.rejects(
      putRules([{ AllowedOrigins: ['*'], AllowedMethods: ['GET'], AllowedHeaders: ['bad header'] }]),
      s3Error('InvalidRequest', 400),
    )
    const r = await s3.send(new GetBucketCorsCommand({ Bucket: node.bucket }))
    assert.equal(r.CORSRules?.[0]?.ID, 'app')
  })

  test('only the bucket owner may read or change the rules', async () => {
    const key = await node.node.keys.create({ name: 'rw' })
    await node.node.buckets.allowKey(node.bucket, key.accessKeyId, { read: true, write: true })
    const rw = s3Client(node, { credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey } })
    try {
      await assert.rejects(rw.send(new GetBucketCorsCommand({ Bucket: node.bucket })), s3Error('AccessDenied', 403))
      await assert.rejects(
        rw.send(new PutBucketCorsCommand({ Bucket: node.bucket, CORSConfiguration: { CORSRules: RULES } })),
        s3Error('AccessDenied', 403),
      )
      await assert.rejects(rw.send(new DeleteBucketCorsCommand({ Bucket: node.bucket })), s3Error('AccessDenied', 403))
    } finally {
      rw.destroy()
    }
  })

  test('DeleteBucketCors removes the rules', async () => {
    await putRules()
    const d = await s3.send(new DeleteBucketCorsCommand({ Bucket: node.bucket }))
    assert.equal(d.$metadata.httpStatusCode, 204)
    await assert.rejects(s3.send(new GetBucketCorsCommand({ Bucket: node.bucket })), s3Error('NoSuchCORSConfiguration'))
    const p = await preflight(`/${node.bucket}/hello.txt`, APP, 'GET')
    assert.equal(p.status, 403, 'no rule, no CORS')
  })
})

describe('OPTIONS preflight (no authentication)', () => {
  before(() => putRules())

  test('an allowed origin, method and headers get the rule headers', async () => {
    const r = await preflight(`/${node.bucket}/hello.txt`, APP, 'PUT', 'content-type, x-amz-meta-color')
    assert.equal(r.status, 200, r.text)
    assert.equal(r.headers['access-control-allow-origin'], APP)
    assert.equal(r.headers['access-control-allow-methods'], 'GET, PUT')
    assert.equal(r.headers['access-control-allow-headers'], 'content-type, x-amz-meta-color')
    assert.equal(r.headers['access-control-expose-headers'], 'ETag')
    assert.equal(r.headers['access-control-max-age'], '600')
    assert.match(String(r.headers.vary), /Origin/)
  })

  test('a "*" rule answers any origin with "*"', async () => {
    const r = await preflight(`/${node.bucket}/hello.txt`, 'https://elsewhere.example', 'HEAD')
    assert.equal(r.status, 200, r.text)
    assert.equal(r.headers['access-control-allow-origin'], '*')
  })

  test('an origin, method or header no rule allows is 403', async () => {
    const denied: Array<[string, string, string | undefined]> = [
      ['https://evil.example', 'GET', undefined],
      [APP, 'DELETE', undefined],
      [APP, 'PUT', 'authorization-x'],
    ]
    for (const [origin, method, headers] of denied) {
      const r = await preflight(`/${node.bucket}/hello.txt`, origin, method, headers)
      assert.equal(r.status, 403, `${origin} ${method} ${headers}`)
      assert.equal(xmlField(r.text, 'Code'), 'AccessDenied')
      assert.equal(r.headers['access-control-allow-origin'], undefined)
    }
  })

  test('a name that is no global alias is answered permissively (it may be a local alias)', async () => {
    const r = await preflight('/some-local-name/key', 'https://evil.example', 'DELETE')
    assert.equal(r.status, 200)
    assert.equal(r.headers['access-control-allow-origin'], '*')
    assert.equal(r.headers['access-control-allow-methods'], '*')
  })

  test('without a bucket (ListBuckets) only GET is allowed', async () => {
    const r = await preflight('/', APP, 'GET')
    assert.equal(r.status, 200)
    assert.equal(r.headers['access-control-allow-methods'], 'GET')
  })
})

describe('CORS headers on authenticated answers', () => {
  before(() => putRules())

  test('a matching origin gets Access-Control-Allow-Origin and the exposed headers', async () => {
    const r = await rawRequest(node, { method: 'GET', path: `/${node.bucket}/hello.txt`, headers: { origin: APP } })
    assert.equal(r.status, 200)
    assert.equal(r.text, 'hello')
    assert.equal(r.headers['access-control-allow-origin'], APP)
    assert.equal(r.headers['access-control-expose-headers'], 'ETag')
    assert.match(String(r.headers.vary), /Origin/)
  })

  test('errors carry them too, so the page can read them', async () => {
    const r = await rawRequest(node, { method: 'GET', path: `/${node.bucket}/missing`, headers: { origin: APP } })
    assert.equal(r.status, 404)
    assert.equal(r.headers['access-control-allow-origin'], APP)
    const bad = await rawRequest(node, {
      method: 'GET',
      path: `/${node.bucket}/hello.txt`,
      headers: { origin: APP },
      credentials: { accessKeyId: node.key.accessKeyId, secretAccessKey: 'wrong' },
    })
    assert.equal(bad.status, 403)
    assert.equal(bad.headers['access-control-allow-origin'], APP, 'from the global alias before authentication')
  })

  test('a method the rule does not allow, or another origin, gets no CORS headers', async () => {
    const del = await rawRequest(node, { method: 'DELETE', path: `/${node.bucket}/nothing`, headers: { origin: APP } })
    assert.equal(del.status, 204)
    assert.equal(del.headers['access-control-allow-origin'], undefined)
    const other = await rawRequest(node, {
      method: 'GET',
      path: `/${node.bucket}/hello.txt`,
      headers: { origin: 'https://evil.example' },
    })
    assert.equal(other.headers['access-control-allow-origin'], undefined)
    assert.match(String(other.headers.vary), /Origin/)
  })

  test('a request without Origin gets none', async () => {
    const r = await rawRequest(node, { method: 'GET', path: `/${node.bucket}/hello.txt` })
    assert.equal(r.headers['access-control-allow-origin'], undefined)
    assert.equal(r.headers.vary, undefined)
  })
})
