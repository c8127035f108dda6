/**
 * Conditional writes and bucket policies across a cluster: three `garage server` processes (RF 3,
 * consistent mode). Of 8 concurrent `If-None-Match: *` writers spread over the three nodes
 * exactly one gets 200 and its body is what every node serves; the others get 412 (or 409). A
 * policy put through one node opens anonymous reads, and its Deny is enforced, on the others.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import {
  DeleteBucketPolicyCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutBucketPolicyCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import { adminOk, type ReplicatedCluster, startReplicatedCluster } from '../../helpers/cluster.ts'
import { CLUSTER_WAIT, eventually } from '../../helpers/eventually.ts'

const body = async (c: S3Client, bucket: string, key: string): Promise<Buffer> => {
  const r = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  return Buffer.from((await r.Body?.transformToByteArray()) ?? new Uint8Array(0))
}

describe('conditional writes through the 3 nodes of a cluster', { timeout: 180_000 }, () => {
  let cluster: ReplicatedCluster
  before(async () => {
    cluster = await startReplicatedCluster({ nodes: 3 })
  })
  after(async () => {
    await cluster?.stop()
  })

  /** 8 writers of `bodies[i]` through node i % 3, all at once; the index of each that got 200. */
  const race = async (key: string, bodies: Buffer[]): Promise<number[]> => {
    const results = await Promise.allSettled(
      bodies.map((b, i) =>
        cluster.client(i % 3).send(new PutObjectCommand({ Bucket: cluster.bucket, Key: key, Body: b, IfNoneMatch: '*' })),
      ),
    )
    for (const r of results) {
      if (r.status === 'rejected') {
        const name = (r.reason as { name?: string }).name
        assert.ok(name === 'PreconditionFailed' || name === 'ConditionalRequestConflict', `a loser got ${name}`)
      }
    }
    return results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []))
  }

  for (const [label, size] of [
    ['inline bodies', 100],
    ['multi-block bodies', 1024 * 1024 + 100],
  ] as const) {
    test(`8 concurrent If-None-Match: * writers (${label}): exactly one 200, its body stored on every node`, async () => {
      for (let round = 0; round < 3; round++) {
        const key = `race/${size}/${round}`
        const bodies = Array.from({ length: 8 }, () => randomBytes(size))
        const won = await race(key, bodies)
        assert.equal(won.length, 1, `round ${round}: exactly one writer wins, got ${won.length}`)
        const winner = bodies[won[0] as number] as Buffer
        for (let n = 0; n < 3; n++) {
          assert.ok((await body(cluster.client(n), cluster.bucket, key)).equals(winner), `node ${n} serves the winner's body`)
        }
        // The key now exists: one more conditional writer through any node gets 412 at once.
        await assert.rejects(
          cluster
            .client(round % 3)
            .send(new PutObjectCommand({ Bucket: cluster.bucket, Key: key, Body: 'late', IfNoneMatch: '*' })),
          (e: unknown) => (e as { name?: string }).name === 'PreconditionFailed',
        )
      }
    })
  }

  test('a policy put through node 1 opens anonymous reads and denies deletes through nodes 2 and 3', async () => {
    const bucket = cluster.bucket
    await cluster.client(0).send(new PutObjectCommand({ Bucket: bucket, Key: 'pub/doc', Body: 'public doc' }))
    const anonGet = (n: number, key: string) => fetch(`${cluster.target(n).endpoint}/${bucket}/${key}`)
    assert.equal((await anonGet(1, 'pub/doc')).status, 403, 'no policy yet: anonymous reads are refused')
    await cluster.client(0).send(
      new PutBucketPolicyCommand({
        Bucket: bucket,
        Policy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            { Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${bucket}/pub/*` },
            { Effect: 'Deny', Principal: '*', Action: 's3:DeleteObject', Resource: `arn:aws:s3:::${bucket}/pub/*` },
          ],
        }),
      }),
    )
    try {
      for (const n of [1, 2]) {
        await eventually(
          `node ${n + 1} serves the anonymous read`,
          async () => {
            const r = await anonGet(n, 'pub/doc')
            assert.equal(r.status, 200, `node ${n + 1} serves the anonymous read`)
            assert.equal(await r.text(), 'public doc')
          },
          CLUSTER_WAIT,
        )
        await assert.rejects(
          cluster.client(n).send(new DeleteObjectCommand({ Bucket: bucket, Key: 'pub/doc' })),
          (e: unknown) => (e as { name?: string }).name === 'AccessDenied',
        )
        const info = await adminOk<{ bucketPolicy?: boolean }>(
          cluster.nodes[n] as (typeof cluster.nodes)[number],
          `GetBucketInfo?globalAlias=${bucket}`,
        )
        assert.equal(info.bucketPolicy, true, `node ${n + 1}'s admin API shows the policy`)
      }
      assert.equal((await anonGet(2, 'other/x')).status, 403, 'outside the policy resource')
    } finally {
      await cluster.client(0).send(new DeleteBucketPolicyCommand({ Bucket: bucket }))
    }
  })
})
