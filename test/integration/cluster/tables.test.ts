/**
 * Replicated tables seen through S3 on a three-node in-process cluster (startTestCluster: three
 * zones, replication factor 3, consistent mode): what is written through one node is read
 * through the others, listings agree, one node down changes nothing for clients, two nodes down
 * answer 503 ServiceUnavailable quickly.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3'
import { startTestCluster, type TestCluster, type TestClusterNode } from '../../../lib/testing.ts'
import { eventually } from '../../helpers/eventually.ts'
import { s3Error } from '../../helpers/s3.ts'

let cluster: TestCluster
let clients: S3Client[]

const client = (n: TestClusterNode): S3Client => new S3Client({ ...n.s3Config, maxAttempts: 1 })

async function getText(s3: S3Client, bucket: string, key: string): Promise<string> {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  return (await r.Body?.transformToString()) ?? ''
}

async function listKeys(s3: S3Client, bucket: string): Promise<Array<[string, number, string]>> {
  const out: Array<[string, number, string]> = []
  let token: string | undefined
  do {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token, MaxKeys: 7 }))
    for (const o of r.Contents ?? []) out.push([o.Key ?? '', o.Size ?? -1, o.ETag ?? ''])
    token = r.NextContinuationToken
  } while (token !== undefined)
  return out
}

describe('replicated tables through S3 on three nodes', { timeout: 120_000 }, () => {
  before(async () => {
    cluster = await startTestCluster({ nodes: 3, rpcTimeoutMsec: 3_000 })
    clients = cluster.nodes.map(client)
  })
  after(async () => {
    for (const c of clients ?? []) c.destroy()
    await cluster?.stop()
  })

  test('the cluster is formed: three zones, a layout everywhere, the key works on every node', async () => {
    assert.equal(cluster.nodes.length, 3)
    assert.deepEqual(
      cluster.nodes.map((n) => n.zone),
      ['z1', 'z2', 'z3'],
    )
    for (const n of cluster.nodes) {
      const l = n.node.layout.get()
      assert.equal(l.version, 1, 'layout version 1 applied')
      assert.equal(l.roles.length, 3, 'three roles')
    }
    for (const s3 of clients) {
      const r = await s3.send(new ListObjectsV2Command({ Bucket: cluster.bucket }))
      assert.equal(r.KeyCount, 0, 'the bucket is empty')
    }
  })

  test('an object put through A is read through B and C', async () => {
    const [a, b, c] = clients as [S3Client, S3Client, S3Client]
    await a.send(new PutObjectCommand({ Bucket: cluster.bucket, Key: 'hello.txt', Body: 'hello from A' }))
    assert.equal(await getText(b, cluster.bucket, 'hello.txt'), 'hello from A')
    assert.equal(await getText(c, cluster.bucket, 'hello.txt'), 'hello from A')
    // Overwritten through C, read through A.
    await c.send(new PutObjectCommand({ Bucket: cluster.bucket, Key: 'hello.txt', Body: 'hello from C' }))
    assert.equal(await getText(a, cluster.bucket, 'hello.txt'), 'hello from C')
  })

  test('listings agree on every node', async () => {
    const [a, b, c] = clients as [S3Client, S3Client, S3Client]
    for (let i = 0; i < 20; i++) {
      const via = [a, b, c][i % 3] as S3Client
      await via.send(new PutObjectCommand({ Bucket: cluster.bucket, Key: `list/${String(i).padStart(2, '0')}`, Body: `v${i}` }))
    }
    const lists = await Promise.all(clients.map((s3) => listKeys(s3, cluster.bucket)))
    assert.equal(lists[0]?.filter(([k]) => k.startsWith('list/')).length, 20, 'every key listed')
    assert.deepEqual(lists[1], lists[0], 'B lists what A lists')
    assert.deepEqual(lists[2], lists[0], 'C lists what A lists')
  })

  test('a bucket created through A is usable through C', async () => {
    const [a, , c] = clients as [S3Client, S3Client, S3Client]
    await a.send(new CreateBucketCommand({ Bucket: 'made-on-a' }))
    // Buckets are checked against the local copy: C holds it once the last replica write lands.
    await eventually('the bucket on C', () => c.send(new PutObjectCommand({ Bucket: 'made-on-a', Key: 'k', Body: 'on C' })))
    assert.equal(await getText(a, 'made-on-a', 'k'), 'on C')
  })

  test('a 1 MiB object put through A is read through B and C', async () => {
    const [a, b, c] = clients as [S3Client, S3Client, S3Client]
    const body = randomBytes(1024 * 1024)
    await a.send(new PutObjectCommand({ Bucket: cluster.bucket, Key: 'big', Body: body }))
    for (const s3 of [b, c]) {
      const r = await s3.send(new GetObjectCommand({ Bucket: cluster.bucket, Key: 'big' }))
      const got = Buffer.from((await r.Body?.transformToByteArray()) ?? [])
      assert.ok(got.equals(body), 'the same bytes through another node')
    }
  })

  test('with one node stopped, PUT, GET, LIST and DELETE keep working through the other two', async () => {
    const [a, b] = clients as [S3Client, S3Client, S3Client]
    await (cluster.nodes[2] as TestClusterNode).stop()
    await a.send(new PutObjectCommand({ Bucket: cluster.bucket, Key: 'degraded', Body: 'two of three' }))
    assert.equal(await getText(b, cluster.bucket, 'degraded'), 'two of three')
    assert.equal(await getText(a, cluster.bucket, 'hello.txt'), 'hello from C', 'earlier writes still read')
    const la = await listKeys(a, cluster.bucket)
    const lb = await listKeys(b, cluster.bucket)
    assert.ok(
      la.some(([k]) => k === 'degraded'),
      'listed',
    )
    assert.deepEqual(lb, la, 'A and B list the same')
    await b.send(new DeleteObjectCommand({ Bucket: cluster.bucket, Key: 'degraded' }))
    await assert.rejects(a.send(new GetObjectCommand({ Bucket: cluster.bucket, Key: 'degraded' })), s3Error('NoSuchKey', 404))
  })

  test('with two nodes stopped, a PUT answers 503 ServiceUnavailable quickly', async () => {
    const [a] = clients as [S3Client, S3Client, S3Client]
    await (cluster.nodes[1] as TestClusterNode).stop()
    const t0 = Date.now()
    await assert.rejects(
      a.send(new PutObjectCommand({ Bucket: cluster.bucket, Key: 'lonely', Body: 'x' })),
      s3Error('ServiceUnavailable', 503),
    )
    await assert.rejects(
      a.send(new GetObjectCommand({ Bucket: cluster.bucket, Key: 'hello.txt' })),
      s3Error('ServiceUnavailable', 503),
    )
    const took = Date.now() - t0
    assert.ok(took < 8_000, `answered within the RPC timeout (${took} ms)`)
  })

  test('restarted nodes serve again, on the same endpoints', async () => {
    const [a, b, c] = clients as [S3Client, S3Client, S3Client]
    await (cluster.nodes[1] as TestClusterNode).restart()
    await eventually('a write quorum again', () =>
      a.send(new PutObjectCommand({ Bucket: cluster.bucket, Key: 'back', Body: 'A and B' })),
    )
    assert.equal(await getText(b, cluster.bucket, 'back'), 'A and B')
    await (cluster.nodes[2] as TestClusterNode).restart()
    assert.equal(await eventually('C serving', () => getText(c, cluster.bucket, 'back')), 'A and B')
  })
})
