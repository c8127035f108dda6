/** Listing edge cases on the object table directly: delimiters, pagination across prefixes, byte order. */
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { test } from 'node:test'
import type { ChecksumResult } from '../../../lib/api/common/signature/body.ts'
import { deleteObject } from '../../../lib/api/s3/delete.ts'
import { cmpKeys, handleListObjectsV2, listObjects, uriEncode } from '../../../lib/api/s3/list.ts'
import { renderXml } from '../../../lib/api/s3/xml.ts'
import { saveStream } from '../../../lib/api/s3/put.ts'
import type { Garage } from '../../../lib/model/garage.ts'
import { genUuid, type Uuid, utf8 } from '../../../lib/util/data.ts'
import { startModel } from '../../helpers/model.ts'

const ok: Promise<ChecksumResult> = Promise.resolve({ checksums: {}, trailers: {}, md5: Buffer.alloc(16) })

async function put(g: Garage, bucket: Uuid, keys: string[]): Promise<void> {
  for (const k of keys) await saveStream(g, bucket, k, [], Readable.from([Buffer.from(k)]), ok)
}

/** Lists everything page by page, as a client following continuation tokens would. */
async function listAll(g: Garage, bucket: Uuid, prefix: string, delimiter: string | undefined, maxKeys: number) {
  const keys: string[] = []
  const prefixes: string[] = []
  let start = utf8(prefix)
  let pages = 0
  for (;;) {
    const r = await listObjects(g, bucket, { prefix, delimiter, maxKeys, start })
    pages++
    keys.push(...r.objects.map((o) => o.key))
    prefixes.push(...r.commonPrefixes)
    assert.ok(r.objects.length + r.commonPrefixes.length <= maxKeys, 'a page holds at most maxKeys entries')
    if (!r.truncated) break
    assert.ok(r.nextStart !== undefined, 'a truncated page says where to continue')
    start = r.nextStart
    assert.ok(pages < 1000, 'pagination terminates')
  }
  return { keys, prefixes, pages }
}

const KEYS = [
  'a',
  'a/1',
  'a/2',
  'a/b/1',
  'b',
  'b/1',
  'c/1',
  'c/2',
  'c/3',
  'd',
  'é/1',
  'z/z/z',
  '\u{1F600}',
  'file with spaces',
  'x+y&z%',
]

test('delimiter groups keys into common prefixes, each once, on every page size', async (t) => {
  const { garage } = await startModel(t)
  const bucket = genUuid()
  await put(garage, bucket, KEYS)
  const sorted = [...KEYS].sort((x, y) => Buffer.compare(utf8(x), utf8(y)))
  for (const maxKeys of [1, 2, 3, 5, 1000]) {
    const flat = await listAll(garage, bucket, '', undefined, maxKeys)
    assert.deepEqual(flat.keys, sorted, `flat listing, maxKeys=${maxKeys}`)
    const grouped = await listAll(garage, bucket, '', '/', maxKeys)
    assert.deepEqual(grouped.keys, ['a', 'b', 'd', 'file with spaces', 'x+y&z%', '\u{1F600}'], `keys, maxKeys=${maxKeys}`)
    assert.deepEqual(grouped.prefixes, ['a/', 'b/', 'c/', 'z/', 'é/'], `prefixes, maxKeys=${maxKeys}`)
    const sub = await listAll(garage, bucket, 'a/', '/', maxKeys)
    assert.deepEqual(sub.keys, ['a/1', 'a/2'])
    assert.deepEqual(sub.prefixes, ['a/b/'])
  }
})

test('multi-character delimiters and a prefix that is not a folder', async (t) => {
  const { garage } = await startModel(t)
  const bucket = genUuid()
  await put(garage, bucket, ['x--1', 'x--2--3', 'x-y', 'xa'])
  const r = await listAll(garage, bucket, 'x', '--', 10)
  assert.deepEqual(r.prefixes, ['x--'])
  assert.deepEqual(r.keys, ['x-y', 'xa'])
})

test('start-after / marker skip keys and the common prefix they fall in', async (t) => {
  const { garage } = await startModel(t)
  const bucket = genUuid()
  await put(garage, bucket, ['a/1', 'a/2', 'b', 'c/1'])
  const r = await listObjects(garage, bucket, { prefix: '', delimiter: '/', maxKeys: 10, start: utf8('a/\0'), after: 'a/' })
  assert.deepEqual(r.commonPrefixes, ['c/'])
  assert.deepEqual(
    r.objects.map((o) => o.key),
    ['b'],
  )
})

test('deleted objects and maxKeys 0 list nothing', async (t) => {
  const { garage } = await startModel(t)
  const bucket = genUuid()
  await put(garage, bucket, ['gone', 'kept'])
  await deleteObject(garage, bucket, 'gone')
  const r = await listObjects(garage, bucket, { prefix: '', maxKeys: 10, start: new Uint8Array(0) })
  assert.deepEqual(
    r.objects.map((o) => o.key),
    ['kept'],
  )
  const none = await listObjects(garage, bucket, { prefix: '', maxKeys: 0, start: new Uint8Array(0) })
  assert.equal(none.objects.length + none.commonPrefixes.length, 0)
  assert.equal(none.truncated, false)
})

test('URL encoding of listed names keeps slashes and encodes everything AWS does', () => {
  assert.equal(uriEncode('a b/c+d&e%f'), 'a%20b/c%2Bd%26e%25f')
  assert.equal(uriEncode("é*'()!~"), '%C3%A9%2A%27%28%29%21~')
})

test('keys compare in the order of their UTF-8 bytes', () => {
  const chars = [
    'a',
    'z',
    '/',
    '\u00e9',
    '\u07ff',
    '\u0800',
    '\ud7ff',
    '\ue000',
    '\uffff',
    '\u{10000}',
    '\u{1F600}',
    '\u{10FFFF}',
  ]
  let s = 12345
  const rand = (n: number): number => {
    s = (s * 1103515245 + 12345) % 2 ** 31
    return s % n
  }
  const word = (): string => Array.from({ length: rand(4) }, () => chars[rand(chars.length)]).join('')
  for (let i = 0; i < 3000; i++) {
    const [a, b] = [word(), word()]
    assert.equal(
      Math.sign(cmpKeys(a, b)),
      Math.sign(Buffer.compare(utf8(a), utf8(b))),
      `${JSON.stringify(a)} vs ${JSON.stringify(b)}`,
    )
  }
})

test('a delimited listing over many prefixes, each holding more keys than a page after a jump, lists each once', async (t) => {
  const { garage } = await startModel(t)
  const bucket = genUuid()
  // Prefixes of 1 to 60 keys, with top-level keys between them: pages after a jump (16 rows)
  // end inside a prefix, at its end, and across top-level keys.
  const keys: string[] = []
  for (let d = 0; d < 40; d++) {
    const dir = `d${String(d).padStart(2, '0')}`
    for (let i = 0; i < 1 + ((d * 7) % 60); i++) keys.push(`${dir}/${String(i).padStart(3, '0')}`)
    if (d % 3 === 0) keys.push(`${dir}-top`)
  }
  await put(garage, bucket, keys)
  const sorted = [...keys].sort((x, y) => Buffer.compare(utf8(x), utf8(y)))
  const topKeys = sorted.filter((k) => !k.includes('/'))
  const prefixes = [...new Set(sorted.filter((k) => k.includes('/')).map((k) => k.slice(0, k.indexOf('/') + 1)))]
  for (const maxKeys of [7, 1000]) {
    const grouped = await listAll(garage, bucket, '', '/', maxKeys)
    assert.deepEqual(grouped.keys, topKeys, `top-level keys, maxKeys=${maxKeys}`)
    assert.deepEqual(grouped.prefixes, prefixes, `each common prefix once, maxKeys=${maxKeys}`)
    const flat = await listAll(garage, bucket, '', undefined, maxKeys)
    assert.deepEqual(flat.keys, sorted, `flat listing, maxKeys=${maxKeys}`)
  }
})

test('the page read at quorum (rows merged from replicas) lists what the local pass lists', async (t) => {
  const { garage } = await startModel(t)
  const bucket = genUuid()
  const keys = [...KEYS]
  for (let d = 0; d < 30; d++) for (let i = 0; i < 1 + ((d * 11) % 40); i++) keys.push(`q${d}/${i}`)
  await put(garage, bucket, keys)
  await deleteObject(garage, bucket, 'q3/0')
  await deleteObject(garage, bucket, 'b')
  const local = []
  for (const [prefix, delimiter, maxKeys] of [
    ['', undefined, 7],
    ['', '/', 3],
    ['q1', '/', 1000],
    ['', '/', 1000],
  ] as const) {
    local.push(await listAll(garage, bucket, prefix, delimiter, maxKeys))
  }
  assert.ok(local[0]?.keys.includes('q3/1') && !local[0]?.keys.includes('q3/0') && !local[0]?.keys.includes('b'))
  // The same model, its object table taken as replicated: listObjects reads pages through getRange.
  const table = garage.objectTable as { readsLocally: (p: Uint8Array) => boolean }
  table.readsLocally = () => false
  let i = 0
  for (const [prefix, delimiter, maxKeys] of [
    ['', undefined, 7],
    ['', '/', 3],
    ['q1', '/', 1000],
    ['', '/', 1000],
  ] as const) {
    assert.deepEqual(await listAll(garage, bucket, prefix, delimiter, maxKeys), local[i++], `${prefix} ${delimiter} ${maxKeys}`)
  }
})

/** The XML of a ListObjectsV2 answer as the generic builder writes it (the reference). */
function referenceV2(
  bucketName: string,
  p: { prefix?: string; delimiter?: string; maxKeys: number; continuationToken?: string; startAfter?: string; url: boolean },
  r: Awaited<ReturnType<typeof listObjects>>,
  owner: { id: string; displayName: string } | undefined,
): string {
  const enc = (s: string) => (p.url ? uriEncode(s) : s)
  return renderXml('ListBucketResult', {
    Name: bucketName,
    Prefix: enc(p.prefix ?? ''),
    ...(p.delimiter !== undefined ? { Delimiter: enc(p.delimiter) } : {}),
    MaxKeys: p.maxKeys,
    KeyCount: r.objects.length + r.commonPrefixes.length,
    IsTruncated: r.truncated,
    ...(p.continuationToken !== undefined ? { ContinuationToken: p.continuationToken } : {}),
    ...(r.truncated && r.nextStart !== undefined
      ? { NextContinuationToken: Buffer.from(r.nextStart).toString('base64url') }
      : {}),
    ...(p.startAfter !== undefined ? { StartAfter: enc(p.startAfter) } : {}),
    ...(p.url ? { EncodingType: 'url' } : {}),
    Contents: r.objects.map((o) => ({
      Key: enc(o.key),
      LastModified: new Date(o.lastModified).toISOString(),
      ETag: `"${o.etag}"`,
      Size: o.size,
      StorageClass: 'STANDARD',
      ...(owner !== undefined ? { Owner: { ID: owner.id, DisplayName: owner.displayName } } : {}),
    })),
    CommonPrefixes: r.commonPrefixes.map((c) => ({ Prefix: enc(c) })),
  })
}

test('the ListObjectsV2 body is byte for byte what the generic XML builder writes', async (t) => {
  const { garage } = await startModel(t)
  const bucket = genUuid()
  await put(garage, bucket, [...KEYS, `it's "quoted" <&>`, 'a/<x>/1'])
  const owner = { id: 'id&<1>', displayName: `o'"` }
  let cases = 0
  for (const prefix of [undefined, '', 'a', 'a/']) {
    for (const delimiter of [undefined, '/', '<']) {
      for (const maxKeys of [0, 1, 2, 1000]) {
        for (const url of [false, true]) {
          for (const fetchOwner of [false, true]) {
            for (const startAfter of [undefined, 'a/1', '']) {
              const params = { prefix, delimiter, maxKeys, startAfter, ...(url ? { encodingType: 'url' } : {}), fetchOwner }
              const res = await handleListObjectsV2(garage, bucket, 'bkt&1', params, owner)
              const start = startAfter === undefined ? utf8(prefix ?? '') : new Uint8Array([...utf8(startAfter), 0])
              const r = await listObjects(garage, bucket, {
                prefix: prefix ?? '',
                delimiter,
                maxKeys,
                start: Buffer.compare(start, utf8(prefix ?? '')) > 0 ? start : utf8(prefix ?? ''),
                ...(startAfter === undefined ? {} : { after: startAfter }),
              })
              const want = referenceV2(
                'bkt&1',
                { prefix, delimiter, maxKeys, startAfter, url },
                r,
                fetchOwner ? owner : undefined,
              )
              const body = Buffer.from(res.body as Uint8Array)
              assert.equal(body.toString('utf8'), want, JSON.stringify(params))
              assert.ok(body.equals(Buffer.from(want, 'utf8')), JSON.stringify(params))
              cases++
            }
          }
        }
      }
    }
  }
  assert.equal(cases, 4 * 3 * 4 * 2 * 2 * 3)
})
