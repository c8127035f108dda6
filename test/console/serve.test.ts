/**
 * The admin server's side of the console: the static assets under /ui/ (headers, single-page
 * fallback, no escape from the asset directory), /ui/config.json, the S3 API at /ui/s3/ (signed
 * by the console's own SigV4 code, checked by the S3 handler exactly as on the S3 port), and the
 * console's typed admin client against a real node.
 */
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { after, before, describe, test } from 'node:test'
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { AdminApiError, AdminClient } from '../../console/src/api.ts'
import { objectPath, sha256Hex, signRequest, UNSIGNED_PAYLOAD } from '../../console/src/sigv4.ts'
import { startTestNode, type TestNode } from '../../lib/testing.ts'
import { ensureConsoleBuilt } from '../helpers/browser.ts'

const TOKEN = 'console-serve-admin-token'
let node: TestNode
let admin: URL

before(async () => {
  await ensureConsoleBuilt()
  node = await startTestNode({ admin: { api_bind_addr: '127.0.0.1:0', admin_token: TOKEN } })
  admin = new URL(node.adminEndpoint as string)
})
after(() => node?.close())

/** A raw GET (no URL normalisation, unlike fetch). */
function rawGet(
  path: string,
  method = 'GET',
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: admin.hostname, port: admin.port, path, method }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => {
        body += c
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('console assets', () => {
  test('/ui redirects to /ui/, which serves the page with a strict content security policy', async () => {
    const r = await rawGet('/ui')
    assert.equal(r.status, 308)
    assert.equal(r.headers.location, '/ui/')
    const page = await rawGet('/ui/')
    assert.equal(page.status, 200)
    assert.match(String(page.headers['content-type']), /^text\/html/)
    assert.match(page.body, /<script type="module" src="app.js"><\/script>/)
    assert.match(String(page.headers['content-security-policy']), /default-src 'self'; script-src 'self'/)
    assert.equal(page.headers['x-frame-options'], 'DENY')
    const js = await rawGet('/ui/app.js')
    assert.equal(js.status, 200)
    assert.match(String(js.headers['content-type']), /^text\/javascript/)
    // Nothing is loaded from another origin.
    assert.doesNotMatch(js.body, /https?:\/\/(?!www\.w3\.org)[a-z]/i)
  })

  test('paths without an extension get the page (client-side routes); missing assets are 404', async () => {
    assert.match((await rawGet('/ui/buckets/abc')).body, /<div id="app">/)
    assert.equal((await rawGet('/ui/missing.js')).status, 404)
  })

  test('no path leaves the asset directory', async () => {
    for (const p of [
      '/ui/..%2f..%2fpackage.json',
      '/ui/%2e%2e/%2e%2e/package.json',
      '/ui/..%2F..%2F..%2Fetc%2Fpasswd',
      '/ui/%ff.js',
    ]) {
      const r = await rawGet(p)
      assert.equal(r.status, 404, p)
      assert.doesNotMatch(r.body, /"name"|root:/)
    }
  })

  test('only GET and HEAD; HEAD has no body', async () => {
    assert.equal((await rawGet('/ui/', 'POST')).status, 405)
    const h = await rawGet('/ui/app.js', 'HEAD')
    assert.equal(h.status, 200)
    assert.equal(h.body, '')
  })

  test('config.json names the S3 region the console signs for', async () => {
    const r = await rawGet('/ui/config.json')
    assert.deepEqual(JSON.parse(r.body), { region: node.region })
  })

  test('the admin API around it is unchanged', async () => {
    const r = await rawGet('/v2/ListBuckets')
    assert.equal(r.status, 401)
    assert.equal(JSON.parse(r.body).code, 'Unauthorized')
  })
})

describe('S3 through /ui/s3/', () => {
  const sign = async (
    method: string,
    path: string,
    query: Array<[string, string]>,
    secret = node.key.secretAccessKey,
    body?: Buffer,
  ) =>
    signRequest({
      method,
      host: admin.host,
      path,
      query,
      payloadHash: body === undefined ? await sha256Hex('') : UNSIGNED_PAYLOAD,
      key: { accessKeyId: node.key.accessKeyId, secretAccessKey: secret },
      region: node.region,
    })

  test('a PUT signed by the console lands in the store, readable on the S3 port', async () => {
    const body = Buffer.from('hello from the console')
    const path = objectPath(node.bucket, 'dir/hello world.txt')
    const s = await sign('PUT', path, [], undefined, body)
    const res = await fetch(`${admin.origin}/ui/s3${path}`, { method: 'PUT', headers: s.headers, body })
    assert.equal(res.status, 200, await res.text())
    const s3 = new S3Client(node.s3Config)
    after(() => s3.destroy())
    const got = await s3.send(new GetObjectCommand({ Bucket: node.bucket, Key: 'dir/hello world.txt' }))
    assert.equal(await got.Body?.transformToString(), 'hello from the console')

    const list = await sign('GET', objectPath(node.bucket), [
      ['list-type', '2'],
      ['delimiter', '/'],
    ])
    const l = await fetch(`${admin.origin}/ui/s3${objectPath(node.bucket)}?${list.query}`, { headers: list.headers })
    assert.equal(l.status, 200)
    assert.match(await l.text(), /<Prefix>dir\/<\/Prefix>/)
  })

  test('a wrong secret, or the admin token instead of a signature, gets the S3 error and changes nothing', async () => {
    const path = objectPath(node.bucket, 'nope.txt')
    const bad = await sign('PUT', path, [], 'b'.repeat(64), Buffer.from('x'))
    const r1 = await fetch(`${admin.origin}/ui/s3${path}`, { method: 'PUT', headers: bad.headers, body: 'x' })
    assert.equal(r1.status, 403)
    assert.match(await r1.text(), /<Code>SignatureDoesNotMatch<\/Code>/)
    const r2 = await fetch(`${admin.origin}/ui/s3${path}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${TOKEN}` },
      body: 'x',
    })
    // Not a SigV4 header: the S3 handler refuses it as malformed, as AWS does.
    assert.equal(r2.status, 400)
    assert.match(await r2.text(), /<Code>(AuthorizationHeaderMalformed|InvalidArgument|InvalidRequest)<\/Code>/)
    const head = await sign('HEAD', path, [])
    assert.equal((await fetch(`${admin.origin}/ui/s3${path}`, { method: 'HEAD', headers: head.headers })).status, 404)
  })
})

describe('console admin client', () => {
  test('calls endpoints with the contract methods and query fields, and returns their answers', async () => {
    const api = new AdminClient(TOKEN, admin.origin)
    const created = await api.call('CreateBucket', { body: { globalAlias: 'client-made' } })
    assert.deepEqual(created.globalAliases, ['client-made'])
    const info = await api.call('GetBucketInfo', { query: { globalAlias: 'client-made' } })
    assert.equal(info.id, created.id)
    const workers = await api.call('ListWorkers', { query: { node: 'self' }, body: {} })
    assert.ok(Object.values(workers.success)[0]?.length)
    assert.match(await api.metrics(), /api_admin_request_counter/)
  })

  test('errors come back as AdminApiError with the code and status', async () => {
    const api = new AdminClient(TOKEN, admin.origin)
    await assert.rejects(api.call('GetBucketInfo', { query: { globalAlias: 'no-such-bucket' } }), (e: unknown) => {
      assert.ok(e instanceof AdminApiError)
      assert.equal(e.code, 'NoSuchBucket')
      assert.equal(e.status, 404)
      return true
    })
    await assert.rejects(new AdminClient('wrong', admin.origin).call('ListKeys'), { code: 'AccessDenied', status: 403 })
  })
})

describe('[admin] console = false', () => {
  test('turns the console off: /ui/ is an unknown admin path, the admin API is unchanged', async () => {
    const off = await startTestNode({ admin: { api_bind_addr: '127.0.0.1:0', admin_token: TOKEN, console: false } })
    try {
      const base = new URL(off.adminEndpoint as string)
      for (const path of ['/ui/', '/ui/app.js', '/ui/config.json', '/ui/s3/']) {
        const r = await fetch(new URL(path, base))
        assert.equal(r.status, 404, path)
        assert.doesNotMatch(await r.text(), /<script/, path)
      }
      const health = await fetch(new URL('/health', base))
      assert.equal(health.status, 200)
      // The node that serves it answers the same paths with the console.
      assert.equal((await rawGet('/ui/')).status, 200)
    } finally {
      await off.close()
    }
  })
})
