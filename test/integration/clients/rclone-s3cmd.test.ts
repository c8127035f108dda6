/** rclone and s3cmd (Debian's) doing everyday work against a real node. */
import assert from 'node:assert/strict'
import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { binary, md5File, nodeTarget, randomFile, run, s3cmdConfig, tempDir } from '../../helpers/clients.ts'

const RCLONE = binary('rclone')
const S3CMD = binary('s3cmd')
const NAMES = ['plain.bin', 'with space.txt', 'a&b.txt', 'plus+sign.txt', 'percent%41.txt', 'é.txt', '😀.txt', 'deep/er/file.txt']

async function fillTree(dir: string): Promise<void> {
  for (const n of NAMES) {
    await mkdir(join(dir, n, '..'), { recursive: true })
    await writeFile(join(dir, n), `content of ${n}\n`.repeat(n.length))
  }
}

describe('rclone', { skip: RCLONE === undefined ? 'rclone is not installed (.ci/run installs it)' : false }, () => {
  let node: TestNode
  before(async () => {
    node = await startTestNode()
  })
  after(() => node?.close())

  const rclone = async (conf: string, ...args: string[]) =>
    run(RCLONE as string, ['--config', conf, '--retries', '1', ...args], {})
  const config = async (t: Parameters<typeof tempDir>[0]) => {
    const dir = await tempDir(t, 'garage-rclone-')
    const conf = join(dir, 'rclone.conf')
    await writeFile(
      conf,
      [
        '[garage]',
        'type = s3',
        'provider = Other',
        'env_auth = false',
        `access_key_id = ${node.key.accessKeyId}`,
        `secret_access_key = ${node.key.secretAccessKey}`,
        `endpoint = ${node.endpoint}`,
        `region = ${node.region}`,
        'force_path_style = true',
        '',
      ].join('\n'),
    )
    return conf
  }

  test('copy, sync, check, lsf, delete', async (t) => {
    const conf = await config(t)
    const src = await tempDir(t, 'garage-rclone-src-')
    await fillTree(src)
    const big = await randomFile(src, 'big.bin', 20 * 1024 * 1024)
    await rclone(conf, 'copy', src, `garage:${node.bucket}/rc`)
    const lsf = await rclone(conf, 'lsf', '-R', '--files-only', `garage:${node.bucket}/rc`)
    const listed = lsf.stdout.trim().split('\n').sort()
    assert.deepEqual(listed, [...NAMES, 'big.bin'].sort())
    await rclone(conf, 'check', src, `garage:${node.bucket}/rc`)
    const dst = await tempDir(t, 'garage-rclone-dst-')
    await rclone(conf, 'sync', `garage:${node.bucket}/rc`, dst)
    assert.equal(await md5File(join(dst, 'big.bin')), big.md5)
    // Sync after a local deletion removes the remote copy.
    const { rm } = await import('node:fs/promises')
    await rm(join(src, 'a&b.txt'))
    await rclone(conf, 'sync', src, `garage:${node.bucket}/rc`)
    const after1 = (await rclone(conf, 'lsf', '-R', '--files-only', `garage:${node.bucket}/rc`)).stdout
    assert.doesNotMatch(after1, /a&b\.txt/)
    await rclone(conf, 'delete', `garage:${node.bucket}/rc`)
    assert.equal((await rclone(conf, 'lsf', '-R', `garage:${node.bucket}/rc`)).stdout.trim(), '')
  })
})

describe('s3cmd', { skip: S3CMD === undefined ? 's3cmd is not installed (.ci/run installs it)' : false }, () => {
  let node: TestNode
  before(async () => {
    node = await startTestNode()
  })
  after(() => node?.close())

  const s3cmd = async (conf: string, ...args: string[]) => run(S3CMD as string, ['-c', conf, ...args], {})
  const config = async (t: Parameters<typeof tempDir>[0]) =>
    s3cmdConfig(await tempDir(t, 'garage-s3cmd-'), 's3cfg', nodeTarget(node))

  test('put, get, ls, del, sync', async (t) => {
    const conf = await config(t)
    const dir = await tempDir(t, 'garage-s3cmd-data-')
    const f = await randomFile(dir, 'five.bin', 5 * 1024 * 1024)
    await s3cmd(conf, 'put', f.path, `s3://${node.bucket}/s3cmd/five.bin`)
    const back = join(dir, 'five.back')
    await s3cmd(conf, 'get', `s3://${node.bucket}/s3cmd/five.bin`, back)
    assert.equal(await md5File(back), f.md5)
    const ls = await s3cmd(conf, 'ls', `s3://${node.bucket}/s3cmd/`)
    assert.match(ls.stdout, /five\.bin/)
    const src = await tempDir(t, 'garage-s3cmd-src-')
    await fillTree(src)
    await s3cmd(conf, 'sync', `${src}/`, `s3://${node.bucket}/s3cmd/tree/`)
    const dst = await tempDir(t, 'garage-s3cmd-dst-')
    await s3cmd(conf, 'sync', `s3://${node.bucket}/s3cmd/tree/`, `${dst}/`)
    const back2 = (await readdir(dst, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).length
    assert.equal(back2, NAMES.length)
    await s3cmd(conf, 'del', '--recursive', '--force', `s3://${node.bucket}/s3cmd/`)
    assert.equal((await s3cmd(conf, 'ls', '--recursive', `s3://${node.bucket}/`)).stdout.trim(), '')
  })
})
