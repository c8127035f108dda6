/**
 * ListObjects (v1) and ListObjectsV2 through the AWS SDK and raw requests: prefix, delimiter,
 * max-keys, marker, continuation-token, start-after, encoding-type=url, fetch-owner, and
 * pagination across common prefixes.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  ListObjectsCommand,
  type ListObjectsCommandOutput,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { md5Hex, rawRequest, s3Client, s3Error, xmlField } from '../../helpers/s3.ts'

let node: TestNode
let s3: S3Client
const BUCKET = 'listing'

const TOP_LEVEL = ['a', 'b', 'b0', 'c', 'e']
const FOLDERS = ['b/', 'd/', 'f/', 'g/', 'h/']
const IN_FOLDERS = FOLDERS.flatMap((f) => [`${f}1`, `${f}2`, `${f}sub/3`, `${f}sub/4`])
const ALL = [...TOP_LEVEL, ...IN_FOLDERS].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))

const ENCODED = ['enc/with space', 'enc/percent%41', 'enc/caf\u00e9', 'enc/plus+amp&', 'enc/emoji \u{1F680}']

before(async () => {
  node = await startTestNode()
  s3 = s3Client(node)
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }))
  await Promise.all(ALL.map((k) => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: k, Body: k }))))
  await Promise.all(ENCODED.map((k) => s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: k, Body: 'x' }))))
})
after(async () => {
  s3.destroy()
  await node.close()
})

const keysOf = (r: { Contents?: Array<{ Key?: string }> }): string[] => (r.Contents ?? []).map((c) => c.Key ?? '')
const prefixesOf = (r: { CommonPrefixes?: Array<{ Prefix?: string }> }): string[] =>
  (r.CommonPrefixes ?? []).map((c) => c.Prefix ?? '')

async function pageAllV2(input: { Delimiter?: string; Prefix?: string; MaxKeys: number; StartAfter?: string }) {
  const keys: string[] = []
  const prefixes: string[] = []
  let token: string | undefined
  let pages = 0
  for (;;) {
    const r: ListObjectsV2CommandOutput = await s3.send(
      new ListObjectsV2Command({ Bucket: BUCKET, ...input, ContinuationToken: token }),
    )
    pages++
    assert.ok((r.KeyCount ?? 0) <= input.MaxKeys, 'a page holds at most MaxKeys entries')
    assert.equal(r.KeyCount, keysOf(r).length + prefixesOf(r).length)
    keys.push(...keysOf(r))
    prefixes.push(...prefixesOf(r))
    if (r.IsTruncated !== true) break
    assert.ok(r.NextContinuationToken !== undefined, 'a truncated page has a continuation token')
    token = r.NextContinuationToken
    assert.ok(pages < 100, 'pagination terminates')
  }
  return { keys, prefixes, pages }
}

async function pageAllV1(input: { Delimiter?: string; Prefix?: string; MaxKeys: number }) {
  const keys: string[] = []
  const prefixes: string[] = []
  let marker: string | undefined
  let pages = 0
  for (;;) {
    const r: ListObjectsCommandOutput = await s3.send(new ListObjectsCommand({ Bucket: BUCKET, ...input, Marker: marker }))
    pages++
    keys.push(...keysOf(r))
    prefixes.push(...prefixesOf(r))
    if (r.IsTruncated !== true) break
    // Without a delimiter S3 leaves out NextMarker: the last key is the next marker.
    marker = r.NextMarker ?? keysOf(r).at(-1)
    assert.ok(marker !== undefined, 'a truncated page tells where to go on')
    assert.ok(pages < 100, 'pagination terminates')
  }
  return { keys, prefixes, pages }
}

describe('ListObjectsV2', () => {
  test('lists every key in byte order with size, ETag and date', async () => {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }))
    assert.deepEqual(keysOf(r), ALL)
    assert.equal(r.KeyCount, ALL.length)
    assert.equal(r.IsTruncated, false)
    const first = r.Contents?.[0]
    assert.equal(first?.Size, 1)
    assert.equal(first?.ETag, `"${md5Hex('a')}"`)
    assert.equal(first?.StorageClass, 'STANDARD')
    assert.ok(first?.LastModified instanceof Date, 'LastModified is a date')
    assert.equal(first?.Owner, undefined)
  })

  test('prefix restricts the listing', async () => {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'd/sub/' }))
    assert.deepEqual(keysOf(r), ['d/sub/3', 'd/sub/4'])
    assert.equal(r.Prefix, 'd/sub/')
  })

  test('delimiter groups keys into common prefixes', async () => {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Delimiter: '/' }))
    assert.deepEqual(keysOf(r), TOP_LEVEL)
    assert.deepEqual(prefixesOf(r), FOLDERS)
    assert.equal(r.Delimiter, '/')
  })

  test('prefix and delimiter together', async () => {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'f/', Delimiter: '/' }))
    assert.deepEqual(keysOf(r), ['f/1', 'f/2'])
    assert.deepEqual(prefixesOf(r), ['f/sub/'])
  })

  for (const maxKeys of [1, 2, 3]) {
    test(`MaxKeys=${maxKeys} with Delimiter='/' yields every prefix and top-level key exactly once`, async () => {
      const { keys, prefixes, pages } = await pageAllV2({ Delimiter: '/', MaxKeys: maxKeys })
      assert.deepEqual(keys, TOP_LEVEL)
      assert.deepEqual(prefixes, FOLDERS)
      assert.equal(pages, Math.ceil((TOP_LEVEL.length + FOLDERS.length) / maxKeys))
    })
  }

  test('MaxKeys=2 without a delimiter pages through all 25 keys', async () => {
    const { keys, pages } = await pageAllV2({ MaxKeys: 2 })
    assert.equal(ALL.length, 25)
    assert.deepEqual(keys, ALL)
    assert.equal(pages, 13)
  })

  test('StartAfter skips keys up to and including it', async () => {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, StartAfter: 'g/sub/3' }))
    assert.deepEqual(
      keysOf(r),
      ALL.filter((k) => k > 'g/sub/3'),
    )
    assert.equal(r.StartAfter, 'g/sub/3')
  })

  test('StartAfter inside a common prefix does not repeat that prefix', async () => {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Delimiter: '/', StartAfter: 'd/1' }))
    assert.deepEqual(prefixesOf(r), ['f/', 'g/', 'h/'])
    assert.deepEqual(keysOf(r), ['e'])
  })

  test('MaxKeys=0 lists nothing; MaxKeys above 1000 is capped', async () => {
    const zero = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, MaxKeys: 0 }))
    assert.deepEqual(keysOf(zero), [])
    const big = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, MaxKeys: 5000 }))
    assert.equal(big.MaxKeys, 1000)
    assert.equal(keysOf(big).length, ALL.length)
  })

  test('FetchOwner adds the owner to each entry', async () => {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, FetchOwner: true, MaxKeys: 1 }))
    assert.equal(r.Contents?.[0]?.Owner?.DisplayName, 'test')
    assert.ok((r.Contents?.[0]?.Owner?.ID ?? '') !== '', 'the owner has an id')
  })

  test('deleted objects are not listed', async () => {
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'gone/x', Body: 'x' }))
    await s3.send(new DeleteObjectCommand({ Bucket: node.bucket, Key: 'gone/x' }))
    const r = await s3.send(new ListObjectsV2Command({ Bucket: node.bucket, Prefix: 'gone/' }))
    assert.deepEqual(keysOf(r), [])
    assert.equal(r.KeyCount, 0)
  })

  test('encoding-type=url encodes keys, prefix and delimiter', async () => {
    const r = await rawRequest(node, {
      method: 'GET',
      path: `/${node.bucket}`,
      query: { 'list-type': '2', prefix: 'enc/', 'encoding-type': 'url' },
    })
    assert.equal(r.status, 200, r.text)
    assert.equal(xmlField(r.text, 'EncodingType'), 'url')
    const keys = [...r.text.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1] ?? '')
    for (const k of keys) assert.match(k, /^[A-Za-z0-9\-._~%/]*$/, `${k} is URL-encoded`)
    assert.ok(keys.includes('enc/with%20space'), 'a space is %20')
    assert.ok(keys.includes('enc/percent%2541'), 'a percent sign is %25')
    assert.ok(keys.includes('enc/plus%2Bamp%26'), 'plus and ampersand are encoded')
    assert.deepEqual(
      keys.map((k) => decodeURIComponent(k)).sort(),
      [...ENCODED].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))),
    )
  })

  test('keys with spaces, unicode and % are listed verbatim without encoding-type', async () => {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: node.bucket, Prefix: 'enc/' }))
    assert.deepEqual(
      keysOf(r),
      [...ENCODED].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))),
    )
  })

  test('a bogus continuation token is InvalidArgument', async () => {
    const r = await rawRequest(node, {
      method: 'GET',
      path: `/${BUCKET}`,
      query: { 'list-type': '2', 'continuation-token': '!!not a token!!' },
    })
    assert.equal(r.status, 400)
    assert.equal(xmlField(r.text, 'Code'), 'InvalidArgument')
  })
})

describe('ListObjects (v1)', () => {
  test('lists every key with its owner', async () => {
    const r = await s3.send(new ListObjectsCommand({ Bucket: BUCKET }))
    assert.deepEqual(keysOf(r), ALL)
    assert.equal(r.IsTruncated, false)
    assert.equal(r.Contents?.[0]?.Owner?.DisplayName, 'test')
  })

  test('delimiter groups keys into common prefixes', async () => {
    const r = await s3.send(new ListObjectsCommand({ Bucket: BUCKET, Delimiter: '/' }))
    assert.deepEqual(keysOf(r), TOP_LEVEL)
    assert.deepEqual(prefixesOf(r), FOLDERS)
  })

  test('Marker skips keys up to and including it', async () => {
    const r = await s3.send(new ListObjectsCommand({ Bucket: BUCKET, Marker: 'f/2' }))
    assert.deepEqual(
      keysOf(r),
      ALL.filter((k) => k > 'f/2'),
    )
    assert.equal(r.Marker, 'f/2')
  })

  for (const maxKeys of [1, 2]) {
    test(`MaxKeys=${maxKeys} with Delimiter='/' and NextMarker yields everything exactly once`, async () => {
      const { keys, prefixes } = await pageAllV1({ Delimiter: '/', MaxKeys: maxKeys })
      assert.deepEqual(keys, TOP_LEVEL)
      assert.deepEqual(prefixes, FOLDERS)
    })
  }

  test('MaxKeys=2 without a delimiter pages through all keys using the last key', async () => {
    const { keys } = await pageAllV1({ MaxKeys: 2 })
    assert.deepEqual(keys, ALL)
  })

  test('prefix and encoding-type=url', async () => {
    const r = await rawRequest(node, {
      method: 'GET',
      path: `/${node.bucket}`,
      query: { prefix: 'enc/with ', 'encoding-type': 'url' },
    })
    assert.equal(r.status, 200, r.text)
    assert.equal(xmlField(r.text, 'Prefix'), 'enc/with%20')
    assert.equal(xmlField(r.text, 'Key'), 'enc/with%20space')
  })
})

describe('invalid listing parameters', () => {
  for (const [label, query] of [
    ['max-keys=-1 (v2)', { 'list-type': '2', 'max-keys': '-1' }],
    ['max-keys=-1 (v1)', { 'max-keys': '-1' }],
    ['max-keys=abc', { 'list-type': '2', 'max-keys': 'abc' }],
    ['encoding-type=bogus (v2)', { 'list-type': '2', 'encoding-type': 'bogus' }],
    ['encoding-type=bogus (v1)', { 'encoding-type': 'bogus' }],
  ] as const) {
    test(`${label} is InvalidArgument`, async () => {
      const r = await rawRequest(node, { method: 'GET', path: `/${BUCKET}`, query })
      assert.equal(r.status, 400, r.text)
      assert.equal(xmlField(r.text, 'Code'), 'InvalidArgument')
    })
  }

  test('listing a missing bucket is NoSuchBucket', async () => {
    await assert.rejects(s3.send(new ListObjectsV2Command({ Bucket: 'no-such-bucket' })), s3Error('NoSuchBucket', 404))
  })
})
