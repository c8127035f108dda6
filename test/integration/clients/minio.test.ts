/** The MinIO JavaScript client doing everyday work against a real node. */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { Client } from 'minio'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex')

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c)
  return Buffer.concat(chunks)
}

describe('MinIO JavaScript client', () => {
  let node: TestNode
  let client: Client
  before(async () => {
    node = await startTestNode()
    const url = new URL(node.endpoint)
    client = new Client({
      endPoint: url.hostname,
      port: Number(url.port),
      useSSL: false,
      accessKey: node.key.accessKeyId,
      secretKey: node.key.secretAccessKey,
      region: node.region,
      pathStyle: true,
    })
  })
  after(() => node?.close())

  test('putObject / getObject of 2 KiB, 5 MiB and 20 MiB (multipart) bodies', async () => {
    for (const size of [2048, 5 * 1024 * 1024, 20 * 1024 * 1024]) {
      const data = randomBytes(size)
      await client.putObject(node.bucket, `minio/${size}.bin`, data, size)
      const back = await readAll(await client.getObject(node.bucket, `minio/${size}.bin`))
      assert.equal(md5(back), md5(data), `${size} bytes come back identical`)
      const stat = await client.statObject(node.bucket, `minio/${size}.bin`)
      assert.equal(stat.size, size)
    }
  })

  test('listObjectsV2 with prefix, recursion and special keys', async () => {
    const keys = ['list/a b.txt', 'list/a&b.txt', 'list/plus+.txt', 'list/é.txt', 'list/sub/😀.txt']
    for (const k of keys) await client.putObject(node.bucket, k, Buffer.from(k))
    const seen: string[] = []
    for await (const item of client.listObjectsV2(node.bucket, 'list/', true) as AsyncIterable<{ name?: string }>) {
      if (item.name !== undefined) seen.push(item.name)
    }
    assert.deepEqual(seen.sort(), [...keys].sort())
    const top: string[] = []
    for await (const item of client.listObjectsV2(node.bucket, 'list/', false) as AsyncIterable<{
      name?: string
      prefix?: string
    }>) {
      top.push(item.name ?? item.prefix ?? '')
    }
    assert.ok(top.includes('list/sub/'), 'the sub folder is a common prefix')
    assert.equal(top.length, 5)
  })

  test('presigned GET and PUT URLs work with plain fetch', async () => {
    const putUrl = await client.presignedPutObject(node.bucket, 'presigned/file.txt', 60)
    const put = await fetch(putUrl, { method: 'PUT', body: 'via presigned put' })
    assert.equal(put.status, 200)
    const getUrl = await client.presignedGetObject(node.bucket, 'presigned/file.txt', 60)
    const get = await fetch(getUrl)
    assert.equal(get.status, 200)
    assert.equal(await get.text(), 'via presigned put')
    const tampered = getUrl
      .replace('presigned%2Ffile.txt', 'presigned%2Fother.txt')
      .replace('presigned/file.txt', 'presigned/other.txt')
    const denied = await fetch(tampered)
    assert.equal(denied.status, 403)
    await denied.arrayBuffer()
  })

  test('removeObject and removeObjects', async () => {
    await client.putObject(node.bucket, 'rm/1', Buffer.from('1'))
    await client.putObject(node.bucket, 'rm/2', Buffer.from('2'))
    await client.removeObject(node.bucket, 'rm/1')
    await client.removeObjects(node.bucket, ['rm/2'])
    const left: string[] = []
    for await (const item of client.listObjectsV2(node.bucket, 'rm/', true) as AsyncIterable<{ name?: string }>) {
      if (item.name !== undefined) left.push(item.name)
    }
    assert.deepEqual(left, [])
  })
})
