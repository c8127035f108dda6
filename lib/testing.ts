/**
 * Real nodes for tests, yours and ours: `import { startTestNode } from 'garage/testing'`.
 * Each node runs on a fresh temporary directory and a free port, with an access key and a bucket
 * ready, and `close()` stops it and removes its files.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createGarageNode, type GarageNode, type GarageNodeOptions } from './node.ts'
import type { KeyInfo } from './model/helper/admin.ts'

export interface TestNodeOptions extends GarageNodeOptions {
  /** Name of the bucket created for the key (global alias). Default `test-bucket`. */
  bucket?: string
}

export interface TestNode extends AsyncDisposable {
  node: GarageNode
  /** `http://127.0.0.1:<port>` */
  endpoint: string
  /** `http://127.0.0.1:<port>` of the website endpoint, when `s3_web` is set. */
  webEndpoint: string | undefined
  region: string
  bucket: string
  key: KeyInfo
  /** Settings for an S3 client: endpoint, region, path-style, credentials. */
  s3Config: {
    endpoint: string
    region: string
    forcePathStyle: true
    credentials: { accessKeyId: string; secretAccessKey: string }
  }
  /** The temporary directory holding metadata and data. */
  dir: string
  /** `http://127.0.0.1:<port>` of the admin API, when `admin.api_bind_addr` was given. */
  adminEndpoint: string | undefined
  /** The configured `admin_token`, if any. */
  adminToken: string | undefined
  /** Stops the node and removes its directory. */
  close(): Promise<void>
}

/** Starts a single-node store with a key (allowed to create buckets) and one bucket it owns. */
export async function startTestNode(options: TestNodeOptions = {}): Promise<TestNode> {
  const { bucket = 'test-bucket', ...rest } = options
  const dir = await mkdtemp(join(tmpdir(), 'garage-test-'))
  const node = createGarageNode({
    metadata_dir: join(dir, 'meta'),
    data_dir: join(dir, 'data'),
    env: {},
    ...rest,
    s3_api: { api_bind_addr: '127.0.0.1:0', s3_region: 'garage', ...rest.s3_api },
  })
  let closed: Promise<void> | undefined
  const close = (): Promise<void> =>
    (closed ??= (async () => {
      try {
        await node.stop()
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    })())
  try {
    await node.start()
    const key = await node.keys.create({ name: 'test', allowCreateBucket: true })
    await node.buckets.create(bucket)
    await node.buckets.allowKey(bucket, key.accessKeyId, { read: true, write: true, owner: true })
    const endpoint = node.s3Endpoint as string
    const region = node.config.s3Api.s3Region
    return {
      node,
      endpoint,
      webEndpoint: node.webEndpoint,
      region,
      bucket,
      key,
      dir,
      adminEndpoint: node.adminEndpoint,
      adminToken: node.config.admin.adminToken,
      s3Config: {
        endpoint,
        region,
        forcePathStyle: true,
        credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey },
      },
      close,
      [Symbol.asyncDispose]: close,
    }
  } catch (err) {
    await close()
    throw err
  }
}
