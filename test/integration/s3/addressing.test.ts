/**
 * Path-style and virtual-hosted-style addressing on a node with `s3_api.root_domain`: raw
 * requests with a `Host: <bucket>.s3.garage.localhost:<port>` header, and the AWS SDK with
 * `forcePathStyle: false` whose connections are redirected to 127.0.0.1 after signing.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { captureRequests, getBytes, rawRequest, s3Client, s3Error, xmlField } from '../../helpers/s3.ts'

const ROOT = 's3.garage.localhost'
let node: TestNode
let s3: S3Client
let port: string

before(async () => {
  node = await startTestNode({ s3_api: { root_domain: `.${ROOT}` } })
  s3 = s3Client(node)
  port = new URL(node.endpoint).port
})
after(async () => {
  s3.destroy()
  await node.close()
})

/** An SDK client using virtual-hosted style against `<bucket>.s3.garage.localhost`. */
function vhostClient(): S3Client {
  const client = s3Client(node, { endpoint: `http://${ROOT}:${port}`, forcePathStyle: false })
  // Connect to the node whatever the host name says; the signed Host header is left as it is.
  client.middlewareStack.add(
    (next) => async (args) => {
      const r = args.request as { hostname?: string }
      r.hostname = '127.0.0.1'
      return next(args)
    },
    { step: 'deserialize', name: 'testConnectToLocalhost' },
  )
  return client
}

describe('virtual-hosted style (raw requests)', () => {
  test('PUT, GET and list through <bucket>.<root_domain>', async () => {
    const host = `${node.bucket}.${ROOT}:${port}`
    const put = await rawRequest(node, { method: 'PUT', path: '/vhost/one', host, body: 'via vhost' })
    assert.equal(put.status, 200, put.text)
    const get = await rawRequest(node, { method: 'GET', path: '/vhost/one', host })
    assert.equal(get.status, 200, get.text)
    assert.equal(get.text, 'via vhost')
    const list = await rawRequest(node, { method: 'GET', path: '/', host, query: { 'list-type': '2', prefix: 'vhost/' } })
    assert.equal(xmlField(list.text, 'Name'), node.bucket)
    assert.equal(xmlField(list.text, 'Key'), 'vhost/one')
    assert.equal((await getBytes(s3, node.bucket, 'vhost/one')).toString(), 'via vhost')
  })

  test('the host name is case-insensitive', async () => {
    const host = `${node.bucket.toUpperCase()}.S3.Garage.LOCALHOST:${port}`
    const r = await rawRequest(node, { method: 'GET', path: '/vhost/one', host })
    assert.equal(r.status, 200, r.text)
    assert.equal(r.text, 'via vhost')
  })

  test('a bucket name with dots is found under the root domain', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'dotted.name' }))
    const host = `dotted.name.${ROOT}:${port}`
    const put = await rawRequest(node, { method: 'PUT', path: '/k', host, body: 'dotted' })
    assert.equal(put.status, 200, put.text)
    assert.equal((await getBytes(s3, 'dotted.name', 'k')).toString(), 'dotted')
  })

  test('the root domain itself is path-style', async () => {
    const host = `${ROOT}:${port}`
    const buckets = await rawRequest(node, { method: 'GET', path: '/', host })
    assert.equal(buckets.status, 200, buckets.text)
    assert.match(buckets.text, new RegExp(`<Name>${node.bucket}</Name>`))
    const get = await rawRequest(node, { method: 'GET', path: `/${node.bucket}/vhost/one`, host })
    assert.equal(get.text, 'via vhost')
  })

  test('a missing bucket in the host name is NoSuchBucket', async () => {
    const r = await rawRequest(node, { method: 'GET', path: '/k', host: `nope.${ROOT}:${port}` })
    assert.equal(r.status, 404)
    assert.equal(xmlField(r.text, 'Code'), 'NoSuchBucket')
  })

  test('a host outside the root domain is path-style', async () => {
    const r = await rawRequest(node, { method: 'GET', path: `/${node.bucket}/vhost/one`, host: `elsewhere.example:${port}` })
    assert.equal(r.status, 200, r.text)
    assert.equal(r.text, 'via vhost')
  })
})

describe('virtual-hosted style (AWS SDK)', () => {
  test('the SDK puts, gets and lists with the bucket in the host name', async (t) => {
    const client = vhostClient()
    t.after(() => client.destroy())
    const seen = captureRequests(client)
    await client.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'sdk vhost/é', Body: 'sdk' }))
    const put = seen.find((r) => r.method === 'PUT')
    assert.equal(put?.headers.host, `${node.bucket}.${ROOT}:${port}`)
    assert.ok(!(put?.path ?? '').startsWith(`/${node.bucket}`), 'the path does not name the bucket')
    const got = await client.send(new GetObjectCommand({ Bucket: node.bucket, Key: 'sdk vhost/é' }))
    assert.equal(await got.Body?.transformToString(), 'sdk')
    const listed = await client.send(new ListObjectsV2Command({ Bucket: node.bucket, Prefix: 'sdk vhost/' }))
    assert.deepEqual(
      (listed.Contents ?? []).map((c) => c.Key),
      ['sdk vhost/é'],
    )
  })

  test('the SDK gets NoSuchKey through a virtual host', async (t) => {
    const client = vhostClient()
    t.after(() => client.destroy())
    await assert.rejects(client.send(new GetObjectCommand({ Bucket: node.bucket, Key: 'absent' })), s3Error('NoSuchKey', 404))
  })
})

describe('path style on the same node', () => {
  test('path-style requests keep working', async () => {
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'path/style', Body: 'path' }))
    assert.equal((await getBytes(s3, node.bucket, 'path/style')).toString(), 'path')
  })
})
