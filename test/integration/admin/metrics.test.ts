/** `/metrics` (Prometheus text, checked with a parser), `/health` and `/check` of the admin API. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { adminCall, parseMetrics, sample, v2 } from '../../helpers/admin.ts'
import { useTestNode } from '../../helpers/s3.ts'

const METRICS = 'm-token'
let node: TestNode
let s3: S3Client

useTestNode(
  {
    s3_api: { api_bind_addr: '127.0.0.1:0', root_domain: '.s3.example.com' },
    s3_web: { bind_addr: '127.0.0.1:0', root_domain: '.web.example.com' },
    admin: { api_bind_addr: '127.0.0.1:0', admin_token: 'a-token', metrics_token: METRICS },
  },
  (n, c) => {
    node = n
    s3 = c
  },
)

async function scrape() {
  const r = await adminCall(node, '/metrics', { token: METRICS })
  assert.equal(r.status, 200, r.text)
  assert.match(r.headers.get('content-type') ?? '', /text\/plain/)
  return parseMetrics(r.text)
}

describe('/metrics', () => {
  test('needs the metrics token (or the admin token) when one is configured', async () => {
    assert.equal((await adminCall(node, '/metrics', { token: null })).status, 401)
    assert.equal((await adminCall(node, '/metrics', { token: 'wrong' })).status, 403)
    assert.equal((await adminCall(node, '/metrics', { token: 'a-token' })).status, 200)
  })

  test('S3 requests are counted per endpoint, with errors and durations', async () => {
    const before = await scrape()
    const puts0 = sample(before, 'api_s3_request_counter', { api_endpoint: 'PutObject' })
    const gets0 = sample(before, 'api_s3_request_counter', { api_endpoint: 'GetObject' })
    const errs0 = sample(before, 'api_s3_error_counter', { api_endpoint: 'GetObject', status_code: '404' })
    const written0 = sample(before, 'block_bytes_written')
    for (let i = 0; i < 3; i++) {
      await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: `m${i}`, Body: Buffer.alloc(8000, i) }))
    }
    const got = await s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: 'm0' }))
    await got.Body?.transformToByteArray()
    await assert.rejects(s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: 'missing' })))
    const after = await scrape()
    assert.equal(sample(after, 'api_s3_request_counter', { api_endpoint: 'PutObject' }), puts0 + 3)
    assert.equal(sample(after, 'api_s3_request_counter', { api_endpoint: 'GetObject' }), gets0 + 2)
    assert.equal(sample(after, 'api_s3_error_counter', { api_endpoint: 'GetObject', status_code: '404' }), errs0 + 1)
    assert.equal(after.get('api_s3_request_duration')?.type, 'HISTOGRAM')
    // The parser drops histogram labels: read the per-endpoint count from the text itself.
    const text = (await adminCall(node, '/metrics', { token: METRICS })).text
    const count = /^api_s3_request_duration_count\{api_endpoint="PutObject"\} (\d+)$/m.exec(text)?.[1]
    assert.equal(Number(count), puts0 + 3)
    assert.ok(sample(after, 'block_bytes_written') >= written0 + 3 * 8000, 'block bytes written grow')
    assert.ok(sample(after, 'block_bytes_read') >= 8000, 'block bytes read grow')
    assert.ok(sample(after, 'api_s3_request_bytes_received', { api_endpoint: 'PutObject' }) >= 3 * 8000, 'bytes received')
  })

  test('cluster, table, block and node gauges; admin requests are counted too', async () => {
    await v2(node, 'ListKeys')
    const m = await scrape()
    assert.equal(sample(m, 'cluster_healthy'), 1)
    assert.equal(sample(m, 'cluster_available'), 1)
    assert.equal(sample(m, 'cluster_partitions'), 256)
    assert.equal(sample(m, 'garage_replication_factor'), 1)
    assert.equal(sample(m, 'garage_node_info', { id: node.node.nodeId }), 1)
    assert.ok(sample(m, 'table_size', { table_name: 'object' }) >= 3, 'the object table size is reported')
    assert.ok(m.get('table_insert_queue_length') !== undefined, 'insert queue lengths are reported')
    assert.ok(m.get('block_resync_queue_length') !== undefined, 'the resync queue length is reported')
    assert.ok(sample(m, 'api_admin_request_counter', { api_endpoint: 'ListKeys' }) >= 1, 'admin requests are counted')
    assert.ok(sample(m, 'api_admin_request_counter', { api_endpoint: 'Metrics' }) >= 1, 'scrapes are counted')
  })
})

describe('/health and /check', () => {
  test('/health is 200 text without a token', async () => {
    const r = await adminCall(node, '/health', { token: null })
    assert.equal(r.status, 200)
    assert.match(r.text, /Garage is fully operational/)
  })

  test('/check accepts <bucket>.<s3 root domain> of an existing bucket', async () => {
    const ok = await adminCall(node, '/check', { token: null, query: { domain: `${node.bucket}.s3.example.com` } })
    assert.equal(ok.status, 200, ok.text)
    const no = await adminCall(node, '/check', { token: null, query: { domain: 'nope-bucket.s3.example.com' } })
    assert.equal(no.status, 400)
    assert.equal((no.json as { code: string }).code, 'InvalidRequest')
    assert.equal((await adminCall(node, '/check', { token: null })).status, 400)
  })

  test('/check accepts website buckets by web domain or bare name only once website access is on', async () => {
    const web = `${node.bucket}.web.example.com`
    assert.equal((await adminCall(node, '/check', { token: null, query: { domain: web } })).status, 400)
    assert.equal((await adminCall(node, '/check', { token: null, query: { domain: node.bucket } })).status, 400)
    const id = (await v2(node, 'GetBucketInfo', { query: { globalAlias: node.bucket } })).data.id as string
    await v2(node, 'UpdateBucket', { query: { id }, body: { websiteAccess: { enabled: true, indexDocument: 'index.html' } } })
    assert.equal((await adminCall(node, '/check', { token: null, query: { domain: web } })).status, 200)
    assert.equal((await adminCall(node, '/check', { token: null, query: { domain: node.bucket } })).status, 200)
  })
})

describe('metrics without a metrics token', () => {
  test('/metrics is open unless metrics_require_token', async () => {
    const open = await startTestNode({ admin: { api_bind_addr: '127.0.0.1:0', admin_token: 'x' } })
    const closed = await startTestNode({ admin: { api_bind_addr: '127.0.0.1:0', admin_token: 'x', metrics_require_token: true } })
    try {
      assert.equal((await adminCall(open, '/metrics', { token: null })).status, 200)
      assert.equal((await adminCall(closed, '/metrics', { token: null })).status, 401)
      assert.equal((await adminCall(closed, '/metrics', { token: 'x' })).status, 200)
      // Two nodes in one process keep separate registries.
      const a = parseMetrics((await adminCall(open, '/metrics', { token: null })).text)
      assert.equal(sample(a, 'garage_node_info', { id: open.node.nodeId }), 1)
      assert.equal(sample(a, 'garage_node_info', { id: closed.node.nodeId }), 0)
    } finally {
      await open.close()
      await closed.close()
    }
  })
})
