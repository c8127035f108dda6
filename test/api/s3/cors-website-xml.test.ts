/** PutBucketCors / PutBucketWebsite bodies: parsing, validation and round trips (pure). */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseCorsConfiguration, renderCorsConfiguration } from '../../../lib/api/s3/cors.ts'
import { parseWebsiteConfiguration, renderWebsiteConfiguration } from '../../../lib/api/s3/website.ts'

const code = (f: () => unknown): string | undefined => {
  try {
    f()
    return undefined
  } catch (err) {
    return (err as { code?: string }).code
  }
}

test('a CORS configuration round-trips', () => {
  const xml = `<?xml version="1.0" encoding="UTF-8"?>
<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
 <CORSRule>
   <AllowedOrigin>http://www.example.com</AllowedOrigin>
   <AllowedMethod>PUT</AllowedMethod>
   <AllowedMethod>POST</AllowedMethod>
   <AllowedHeader>*</AllowedHeader>
 </CORSRule>
 <CORSRule>
   <ID>rule2</ID>
   <MaxAgeSeconds>12345</MaxAgeSeconds>
   <AllowedOrigin>*</AllowedOrigin>
   <AllowedMethod>GET</AllowedMethod>
   <ExposeHeader>ETag</ExposeHeader>
 </CORSRule>
</CORSConfiguration>`
  const rules = parseCorsConfiguration(xml)
  assert.deepEqual(rules[1], {
    id: 'rule2',
    maxAgeSeconds: 12345,
    allowOrigins: ['*'],
    allowMethods: ['GET'],
    allowHeaders: [],
    exposeHeaders: ['ETag'],
  })
  assert.deepEqual(parseCorsConfiguration(renderCorsConfiguration(rules)), rules)
  assert.equal(
    code(() => parseCorsConfiguration('<CORSConfiguration><CORSRule>')),
    'MalformedXML',
  )
  assert.equal(
    code(() =>
      parseCorsConfiguration(
        '<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod><MaxAgeSeconds>-1</MaxAgeSeconds></CORSRule></CORSConfiguration>',
      ),
    ),
    'InvalidRequest',
  )
})

test('a website configuration round-trips, with Garage defaults', () => {
  const xml = `<WebsiteConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
   <ErrorDocument><Key>my-error-doc</Key></ErrorDocument>
   <RoutingRules>
      <RoutingRule>
         <Condition><HttpErrorCodeReturnedEquals>404</HttpErrorCodeReturnedEquals><KeyPrefixEquals>prefix1</KeyPrefixEquals></Condition>
         <Redirect><HostName>gara.ge</HostName><Protocol>http</Protocol><HttpRedirectCode>303</HttpRedirectCode><ReplaceKeyPrefixWith>prefix2</ReplaceKeyPrefixWith></Redirect>
      </RoutingRule>
      <RoutingRule>
         <Condition><KeyPrefixEquals></KeyPrefixEquals></Condition>
         <Redirect><ReplaceKeyWith>missing</ReplaceKeyWith></Redirect>
      </RoutingRule>
   </RoutingRules>
</WebsiteConfiguration>`
  const w = parseWebsiteConfiguration(xml)
  assert.equal(w.indexDocument, 'index.html', 'default index')
  assert.equal(w.errorDocument, 'my-error-doc')
  assert.deepEqual(w.routingRules[0]?.condition, { keyPrefix: 'prefix1', httpErrorCode: 404 })
  assert.equal(w.routingRules[0]?.redirect.httpCode, 303)
  assert.deepEqual(w.routingRules[1]?.condition, { keyPrefix: '', httpErrorCode: null })
  assert.equal(w.routingRules[1]?.redirect.httpCode, 302, 'Garage defaults to 302')
  assert.deepEqual(parseWebsiteConfiguration(renderWebsiteConfiguration(w)), w)
  assert.equal(
    code(() =>
      parseWebsiteConfiguration(
        '<WebsiteConfiguration><RoutingRules><RoutingRule><Redirect><ReplaceKeyWith>a</ReplaceKeyWith><ReplaceKeyPrefixWith>b</ReplaceKeyPrefixWith></Redirect></RoutingRule></RoutingRules></WebsiteConfiguration>',
      ),
    ),
    'InvalidRequest',
  )
  assert.equal(
    code(() =>
      parseWebsiteConfiguration(
        '<WebsiteConfiguration><RedirectAllRequestsTo><HostName>x</HostName></RedirectAllRequestsTo></WebsiteConfiguration>',
      ),
    ),
    'NotImplemented',
  )
})
