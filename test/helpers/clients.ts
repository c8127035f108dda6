/**
 * Running real S3 command-line clients (awscli, rclone, s3cmd, installed from Debian by .ci/run)
 * against a test node, each with its own throw-away configuration.
 */
import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import type { TestNode } from '../../lib/testing.ts'

/** Debian's binary when present (a pip-installed awscli v1 may shadow it on PATH). */
export function binary(name: string): string | undefined {
  for (const dir of ['/usr/bin', '/usr/local/bin', '/bin']) if (existsSync(join(dir, name))) return join(dir, name)
  return undefined
}

export interface RunResult {
  stdout: string
  stderr: string
}

export function run(cmd: string, args: string[], env: Record<string, string>, cwd?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const base = { ...process.env }
    // A CA bundle set for the machine's proxies makes rclone's S3 client fail on plain HTTP.
    delete base.AWS_CA_BUNDLE
    execFile(
      cmd,
      args,
      { env: { ...base, ...env }, cwd, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`))
        else resolve({ stdout, stderr })
      },
    )
  })
}

export async function tempDir(t: TestContext, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** A file of random bytes; returns its path and MD5. */
export async function randomFile(dir: string, name: string, size: number): Promise<{ path: string; md5: string }> {
  const data = randomBytes(size)
  const path = join(dir, name)
  await writeFile(path, data)
  return { path, md5: createHash('md5').update(data).digest('hex') }
}

export async function md5File(path: string): Promise<string> {
  return createHash('md5')
    .update(await readFile(path))
    .digest('hex')
}

/** Environment for awscli v2 pointed at the node (no shared config, no IMDS lookups). */
export async function awsEnv(t: TestContext, node: TestNode): Promise<Record<string, string>> {
  const dir = await tempDir(t, 'garage-aws-')
  const config = join(dir, 'config')
  await writeFile(config, `[default]\nregion = ${node.region}\n`)
  return {
    AWS_ACCESS_KEY_ID: node.key.accessKeyId,
    AWS_SECRET_ACCESS_KEY: node.key.secretAccessKey,
    AWS_DEFAULT_REGION: node.region,
    AWS_CONFIG_FILE: config,
    AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'),
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_PAGER: '',
  }
}

/** Where an S3 client is pointed: an endpoint, with the key and region to use there. */
export interface ClientTarget {
  endpoint: string
  region: string
  credentials: { accessKeyId: string; secretAccessKey: string }
}

/** The target of a single test node (its endpoint, region and key). */
export function nodeTarget(node: TestNode): ClientTarget {
  return { endpoint: node.endpoint, region: node.region, credentials: node.s3Config.credentials }
}

/**
 * Writes an s3cmd configuration file for `target` in `dir` (path-style, plain HTTP) and returns
 * its path; `sigV2` makes s3cmd sign the Signature V2 way, `chunkMb` sets its multipart part size.
 */
export async function s3cmdConfig(
  dir: string,
  name: string,
  target: ClientTarget,
  options: { sigV2?: boolean; chunkMb?: number } = {},
): Promise<string> {
  const path = join(dir, name)
  const hostPort = target.endpoint.replace(/^http:\/\//, '')
  const lines = [
    '[default]',
    `access_key = ${target.credentials.accessKeyId}`,
    `secret_key = ${target.credentials.secretAccessKey}`,
    `host_base = ${hostPort}`,
    `host_bucket = ${hostPort}`,
    `bucket_location = ${target.region}`,
    'use_https = False',
    `signature_v2 = ${options.sigV2 === true ? 'True' : 'False'}`,
  ]
  if (options.chunkMb !== undefined) lines.push(`multipart_chunk_size_mb = ${options.chunkMb}`)
  await writeFile(path, `${lines.join('\n')}\n`)
  return path
}

/**
 * Environment for awscli (v1 or v2) pointed at `target`, with `s3` transfer settings that make
 * anything over 5 MiB a multipart upload of 5 MiB parts.
 */
export async function awsEnvFor(t: TestContext, target: ClientTarget): Promise<Record<string, string>> {
  const dir = await tempDir(t, 'garage-aws-')
  const config = join(dir, 'config')
  await writeFile(
    config,
    `[default]\nregion = ${target.region}\ns3 =\n  multipart_threshold = 5MB\n  multipart_chunksize = 5MB\n`,
  )
  return {
    AWS_ACCESS_KEY_ID: target.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: target.credentials.secretAccessKey,
    AWS_DEFAULT_REGION: target.region,
    AWS_CONFIG_FILE: config,
    AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'),
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_PAGER: '',
  }
}

/**
 * An awscli v1 (pip's, found on PATH outside the Debian package) when the machine has one: a
 * fresh CI machine has only Debian's v2, so callers skip with a reason when this is undefined.
 */
export async function findAwsCliV1(): Promise<{ path: string; version: string } | undefined> {
  const debian = new Set(['/usr/bin/aws', '/bin/aws'])
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const path = join(dir, 'aws')
    if (dir === '' || debian.has(path) || !existsSync(path)) continue
    try {
      const { stdout, stderr } = await run(path, ['--version'], {})
      const version = `${stdout}${stderr}`.trim()
      if (/^aws-cli\/1\./.test(version)) return { path, version }
    } catch {
      // Not a working awscli (a pyenv shim for another Python, say): look further along PATH.
    }
  }
  return undefined
}

/** The first line of `<cmd> --version` (or `version`), for test names and reports. */
export async function clientVersion(cmd: string, args: string[] = ['--version']): Promise<string> {
  const { stdout, stderr } = await run(cmd, args, {})
  return (`${stdout}${stderr}`.trim().split('\n')[0] ?? '').trim()
}
