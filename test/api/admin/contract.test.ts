/**
 * The admin API contract (lib/api/admin/contract.ts): request validation messages, the OpenAPI
 * document generated from it, and the response check every admin integration test runs.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ADMIN_API, type EndpointContract } from '../../../lib/api/admin/contract.ts'
import { buildOpenApiDocument } from '../../../lib/api/admin/openapi.ts'
import { ADMIN_ENDPOINTS, parseAdminRoute } from '../../../lib/api/admin/router.ts'
import { ADMIN_API_ROUTES } from '../../../lib/api/admin/routes.ts'
import { AdminRequestValidator, fieldName } from '../../../lib/api/admin/validate.ts'
import { AdminError } from '../../../lib/api/admin/errors.ts'
import { assertMatchesContract } from '../../helpers/admin.ts'

describe('request validation', () => {
  const v = new AdminRequestValidator()
  const cases: Array<[string, string, unknown, string | undefined]> = [
    ['CreateKey', '', undefined, undefined],
    ['CreateKey', '', { name: null }, undefined],
    ['CreateKey', '', { name: 'k', unknownField: 1 }, undefined],
    ['CreateKey', '', [1, 2], 'request body must be an object'],
    ['CreateKey', '', { name: 42 }, "request body: 'name' must be a string"],
    ['CreateAdminToken', '', { scope: 'ListKeys' }, "request body: 'scope' must be an array of strings"],
    ['CreateAdminToken', '', { expiration: 'tomorrow' }, "request body: 'expiration' must be an RFC 3339 date-time"],
    ['ImportKey', '', { accessKeyId: 'GK1' }, "request body: 'secretAccessKey' is required"],
    ['ApplyClusterLayout', '', {}, "request body: 'version' is required"],
    ['ApplyClusterLayout', '', { version: -1 }, "request body: 'version' must be a non-negative integer"],
    [
      'UpdateClusterLayout',
      '',
      { parameters: { zoneRedundancy: 'lots' } },
      `request body: 'parameters.zoneRedundancy' must be "maximum" or an object with atLeast`,
    ],
    ['UpdateClusterLayout', '', { roles: {} }, "request body: 'roles' must be an array"],
    [
      'UpdateClusterLayout',
      '',
      { roles: [{ id: 'a', zone: 'z', tags: 'x' }] },
      "request body: 'roles[0].tags' must be an array of strings",
    ],
    [
      'UpdateClusterLayout',
      '',
      {
        roles: [
          { id: 'a', remove: true },
          { id: 'b', zone: 'z' },
        ],
      },
      undefined,
    ],
    ['UpdateBucket', 'id=x', { quotas: { maxSize: -1 } }, "request body: 'quotas.maxSize' must be a non-negative integer"],
    ['UpdateBucket', '', {}, "missing query parameter 'id'"],
    ['GetKeyInfo', 'showSecretKey=maybe', undefined, `query parameter 'showSecretKey' must be one of "true", "false", ""`],
    ['GetKeyInfo', 'search=x&showSecretKey=true', undefined, undefined],
    [
      'CreateBucket',
      '',
      { localAlias: { accessKeyId: 'k', alias: 'a', allow: { read: 'yes' } } },
      "request body: 'localAlias.allow.read' must be a boolean",
    ],
    [
      'LaunchRepairOperation',
      'node=self',
      { repairType: { scrub: 'later' } },
      `request body: 'repairType.scrub' must be one of "start", "pause", "resume", "cancel"`,
    ],
    ['LaunchRepairOperation', 'node=self', { repairType: 'blockRc' }, undefined],
    ['RetryBlockResync', 'node=self', {}, 'request body must be an object with all or an object with blockHashes'],
    ['PurgeBlocks', 'node=self', { hash: 'x' }, 'request body must be an array of strings'],
    ['PurgeBlocks', 'node=self', undefined, 'request body is required'],
    ['GetNodeInfo', '', undefined, "missing query parameter 'node'"],
    ['DeleteKey', 'id=GK1', { anything: 'goes' }, undefined],
  ]
  for (const [name, query, body, message] of cases) {
    test(`${name} ${query} ${JSON.stringify(body)}: ${message ?? 'accepted'}`, () => {
      const run = () => v.check(name as keyof typeof ADMIN_API, new URLSearchParams(query), body)
      if (message === undefined) return run()
      assert.throws(run, (err: unknown) => {
        assert.ok(err instanceof AdminError)
        assert.equal(err.code, 'InvalidRequest')
        assert.equal(err.status, 400)
        assert.equal(err.message, message)
        return true
      })
    })
  }

  test('field names are JSON pointers made readable', () => {
    assert.equal(fieldName(''), '')
    assert.equal(fieldName('/roles/0/zone'), 'roles[0].zone')
    assert.equal(fieldName('/a~1b/c~0d'), 'a/b.c~d')
  })
})

describe('the OpenAPI document', () => {
  const doc = buildOpenApiDocument() as {
    paths: Record<string, Record<string, { operationId: string; parameters: Array<{ name: string; required: boolean }> }>>
    components: { schemas: Record<string, unknown> }
  }

  test('describes every routed endpoint under /v2/<name> with its method and operation id', () => {
    assert.deepEqual(
      Object.keys(doc.paths).sort(),
      Object.keys(ADMIN_API)
        .map((n) => `/v2/${n}`)
        .sort(),
    )
    for (const [name, ep] of Object.entries(ADMIN_API)) {
      const op = doc.paths[`/v2/${name}`]?.[ep.method.toLowerCase()]
      assert.equal(op?.operationId, name)
      assert.equal(parseAdminRoute(ep.method, `/v2/${name}`).name, name)
      if ('perNode' in ep)
        assert.ok(
          op?.parameters.some((p) => p.name === 'node' && p.required),
          `${name} takes ?node=`,
        )
    }
  })

  test('every $ref resolves and is plain JSON', () => {
    const text = JSON.stringify(doc)
    for (const m of text.matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)) {
      assert.ok(doc.components.schemas[m[1] as string] !== undefined, `${m[1]} is a component`)
    }
    assert.deepEqual(JSON.parse(text), doc)
    assert.ok(!text.includes('patternProperties'), 'records are additionalProperties')
    assert.match(text, /"format":"date-time"/)
  })
})

describe('the response check of the integration tests', () => {
  test('accepts a conforming answer and names the field of a drifted one', () => {
    const ok = { freeform: 'text' }
    assertMatchesContract('GetClusterStatistics', ok)
    assert.throws(() => assertMatchesContract('GetClusterStatistics', { freeform: 3 }), /GetClusterStatistics.*'\/freeform'/)
    assert.throws(() => assertMatchesContract('ListKeys', [{ id: 'GK1', name: 'k' }]), /ListKeys.*'\/0\/created'/)
  })
})

describe('ADMIN_API_ROUTES (what the CLI calls with)', () => {
  test('method, query fields and per-node flag come from the contract', async () => {
    const { ADMIN_API_ROUTES } = await import('../../../lib/index.ts')
    assert.deepEqual(ADMIN_API_ROUTES.GetKeyInfo, {
      method: 'GET',
      perNode: false,
      queryParams: ['id', 'search', 'showSecretKey'],
    })
    assert.deepEqual(ADMIN_API_ROUTES.UpdateBucket, { method: 'POST', perNode: false, queryParams: ['id'] })
    assert.deepEqual(ADMIN_API_ROUTES.InspectObject, { method: 'GET', perNode: false, queryParams: ['bucketId', 'key'] })
    assert.deepEqual(ADMIN_API_ROUTES.ListBlockErrors, { method: 'GET', perNode: true, queryParams: [] })
    assert.deepEqual(ADMIN_API_ROUTES.LaunchRepairOperation, { method: 'POST', perNode: true, queryParams: [] })
    assert.deepEqual(ADMIN_API_ROUTES.CreateBucket, { method: 'POST', perNode: false, queryParams: [] })
    // Every endpoint the router serves has a route, and no other.
    assert.deepEqual(Object.keys(ADMIN_API_ROUTES).sort(), Object.keys(ADMIN_ENDPOINTS).sort())
  })

  test('the plain table (routes.ts, no TypeBox) is exactly what the contract declares', () => {
    assert.deepEqual(Object.keys(ADMIN_API_ROUTES).sort(), Object.keys(ADMIN_API).sort())
    for (const [name, c] of Object.entries(ADMIN_API) as Array<[keyof typeof ADMIN_API, EndpointContract]>) {
      const properties = (c.query as { properties?: Record<string, unknown> } | undefined)?.properties ?? {}
      assert.deepEqual(
        ADMIN_API_ROUTES[name],
        { method: c.method, perNode: c.perNode === true, queryParams: Object.keys(properties).filter((k) => k !== 'node') },
        name,
      )
    }
  })
})
