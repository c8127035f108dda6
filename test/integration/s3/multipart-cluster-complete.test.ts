/**
 * CompleteMultipartUpload of 400 small parts (more than one 64 KiB RPC frame of part rows) on a three-node cluster (in-process nodes, RF 3,
 * the AWS SDK): the part versions are never read one quorum read per part: each comes from the
 * local copy when that copy covers the whole part (here, right after the uploads, all of them), the
 * others from one batched quorum read (the version table's `getMany`, one call per remote node
 * asked; its remote path is tested in test/table/table-cluster.test.ts), and the object reads back
 * byte for byte through another node.
 */
import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { test } from 'node:test'
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import type { NetCallEvent } from '../../../lib/net/netapp.ts'
import { startTestCluster } from '../../../lib/testing.ts'
import type { TableRequest } from '../../../lib/table/table.ts'

const PARTS = 400

const body = (n: number): Buffer => Buffer.alloc(20 + (n % 50), `${n};`)

test('a cluster Complete of 400 parts reads no part version on its own, at most one batch per node', async (t) => {
  const cluster = await startTestCluster({ nodes: 3, nodeOptions: { s3_api: { min_part_size: 0 } } })
  t.after(() => cluster.stop())
  const [n0, n1] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]]
  const s3 = new S3Client({ ...n0.s3Config, maxAttempts: 1 })
  const other = new S3Client({ ...n1.s3Config, maxAttempts: 1 })
  t.after(() => {
    s3.destroy()
    other.destroy()
  })
  const Bucket = cluster.bucket
  const Key = 'many-parts'
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key }))
  const etags: string[] = []
  let next = 1
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let n = next++; n <= PARTS; n = next++) {
        const r = await s3.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: n, Body: body(n) }))
        etags[n - 1] = r.ETag as string
      }
    }),
  )

  const versionReads: string[] = []
  const onCall = (m: unknown): void => {
    const e = m as NetCallEvent
    const op = (e.req as TableRequest).op
    if (e.path === 'table/version' && op !== 'update') versionReads.push(op)
  }
  subscribe('garage:net:call', onCall)
  try {
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket,
        Key,
        UploadId,
        MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      }),
    )
  } finally {
    unsubscribe('garage:net:call', onCall)
  }
  assert.equal(versionReads.filter((op) => op === 'get').length, 0, 'no part version read on its own')
  const batched = versionReads.filter((op) => op === 'getMany').length
  // Local copies first; what is missing goes in one batch to another node (two if the first is slow).
  assert.ok(batched <= 2, `getMany calls to remote nodes: ${batched} (reads: ${versionReads})`)

  const got = await other.send(new GetObjectCommand({ Bucket, Key }))
  const bytes = Buffer.from(await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray())
  const expected = Buffer.concat(Array.from({ length: PARTS }, (_, i) => body(i + 1)))
  assert.equal(bytes.length, expected.length)
  assert.ok(bytes.equals(expected), 'every byte, in part order, through another node')
})
