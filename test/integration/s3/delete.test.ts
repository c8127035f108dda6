/** DeleteObject and DeleteObjects through the AWS SDK and raw requests. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { DeleteObjectCommand, DeleteObjectsCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import type { TestNode } from '../../../lib/testing.ts'
import { getBytes, md5Base64, objectExists, rawRequest, randomBuffer, s3Error, xmlField, useTestNode } from '../../helpers/s3.ts'

let node: TestNode
let s3: S3Client

useTestNode({}, (n, c) => {
  node = n
  s3 = c
})

async function put(key: string, body: string | Uint8Array = key): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: key, Body: body }))
}

describe('DeleteObject', () => {
  test('deletes an object and answers 204', async () => {
    await put('del/one')
    const r = await s3.send(new DeleteObjectCommand({ Bucket: node.bucket, Key: 'del/one' }))
    assert.equal(r.$metadata.httpStatusCode, 204)
    assert.equal(await objectExists(s3, node.bucket, 'del/one'), false)
  })

  test('deletes a multi-block object', async () => {
    await put('del/big', randomBuffer(2 * 1024 * 1024 + 1))
    await s3.send(new DeleteObjectCommand({ Bucket: node.bucket, Key: 'del/big' }))
    assert.equal(await objectExists(s3, node.bucket, 'del/big'), false)
  })

  test('is idempotent: deleting twice or deleting a missing key answers 204', async () => {
    await put('del/twice')
    for (const key of ['del/twice', 'del/twice', 'del/never-existed']) {
      const r = await s3.send(new DeleteObjectCommand({ Bucket: node.bucket, Key: key }))
      assert.equal(r.$metadata.httpStatusCode, 204)
    }
  })

  test('a deleted key can be written again', async () => {
    await put('del/again', 'first')
    await s3.send(new DeleteObjectCommand({ Bucket: node.bucket, Key: 'del/again' }))
    await put('del/again', 'second')
    assert.equal((await getBytes(s3, node.bucket, 'del/again')).toString(), 'second')
  })

  test('in a missing bucket is NoSuchBucket', async () => {
    await assert.rejects(s3.send(new DeleteObjectCommand({ Bucket: 'no-such-bucket', Key: 'x' })), s3Error('NoSuchBucket', 404))
  })
})

/** DeleteObjects with a raw XML body (one a client would not send). */
function postDelete(body: string): ReturnType<typeof rawRequest> {
  return rawRequest(node, {
    method: 'POST',
    path: `/${node.bucket}`,
    query: { delete: '' },
    body,
    headers: { 'content-md5': md5Base64(body), 'content-type': 'application/xml' },
  })
}

describe('DeleteObjects', () => {
  test('non-quiet mode lists every deleted key, existing or not', async () => {
    await Promise.all(['multi/a', 'multi/b', 'multi/c'].map((k) => put(k)))
    const r = await s3.send(
      new DeleteObjectsCommand({
        Bucket: node.bucket,
        Delete: { Objects: [{ Key: 'multi/a' }, { Key: 'multi/b' }, { Key: 'multi/missing' }] },
      }),
    )
    assert.deepEqual((r.Deleted ?? []).map((d) => d.Key).sort(), ['multi/a', 'multi/b', 'multi/missing'])
    assert.deepEqual(r.Errors ?? [], [])
    assert.equal(await objectExists(s3, node.bucket, 'multi/a'), false)
    assert.equal(await objectExists(s3, node.bucket, 'multi/b'), false)
    assert.equal(await objectExists(s3, node.bucket, 'multi/c'), true)
  })

  test('an invalid key or version id is an Error entry and the other keys are still deleted', async () => {
    await Promise.all(['mixed/a', 'mixed/b'].map((k) => put(k)))
    const long = `mixed/${'x'.repeat(1100)}`
    const body = `<Delete><Object><Key>mixed/a</Key></Object><Object><Key>${long}</Key></Object><Object><Key>mixed/b</Key><VersionId>not-a-version</VersionId></Object><Object><Key>mixed/b</Key></Object><Object><Key>mixed/a</Key></Object></Delete>`
    const r = await postDelete(body)
    assert.equal(r.status, 200, r.text)
    assert.deepEqual(
      [...r.text.matchAll(/<Deleted><Key>([^<]*)<\/Key>/g)].map((m) => m[1]),
      ['mixed/a', 'mixed/b', 'mixed/a'],
    )
    assert.deepEqual(
      [...r.text.matchAll(/<Error><Key>[^<]*<\/Key>(?:<VersionId>[^<]*<\/VersionId>)?<Code>([^<]*)</g)].map((m) => m[1]),
      ['KeyTooLongError', 'InvalidArgument'],
    )
    assert.equal(await objectExists(s3, node.bucket, 'mixed/a'), false)
    assert.equal(await objectExists(s3, node.bucket, 'mixed/b'), false)
  })

  test('quiet mode deletes without listing Deleted entries', async () => {
    await Promise.all(['quiet/a', 'quiet/b'].map((k) => put(k)))
    const r = await s3.send(
      new DeleteObjectsCommand({
        Bucket: node.bucket,
        Delete: { Quiet: true, Objects: [{ Key: 'quiet/a' }, { Key: 'quiet/b' }] },
      }),
    )
    assert.deepEqual(r.Deleted ?? [], [])
    assert.deepEqual(r.Errors ?? [], [])
    assert.equal(await objectExists(s3, node.bucket, 'quiet/a'), false)
    assert.equal(await objectExists(s3, node.bucket, 'quiet/b'), false)
  })

  test('keys with special characters are deleted exactly', async () => {
    const keys = ['sp/a b', 'sp/a&b', 'sp/<tag>', 'sp/caf\u00e9', 'sp/\u{1F600}', 'sp//double']
    await Promise.all(keys.map((k) => put(k)))
    const r = await s3.send(new DeleteObjectsCommand({ Bucket: node.bucket, Delete: { Objects: keys.map((Key) => ({ Key })) } }))
    assert.deepEqual((r.Deleted ?? []).map((d) => d.Key).sort(), [...keys].sort())
    for (const k of keys) assert.equal(await objectExists(s3, node.bucket, k), false, k)
  })

  for (const [label, body] of [
    ['a broken document', '<Delete><Object><Key>multi/c</Key></Object>'],
    ['a document without <Object>', '<Delete></Delete>'],
    ['another root element', '<Remove><Object><Key>multi/c</Key></Object></Remove>'],
    ['an <Object> without <Key>', '<Delete><Object><VersionId>1</VersionId></Object></Delete>'],
  ] as const) {
    test(`${label} is MalformedXML and deletes nothing`, async () => {
      const r = await postDelete(body)
      assert.equal(r.status, 400, r.text)
      assert.equal(xmlField(r.text, 'Code'), 'MalformedXML')
      assert.equal(await objectExists(s3, node.bucket, 'multi/c'), true)
    })
  }

  test('more than 1000 keys is refused and deletes nothing', async () => {
    const objects = Array.from({ length: 1001 }, (_, i) => ({ Key: i === 0 ? 'multi/c' : `none/${i}` }))
    await assert.rejects(
      s3.send(new DeleteObjectsCommand({ Bucket: node.bucket, Delete: { Objects: objects } })),
      s3Error('MalformedXML', 400),
    )
    assert.equal(await objectExists(s3, node.bucket, 'multi/c'), true)
  })
})
