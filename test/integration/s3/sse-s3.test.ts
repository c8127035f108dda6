/**
 * SSE-S3 (`x-amz-server-side-encryption: AES256`) through the AWS SDK on a single node (whose
 * master key is generated in metadata_dir): put/get/head/range of inline and multi-block objects,
 * copies between encryption settings, multipart uploads and UploadPartCopy, bucket default
 * encryption, the KMS and mixed SSE-C answers; then on a 3-node cluster with a configured master
 * key, that no block file on any node holds the plaintext.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteBucketEncryptionCommand,
  GetBucketEncryptionCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutBucketEncryptionCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3'
import { startTestCluster, startTestNode, type TestNode } from '../../../lib/testing.ts'
import { md5Hex, rawRequest, s3Client, s3Error } from '../../helpers/s3.ts'

const MiB = 1024 * 1024
const MARKER = 'SSE-S3-PLAINTEXT-MARKER-41c9'
/** For bodies that are also copied to plaintext objects (not looked for on disk). */
const OTHER = 'COPIED-IN-CLEAR-TOO-0b2e'
const SSEC_KEY = randomBytes(32).toString('base64')
const ssec = { SSECustomerAlgorithm: 'AES256', SSECustomerKey: SSEC_KEY }

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

/** A body of `size` bytes, random but with `marker` written every 1000 bytes. */
function markedBody(size: number, marker = MARKER): Buffer {
  const b = randomBytes(size)
  for (let i = 0; i + marker.length <= size; i += 1000) b.write(marker, i)
  return b
}

async function get(
  client: S3Client,
  input: { Bucket: string; Key: string; Range?: string; SSECustomerAlgorithm?: string; SSECustomerKey?: string },
) {
  const r = await client.send(new GetObjectCommand(input))
  return { body: Buffer.from((await r.Body?.transformToByteArray()) ?? new Uint8Array(0)), out: r }
}

function ignoreMissing(err: NodeJS.ErrnoException): undefined {
  if (err.code === 'ENOENT') return undefined
  throw err
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const n of await readdir(dir, { recursive: true })) {
    const p = join(dir, n)
    // A file that vanished between the listing and the stat (lmdb's lock file, a swept temp
    // file) is skipped; any other failure is the test's.
    if ((await stat(p).catch(ignoreMissing))?.isFile() === true) out.push(p)
  }
  return out
}

/** Block files (named by their 64-hex hash) under `dir`, with their contents. */
async function blockFiles(dir: string): Promise<Array<{ path: string; bytes: Buffer }>> {
  const out: Array<{ path: string; bytes: Buffer }> = []
  for (const p of await filesUnder(dir)) {
    if (!/[0-9a-f]{64}(\.zst)?$/.test(p)) continue
    const bytes = await readFile(p).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined // collected meanwhile
      throw err
    })
    if (bytes !== undefined) out.push({ path: p, bytes })
  }
  return out
}

describe('SSE-S3 on one node', () => {
  test('the node generated its master key in metadata_dir, readable by its owner only', async () => {
    const st = await stat(join(node.dir, 'meta', 'sse_master_key'))
    assert.equal(st.mode & 0o077, 0)
    assert.match(await readFile(join(node.dir, 'meta', 'sse_master_key'), 'utf8'), /^local-[0-9a-f]{8}:[0-9a-f]{64}$/m)
  })

  for (const [name, size] of [
    ['inline', 1000],
    ['multi-block', 2 * MiB + 12345],
  ] as const) {
    test(`PUT/GET/HEAD/range of a ${name} object`, async () => {
      const body = markedBody(size)
      const put = await s3.send(
        new PutObjectCommand({ Bucket, Key: `s3-${name}`, Body: body, ServerSideEncryption: 'AES256', ContentType: 'x/y' }),
      )
      assert.equal(put.ServerSideEncryption, 'AES256')
      // SSE-S3 ETags are the MD5 of the data, as on AWS (unlike SSE-C's).
      assert.equal(put.ETag, `"${md5Hex(body)}"`)
      const g = await get(s3, { Bucket, Key: `s3-${name}` })
      assert.ok(g.body.equals(body))
      assert.equal(g.out.ServerSideEncryption, 'AES256')
      assert.equal(g.out.ContentType, 'x/y')
      const h = await s3.send(new HeadObjectCommand({ Bucket, Key: `s3-${name}` }))
      assert.equal(h.ServerSideEncryption, 'AES256')
      assert.equal(h.ContentLength, size)
      assert.equal(h.ETag, put.ETag)
      const from = size > MiB ? MiB - 100 : 10
      const r = await get(s3, { Bucket, Key: `s3-${name}`, Range: `bytes=${from}-${from + 299}` })
      assert.ok(r.body.equals(body.subarray(from, from + 300)))
      assert.equal(r.out.ServerSideEncryption, 'AES256')
    })
  }

  test('a plaintext object says nothing about encryption', async () => {
    const put = await s3.send(new PutObjectCommand({ Bucket, Key: 'plain', Body: 'hello' }))
    assert.equal(put.ServerSideEncryption, undefined)
    const h = await s3.send(new HeadObjectCommand({ Bucket, Key: 'plain' }))
    assert.equal(h.ServerSideEncryption, undefined)
  })

  test('aws:kms and aws:kms:dsse are NotImplemented (no KMS); another method is InvalidArgument', async () => {
    for (const ServerSideEncryption of ['aws:kms', 'aws:kms:dsse'] as const) {
      await assert.rejects(
        s3.send(new PutObjectCommand({ Bucket, Key: 'kms', Body: 'x', ServerSideEncryption })),
        s3Error('NotImplemented', 501),
      )
    }
    await assert.rejects(
      s3.send(new PutObjectCommand({ Bucket, Key: 'kms', Body: 'x', ServerSideEncryption: 'AES512' as 'AES256' })),
      s3Error('InvalidArgument', 400),
    )
    await assert.rejects(
      s3.send(new PutObjectCommand({ Bucket, Key: 'kms', Body: 'x', SSEKMSKeyId: 'alias/x' })),
      s3Error('InvalidArgument', 400),
    )
    await assert.rejects(
      s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'kms', ServerSideEncryption: 'aws:kms' })),
      s3Error('NotImplemented', 501),
    )
  })

  test('SSE-C and SSE-S3 together are InvalidArgument; SSE-C headers on an SSE-S3 object are InvalidRequest', async () => {
    await assert.rejects(
      s3.send(new PutObjectCommand({ Bucket, Key: 'both', Body: 'x', ServerSideEncryption: 'AES256', ...ssec })),
      s3Error('InvalidArgument', 400),
    )
    await s3.send(new PutObjectCommand({ Bucket, Key: 'enc', Body: 'secret', ServerSideEncryption: 'AES256' }))
    await assert.rejects(get(s3, { Bucket, Key: 'enc', ...ssec }), s3Error('InvalidRequest', 400))
  })

  test('GET with x-amz-server-side-encryption is refused (400), as on AWS', async () => {
    const r = await rawRequest(node, {
      method: 'GET',
      path: `/${Bucket}/enc`,
      headers: { 'x-amz-server-side-encryption': 'AES256' },
    })
    assert.equal(r.status, 400)
    assert.match(r.text, /<Code>InvalidArgument<\/Code>/)
  })

  test('CopyObject decrypts its source and encrypts per the destination', async () => {
    const body = markedBody(MiB + 777, OTHER)
    await s3.send(new PutObjectCommand({ Bucket, Key: 'c-src', Body: body, ServerSideEncryption: 'AES256' }))
    // SSE-S3 → plaintext
    const toPlain = await s3.send(new CopyObjectCommand({ Bucket, Key: 'c-plain', CopySource: `${Bucket}/c-src` }))
    assert.equal(toPlain.ServerSideEncryption, undefined)
    assert.equal((await s3.send(new HeadObjectCommand({ Bucket, Key: 'c-plain' }))).ServerSideEncryption, undefined)
    assert.ok((await get(s3, { Bucket, Key: 'c-plain' })).body.equals(body))
    // plaintext → SSE-S3
    const toS3 = await s3.send(
      new CopyObjectCommand({ Bucket, Key: 'c-s3', CopySource: `${Bucket}/c-plain`, ServerSideEncryption: 'AES256' }),
    )
    assert.equal(toS3.ServerSideEncryption, 'AES256')
    assert.equal(toS3.CopyObjectResult?.ETag, `"${md5Hex(body)}"`)
    assert.ok((await get(s3, { Bucket, Key: 'c-s3' })).body.equals(body))
    // SSE-S3 → SSE-C → SSE-S3
    await s3.send(new CopyObjectCommand({ Bucket, Key: 'c-ssec', CopySource: `${Bucket}/c-s3`, ...ssec }))
    assert.ok((await get(s3, { Bucket, Key: 'c-ssec', ...ssec })).body.equals(body))
    await s3.send(
      new CopyObjectCommand({
        Bucket,
        Key: 'c-back',
        CopySource: `${Bucket}/c-ssec`,
        CopySourceSSECustomerAlgorithm: 'AES256',
        CopySourceSSECustomerKey: SSEC_KEY,
        ServerSideEncryption: 'AES256',
      }),
    )
    const back = await get(s3, { Bucket, Key: 'c-back' })
    assert.ok(back.body.equals(body))
    assert.equal(back.out.ServerSideEncryption, 'AES256')
    // Onto itself, stating the encryption: re-encrypted under a new data key (the current
    // master key). Without it and without a bucket default, the copy is plaintext (the
    // destination's settings decide).
    const self = await s3.send(
      new CopyObjectCommand({ Bucket, Key: 'c-back', CopySource: `${Bucket}/c-back`, ServerSideEncryption: 'AES256' }),
    )
    assert.equal(self.ServerSideEncryption, 'AES256')
    assert.ok((await get(s3, { Bucket, Key: 'c-back' })).body.equals(body))
    const decrypted = await s3.send(
      new CopyObjectCommand({ Bucket, Key: 'c-back', CopySource: `${Bucket}/c-back`, MetadataDirective: 'REPLACE' }),
    )
    assert.equal(decrypted.ServerSideEncryption, undefined)
    assert.ok((await get(s3, { Bucket, Key: 'c-back' })).body.equals(body))
  })

  test('multipart upload and UploadPartCopy with SSE-S3', async () => {
    const part1 = markedBody(5 * MiB)
    const src = markedBody(200_000, OTHER)
    await s3.send(new PutObjectCommand({ Bucket, Key: 'mp-src', Body: src, ServerSideEncryption: 'AES256' }))
    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'mp', ServerSideEncryption: 'AES256' }))
    assert.equal(created.ServerSideEncryption, 'AES256')
    const UploadId = created.UploadId as string
    const p1 = await s3.send(new UploadPartCommand({ Bucket, Key: 'mp', UploadId, PartNumber: 1, Body: part1 }))
    assert.equal(p1.ServerSideEncryption, 'AES256')
    assert.equal(p1.ETag, `"${md5Hex(part1)}"`)
    const p2 = await s3.send(
      new UploadPartCopyCommand({
        Bucket,
        Key: 'mp',
        UploadId,
        PartNumber: 2,
        CopySource: `${Bucket}/mp-src`,
        CopySourceRange: 'bytes=1000-50999',
      }),
    )
    assert.equal(p2.ServerSideEncryption, 'AES256')
    // The parts of an SSE-S3 upload need no key.
    const done = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket,
        Key: 'mp',
        UploadId,
        MultipartUpload: {
          Parts: [
            { PartNumber: 1, ETag: p1.ETag },
            { PartNumber: 2, ETag: p2.CopyPartResult?.ETag },
          ],
        },
      }),
    )
    assert.equal(done.ServerSideEncryption, 'AES256')
    const whole = Buffer.concat([part1, src.subarray(1000, 51000)])
    const g = await get(s3, { Bucket, Key: 'mp' })
    assert.ok(g.body.equals(whole))
    assert.equal(g.out.ServerSideEncryption, 'AES256')
    const r = await get(s3, { Bucket, Key: 'mp', Range: `bytes=${5 * MiB - 10}-${5 * MiB + 9}` })
    assert.ok(r.body.equals(whole.subarray(5 * MiB - 10, 5 * MiB + 10)))

    // An SSE-S3 part copied into a plaintext upload is decrypted.
    const plain = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'mp-plain' }))
    assert.equal(plain.ServerSideEncryption, undefined)
    const c = await s3.send(
      new UploadPartCopyCommand({
        Bucket,
        Key: 'mp-plain',
        UploadId: plain.UploadId,
        PartNumber: 1,
        CopySource: `${Bucket}/mp-src`,
      }),
    )
    assert.equal(c.ServerSideEncryption, undefined)
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket,
        Key: 'mp-plain',
        UploadId: plain.UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: c.CopyPartResult?.ETag }] },
      }),
    )
    const gp = await get(s3, { Bucket, Key: 'mp-plain' })
    assert.ok(gp.body.equals(src))
    assert.equal(gp.out.ServerSideEncryption, undefined)
  })

  test('bucket default encryption: Put/Get/DeleteBucketEncryption, applied to PUT, copy and multipart', async () => {
    await assert.rejects(
      s3.send(new GetBucketEncryptionCommand({ Bucket })),
      s3Error('ServerSideEncryptionConfigurationNotFoundError', 404),
    )
    await assert.rejects(
      s3.send(
        new PutBucketEncryptionCommand({
          Bucket,
          ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } }] },
        }),
      ),
      s3Error('NotImplemented', 501),
    )
    await s3.send(
      new PutBucketEncryptionCommand({
        Bucket,
        ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
      }),
    )
    const conf = await s3.send(new GetBucketEncryptionCommand({ Bucket }))
    assert.equal(conf.ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault?.SSEAlgorithm, 'AES256')
    try {
      const put = await s3.send(new PutObjectCommand({ Bucket, Key: 'd-put', Body: 'by default' }))
      assert.equal(put.ServerSideEncryption, 'AES256')
      assert.equal((await s3.send(new HeadObjectCommand({ Bucket, Key: 'd-put' }))).ServerSideEncryption, 'AES256')
      assert.equal((await get(s3, { Bucket, Key: 'd-put' })).body.toString(), 'by default')
      const copy = await s3.send(new CopyObjectCommand({ Bucket, Key: 'd-copy', CopySource: `${Bucket}/plain` }))
      assert.equal(copy.ServerSideEncryption, 'AES256')
      assert.equal((await get(s3, { Bucket, Key: 'd-copy' })).body.toString(), 'hello')
      // Onto itself with the same encryption and metadata: nothing would change.
      await assert.rejects(
        s3.send(new CopyObjectCommand({ Bucket, Key: 'd-put', CopySource: `${Bucket}/d-put` })),
        s3Error('InvalidRequest', 400),
      )
      const mpu = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'd-mpu' }))
      assert.equal(mpu.ServerSideEncryption, 'AES256')
      // Explicit SSE-C wins over the default.
      const c = await s3.send(new PutObjectCommand({ Bucket, Key: 'd-ssec', Body: 'c', ...ssec }))
      assert.equal(c.ServerSideEncryption, undefined)
      assert.equal(c.SSECustomerAlgorithm, 'AES256')
    } finally {
      await s3.send(new DeleteBucketEncryptionCommand({ Bucket }))
    }
    await assert.rejects(
      s3.send(new GetBucketEncryptionCommand({ Bucket })),
      s3Error('ServerSideEncryptionConfigurationNotFoundError', 404),
    )
    const after = await s3.send(new PutObjectCommand({ Bucket, Key: 'd-after', Body: 'plain again' }))
    assert.equal(after.ServerSideEncryption, undefined)
  })

  test('no plaintext of SSE-S3 objects on disk (blocks and inline data)', async () => {
    await s3.send(new PutObjectCommand({ Bucket, Key: 'disk-small', Body: `${MARKER} small`, ServerSideEncryption: 'AES256' }))
    const blocks = await blockFiles(join(node.dir, 'data'))
    assert.ok(blocks.length > 0)
    for (const b of blocks) assert.equal(b.bytes.includes(Buffer.from(MARKER)), false, `plaintext in ${b.path}`)
    for (const f of await filesUnder(join(node.dir, 'meta'))) {
      const bytes = (await readFile(f).catch(ignoreMissing)) ?? Buffer.alloc(0)
      assert.equal(bytes.includes(Buffer.from(`${MARKER} small`)), false, `inline data in clear in ${f}`)
    }
  })
})

describe('SSE-S3 on a 3-node cluster', () => {
  test('blocks are encrypted before they leave the API node: no node holds the plaintext', async (t) => {
    const masterKey = `k1:${randomBytes(32).toString('hex')}`
    const cluster = await startTestCluster({ nodeOptions: { s3_api: { sse_master_key: masterKey } } })
    t.after(() => cluster.stop())
    const clients = cluster.nodes.map((n) => new S3Client({ ...n.s3Config, maxAttempts: 1 }))
    t.after(() => {
      for (const c of clients) c.destroy()
    })
    const [a, b, c] = clients as [S3Client, S3Client, S3Client]
    const B = cluster.bucket
    const CONTROL = 'PLAINTEXT-CONTROL-MARKER-93d1'
    const secret = markedBody(2 * MiB + 4321)
    const control = markedBody(MiB + 10, CONTROL)
    await a.send(new PutObjectCommand({ Bucket: B, Key: 'secret', Body: secret, ServerSideEncryption: 'AES256' }))
    await a.send(new PutObjectCommand({ Bucket: B, Key: 'control', Body: control }))
    // Every node reads it back through the shared master key.
    for (const client of [a, b, c]) {
      const g = await get(client, { Bucket: B, Key: 'secret' })
      assert.ok(g.body.equals(secret))
      assert.equal(g.out.ServerSideEncryption, 'AES256')
    }
    const copy = await b.send(
      new CopyObjectCommand({ Bucket: B, Key: 'secret-copy', CopySource: `${B}/secret`, ServerSideEncryption: 'AES256' }),
    )
    assert.equal(copy.ServerSideEncryption, 'AES256')
    assert.ok((await get(c, { Bucket: B, Key: 'secret-copy' })).body.equals(secret))

    // Replication factor 3: every node holds every block; none may hold the plaintext, while the
    // control object's plaintext is found (so the search itself works).
    for (const n of cluster.nodes) {
      const blocks = await blockFiles(join(n.dir, 'data'))
      const withControl = blocks.filter((x) => x.bytes.includes(Buffer.from(CONTROL)))
      assert.ok(withControl.length > 0, `the control plaintext is not found on ${n.dir}`)
      for (const x of blocks) assert.equal(x.bytes.includes(Buffer.from(MARKER)), false, `SSE-S3 plaintext in ${x.path}`)
    }
  })
})
