/**
 * Admin API authentication and admin tokens: config tokens, missing / wrong / expired /
 * out-of-scope tokens, token CRUD and GetCurrentAdminTokenInfo, routing errors and JSON errors.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { adminCall, v2 } from '../../helpers/admin.ts'

const ADMIN = 'admin-secret-token'
const METRICS = 'metrics-secret-token'
let node: TestNode

before(async () => {
  node = await startTestNode({ admin: { api_bind_addr: '127.0.0.1:0', admin_token: ADMIN, metrics_token: METRICS } })
})
after(() => node.close())

function assertError(r: { status: number; json: unknown }, status: number, code: string): void {
  assert.equal(r.status, status, `HTTP ${status} expected, got ${r.status}: ${JSON.stringify(r.json)}`)
  const body = r.json as { code?: string; message?: string; path?: string; region?: string }
  assert.equal(body.code, code)
  assert.ok(typeof body.message === 'string' && body.message.length > 0, 'the error has a message')
  assert.ok(typeof body.path === 'string', 'the error names the path')
  assert.equal(body.region, 'garage')
}

describe('config tokens', () => {
  test('the admin token opens every endpoint', async () => {
    const r = await v2(node, 'ListKeys')
    assert.equal(r.status, 200)
    assert.equal(r.headers.get('access-control-allow-origin'), '*')
    assert.ok(Array.isArray(r.json), 'ListKeys answers an array')
  })
  test('no token: 401', async () => {
    assertError(await v2(node, 'ListKeys', { token: null }), 401, 'Unauthorized')
  })
  test('a wrong token: 403', async () => {
    assertError(await v2(node, 'ListKeys', { token: 'nope' }), 403, 'AccessDenied')
    assertError(await v2(node, 'ListKeys', { token: `${ADMIN}x` }), 403, 'AccessDenied')
    assertError(await v2(node, 'ListKeys', { token: '0123456789abcdef01234567.bogus' }), 403, 'AccessDenied')
  })
  test('a malformed Authorization header: 401', async () => {
    const r = await fetch(new URL('/v2/ListKeys', node.adminEndpoint), { headers: { authorization: `Basic ${ADMIN}` } })
    assert.equal(r.status, 401)
  })
  test('the metrics token does not open admin endpoints', async () => {
    assertError(await v2(node, 'ListKeys', { token: METRICS }), 403, 'AccessDenied')
  })
  test('GetCurrentAdminTokenInfo describes the config token', async () => {
    const r = await v2(node, 'GetCurrentAdminTokenInfo')
    assert.equal(r.status, 200)
    assert.deepEqual(r.data, {
      id: null,
      created: null,
      name: 'admin_token (from daemon configuration)',
      expiration: null,
      expired: false,
      scope: ['*'],
    })
  })
})

describe('routing and request errors', () => {
  test('an unknown endpoint: 404', async () => {
    assertError(await v2(node, 'NoSuchThing'), 404, 'NoSuchEndpoint')
    assertError(await adminCall(node, '/v1/nothing'), 404, 'NoSuchEndpoint')
    assertError(await adminCall(node, '/v0/nothing'), 404, 'NoSuchEndpoint')
  })
  test('the wrong method: 405', async () => {
    assertError(await v2(node, 'ListKeys', { body: {} }), 405, 'MethodNotAllowed')
    assertError(await v2(node, 'CreateKey'), 405, 'MethodNotAllowed')
  })
  test('invalid JSON: 400', async () => {
    assertError(await v2(node, 'CreateKey', { rawBody: '{"name": ' }), 400, 'InvalidRequest')
    assertError(await v2(node, 'CreateKey', { body: [1, 2] }), 400, 'InvalidRequest')
    assertError(await v2(node, 'CreateKey', { body: { name: 42 } }), 400, 'InvalidRequest')
  })
  test('OPTIONS answers CORS headers without a token', async () => {
    const r = await adminCall(node, '/v2/ListKeys', { method: 'OPTIONS', token: null })
    assert.equal(r.status, 200)
    assert.equal(r.headers.get('access-control-allow-origin'), '*')
    assert.match(r.headers.get('access-control-allow-headers') ?? '', /authorization/)
  })
  test('the OpenAPI document lists every endpoint', async () => {
    const r = await adminCall(node, '/v2/openapi.json', { token: null })
    assert.equal(r.status, 200)
    const doc = r.json as { openapi: string; paths: Record<string, Record<string, { operationId: string }>> }
    assert.equal(doc.openapi, '3.1.0')
    for (const name of ['ListKeys', 'CreateBucket', 'CreateAdminToken', 'GetWorkerVariable', 'ApplyClusterLayout']) {
      assert.ok(doc.paths[`/v2/${name}`] !== undefined, `${name} is described`)
    }
    assert.equal(doc.paths['/v2/ListKeys']?.get?.operationId, 'ListKeys')
    assert.equal(doc.paths['/v2/CreateKey']?.post?.operationId, 'CreateKey')
  })
})

describe('admin tokens', () => {
  test('create, use, list, update, search and delete a scoped token', async () => {
    const c = await v2(node, 'CreateAdminToken', { body: { name: 'ci', scope: ['ListKeys', 'GetCurrentAdminTokenInfo'] } })
    assert.equal(c.status, 200, c.text)
    const secret = c.data.secretToken as string
    const id = c.data.id as string
    assert.match(id, /^[0-9a-f]{24}$/)
    assert.ok(secret.startsWith(`${id}.`), 'the secret starts with the id')
    assert.equal(c.data.name, 'ci')
    assert.equal(c.data.expired, false)
    assert.deepEqual(c.data.scope, ['GetCurrentAdminTokenInfo', 'ListKeys'])
    assert.ok(typeof c.data.created === 'string', 'created is a date')

    // In scope, out of scope.
    assert.equal((await v2(node, 'ListKeys', { token: secret })).status, 200)
    assertError(await v2(node, 'ListBuckets', { token: secret }), 403, 'AccessDenied')
    const me = await v2(node, 'GetCurrentAdminTokenInfo', { token: secret })
    assert.equal(me.data.id, id)
    assert.equal(me.data.name, 'ci')
    // The right id with a wrong secret.
    assertError(await v2(node, 'ListKeys', { token: `${id}.AAAA` }), 403, 'AccessDenied')

    const list = await v2(node, 'ListAdminTokens')
    const names = list.list.map((t) => t.name)
    assert.deepEqual(names.slice(0, 2), ['admin_token (from daemon configuration)', 'metrics_token (from daemon configuration)'])
    assert.ok(names.includes('ci'), 'the new token is listed')

    const info = await v2(node, 'GetAdminTokenInfo', { query: { id } })
    assert.equal(info.data.name, 'ci')
    const found = await v2(node, 'GetAdminTokenInfo', { query: { search: id.slice(0, 8) } })
    assert.equal(found.data.id, id)

    const u = await v2(node, 'UpdateAdminToken', { query: { id }, body: { name: 'ci2', scope: ['*'] } })
    assert.equal(u.status, 200, u.text)
    assert.equal(u.data.name, 'ci2')
    assert.equal((await v2(node, 'ListBuckets', { token: secret })).status, 200)

    const d = await v2(node, 'DeleteAdminToken', { method: 'POST', query: { id } })
    assert.equal(d.status, 200)
    assertError(await v2(node, 'ListKeys', { token: secret }), 403, 'AccessDenied')
    assertError(await v2(node, 'GetAdminTokenInfo', { query: { id } }), 404, 'NoSuchAdminToken')
  })

  test('an expired token is refused', async () => {
    const c = await v2(node, 'CreateAdminToken', {
      body: { name: 'short', expiration: new Date(Date.now() + 60_000).toISOString() },
    })
    const secret = c.data.secretToken as string
    const id = c.data.id as string
    assert.equal((await v2(node, 'ListKeys', { token: secret })).status, 200)
    const u = await v2(node, 'UpdateAdminToken', {
      query: { id },
      body: { expiration: new Date(Date.now() - 1000).toISOString() },
    })
    assert.equal(u.data.expired, true)
    assertError(await v2(node, 'ListKeys', { token: secret }), 403, 'AccessDenied')
    const back = await v2(node, 'UpdateAdminToken', { query: { id }, body: { neverExpires: true } })
    assert.equal(back.data.expiration, null)
    assert.equal((await v2(node, 'ListKeys', { token: secret })).status, 200)
  })

  test('bad input and unknown ids', async () => {
    assertError(await v2(node, 'CreateAdminToken', { body: { scope: 'ListKeys' } }), 400, 'InvalidRequest')
    assertError(await v2(node, 'CreateAdminToken', { body: { expiration: 'tomorrow' } }), 400, 'InvalidRequest')
    assertError(
      await v2(node, 'CreateAdminToken', { body: { expiration: new Date().toISOString(), neverExpires: true } }),
      400,
      'InvalidRequest',
    )
    assertError(await v2(node, 'GetAdminTokenInfo'), 400, 'InvalidRequest')
    assertError(await v2(node, 'GetAdminTokenInfo', { query: { id: 'ffffffffffffffffffffffff' } }), 404, 'NoSuchAdminToken')
    assertError(
      await v2(node, 'UpdateAdminToken', { query: { id: 'ffffffffffffffffffffffff' }, body: {} }),
      404,
      'NoSuchAdminToken',
    )
    assertError(
      await v2(node, 'DeleteAdminToken', { query: { id: 'ffffffffffffffffffffffff' }, body: {} }),
      404,
      'NoSuchAdminToken',
    )
    assertError(await v2(node, 'UpdateAdminToken', { body: {} }), 400, 'InvalidRequest')
  })

  test('the stored token is a salted hash, never the secret', async () => {
    const c = await v2(node, 'CreateAdminToken', { body: { name: 'hashed' } })
    const secret = c.data.secretToken as string
    const stored = node.node.status().tables.find((t) => t.name === 'admin_token')
    assert.ok(stored !== undefined && stored.entries > 0, 'the admin_token table holds entries')
    const tokens = await node.node.adminTokens.list()
    assert.ok(
      tokens.some((t) => t.id === c.data.id),
      'node.adminTokens sees API-created tokens',
    )
    assert.ok(!JSON.stringify(tokens).includes(secret.split('.')[1] as string), 'the secret is not exposed')
  })
})

describe('a node without admin_token', () => {
  test('admin endpoints are disabled (403), health still answers', async () => {
    const bare = await startTestNode({ admin: { api_bind_addr: '127.0.0.1:0' } })
    try {
      const r = await v2(bare, 'ListKeys', { token: null })
      assertError(r, 403, 'AccessDenied')
      assert.match((r.json as { message: string }).message, /Admin token isn't configured/)
      assertError(await v2(bare, 'ListKeys', { token: 'anything' }), 403, 'AccessDenied')
      assert.equal((await adminCall(bare, '/health', { token: null })).status, 200)
      // Metrics are open when no metrics token is configured.
      assert.equal((await adminCall(bare, '/metrics', { token: null })).status, 200)
      // A token created through the library opens the API.
      const { secretToken } = await bare.node.adminTokens.create({ name: 'lib', scope: ['ListKeys'] })
      assert.equal((await v2(bare, 'ListKeys', { token: secretToken })).status, 200)
      assertError(await v2(bare, 'ListKeys', { token: null }), 401, 'Unauthorized')
    } finally {
      await bare.close()
    }
  })
  test('no admin server without admin.api_bind_addr', async () => {
    const plain = await startTestNode()
    try {
      assert.equal(plain.adminEndpoint, undefined)
    } finally {
      await plain.close()
    }
  })
})
