/**
 * Admin API v1 (and v0) paths, as Garage 2.x still serves them for tools written against 1.x:
 * translated into v2 endpoints (same answers, same token scopes); the ones whose meaning changed
 * are refused with 400, unknown paths 404. A real node, real HTTP.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { adminCall, v2 } from '../../helpers/admin.ts'

const ADMIN = 'v1-admin-token'
let node: TestNode

before(async () => {
  node = await startTestNode({ bucket: 'v1-seed', admin: { api_bind_addr: '127.0.0.1:0', admin_token: ADMIN } })
})
after(() => node?.close())

type Json = Record<string, unknown>
const json = (r: { json: unknown }): Json => r.json as Json

function ok(r: { status: number; text: string }, what: string): void {
  assert.equal(r.status, 200, `${what}: ${r.text}`)
}

describe('admin API v1 (Garage 2.x compatibility)', () => {
  test('keys: create, get (secret only when asked), list, update, import', async () => {
    const created = await adminCall(node, '/v1/key', { body: { name: 'old-tool' } })
    ok(created, 'POST /v1/key')
    const id = json(created).accessKeyId as string
    assert.match(id, /^GK[0-9a-f]{24}$/)

    const info = await adminCall(node, '/v1/key', { query: { id } })
    ok(info, 'GET /v1/key?id=')
    assert.equal(json(info).name, 'old-tool')
    assert.equal(json(info).secretAccessKey ?? null, null, 'no secret unless showSecretKey=true')
    const withSecret = await adminCall(node, '/v1/key', { query: { search: 'old-tool', showSecretKey: 'true' } })
    ok(withSecret, 'GET /v1/key?search=&showSecretKey=true')
    assert.equal(json(withSecret).accessKeyId, id)
    assert.equal(typeof json(withSecret).secretAccessKey, 'string')

    const list = await adminCall(node, '/v1/key')
    ok(list, 'GET /v1/key')
    assert.ok((list.json as Json[]).some((k) => k.id === id))

    const updated = await adminCall(node, '/v1/key', { query: { id }, body: { name: 'renamed' } })
    ok(updated, 'POST /v1/key?id=')
    assert.equal((await v2(node, 'GetKeyInfo', { query: { id } })).data.name, 'renamed')

    const imported = await adminCall(node, '/v1/key/import', {
      body: { accessKeyId: 'GK0123456789abcdef01234567', secretAccessKey: 'a'.repeat(64), name: 'imported' },
    })
    ok(imported, 'POST /v1/key/import')
    assert.equal(json(imported).accessKeyId, 'GK0123456789abcdef01234567')
  })

  test('buckets: create, get by id and alias, list, update, allow/deny, global and local aliases', async () => {
    const key = json(await adminCall(node, '/v1/key', { body: { name: 'bucket-user' } })).accessKeyId as string
    const created = await adminCall(node, '/v1/bucket', { body: { globalAlias: 'v1-bucket' } })
    ok(created, 'POST /v1/bucket')
    const id = json(created).id as string

    ok(await adminCall(node, '/v1/bucket', { query: { globalAlias: 'v1-bucket' } }), 'GET /v1/bucket?globalAlias=')
    const list = await adminCall(node, '/v1/bucket')
    ok(list, 'GET /v1/bucket')
    assert.ok((list.json as Json[]).some((b) => b.id === id))

    const quotas = await adminCall(node, '/v1/bucket', {
      method: 'PUT',
      query: { id },
      body: { quotas: { maxSize: 1_000_000, maxObjects: 10 } },
    })
    ok(quotas, 'PUT /v1/bucket?id=')
    assert.deepEqual(json(quotas).quotas, { maxSize: 1_000_000, maxObjects: 10 })

    const perm = { bucketId: id, accessKeyId: key, permissions: { read: true, write: true, owner: false } }
    ok(await adminCall(node, '/v1/bucket/allow', { body: perm }), 'POST /v1/bucket/allow')
    const denied = await adminCall(node, '/v1/bucket/deny', {
      body: { ...perm, permissions: { read: false, write: true, owner: false } },
    })
    ok(denied, 'POST /v1/bucket/deny')
    const keys = json(denied).keys as Json[]
    assert.deepEqual(keys.find((k) => k.accessKeyId === key)?.permissions, { read: true, write: false, owner: false })

    const aliased = await adminCall(node, '/v1/bucket/alias/global', { method: 'PUT', query: { id, alias: 'v1-other' } })
    ok(aliased, 'PUT /v1/bucket/alias/global')
    assert.deepEqual((json(aliased).globalAliases as string[]).sort(), ['v1-bucket', 'v1-other'])
    const unaliased = await adminCall(node, '/v1/bucket/alias/global', { method: 'DELETE', query: { id, alias: 'v1-other' } })
    ok(unaliased, 'DELETE /v1/bucket/alias/global')
    assert.deepEqual(json(unaliased).globalAliases, ['v1-bucket'])

    const local = await adminCall(node, '/v1/bucket/alias/local', {
      method: 'PUT',
      query: { id, accessKeyId: key, alias: 'mine' },
    })
    ok(local, 'PUT /v1/bucket/alias/local')
    assert.deepEqual(((json(local).keys as Json[]).find((k) => k.accessKeyId === key)?.bucketLocalAliases as string[]) ?? [], [
      'mine',
    ])
    const unlocal = await adminCall(node, '/v1/bucket/alias/local', {
      method: 'DELETE',
      query: { id, accessKeyId: key, alias: 'mine' },
    })
    ok(unlocal, 'DELETE /v1/bucket/alias/local')

    const missing = await adminCall(node, '/v1/bucket/alias/global', { method: 'PUT', query: { id } })
    assert.equal(missing.status, 400, missing.text)
    assert.equal(json(missing).code, 'InvalidRequest')
  })

  test('cluster: health and layout answer as their v2 endpoints', async () => {
    const health = await adminCall(node, '/v1/health')
    ok(health, 'GET /v1/health')
    assert.deepEqual(health.json, (await v2(node, 'GetClusterHealth')).json)
    const layout = await adminCall(node, '/v1/layout')
    ok(layout, 'GET /v1/layout')
    assert.equal(typeof json(layout).version, 'number')
  })

  test('the endpoints whose meaning changed are refused with 400, as Garage 2.x does; unknown paths 404', async () => {
    for (const [method, path, query, name] of [
      ['GET', '/v1/status', {}, 'GetClusterStatus'],
      ['POST', '/v1/layout', {}, 'UpdateClusterLayout'],
      ['DELETE', '/v1/key', { id: 'GK0123456789abcdef01234567' }, 'DeleteKey'],
      ['DELETE', '/v1/bucket', { id: '0'.repeat(64) }, 'DeleteBucket'],
    ] as const) {
      const r = await adminCall(node, path, { method, query, ...(method === 'POST' ? { body: {} } : {}) })
      assert.equal(r.status, 400, `${method} ${path}: ${r.text}`)
      assert.equal(json(r).code, 'InvalidRequest')
      assert.match(String(json(r).message), new RegExp(`v1/ endpoint is no longer supported: ${name}`))
    }
    assert.equal((await adminCall(node, '/v1/key', { method: 'DELETE' })).status, 404)
    assert.equal((await adminCall(node, '/v1/nothing')).status, 404)
    // The key imported above still exists: a refused request changes nothing.
    assert.equal((await v2(node, 'GetKeyInfo', { query: { id: 'GK0123456789abcdef01234567' } })).status, 200)
  })

  test('v0: the paths Garage 2.x kept work (GetKeyInfo shows the secret, as v0 did); the others answer 400', async () => {
    const created = await adminCall(node, '/v0/key', { body: { name: 'v0-tool' } })
    ok(created, 'POST /v0/key')
    const id = json(created).accessKeyId as string
    const info = await adminCall(node, '/v0/key', { query: { id } })
    ok(info, 'GET /v0/key?id=')
    assert.equal(typeof json(info).secretAccessKey, 'string')
    ok(await adminCall(node, '/v0/bucket'), 'GET /v0/bucket')
    for (const [method, path, name] of [
      ['GET', '/v0/health', 'v0/ endpoint is no longer supported: GetClusterHealth'],
      ['GET', '/v0/layout', 'v0/ endpoint is no longer supported: GetClusterLayout'],
      ['DELETE', '/v0/key', 'v1/ endpoint is no longer supported: DeleteKey'],
    ] as const) {
      const r = await adminCall(node, path, { method, query: method === 'DELETE' ? { id } : {} })
      assert.equal(r.status, 400, `${method} ${path}: ${r.text}`)
      assert.match(String(json(r).message), new RegExp(name))
    }
    assert.equal((await v2(node, 'GetKeyInfo', { query: { id } })).status, 200, 'the refused DELETE deleted nothing')
  })

  test('tokens: v1 paths need one, and a scoped token opens only the v2 endpoints its scope names', async () => {
    const anonymous = await adminCall(node, '/v1/key', { token: null })
    assert.ok(anonymous.status === 401 || anonymous.status === 403, anonymous.text)
    const scoped = await v2(node, 'CreateAdminToken', { body: { name: 'lister', scope: ['ListKeys'] } })
    const secret = scoped.data.secretToken as string
    assert.equal((await adminCall(node, '/v1/key', { token: secret })).status, 200)
    assert.equal((await adminCall(node, '/v1/bucket', { token: secret })).status, 403)
  })
})
