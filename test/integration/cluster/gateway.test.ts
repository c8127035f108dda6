/**
 * A gateway node (a role without capacity) serves the S3 API like any other node while storing no
 * object data: its sharded tables and its data directory stay empty, and what it writes lands on
 * the three storage nodes.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { startTestCluster, type TestCluster, type TestClusterNode } from '../../../lib/testing.ts'

let cluster: TestCluster
const client = (n: TestClusterNode): S3Client => new S3Client({ ...n.s3Config, maxAttempts: 1 })

async function body(s3: S3Client, bucket: string, key: string): Promise<Buffer> {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  return Buffer.from((await r.Body?.transformToByteArray()) ?? new Uint8Array())
}

/** Block files under a node's data directory (`xx/yy/<64 hex>`). */
async function blockFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true }).catch(() => [] as string[])
  return entries.filter((e) => /[0-9a-f]{64}$/.test(e)).map((e) => e.slice(-64))
}

const entries = (n: TestClusterNode, table: string): number => n.node.status().tables.find((t) => t.name === table)?.entries ?? -1

describe('a gateway node in a cluster of three storage nodes', { timeout: 120_000 }, () => {
  before(async () => {
    cluster = await startTestCluster({ nodes: 4, gateways: 1 })
  })
  after(async () => {
    await cluster?.stop()
  })

  test('the gateway serves PUT, GET and LIST; it stores no object data, the storage nodes do', async () => {
    const [a, b, c, gw] = cluster.nodes as [TestClusterNode, TestClusterNode, TestClusterNode, TestClusterNode]
    const big = randomBytes(2 * 1024 * 1024 + 123)
    await client(gw).send(new PutObjectCommand({ Bucket: cluster.bucket, Key: 'via-gateway/big', Body: big }))
    await client(gw).send(new PutObjectCommand({ Bucket: cluster.bucket, Key: 'via-gateway/small', Body: 'hello' }))
    await client(a).send(new PutObjectCommand({ Bucket: cluster.bucket, Key: 'via-a', Body: 'from a' }))

    assert.ok((await body(client(b), cluster.bucket, 'via-gateway/big')).equals(big), 'B reads what the gateway wrote')
    assert.equal((await body(client(gw), cluster.bucket, 'via-a')).toString(), 'from a', 'the gateway reads what A wrote')
    const listed = await client(gw).send(new ListObjectsV2Command({ Bucket: cluster.bucket }))
    assert.deepEqual(
      (listed.Contents ?? []).map((o) => o.Key),
      ['via-a', 'via-gateway/big', 'via-gateway/small'],
      'the gateway lists every key',
    )

    assert.equal(entries(gw, 'object'), 0, 'the gateway holds no object row')
    assert.equal(entries(gw, 'version'), 0, 'the gateway holds no version row')
    assert.equal(entries(gw, 'block_ref'), 0, 'the gateway holds no block_ref row')
    assert.ok(entries(gw, 'key') >= 1, 'the gateway holds the full-copy key table')
    assert.deepEqual(await blockFiles(join(gw.dir, 'data')), [], 'the gateway stores no block file')
    for (const n of [a, b, c]) {
      assert.equal(entries(n, 'object'), 3, `storage node ${n.zone} holds the three object rows`)
      assert.equal((await blockFiles(join(n.dir, 'data'))).length, 3, `storage node ${n.zone} holds the three blocks`)
    }
  })
})
