/**
 * `garage server` as a child process, through lib/cli/run-dev.ts (the sources, via tsx).
 * Config errors are checked before any node is created, so those tests need no node; the ones
 * that start a node are skipped until lib/index.ts exports createGarageNode.
 */

import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { type AddressInfo, createServer } from 'node:net'
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { garage as garageCli } from '../helpers/cli.ts'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const RUN_DEV = join(ROOT, 'lib/cli/run-dev.ts')
/** Resolved here, since the child runs in a temp dir where `tsx` alone would not resolve. */
const TSX = import.meta.resolve('tsx')

type TestContext = { after: (fn: () => unknown) => void }

interface Garage {
  child: ChildProcess
  /** Everything written so far. */
  output: () => { stdout: string; stderr: string }
  /** Resolves once stdout + stderr match `re`. */
  waitFor: (re: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>
  exited: Promise<number | null>
}

/** Start `garage <args>`; registers cleanup on `t`. */
function garage(t: TestContext, args: string[], opts: { cwd: string; env?: Record<string, string> }): Garage {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: '1', ...opts.env }
  // The caller's own Garage settings must not leak into the test.
  for (const name of Object.keys(env)) if (name.startsWith('GARAGE_') && !(opts.env && name in opts.env)) delete env[name]
  const child = spawn(process.execPath, ['--import', TSX, RUN_DEV, ...args], {
    cwd: opts.cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  const listeners = new Set<() => void>()
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    stdout += d
    for (const l of listeners) l()
  })
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d
    for (const l of listeners) l()
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const waitFor = (re: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const m = (stdout + stderr).match(re)
        if (m !== null) {
          done()
          resolve(m)
        }
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`timed out waiting for ${re}; output so far:\n${stdout}\n${stderr}`))
      }, timeoutMs)
      const onExit = (): void => {
        setImmediate(() => {
          check()
          done()
          reject(new Error(`garage exited before printing ${re}; output:\n${stdout}\n${stderr}`))
        })
      }
      const done = (): void => {
        clearTimeout(timer)
        listeners.delete(check)
        child.off('exit', onExit)
      }
      listeners.add(check)
      child.once('exit', onExit)
      check()
    })
  return { child, output: () => ({ stdout, stderr }), waitFor, exited }
}

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'garage-cli-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Lines with text in them (consola pads errors with blank lines). */
const textLines = (s: string): string[] => s.split('\n').filter((l) => l.trim() !== '')

async function expectConfigError(
  t: TestContext,
  args: string[],
  key: RegExp,
  opts: { cwd: string; env?: Record<string, string> },
) {
  const g = garage(t, args, opts)
  const code = await g.exited
  const { stdout, stderr } = g.output()
  assert.equal(code, 1, `exit code; output:\n${stdout}\n${stderr}`)
  const lines = textLines(stderr)
  assert.equal(lines.length, 1, `one line on stderr, got:\n${stderr}`)
  assert.match(lines[0] ?? '', /invalid configuration: /)
  assert.match(lines[0] ?? '', key)
  assert.ok(!stderr.includes('    at '), 'no stack trace')
  assert.equal(stdout.trim(), '', 'nothing on stdout')
}

describe('garage server: configuration errors', () => {
  test('an invalid value exits 1 with one line naming the key', async (t) => {
    const dir = await tempDir(t)
    const file = join(dir, 'garage.toml')
    await writeFile(file, 'metadata_dir = "meta"\n[s3_api]\napi_bind_addr = "127.0.0.1:99999"\n')
    await expectConfigError(t, ['server', '-c', file], /s3_api\.api_bind_addr: .*between 0 and 65535/, { cwd: dir })
  })

  test('a wrong type exits 1 naming the key', async (t) => {
    const dir = await tempDir(t)
    const file = join(dir, 'garage.toml')
    await writeFile(file, 'replication_factor = "three"\n')
    await expectConfigError(t, ['server', '--config', file], /replication_factor: expected a positive integer/, {
      cwd: dir,
    })
  })

  test('a missing file exits 1 naming the path', async (t) => {
    const dir = await tempDir(t)
    await expectConfigError(t, ['server', '-c', 'nope.toml'], /nope\.toml: cannot read configuration file: no such file/, {
      cwd: dir,
    })
  })

  test('a TOML syntax error exits 1 with its line', async (t) => {
    const dir = await tempDir(t)
    await writeFile(join(dir, 'garage.toml'), 'metadata_dir = "meta"\ndata_dir = \n')
    await expectConfigError(t, ['server', '-c', 'garage.toml'], /garage\.toml: TOML syntax error at line 2/, {
      cwd: dir,
    })
  })

  test("Garage's spelling `garage -c FILE server` is accepted", async (t) => {
    const dir = await tempDir(t)
    await writeFile(join(dir, 'garage.toml'), 'consistency_mode = "eventual"\n')
    await expectConfigError(t, ['-c', 'garage.toml', 'server'], /consistency_mode: /, { cwd: dir })
  })

  test('GARAGE_CONFIG_FILE is read when -c is not given', async (t) => {
    const dir = await tempDir(t)
    await writeFile(join(dir, 'env.toml'), 'block_size = "big"\n')
    await expectConfigError(t, ['server'], /block_size: /, { cwd: dir, env: { GARAGE_CONFIG_FILE: 'env.toml' } })
  })

  test('a bad secret in the environment exits 1 naming the variable', async (t) => {
    const dir = await tempDir(t)
    await expectConfigError(t, ['server'], /GARAGE_RPC_SECRET: .*64 hex characters/, {
      cwd: dir,
      env: { GARAGE_RPC_SECRET: 'nope' },
    })
  })

  test('an unknown command exits 1', async (t) => {
    const dir = await tempDir(t)
    const g = garage(t, ['serve'], { cwd: dir })
    assert.equal(await g.exited, 1)
    assert.match(g.output().stderr + g.output().stdout, /Unknown command/)
  })
})

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer()
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })
}

describe('garage server: running a node', () => {
  test('with a config file: warnings, the endpoint, and a clean stop on SIGTERM', async (t) => {
    const dir = await tempDir(t)
    await writeFile(
      join(dir, 'garage.toml'),
      [
        'metadata_dir = "meta"',
        'data_dir = "data"',
        'rpc_bind_outgoing = true',
        'not_a_garage_key = 1',
        '[s3_api]',
        'api_bind_addr = "127.0.0.1:0"',
        's3_region = "test-region"',
      ].join('\n'),
    )
    const g = garage(t, ['server', '-c', 'garage.toml'], { cwd: dir })
    await g.waitFor(/Press Ctrl-C to stop/)
    const out = g.output().stdout + g.output().stderr
    assert.match(out, /'rpc_bind_outgoing' is not supported yet and is ignored/)
    assert.match(out, /unknown configuration key 'not_a_garage_key'/)
    assert.match(out, /S3 API listening on http:\/\/127\.0\.0\.1:\d+ \(region test-region\)/)
    assert.doesNotMatch(out, /Secret access key/, 'no key is created for a real configuration')
    g.child.kill('SIGTERM')
    assert.equal(await g.exited, 0)
    assert.match(g.output().stdout + g.output().stderr, /Stopped/)
  })

  test('the embedded default creates a key once and shows it again on restart', async (t) => {
    // The embedded default binds its fixed ports (S3 3900, admin 3903): on a machine where another
    // program holds one, the test cannot run there and says so (CI's machine has them free: it ran).
    if (!(await portIsFree(3900)) || !(await portIsFree(3903))) {
      t.skip('port 3900 or 3903 is in use')
      return
    }
    const dir = await tempDir(t)
    const keyRe = /Access key ID:\s+(\S+)[\s\S]*Secret access key:\s+(\S+)/

    const first = garage(t, ['server'], { cwd: dir })
    await first.waitFor(/Press Ctrl-C to stop/)
    const [, id, secret] = (first.output().stdout.match(keyRe) ?? []) as string[]
    assert.ok(id !== undefined && secret !== undefined, first.output().stdout)
    assert.match(first.output().stdout, /Created access key 'default'/)
    assert.match(first.output().stdout, /S3 API listening on http:\/\/127\.0\.0\.1:3900 \(region garage\)/)
    assert.ok(
      first
        .output()
        .stdout.includes(
          `AWS_ACCESS_KEY_ID=${id} AWS_SECRET_ACCESS_KEY=${secret} aws --endpoint-url http://127.0.0.1:3900 --region garage s3 ls`,
        ),
    )
    first.child.kill('SIGINT')
    assert.equal(await first.exited, 0)

    const second = garage(t, ['server'], { cwd: dir })
    await second.waitFor(/Press Ctrl-C to stop/)
    assert.match(second.output().stdout, /Using access key 'default'/)
    const [, id2, secret2] = (second.output().stdout.match(keyRe) ?? []) as string[]
    assert.equal(id2, id)
    assert.equal(secret2, secret)
    second.child.kill('SIGINT')
    assert.equal(await second.exited, 0)
  })
})

/** A TCP port nothing listens on right now. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo
      srv.close(() => resolve(port))
    })
  })
}

/** Resolves once `url` answers an HTTP request (any status). */
async function answers(url: string, deadlineMs = 30_000): Promise<void> {
  const deadline = Date.now() + deadlineMs
  for (;;) {
    try {
      await (await fetch(url)).arrayBuffer()
      return
    } catch (err) {
      if (Date.now() > deadline) throw err
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}

describe('garage server: flags, the admin API of the embedded default, logs', () => {
  test('--help lists the flags of the zero-config path', async () => {
    const r = await garageCli(['server', '--help'])
    assert.equal(r.code, 0, r.stderr)
    for (const flag of [
      '--config',
      '--data-dir',
      '--s3-bind',
      '--web-bind',
      '--admin-bind',
      '--rpc-bind',
      '--log-level',
      '--log-format',
    ]) {
      assert.ok(r.stdout.includes(flag), `${flag} in:\n${r.stdout}`)
    }
  })

  test('the embedded default with flags: admin API on a generated token the CLI uses, JSON access logs', async (t) => {
    const dir = await tempDir(t)
    const g = garage(
      t,
      ['server', '--data-dir', 'store', '--s3-bind', '127.0.0.1:0', '--admin-bind', '127.0.0.1:0', '--log-format', 'json'],
      { cwd: dir },
    )
    await g.waitFor(/Press Ctrl-C to stop/)
    const records = (): Array<Record<string, unknown>> =>
      g
        .output()
        .stdout.split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
    const msgs = records().map((r) => String(r.msg))
    const s3 = /S3 API listening on (http:\/\/\S+)/.exec(msgs.join('\n'))?.[1] as string
    const admin = /Admin API on (http:\/\/\S+), token in (\S+)\./.exec(msgs.join('\n'))
    assert.ok(s3 !== undefined && admin !== null, msgs.join('\n'))
    const [, adminUrl, tokenFile] = admin as RegExpExecArray
    assert.equal(tokenFile, join(dir, 'store', 'admin-token'))
    assert.equal((await stat(tokenFile as string)).mode & 0o077, 0, 'the token file is private')
    assert.ok(msgs.some((m) => m.includes(`export GARAGE_ADMIN_ADDR=${(adminUrl as string).slice('http://'.length)}`)))
    const id = /Access key ID:\s+(\S+)/.exec(msgs.join('\n'))?.[1] as string
    const secret = /Secret access key:\s+(\S+)/.exec(msgs.join('\n'))?.[1] as string

    // The CLI reaches the node it just started, as the printed lines say.
    const token = (await readFile(tokenFile as string, 'utf8')).trim()
    const status = await garageCli(['status', '--json'], {
      env: { GARAGE_ADMIN_ADDR: (adminUrl as string).slice('http://'.length), GARAGE_ADMIN_TOKEN: token },
    })
    assert.equal(status.code, 0, status.stderr)
    assert.ok(Array.isArray((JSON.parse(status.stdout) as { nodes?: unknown }).nodes))

    // One access record per request, with the request's fields.
    const s3c = new S3Client({
      endpoint: s3,
      region: 'garage',
      forcePathStyle: true,
      credentials: { accessKeyId: id, secretAccessKey: secret },
    })
    t.after(() => s3c.destroy())
    await s3c.send(new CreateBucketCommand({ Bucket: 'logs' }))
    const put = await s3c.send(new PutObjectCommand({ Bucket: 'logs', Key: 'a/b.txt', Body: 'hello' }))
    const requestId = put.$metadata.requestId
    await g.waitFor(new RegExp(`"requestId":"${requestId}"`))
    const access = records().filter((r) => r.tag === 'garage:s3:access')
    const entry = access.find((r) => r.requestId === requestId)
    assert.ok(entry !== undefined, JSON.stringify(access))
    assert.equal(entry.level, 'info')
    assert.equal(entry.method, 'PUT')
    assert.equal(entry.bucket, 'logs')
    assert.equal(entry.key, 'a/b.txt')
    assert.equal(entry.status, 200)
    assert.equal(entry.accessKeyId, id)
    assert.equal(entry.endpoint, 'PutObject')
    assert.ok(typeof entry.bytesSent === 'number' && entry.bytesSent > 0)
    assert.ok(typeof entry.bytesReceived === 'number' && entry.bytesReceived > 5)
    assert.ok(typeof entry.durationMsec === 'number')
    assert.match(String(entry.msg), new RegExp(`^s3 PUT logs/a/b\\.txt 200 \\d+B [\\d.]+ms key=${id} req=${requestId}$`))
    // The admin API's requests are logged too (the CLI's status call above).
    assert.ok(records().some((r) => r.tag === 'garage:admin:access' && r.status === 200))
    g.child.kill('SIGTERM')
    assert.equal(await g.exited, 0)
  })

  test('flags override the config file, GARAGE_LOG_LEVEL overrides log_level, and warn hides access lines', async (t) => {
    const dir = await tempDir(t)
    const port = await freePort()
    await writeFile(
      join(dir, 'garage.toml'),
      ['metadata_dir = "meta"', 'data_dir = "data"', 'log_level = "debug"', '[s3_api]', 'api_bind_addr = "127.0.0.1:1"'].join(
        '\n',
      ),
    )
    const g = garage(t, ['server', '-c', 'garage.toml', '--s3-bind', `127.0.0.1:${port}`, '--data-dir', 'elsewhere'], {
      cwd: dir,
      env: { GARAGE_LOG_LEVEL: 'warn' },
    })
    await answers(`http://127.0.0.1:${port}/`)
    await (await fetch(`http://127.0.0.1:${port}/some-bucket/some-key`)).arrayBuffer()
    assert.ok((await stat(join(dir, 'elsewhere', 'meta'))).isDirectory(), '--data-dir wins over metadata_dir')
    g.child.kill('SIGTERM')
    assert.equal(await g.exited, 0)
    const out = g.output().stdout + g.output().stderr
    assert.doesNotMatch(out, /req=|S3 API listening|Stopped/, `nothing below warn:\n${out}`)
  })

  test('an invalid --log-level exits 1 with one line', async (t) => {
    const dir = await tempDir(t)
    const g = garage(t, ['server', '--log-level', 'loud'], { cwd: dir })
    assert.equal(await g.exited, 1)
    assert.match(g.output().stderr, /invalid --log-level 'loud': expected one of error, warn, info, debug, trace/)
  })
})
