/** Website path routing (pure): index documents, implicit redirects and routing rules. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { WebsiteConfig } from '../../lib/model/bucket-table.ts'
import { routeWebRequest } from '../../lib/web/web-server.ts'

const site = (routingRules: WebsiteConfig['routingRules'] = []): WebsiteConfig => ({
  indexDocument: 'index.html',
  errorDocument: null,
  routingRules,
})
const redirect = (r: Partial<WebsiteConfig['routingRules'][number]['redirect']>) => ({
  hostname: null,
  protocol: null,
  httpCode: 302,
  replaceKeyPrefix: null,
  replaceKey: null,
  ...r,
})

test('paths map to keys as Garage does (path_to_keys)', () => {
  assert.deepEqual(routeWebRequest('/', site()), { t: 'load', key: 'index.html' })
  assert.deepEqual(routeWebRequest('/%20t/', site()), { t: 'load', key: ' t/index.html' })
  assert.deepEqual(routeWebRequest('/file%20.jpg', site()), {
    t: 'load',
    key: 'file .jpg',
    implicitRedirect: { ifExists: 'file .jpg/index.html', location: '/file%20.jpg/' },
  })
  assert.throws(() => routeWebRequest('relative', site()), /must start with a \//)
  assert.throws(() => routeWebRequest('/%ff', site()), /percent-encoded/)
})

test('routing rules: the first matching prefix decides; 404 conditions wait for the lookup', () => {
  const rules: WebsiteConfig['routingRules'] = [
    {
      condition: { keyPrefix: 'docs/', httpErrorCode: null },
      redirect: redirect({ replaceKeyPrefix: 'documents/', httpCode: 301 }),
    },
    { condition: { keyPrefix: 'spa/', httpErrorCode: 404 }, redirect: redirect({ replaceKey: 'spa/', httpCode: 200 }) },
    { condition: null, redirect: redirect({ hostname: 'other.example', httpCode: 308 }) },
  ]
  assert.deepEqual(routeWebRequest('/docs/a b', site(rules)), { t: 'redirect', code: 301, location: '/documents/a%20b' })
  const spa = routeWebRequest('/spa/x', site(rules))
  assert.equal(spa.t, 'load')
  assert.deepEqual(spa.t === 'load' ? spa.onNotFound : undefined, { t: 'rewrite', code: 200, key: 'spa/index.html' })
  assert.deepEqual(routeWebRequest('/else', site(rules), 'https'), {
    t: 'redirect',
    code: 308,
    location: 'https://other.example/else',
  })
})
