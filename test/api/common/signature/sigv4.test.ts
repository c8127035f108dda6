import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { describe, test } from 'node:test'
import { SignatureV4 } from '@smithy/signature-v4'
import { Sha256 } from '../../../helpers/smithy-sha256.ts'
import { ApiError } from '../../../../lib/api/common/errors.ts'
import {
  awsUriEncode,
  canonicalHeaders,
  canonicalHeaderValue,
  canonicalQueryString,
  canonicalRequest,
  canonicalUri,
  parseAmzDate,
  type RequestHead,
  SigningKeyCache,
  signingKey,
  stringToSign,
  type VerifyOptions,
  verifyRequest,
} from '../../../../lib/api/common/signature/sigv4.ts'

// The example credentials of the AWS S3 SigV4 documentation.
const AK = 'AKIAIOSFODNN7EXAMPLE'
const SK = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
const DOC_NOW = Date.UTC(2013, 4, 24, 0, 0, 0)

const docOpts: VerifyOptions = {
  region: 'us-east-1',
  service: 's3',
  now: DOC_NOW,
  lookupSecret: (id) => (id === AK ? SK : undefined),
}

function isApiError(code: string, message?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ApiError, `expected ApiError, got ${String(err)}`)
    assert.equal(err.code, code)
    if (message !== undefined) assert.match(err.message, message)
    return true
  }
}

describe('canonicalisation', () => {
  test('awsUriEncode keeps only A-Za-z0-9-_.~ and encodes UTF-8 bytes in uppercase hex', () => {
    assert.equal(awsUriEncode('a b+c%d~e_f-g.h/i'), 'a%20b%2Bc%25d~e_f-g.h%2Fi')
    assert.equal(awsUriEncode('a/b c', false), 'a/b%20c')
    assert.equal(awsUriEncode('é€'), '%C3%A9%E2%82%AC')
    assert.equal(awsUriEncode("!'()*"), '%21%27%28%29%2A')
  })

  test('query parameters are sorted by key then value and re-encoded', () => {
    assert.equal(canonicalQueryString('prefix=J&max-keys=2'), 'max-keys=2&prefix=J')
    assert.equal(canonicalQueryString('b=2&a=3&a=1'), 'a=1&a=3&b=2')
    assert.equal(canonicalQueryString('lifecycle'), 'lifecycle=')
    assert.equal(canonicalQueryString('uploads&'), 'uploads=')
    // '+' means a space in a query, and spaces are signed as %20
    assert.equal(canonicalQueryString('k=a+b'), 'k=a%20b')
    assert.equal(canonicalQueryString('k=a%20b'), 'k=a%20b')
    assert.equal(canonicalQueryString('k=a%2Bb'), 'k=a%2Bb')
    // lowercase escapes, over-escaped unreserved characters and raw ones all give one form
    assert.equal(canonicalQueryString('k=%7e%2f%c3%a9'), 'k=~%2F%C3%A9')
    assert.equal(canonicalQueryString('k=~'), 'k=~')
    assert.equal(canonicalQueryString('k=%zz'), 'k=%25zz')
    assert.equal(canonicalQueryString('k=é'), 'k=%C3%A9')
    // the presigned signature is excluded, whatever its case
    assert.equal(canonicalQueryString('X-Amz-Signature=abc&x=1', ['X-Amz-Signature']), 'x=1')
  })

  test('S3 signs the path as received; K2V encodes it once more', () => {
    assert.equal(canonicalUri('/bucket/my%20key', 's3'), '/bucket/my%20key')
    assert.equal(canonicalUri('', 's3'), '/')
    assert.equal(canonicalUri('/bucket/my%20key', 'k2v'), '/bucket/my%2520key')
    assert.equal(canonicalUri('/bucket/a~b', 'k2v'), '/bucket/a~b')
  })

  test('header values are trimmed, inner whitespace collapsed, repeats joined with ","', () => {
    assert.equal(canonicalHeaderValue('  a   b  c '), 'a b c')
    assert.equal(canonicalHeaderValue(['a', ' b ']), 'a,b')
    const headers: IncomingHttpHeaders = { host: 'h', 'x-amz-meta-a': '  x  y ' }
    assert.equal(canonicalHeaders(headers, ['host', 'x-amz-meta-a']), 'host:h\nx-amz-meta-a:x y\n')
    assert.throws(() => canonicalHeaders(headers, ['host', 'range']), isApiError('SignatureDoesNotMatch', /range/))
  })

  test('x-amz-date parsing rejects impossible dates', () => {
    assert.equal(parseAmzDate('20130524T000000Z'), DOC_NOW)
    assert.equal(parseAmzDate('20130230T000000Z'), undefined)
    assert.equal(parseAmzDate('2013-05-24T00:00:00Z'), undefined)
    // Asked again (the last answer is remembered), the answers stay the same.
    assert.equal(parseAmzDate('2013-05-24T00:00:00Z'), undefined)
    assert.equal(parseAmzDate('20130524T000000Z'), DOC_NOW)
    assert.equal(parseAmzDate('20130524T000000Z'), DOC_NOW)
  })
})

describe('AWS documented examples (sig-v4-header-based-auth)', () => {
  test('signing key derivation', () => {
    // From the AWS SigV4 documentation ("Deriving the signing key"; that example's secret has a '+')
    const key = signingKey('wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', '20120215', 'us-east-1', 'iam')
    assert.equal(key.toString('hex'), 'f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d')
  })

  test('GET /test.txt with a Range header: canonical request, string to sign and signature', () => {
    const headers: IncomingHttpHeaders = {
      host: 'examplebucket.s3.amazonaws.com',
      range: 'bytes=0-9',
      'x-amz-content-sha256': EMPTY,
      'x-amz-date': '20130524T000000Z',
    }
    const signed = ['host', 'range', 'x-amz-content-sha256', 'x-amz-date']
    const creq = canonicalRequest(
      'GET',
      canonicalUri('/test.txt', 's3'),
      canonicalQueryString(''),
      canonicalHeaders(headers, signed),
      signed,
      EMPTY,
    )
    assert.equal(
      creq,
      [
        'GET',
        '/test.txt',
        '',
        'host:examplebucket.s3.amazonaws.com',
        'range:bytes=0-9',
        `x-amz-content-sha256:${EMPTY}`,
        'x-amz-date:20130524T000000Z',
        '',
        'host;range;x-amz-content-sha256;x-amz-date',
        EMPTY,
      ].join('\n'),
    )
    const sts = stringToSign('20130524T000000Z', '20130524/us-east-1/s3/aws4_request', creq)
    assert.equal(
      sts,
      'AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972',
    )
    const signature = 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41'
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${AK}/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=${signature}`
    const auth = verifyRequest({ method: 'GET', rawPath: '/test.txt', rawQuery: '', headers }, docOpts)
    assert.ok(auth)
    assert.equal(auth.accessKeyId, AK)
    assert.equal(auth.seedSignature, signature)
    assert.equal(auth.scope, '20130524/us-east-1/s3/aws4_request')
    assert.equal(auth.datetime, '20130524T000000Z')
    assert.equal(auth.contentSha256, EMPTY)
    assert.equal(auth.presigned, false)
    assert.deepEqual(auth.signingKey, signingKey(SK, '20130524', 'us-east-1', 's3'))

    // SignedHeaders out of order, repeated or in upper case name the same sorted set.
    for (const list of ['x-amz-date;Host;range;x-amz-content-sha256', 'host;range;range;x-amz-content-sha256;x-amz-date']) {
      headers.authorization = `AWS4-HMAC-SHA256 Credential=${AK}/20130524/us-east-1/s3/aws4_request,SignedHeaders=${list},Signature=${signature}`
      assert.equal(verifyRequest({ method: 'GET', rawPath: '/test.txt', rawQuery: '', headers }, docOpts)?.accessKeyId, AK)
    }
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${AK}/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;;range,Signature=${signature}`
    assert.throws(
      () => verifyRequest({ method: 'GET', rawPath: '/test.txt', rawQuery: '', headers }, docOpts),
      isApiError('AuthorizationHeaderMalformed', /SignedHeaders/),
    )
  })

  test('PUT /test$file.text with Date, x-amz-storage-class and a body hash', () => {
    const headers: IncomingHttpHeaders = {
      host: 'examplebucket.s3.amazonaws.com',
      date: 'Fri, 24 May 2013 00:00:00 GMT',
      'x-amz-date': '20130524T000000Z',
      'x-amz-storage-class': 'REDUCED_REDUNDANCY',
      'x-amz-content-sha256': '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072',
      authorization: `AWS4-HMAC-SHA256 Credential=${AK}/20130524/us-east-1/s3/aws4_request,SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd`,
    }
    const auth = verifyRequest({ method: 'PUT', rawPath: '/test%24file.text', rawQuery: '', headers }, docOpts)
    assert.equal(auth?.contentSha256, '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072')
  })

  test('GET ?lifecycle and GET ?max-keys=2&prefix=J', () => {
    const base = { host: 'examplebucket.s3.amazonaws.com', 'x-amz-date': '20130524T000000Z', 'x-amz-content-sha256': EMPTY }
    const auth = (sig: string) =>
      `AWS4-HMAC-SHA256 Credential=${AK}/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=${sig}`
    assert.ok(
      verifyRequest(
        {
          method: 'GET',
          rawPath: '/',
          rawQuery: 'lifecycle',
          headers: { ...base, authorization: auth('fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543') },
        },
        docOpts,
      ),
    )
    assert.ok(
      verifyRequest(
        {
          method: 'GET',
          rawPath: '/',
          rawQuery: 'max-keys=2&prefix=J',
          headers: { ...base, authorization: auth('34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7') },
        },
        docOpts,
      ),
    )
  })

  test('presigned GET /test.txt (sigv4-query-string-auth)', () => {
    const rawQuery =
      'X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404'
    const head: RequestHead = {
      method: 'GET',
      rawPath: '/test.txt',
      rawQuery,
      headers: { host: 'examplebucket.s3.amazonaws.com' },
    }
    const auth = verifyRequest(head, docOpts)
    assert.ok(auth)
    assert.equal(auth.presigned, true)
    assert.equal(auth.contentSha256, 'UNSIGNED-PAYLOAD')
    // still valid a second before expiry, expired a second after
    assert.ok(verifyRequest(head, { ...docOpts, now: DOC_NOW + 86400_000 - 1000 }))
    assert.throws(
      () => verifyRequest(head, { ...docOpts, now: DOC_NOW + 86400_000 + 1000 }),
      isApiError('AccessDenied', /Request has expired/),
    )
    // a presigned request ignores an unrelated Authorization header added by a browser
    assert.ok(verifyRequest({ ...head, headers: { ...head.headers, authorization: 'Basic Zm9vOmJhcg==' } }, docOpts))
  })
})

// ---------------------------------------------------------------------------------------------
// Requests signed by the AWS SDK's own signer

const KEY_ID = 'GK31c2f218a2e44f485b94239e'
const SECRET = 'b892c0665f0ada8a4755dae98baa3b133590e11dae3bcc1f9d3bf8a2a6c05d89'
const NOW = Date.UTC(2025, 5, 1, 12, 0, 0)
const garageOpts: VerifyOptions = {
  region: 'garage',
  service: 's3',
  now: NOW,
  lookupSecret: (id) => (id === KEY_ID ? SECRET : undefined),
}

function smithySigner(service = 's3', region = 'garage'): SignatureV4 {
  return new SignatureV4({
    credentials: { accessKeyId: KEY_ID, secretAccessKey: SECRET },
    region,
    service,
    sha256: Sha256,
    uriEscapePath: service !== 's3',
  })
}

/** How the SDK's HTTP handler writes a query (@smithy/querystring-builder). */
function buildQuery(query: Record<string, string | string[] | null>): string {
  const esc = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  const parts: string[] = []
  for (const [k, v] of Object.entries(query)) {
    if (v === null) parts.push(esc(k))
    else for (const one of Array.isArray(v) ? v : [v]) parts.push(`${esc(k)}=${esc(one)}`)
  }
  return parts.join('&')
}

interface PlainRequest {
  method: string
  protocol: string
  hostname: string
  path: string
  query: Record<string, string | string[] | null>
  headers: Record<string, string>
}

function toHead(req: PlainRequest): RequestHead {
  const headers: IncomingHttpHeaders = {}
  for (const [k, v] of Object.entries(req.headers)) headers[k.toLowerCase()] = v
  return { method: req.method, rawPath: req.path, rawQuery: buildQuery(req.query), headers }
}

function baseRequest(over: Partial<PlainRequest> = {}): PlainRequest {
  return {
    method: 'PUT',
    protocol: 'http:',
    hostname: 'localhost',
    path: '/my-bucket/dir/my%20file%2B%C3%A9~.txt',
    query: { partNumber: '1', uploadId: 'abc def', 'list-type': '2', prefix: 'a+b/c~d é', marker: '' },
    headers: {
      host: 'localhost:3900',
      'content-type': 'text/plain',
      'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
      'x-amz-meta-note': '  spaced    value ',
    },
    ...over,
  }
}

async function signed(req: PlainRequest, signer = smithySigner()): Promise<PlainRequest> {
  return (await signer.sign(req, { signingDate: new Date(NOW) })) as unknown as PlainRequest
}

describe('requests signed by @smithy/signature-v4', () => {
  test('a signed S3 request verifies', async () => {
    const req = await signed(baseRequest())
    const auth = verifyRequest(toHead(req), garageOpts)
    assert.ok(auth)
    assert.equal(auth.accessKeyId, KEY_ID)
    assert.equal(auth.contentSha256, 'UNSIGNED-PAYLOAD')
    assert.equal(auth.scope, '20250601/garage/s3/aws4_request')
    assert.equal(auth.datetime, '20250601T120000Z')
  })

  test('a signed K2V request verifies (path encoded twice)', async () => {
    const req = await signed(baseRequest({ path: '/my-bucket/part%20key' }), smithySigner('k2v'))
    assert.ok(verifyRequest(toHead(req), { ...garageOpts, service: 'k2v' }))
  })

  test('anonymous requests return undefined', () => {
    assert.equal(verifyRequest(toHead(baseRequest()), garageOpts), undefined)
  })

  test('tampering with a header, the path, the query or the method fails with SignatureDoesNotMatch', async () => {
    const head = toHead(await signed(baseRequest()))
    const bad = isApiError('SignatureDoesNotMatch')
    assert.throws(() => verifyRequest({ ...head, headers: { ...head.headers, 'x-amz-meta-note': 'other' } }, garageOpts), bad)
    assert.throws(() => verifyRequest({ ...head, headers: { ...head.headers, host: 'evil:3900' } }, garageOpts), bad)
    assert.throws(() => verifyRequest({ ...head, rawPath: '/my-bucket/dir/other.txt' }, garageOpts), bad)
    assert.throws(() => verifyRequest({ ...head, rawQuery: `${head.rawQuery}&x-id=1` }, garageOpts), bad)
    assert.throws(
      () => verifyRequest({ ...head, rawQuery: head.rawQuery.replace('partNumber=1', 'partNumber=2') }, garageOpts),
      bad,
    )
    assert.throws(() => verifyRequest({ ...head, method: 'DELETE' }, garageOpts), bad)
    // the wrong secret
    assert.throws(() => verifyRequest(head, { ...garageOpts, lookupSecret: () => 'x'.repeat(64) }), bad)
    // a flipped signature character
    const authz = head.headers.authorization as string
    const flipped = authz.slice(0, -1) + (authz.endsWith('0') ? '1' : '0')
    assert.throws(() => verifyRequest({ ...head, headers: { ...head.headers, authorization: flipped } }, garageOpts), bad)
  })

  test('an unsigned content-type is accepted (MinIO client), an unsigned x-amz-* header is not', async () => {
    const req = await signed(baseRequest(), smithySigner())
    const head = toHead(req)
    // smithy signs content-type; drop it from SignedHeaders by re-signing without it
    const noCt = await smithySigner().sign(baseRequest(), {
      signingDate: new Date(NOW),
      unsignableHeaders: new Set(['content-type']),
    })
    const headNoCt = toHead(noCt as unknown as PlainRequest)
    assert.doesNotMatch(headNoCt.headers.authorization as string, /content-type/)
    assert.ok(verifyRequest({ ...headNoCt, headers: { ...headNoCt.headers, 'content-type': 'application/other' } }, garageOpts))
    assert.throws(
      () => verifyRequest({ ...head, headers: { ...head.headers, 'x-amz-acl': 'public-read' } }, garageOpts),
      isApiError('AccessDenied', /x-amz-acl/),
    )
  })

  test('the wrong region is AuthorizationHeaderMalformed naming the expected one', async () => {
    const head = toHead(await signed(baseRequest(), smithySigner('s3', 'us-east-1')))
    assert.throws(
      () => verifyRequest(head, garageOpts),
      (err: unknown) => {
        assert.ok(err instanceof ApiError)
        assert.equal(err.code, 'AuthorizationHeaderMalformed')
        assert.match(err.message, /the region 'us-east-1' is wrong; expecting 'garage'/)
        assert.equal(err.extra.Region, 'garage')
        return true
      },
    )
  })

  test('the wrong service is AuthorizationHeaderMalformed', async () => {
    const head = toHead(await signed(baseRequest(), smithySigner('k2v')))
    assert.throws(() => verifyRequest(head, garageOpts), isApiError('AuthorizationHeaderMalformed', /service/))
  })

  test('an unknown access key is InvalidAccessKeyId', async () => {
    const head = toHead(await signed(baseRequest()))
    assert.throws(() => verifyRequest(head, { ...garageOpts, lookupSecret: () => undefined }), isApiError('InvalidAccessKeyId'))
  })

  test('clock skew above 15 minutes either way is RequestTimeTooSkewed', async () => {
    const head = toHead(await signed(baseRequest()))
    assert.ok(verifyRequest(head, { ...garageOpts, now: NOW + 14 * 60_000 }))
    assert.ok(verifyRequest(head, { ...garageOpts, now: NOW - 14 * 60_000 }))
    assert.throws(() => verifyRequest(head, { ...garageOpts, now: NOW + 16 * 60_000 }), isApiError('RequestTimeTooSkewed'))
    assert.throws(() => verifyRequest(head, { ...garageOpts, now: NOW - 16 * 60_000 }), isApiError('RequestTimeTooSkewed'))
  })

  test('missing x-amz-content-sha256 or date, bad Authorization forms', async () => {
    const head = toHead(await signed(baseRequest()))
    const without = (name: string) => {
      const h = { ...head.headers }
      delete h[name]
      return { ...head, headers: h }
    }
    assert.throws(
      () => verifyRequest(without('x-amz-content-sha256'), garageOpts),
      isApiError('InvalidRequest', /x-amz-content-sha256/),
    )
    assert.throws(() => verifyRequest(without('x-amz-date'), garageOpts), isApiError('AccessDenied', /Date/))
    const withAuth = (authorization: string) => ({ ...head, headers: { ...head.headers, authorization } })
    // Schemes other than AWS4-*: "Unsupported Authorization Type" (V2 is dispatched before this).
    assert.throws(() => verifyRequest(withAuth('AWS AKID:c2ln'), garageOpts), isApiError('InvalidArgument', /Unsupported/))
    assert.throws(() => verifyRequest(withAuth('Bearer token'), garageOpts), isApiError('InvalidArgument', /Unsupported/))
    assert.throws(
      () => verifyRequest(withAuth('AWS4-ECDSA-P256-SHA256 Credential=x'), garageOpts),
      isApiError('InvalidRequest', /AWS4-HMAC-SHA256/),
    )
    // An empty header carries no credential: the request is anonymous.
    assert.equal(verifyRequest(withAuth('  '), garageOpts), undefined)
    assert.throws(
      () => verifyRequest(withAuth('AWS4-HMAC-SHA256 Credential=x'), garageOpts),
      isApiError('AuthorizationHeaderMalformed'),
    )
    assert.throws(
      () =>
        verifyRequest(
          withAuth(`AWS4-HMAC-SHA256 Credential=${KEY_ID}/20250601/garage/s3/aws4_request,SignedHeaders=x-amz-date,Signature=00`),
          garageOpts,
        ),
      isApiError('AuthorizationHeaderMalformed', /host/),
    )
    const badSha = { ...head, headers: { ...head.headers, 'x-amz-content-sha256': 'nope' } }
    assert.throws(() => verifyRequest(badSha, garageOpts), isApiError('InvalidArgument'))
  })

  test('a request signed with a body hash returns it', async () => {
    const body = Buffer.from('hello world')
    const req = baseRequest()
    req.headers['x-amz-content-sha256'] = createHash('sha256').update(body).digest('hex')
    const auth = verifyRequest(toHead(await signed(req)), garageOpts)
    assert.equal(auth?.contentSha256, createHash('sha256').update(body).digest('hex'))
  })
})

describe('presigned URLs from @smithy/signature-v4', () => {
  async function presigned(expiresIn: number, req = baseRequest({ method: 'GET' })): Promise<RequestHead> {
    // As @aws-sdk/s3-request-presigner does: the payload is UNSIGNED-PAYLOAD, not sent in the URL
    req.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD'
    const out = (await smithySigner().presign(req, {
      signingDate: new Date(NOW),
      expiresIn,
      unhoistableHeaders: new Set(['x-amz-content-sha256']),
      unsignableHeaders: new Set(['x-amz-content-sha256']),
    })) as unknown as PlainRequest
    delete out.headers['x-amz-content-sha256']
    delete out.headers['x-amz-meta-note']
    return toHead(out)
  }

  test('verifies, including with extra query parameters signed', async () => {
    const head = await presigned(3600, baseRequest({ method: 'GET', headers: { host: 'localhost:3900' } }))
    assert.match(head.rawQuery, /X-Amz-Signature=/)
    const auth = verifyRequest(head, garageOpts)
    assert.ok(auth)
    assert.equal(auth.presigned, true)
    assert.equal(auth.contentSha256, 'UNSIGNED-PAYLOAD')
    assert.equal(auth.seedSignature.length, 64)
  })

  test('an x-amz-content-sha256 hoisted into the query is the payload hash', async () => {
    const req = baseRequest({ method: 'PUT', headers: { host: 'localhost:3900', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } })
    const out = (await smithySigner().presign(req, { signingDate: new Date(NOW), expiresIn: 60 })) as unknown as PlainRequest
    const head = toHead(out)
    assert.match(head.rawQuery, /x-amz-content-sha256=UNSIGNED-PAYLOAD/)
    assert.equal(verifyRequest(head, garageOpts)?.contentSha256, 'UNSIGNED-PAYLOAD')
  })

  test('expiry, not-yet-valid and the X-Amz-Expires range', async () => {
    const head = await presigned(60, baseRequest({ method: 'GET', headers: { host: 'localhost:3900' } }))
    assert.ok(verifyRequest(head, { ...garageOpts, now: NOW + 59_000 }))
    assert.throws(
      () => verifyRequest(head, { ...garageOpts, now: NOW + 61_000 }),
      isApiError('AccessDenied', /Request has expired/),
    )
    assert.throws(
      () => verifyRequest(head, { ...garageOpts, now: NOW - 16 * 60_000 }),
      isApiError('AccessDenied', /not valid yet/),
    )
    const tooLong = { ...head, rawQuery: head.rawQuery.replace('X-Amz-Expires=60', 'X-Amz-Expires=604801') }
    assert.throws(() => verifyRequest(tooLong, garageOpts), isApiError('AuthorizationHeaderMalformed', /X-Amz-Expires/))
    const zero = { ...head, rawQuery: head.rawQuery.replace('X-Amz-Expires=60', 'X-Amz-Expires=0') }
    assert.throws(() => verifyRequest(zero, garageOpts), isApiError('AuthorizationHeaderMalformed', /X-Amz-Expires/))
    // a longer, still valid, expiry is not what was signed
    const longer = { ...head, rawQuery: head.rawQuery.replace('X-Amz-Expires=60', 'X-Amz-Expires=600') }
    assert.throws(() => verifyRequest(longer, garageOpts), isApiError('SignatureDoesNotMatch'))
  })

  test('tampered query and missing parameters', async () => {
    const head = await presigned(3600, baseRequest({ method: 'GET', headers: { host: 'localhost:3900' } }))
    assert.throws(
      () => verifyRequest({ ...head, rawQuery: head.rawQuery.replace('partNumber=1', 'partNumber=9') }, garageOpts),
      isApiError('SignatureDoesNotMatch'),
    )
    const noSig = head.rawQuery.replace(/&?X-Amz-Signature=[0-9a-f]+/, '')
    assert.throws(() => verifyRequest({ ...head, rawQuery: noSig }, garageOpts), isApiError('AuthorizationHeaderMalformed'))
  })
})

describe('SigningKeyCache', () => {
  const headers = (): IncomingHttpHeaders => ({
    host: 'examplebucket.s3.amazonaws.com',
    range: 'bytes=0-9',
    'x-amz-content-sha256': EMPTY,
    'x-amz-date': '20130524T000000Z',
    authorization: `AWS4-HMAC-SHA256 Credential=${AK}/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41`,
  })
  const head = (): RequestHead => ({ method: 'GET', rawPath: '/test.txt', rawQuery: '', headers: headers() })

  test('gives the derived key, once per (secret, date, region, service)', () => {
    const cache = new SigningKeyCache()
    const k = cache.get(SK, '20130524', 'us-east-1', 's3')
    assert.deepEqual(k, signingKey(SK, '20130524', 'us-east-1', 's3'))
    assert.equal(cache.get(SK, '20130524', 'us-east-1', 's3'), k, 'the same Buffer the second time')
    assert.equal(cache.size, 1)
    for (const [secret, date, region, service] of [
      [`${SK}x`, '20130524', 'us-east-1', 's3'],
      [SK, '20130525', 'us-east-1', 's3'],
      [SK, '20130524', 'eu-west-1', 's3'],
      [SK, '20130524', 'us-east-1', 'k2v'],
    ] as const) {
      assert.deepEqual(cache.get(secret, date, region, service), signingKey(secret, date, region, service))
    }
    assert.equal(cache.size, 5)
  })

  test('is bounded: the oldest entry leaves first', () => {
    const cache = new SigningKeyCache(2)
    cache.get('a', '20130524', 'r', 's3')
    cache.get('b', '20130524', 'r', 's3')
    cache.get('c', '20130524', 'r', 's3')
    assert.equal(cache.size, 2)
    assert.deepEqual(cache.get('a', '20130524', 'r', 's3'), signingKey('a', '20130524', 'r', 's3'))
    assert.equal(cache.size, 2)
  })

  test('verifyRequest with a cache accepts what it accepts without, and refuses a changed or deleted secret', () => {
    const cache = new SigningKeyCache()
    let secret: string | undefined = SK
    const opts: VerifyOptions = { ...docOpts, lookupSecret: (id) => (id === AK ? secret : undefined), signingKeys: cache }
    assert.equal(verifyRequest(head(), opts)?.accessKeyId, AK)
    assert.equal(verifyRequest(head(), opts)?.accessKeyId, AK, 'again, from the cache')
    assert.equal(cache.size, 1)
    secret = `${SK}-rotated`
    assert.throws(() => verifyRequest(head(), opts), isApiError('SignatureDoesNotMatch'))
    secret = undefined
    assert.throws(() => verifyRequest(head(), opts), isApiError('InvalidAccessKeyId'))
  })
})
