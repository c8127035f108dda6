/**
 * S3 errors through the AWS SDK and raw requests: permissions, missing buckets and keys,
 * unimplemented endpoints, the XML error document, and that each refusal changes nothing.
 */
import assert from 'node:assert/strict'
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketLoggingCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import type { KeyInfo } from '../../../lib/model/helper/admin.ts'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { getBytes, objectExists, rawRequest, randomBuffer, s3Client, s3Error, xmlField } from '../../helpers/s3.ts'

let node: TestNode
let s3: S3Client
let noPerm: S3Client
let readOnly: S3Client
let writeOnly: S3Client
let noPermKey: KeyInfo

function clientFor(k: KeyInfo): S3Client {
  return s3Client(node, { credentials: { accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey } })
}

before(async () => {
  node = await startTestNode()
  s3 = s3Client(node)
  noPermKey = await node.node.keys.create({ name: 'no-permission' })
  const ro = await node.node.keys.create({ name: 'read-only' })
  await node.node.buckets.allowKey(node.bucket, ro.accessKeyId, { read: true })
  const wo = await node.node.keys.create({ name: 'write-only' })
  await node.node.buckets.allowKey(node.bucket, wo.accessKeyId, { write: true })
  noPerm = clientFor(noPermKey)
  readOnly = clientFor(ro)
  writeOnly = clientFor(wo)
  await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'guarded', Body: 'original' }))
})
after(async () => {
  for (const c of [s3, noPerm, readOnly, writeOnly]) c.destroy()
  await node.close()
})

describe('AccessDenied', () => {
  test('a key without permission cannot read, list, write or delete', async () => {
    await assert.rejects(noPerm.send(new GetObjectCommand({ Bucket: node.bucket, Key: 'guarded' })), s3Error('AccessDenied', 403))
    await assert.rejects(noPerm.send(new ListObjectsV2Command({ Bucket: node.bucket })), s3Error('AccessDenied', 403))
    await assert.rejects(
      noPerm.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'guarded', Body: 'overwritten' })),
      s3Error('AccessDenied', 403),
    )
    await assert.rejects(
      noPerm.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'intruder', Body: 'x' })),
      s3Error('AccessDenied', 403),
    )
    await assert.rejects(
      noPerm.send(new DeleteObjectCommand({ Bucket: node.bucket, Key: 'guarded' })),
      s3Error('AccessDenied', 403),
    )
    await assert.rejects(
      noPerm.send(new DeleteObjectsCommand({ Bucket: node.bucket, Delete: { Objects: [{ Key: 'guarded' }] } })),
      s3Error('AccessDenied', 403),
    )
    await assert.rejects(noPerm.send(new HeadBucketCommand({ Bucket: node.bucket })), (err: unknown) => {
      return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 403
    })
    assert.equal((await getBytes(s3, node.bucket, 'guarded')).toString(), 'original')
    assert.equal(await objectExists(s3, node.bucket, 'intruder'), false)
  })

  test('a read-only key can read but not write or delete', async () => {
    assert.equal((await getBytes(readOnly, node.bucket, 'guarded')).toString(), 'original')
    await readOnly.send(new ListObjectsV2Command({ Bucket: node.bucket }))
    await assert.rejects(
      readOnly.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'guarded', Body: 'overwritten' })),
      s3Error('AccessDenied', 403),
    )
    await assert.rejects(
      readOnly.send(new DeleteObjectCommand({ Bucket: node.bucket, Key: 'guarded' })),
      s3Error('AccessDenied', 403),
    )
    assert.equal((await getBytes(s3, node.bucket, 'guarded')).toString(), 'original')
  })

  test('a write-only key can write but not read', async () => {
    await writeOnly.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'dropbox', Body: 'dropped' }))
    await assert.rejects(
      writeOnly.send(new GetObjectCommand({ Bucket: node.bucket, Key: 'dropbox' })),
      s3Error('AccessDenied', 403),
    )
    assert.equal((await getBytes(s3, node.bucket, 'dropbox')).toString(), 'dropped')
  })

  test('revoking a permission takes effect at once', async () => {
    const k = await node.node.keys.create({ name: 'revoked' })
    await node.node.buckets.allowKey(node.bucket, k.accessKeyId, { read: true })
    const c = clientFor(k)
    assert.equal((await getBytes(c, node.bucket, 'guarded')).toString(), 'original')
    await node.node.buckets.denyKey(node.bucket, k.accessKeyId, { read: true })
    await assert.rejects(c.send(new GetObjectCommand({ Bucket: node.bucket, Key: 'guarded' })), s3Error('AccessDenied', 403))
    c.destroy()
  })
})

describe('missing things', () => {
  test('NoSuchBucket for an object operation in a missing bucket, and nothing is created', async () => {
    await assert.rejects(
      s3.send(new PutObjectCommand({ Bucket: 'no-such-bucket', Key: 'k', Body: 'x' })),
      s3Error('NoSuchBucket', 404),
    )
    assert.equal((await node.node.buckets.get('no-such-bucket')) === undefined, true)
  })

  test('NoSuchKey answers a complete S3 error document', async () => {
    const r = await rawRequest(node, { method: 'GET', path: `/${node.bucket}/absent%20key` })
    assert.equal(r.status, 404)
    assert.equal(r.headers['content-type'], 'application/xml')
    assert.equal(xmlField(r.text, 'Code'), 'NoSuchKey')
    assert.ok((xmlField(r.text, 'Message') ?? '') !== '', 'the error has a message')
    assert.equal(xmlField(r.text, 'Resource'), `/${node.bucket}/absent%20key`)
    const id = xmlField(r.text, 'RequestId')
    assert.ok(id !== undefined && id !== '', 'the error names its request id')
    assert.equal(r.headers['x-amz-request-id'], id)
  })

  test('every answer has its own request id', async () => {
    const a = await rawRequest(node, { method: 'GET', path: `/${node.bucket}/absent` })
    const b = await rawRequest(node, { method: 'GET', path: `/${node.bucket}/absent` })
    assert.notEqual(a.headers['x-amz-request-id'], b.headers['x-amz-request-id'])
  })
})

describe('NotImplemented', () => {
  test('PutBucketReplication is 501 NotImplemented and sets nothing', async () => {
    const r = await rawRequest(node, {
      method: 'PUT',
      path: `/${node.bucket}`,
      query: { replication: '' },
      body: '<ReplicationConfiguration><Role>r</Role></ReplicationConfiguration>',
    })
    assert.equal(r.status, 501)
    const get = await rawRequest(node, { method: 'GET', path: `/${node.bucket}`, query: { replication: '' } })
    assert.equal(get.status, 501)
  })

  test('GetBucketLogging is 501 NotImplemented', async () => {
    await assert.rejects(s3.send(new GetBucketLoggingCommand({ Bucket: node.bucket })), s3Error('NotImplemented', 501))
  })

  test('the 501 answer is an S3 XML error document with a request id', async () => {
    const r = await rawRequest(node, { method: 'GET', path: `/${node.bucket}/guarded`, query: { torrent: '' } })
    assert.equal(r.status, 501)
    assert.equal(r.headers['content-type'], 'application/xml')
    assert.equal(xmlField(r.text, 'Code'), 'NotImplemented')
    assert.equal(xmlField(r.text, 'RequestId'), r.headers['x-amz-request-id'])
    assert.equal((await getBytes(s3, node.bucket, 'guarded')).toString(), 'original')
  })

  test('an unknown method is MethodNotAllowed', async () => {
    const r = await rawRequest(node, { method: 'PATCH', path: `/${node.bucket}/guarded`, body: 'x' })
    assert.equal(r.status, 405, r.text)
    assert.equal(xmlField(r.text, 'Code'), 'MethodNotAllowed')
    assert.equal((await getBytes(s3, node.bucket, 'guarded')).toString(), 'original')
  })
})

describe('robustness', () => {
  test('the node keeps serving after every refusal above', async () => {
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'still-alive', Body: 'yes' }))
    assert.equal((await getBytes(s3, node.bucket, 'still-alive')).toString(), 'yes')
  })

  test('an internal failure is 500 InternalError with a request id, and the node survives it', async () => {
    // Make block storage fail: the data directory becomes a plain file for the duration.
    const data = join(node.dir, 'data')
    await mkdir(data, { recursive: true })
    await rename(data, `${data}.moved`)
    await writeFile(data, 'not a directory')
    let r: Awaited<ReturnType<typeof rawRequest>>
    try {
      r = await rawRequest(node, { method: 'PUT', path: `/${node.bucket}/internal/big`, body: randomBuffer(100_000) })
    } finally {
      await rm(data)
      await rename(`${data}.moved`, data)
    }
    assert.equal(r.status, 500, r.text)
    assert.equal(xmlField(r.text, 'Code'), 'InternalError')
    assert.doesNotMatch(r.text, /ENOTDIR|not a directory/i, 'the cause is not leaked to the client')
    assert.equal(xmlField(r.text, 'RequestId'), r.headers['x-amz-request-id'])
    assert.equal(await objectExists(s3, node.bucket, 'internal/big'), false)
    const body = randomBuffer(100_000)
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'internal/big', Body: body }))
    assert.deepEqual(await getBytes(s3, node.bucket, 'internal/big'), body)
  })

  test('malformed HTTP is answered 400 and does not reach a handler', async () => {
    const url = new URL(node.endpoint)
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(url.port), url.hostname, () => socket.end('NOT HTTP AT ALL\r\n\r\n'))
      let data = ''
      socket.on('data', (c: Buffer) => {
        data += c.toString()
      })
      socket.on('error', reject)
      socket.on('close', () => resolve(data))
    })
    assert.match(answer, /^HTTP\/1\.1 400/)
  })
})
