/**
 * The main paths of the real S3 clients, multipart included (5 MiB parts), against one node and
 * against a 3-node cluster. In the cluster each client uploads through one node and downloads
 * through the next, so what comes back has crossed the cluster. Every transfer is checked by
 * MD5 of the bytes that come back.
 *
 * Clients: Debian's rclone, awscli v2 (/usr/bin/aws), s3cmd (.ci/run installs them), awscli v1
 * when the machine has one (skipped otherwise), the AWS SDK for JavaScript v3 and the MinIO
 * JavaScript client (devDependencies).
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { Client as MinioClient } from 'minio'
import { startTestCluster, startTestNode, type TestCluster, type TestNode } from '../../../lib/testing.ts'
import {
  awsEnvFor,
  binary,
  type ClientTarget,
  clientVersion,
  findAwsCliV1,
  md5File,
  randomFile,
  run,
  s3cmdConfig,
  tempDir,
} from '../../helpers/clients.ts'

const MiB = 1024 * 1024
const RCLONE = binary('rclone')
const AWS_V2 = '/usr/bin/aws'
const HAS_AWS_V2 = binary('aws') === AWS_V2
const S3CMD = binary('s3cmd')
const AWS_V1 = await findAwsCliV1()

/** Where one client uploads (`up`) and where it reads back (`down`), with a bucket of its own. */
interface Route {
  up: ClientTarget
  down: ClientTarget
  bucket: string
}

interface Setup {
  name: string
  /** The route for the `i`-th client. */
  route(i: number): Route
}

let single: TestNode | undefined
let cluster: TestCluster | undefined

before(async () => {
  ;[single, cluster] = await Promise.all([startTestNode(), startTestCluster({ nodes: 3 })])
})
after(async () => {
  await Promise.all([single?.close(), cluster?.stop()])
})

const SETUPS: Setup[] = [
  {
    name: 'one node',
    route: () => {
      const n = single as TestNode
      const target = { endpoint: n.endpoint, region: n.region, credentials: n.s3Config.credentials }
      return { up: target, down: target, bucket: n.bucket }
    },
  },
  {
    name: '3-node cluster',
    route: (i) => {
      const c = cluster as TestCluster
      const at = (k: number): ClientTarget => ({
        endpoint: c.endpoints[k % c.endpoints.length] as string,
        region: c.region,
        credentials: c.credentials,
      })
      return { up: at(i), down: at(i + 1), bucket: c.bucket }
    },
  },
]

const sdkClients: S3Client[] = []
/** An SDK v3 client for `target`, destroyed after the file. */
function sdk(target: ClientTarget): S3Client {
  const c = new S3Client({
    endpoint: target.endpoint,
    region: target.region,
    credentials: target.credentials,
    forcePathStyle: true,
  })
  sdkClients.push(c)
  return c
}
after(() => {
  for (const c of sdkClients) c.destroy()
})

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex')

/** A small tree of files for `check` and `sync`. */
async function smallTree(dir: string): Promise<string[]> {
  const names = ['a.txt', 'with space.txt', 'a&b "quoted".txt', "it's.txt", 'sub/deep.txt']
  for (const n of names) {
    await mkdir(join(dir, n, '..'), { recursive: true })
    await writeFile(join(dir, n), `content of ${n}\n`)
  }
  return names
}

async function listFiles(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? e.path, e.name).slice(dir.length + 1))
    .sort()
}

for (const [s, setup] of SETUPS.entries()) {
  describe(`clients against ${setup.name}`, () => {
    // Each client gets its own index, hence its own pair of nodes in the cluster.
    const prefix = (client: string) => `main-paths-${s}/${client}`

    test('rclone: copyto up and down (20 MiB in 5 MiB chunks), check, sync with deletes', {
      skip: RCLONE === undefined ? 'rclone is not installed (.ci/run installs it)' : false,
    }, async (t) => {
      const r = setup.route(0)
      const dir = await tempDir(t, 'garage-rclone-')
      const conf = join(dir, 'rclone.conf')
      const remote = (name: string, target: ClientTarget) =>
        [
          `[${name}]`,
          'type = s3',
          'provider = Other',
          'env_auth = false',
          `access_key_id = ${target.credentials.accessKeyId}`,
          `secret_access_key = ${target.credentials.secretAccessKey}`,
          `endpoint = ${target.endpoint}`,
          `region = ${target.region}`,
          'force_path_style = true',
          '',
        ].join('\n')
      await writeFile(conf, `${remote('up', r.up)}\n${remote('down', r.down)}`)
      const rclone = (...args: string[]) =>
        run(
          RCLONE as string,
          ['--config', conf, '--retries', '1', '--s3-upload-cutoff', '5M', '--s3-chunk-size', '5M', ...args],
          {},
        )
      const p = prefix('rclone')
      const big = await randomFile(dir, 'big.bin', 20 * MiB)
      await rclone('copyto', big.path, `up:${r.bucket}/${p}/big.bin`)
      const back = join(dir, 'big.back')
      await rclone('copyto', `down:${r.bucket}/${p}/big.bin`, back)
      assert.equal(await md5File(back), big.md5, 'the 20 MiB multipart upload comes back identical')

      const src = join(dir, 'tree')
      const names = await smallTree(src)
      await rclone('sync', src, `up:${r.bucket}/${p}/tree`)
      await rclone('check', src, `down:${r.bucket}/${p}/tree`)
      await rm(join(src, names[2] as string))
      await rclone('sync', src, `up:${r.bucket}/${p}/tree`)
      await rclone('check', src, `down:${r.bucket}/${p}/tree`)
      const listed = (await rclone('lsf', '-R', '--files-only', `down:${r.bucket}/${p}/tree`)).stdout.trim().split('\n').sort()
      assert.deepEqual(listed, names.filter((_, i) => i !== 2).sort(), 'sync deleted the removed file')
    })

    const awscli = (label: string, cmd: string | undefined, skip: string | false, index: number) =>
      test(`${label}: sync up (a 12 MiB file in 5 MiB parts, and a tree), then sync --delete both ways`, { skip }, async (t) => {
        const r = setup.route(index)
        const [envUp, envDown] = await Promise.all([awsEnvFor(t, r.up), awsEnvFor(t, r.down)])
        const up = (...args: string[]) => run(cmd as string, ['--endpoint-url', r.up.endpoint, ...args], envUp)
        const down = (...args: string[]) => run(cmd as string, ['--endpoint-url', r.down.endpoint, ...args], envDown)
        const url = `s3://${r.bucket}/${prefix(label.replace(/\W+/g, '-'))}/`
        const dir = await tempDir(t, 'garage-awscli-')
        const src = join(dir, 'src')
        const names = await smallTree(src)
        await randomFile(src, 'big.bin', 12 * MiB)
        const synced = await up('s3', 'sync', src, url)
        assert.match(synced.stdout, /upload: .*big\.bin/)
        await rm(join(src, names[2] as string))
        const deleted = await up('s3', 'sync', '--delete', src, url)
        assert.match(deleted.stdout, /delete: /, 'the removed file is deleted from the bucket')
        const dst = join(dir, 'dst')
        await mkdir(dst)
        await writeFile(join(dst, 'stale.txt'), 'not in the bucket')
        await down('s3', 'sync', '--delete', url, dst)
        const expected = await listFiles(src)
        assert.deepEqual(await listFiles(dst), expected, 'both syncs deleted what they had to')
        for (const n of expected) assert.equal(await md5File(join(dst, n)), await md5File(join(src, n)), n)
      })
    awscli('awscli v2', AWS_V2, HAS_AWS_V2 ? false : 'awscli v2 is not at /usr/bin/aws (.ci/run installs it)', 1)
    awscli(
      'awscli v1',
      AWS_V1?.path,
      AWS_V1 === undefined ? 'no awscli v1 on this machine (a fresh CI machine has only v2)' : false,
      2,
    )

    test('s3cmd: put and get (12 MiB in 5 MiB parts)', {
      skip: S3CMD === undefined ? 's3cmd is not installed (.ci/run installs it)' : false,
    }, async (t) => {
      const r = setup.route(3)
      const dir = await tempDir(t, 'garage-s3cmd-')
      const conf = (name: string, target: ClientTarget) => s3cmdConfig(dir, name, target, { chunkMb: 5 })
      const [up, down] = await Promise.all([conf('up.cfg', r.up), conf('down.cfg', r.down)])
      const p = prefix('s3cmd')
      const big = await randomFile(dir, 'big.bin', 12 * MiB)
      await run(S3CMD as string, ['-c', up, 'put', big.path, `s3://${r.bucket}/${p}/big.bin`], {})
      const head = await sdk(r.down).send(new HeadObjectCommand({ Bucket: r.bucket, Key: `${p}/big.bin` }))
      assert.match(head.ETag ?? '', /^"[0-9a-f]{32}-3"$/, 'stored as a 3-part multipart object')
      const back = join(dir, 'big.back')
      await run(S3CMD as string, ['-c', down, 'get', `s3://${r.bucket}/${p}/big.bin`, back], {})
      assert.equal(await md5File(back), big.md5, 'the multipart upload comes back identical')
    })

    test('AWS SDK for JavaScript v3: multipart upload (4 × 5 MiB), read back elsewhere', async () => {
      const r = setup.route(4)
      const up = sdk(r.up)
      const down = sdk(r.down)
      const key = `${prefix('sdk-js')}/big.bin`
      const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(5 * MiB)]
      const { UploadId } = await up.send(new CreateMultipartUploadCommand({ Bucket: r.bucket, Key: key }))
      const etags = await Promise.all(
        parts.map(async (Body, i) => {
          const res = await up.send(new UploadPartCommand({ Bucket: r.bucket, Key: key, UploadId, PartNumber: i + 1, Body }))
          return res.ETag as string
        }),
      )
      const done = await up.send(
        new CompleteMultipartUploadCommand({
          Bucket: r.bucket,
          Key: key,
          UploadId,
          MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
        }),
      )
      assert.match(done.ETag ?? '', /^"[0-9a-f]{32}-4"$/)
      const got = await down.send(new GetObjectCommand({ Bucket: r.bucket, Key: key }))
      const body = await got.Body?.transformToByteArray()
      assert.equal(md5(body ?? new Uint8Array()), md5(Buffer.concat(parts)), 'what comes back is what went up')
    })

    test('MinIO JavaScript client: fPutObject of 20 MiB (5 MiB parts), fGetObject elsewhere', async (t) => {
      const r = setup.route(5)
      const client = (target: ClientTarget) => {
        const url = new URL(target.endpoint)
        return new MinioClient({
          endPoint: url.hostname,
          port: Number(url.port),
          useSSL: false,
          accessKey: target.credentials.accessKeyId,
          secretKey: target.credentials.secretAccessKey,
          region: target.region,
          pathStyle: true,
          partSize: 5 * MiB,
        })
      }
      const dir = await tempDir(t, 'garage-minio-')
      const big = await randomFile(dir, 'big.bin', 20 * MiB)
      const key = `${prefix('minio')}/big.bin`
      await client(r.up).fPutObject(r.bucket, key, big.path, {})
      const stat = await client(r.down).statObject(r.bucket, key)
      assert.match(stat.etag, /^[0-9a-f]{32}-4$/, 'stored as a 4-part multipart object')
      const back = join(dir, 'big.back')
      await client(r.down).fGetObject(r.bucket, key, back)
      assert.equal(await md5File(back), big.md5)
      // The stream API reads the same bytes.
      const chunks: Buffer[] = []
      for await (const c of createReadStream(back)) chunks.push(c as Buffer)
      assert.equal(md5(Buffer.concat(chunks)), big.md5)
    })
  })
}

test('client versions under test', async (t) => {
  const versions: string[] = []
  if (RCLONE !== undefined) versions.push(await clientVersion(RCLONE, ['version']))
  if (HAS_AWS_V2) versions.push(await clientVersion(AWS_V2))
  if (AWS_V1 !== undefined) versions.push(AWS_V1.version)
  if (S3CMD !== undefined) versions.push(await clientVersion(S3CMD))
  t.diagnostic(versions.join('; '))
  assert.ok(versions.every((v) => v.length > 0))
})
