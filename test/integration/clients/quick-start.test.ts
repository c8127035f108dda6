/**
 * Garage's quick start, done with our CLI: start a node, create a key and a bucket, allow the
 * key, use the bucket with awscli, enable website hosting and fetch a page, set quotas and see
 * them enforced, delete everything. The server and every CLI call are separate processes.
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { get as httpGet } from 'node:http'
import { join } from 'node:path'
import { test } from 'node:test'
import { garage } from '../../helpers/cli.ts'
import { binary, run, tempDir } from '../../helpers/clients.ts'
import { startServerProcess } from '../../helpers/server-process.ts'

const AWS = binary('aws')
const TOKEN = 'quick-start-admin-token'

test('quick start with the garage CLI and awscli', { skip: AWS === undefined ? 'awscli is not installed' : false }, async (t) => {
  const server = await startServerProcess({
    configLines: [
      '[admin]',
      'api_bind_addr = "127.0.0.1:0"',
      `admin_token = "${TOKEN}"`,
      '[s3_web]',
      'bind_addr = "127.0.0.1:0"',
      'root_domain = ".web.localhost"',
    ],
  })
  t.after(() => server.kill())
  const listening = (api: string) => {
    const m = new RegExp(`${api} API listening on (http://[^\\s]+)`).exec(server.output())
    assert.ok(m?.[1] !== undefined, `the ${api} API is listening`)
    return m[1]
  }
  const admin = listening('admin')
  const web = listening('web')
  const cli = async (...args: string[]) => {
    const r = await garage(['--admin-addr', admin, '--admin-token', TOKEN, ...args])
    assert.equal(r.code, 0, `garage ${args.join(' ')} succeeds:\n${r.stdout}\n${r.stderr}`)
    return r.stdout
  }

  // Key and bucket, through the CLI.
  const key = JSON.parse(await cli('key', 'create', 'quickstart-key', '--json')) as {
    accessKeyId: string
    secretAccessKey: string
  }
  assert.match(key.accessKeyId, /^GK[0-9a-f]{24}$/)
  await cli('bucket', 'create', 'quickstart-bucket')
  await cli('bucket', 'allow', '--read', '--write', '--owner', 'quickstart-bucket', '--key', 'quickstart-key')
  assert.match(await cli('bucket', 'info', 'quickstart-bucket'), /quickstart-key/)

  // The bucket, through awscli with the new key.
  const dir = await tempDir(t, 'garage-quickstart-')
  await writeFile(join(dir, 'aws-config'), '[default]\nregion = garage\n')
  const aws = (...args: string[]) =>
    run(AWS as string, ['--endpoint-url', server.endpoint, ...args], {
      AWS_ACCESS_KEY_ID: key.accessKeyId,
      AWS_SECRET_ACCESS_KEY: key.secretAccessKey,
      AWS_CONFIG_FILE: join(dir, 'aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(dir, 'none'),
      AWS_EC2_METADATA_DISABLED: 'true',
    })
  await writeFile(join(dir, 'index.html'), '<h1>Hello from the quick start</h1>')
  await writeFile(join(dir, 'notes.txt'), 'some notes')
  await aws('s3', 'cp', join(dir, 'index.html'), 's3://quickstart-bucket/index.html', '--content-type', 'text/html')
  await aws('s3', 'cp', join(dir, 'notes.txt'), 's3://quickstart-bucket/notes.txt')
  assert.match((await aws('s3', 'ls', 's3://quickstart-bucket')).stdout, /index\.html[\s\S]*notes\.txt/)

  // Website hosting.
  await cli('bucket', 'website', '--allow', 'quickstart-bucket')
  // fetch() does not let a caller set Host; node:http does.
  const page = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpGet(`${web}/`, { headers: { host: 'quickstart-bucket.web.localhost' } }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => {
        body += d
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
  })
  assert.equal(page.status, 200)
  assert.match(page.body, /Hello from the quick start/)

  // Quotas: two objects already, a third is refused.
  await cli('bucket', 'set-quotas', 'quickstart-bucket', '--max-objects', '2')
  await assert.rejects(aws('s3', 'cp', join(dir, 'notes.txt'), 's3://quickstart-bucket/third.txt'), /QuotaExceeded|403|Forbidden/)
  assert.doesNotMatch((await aws('s3', 'ls', 's3://quickstart-bucket')).stdout, /third\.txt/)

  // Delete everything.
  await aws('s3', 'rm', '--recursive', 's3://quickstart-bucket/')
  await cli('bucket', 'delete', '--yes', 'quickstart-bucket')
  await cli('key', 'delete', '--yes', 'quickstart-key')
  const buckets = JSON.parse(await cli('bucket', 'list', '--json')) as Array<{ globalAliases: string[] }>
  assert.ok(!buckets.some((b) => b.globalAliases.includes('quickstart-bucket')), 'the bucket is gone')
  const keys = JSON.parse(await cli('key', 'list', '--json')) as Array<{ name: string }>
  assert.ok(!keys.some((k) => k.name === 'quickstart-key'), 'the key is gone')
  await server.stop()
})
