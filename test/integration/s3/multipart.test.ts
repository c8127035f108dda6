/**
 * Multipart uploads through the AWS SDK: parts out of sequence and re-uploaded, the final ETag,
 * GetObject by part number, the errors of CompleteMultipartUpload, abort, ListParts and
 * ListMultipartUploads pagination, and that no block outlives the objects using it.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import {
  AbortMultipartUploadCommand,
  type ChecksumAlgorithm,
  type ChecksumType,
  CompleteMultipartUploadCommand,
  type CompletedPart,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { blockHashes, expectBlocks } from '../../helpers/blocks.ts'
import { crc32Base64, getBytes, md5Hex, objectExists, rawRequest, s3Client, s3Error, useTestNode } from '../../helpers/s3.ts'

const MiB = 1024 * 1024

let node: TestNode
let s3: S3Client

useTestNode({ block_gc_delay_msec: 200 }, (n, c) => {
  node = n
  s3 = c
})

async function create(client: S3Client, bucket: string, key: string): Promise<string> {
  const r = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: 'text/x-mpu' }))
  assert.ok(r.UploadId, 'CreateMultipartUpload returns an UploadId')
  return r.UploadId
}

async function part(client: S3Client, bucket: string, key: string, uploadId: string, n: number, body: Buffer): Promise<string> {
  const r = await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: n, Body: body }))
  assert.equal(r.ETag, `"${md5Hex(body)}"`)
  return r.ETag as string
}

async function complete(
  client: S3Client,
  bucket: string,
  key: string,
  uploadId: string,
  parts: Array<[number, string]>,
): Promise<string | undefined> {
  const r = await client.send(
    new CompleteMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      UploadId: uploadId,
      MultipartUpload: { Parts: parts.map(([PartNumber, ETag]) => ({ PartNumber, ETag })) },
    }),
  )
  return r.ETag
}

/** The S3 ETag of a multipart object made of these part bodies. */
function multipartEtag(parts: Buffer[]): string {
  const h = createHash('md5')
  for (const p of parts) h.update(createHash('md5').update(p).digest())
  return `"${h.digest('hex')}-${parts.length}"`
}

describe('a multipart upload with parts 2, 3 and 6, part 3 uploaded twice', () => {
  const key = 'mpu/sparse'
  const p2 = randomBytes(5 * MiB)
  const p3old = randomBytes(5 * MiB)
  const p3 = randomBytes(5 * MiB + 17)
  const p6 = randomBytes(100_000)
  let etag: string | undefined

  before(async () => {
    const id = await create(s3, node.bucket, key)
    const e2 = await part(s3, node.bucket, key, id, 2, p2)
    await part(s3, node.bucket, key, id, 3, p3old)
    const e6 = await part(s3, node.bucket, key, id, 6, p6)
    const e3 = await part(s3, node.bucket, key, id, 3, p3)
    etag = await complete(s3, node.bucket, key, id, [
      [2, e2],
      [3, e3],
      [6, e6],
    ])
  })

  test('the final ETag is md5(binary part md5s)-N', () => {
    assert.equal(etag, multipartEtag([p2, p3, p6]))
  })

  test('the object is the concatenation of the chosen parts, with the upload metadata', async () => {
    const body = await getBytes(s3, node.bucket, key)
    assert.ok(body.equals(Buffer.concat([p2, p3, p6])), 'content matches the parts in order')
    const h = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: key }))
    assert.equal(h.ContentLength, p2.length + p3.length + p6.length)
    assert.equal(h.ContentType, 'text/x-mpu')
    assert.equal(h.ETag, etag)
  })

  test('GetObject and HeadObject with PartNumber return the renumbered part and the part count', async () => {
    const expected = [p2, p3, p6]
    let offset = 0
    for (let i = 0; i < expected.length; i++) {
      const want = expected[i] as Buffer
      const r = await s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: key, PartNumber: i + 1 }))
      const got = Buffer.from((await r.Body?.transformToByteArray()) ?? [])
      assert.ok(got.equals(want), `part ${i + 1} content`)
      assert.equal(r.PartsCount, 3)
      assert.equal(r.ContentRange, `bytes ${offset}-${offset + want.length - 1}/${p2.length + p3.length + p6.length}`)
      const h = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: key, PartNumber: i + 1 }))
      assert.equal(h.ContentLength, want.length)
      assert.equal(h.PartsCount, 3)
      offset += want.length
    }
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: key, PartNumber: 4 })), (err: unknown) => {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
      assert.ok(status === 400 || status === 416, `part 4 of 3 is refused (got ${status})`)
      return true
    })
  })

  test('the completed upload is gone', async () => {
    const r = await s3.send(new ListMultipartUploadsCommand({ Bucket: node.bucket, Prefix: key }))
    assert.deepEqual(r.Uploads ?? [], [])
  })
})

describe('CompleteMultipartUpload errors', () => {
  test('EntityTooSmall when a part other than the last is under 5 MiB; the upload survives', async () => {
    const key = 'mpu/too-small'
    const id = await create(s3, node.bucket, key)
    const a = randomBytes(1000)
    const b = randomBytes(2000)
    const ea = await part(s3, node.bucket, key, id, 1, a)
    const eb = await part(s3, node.bucket, key, id, 2, b)
    await assert.rejects(
      complete(s3, node.bucket, key, id, [
        [1, ea],
        [2, eb],
      ]),
      s3Error('EntityTooSmall', 400),
    )
    // A single small part is fine: it is the last one.
    const etag = await complete(s3, node.bucket, key, id, [[2, eb]])
    assert.equal(etag, multipartEtag([b]))
    assert.ok((await getBytes(s3, node.bucket, key)).equals(b), 'object is part 2')
  })

  test('InvalidPart for an unknown part number or a stale ETag', async () => {
    const key = 'mpu/invalid-part'
    const id = await create(s3, node.bucket, key)
    const first = randomBytes(100)
    const eOld = await part(s3, node.bucket, key, id, 1, first)
    const eNew = await part(s3, node.bucket, key, id, 1, randomBytes(100))
    await assert.rejects(complete(s3, node.bucket, key, id, [[2, eNew]]), s3Error('InvalidPart', 400))
    await assert.rejects(complete(s3, node.bucket, key, id, [[1, eOld]]), s3Error('InvalidPart', 400))
    await assert.rejects(complete(s3, node.bucket, key, id, [[1, '"0123456789abcdef0123456789abcdef"']]), s3Error('InvalidPart'))
    await s3.send(new AbortMultipartUploadCommand({ Bucket: node.bucket, Key: key, UploadId: id }))
  })

  test('InvalidPartOrder when part numbers do not strictly increase', async () => {
    const key = 'mpu/order'
    const id = await create(s3, node.bucket, key)
    const e1 = await part(s3, node.bucket, key, id, 1, randomBytes(10))
    const e2 = await part(s3, node.bucket, key, id, 2, randomBytes(10))
    await assert.rejects(
      complete(s3, node.bucket, key, id, [
        [2, e2],
        [1, e1],
      ]),
      s3Error('InvalidPartOrder', 400),
    )
    await assert.rejects(
      complete(s3, node.bucket, key, id, [
        [1, e1],
        [1, e1],
      ]),
      s3Error('InvalidPartOrder', 400),
    )
    await s3.send(new AbortMultipartUploadCommand({ Bucket: node.bucket, Key: key, UploadId: id }))
  })

  test('an empty part list is MalformedXML', async () => {
    const key = 'mpu/empty-list'
    const id = await create(s3, node.bucket, key)
    const r = await rawRequest(node, {
      method: 'POST',
      path: `/${node.bucket}/${key}`,
      query: { uploadId: id },
      body: '<CompleteMultipartUpload></CompleteMultipartUpload>',
    })
    assert.equal(r.status, 400)
    assert.match(r.text, /<Code>MalformedXML<\/Code>/)
    await s3.send(new AbortMultipartUploadCommand({ Bucket: node.bucket, Key: key, UploadId: id }))
  })
})

describe('unknown uploads and part numbers', () => {
  const key = 'mpu/unknown'
  const bogus = randomBytes(32).toString('hex')

  test('NoSuchUpload for an id that names no upload, or is not an id at all', async () => {
    for (const id of [bogus, 'not-an-upload-id']) {
      await assert.rejects(
        s3.send(new UploadPartCommand({ Bucket: node.bucket, Key: key, UploadId: id, PartNumber: 1, Body: 'x' })),
        s3Error('NoSuchUpload', 404),
      )
      await assert.rejects(complete(s3, node.bucket, key, id, [[1, '"x"']]), s3Error('NoSuchUpload', 404))
      await assert.rejects(
        s3.send(new AbortMultipartUploadCommand({ Bucket: node.bucket, Key: key, UploadId: id })),
        s3Error('NoSuchUpload', 404),
      )
      await assert.rejects(
        s3.send(new ListPartsCommand({ Bucket: node.bucket, Key: key, UploadId: id })),
        s3Error('NoSuchUpload', 404),
      )
    }
  })

  test('an upload id is bound to its key', async () => {
    const id = await create(s3, node.bucket, key)
    await assert.rejects(
      s3.send(new UploadPartCommand({ Bucket: node.bucket, Key: `${key}-other`, UploadId: id, PartNumber: 1, Body: 'x' })),
      s3Error('NoSuchUpload', 404),
    )
    await s3.send(new AbortMultipartUploadCommand({ Bucket: node.bucket, Key: key, UploadId: id }))
  })

  test('part numbers outside 1..10000 are InvalidArgument', async () => {
    const id = await create(s3, node.bucket, key)
    for (const n of [0, 10001]) {
      const r = await rawRequest(node, {
        method: 'PUT',
        path: `/${node.bucket}/${key}`,
        query: { partNumber: String(n), uploadId: id },
        body: 'x',
      })
      assert.equal(r.status, 400, `part number ${n}`)
      assert.match(r.text, /<Code>InvalidArgument<\/Code>/)
    }
    await part(s3, node.bucket, key, id, 10000, Buffer.from('last'))
    await s3.send(new AbortMultipartUploadCommand({ Bucket: node.bucket, Key: key, UploadId: id }))
  })
})

describe('AbortMultipartUpload', () => {
  test('an aborted upload is no longer listed, takes no parts, and never becomes an object', async () => {
    const key = 'mpu/aborted'
    const id = await create(s3, node.bucket, key)
    await part(s3, node.bucket, key, id, 1, randomBytes(2 * MiB))
    const r = await s3.send(new AbortMultipartUploadCommand({ Bucket: node.bucket, Key: key, UploadId: id }))
    assert.equal(r.$metadata.httpStatusCode, 204)
    const list = await s3.send(new ListMultipartUploadsCommand({ Bucket: node.bucket, Prefix: key }))
    assert.deepEqual(list.Uploads ?? [], [])
    await assert.rejects(
      s3.send(new UploadPartCommand({ Bucket: node.bucket, Key: key, UploadId: id, PartNumber: 2, Body: 'x' })),
      s3Error('NoSuchUpload', 404),
    )
    assert.equal(await objectExists(s3, node.bucket, key), false)
  })

  test('an upload in progress does not hide the current object', async () => {
    const key = 'mpu/over-existing'
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: key, Body: 'current' }))
    const id = await create(s3, node.bucket, key)
    await part(s3, node.bucket, key, id, 1, Buffer.from('next'))
    assert.equal((await getBytes(s3, node.bucket, key)).toString(), 'current')
    await s3.send(new AbortMultipartUploadCommand({ Bucket: node.bucket, Key: key, UploadId: id }))
    assert.equal((await getBytes(s3, node.bucket, key)).toString(), 'current')
  })
})

describe('ListParts', () => {
  const key = 'mpu/list-parts'
  let id: string
  const etags = new Map<number, string>()

  before(async () => {
    id = await create(s3, node.bucket, key)
    for (const n of [1, 2, 4, 5, 9]) etags.set(n, await part(s3, node.bucket, key, id, n, randomBytes(10 + n)))
    // A re-upload is listed once, with its latest ETag.
    etags.set(4, await part(s3, node.bucket, key, id, 4, randomBytes(44)))
  })
  after(async () => {
    await s3.send(new AbortMultipartUploadCommand({ Bucket: node.bucket, Key: key, UploadId: id }))
  })

  test('pages follow part-number-marker and NextPartNumberMarker', async () => {
    const seen: number[] = []
    let marker: string | undefined
    const pages: boolean[] = []
    for (;;) {
      const r = await s3.send(
        new ListPartsCommand({ Bucket: node.bucket, Key: key, UploadId: id, MaxParts: 2, PartNumberMarker: marker }),
      )
      assert.equal(r.MaxParts, 2)
      assert.equal(r.UploadId, id)
      for (const p of r.Parts ?? []) {
        seen.push(p.PartNumber as number)
        assert.equal(p.ETag, etags.get(p.PartNumber as number))
        assert.ok(p.LastModified instanceof Date, 'parts have LastModified')
      }
      pages.push(r.IsTruncated === true)
      if (r.IsTruncated !== true) break
      assert.ok(r.NextPartNumberMarker, 'a truncated page has NextPartNumberMarker')
      marker = r.NextPartNumberMarker
    }
    assert.deepEqual(seen, [1, 2, 4, 5, 9])
    assert.deepEqual(pages, [true, true, false])
  })

  test('sizes are reported and max-parts is clamped to 1000', async () => {
    const r = await s3.send(new ListPartsCommand({ Bucket: node.bucket, Key: key, UploadId: id, MaxParts: 5000 }))
    assert.equal(r.MaxParts, 1000)
    assert.equal(r.IsTruncated, false)
    assert.deepEqual(
      (r.Parts ?? []).map((p) => [p.PartNumber, p.Size]),
      [
        [1, 11],
        [2, 12],
        [4, 44],
        [5, 15],
        [9, 19],
      ],
    )
    const after4 = await s3.send(new ListPartsCommand({ Bucket: node.bucket, Key: key, UploadId: id, PartNumberMarker: '4' }))
    assert.deepEqual(
      (after4.Parts ?? []).map((p) => p.PartNumber),
      [5, 9],
    )
  })
})

describe('ListMultipartUploads', () => {
  const prefix = 'lmu/'
  const uploads: Array<{ key: string; id: string }> = []

  before(async () => {
    for (const key of ['lmu/a', 'lmu/a', 'lmu/b', 'lmu/dir/x', 'lmu/dir/y', 'lmu/c']) {
      uploads.push({ key, id: await create(s3, node.bucket, key) })
    }
  })
  after(async () => {
    for (const u of uploads) await s3.send(new AbortMultipartUploadCommand({ Bucket: node.bucket, Key: u.key, UploadId: u.id }))
  })

  test('every upload of a prefix, by key then by initiation, across pages of 2', async () => {
    const seen: Array<[string, string]> = []
    let keyMarker: string | undefined
    let uploadIdMarker: string | undefined
    let pages = 0
    for (;;) {
      const r = await s3.send(
        new ListMultipartUploadsCommand({
          Bucket: node.bucket,
          Prefix: prefix,
          MaxUploads: 2,
          KeyMarker: keyMarker,
          UploadIdMarker: uploadIdMarker,
        }),
      )
      pages++
      assert.equal(r.MaxUploads, 2)
      for (const u of r.Uploads ?? []) {
        seen.push([u.Key as string, u.UploadId as string])
        assert.ok(u.Initiated instanceof Date, 'uploads have Initiated')
      }
      if (r.IsTruncated !== true) break
      assert.ok(r.NextKeyMarker, 'a truncated page has NextKeyMarker')
      keyMarker = r.NextKeyMarker
      uploadIdMarker = r.NextUploadIdMarker
    }
    assert.equal(pages, 3)
    const expected = [...uploads].sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0)).map((u) => [u.key, u.id])
    assert.deepEqual(seen, expected)
  })

  test('a key-marker alone skips every upload of that key', async () => {
    const r = await s3.send(new ListMultipartUploadsCommand({ Bucket: node.bucket, Prefix: prefix, KeyMarker: 'lmu/a' }))
    assert.deepEqual(
      (r.Uploads ?? []).map((u) => u.Key),
      ['lmu/b', 'lmu/c', 'lmu/dir/x', 'lmu/dir/y'],
    )
  })

  test('a delimiter groups keys into common prefixes', async () => {
    const r = await s3.send(new ListMultipartUploadsCommand({ Bucket: node.bucket, Prefix: prefix, Delimiter: '/' }))
    assert.deepEqual(
      (r.Uploads ?? []).map((u) => u.Key),
      ['lmu/a', 'lmu/a', 'lmu/b', 'lmu/c'],
    )
    assert.deepEqual(
      (r.CommonPrefixes ?? []).map((c) => c.Prefix),
      ['lmu/dir/'],
    )
    const paged = await s3.send(
      new ListMultipartUploadsCommand({ Bucket: node.bucket, Prefix: prefix, Delimiter: '/', MaxUploads: 4 }),
    )
    assert.equal(paged.IsTruncated, true)
    const rest = await s3.send(
      new ListMultipartUploadsCommand({
        Bucket: node.bucket,
        Prefix: prefix,
        Delimiter: '/',
        KeyMarker: paged.NextKeyMarker,
        UploadIdMarker: paged.NextUploadIdMarker,
      }),
    )
    assert.deepEqual(rest.Uploads ?? [], [])
    assert.deepEqual(
      (rest.CommonPrefixes ?? []).map((c) => c.Prefix),
      ['lmu/dir/'],
    )
  })
})

// ---------------------------------------------------------------------------------------------
// Block accounting
// ---------------------------------------------------------------------------------------------

describe('no orphan blocks', () => {
  let n: TestNode
  let c: S3Client
  before(async () => {
    n = await startTestNode({ block_gc_delay_msec: 200 })
    c = s3Client(n)
  })
  after(async () => {
    c.destroy()
    await n.close()
  })

  test('after complete (with replaced and unused parts), abort and overwrites, only live blocks remain', async () => {
    const live: string[] = []

    // Completed, with part 2 replaced and part 4 uploaded but left out.
    const k1 = 'orphans/complete'
    const id1 = await create(c, n.bucket, k1)
    const a = randomBytes(5 * MiB)
    const bOld = randomBytes(5 * MiB)
    const b = randomBytes(5 * MiB)
    const d = randomBytes(MiB + 10)
    const unused = randomBytes(2 * MiB)
    const ea = await part(c, n.bucket, k1, id1, 1, a)
    await part(c, n.bucket, k1, id1, 2, bOld)
    const eb = await part(c, n.bucket, k1, id1, 2, b)
    const ed = await part(c, n.bucket, k1, id1, 3, d)
    await part(c, n.bucket, k1, id1, 4, unused)
    await complete(c, n.bucket, k1, id1, [
      [1, ea],
      [2, eb],
      [3, ed],
    ])
    live.push(...blockHashes(a), ...blockHashes(b), ...blockHashes(d))

    // Aborted.
    const k2 = 'orphans/aborted'
    const id2 = await create(c, n.bucket, k2)
    await part(c, n.bucket, k2, id2, 1, randomBytes(5 * MiB))
    await part(c, n.bucket, k2, id2, 2, randomBytes(MiB))
    await c.send(new AbortMultipartUploadCommand({ Bucket: n.bucket, Key: k2, UploadId: id2 }))

    // Overwritten by a PutObject.
    const k3 = 'orphans/overwritten'
    await c.send(new PutObjectCommand({ Bucket: n.bucket, Key: k3, Body: randomBytes(3 * MiB) }))
    const v3 = randomBytes(2 * MiB + 5)
    await c.send(new PutObjectCommand({ Bucket: n.bucket, Key: k3, Body: v3 }))
    live.push(...blockHashes(v3))

    // A multipart object overwritten by a PutObject.
    const k4 = 'orphans/mpu-overwritten'
    const id4 = await create(c, n.bucket, k4)
    const e4 = await part(c, n.bucket, k4, id4, 1, randomBytes(2 * MiB))
    await complete(c, n.bucket, k4, id4, [[1, e4]])
    await c.send(new PutObjectCommand({ Bucket: n.bucket, Key: k4, Body: 'small now' }))

    // An upload in progress dropped because a newer PutObject completed on its key.
    const k5 = 'orphans/upload-superseded'
    const id5 = await create(c, n.bucket, k5)
    await part(c, n.bucket, k5, id5, 1, randomBytes(2 * MiB))
    const v5 = randomBytes(MiB + 1)
    await c.send(new PutObjectCommand({ Bucket: n.bucket, Key: k5, Body: v5 }))
    live.push(...blockHashes(v5))
    await assert.rejects(
      c.send(new UploadPartCommand({ Bucket: n.bucket, Key: k5, UploadId: id5, PartNumber: 2, Body: 'x' })),
      s3Error('NoSuchUpload', 404),
    )

    // A one-block part refused for a wrong Content-MD5 leaves no block behind.
    const k6 = 'orphans/bad-digest-part'
    const id6 = await create(c, n.bucket, k6)
    const wrongMd5 = createHash('md5').update('not the part').digest('base64')
    await assert.rejects(
      c.send(
        new UploadPartCommand({
          Bucket: n.bucket,
          Key: k6,
          UploadId: id6,
          PartNumber: 1,
          Body: randomBytes(64 * 1024),
          ContentMD5: wrongMd5,
        }),
      ),
      s3Error('BadDigest', 400),
    )

    await expectBlocks(n, live)
    assert.equal(n.node.status().blocks.referenced, new Set(live).size)
    const whole = await getBytes(c, n.bucket, k1)
    assert.ok(whole.equals(Buffer.concat([a, b, d])), 'the completed object is intact after GC')
  })
})

describe('checksums', () => {
  const checksumOf = (p: {
    ChecksumCRC32?: string
    ChecksumCRC32C?: string
    ChecksumCRC64NVME?: string
    ChecksumSHA256?: string
  }) => p.ChecksumCRC32 ?? p.ChecksumCRC32C ?? p.ChecksumCRC64NVME ?? p.ChecksumSHA256

  /** Creates an upload with a checksum, uploads `bodies` as parts 1..N with it, returns the parts. */
  async function upload(key: string, alg: ChecksumAlgorithm, type: ChecksumType | undefined, bodies: Buffer[]) {
    const c = await s3.send(
      new CreateMultipartUploadCommand({ Bucket: node.bucket, Key: key, ChecksumAlgorithm: alg, ChecksumType: type }),
    )
    assert.ok(c.UploadId, 'CreateMultipartUpload returns an UploadId')
    assert.equal(c.ChecksumAlgorithm, alg)
    assert.equal(c.ChecksumType, type ?? (alg === 'CRC64NVME' ? 'FULL_OBJECT' : 'COMPOSITE'))
    const parts: CompletedPart[] = []
    for (const [i, Body] of bodies.entries()) {
      const r = await s3.send(
        new UploadPartCommand({
          Bucket: node.bucket,
          Key: key,
          UploadId: c.UploadId,
          PartNumber: i + 1,
          Body,
          ChecksumAlgorithm: alg,
        }),
      )
      const sum = checksumOf(r)
      assert.ok(sum !== undefined, `UploadPart ${i + 1} returns its ${alg} checksum`)
      parts.push({ PartNumber: i + 1, ETag: r.ETag, [`Checksum${alg}`]: sum })
    }
    return { uploadId: c.UploadId, parts }
  }

  const bodies = () => [randomBytes(5 * MiB), randomBytes(MiB + 3)]

  test('COMPOSITE CRC32: part checksums, ListParts, the checksum of checksums with -N, GET and HEAD', async () => {
    const data = bodies()
    const key = 'ck/composite-crc32'
    const { uploadId, parts } = await upload(key, 'CRC32', undefined, data)
    assert.deepEqual(
      parts.map((p) => p.ChecksumCRC32),
      data.map((d) => crc32Base64(d)),
    )
    const listed = await s3.send(new ListPartsCommand({ Bucket: node.bucket, Key: key, UploadId: uploadId }))
    assert.deepEqual(
      (listed.Parts ?? []).map((p) => p.ChecksumCRC32),
      data.map((d) => crc32Base64(d)),
    )
    assert.equal(listed.ChecksumAlgorithm, 'CRC32')
    const done = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: node.bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts },
      }),
    )
    const composite = `${crc32Base64(Buffer.concat(data.map((d) => Buffer.from(crc32Base64(d), 'base64'))))}-2`
    assert.equal(done.ChecksumCRC32, composite)
    assert.equal(done.ChecksumType, 'COMPOSITE')
    const got = await s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: key, ChecksumMode: 'ENABLED' }))
    assert.equal(got.ChecksumCRC32, composite)
    assert.equal(got.ChecksumType, 'COMPOSITE')
    const bytes = Buffer.from((await got.Body?.transformToByteArray()) ?? [])
    assert.ok(bytes.equals(Buffer.concat(data)), 'the object is the concatenated parts')
    const head = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: key, ChecksumMode: 'ENABLED' }))
    assert.equal(head.ChecksumCRC32, composite)
    assert.equal(head.ChecksumType, 'COMPOSITE')
    const plain = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: key }))
    assert.equal(plain.ChecksumCRC32, undefined)
  })

  for (const alg of ['CRC32', 'CRC32C', 'CRC64NVME'] as const) {
    test(`FULL_OBJECT ${alg}: the CRC of the whole object, validated by the SDK on GET`, async () => {
      const data = bodies()
      const key = `ck/full-${alg}`
      const { uploadId, parts } = await upload(key, alg, 'FULL_OBJECT', data)
      const done = await s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: node.bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts },
        }),
      )
      assert.equal(done.ChecksumType, 'FULL_OBJECT')
      const full = checksumOf(done)
      assert.ok(full !== undefined && !full.includes('-'), `a full-object checksum: ${full}`)
      if (alg === 'CRC32') assert.equal(full, crc32Base64(Buffer.concat(data)))
      // The SDK computes the CRC of the body it reads and throws if it differs from the header.
      const got = await s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: key, ChecksumMode: 'ENABLED' }))
      assert.equal(checksumOf(got), full)
      assert.equal(got.ChecksumType, 'FULL_OBJECT')
      const bytes = Buffer.from((await got.Body?.transformToByteArray()) ?? [])
      assert.ok(bytes.equals(Buffer.concat(data)), 'the object is the concatenated parts')
    })
  }

  test('the whole-object checksum stated on Complete is checked against the combined one', async () => {
    const data = bodies()
    const key = 'ck/stated-full-crc32'
    const { uploadId, parts } = await upload(key, 'CRC32', 'FULL_OBJECT', data)
    await assert.rejects(
      s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: node.bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts },
          ChecksumCRC32: crc32Base64(Buffer.from('not the object')),
          ChecksumType: 'FULL_OBJECT',
        }),
      ),
      s3Error('BadDigest', 400),
    )
    assert.equal(await objectExists(s3, node.bucket, key), false, 'a refused Complete completes nothing')
    const done = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: node.bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts },
        ChecksumCRC32: crc32Base64(Buffer.concat(data)),
        ChecksumType: 'FULL_OBJECT',
      }),
    )
    assert.equal(done.ChecksumCRC32, crc32Base64(Buffer.concat(data)))
  })

  test('a part checksum in Complete that does not match is InvalidPart, and nothing is completed', async () => {
    const data = bodies()
    const key = 'ck/bad-part-checksum'
    const { uploadId, parts } = await upload(key, 'CRC32', 'FULL_OBJECT', data)
    const wrong = parts.map((p, i) => (i === 1 ? { ...p, ChecksumCRC32: crc32Base64(Buffer.from('other')) } : p))
    await assert.rejects(
      s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: node.bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: wrong },
        }),
      ),
      s3Error('InvalidPart', 400),
    )
    assert.equal(await objectExists(s3, node.bucket, key), false)
    const listed = await s3.send(new ListPartsCommand({ Bucket: node.bucket, Key: key, UploadId: uploadId }))
    assert.equal(listed.Parts?.length, 2)
    // The upload is intact: the right list completes it.
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: node.bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts },
      }),
    )
    assert.ok((await getBytes(s3, node.bucket, key)).equals(Buffer.concat(data)), 'completed after the retry')
  })

  test('a part sent without a checksum has the upload algorithm computed by the server', async (t) => {
    const bare = s3Client(node, { requestChecksumCalculation: 'WHEN_REQUIRED' })
    t.after(() => bare.destroy())
    const key = 'ck/no-part-checksum'
    const c = await s3.send(new CreateMultipartUploadCommand({ Bucket: node.bucket, Key: key, ChecksumAlgorithm: 'CRC32' }))
    const data = randomBytes(2 * MiB + 5)
    const r = await bare.send(
      new UploadPartCommand({ Bucket: node.bucket, Key: key, UploadId: c.UploadId, PartNumber: 1, Body: data }),
    )
    assert.equal(r.ChecksumCRC32, crc32Base64(data))
    const done = await bare.send(
      new CompleteMultipartUploadCommand({
        Bucket: node.bucket,
        Key: key,
        UploadId: c.UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: r.ETag }] },
      }),
    )
    assert.equal(done.ChecksumCRC32, `${crc32Base64(Buffer.from(crc32Base64(data), 'base64'))}-1`)
    assert.ok((await getBytes(s3, node.bucket, key)).equals(data), 'the part is stored whole')
  })

  test('a part sent with another algorithm than the upload is InvalidRequest', async () => {
    const key = 'ck/other-alg'
    const c = await s3.send(new CreateMultipartUploadCommand({ Bucket: node.bucket, Key: key, ChecksumAlgorithm: 'CRC32C' }))
    await assert.rejects(
      s3.send(
        new UploadPartCommand({
          Bucket: node.bucket,
          Key: key,
          UploadId: c.UploadId,
          PartNumber: 1,
          Body: 'x',
          ChecksumAlgorithm: 'CRC32',
        }),
      ),
      s3Error('InvalidRequest', 400),
    )
    await s3.send(new AbortMultipartUploadCommand({ Bucket: node.bucket, Key: key, UploadId: c.UploadId }))
  })

  for (const [alg, type] of [
    ['CRC64NVME', 'COMPOSITE'],
    ['SHA256', 'FULL_OBJECT'],
    ['SHA1', 'FULL_OBJECT'],
  ] as const) {
    test(`${alg} with ${type} is InvalidRequest`, async () => {
      await assert.rejects(
        s3.send(
          new CreateMultipartUploadCommand({
            Bucket: node.bucket,
            Key: 'ck/invalid',
            ChecksumAlgorithm: alg,
            ChecksumType: type,
          }),
        ),
        s3Error('InvalidRequest', 400),
      )
    })
  }

  test('SHA256 COMPOSITE works end to end', async () => {
    const data = bodies()
    const key = 'ck/sha256'
    const { uploadId, parts } = await upload(key, 'SHA256', 'COMPOSITE', data)
    const done = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: node.bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts },
      }),
    )
    const concat = Buffer.concat(data.map((d) => createHash('sha256').update(d).digest()))
    assert.equal(done.ChecksumSHA256, `${createHash('sha256').update(concat).digest('base64')}-2`)
  })
})
