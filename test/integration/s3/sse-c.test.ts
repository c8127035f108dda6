/**
 * SSE-C (customer-provided keys) through the AWS SDK: put/get/head of inline and multi-block
 * objects, ranges, multipart uploads, copies between encryption settings, refusals of missing,
 * wrong or unexpected keys, and that no plaintext reaches the disk.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  type GetObjectCommandInput,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { getBytes, md5Hex, s3Client, s3Error } from '../../helpers/s3.ts'

const MiB = 1024 * 1024
const KEY1 = randomBytes(32).toString('base64')
const KEY2 = randomBytes(32).toString('base64')
const MARKER = 'SSE-C-PLAINTEXT-MARKER-7f3a'

let node: TestNode
let s3: S3Client
let Bucket: string

before(async () => {
  node = await startTestNode({ block_gc_delay_msec: 200 })
  s3 = s3Client(node)
  Bucket = node.bucket
})
after(async () => {
  s3.destroy()
  await node.close()
})

const ssec = (key: string) => ({ SSECustomerAlgorithm: 'AES256', SSECustomerKey: key })
const copySsec = (key: string) => ({ CopySourceSSECustomerAlgorithm: 'AES256', CopySourceSSECustomerKey: key })
const keyMd5 = (key: string) => createHash('md5').update(Buffer.from(key, 'base64')).digest('base64')

/** A body of `size` bytes, random but with the marker written every 1000 bytes. */
function markedBody(size: number): Buffer {
  const b = randomBytes(size)
  for (let i = 0; i + MARKER.length <= size; i += 1000) b.write(MARKER, i)
  return b
}

async function get(input: GetObjectCommandInput): Promise<{ body: Buffer; out: GetObjectCommandOutput }> {
  const r = await s3.send(new GetObjectCommand(input))
  return { body: Buffer.from((await r.Body?.transformToByteArray()) ?? new Uint8Array(0)), out: r }
}

/** The HTTP status of a failing HeadObject (HEAD answers have no error body). */
async function headStatus(input: { Key: string; SSECustomerAlgorithm?: string; SSECustomerKey?: string }): Promise<number> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket, ...input }))
    return 200
  } catch (err) {
    return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? 0
  }
}

/** The contents of a file, or undefined if it was deleted meanwhile (block GC runs). */
async function readIfPresent(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  const names = await readdir(dir, { recursive: true })
  const out: string[] = []
  for (const n of names) {
    const p = join(dir, n)
    const s = await stat(p).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined
      throw err
    })
    if (s?.isFile() === true) out.push(p)
  }
  return out
}

describe('SSE-C', () => {
  test('a small object is stored encrypted and read back only with its key', async () => {
    const body = Buffer.from(`${MARKER} small inline object`)
    const put = await s3.send(
      new PutObjectCommand({
        Bucket,
        Key: 'small',
        Body: body,
        ContentType: 'text/x-secret',
        Metadata: { note: 'meta-secret-value' },
        ...ssec(KEY1),
      }),
    )
    assert.equal(put.SSECustomerAlgorithm, 'AES256')
    assert.equal(put.SSECustomerKeyMD5, keyMd5(KEY1))
    assert.notEqual(put.ETag, `"${md5Hex(body)}"`, 'the ETag of an encrypted object is not its MD5')

    const { body: got, out } = await get({ Bucket, Key: 'small', ...ssec(KEY1) })
    assert.deepEqual(got, body)
    const o = out
    assert.equal(o.ContentType, 'text/x-secret')
    assert.deepEqual(o.Metadata, { note: 'meta-secret-value' })
    assert.equal(o.SSECustomerKeyMD5, keyMd5(KEY1))
    assert.equal(o.ETag, put.ETag)
    const head = await s3.send(new HeadObjectCommand({ Bucket, Key: 'small', ...ssec(KEY1) }))
    assert.equal(head.ContentLength, body.length)
    assert.equal(head.ContentType, 'text/x-secret')

    await assert.rejects(s3.send(new GetObjectCommand({ Bucket, Key: 'small' })), s3Error('InvalidRequest', 400))
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket, Key: 'small', ...ssec(KEY2) })), s3Error('InvalidRequest', 400))
    assert.equal(await headStatus({ Key: 'small' }), 400)
    assert.equal(await headStatus({ Key: 'small', ...ssec(KEY2) }), 400)
  })

  test('a key given for a plaintext object, or a bad key, is refused', async () => {
    await s3.send(new PutObjectCommand({ Bucket, Key: 'plain', Body: 'plain text' }))
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket, Key: 'plain', ...ssec(KEY1) })), s3Error('InvalidRequest', 400))
    assert.deepEqual(await getBytes(s3, Bucket, 'plain'), Buffer.from('plain text'))
    await assert.rejects(
      s3.send(new PutObjectCommand({ Bucket, Key: 'bad', Body: 'x', ...ssec(Buffer.alloc(16).toString('base64')) })),
      s3Error('InvalidArgument', 400),
    )
    await assert.rejects(
      s3.send(new PutObjectCommand({ Bucket, Key: 'bad', Body: 'x', SSECustomerKey: KEY1, SSECustomerAlgorithm: 'AES128' })),
      s3Error('InvalidEncryptionAlgorithmError', 400),
    )
  })

  test('a multi-block object streams back whole and by ranges', async () => {
    const body = markedBody(2 * MiB + 512 * 1024 + 7)
    await s3.send(new PutObjectCommand({ Bucket, Key: 'big', Body: body, ...ssec(KEY1) }))
    const { body: whole } = await get({ Bucket, Key: 'big', ...ssec(KEY1) })
    assert.ok(whole.equals(body), 'the whole object reads back')
    const ranges: Array<[number, number]> = [
      [0, 0],
      [4090, 4200],
      [MiB - 10, MiB + 5000],
      [MiB + 4096, MiB + 8191],
      [body.length - 100, body.length - 1],
    ]
    for (const [a, b] of ranges) {
      const { body: part, out } = await get({ Bucket, Key: 'big', Range: `bytes=${a}-${b}`, ...ssec(KEY1) })
      assert.ok(part.equals(body.subarray(a, b + 1)), `range ${a}-${b}`)
      assert.equal(out.ContentRange, `bytes ${a}-${b}/${body.length}`)
    }
    const { body: suffix } = await get({ Bucket, Key: 'big', Range: 'bytes=-300', ...ssec(KEY1) })
    assert.ok(suffix.equals(body.subarray(body.length - 300)), 'suffix range')
    await assert.rejects(
      s3.send(new GetObjectCommand({ Bucket, Key: 'big', Range: 'bytes=0-10' })),
      s3Error('InvalidRequest', 400),
    )
  })

  test('multipart uploads are encrypted with the upload key', async () => {
    const Key = 'mpu'
    const c = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key, ContentType: 'text/x-mpu', ...ssec(KEY1) }))
    assert.equal(c.SSECustomerKeyMD5, keyMd5(KEY1))
    const part1 = markedBody(5 * MiB)
    const part2 = markedBody(3000)
    await assert.rejects(
      s3.send(new UploadPartCommand({ Bucket, Key, UploadId: c.UploadId, PartNumber: 1, Body: part1 })),
      s3Error('InvalidRequest', 400),
    )
    await assert.rejects(
      s3.send(new UploadPartCommand({ Bucket, Key, UploadId: c.UploadId, PartNumber: 1, Body: part1, ...ssec(KEY2) })),
      s3Error('InvalidRequest', 400),
    )
    const p1 = await s3.send(
      new UploadPartCommand({ Bucket, Key, UploadId: c.UploadId, PartNumber: 1, Body: part1, ...ssec(KEY1) }),
    )
    const p2 = await s3.send(
      new UploadPartCommand({ Bucket, Key, UploadId: c.UploadId, PartNumber: 2, Body: part2, ...ssec(KEY1) }),
    )
    assert.notEqual(p1.ETag, `"${md5Hex(part1)}"`, 'the ETag of an encrypted part is not its MD5')
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket,
        Key,
        UploadId: c.UploadId,
        MultipartUpload: {
          Parts: [
            { PartNumber: 1, ETag: p1.ETag },
            { PartNumber: 2, ETag: p2.ETag },
          ],
        },
      }),
    )
    const { body, out } = await get({ Bucket, Key, ...ssec(KEY1) })
    assert.ok(body.equals(Buffer.concat([part1, part2])), 'the completed object reads back')
    assert.equal(out.ContentType, 'text/x-mpu')
    const { body: second } = await get({ Bucket, Key, PartNumber: 2, ...ssec(KEY1) })
    assert.ok(second.equals(part2), 'part 2 reads back by number')
    const { body: across } = await get({ Bucket, Key, Range: `bytes=${5 * MiB - 50}-${5 * MiB + 49}`, ...ssec(KEY1) })
    assert.ok(across.equals(Buffer.concat([part1, part2]).subarray(5 * MiB - 50, 5 * MiB + 50)), 'range across parts')
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket, Key })), s3Error('InvalidRequest', 400))
  })

  test('copies decrypt and re-encrypt between encryption settings', async () => {
    const body = markedBody(MiB + 4321)
    await s3.send(new PutObjectCommand({ Bucket, Key: 'src', Body: body, ContentType: 'text/x-src', ...ssec(KEY1) }))
    await assert.rejects(
      s3.send(new CopyObjectCommand({ Bucket, Key: 'dst-fail', CopySource: `${Bucket}/src` })),
      s3Error('InvalidRequest', 400),
    )
    // Encrypted → plaintext, keeping the metadata.
    await s3.send(new CopyObjectCommand({ Bucket, Key: 'dst-plain', CopySource: `${Bucket}/src`, ...copySsec(KEY1) }))
    const plain = await s3.send(new GetObjectCommand({ Bucket, Key: 'dst-plain' }))
    assert.ok(Buffer.from((await plain.Body?.transformToByteArray()) ?? []).equals(body), 'decrypted copy')
    assert.equal(plain.ContentType, 'text/x-src')
    assert.equal(plain.ETag, `"${md5Hex(body)}"`)
    // Plaintext → encrypted with another key.
    await s3.send(new CopyObjectCommand({ Bucket, Key: 'dst-k2', CopySource: `${Bucket}/dst-plain`, ...ssec(KEY2) }))
    assert.ok((await get({ Bucket, Key: 'dst-k2', ...ssec(KEY2) })).body.equals(body), 'encrypted copy of a plain object')
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket, Key: 'dst-k2', ...ssec(KEY1) })), s3Error('InvalidRequest', 400))
    // Key 1 → key 2 in place (allowed: the encryption changes), with new metadata.
    await s3.send(
      new CopyObjectCommand({
        Bucket,
        Key: 'src',
        CopySource: `${Bucket}/src`,
        MetadataDirective: 'REPLACE',
        ContentType: 'text/x-rekeyed',
        ...copySsec(KEY1),
        ...ssec(KEY2),
      }),
    )
    const rekeyed = await get({ Bucket, Key: 'src', ...ssec(KEY2) })
    assert.ok(rekeyed.body.equals(body), 're-keyed in place')
    assert.equal(rekeyed.out.ContentType, 'text/x-rekeyed')

    // UploadPartCopy from an encrypted source into an encrypted upload, with a range.
    const c = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'mpu-copy', ...ssec(KEY1) }))
    const pc = await s3.send(
      new UploadPartCopyCommand({
        Bucket,
        Key: 'mpu-copy',
        UploadId: c.UploadId,
        PartNumber: 1,
        CopySource: `${Bucket}/src`,
        CopySourceRange: 'bytes=100-1048999',
        ...copySsec(KEY2),
        ...ssec(KEY1),
      }),
    )
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket,
        Key: 'mpu-copy',
        UploadId: c.UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: pc.CopyPartResult?.ETag }] },
        ...ssec(KEY1),
      }),
    )
    assert.ok((await get({ Bucket, Key: 'mpu-copy', ...ssec(KEY1) })).body.equals(body.subarray(100, 1049000)), 'part copy')
  })

  test('no plaintext reaches the disk', async () => {
    const marker = Buffer.from(MARKER)
    const blocks = (await filesUnder(join(node.dir, 'data'))).filter((p) => /[0-9a-f]{64}$/.test(p))
    assert.ok(blocks.length >= 4, `encrypted objects have block files (${blocks.length})`)
    const plainBlocks: string[] = []
    for (const f of blocks) if ((await readIfPresent(f))?.includes(marker) === true) plainBlocks.push(f)
    // Only the plaintext copy `dst-plain` (2 blocks) may hold the marker.
    assert.equal(plainBlocks.length, 2, `block files with plaintext: ${plainBlocks.length}`)
    for (const f of await filesUnder(join(node.dir, 'meta'))) {
      const s = await stat(f)
      if (s.size > 256 * MiB) continue
      const bytes = (await readIfPresent(f)) ?? Buffer.alloc(0)
      assert.equal(bytes.includes(Buffer.from('meta-secret-value')), false, `metadata in clear in ${f}`)
      assert.equal(bytes.includes(Buffer.from('text/x-secret')), false, `content type in clear in ${f}`)
      assert.equal(bytes.includes(Buffer.from(`${MARKER} small`)), false, `inline data in clear in ${f}`)
    }
  })
})
