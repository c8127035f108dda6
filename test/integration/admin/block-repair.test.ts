/**
 * Block, repair and node-scoped endpoints of the admin API: on one node (success, unknown hash,
 * bad input, token scope), then across a 3-node cluster (`?node=*` and `?node=<id>` run on the
 * other nodes through the `admin/local` RPC).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { startTestCluster, startTestNode, type TestCluster, type TestNode } from '../../../lib/testing.ts'
import { blake2sum, toHex } from '../../../lib/util/data.ts'
import { v2 } from '../../helpers/admin.ts'

function expectError(r: { status: number; json: unknown; text: string }, status: number, code: string): void {
  assert.equal(r.status, status, r.text)
  assert.equal((r.json as { code: string }).code, code, r.text)
}

const self = (r: { data: Record<string, unknown> }, id: string): unknown => (r.data.success as Record<string, unknown>)[id]

describe('block and repair endpoints on one node', () => {
  let node: TestNode
  let s3: S3Client
  const body = Buffer.alloc(64 * 1024, 7)
  const hash = toHex(blake2sum(body))
  before(async () => {
    node = await startTestNode({ admin: { api_bind_addr: '127.0.0.1:0', admin_token: 'tok' } })
    s3 = new S3Client(node.s3Config)
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'big', Body: body }))
  })
  after(async () => {
    s3.destroy()
    await node.close()
  })

  test('GetBlockInfo by hash or prefix: refcount and the object using it', async () => {
    for (const h of [hash, hash.slice(0, 6)]) {
      const r = await v2(node, 'GetBlockInfo', { query: { node: 'self' }, body: { blockHash: h } })
      assert.equal(r.status, 200, r.text)
      const info = self(r, node.node.nodeId) as {
        blockHash: string
        refcount: number
        versions: Array<{ refDeleted: boolean; versionDeleted: boolean; backlink: { object?: { key: string } } }>
      }
      assert.equal(info.blockHash, hash)
      assert.equal(info.refcount, 1)
      assert.equal(info.versions.length, 1)
      assert.equal(info.versions[0]?.refDeleted, false)
      assert.equal(info.versions[0]?.versionDeleted, false)
      assert.equal(info.versions[0]?.backlink.object?.key, 'big')
    }
  })

  test('GetBlockInfo: unknown hash is 404 NoSuchBlock; short, bad or missing hash is 400', async () => {
    const q = { node: 'self' }
    expectError(await v2(node, 'GetBlockInfo', { query: q, body: { blockHash: 'f'.repeat(64) } }), 404, 'NoSuchBlock')
    expectError(await v2(node, 'GetBlockInfo', { query: q, body: { blockHash: 'ab' } }), 400, 'InvalidRequest')
    expectError(await v2(node, 'GetBlockInfo', { query: q, body: { blockHash: 'zzzz' } }), 400, 'InvalidRequest')
    expectError(await v2(node, 'GetBlockInfo', { query: q, body: {} }), 400, 'InvalidRequest')
    expectError(await v2(node, 'GetBlockInfo', { body: { blockHash: hash } }), 400, 'InvalidRequest')
  })

  test('ListBlockErrors and RetryBlockResync', async () => {
    const l = await v2(node, 'ListBlockErrors', { query: { node: '*' } })
    assert.equal(l.status, 200, l.text)
    assert.deepEqual(self(l, node.node.nodeId), [])
    const r = await v2(node, 'RetryBlockResync', { query: { node: 'self' }, body: { all: true } })
    assert.equal(r.status, 200, r.text)
    assert.deepEqual(self(r, node.node.nodeId), { count: 0 })
    for (const bad of [{}, { all: false }, { blockHashes: ['xyz'] }, { all: true, blockHashes: [] }]) {
      expectError(await v2(node, 'RetryBlockResync', { query: { node: 'self' }, body: bad }), 400, 'InvalidRequest')
    }
  })

  test('LaunchRepairOperation starts the repair workers; a bad repairType is 400', async () => {
    for (const repairType of ['versions', 'multipartUploads', 'blockRefs', 'blockRc', 'tables', 'blocks', 'rebalance']) {
      const r = await v2(node, 'LaunchRepairOperation', { query: { node: 'self' }, body: { repairType } })
      assert.equal(r.status, 200, `${repairType}: ${r.text}`)
      assert.deepEqual(r.data, { success: { [node.node.nodeId]: null }, error: {} })
    }
    const w = await v2(node, 'ListWorkers', { query: { node: 'self' }, body: {} })
    const names = (self(w, node.node.nodeId) as Array<{ name: string }>).map((x) => x.name)
    for (const n of ['version repair worker', 'block_ref repair worker', 'Block refcount repair worker']) {
      assert.ok(names.includes(n), `${n} is listed (got ${names.join(', ')})`)
    }
    const s = await v2(node, 'LaunchRepairOperation', { query: { node: 'self' }, body: { repairType: { scrub: 'start' } } })
    assert.equal(s.status, 200, s.text)
    for (const bad of [{}, { repairType: 'mpu' }, { repairType: { scrub: 'later' } }]) {
      expectError(await v2(node, 'LaunchRepairOperation', { query: { node: 'self' }, body: bad }), 400, 'InvalidRequest')
    }
    // The object is untouched by the repairs.
    const got = await s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: 'big' }))
    assert.equal((await got.Body?.transformToByteArray())?.length, body.length)
  })

  test('a token scoped to ListBlockErrors cannot purge', async () => {
    const c = await v2(node, 'CreateAdminToken', { body: { name: 'ro', scope: ['ListBlockErrors'] } })
    const token = c.data.secretToken as string
    const ok = await v2(node, 'ListBlockErrors', { query: { node: 'self' }, token })
    assert.equal(ok.status, 200, ok.text)
    expectError(await v2(node, 'PurgeBlocks', { query: { node: 'self' }, body: [hash], token }), 403, 'AccessDenied')
  })

  test('PurgeBlocks deletes the objects using the block; bad input is 400', async () => {
    expectError(await v2(node, 'PurgeBlocks', { query: { node: 'self' }, body: { hash } }), 400, 'InvalidRequest')
    expectError(await v2(node, 'PurgeBlocks', { query: { node: 'self' }, body: ['abcd'] }), 400, 'InvalidRequest')
    const r = await v2(node, 'PurgeBlocks', { query: { node: 'self' }, body: [hash] })
    assert.equal(r.status, 200, r.text)
    assert.deepEqual(self(r, node.node.nodeId), { blocksPurged: 1, versionsDeleted: 1, objectsDeleted: 1, uploadsDeleted: 0 })
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: 'big' })), { name: 'NoSuchKey' })
  })
})

describe('node-scoped endpoints across a cluster', () => {
  let cluster: TestCluster
  let entry: TestNode
  before(async () => {
    cluster = await startTestCluster({ nodes: 3 })
    const first = cluster.nodes[0]
    assert.ok(first !== undefined, 'the cluster has nodes')
    // The admin helpers only use these two fields.
    entry = { adminEndpoint: first.adminEndpoint, adminToken: cluster.adminToken } as TestNode
  })
  after(() => cluster.stop())

  test('?node=* answers for every node; ?node=<id prefix> runs on that node', async () => {
    const ids = cluster.nodes.map((n) => n.nodeId)
    const all = await v2(entry, 'GetNodeInfo', { query: { node: '*' } })
    assert.equal(all.status, 200, all.text)
    assert.deepEqual(Object.keys(all.data.success as object).sort(), [...ids].sort())
    for (const id of ids) assert.equal((self(all, id) as { nodeId: string }).nodeId, id)

    const other = ids[2] as string
    const w = await v2(entry, 'ListWorkers', { query: { node: other.slice(0, 10) }, body: {} })
    assert.equal(w.status, 200, w.text)
    assert.deepEqual(Object.keys(w.data.success as object), [other])

    const rep = await v2(entry, 'LaunchRepairOperation', { query: { node: '*' }, body: { repairType: 'blockRc' } })
    assert.equal(rep.status, 200, rep.text)
    assert.equal(Object.keys(rep.data.success as object).length, 3)
    assert.deepEqual(rep.data.error, {})

    const set = await v2(entry, 'SetWorkerVariable', {
      query: { node: other },
      body: { variable: 'resync-tranquility', value: '3' },
    })
    assert.deepEqual(self(set, other), { variable: 'resync-tranquility', value: '3' })
    const get = await v2(entry, 'GetWorkerVariable', { query: { node: '*' }, body: { variable: 'resync-tranquility' } })
    assert.deepEqual(self(get, other), { 'resync-tranquility': '3' })
    assert.deepEqual(self(get, ids[0] as string), { 'resync-tranquility': '2' })

    // A remote node's refusal keeps its code when it is the only node addressed.
    expectError(
      await v2(entry, 'SetWorkerVariable', { query: { node: other }, body: { variable: 'resync-tranquility', value: 'x' } }),
      400,
      'InvalidRequest',
    )
    const bad = await v2(entry, 'GetWorkerInfo', { query: { node: '*' }, body: { id: 99999 } })
    assert.equal(bad.status, 200, bad.text)
    assert.equal(Object.keys(bad.data.error as object).length, 3, 'every node reports its own error')
  })

  test('a node that is down is listed under error', async () => {
    const down = cluster.nodes[1]
    assert.ok(down !== undefined, 'node 2 exists')
    await down.stop()
    const all = await v2(entry, 'GetNodeInfo', { query: { node: '*' } })
    assert.equal(all.status, 200, all.text)
    assert.ok((all.data.error as Record<string, string>)[down.nodeId] !== undefined, `node 2 is an error: ${all.text}`)
    assert.equal(Object.keys(all.data.success as object).length, 2)
  })
})
