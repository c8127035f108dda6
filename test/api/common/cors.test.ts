/** CORS rule matching and answer headers (pure). */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { corsHeadersFor, corsRuleMatches, handleOptionsForBucket } from '../../../lib/api/common/cors.ts'
import { ApiError } from '../../../lib/api/common/errors.ts'
import type { CorsRule } from '../../../lib/model/bucket-table.ts'

const rule = (r: Partial<CorsRule>): CorsRule => ({
  id: null,
  maxAgeSeconds: null,
  allowOrigins: [],
  allowMethods: [],
  allowHeaders: [],
  exposeHeaders: [],
  ...r,
})

test('origins, methods and headers must all be allowed; one * is a wildcard', () => {
  const r = rule({ allowOrigins: ['https://*.example.com'], allowMethods: ['GET'], allowHeaders: ['x-amz-*', 'Content-Type'] })
  const cases: Array<[string, string, string[], boolean]> = [
    ['https://app.example.com', 'GET', [], true],
    ['https://app.example.com', 'GET', ['content-type', 'X-Amz-Date'], true],
    ['https://example.com', 'GET', [], false],
    ['https://app.example.com', 'PUT', [], false],
    ['https://app.example.com', 'GET', ['authorization'], false],
  ]
  for (const [origin, method, headers, expected] of cases) {
    assert.equal(corsRuleMatches(r, origin, method, headers), expected, `${origin} ${method} ${headers.join(',')}`)
  }
  assert.equal(corsRuleMatches(rule({ allowOrigins: ['*'], allowMethods: ['*'] }), 'x', 'PATCH', []), true)
})

test('answer headers echo the origin, or * for a * rule', () => {
  const params = {
    cors: {
      ts: 1,
      v: [
        rule({ allowOrigins: ['https://a.example'], allowMethods: ['GET'], exposeHeaders: ['ETag'], maxAgeSeconds: 5 }),
        rule({ allowOrigins: ['*'], allowMethods: ['GET', 'PUT'] }),
      ],
    },
  }
  const a = corsHeadersFor(params, 'GET', { origin: 'https://a.example' })
  assert.equal(a['access-control-allow-origin'], 'https://a.example')
  assert.equal(a['access-control-allow-credentials'], 'true')
  assert.equal(a['access-control-expose-headers'], 'ETag')
  const b = corsHeadersFor(params, 'PUT', { origin: 'https://b.example' })
  assert.equal(b['access-control-allow-origin'], '*')
  assert.equal(b['access-control-allow-credentials'], undefined)
  assert.deepEqual(corsHeadersFor(params, 'GET', {}), {}, 'no Origin, no headers')
  assert.deepEqual(corsHeadersFor({ cors: { ts: 0, v: null } }, 'GET', { origin: 'x' }), {}, 'no rules, no headers')
})

test('a preflight needs Origin and Access-Control-Request-Method, and a matching rule', () => {
  const params = { cors: { ts: 1, v: [rule({ allowOrigins: ['https://a.example'], allowMethods: ['PUT'], maxAgeSeconds: 60 })] } }
  const ok = handleOptionsForBucket({ origin: 'https://a.example', 'access-control-request-method': 'PUT' }, params)
  assert.equal(ok.status, 200)
  assert.equal(ok.headers?.['access-control-max-age'], '60')
  const code = (f: () => unknown): string | undefined => {
    try {
      f()
      return undefined
    } catch (err) {
      return err instanceof ApiError ? err.code : 'other'
    }
  }
  assert.equal(
    code(() => handleOptionsForBucket({ 'access-control-request-method': 'PUT' }, params)),
    'InvalidRequest',
  )
  assert.equal(
    code(() => handleOptionsForBucket({ origin: 'https://a.example' }, params)),
    'InvalidRequest',
  )
  assert.equal(
    code(() => handleOptionsForBucket({ origin: 'https://a.example', 'access-control-request-method': 'GET' }, params)),
    'AccessDenied',
  )
})
