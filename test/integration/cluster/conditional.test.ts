/**
 * Conditional writes across a cluster: three `garage server` processes (RF 3, consistent mode),
 * writers spread over the three nodes. Of 8 concurrent `If-None-Match: *` writers exactly one
 * gets 200 and its body is what every node serves; the others get 412 (or 409).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { type ReplicatedCluster, startReplicatedCluster } from '../../helpers/cluster.ts'

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
})
