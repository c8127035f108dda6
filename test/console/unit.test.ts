/**
 * Unit tests of the console's pure modules (console/src): SigV4 against the AWS SDK's signer,
 * multipart planning, byte formats, Prometheus parsing and rates, layout grouping and moves.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { SignatureV4 } from '@smithy/signature-v4'
import { formatBytes, formatDate, parseBytes } from '../../console/src/format.ts'
import { layoutMoves, zonesOf } from '../../console/src/layout-model.ts'
import { completeMultipartXml, MIB, planParts } from '../../console/src/multipart.ts'
import { parsePrometheus, ratesOf, sumOf, totalsOf } from '../../console/src/prom.ts'
import { canonicalQuery, objectPath, presignQuery, signRequest, UNSIGNED_PAYLOAD, uriEncode } from '../../console/src/sigv4.ts'
import type { LayoutNodeRole } from '../../lib/api/admin/contract.ts'
import { Sha256 } from '../helpers/s3.ts'

const KEY = { accessKeyId: 'GK0123456789abcdef01234567', secretAccessKey: 'a'.repeat(64) }
const DATE = new Date('2026-03-04T05:06:07Z')

function smithy(region = 'garage') {
  return new SignatureV4({ credentials: KEY, region, service: 's3', sha256: Sha256, uriEscapePath: false, applyChecksum: false })
}

describe('console SigV4', () => {
  const cases: Array<{
    name: string
    method: string
    path: string
    query: Array<[string, string]>
    headers?: Record<string, string>
  }> = [
    {
      name: 'a bucket listing',
      method: 'GET',
      path: objectPath('photos'),
      query: [
        ['list-type', '2'],
        ['prefix', 'a b/é'],
        ['delimiter', '/'],
      ],
    },
    {
      name: 'a key with spaces, unicode and reserved characters',
      method: 'PUT',
      path: objectPath('photos', 'dir/a b+c=d&é~.txt'),
      query: [],
    },
    {
      name: 'an UploadPart',
      method: 'PUT',
      path: objectPath('photos', 'big.bin'),
      query: [
        ['partNumber', '2'],
        ['uploadId', 'abc/def+g=='],
      ],
    },
    {
      name: 'a signed content-type',
      method: 'POST',
      path: objectPath('b', 'k'),
      query: [['uploads', '']],
      headers: { 'content-type': 'image/png' },
    },
  ]
  for (const c of cases) {
    test(`header signature of ${c.name} equals the AWS SDK's`, async () => {
      const ours = await signRequest({
        method: c.method,
        host: '127.0.0.1:3903',
        path: c.path,
        query: c.query,
        ...(c.headers === undefined ? {} : { headers: c.headers }),
        payloadHash: UNSIGNED_PAYLOAD,
        key: KEY,
        region: 'garage',
        date: DATE,
      })
      const theirs = await smithy().sign(
        {
          method: c.method,
          protocol: 'http:',
          hostname: '127.0.0.1',
          port: 3903,
          path: c.path,
          query: Object.fromEntries(c.query),
          headers: { host: '127.0.0.1:3903', 'x-amz-content-sha256': UNSIGNED_PAYLOAD, ...c.headers },
        },
        { signingDate: DATE },
      )
      assert.equal(ours.headers.authorization, theirs.headers.authorization)
      assert.equal(ours.headers['x-amz-date'], theirs.headers['x-amz-date'])
      assert.equal(ours.headers.host, undefined, 'the browser sets Host itself')
    })
  }

  test("a presigned URL equals the AWS SDK's", async () => {
    const path = objectPath('photos', 'dir/a b.txt')
    const query: Array<[string, string]> = [['response-content-disposition', "attachment; filename*=UTF-8''a%20b.txt"]]
    // The SDK hoists x-amz-content-sha256 into the query; given the same parameter, the
    // signatures must agree (both sign UNSIGNED-PAYLOAD).
    query.push(['x-amz-content-sha256', UNSIGNED_PAYLOAD])
    const ours = new URLSearchParams(
      await presignQuery({ method: 'GET', host: 'h:1', path, query, key: KEY, region: 'garage', date: DATE, expiresSecs: 300 }),
    )
    const theirs = await smithy().presign(
      {
        method: 'GET',
        protocol: 'http:',
        hostname: 'h',
        port: 1,
        path,
        query: Object.fromEntries(query.slice(0, 1)),
        headers: { host: 'h:1', 'x-amz-content-sha256': UNSIGNED_PAYLOAD },
      },
      { signingDate: DATE, expiresIn: 300 },
    )
    assert.equal(ours.get('X-Amz-Signature'), theirs.query?.['X-Amz-Signature'])
    assert.equal(ours.get('X-Amz-Credential'), theirs.query?.['X-Amz-Credential'])
  })

  test('encoding: unreserved characters kept, slashes kept only in keys, query sorted by encoded name', () => {
    assert.equal(uriEncode('a b/~é'), 'a%20b%2F~%C3%A9')
    assert.equal(uriEncode('a b/c', false), 'a%20b/c')
    assert.equal(objectPath('b', 'x/y z'), '/b/x/y%20z')
    assert.equal(
      canonicalQuery([
        ['b', '1'],
        ['a', '2'],
        ['a', '1'],
        ['uploads', ''],
      ]),
      'a=1&a=2&b=1&uploads=',
    )
  })
})

describe('console multipart plan', () => {
  test('a file under 8 MiB goes up in one PUT', () => {
    assert.equal(planParts(8 * MIB - 1), undefined)
  })
  test('12 MiB goes up as 5 + 5 + 2 MiB', () => {
    assert.deepEqual(planParts(12 * MIB), [
      { partNumber: 1, start: 0, end: 5 * MIB },
      { partNumber: 2, start: 5 * MIB, end: 10 * MIB },
      { partNumber: 3, start: 10 * MIB, end: 12 * MIB },
    ])
  })
  test('a huge file keeps to 10 000 parts, contiguous, covering every byte', () => {
    const size = 100_000 * MIB + 7
    const parts = planParts(size) ?? []
    assert.ok(parts.length <= 10_000)
    assert.equal(parts[0]?.start, 0)
    assert.equal(parts.at(-1)?.end, size)
    for (let i = 1; i < parts.length; i++) assert.equal(parts[i]?.start, parts[i - 1]?.end)
  })
  test('the completion body lists the parts with escaped ETags', () => {
    assert.equal(
      completeMultipartXml([{ partNumber: 1, etag: '"a&b"' }]),
      '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;a&amp;b&quot;</ETag></Part></CompleteMultipartUpload>',
    )
  })
})

describe('console formats', () => {
  test('bytes are shown in binary units', () => {
    assert.equal(formatBytes(0), '0 B')
    assert.equal(formatBytes(1536), '1.5 KiB')
    assert.equal(formatBytes(12 * MIB), '12.0 MiB')
    assert.equal(formatBytes(null), '—')
  })
  test('capacities are read as Garage reads them: 10G and 10GB decimal, 10GiB binary', () => {
    assert.equal(parseBytes('1024'), 1024)
    assert.equal(parseBytes('10G'), 10 * 1024 ** 3)
    assert.equal(parseBytes('10GB'), 10 * 1000 ** 3)
    assert.equal(parseBytes('10 GiB'), 10 * 1024 ** 3)
    assert.equal(parseBytes('1.5T'), 1.5 * 1024 ** 4)
    assert.equal(parseBytes('ten'), undefined)
    assert.equal(parseBytes(''), undefined)
  })
  test('dates are shown in UTC', () => {
    assert.equal(formatDate('2026-01-02T03:04:05.678Z'), '2026-01-02 03:04:05 UTC')
    assert.equal(formatDate(null), '—')
  })
})

describe('console metrics', () => {
  const text = [
    '# HELP api_s3_request_counter Number of requests',
    '# TYPE api_s3_request_counter counter',
    'api_s3_request_counter{api_endpoint="GetObject"} 10',
    'api_s3_request_counter{api_endpoint="PutObject"} 5',
    'api_admin_request_counter{api_endpoint="ListKeys"} 2',
    'api_s3_error_counter{api_endpoint="GetObject",status_code="404"} 3',
    'api_s3_request_bytes_received{api_endpoint="PutObject"} 1000',
    'api_s3_response_bytes_sent{api_endpoint="GetObject"} 4000',
    'weird{label="a \\"quoted\\" value"} 1',
    'not a sample line',
  ].join('\n')
  test('samples are parsed with their labels; comments and junk skipped', () => {
    const s = parsePrometheus(text)
    assert.equal(s.length, 7)
    assert.deepEqual(s.at(-1), { name: 'weird', labels: { label: 'a "quoted" value' }, value: 1 })
    assert.equal(sumOf(s, 'api_s3_request_counter'), 15)
    assert.equal(sumOf(s, 'api_s3_request_counter', { api_endpoint: 'GetObject' }), 10)
  })
  test('totals add every API; rates are per second between samples, a reset counting from 0', () => {
    const a = totalsOf(parsePrometheus(text), 0)
    assert.deepEqual(a, { at: 0, requests: 17, errors: 3, bytesIn: 1000, bytesOut: 4000 })
    const b = { ...a, at: 2000, requests: 27, bytesIn: 5000 }
    const c = { ...b, at: 4000, requests: 4 }
    assert.deepEqual(
      ratesOf([a, b, c]).map((r) => [r.requests, r.bytesIn]),
      [
        [5, 2000],
        [2, 0],
      ],
    )
  })
})

describe('console layout model', () => {
  const role = (id: string, zone: string, capacity: number | null, storedPartitions: number): LayoutNodeRole => ({
    id,
    zone,
    tags: [],
    capacity,
    storedPartitions,
    usableCapacity: null,
  })
  test('nodes are grouped by zone with their capacity and partitions', () => {
    const z = zonesOf([role('b', 'z2', 200, 256), role('a', 'z1', 100, 128), role('c', 'z1', null, 0), role('d', 'z1', 100, 128)])
    assert.deepEqual(
      z.map((g) => [g.zone, g.capacity, g.partitions, g.nodes.map((n) => n.id)]),
      [
        ['z1', 200, 256, ['a', 'c', 'd']],
        ['z2', 200, 256, ['b']],
      ],
    )
  })
  test('the partitions a change moves are the copies nodes gain', () => {
    const m = layoutMoves(
      [role('a', 'z1', 1, 256), role('b', 'z2', 1, 256)],
      [role('a', 'z1', 1, 171), role('b', 'z2', 1, 171), role('c', 'z3', 1, 170)],
      10,
    )
    assert.equal(m.partitionsMoved, 170)
    assert.equal(m.bytesMoved, 1700)
    assert.deepEqual(
      m.nodes.find((n) => n.id === 'c'),
      { id: 'c', before: 0, after: 170 },
    )
  })
})
