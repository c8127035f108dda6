/**
 * Static websites: Put/Get/DeleteBucketWebsite through the AWS SDK, and the website endpoint
 * (`[s3_web]`) answering anonymous requests by Host: index and error documents, implicit and
 * explicit redirects, routing rules, HEAD, ranges, conditional requests, methods and CORS.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import {
  CreateBucketCommand,
  DeleteBucketWebsiteCommand,
  GetBucketWebsiteCommand,
  PutBucketCorsCommand,
  PutBucketWebsiteCommand,
  PutObjectCommand,
  type S3Client,
  type WebsiteConfiguration,
} from '@aws-sdk/client-s3'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { type RawResponse, rawRequest, s3Client, s3Error, sendRequest, xmlField } from '../../helpers/s3.ts'

const ROOT = '.web.localhost'
const CONFIG: WebsiteConfiguration = {
  IndexDocument: { Suffix: 'index.html' },
  ErrorDocument: { Key: 'error.html' },
  RoutingRules: [
    { Condition: { KeyPrefixEquals: 'old/' }, Redirect: { ReplaceKeyPrefixWith: 'new/', HttpRedirectCode: '301' } },
    {
      Condition: { KeyPrefixEquals: 'ext/' },
      Redirect: { HostName: 'example.com', Protocol: 'https', ReplaceKeyWith: 'landing', HttpRedirectCode: '307' },
    },
    {
      Condition: { KeyPrefixEquals: 'app/', HttpErrorCodeReturnedEquals: '404' },
      Redirect: { ReplaceKeyWith: 'app/index.html', HttpRedirectCode: '200' },
    },
  ],
}

let node: TestNode
let s3: S3Client

before(async () => {
  node = await startTestNode({ s3_web: { bind_addr: '127.0.0.1:0', root_domain: ROOT }, block_gc_delay_msec: 200 })
  s3 = s3Client(node)
  const files: Array<[string, string]> = [
    ['index.html', '<h1>home</h1>'],
    ['error.html', '<h1>oops</h1>'],
    ['page.html', '<p>a page</p>'],
    ['docs/index.html', '<h1>docs</h1>'],
    ['app/index.html', '<div id="app"></div>'],
    ['app/main.js', 'console.log(1)'],
  ]
  for (const [Key, Body] of files) {
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key, Body, ContentType: 'text/html' }))
  }
  await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'moved', Body: 'moved', WebsiteRedirectLocation: '/page.html' }))
})
after(async () => {
  s3.destroy()
  await node.close()
})

/** An anonymous request to the website endpoint with the given Host. */
async function web(
  path: string,
  options: { method?: string; host?: string; headers?: Record<string, string> } = {},
): Promise<RawResponse> {
  const url = new URL(path, node.webEndpoint)
  const headers = { host: options.host ?? `${node.bucket}${ROOT}:${url.port}`, ...options.headers }
  return sendRequest({ url, method: options.method ?? 'GET', headers, body: new Uint8Array(0) })
}

async function putWebsite(config: WebsiteConfiguration = CONFIG): Promise<void> {
  await s3.send(new PutBucketWebsiteCommand({ Bucket: node.bucket, WebsiteConfiguration: config }))
}

describe('Put/Get/DeleteBucketWebsite', () => {
  test('a bucket without website answers NoSuchWebsiteConfiguration, and is not served', async () => {
    await assert.rejects(
      s3.send(new GetBucketWebsiteCommand({ Bucket: node.bucket })),
      s3Error('NoSuchWebsiteConfiguration', 404),
    )
    const r = await web('/')
    assert.equal(r.status, 404)
    assert.match(String(r.headers['content-type']), /text\/html/)
  })

  test('the configuration is stored and read back', async () => {
    await putWebsite()
    const r = await s3.send(new GetBucketWebsiteCommand({ Bucket: node.bucket }))
    assert.deepEqual(r.IndexDocument, { Suffix: 'index.html' })
    assert.deepEqual(r.ErrorDocument, { Key: 'error.html' })
    assert.equal(r.RoutingRules?.length, 3)
    assert.deepEqual(r.RoutingRules?.[1], CONFIG.RoutingRules?.[1])
    assert.deepEqual(r.RoutingRules?.[2]?.Condition, { KeyPrefixEquals: 'app/', HttpErrorCodeReturnedEquals: '404' })
  })

  test('malformed or invalid configurations are refused and change nothing', async () => {
    await putWebsite()
    const cases: Array<[string, string]> = [
      ['<WebsiteConfiguration><IndexDocument><Suffix>x</Suffix>', 'MalformedXML'],
      ['<WebsiteConfiguration><IndexDocument></IndexDocument></WebsiteConfiguration>', 'MalformedXML'],
      ['<WebsiteConfiguration><IndexDocument><Suffix>a/b</Suffix></IndexDocument></WebsiteConfiguration>', 'InvalidRequest'],
      [
        '<WebsiteConfiguration><RoutingRules><RoutingRule><Redirect><HttpRedirectCode>418</HttpRedirectCode></Redirect></RoutingRule></RoutingRules></WebsiteConfiguration>',
        'InvalidRequest',
      ],
      [
        '<WebsiteConfiguration><RoutingRules><RoutingRule><Condition><HttpErrorCodeReturnedEquals>403</HttpErrorCodeReturnedEquals></Condition><Redirect/></RoutingRule></RoutingRules></WebsiteConfiguration>',
        'InvalidRequest',
      ],
      [
        '<WebsiteConfiguration><RoutingRules><RoutingRule><Condition/></RoutingRule></RoutingRules></WebsiteConfiguration>',
        'MalformedXML',
      ],
    ]
    for (const [body, code] of cases) {
      const r = await rawRequest(node, { method: 'PUT', path: `/${node.bucket}`, query: { website: '' }, body })
      assert.equal(xmlField(r.text, 'Code'), code, body)
    }
    const r = await s3.send(new GetBucketWebsiteCommand({ Bucket: node.bucket }))
    assert.equal(r.RoutingRules?.length, 3, 'unchanged')
  })

  test('RedirectAllRequestsTo is NotImplemented, as in Garage', async () => {
    await assert.rejects(putWebsite({ RedirectAllRequestsTo: { HostName: 'example.com' } }), s3Error('NotImplemented', 501))
  })
})

describe('the website endpoint', () => {
  before(() => putWebsite())

  test('/ and folder paths serve their index document', async () => {
    const home = await web('/')
    assert.equal(home.status, 200)
    assert.equal(home.text, '<h1>home</h1>')
    assert.equal(home.headers['content-type'], 'text/html')
    const docs = await web('/docs/')
    assert.equal(docs.status, 200)
    assert.equal(docs.text, '<h1>docs</h1>')
  })

  test('the Host is the bucket under the root domain, or the whole bucket name', async () => {
    const url = new URL(node.webEndpoint as string)
    assert.equal((await web('/page.html', { host: node.bucket })).text, '<p>a page</p>')
    assert.equal((await web('/page.html', { host: `${node.bucket.toUpperCase()}${ROOT}:${url.port}` })).status, 200)
    const unknown = await web('/page.html', { host: `no-such-site${ROOT}` })
    assert.equal(unknown.status, 404)
  })

  test('a folder without trailing slash redirects (302) to it when its index exists', async () => {
    const r = await web('/docs')
    assert.equal(r.status, 302)
    assert.equal(r.headers.location, '/docs/')
    assert.equal((await web('/nothing-here')).status, 404)
  })

  test('a missing key serves the error document with the original status', async () => {
    const r = await web('/missing.html')
    assert.equal(r.status, 404)
    assert.equal(r.text, '<h1>oops</h1>')
    assert.ok(r.headers['x-garage-error'] !== undefined, 'x-garage-error carries the error')
  })

  test('there is no listing: a folder without index is a 404', async () => {
    const r = await web('/nodir/')
    assert.equal(r.status, 404)
    assert.equal(r.text, '<h1>oops</h1>')
    const listing = await web('/?list-type=2')
    assert.equal(listing.text, '<h1>home</h1>', 'query strings are ignored')
  })

  test('HEAD answers headers only, errors included', async () => {
    const r = await web('/page.html', { method: 'HEAD' })
    assert.equal(r.status, 200)
    assert.equal(r.headers['content-length'], String('<p>a page</p>'.length))
    assert.equal(r.body.length, 0)
    const missing = await web('/missing.html', { method: 'HEAD' })
    assert.equal(missing.status, 404)
    assert.equal(missing.body.length, 0)
  })

  test('ranges and conditional requests go through the S3 GET path', async () => {
    const part = await web('/page.html', { headers: { range: 'bytes=0-2' } })
    assert.equal(part.status, 206)
    assert.equal(part.text, '<p>')
    const etag = (await web('/page.html')).headers.etag as string
    const cached = await web('/page.html', { headers: { 'if-none-match': etag } })
    assert.equal(cached.status, 304)
  })

  test('an object with x-amz-website-redirect-location is a 301 there', async () => {
    const r = await web('/moved')
    assert.equal(r.status, 301)
    assert.equal(r.headers.location, '/page.html')
  })

  test('routing rules: prefix replacement, other host, and rewrite on 404', async () => {
    const old = await web('/old/a%20b.html')
    assert.equal(old.status, 301)
    assert.equal(old.headers.location, '/new/a%20b.html')
    const ext = await web('/ext/anything')
    assert.equal(ext.status, 307)
    assert.equal(ext.headers.location, 'https://example.com/landing')
    const route = await web('/app/some/client/route')
    assert.equal(route.status, 200)
    assert.equal(route.text, '<div id="app"></div>')
    const asset = await web('/app/main.js')
    assert.equal(asset.text, 'console.log(1)', 'an existing key is served as is')
  })

  test('methods other than GET, HEAD and OPTIONS are 405', async () => {
    for (const method of ['PUT', 'POST', 'DELETE']) {
      const r = await web('/page.html', { method })
      assert.equal(r.status, 405, method)
      assert.match(r.text, /MethodNotAllowed/)
    }
    assert.equal((await web('/page.html')).text, '<p>a page</p>', 'nothing changed')
  })

  test('CORS rules apply to website answers and preflights', async () => {
    await s3.send(
      new PutBucketCorsCommand({
        Bucket: node.bucket,
        CORSConfiguration: { CORSRules: [{ AllowedOrigins: ['https://site.example'], AllowedMethods: ['GET'] }] },
      }),
    )
    const r = await web('/page.html', { headers: { origin: 'https://site.example' } })
    assert.equal(r.headers['access-control-allow-origin'], 'https://site.example')
    const ok = await web('/page.html', {
      method: 'OPTIONS',
      headers: { origin: 'https://site.example', 'access-control-request-method': 'GET' },
    })
    assert.equal(ok.status, 200)
    assert.equal(ok.headers['access-control-allow-origin'], 'https://site.example')
    const denied = await web('/page.html', {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' },
    })
    assert.equal(denied.status, 403)
  })

  test('a bucket known only by a local alias is not served', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'local-site' }))
    await s3.send(new PutObjectCommand({ Bucket: 'local-site', Key: 'index.html', Body: 'local' }))
    await s3.send(new PutBucketWebsiteCommand({ Bucket: 'local-site', WebsiteConfiguration: CONFIG }))
    assert.equal((await web('/', { host: `local-site${ROOT}` })).status, 404)
  })

  test('DeleteBucketWebsite stops serving the bucket', async () => {
    await s3.send(new DeleteBucketWebsiteCommand({ Bucket: node.bucket }))
    assert.equal((await web('/')).status, 404)
    await putWebsite()
    assert.equal((await web('/')).status, 200)
  })
})

describe('website endpoint errors', () => {
  test('are HTML, not S3 XML', async () => {
    await putWebsite({ IndexDocument: { Suffix: 'index.html' } })
    const r = await web('/missing.html')
    assert.equal(r.status, 404)
    assert.match(String(r.headers['content-type']), /^text\/html/)
    assert.match(r.text, /<h1>404 Not Found<\/h1>/)
    assert.match(r.text, /NoSuchKey/)
  })
})

test('the S3 API is still served on its own endpoint', async () => {
  const r = await rawRequest(node, { method: 'GET', path: `/${node.bucket}/page.html` })
  assert.equal(r.text, '<p>a page</p>')
})
