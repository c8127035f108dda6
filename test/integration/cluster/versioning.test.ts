/**
 * Versioning and object lock on three `garage server` processes (RF 3): versions written through
 * one node survive overwrites and are readable by id through every node, delete markers and
 * version listings agree everywhere, and a version under COMPLIANCE retention or legal hold
 * cannot be deleted through any node (the check reads the object row at quorum).
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import {
  DeleteObjectCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  PutObjectLegalHoldCommand,
  PutObjectLockConfigurationCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import { adminOk, type ReplicatedCluster, startReplicatedCluster } from '../../helpers/cluster.ts'
import { CLUSTER_WAIT, eventually } from '../../helpers/eventually.ts'

const MiB = 1024 * 1024
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

describe('versioning across 3 nodes (RF 3)', { timeout: 180_000 }, () => {
  let cluster: ReplicatedCluster
  before(async () => {
    cluster = await startReplicatedCluster({ nodes: 3 })
  })
  after(async () => {
    await cluster?.stop()
  })

  const body = async (c: S3Client, key: string, versionId?: string): Promise<Buffer> => {
    const r = await c.send(new GetObjectCommand({ Bucket: cluster.bucket, Key: key, VersionId: versionId }))
    return Buffer.from((await r.Body?.transformToByteArray()) ?? new Uint8Array(0))
  }
  const status = async (err: Promise<unknown>): Promise<string> => {
    try {
      await err
      return 'ok'
    } catch (e) {
      return `${(e as { name?: string }).name}:${(e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode}`
    }
  }

  test('versions written through each node are readable by id through every node', async () => {
    const clients = [0, 1, 2].map((i) => cluster.client(i))
    const Bucket = cluster.bucket
    await (clients[0] as S3Client).send(
      new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status: 'Enabled' } }),
    )
    // The bucket table is copied to every node; each serves the new state once it has it.
    for (const [i, c] of clients.entries()) {
      await eventually(
        `node ${i} to see versioning enabled`,
        async () => (await c.send(new GetBucketVersioningCommand({ Bucket }))).Status === 'Enabled',
        CLUSTER_WAIT,
      )
    }
    const info = await adminOk<{ versioning?: string }>(cluster.node(2), `GetBucketInfo?globalAlias=${Bucket}`)
    assert.equal(info.versioning, 'Enabled')

    // One inline and two multi-block versions, each written through another node.
    const bodies = [randomBytes(100), randomBytes(2 * MiB + 17), randomBytes(MiB + 5)]
    const ids: string[] = []
    for (const [i, b] of bodies.entries()) {
      const r = await (clients[i] as S3Client).send(new PutObjectCommand({ Bucket, Key: 'doc', Body: b }))
      ids.push(r.VersionId as string)
    }
    for (const [n, c] of clients.entries()) {
      assert.equal(sha(await body(c, 'doc')), sha(bodies[2] as Buffer), `latest through node ${n}`)
      for (const [i, id] of ids.entries()) {
        assert.equal(sha(await body(c, 'doc', id)), sha(bodies[i] as Buffer), `version ${i} through node ${n}`)
      }
    }

    // A delete marker through node 1: the key is gone through every node, its versions are not.
    const marker = await (clients[1] as S3Client).send(new DeleteObjectCommand({ Bucket, Key: 'doc' }))
    assert.equal(marker.DeleteMarker, true)
    for (const [n, c] of clients.entries()) {
      assert.equal(await status(c.send(new GetObjectCommand({ Bucket, Key: 'doc' }))), 'NoSuchKey:404', `node ${n}`)
      assert.equal(sha(await body(c, 'doc', ids[0])), sha(bodies[0] as Buffer))
    }

    // Version listings page the same way through every node.
    for (const [n, c] of clients.entries()) {
      const seen: string[] = []
      let keyMarker: string | undefined
      let versionIdMarker: string | undefined
      for (let page = 0; page < 10; page++) {
        const r = await c.send(
          new ListObjectVersionsCommand({
            Bucket,
            Prefix: 'doc',
            MaxKeys: 1,
            KeyMarker: keyMarker,
            VersionIdMarker: versionIdMarker,
          }),
        )
        for (const v of r.Versions ?? []) seen.push(v.VersionId as string)
        for (const m of r.DeleteMarkers ?? []) seen.push(`marker:${m.VersionId}`)
        if (r.IsTruncated !== true) break
        keyMarker = r.NextKeyMarker
        versionIdMarker = r.NextVersionIdMarker
      }
      assert.deepEqual(seen, [`marker:${marker.VersionId}`, ...[...ids].reverse()], `listing through node ${n}`)
    }

    // Deleting one version by id through node 2 removes it everywhere and leaves the others.
    await (clients[2] as S3Client).send(new DeleteObjectCommand({ Bucket, Key: 'doc', VersionId: ids[1] }))
    for (const [n, c] of clients.entries()) {
      assert.equal(await status(body(c, 'doc', ids[1])), 'NoSuchVersion:404', `node ${n}`)
      assert.equal(sha(await body(c, 'doc', ids[2])), sha(bodies[2] as Buffer))
    }
  })

  test('a version under COMPLIANCE retention or legal hold cannot be deleted through any node', async () => {
    const clients = [0, 1, 2].map((i) => cluster.client(i))
    const Bucket = cluster.bucket
    // Versioning is enabled (previous test), so object lock can be switched on.
    await (clients[0] as S3Client).send(
      new PutObjectLockConfigurationCommand({ Bucket, ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled' } }),
    )
    const until = new Date(Date.now() + 2 * 86_400_000)
    const kept = await (clients[0] as S3Client).send(
      new PutObjectCommand({
        Bucket,
        Key: 'locked',
        Body: 'keep me',
        ObjectLockMode: 'COMPLIANCE',
        ObjectLockRetainUntilDate: until,
      }),
    )
    const held = await (clients[0] as S3Client).send(
      new PutObjectCommand({ Bucket, Key: 'held', Body: 'hold me', ObjectLockLegalHoldStatus: 'ON' }),
    )
    for (const [n, c] of clients.entries()) {
      const del = (Key: string, VersionId: string | undefined) =>
        c.send(new DeleteObjectCommand({ Bucket, Key, VersionId, BypassGovernanceRetention: true }))
      assert.equal(await status(del('locked', kept.VersionId)), 'AccessDenied:403', `COMPLIANCE through node ${n}`)
      assert.equal(await status(del('held', held.VersionId)), 'AccessDenied:403', `legal hold through node ${n}`)
      assert.equal((await body(c, 'locked', kept.VersionId)).toString(), 'keep me')
    }
    // Released through node 2, the held version can be deleted through node 1.
    await (clients[2] as S3Client).send(
      new PutObjectLegalHoldCommand({ Bucket, Key: 'held', VersionId: held.VersionId, LegalHold: { Status: 'OFF' } }),
    )
    await (clients[1] as S3Client).send(new DeleteObjectCommand({ Bucket, Key: 'held', VersionId: held.VersionId }))
    assert.equal(await status(body(clients[0] as S3Client, 'held', held.VersionId)), 'NoSuchVersion:404')
  })
})
