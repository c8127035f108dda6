/**
 * Object keys through the AWS SDK: up to 1024 bytes of UTF-8, and characters that need encoding
 * (spaces, '&', '+', '%', accents, emoji, '//'), each put, got, listed and deleted.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  DeleteObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import type { TestNode } from '../../../lib/testing.ts'
import { encodeKey, getBytes, objectExists, rawRequest, s3Error, xmlField, useTestNode } from '../../helpers/s3.ts'

let node: TestNode
let s3: S3Client

useTestNode({}, (n, c) => {
  node = n
  s3 = c
})

/** `k/` + 1019 ASCII bytes + 'é' (2 bytes) + 1 byte = 1024 bytes. */
const LONG_1024 = `k/${'x'.repeat(1019)}\u00e9y`
const SPECIAL_KEYS = [
  'k/with space',
  'k/a&b',
  'k/a+b',
  'k/100%',
  'k/%20literal',
  'k/caf\u00e9',
  'k/\u{1F680} rocket',
  'k/double//slash',
  'k/trailing/',
  'k/question?mark#hash',
  'k/tilde~star*paren()',
  'k/semi;colon:comma,equals=',
  'k/\u6f22\u5b57',
  `k/${'\u00e9'.repeat(511)}`,
  LONG_1024,
]

describe('keys needing encoding', () => {
  test('the long keys are exactly at the limit', () => {
    assert.equal(Buffer.byteLength(LONG_1024), 1024)
    assert.equal(Buffer.byteLength(`k/${'\u00e9'.repeat(511)}`), 1024)
  })

  for (const key of SPECIAL_KEYS) {
    const label = key.length > 40 ? `${key.slice(0, 12)}… (${Buffer.byteLength(key)} bytes)` : JSON.stringify(key)
    test(`${label}: put, get, head, list and delete`, async () => {
      await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: key, Body: `body of ${key}` }))
      assert.equal((await getBytes(s3, node.bucket, key)).toString(), `body of ${key}`)
      const h = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: key }))
      assert.equal(h.ContentLength, Buffer.byteLength(`body of ${key}`))

      const v2 = await s3.send(new ListObjectsV2Command({ Bucket: node.bucket, Prefix: key }))
      assert.ok(
        (v2.Contents ?? []).some((c) => c.Key === key),
        'listed by ListObjectsV2 under its own prefix',
      )
      const v1 = await s3.send(new ListObjectsCommand({ Bucket: node.bucket, Prefix: key }))
      assert.ok(
        (v1.Contents ?? []).some((c) => c.Key === key),
        'listed by ListObjects under its own prefix',
      )

      await s3.send(new DeleteObjectCommand({ Bucket: node.bucket, Key: key }))
      assert.equal(await objectExists(s3, node.bucket, key), false)
    })
  }

  test('all of them together are listed once each, in byte order', async () => {
    const keys = SPECIAL_KEYS.map((k) => `A/${k.slice(2)}`)
    await Promise.all(keys.map((k) => s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: k, Body: 'x' }))))
    const r = await s3.send(new ListObjectsV2Command({ Bucket: node.bucket, Prefix: 'A/' }))
    const expected = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
    assert.deepEqual(
      (r.Contents ?? []).map((c) => c.Key),
      expected,
    )
  })

  test('a key beginning with a slash is its own key', async () => {
    await rawRequest(node, { method: 'PUT', path: `/${node.bucket}//leading`, body: 'leading slash' })
    const r = await rawRequest(node, { method: 'GET', path: `/${node.bucket}//leading` })
    assert.equal(r.text, 'leading slash')
    assert.equal(await objectExists(s3, node.bucket, 'leading'), false)
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: node.bucket, Prefix: '/' }))
    assert.deepEqual(
      (listed.Contents ?? []).map((c) => c.Key),
      ['/leading'],
    )
  })

  test('a raw path with encoded characters maps to the decoded key', async () => {
    const key = 'raw/sp ace+plus%pct'
    const r = await rawRequest(node, { method: 'PUT', path: `/${node.bucket}/${encodeKey(key)}`, body: 'raw' })
    assert.equal(r.status, 200, r.text)
    assert.equal((await getBytes(s3, node.bucket, key)).toString(), 'raw')
  })
})

describe('key length', () => {
  test('a 1025-byte key is KeyTooLongError and stores nothing', async () => {
    const key = `${LONG_1024}z`
    await assert.rejects(
      s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: key, Body: 'x' })),
      s3Error('KeyTooLongError', 400),
    )
    const r = await s3.send(new ListObjectsV2Command({ Bucket: node.bucket, Prefix: 'k/xxxxxxxx' }))
    assert.deepEqual(r.Contents ?? [], [])
  })

  test('a 1025-byte multibyte key is KeyTooLongError', async () => {
    const key = `k/${'\u00e9'.repeat(511)}z`
    const r = await rawRequest(node, { method: 'PUT', path: `/${node.bucket}/${encodeKey(key)}`, body: 'x' })
    assert.equal(r.status, 400)
    assert.equal(xmlField(r.text, 'Code'), 'KeyTooLongError')
    // HeadObject of such a key is a 400 too (no key that long can exist): the listing says it.
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: node.bucket, Prefix: 'k/' }))
    assert.ok(!(listed.Contents ?? []).some((o) => o.Key === key), 'nothing was stored')
  })
})
