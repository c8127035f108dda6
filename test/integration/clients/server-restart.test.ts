/**
 * The quick start, end to end: `garage server` as a child process, driven by awscli with its
 * credentials (100 MiB up and down, ls, rm), and a restart that keeps everything.
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { startServerProcess } from '../../helpers/server-process.ts'
import { binary, md5File, randomFile, run, tempDir } from '../../helpers/clients.ts'

const AWS = binary('aws')

test('awscli against `garage server`: 100 MiB round trip, restart keeps everything', {
  skip: AWS === undefined ? 'awscli is not installed (.ci/run installs it)' : false,
}, async (t) => {
  const first = await startServerProcess()
  t.after(() => first.kill())
  const dir = await tempDir(t, 'garage-quickstart-')
  const config = join(dir, 'aws-config')
  await writeFile(config, `[default]\nregion = ${first.region}\n`)
  const env = () => ({
    AWS_ACCESS_KEY_ID: first.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: first.credentials.secretAccessKey,
    AWS_CONFIG_FILE: config,
    AWS_SHARED_CREDENTIALS_FILE: join(dir, 'none'),
    AWS_EC2_METADATA_DISABLED: 'true',
  })
  // awscli 2.9 (Debian 12) predates AWS_ENDPOINT_URL: pass the endpoint as a flag.
  const aws = (endpoint: string, ...args: string[]) => run(AWS as string, ['--endpoint-url', endpoint, ...args], env())

  await aws(first.endpoint, 's3', 'mb', 's3://quickstart')
  const big = await randomFile(dir, 'big.bin', 100 * 1024 * 1024)
  await aws(first.endpoint, 's3', 'cp', big.path, 's3://quickstart/big.bin')
  await aws(first.endpoint, 's3', 'cp', join(dir, 'big.bin'), 's3://quickstart/copy/again.bin')
  const down = join(dir, 'down.bin')
  await aws(first.endpoint, 's3', 'cp', 's3://quickstart/big.bin', down)
  assert.equal(await md5File(down), big.md5, '100 MiB come back identical')

  await first.stop(10_000, { keepDir: true })
  const second = await startServerProcess({ reuse: { dir: first.dir, credentials: first.credentials } })
  t.after(() => second.kill())
  const ls = await aws(second.endpoint, 's3', 'ls', '--recursive', 's3://quickstart/')
  assert.match(ls.stdout, /104857600 big\.bin/)
  assert.match(ls.stdout, /copy\/again\.bin/)
  const down2 = join(dir, 'down2.bin')
  await aws(second.endpoint, 's3', 'cp', 's3://quickstart/big.bin', down2)
  assert.equal(await md5File(down2), big.md5, 'the object survives a restart')
  await aws(second.endpoint, 's3', 'rm', '--recursive', 's3://quickstart/')
  await aws(second.endpoint, 's3', 'rb', 's3://quickstart')
  assert.doesNotMatch((await aws(second.endpoint, 's3', 'ls')).stdout, /quickstart/)
  await second.stop()
})
