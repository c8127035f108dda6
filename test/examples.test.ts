/**
 * Every example in examples/ runs, as a user would run it: copied into a fresh app where the
 * packed package is installed (test/helpers/package.ts), with the AWS SDK beside it. The Jest and
 * Vitest examples run under the real tools (dev dependencies of this repository, linked into the
 * app as npm would install them): Jest in its default CommonJS mode, Vitest with its ES imports.
 */

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { promisify } from 'node:util'
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3'
import { startTestNode } from '../lib/testing.ts'
import { binary } from './helpers/clients.ts'
import { createPackedApp, type PackedApp, ROOT, runNode } from './helpers/package.ts'

const run = promisify(execFile)

describe('examples/', () => {
  let app: PackedApp
  before(async () => {
    app = await createPackedApp({ type: 'module', extra: ['@aws-sdk/client-s3', 'vitest'] })
    await cp(join(ROOT, 'examples'), app.dir, { recursive: true })
  })
  after(() => app?.close())

  test('embed-http-app.mjs: an HTTP app stores uploads in its embedded node and serves them back', async () => {
    const { stdout } = await runNode(app.dir, ['embed-http-app.mjs'])
    const result = JSON.parse(stdout.trim().split('\n').at(-1) as string)
    assert.deepEqual(result, { put: 201, got: 'hello from the embedded store' })
  })

  test('testing/node-test.test.mjs passes under node --test', async () => {
    const { stdout } = await runNode(app.dir, ['--test', '--test-reporter=tap', 'testing/node-test.test.mjs'])
    assert.match(stdout, /^# pass 1$/m)
    assert.match(stdout, /^# fail 0$/m)
  })

  test('testing/jest.test.cjs passes under Jest, in its default CommonJS mode', async () => {
    const jest = join(ROOT, 'node_modules/jest/bin/jest.js')
    const { stderr } = await runNode(app.dir, [jest, '--ci', '--rootDir', '.', 'testing/jest\\.test\\.cjs'])
    assert.match(stderr, /^Tests:\s+1 passed, 1 total$/m, stderr)
  })

  test('testing/vitest.test.mjs passes under Vitest', async () => {
    const vitest = join(ROOT, 'node_modules/vitest/vitest.mjs')
    const { stdout } = await runNode(app.dir, [vitest, 'run', '--root', '.', 'testing/vitest.test.mjs'])
    assert.match(stdout, /Tests\s+1 passed \(1\)/, stdout)
  })

  test('cluster-layout.mjs: three nodes in three zones, a layout applied from code, read through another node', async () => {
    const { stdout } = await runNode(app.dir, ['cluster-layout.mjs'])
    const result = JSON.parse(stdout.trim().split('\n').at(-1) as string)
    assert.deepEqual(result, { layoutVersion: 1, roles: 3, readInLisbon: 'written in paris' })
  })

  test('backup-rclone.sh mirrors a directory and keeps replaced files in history/', {
    skip: binary('rclone') === undefined ? 'rclone is not installed (.ci/run installs it)' : false,
  }, async (t) => {
    const store = await startTestNode({ bucket: 'backups' })
    t.after(() => store.close())
    const src = await mkdtemp(join(tmpdir(), 'garage-backup-src-'))
    t.after(() => rm(src, { recursive: true, force: true }))
    await writeFile(join(src, 'a.txt'), 'first version')
    await mkdir(join(src, 'sub'))
    await writeFile(join(src, 'sub', 'b.txt'), 'b')
    const env: Record<string, string | undefined> = {
      ...process.env,
      AWS_ACCESS_KEY_ID: store.key.accessKeyId,
      AWS_SECRET_ACCESS_KEY: store.key.secretAccessKey,
      GARAGE_S3_ENDPOINT: store.endpoint,
      GARAGE_S3_REGION: store.region,
    }
    // A CA bundle set for the machine's proxies makes rclone's S3 client fail on plain HTTP.
    delete env.AWS_CA_BUNDLE
    const script = join(app.dir, 'backup-rclone.sh')
    await run('sh', [script, src, 'backups'], { env, timeout: 120_000 })
    await writeFile(join(src, 'a.txt'), 'second version')
    const { stdout } = await run('sh', [script, src, 'backups'], { env, timeout: 120_000 })
    assert.match(stdout, /backed up .* to backups\/current/)

    const s3 = new S3Client(store.s3Config)
    t.after(() => s3.destroy())
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'backups' }))
    const keys = (listed.Contents ?? []).map((o) => o.Key as string).sort()
    assert.deepEqual(
      keys.filter((k) => k.startsWith('current/')),
      ['current/a.txt', 'current/sub/b.txt'],
    )
    assert.equal(keys.filter((k) => /^history\/[^/]+\/a\.txt$/.test(k)).length, 1, keys.join(', '))
  })
})
