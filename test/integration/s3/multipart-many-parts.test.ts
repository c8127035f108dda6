/**
 * A multipart upload of 1,000 small parts through the AWS SDK (`s3_api.min_part_size = 0`), some
 * re-uploaded so the upload has more part rows than parts: ListParts pages (including the page
 * boundaries that fall between re-uploads of one number and the default page of exactly all
 * parts), CompleteMultipartUpload of every part, and a GET that returns every byte in order. The
 * flat per-part cost at 10,000 parts is measured by bench/multipart.ts, not asserted here.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListPartsCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import type { TestNode } from '../../../lib/testing.ts'
import { getBytes, s3Error, useTestNode } from '../../helpers/s3.ts'

const PARTS = 1000
/** Parts uploaded a second time, with other bytes: the later upload is the part. */
const REUPLOADED = new Set([1, 299, 300, 301, 500, 999, 1000, ...Array.from({ length: 43 }, (_, i) => 600 + i)])

let node: TestNode
let s3: S3Client

useTestNode({ s3_api: { api_bind_addr: '127.0.0.1:0', min_part_size: 0 } }, (n, c) => {
  node = n
  s3 = c
})

/** Part `n`'s bytes: 37 to 100 bytes, different for a re-upload (`round` 1). */
function body(n: number, round: number): Buffer {
  const len = 37 + ((n * 7 + round * 13) % 64)
  return Buffer.alloc(len, `${round}:${n};`)
}

async function pool<T>(items: T[], width: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await run(items[next++] as T)
    }),
  )
}

async function listAll(key: string, uploadId: string, maxParts?: number) {
  const pages: Array<{ numbers: number[]; truncated: boolean; next: string | undefined }> = []
  let marker: string | undefined
  for (;;) {
    const r = await s3.send(
      new ListPartsCommand({ Bucket: node.bucket, Key: key, UploadId: uploadId, PartNumberMarker: marker, MaxParts: maxParts }),
    )
    const numbers = (r.Parts ?? []).map((p) => p.PartNumber as number)
    pages.push({ numbers, truncated: r.IsTruncated === true, next: r.NextPartNumberMarker })
    if (r.IsTruncated !== true) return { pages, parts: pages.flatMap((p) => p.numbers), last: r }
    marker = r.NextPartNumberMarker
    assert.ok(pages.length <= PARTS, 'pagination ends')
  }
}

test('1,000 parts, some uploaded twice: ListParts pages, Complete, and GET of every byte', async () => {
  const key = 'many/parts'
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: node.bucket, Key: key }))
  assert.ok(UploadId)
  const etags = new Map<number, string>()
  // Every number once (out of order), then the re-uploads.
  const order = Array.from({ length: PARTS }, (_, i) => ((i * 389) % PARTS) + 1)
  assert.equal(new Set(order).size, PARTS)
  const put = (round: number) => async (n: number) => {
    const r = await s3.send(
      new UploadPartCommand({ Bucket: node.bucket, Key: key, UploadId, PartNumber: n, Body: body(n, round) }),
    )
    assert.equal(r.ETag, `"${createHash('md5').update(body(n, round)).digest('hex')}"`)
    etags.set(n, r.ETag as string)
  }
  await pool(order, 8, put(0))
  await pool([...REUPLOADED], 8, put(1))

  // The default page is 1,000: exactly every part, not truncated (the upload has 1,050 part rows).
  const whole = await listAll(key, UploadId)
  assert.equal(whole.pages.length, 1)
  assert.deepEqual(
    whole.parts,
    Array.from({ length: PARTS }, (_, i) => i + 1),
  )
  const sizes = new Map((whole.last.Parts ?? []).map((p) => [p.PartNumber as number, p.Size]))
  for (const n of [1, 2, 300, 642, 1000]) {
    assert.equal(sizes.get(n), body(n, REUPLOADED.has(n) ? 1 : 0).length, `part ${n}'s size is its latest upload's`)
  }
  // Pages of 300 (a boundary at 300, between re-uploaded 299..301) and of 999.
  const by300 = await listAll(key, UploadId, 300)
  assert.deepEqual(
    by300.pages.map((p) => [p.numbers[0], p.numbers.length, p.truncated, p.next]),
    [
      [1, 300, true, '300'],
      [301, 300, true, '600'],
      [601, 300, true, '900'],
      [901, 100, false, '1000'],
    ],
  )
  const by999 = await listAll(key, UploadId, 999)
  assert.deepEqual(
    by999.pages.map((p) => p.numbers.length),
    [999, 1],
  )

  // A stale ETag (the first upload of a re-uploaded part) is refused.
  const stale = `"${createHash('md5').update(body(300, 0)).digest('hex')}"`
  const all = Array.from({ length: PARTS }, (_, i) => ({ PartNumber: i + 1, ETag: etags.get(i + 1) as string }))
  await assert.rejects(
    s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: node.bucket,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: all.map((p) => (p.PartNumber === 300 ? { ...p, ETag: stale } : p)) },
      }),
    ),
    s3Error('InvalidPart', 400),
  )

  const done = await s3.send(
    new CompleteMultipartUploadCommand({ Bucket: node.bucket, Key: key, UploadId, MultipartUpload: { Parts: all } }),
  )
  const md5 = createHash('md5')
  for (const p of all) md5.update(Buffer.from(p.ETag.slice(1, -1), 'hex'))
  assert.equal(done.ETag, `"${md5.digest('hex')}-${PARTS}"`)

  const expected = Buffer.concat(all.map((p) => body(p.PartNumber, REUPLOADED.has(p.PartNumber) ? 1 : 0)))
  const got = await getBytes(s3, node.bucket, key)
  assert.equal(got.length, expected.length)
  assert.ok(got.equals(expected), 'the object is every part, in order, each its latest upload')
  const partGet = await s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: key, PartNumber: 642 }))
  assert.equal(partGet.PartsCount, PARTS)
  assert.ok(
    Buffer.from(await (partGet.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray()).equals(
      body(642, 1),
    ),
  )
})
