/** awscli v2 (Debian's) doing everyday work against a real node. */
import assert from 'node:assert/strict'
import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { awsEnv, binary, md5File, randomFile, run, tempDir } from '../../helpers/clients.ts'

const AWS = binary('aws')

describe('awscli', { skip: AWS === undefined ? 'awscli is not installed (.ci/run installs it)' : false }, () => {
  let node: TestNode
  before(async () => {
    node = await startTestNode({ block_gc_delay_msec: 200 })
  })
  after(() => node?.close())
  const aws = async (t: Parameters<typeof awsEnv>[0], ...args: string[]) =>
    run(AWS as string, ['--endpoint-url', node.endpoint, ...args], await awsEnv(t, node))

  test('s3 mb, cp up and down (2 KiB, 5 MiB, 20 MiB multipart), ls, rm, rb', async (t) => {
    const dir = await tempDir(t, 'garage-awscli-')
    await aws(t, 's3', 'mb', 's3://aws-cli-bucket')
    for (const [name, size] of [
      ['small.bin', 2048],
      ['medium.bin', 5 * 1024 * 1024],
      ['large.bin', 20 * 1024 * 1024],
    ] as const) {
      const f = await randomFile(dir, name, size)
      await aws(t, 's3', 'cp', f.path, `s3://aws-cli-bucket/dir/${name}`)
      const back = join(dir, `${name}.back`)
      await aws(t, 's3', 'cp', `s3://aws-cli-bucket/dir/${name}`, back)
      assert.equal(await md5File(back), f.md5, `${name} comes back identical`)
    }
    const ls = await aws(t, 's3', 'ls', 's3://aws-cli-bucket/dir/')
    for (const name of ['small.bin', 'medium.bin', 'large.bin']) assert.match(ls.stdout, new RegExp(name.replace('.', '\\.')))
    const buckets = await aws(t, 's3', 'ls')
    assert.match(buckets.stdout, /aws-cli-bucket/)
    await aws(t, 's3', 'rm', '--recursive', 's3://aws-cli-bucket/dir/')
    assert.equal((await aws(t, 's3', 'ls', 's3://aws-cli-bucket/')).stdout.trim(), '')
    await aws(t, 's3', 'rb', 's3://aws-cli-bucket')
    assert.doesNotMatch((await aws(t, 's3', 'ls')).stdout, /aws-cli-bucket/)
  })

  test('s3 sync both ways with keys full of special characters', async (t) => {
    const src = await tempDir(t, 'garage-sync-src-')
    const dst = await tempDir(t, 'garage-sync-dst-')
    const names = [
      'with space.txt',
      'a&b.txt',
      'plus+sign.txt',
      'percent%20.txt',
      'é-accent.txt',
      'emoji-😀.txt',
      'sub/dir/deep.txt',
    ]
    for (const n of names) {
      await mkdir(join(src, n, '..'), { recursive: true })
      await writeFile(join(src, n), `content of ${n}`)
    }
    await aws(t, 's3', 'sync', src, `s3://${node.bucket}/sync/`)
    const ls = await aws(t, 's3', 'ls', '--recursive', `s3://${node.bucket}/sync/`)
    for (const n of names) assert.ok(ls.stdout.includes(`sync/${n}`), `${n} is listed`)
    await aws(t, 's3', 'sync', `s3://${node.bucket}/sync/`, dst)
    const back = (await readdir(dst, { recursive: true })).filter((f) => f.endsWith('.txt')).sort()
    assert.deepEqual(back, [...names].sort())
    const again = await aws(t, 's3', 'sync', src, `s3://${node.bucket}/sync/`)
    assert.equal(again.stdout.trim(), '', 'a second sync uploads nothing')
    await aws(t, 's3', 'rm', '--recursive', `s3://${node.bucket}/sync/`)
  })

  test('s3api multipart with non-contiguous part numbers and a re-uploaded part', async (t) => {
    const dir = await tempDir(t, 'garage-mpu-')
    const key = 'mpu/object.bin'
    const create = JSON.parse(
      (await aws(t, 's3api', 'create-multipart-upload', '--bucket', node.bucket, '--key', key)).stdout,
    ) as {
      UploadId: string
    }
    const uploadId = create.UploadId
    const parts: Array<{ PartNumber: number; ETag: string }> = []
    const files: string[] = []
    for (const [n, size] of [
      [2, 5 * 1024 * 1024],
      [3, 5 * 1024 * 1024],
      [6, 1024],
    ] as const) {
      const f = await randomFile(dir, `part${n}`, size)
      const r = JSON.parse(
        (
          await aws(
            t,
            's3api',
            'upload-part',
            '--bucket',
            node.bucket,
            '--key',
            key,
            '--upload-id',
            uploadId,
            '--part-number',
            String(n),
            '--body',
            f.path,
          )
        ).stdout,
      ) as { ETag: string }
      parts.push({ PartNumber: n, ETag: r.ETag })
      files.push(f.path)
    }
    // Re-upload part 3 with other content: the new one must win.
    const p3 = await randomFile(dir, 'part3-again', 5 * 1024 * 1024)
    const r3 = JSON.parse(
      (
        await aws(
          t,
          's3api',
          'upload-part',
          '--bucket',
          node.bucket,
          '--key',
          key,
          '--upload-id',
          uploadId,
          '--part-number',
          '3',
          '--body',
          p3.path,
        )
      ).stdout,
    ) as { ETag: string }
    parts[1] = { PartNumber: 3, ETag: r3.ETag }
    files[1] = p3.path
    const listed = JSON.parse(
      (await aws(t, 's3api', 'list-parts', '--bucket', node.bucket, '--key', key, '--upload-id', uploadId)).stdout,
    ) as {
      Parts: Array<{ PartNumber: number }>
    }
    assert.deepEqual(
      listed.Parts.map((p) => p.PartNumber),
      [2, 3, 6],
    )
    await aws(
      t,
      's3api',
      'complete-multipart-upload',
      '--bucket',
      node.bucket,
      '--key',
      key,
      '--upload-id',
      uploadId,
      '--multipart-upload',
      JSON.stringify({ Parts: parts }),
    )
    const out = join(dir, 'whole')
    await aws(t, 's3api', 'get-object', '--bucket', node.bucket, '--key', key, out)
    const expected = join(dir, 'expected')
    const { readFile } = await import('node:fs/promises')
    await writeFile(expected, Buffer.concat(await Promise.all(files.map((f) => readFile(f)))))
    assert.equal(await md5File(out), await md5File(expected), 'the object is the parts in order, with the re-uploaded part 3')
    const head = JSON.parse((await aws(t, 's3api', 'head-object', '--bucket', node.bucket, '--key', key)).stdout) as {
      ETag: string
    }
    assert.match(head.ETag, /-3"$/)
  })
})
