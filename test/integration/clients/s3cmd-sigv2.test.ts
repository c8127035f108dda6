/**
 * s3cmd (Debian's) with `signature_v2 = True`: every request signed with Signature V2, against one
 * node. Put, get, ls, del, and a 12 MiB multipart put (5 MiB chunks) with its MD5 read back.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { HeadObjectCommand } from '@aws-sdk/client-s3'
import { binary, md5File, nodeTarget, randomFile, run, s3cmdConfig, tempDir } from '../../helpers/clients.ts'
import { s3Client } from '../../helpers/s3.ts'

const S3CMD = binary('s3cmd')

describe('s3cmd with signature_v2 = True', {
  skip: S3CMD === undefined ? 's3cmd is not installed (.ci/run installs it)' : false,
}, () => {
  let node: TestNode
  before(async () => {
    node = await startTestNode()
  })
  after(() => node?.close())

  const s3cmd = async (conf: string, ...args: string[]) => run(S3CMD as string, ['-c', conf, ...args], {})
  const config = async (t: Parameters<typeof tempDir>[0]) =>
    s3cmdConfig(await tempDir(t, 'garage-s3cmd-v2-'), 's3cfg', nodeTarget(node), { sigV2: true, chunkMb: 5 })

  test('put, get, ls, del and a 12 MiB multipart put', async (t) => {
    const conf = await config(t)
    const dir = await tempDir(t, 'garage-s3cmd-v2-data-')
    const small = await randomFile(dir, 'small file.bin', 100 * 1024)
    await s3cmd(conf, 'put', small.path, `s3://${node.bucket}/v2/small file.bin`)
    const back = join(dir, 'small.back')
    await s3cmd(conf, 'get', `s3://${node.bucket}/v2/small file.bin`, back)
    assert.equal(await md5File(back), small.md5)

    const big = await randomFile(dir, 'big.bin', 12 * 1024 * 1024)
    await s3cmd(conf, 'put', big.path, `s3://${node.bucket}/v2/big.bin`)
    const s3 = s3Client(node)
    t.after(() => s3.destroy())
    const head = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: 'v2/big.bin' }))
    assert.match(head.ETag ?? '', /-3"$/, 'the upload is multipart, in 3 parts')
    const bigBack = join(dir, 'big.back')
    await s3cmd(conf, 'get', `s3://${node.bucket}/v2/big.bin`, bigBack)
    assert.equal(await md5File(bigBack), big.md5)

    const ls = await s3cmd(conf, 'ls', `s3://${node.bucket}/v2/`)
    assert.match(ls.stdout, /small file\.bin/)
    assert.match(ls.stdout, /big\.bin/)
    const info = await s3cmd(conf, 'info', `s3://${node.bucket}/v2/big.bin`)
    assert.match(info.stdout, /File size:\s+12582912/)

    await s3cmd(conf, 'del', `s3://${node.bucket}/v2/small file.bin`, `s3://${node.bucket}/v2/big.bin`)
    assert.equal((await s3cmd(conf, 'ls', '--recursive', `s3://${node.bucket}/`)).stdout.trim(), '')
  })
})
