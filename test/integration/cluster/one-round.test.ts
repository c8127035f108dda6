/**
 * One-round PUT and DELETE (lib/api/s3/one-round.ts) on three `garage server` processes (RF 3):
 * a write takes its timestamp from the writing node's own copy of the row, and must still be
 * ordered after a version its copy missed. Node 1 stamps its versions 20 minutes ahead (as a
 * node with a clock that far ahead would, beyond what the cluster clock follows); node 0 does
 * not store the rows that carry them (as a node that was away). A PUT or DELETE through node 0
 * after a PUT through node 1 then starts below node 1's version: the replicas' answers show it,
 * and node 0 writes again above it. Without that check the later write loses (the earlier
 * PUT's content stays visible through every node).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { after, before, describe, test } from 'node:test'
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { type ReplicatedCluster, startReplicatedCluster } from '../../helpers/cluster.ts'

const HOOK = fileURLToPath(new URL('../../helpers/timestamp-hook.ts', import.meta.url))
const AHEAD_MS = 20 * 60_000

describe('one-round writes ordered after a version the writing node missed', { timeout: 240_000 }, () => {
  let cluster: ReplicatedCluster
  before(async () => {
    cluster = await startReplicatedCluster({
      nodes: 3,
      nodeOptions: (i): { preload?: string[]; env?: Record<string, string> } => {
        if (i === 0) return { preload: [HOOK], env: { GARAGE_TEST_DROP_AHEAD_MSEC: String(AHEAD_MS / 2) } }
        if (i === 1) return { preload: [HOOK], env: { GARAGE_TEST_TS_AHEAD_MSEC: String(AHEAD_MS) } }
        return {}
      },
    })
  })
  after(async () => {
    await cluster?.stop()
  })

  const get = async (c: S3Client, key: string): Promise<string> => {
    try {
      const r = await c.send(new GetObjectCommand({ Bucket: cluster.bucket, Key: key }))
      return Buffer.from((await r.Body?.transformToByteArray()) ?? new Uint8Array(0)).toString('hex')
    } catch (err) {
      return (err as { name?: string }).name ?? String(err)
    }
  }
  const logOf = (i: number): string => cluster.node(i).proc.output()

  for (const size of [100, 64 * 1024]) {
    test(`a PUT of ${size} bytes through the node that missed the newer version wins over it`, async () => {
      const key = `stale/put-${size}`
      const older = randomBytes(size)
      const newer = randomBytes(size)
      await cluster.client(1).send(new PutObjectCommand({ Bucket: cluster.bucket, Key: key, Body: older }))
      // Node 0 did not store it: its copy cannot give the timestamp.
      const before0 = await get(cluster.client(0), key)
      assert.equal(before0, older.toString('hex'), 'node 0 reads node 1 version at quorum')
      const rewrites = (logOf(0).match(/writing again above it/g) ?? []).length
      await cluster.client(0).send(new PutObjectCommand({ Bucket: cluster.bucket, Key: key, Body: newer }))
      assert.ok(logOf(0).includes(`one-round write of ${key}:`), 'node 0 wrote its version again above the one it missed')
      assert.equal((logOf(0).match(/writing again above it/g) ?? []).length, rewrites + 1)
      for (const i of [0, 1, 2])
        assert.equal(await get(cluster.client(i), key), newer.toString('hex'), `node ${i} reads the later PUT`)
    })
  }

  test('a DELETE through the node that missed the newer version deletes it', async () => {
    const key = 'stale/delete'
    // Node 0's copy has a visible version (a DELETE of a key its copy does not show reads first).
    await cluster.client(0).send(new PutObjectCommand({ Bucket: cluster.bucket, Key: key, Body: randomBytes(100) }))
    await cluster.client(1).send(new PutObjectCommand({ Bucket: cluster.bucket, Key: key, Body: randomBytes(5_000) }))
    await cluster.client(0).send(new DeleteObjectCommand({ Bucket: cluster.bucket, Key: key }))
    assert.ok(logOf(0).includes(`one-round write of ${key}:`), 'node 0 wrote its marker again above the version it missed')
    for (const i of [0, 1, 2]) assert.equal(await get(cluster.client(i), key), 'NoSuchKey', `node ${i} sees the object deleted`)
  })

  test('an UploadPart through the node that missed a newer upload of the part number is the one Complete takes', async () => {
    const key = 'stale/mpu'
    const Bucket = cluster.bucket
    const { UploadId } = await cluster.client(0).send(new CreateMultipartUploadCommand({ Bucket, Key: key }))
    const older = randomBytes(20_000)
    const newer = randomBytes(20_000)
    // Part 1 through node 1 (its row stamped ahead, refused by node 0), then again through node 0.
    await cluster.client(1).send(new UploadPartCommand({ Bucket, Key: key, UploadId, PartNumber: 1, Body: older }))
    const part = await cluster.client(0).send(new UploadPartCommand({ Bucket, Key: key, UploadId, PartNumber: 1, Body: newer }))
    assert.ok(logOf(0).includes(`one-round part 1 of upload`), 'node 0 wrote its part row again above the one it missed')
    await cluster.client(0).send(
      new CompleteMultipartUploadCommand({
        Bucket,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] },
      }),
    )
    for (const i of [0, 1, 2])
      assert.equal(await get(cluster.client(i), key), newer.toString('hex'), `node ${i} reads the later part`)
  })

  test('writes whose copy is current are not written twice', async () => {
    const key = `fresh/${randomBytes(4).toString('hex')}`
    const before = (logOf(0).match(/writing again above it/g) ?? []).length
    const body = randomBytes(10_000)
    await cluster.client(0).send(new PutObjectCommand({ Bucket: cluster.bucket, Key: key, Body: body }))
    const { UploadId } = await cluster
      .client(0)
      .send(new CreateMultipartUploadCommand({ Bucket: cluster.bucket, Key: `${key}.mpu` }))
    await cluster
      .client(0)
      .send(new UploadPartCommand({ Bucket: cluster.bucket, Key: `${key}.mpu`, UploadId, PartNumber: 1, Body: body }))
    await cluster.client(0).send(new DeleteObjectCommand({ Bucket: cluster.bucket, Key: key }))
    assert.equal(await get(cluster.client(2), key), 'NoSuchKey')
    assert.equal((logOf(0).match(/writing again above it/g) ?? []).length, before)
  })
})
