import assert from 'node:assert/strict'
import type { IncomingHttpHeaders } from 'node:http'
import { describe, test } from 'node:test'
import { ApiError } from '../../../../lib/api/common/errors.ts'
import {
  canonicalAmzHeaders,
  canonicalResourceV2,
  isSignatureV2,
  type RequestHeadV2,
  verifyRequestV2,
} from '../../../../lib/api/common/signature/sigv2.ts'
import { parseQuery } from '../../../../lib/api/common/signature/sigv4.ts'
import { v2Signature, v2StringToSign } from '../../../helpers/sigv2.ts'

// The example credentials of AWS's "Signing and Authenticating REST Requests" (Signature V2).
const AK = 'AKIAIOSFODNN7EXAMPLE'
const SK = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'
const lookupSecret = (id: string) => (id === AK ? SK : undefined)

function isApiError(code: string, message?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ApiError, `expected ApiError, got ${String(err)}`)
    assert.equal(err.code, code)
    if (message !== undefined) assert.match(err.message, message)
    return true
  }
}

/**
 * AWS's worked examples: the request, the StringToSign the page prints and the signature it
 * gives. `virtualHostBucket` is the bucket the Host header names.
 */
const EXAMPLES: {
  name: string
  head: RequestHeadV2
  stringToSign: string
  signature: string
}[] = [
  {
    name: 'Object GET',
    head: {
      method: 'GET',
      rawPath: '/photos/puppy.jpg',
      rawQuery: '',
      headers: { host: 'johnsmith.s3.amazonaws.com', date: 'Tue, 27 Mar 2007 19:36:42 +0000' },
      virtualHostBucket: 'johnsmith',
    },
    stringToSign: 'GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/johnsmith/photos/puppy.jpg',
    signature: 'bWq2s1WEIj+Ydj0vQ697zp+IXMU=',
  },
  {
    name: 'Object PUT',
    head: {
      method: 'PUT',
      rawPath: '/photos/puppy.jpg',
      rawQuery: '',
      headers: {
        host: 'johnsmith.s3.amazonaws.com',
        'content-type': 'image/jpeg',
        'content-length': '94328',
        date: 'Tue, 27 Mar 2007 21:15:45 +0000',
      },
      virtualHostBucket: 'johnsmith',
    },
    stringToSign: 'PUT\n\nimage/jpeg\nTue, 27 Mar 2007 21:15:45 +0000\n/johnsmith/photos/puppy.jpg',
    signature: 'MyyxeRY7whkBe+bq8fHCL/2kKUg=',
  },
  {
    name: 'List',
    head: {
      method: 'GET',
      rawPath: '/',
      rawQuery: 'prefix=photos&max-keys=50&marker=puppy',
      headers: {
        host: 'johnsmith.s3.amazonaws.com',
        'user-agent': 'Mozilla/5.0',
        date: 'Tue, 27 Mar 2007 19:42:41 +0000',
      },
      virtualHostBucket: 'johnsmith',
    },
    stringToSign: 'GET\n\n\nTue, 27 Mar 2007 19:42:41 +0000\n/johnsmith/',
    signature: 'htDYFYduRNen8P9ZfE/s9SuKy0U=',
  },
  {
    name: 'Fetch (?acl)',
    head: {
      method: 'GET',
      rawPath: '/',
      rawQuery: 'acl',
      headers: { host: 'johnsmith.s3.amazonaws.com', date: 'Tue, 27 Mar 2007 19:44:46 +0000' },
      virtualHostBucket: 'johnsmith',
    },
    stringToSign: 'GET\n\n\nTue, 27 Mar 2007 19:44:46 +0000\n/johnsmith/?acl',
    signature: 'c2WLPFtWHVgbEmeEG93a4cG37dM=',
  },
  {
    name: 'Delete (path style, x-amz-date given)',
    head: {
      method: 'DELETE',
      rawPath: '/johnsmith/photos/puppy.jpg',
      rawQuery: '',
      headers: {
        host: 's3.amazonaws.com',
        date: 'Tue, 27 Mar 2007 21:20:27 +0000',
        'x-amz-date': 'Tue, 27 Mar 2007 21:20:26 +0000',
      },
    },
    // The page's example puts the x-amz-date value on the Date line and leaves it out of the amz headers.
    stringToSign: 'DELETE\n\n\nTue, 27 Mar 2007 21:20:26 +0000\n/johnsmith/photos/puppy.jpg',
    signature: 'lx3byBScXR6KzyMaifNkardMwNk=',
  },
  {
    name: 'Upload (CNAME host, repeated and folded amz headers)',
    head: {
      method: 'PUT',
      rawPath: '/db-backup.dat.gz',
      rawQuery: '',
      headers: {
        host: 'static.johnsmith.net:8080',
        'user-agent': 'curl/7.15.5',
        'x-amz-date': 'Tue, 27 Mar 2007 21:06:08 +0000',
        'x-amz-acl': 'public-read',
        'content-type': 'application/x-download',
        'content-md5': '4gJE4saaMU4BqNR0kLY+lw==',
        'x-amz-meta-reviewedby': 'joe@johnsmith.net, jane@johnsmith.net',
        'x-amz-meta-filechecksum': '0x02661779',
        'x-amz-meta-checksumalgorithm': 'crc32',
        'content-disposition': 'attachment; filename=database.dat',
        'content-encoding': 'gzip',
        'content-length': '5913339',
      },
      headersDistinct: {
        host: ['static.johnsmith.net:8080'],
        'user-agent': ['curl/7.15.5'],
        'x-amz-date': ['Tue, 27 Mar 2007 21:06:08 +0000'],
        'x-amz-acl': ['public-read'],
        'content-type': ['application/x-download'],
        'content-md5': ['4gJE4saaMU4BqNR0kLY+lw=='],
        'x-amz-meta-reviewedby': ['joe@johnsmith.net', 'jane@johnsmith.net'],
        'x-amz-meta-filechecksum': ['0x02661779'],
        'x-amz-meta-checksumalgorithm': ['crc32'],
        'content-disposition': ['attachment; filename=database.dat'],
        'content-encoding': ['gzip'],
        'content-length': ['5913339'],
      },
      virtualHostBucket: 'static.johnsmith.net',
    },
    stringToSign:
      'PUT\n4gJE4saaMU4BqNR0kLY+lw==\napplication/x-download\nTue, 27 Mar 2007 21:06:08 +0000\n' +
      'x-amz-acl:public-read\nx-amz-meta-checksumalgorithm:crc32\nx-amz-meta-filechecksum:0x02661779\n' +
      'x-amz-meta-reviewedby:joe@johnsmith.net,jane@johnsmith.net\n/static.johnsmith.net/db-backup.dat.gz',
    signature: 'ilyl83RwaSoYIEdixDQcA4OnAnc=',
  },
  {
    name: 'List all my buckets',
    head: {
      method: 'GET',
      rawPath: '/',
      rawQuery: '',
      headers: { host: 's3.amazonaws.com', date: 'Wed, 28 Mar 2007 01:29:59 +0000' },
    },
    stringToSign: 'GET\n\n\nWed, 28 Mar 2007 01:29:59 +0000\n/',
    signature: 'qGdzdERIC03wnaRNKh6OqZehG9s=',
  },
  {
    name: 'Unicode keys (the path is signed as sent, hex case included)',
    head: {
      method: 'GET',
      rawPath: '/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re',
      rawQuery: '',
      headers: { host: 's3.amazonaws.com', date: 'Wed, 28 Mar 2007 01:49:49 +0000' },
    },
    stringToSign: 'GET\n\n\nWed, 28 Mar 2007 01:49:49 +0000\n/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re',
    signature: 'DNEZGsoieTZ92F3bUfSPQcbGmlM=',
  },
]

function requestTime(head: RequestHeadV2): number {
  return Date.parse((head.headers['x-amz-date'] ?? head.headers.date) as string)
}

describe('AWS documented V2 examples', () => {
  for (const ex of EXAMPLES) {
    test(`${ex.name}: the test signer gives the documented signature`, () => {
      assert.equal(v2Signature(SK, ex.stringToSign), ex.signature)
    })
    test(`${ex.name}: verifyRequestV2 accepts the documented Authorization header`, () => {
      const head = { ...ex.head, headers: { ...ex.head.headers, authorization: `AWS ${AK}:${ex.signature}` } }
      assert.ok(isSignatureV2(head.headers, parseQuery(head.rawQuery)))
      const auth = verifyRequestV2(head, { now: requestTime(ex.head), lookupSecret })
      assert.deepEqual(auth, { accessKeyId: AK, presigned: false })
    })
  }

  test('the test signer builds the documented StringToSign of the simple examples', () => {
    assert.equal(
      v2StringToSign({
        method: 'GET',
        date: 'Tue, 27 Mar 2007 19:44:46 +0000',
        path: '/',
        query: { acl: '' },
        virtualHostBucket: 'johnsmith',
      }),
      'GET\n\n\nTue, 27 Mar 2007 19:44:46 +0000\n/johnsmith/?acl',
    )
    assert.equal(
      v2StringToSign({
        method: 'GET',
        date: 'Tue, 27 Mar 2007 19:42:41 +0000',
        path: '/',
        query: { prefix: 'photos', 'max-keys': '50', marker: 'puppy' },
        virtualHostBucket: 'johnsmith',
      }),
      'GET\n\n\nTue, 27 Mar 2007 19:42:41 +0000\n/johnsmith/',
    )
  })

  test('query string authentication example', () => {
    const toSign = v2StringToSign({
      method: 'GET',
      date: '1175139620',
      path: '/photos/puppy.jpg',
      virtualHostBucket: 'johnsmith',
    })
    assert.equal(toSign, 'GET\n\n\n1175139620\n/johnsmith/photos/puppy.jpg')
    assert.equal(v2Signature(SK, toSign), 'NpgCjnDzrM+WFzoENXmpNDUsSn8=')
    const head: RequestHeadV2 = {
      method: 'GET',
      rawPath: '/photos/puppy.jpg',
      rawQuery: `AWSAccessKeyId=${AK}&Expires=1175139620&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D`,
      headers: { host: 'johnsmith.s3.amazonaws.com' },
      virtualHostBucket: 'johnsmith',
    }
    assert.deepEqual(verifyRequestV2(head, { now: 1175139620 * 1000 - 60_000, lookupSecret }), {
      accessKeyId: AK,
      presigned: true,
    })
    assert.throws(() => verifyRequestV2(head, { now: 1175139621 * 1000, lookupSecret }), isApiError('AccessDenied', /expired/))
  })
})

describe('canonicalisation', () => {
  test('sub-resources are sorted, decoded, and only known ones kept', () => {
    const params = parseQuery('uploadId=abc&partNumber=3&x-id=PutObject&response-content-type=text%2Fplain&foo=bar')
    assert.equal(canonicalResourceV2('/b/k', params), '/b/k?partNumber=3&response-content-type=text/plain&uploadId=abc')
    assert.equal(canonicalResourceV2('/k', parseQuery('uploads'), 'b'), '/b/k?uploads')
    assert.equal(canonicalResourceV2('', []), '/')
  })

  test('amz headers: lowercased, sorted, repeats joined with a comma, folded lines unfolded', () => {
    const headers: IncomingHttpHeaders = { 'x-amz-b': ' two\r\n  lines ', 'X-Amz-A': '1', 'content-type': 'x' }
    assert.equal(canonicalAmzHeaders(headers), 'x-amz-a:1\nx-amz-b:two lines\n')
    assert.equal(canonicalAmzHeaders({}, { 'x-amz-m': ['a', 'b'] }), 'x-amz-m:a,b\n')
    assert.equal(canonicalAmzHeaders({ 'x-amz-date': 'd', 'x-amz-z': 'z' }, undefined, 'x-amz-date'), 'x-amz-z:z\n')
  })

  test('V2 is recognised by its header or its query parameters, V4 presigned parameters win', () => {
    assert.ok(isSignatureV2({ authorization: 'AWS a:b' }, []))
    assert.ok(!isSignatureV2({ authorization: 'AWS4-HMAC-SHA256 Credential=…' }, []))
    assert.ok(isSignatureV2({}, parseQuery('AWSAccessKeyId=a&Expires=1&Signature=s')))
    assert.ok(!isSignatureV2({}, parseQuery('X-Amz-Algorithm=AWS4-HMAC-SHA256&Signature=s')))
    assert.ok(!isSignatureV2({}, []))
    assert.ok(isSignatureV2({ authorization: 'AWS' }, []))
  })
})

describe('errors', () => {
  const now = Date.UTC(2024, 0, 1, 12, 0, 0)
  const date = new Date(now).toUTCString()
  const sign = (toSign: string) => v2Signature(SK, toSign)
  const head = (headers: IncomingHttpHeaders, rawQuery = ''): RequestHeadV2 => ({
    method: 'GET',
    rawPath: '/b/k',
    rawQuery,
    headers,
  })

  test('a valid request with Date passes, and one with x-amz-date and an empty Date line too', () => {
    const a = `AWS ${AK}:${sign(`GET\n\n\n${date}\n/b/k`)}`
    assert.ok(verifyRequestV2(head({ date, authorization: a }), { now, lookupSecret }))
    const b = `AWS ${AK}:${sign(`GET\n\n\n\nx-amz-date:${date}\n/b/k`)}`
    assert.ok(verifyRequestV2(head({ 'x-amz-date': date, authorization: b }), { now, lookupSecret }))
    // MinIO's reading: the Date header on the Date line, x-amz-date among the amz headers.
    const other = new Date(now - 1000).toUTCString()
    const c = `AWS ${AK}:${sign(`GET\n\n\n${other}\nx-amz-date:${date}\n/b/k`)}`
    assert.ok(verifyRequestV2(head({ date: other, 'x-amz-date': date, authorization: c }), { now, lookupSecret }))
  })

  test('a wrong signature is SignatureDoesNotMatch with the StringToSign', () => {
    const a = `AWS ${AK}:${v2Signature('wrong', `GET\n\n\n${date}\n/b/k`)}`
    assert.throws(
      () => verifyRequestV2(head({ date, authorization: a }), { now, lookupSecret }),
      (err) => isApiError('SignatureDoesNotMatch')(err) && (err as ApiError).extra.StringToSign === `GET\n\n\n${date}\n/b/k`,
    )
    assert.throws(
      () => verifyRequestV2(head({ date, authorization: `AWS ${AK}:notbase64` }), { now, lookupSecret }),
      isApiError('SignatureDoesNotMatch'),
    )
  })

  test('an unknown key is InvalidAccessKeyId', () => {
    assert.throws(
      () => verifyRequestV2(head({ date, authorization: `AWS NOPE:${sign('x')}` }), { now, lookupSecret }),
      isApiError('InvalidAccessKeyId'),
    )
  })

  test('a missing or unreadable date is AccessDenied', () => {
    const a = `AWS ${AK}:${sign('x')}`
    assert.throws(() => verifyRequestV2(head({ authorization: a }), { now, lookupSecret }), isApiError('AccessDenied', /Date/))
    assert.throws(
      () => verifyRequestV2(head({ date: 'yesterday', authorization: a }), { now, lookupSecret }),
      isApiError('AccessDenied', /Date/),
    )
  })

  test('a date 16 minutes off is RequestTimeTooSkewed, 14 minutes is accepted', () => {
    for (const [offset, ok] of [
      [16 * 60_000, false],
      [-16 * 60_000, false],
      [14 * 60_000, true],
    ] as const) {
      const d = new Date(now + offset).toUTCString()
      const a = `AWS ${AK}:${sign(`GET\n\n\n${d}\n/b/k`)}`
      const run = () => verifyRequestV2(head({ date: d, authorization: a }), { now, lookupSecret })
      if (ok) assert.ok(run())
      else assert.throws(run, isApiError('RequestTimeTooSkewed'))
    }
  })

  test('a malformed header is InvalidArgument naming the Authorization header', () => {
    for (const bad of ['AWS', `AWS ${AK}`, 'AWS :sig', `AWS ${AK}:a b`]) {
      assert.throws(
        () => verifyRequestV2(head({ date, authorization: bad }), { now, lookupSecret }),
        (err) => isApiError('InvalidArgument')(err) && (err as ApiError).extra.ArgumentName === 'Authorization',
        bad,
      )
    }
  })

  test('presigned: missing parameters and a malformed Expires are AccessDenied', () => {
    for (const q of [`AWSAccessKeyId=${AK}&Signature=x`, 'Expires=1&Signature=x', `AWSAccessKeyId=${AK}&Expires=1`]) {
      assert.throws(() => verifyRequestV2(head({}, q), { now, lookupSecret }), isApiError('AccessDenied', /requires/), q)
    }
    assert.throws(
      () => verifyRequestV2(head({}, `AWSAccessKeyId=${AK}&Expires=soon&Signature=x`), { now, lookupSecret }),
      isApiError('AccessDenied', /seconds since epoch/),
    )
  })

  test('presigned: an unescaped "+" in the signature still verifies', () => {
    const expires = String(now / 1000 + 60)
    // Find a resource whose signature contains '+'.
    for (let i = 0; i < 200; i++) {
      const sig = sign(`GET\n\n\n${expires}\n/b/k${i}`)
      if (!sig.includes('+')) continue
      const h = { ...head({}, `AWSAccessKeyId=${AK}&Expires=${expires}&Signature=${sig}`), rawPath: `/b/k${i}` }
      assert.ok(verifyRequestV2(h, { now, lookupSecret }))
      return
    }
    assert.fail('no signature with a "+" found')
  })
})
