/**
 * Three `garage server` processes in three zones with RF 3: objects put through node A (inline,
 * multi-block, multipart) are read through B and C with identical bytes, listings agree on all
 * three, every block is stored on all three nodes, and a key and a bucket created through A's
 * admin API are usable through C.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { blockFilesOf, createKeyAndBucket, type ReplicatedCluster, startReplicatedCluster } from '../../helpers/cluster.ts'
import { CLUSTER_WAIT, eventually } from '../../helpers/eventually.ts'
import { putBlockHashes } from '../../helpers/workload.ts'

const MiB = 1024 * 1024
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

describe('replication across 3 nodes in 3 zones (RF 3)', { timeout: 120_000 }, () => {
  let cluster: ReplicatedCluster
  before(async () => {
    cluster = await startReplicatedCluster({ nodes: 3 })
  })
  after(async () => {
    await cluster?.stop()
  })

  const getBody = async (c: S3Client, bucket: string, key: string): Promise<Buffer> => {
    const r = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
    return Buffer.from((await r.Body?.transformToByteArray()) ?? new Uint8Array(0))
  }

  test('objects put through A are read through B and C byte for byte; listings agree; blocks on all three', async () => {
    const [a, b, c] = [cluster.client(0), cluster.client(1), cluster.client(2)]
    const bucket = cluster.bucket
    const small = randomBytes(100)
    const big = randomBytes(2 * MiB + 512 * 1024)
    await a.send(new PutObjectCommand({ Bucket: bucket, Key: 'small', Body: small }))
    await a.send(new PutObjectCommand({ Bucket: bucket, Key: 'dir/big', Body: big }))

    const parts = [randomBytes(5 * MiB), randomBytes(MiB + 4321)]
    const mpu = await a.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'multi' }))
    assert.ok(mpu.UploadId !== undefined, 'CreateMultipartUpload through A gives an upload id')
    // The parts go through A too: the upload itself is replicated state.
    const etags: string[] = []
    for (const [i, body] of parts.entries()) {
      const r = await a.send(
        new UploadPartCommand({ Bucket: bucket, Key: 'multi', UploadId: mpu.UploadId, PartNumber: i + 1, Body: body }),
      )
      etags.push(r.ETag as string)
    }
    await a.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: 'multi',
        UploadId: mpu.UploadId,
        MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      }),
    )
    const expected = new Map([
      ['small', small],
      ['dir/big', big],
      ['multi', Buffer.concat(parts)],
    ])

    // Read at once (no polling): a quorum write is visible to a quorum read through any node.
    for (const [name, client] of [
      ['B', b],
      ['C', c],
    ] as const) {
      for (const [key, body] of expected) {
        const got = await getBody(client, bucket, key)
        assert.equal(got.length, body.length, `${key} through ${name}: length`)
        assert.equal(sha(got), sha(body), `${key} through ${name}: same bytes`)
      }
    }

    const heads = await Promise.all(
      [a, b, c].map(async (cl) =>
        Promise.all(
          [...expected.keys()].map(async (key) => (await cl.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ETag),
        ),
      ),
    )
    assert.deepEqual(heads[1], heads[0], 'B reports the same ETags as A')
    assert.deepEqual(heads[2], heads[0], 'C reports the same ETags as A')

    const listings = await Promise.all(
      [a, b, c].map(async (cl) => {
        const r = await cl.send(new ListObjectsV2Command({ Bucket: bucket }))
        return (r.Contents ?? []).map((o) => ({ key: o.Key, size: o.Size, etag: o.ETag }))
      }),
    )
    assert.deepEqual(
      listings[0]?.map((o) => o.key),
      ['dir/big', 'multi', 'small'],
      'A lists the three objects',
    )
    assert.deepEqual(listings[1], listings[0], 'B lists the same objects as A')
    assert.deepEqual(listings[2], listings[0], 'C lists the same objects as A')
    const delimited = await Promise.all(
      [a, b, c].map(async (cl) => {
        const r = await cl.send(new ListObjectsV2Command({ Bucket: bucket, Delimiter: '/' }))
        return { keys: (r.Contents ?? []).map((o) => o.Key), prefixes: (r.CommonPrefixes ?? []).map((p) => p.Prefix) }
      }),
    )
    assert.deepEqual(delimited[0], { keys: ['multi', 'small'], prefixes: ['dir/'] })
    assert.deepEqual(delimited[1], delimited[0], 'B agrees with A on a delimited listing')
    assert.deepEqual(delimited[2], delimited[0], 'C agrees with A on a delimited listing')

    // RF 3 on 3 nodes: every block ends up on every node (quorum at once, the rest in the background).
    const blocks = [...putBlockHashes(big, MiB), ...parts.flatMap((p) => putBlockHashes(p, MiB))]
    assert.equal(blocks.length, 3 + 5 + 2)
    for (const [i, n] of cluster.nodes.entries()) {
      await eventually(
        `node ${i} to store all ${blocks.length} blocks`,
        async () => {
          const have = (await blockFilesOf(n)).blocks
          return blocks.every((h) => have.has(h))
        },
        CLUSTER_WAIT,
      )
    }
  })

  test('a key and a bucket created through A’s admin API are usable through C', async () => {
    const creds = await createKeyAndBucket(cluster.node(0), 'made-on-a')
    const through = (i: number): S3Client =>
      new S3Client({
        endpoint: cluster.node(i).proc.endpoint,
        region: cluster.node(i).proc.region,
        credentials: creds,
        forcePathStyle: true,
        maxAttempts: 1,
      })
    const c = through(2)
    const a = through(0)
    try {
      const body = randomBytes(40_000)
      // Full-copy tables (keys, buckets) may reach C a moment after A acknowledged.
      await eventually(
        'C to accept a PUT with the key made on A',
        async () => {
          await c.send(new PutObjectCommand({ Bucket: 'made-on-a', Key: 'from-c', Body: body }))
          return true
        },
        CLUSTER_WAIT,
      )
      assert.equal(sha(await getBody(a, 'made-on-a', 'from-c')), sha(body), 'A reads what C wrote')
      const listed = await c.send(new ListObjectsV2Command({ Bucket: 'made-on-a' }))
      assert.deepEqual(
        (listed.Contents ?? []).map((o) => o.Key),
        ['from-c'],
      )
    } finally {
      a.destroy()
      c.destroy()
    }
  })
})
