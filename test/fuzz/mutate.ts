/**
 * The fuzzer's mutators. Pre-signing mutators change the logical request (its path, query,
 * headers, body or aws-chunked framing) so the signature still covers the result and the bad
 * input reaches the handlers; post-signing mutators change the raw bytes (header duplication,
 * lengths, framing, invalid bytes), which the HTTP layer and the verifier must refuse cleanly.
 * Every mutator names what it did, for reports.
 */
import { int, pick } from '../helpers/random.ts'
import type { Logical } from './requests.ts'
import type { RawHttp } from '../helpers/raw-http.ts'

type Rng = () => number
export type PreMutator = (l: Logical, r: Rng) => string
export type PostMutator = (h: RawHttp, r: Rng) => string

/** Values that have broken parsers somewhere: empty, huge, signed, NUL, invalid UTF-8, controls. */
export function nastyString(r: Rng): string {
  return pick(r, [
    '',
    ' ',
    '-1',
    '0',
    '18446744073709551616',
    '1e309',
    'NaN',
    '\u0000',
    'a\u0000b',
    '\u0001\u001f\u007f',
    '\r\n',
    '%',
    '%ZZ',
    '%FF%FE',
    '%00',
    '\uFFFD',
    '\uFFFE',
    'é€𝄞',
    '<a>&amp;</a>',
    '"',
    "'",
    '../../etc/passwd',
    'a'.repeat(1 + int(r, 3000)),
    'é'.repeat(1 + int(r, 1200)),
    String.fromCharCode(...Array.from({ length: 1 + int(r, 40) }, () => int(r, 0x3000))),
  ])
}

/** Raw bytes for a header value: latin-1, NUL, high bytes, invalid UTF-8 sequences. */
function nastyBytes(r: Rng): Buffer {
  return pick(r, [
    Buffer.from([0xff, 0xfe, 0xfd]),
    Buffer.from([0xc3, 0x28]),
    Buffer.from([0xe2, 0x82]),
    Buffer.from('a\u0000b', 'latin1'),
    Buffer.from('é', 'latin1'),
    Buffer.from([0x7f, 0x01, 0x09]),
    Buffer.alloc(1 + int(r, 20_000), 0x61),
  ])
}

const INTERESTING_HEADERS = [
  'range',
  'if-match',
  'if-none-match',
  'if-modified-since',
  'if-unmodified-since',
  'content-md5',
  'content-type',
  'content-encoding',
  'content-language',
  'content-disposition',
  'cache-control',
  'expires',
  'expect',
  'origin',
  'access-control-request-method',
  'x-amz-copy-source',
  'x-amz-copy-source-range',
  'x-amz-copy-source-if-match',
  'x-amz-copy-source-if-modified-since',
  'x-amz-metadata-directive',
  'x-amz-tagging',
  'x-amz-tagging-directive',
  'x-amz-storage-class',
  'x-amz-acl',
  'x-amz-website-redirect-location',
  'x-amz-server-side-encryption',
  'x-amz-server-side-encryption-customer-algorithm',
  'x-amz-server-side-encryption-customer-key',
  'x-amz-server-side-encryption-customer-key-md5',
  'x-amz-copy-source-server-side-encryption-customer-algorithm',
  'x-amz-checksum-algorithm',
  'x-amz-checksum-crc32',
  'x-amz-checksum-crc32c',
  'x-amz-checksum-crc64nvme',
  'x-amz-checksum-sha1',
  'x-amz-checksum-sha256',
  'x-amz-checksum-mode',
  'x-amz-checksum-type',
  'x-amz-sdk-checksum-algorithm',
  'x-amz-trailer',
  'x-amz-decoded-content-length',
  'x-amz-meta-fz',
  'x-amz-expected-bucket-owner',
  'x-amz-object-lock-mode',
  'x-amz-object-lock-retain-until-date',
  'x-amz-mp-parts-count',
  'x-amz-write-offset-bytes',
  'if-none-match',
]

const RANGES = [
  'bytes=',
  'bytes=5-1',
  'bytes=-0',
  'bytes=0-0,5-6',
  'bytes=99999999999999999999-',
  'bytes=-99999999999999999999',
  'bytes=0-99999999999999999999',
  'chars=0-1',
  'bytes=1e3-',
  'bytes= 0-1',
  'bytes=0-1x',
  'bytes=--1',
  'bytes=0x10-',
  'bytes=,',
  'bytes=1000000-2000000',
]

const QUERY_NAMES = [
  'uploads',
  'uploadId',
  'partNumber',
  'versionId',
  'max-keys',
  'max-parts',
  'max-uploads',
  'part-number-marker',
  'marker',
  'key-marker',
  'upload-id-marker',
  'continuation-token',
  'start-after',
  'prefix',
  'delimiter',
  'encoding-type',
  'list-type',
  'fetch-owner',
  'delete',
  'cors',
  'lifecycle',
  'website',
  'acl',
  'tagging',
  'versions',
  'location',
  'x-id',
  'response-content-type',
  'response-content-language',
  'response-expires',
  'response-cache-control',
  'response-content-disposition',
  'response-content-encoding',
  'X-Amz-Expires',
  'X-Amz-Date',
]

function someHeaderName(l: Logical, r: Rng): string | undefined {
  const names = Object.keys(l.headers)
  return names.length === 0 ? undefined : pick(r, names)
}

/** Percent-encodes the UTF-8 bytes of `s` (lone surrogates become U+FFFD, never an exception). */
function pctEncode(s: string): string {
  return [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('')
}

/** Decoded and encoded key bytes of all kinds. */
function nastyKeySegment(r: Rng): string {
  return pick(r, [
    '%00',
    'a%00b',
    '%ZZ',
    '%FF%FE',
    '%C3%28',
    '%',
    '%2',
    '%E2%82',
    '%ED%A0%80',
    '..',
    '.',
    '',
    '%2F%2F',
    `${'k'.repeat(1 + int(r, 2500))}`,
    `${'%C3%A9'.repeat(1 + int(r, 500))}`,
    '%0D%0A',
    '%7F',
    '%EF%BF%BF',
    pctEncode(nastyString(r)),
  ])
}

export const PRE_MUTATORS: Record<string, PreMutator> = {
  'path: key segment': (l, r) => {
    const seg = nastyKeySegment(r)
    const parts = l.path.split('/')
    const at = parts.length <= 2 ? parts.length : 2 + int(r, parts.length - 1)
    parts.splice(at, r() < 0.5 ? 1 : 0, seg)
    l.path = parts.join('/')
    return `key segment ${seg.slice(0, 40)}`
  },
  'path: bucket name': (l, r) => {
    const name = pick(r, [
      '',
      'A',
      'a',
      'xn--',
      '-bucket',
      'b'.repeat(64),
      'b'.repeat(1 + int(r, 9000)),
      'a..b',
      '192.168.0.1',
      '%00',
      'nope',
    ])
    const parts = l.path.split('/')
    parts[1] = name
    l.path = parts.join('/')
    return `bucket name ${name.slice(0, 40)} (${name.length})`
  },
  'path: long key': (l, r) => {
    const n = pick(r, [1024, 1025, 1900, 2048, 4096, 20_000])
    l.path = `${l.path.split('/').slice(0, 2).join('/')}/fz/long/${'x'.repeat(n)}`
    return `key of ${n} bytes`
  },
  'query: add parameter': (l, r) => {
    const name = r() < 0.8 ? pick(r, QUERY_NAMES) : nastyString(r)
    const value = r() < 0.5 ? nastyString(r) : String(pick(r, [-1, 0, 1, 10_000, 2 ** 31, 2 ** 53, 1.5]))
    l.query[name] = value
    return `query ${name.slice(0, 30)}=${value.slice(0, 30)}`
  },
  'query: change parameter': (l, r) => {
    const names = Object.keys(l.query)
    if (names.length === 0) return 'query: nothing to change'
    const name = pick(r, names)
    const value = nastyString(r)
    l.query[name] = value
    return `query ${name} := ${value.slice(0, 40)}`
  },
  'query: duplicate parameter': (l, r) => {
    const names = Object.keys(l.query)
    if (names.length === 0) return 'query: nothing to duplicate'
    const name = pick(r, names)
    const v = l.query[name]
    l.query[name] = [...(Array.isArray(v) ? v : [v ?? '']), r() < 0.5 ? nastyString(r) : String(v)]
    return `query ${name} repeated`
  },
  'query: many parameters': (l, r) => {
    // Signed, so they reach the handlers (more would take @smithy/signature-v4 seconds to sign).
    const n = pick(r, [100, 500])
    for (let i = 0; i < n; i++) l.query[`p${i}`] = String(i)
    return `${n} query parameters`
  },
  'query: response override': (l, r) => {
    const name = pick(
      r,
      QUERY_NAMES.filter((q) => q.startsWith('response-')),
    )
    const value = nastyString(r)
    l.query[name] = value
    return `${name}=${JSON.stringify(value.slice(0, 40))}`
  },
  'query: huge prefix or marker': (l, r) => {
    const name = pick(r, ['prefix', 'marker', 'start-after', 'key-marker', 'delimiter', 'continuation-token'])
    const n = pick(r, [1025, 4096, 15_000])
    l.query[name] = 'p'.repeat(n)
    return `${name} of ${n} bytes`
  },
  'header: interesting': (l, r) => {
    const name = pick(r, INTERESTING_HEADERS)
    const value = name.endsWith('range') && r() < 0.7 ? pick(r, RANGES) : nastyString(r)
    l.headers[name] = value.replace(/[\r\n]/g, ' ')
    return `${name}: ${JSON.stringify(value.slice(0, 40))}`
  },
  'header: garbage range': (l, r) => {
    const v = pick(r, RANGES)
    l.headers.range = v
    return `range: ${v}`
  },
  'header: change value': (l, r) => {
    const name = someHeaderName(l, r)
    if (name === undefined) return 'header: nothing to change'
    const value = nastyString(r).replace(/[\r\n]/g, ' ')
    l.headers[name] = value
    return `${name} := ${JSON.stringify(value.slice(0, 40))}`
  },
  'header: drop': (l, r) => {
    const name = someHeaderName(l, r)
    if (name === undefined) return 'header: nothing to drop'
    delete l.headers[name]
    return `dropped ${name}`
  },
  'header: wrong digest': (l, r) => {
    const name = pick(r, ['content-md5', 'x-amz-checksum-crc32', 'x-amz-checksum-sha256', 'x-amz-checksum-crc64nvme'])
    l.headers[name] = pick(r, [
      '1B2M2Y8AsgTpgAmY7PhCfg==',
      'AAAAAA==',
      'not base64!',
      '',
      'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
    ])
    return `${name} wrong`
  },
  'header: sse-c': (l, r) => {
    const key = Buffer.alloc(pick(r, [16, 32, 33]), 7)
    l.headers['x-amz-server-side-encryption-customer-algorithm'] = pick(r, ['AES256', 'AES128', ''])
    l.headers['x-amz-server-side-encryption-customer-key'] = key.toString('base64')
    l.headers['x-amz-server-side-encryption-customer-key-md5'] = r() < 0.5 ? 'AAAA' : ''
    return `sse-c key of ${key.length} bytes`
  },
  'body: flip bytes': (l, r) => {
    if (l.body.length === 0) return 'body: empty'
    const b = Buffer.from(l.body)
    const n = 1 + int(r, 4)
    for (let i = 0; i < n; i++) b[int(r, b.length)] = int(r, 256)
    l.body = b
    return `${n} body bytes flipped`
  },
  'body: truncate': (l, r) => {
    const at = int(r, l.body.length + 1)
    l.body = l.body.subarray(0, at)
    return `body cut at ${at}`
  },
  'body: insert nasty': (l, r) => {
    const at = int(r, l.body.length + 1)
    const ins = Buffer.from(nastyString(r))
    l.body = Buffer.concat([l.body.subarray(0, at), ins, l.body.subarray(at)])
    return `body +${ins.length} bytes at ${at}`
  },
  'body: xml nasty': (l, r) => {
    const xml = pick(r, [
      '',
      '<',
      '<?xml version="1.0"?>',
      '<a>',
      `${'<a>'.repeat(10_000)}`,
      '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><x>&b;</x>',
      '<Delete><Object><Key></Key></Object></Delete>',
      `<Delete>${'<Object><Key>k</Key></Object>'.repeat(1001)}</Delete>`,
      '<CompleteMultipartUpload><Part><PartNumber>-1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>',
      '<CompleteMultipartUpload><Part><PartNumber>99999999999999999999</PartNumber></Part></CompleteMultipartUpload>',
      '<CompleteMultipartUpload></CompleteMultipartUpload>',
      '<CORSConfiguration><CORSRule></CORSRule></CORSConfiguration>',
      '<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>FOO</AllowedMethod></CORSRule></CORSConfiguration>',
      '<LifecycleConfiguration><Rule><Status>Enabled</Status><Expiration><Days>-1</Days></Expiration></Rule></LifecycleConfiguration>',
      '<LifecycleConfiguration><Rule><Status>Enabled</Status><Expiration><Date>not a date</Date></Expiration></Rule></LifecycleConfiguration>',
      '<WebsiteConfiguration><RedirectAllRequestsTo><HostName></HostName></RedirectAllRequestsTo></WebsiteConfiguration>',
      '<WebsiteConfiguration><IndexDocument><Suffix></Suffix></IndexDocument></WebsiteConfiguration>',
      '<WebsiteConfiguration><RoutingRules><RoutingRule><Redirect><HttpRedirectCode>999</HttpRedirectCode></Redirect></RoutingRule></RoutingRules></WebsiteConfiguration>',
      '\u0000<a/>',
      '<a>\uFFFE</a>',
      '{"json": true}',
      '[]',
      'null',
      '{"globalAlias": 5}',
      '{"name": {"a": []}}',
      '{"variable": "x".repeat}',
      `{"globalAlias": "${'x'.repeat(300)}"}`,
    ])
    l.body = Buffer.from(xml)
    if (l.headers['content-md5'] !== undefined && r() < 0.5) delete l.headers['content-md5']
    return `body := ${JSON.stringify(xml.slice(0, 50))}`
  },
  'body: random bytes': (l, r) => {
    const n = pick(r, [1, 10, 1000, 100_000])
    l.body = Buffer.from(Array.from({ length: n }, () => int(r, 256)))
    return `body := ${n} random bytes`
  },
  'chunked: decoded length': (l, r) => {
    if (l.auth.kind !== 'chunked') return 'chunked: not chunked'
    const v = String(pick(r, [l.body.length + 1, Math.max(0, l.body.length - 1), 0, 2 ** 53, -1]))
    l.headers['x-amz-decoded-content-length'] = v
    return `x-amz-decoded-content-length: ${v}`
  },
  'chunked: trailer': (l, r) => {
    if (l.auth.kind !== 'chunked' || l.auth.trailer === undefined) return 'chunked: no trailer'
    const what = pick(r, ['value', 'name', 'announce'])
    if (what === 'value') l.auth.trailer = { ...l.auth.trailer, value: nastyString(r).replace(/[\r\n]/g, '') }
    else if (what === 'name') l.auth.trailer = { ...l.auth.trailer, name: pick(r, ['x-amz-checksum-sha1', 'x-fz', 'a b']) }
    else l.headers['x-amz-trailer'] = pick(r, ['x-amz-checksum-crc32c', 'x-amz-checksum-nope', '', 'a,b,c'])
    return `trailer ${what}`
  },
  'method: change': (l, r) => {
    const m = pick(r, ['GET', 'PUT', 'POST', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'PROPFIND'])
    l.method = m
    return `method := ${m}`
  },
}

/** Rewrites aws-chunked framing in a raw body: chunk sizes, signatures, CRLFs. */
function mangleChunked(body: Buffer, r: Rng): { body: Buffer; what: string } {
  const text = body.toString('latin1')
  const what = pick(r, ['size', 'signature', 'crlf', 'replay', 'long-line', 'final'])
  switch (what) {
    case 'size': {
      const v = pick(r, ['zz', 'ffffffffffffffff', '-1', '0', 'fffffffffff', '1', ' 5', '5 ', '0x5'])
      return { body: Buffer.from(text.replace(/^[0-9a-f]+/, v), 'latin1'), what: `chunk size ${v}` }
    }
    case 'signature':
      return {
        body: Buffer.from(
          text.replace(/chunk-signature=([0-9a-f])/, (_, c) => `chunk-signature=${c === '0' ? '1' : '0'}`),
          'latin1',
        ),
        what,
      }
    case 'crlf': {
      const i = text.indexOf('\r\n', text.indexOf('\r\n') + 2)
      return i < 0 ? { body, what: 'crlf: none' } : { body: Buffer.from(text.slice(0, i) + text.slice(i + 2), 'latin1'), what }
    }
    case 'replay': {
      // The second chunk carries the first chunk's signature again.
      const sigs = [...text.matchAll(/chunk-signature=([0-9a-f]{64})/g)]
      const first = sigs[0]
      const second = sigs[1]
      if (first === undefined || second === undefined) return { body, what: 'replay: unsigned' }
      const at = (second.index as number) + 'chunk-signature='.length
      return { body: Buffer.from(text.slice(0, at) + (first[1] as string) + text.slice(at + 64), 'latin1'), what }
    }
    case 'long-line':
      return { body: Buffer.concat([Buffer.from(`a;chunk-signature=${'f'.repeat(1 + int(r, 1 << 20))}`)]), what }
    default:
      return {
        body: Buffer.from(text.replace(/0(;chunk-signature=[0-9a-f]{64})?\r\n/, '0;chunk-signature=zz\r\n'), 'latin1'),
        what: 'final chunk',
      }
  }
}

export const POST_MUTATORS: Record<string, PostMutator> = {
  'raw: duplicate header': (h, r) => {
    const i = int(r, h.headers.length)
    const [name, value] = h.headers[i] as [string, string | Buffer]
    h.headers.splice(i + 1, 0, [name, r() < 0.5 ? value : nastyString(r).replace(/[\r\n]/g, '')])
    return `${name} twice`
  },
  'raw: drop header': (h, r) => {
    const i = int(r, h.headers.length)
    const [name] = h.headers.splice(i, 1)[0] as [string, string | Buffer]
    return `dropped raw ${name}`
  },
  'raw: header bytes': (h, r) => {
    const i = int(r, h.headers.length)
    const entry = h.headers[i] as [string, string | Buffer]
    const b = nastyBytes(r)
    entry[1] = b
    return `${entry[0]} := ${b.length} raw bytes`
  },
  'raw: content-length': (h, r) => {
    const v = pick(r, [
      '-1',
      'abc',
      '99999999999999999999',
      '18446744073709551615',
      `${h.body.length + 1}`,
      `${Math.max(0, h.body.length - 1)}`,
      '1e3',
      '',
      '0x10',
    ])
    h.headers = h.headers.filter(([n]) => n.toLowerCase() !== 'content-length')
    h.headers.push(['content-length', v])
    // A longer announced length than the body would leave the server waiting: the client ends.
    if (/^\d+$/.test(v) && Number(v) > h.body.length) h.framing = { kind: 'truncate', at: h.body.length }
    return `content-length: ${v}`
  },
  'raw: two content-lengths': (h) => {
    h.headers.push(['content-length', String(h.body.length + 3)])
    return 'two content-length headers'
  },
  'raw: transfer-encoding': (h, r) => {
    const v = pick(r, ['chunked', 'gzip, chunked', 'identity', 'chunked, chunked', 'bogus'])
    h.headers.push(['transfer-encoding', v])
    if (v.endsWith('chunked') && r() < 0.5) {
      h.headers = h.headers.filter(([n]) => n.toLowerCase() !== 'content-length')
      h.body = Buffer.concat([Buffer.from(`${h.body.length.toString(16)}\r\n`), h.body, Buffer.from('\r\n0\r\n\r\n')])
    }
    return `transfer-encoding: ${v}`
  },
  'raw: huge header': (h, r) => {
    const n = pick(r, [8 * 1024, 15 * 1024, 17 * 1024, 64 * 1024, 1024 * 1024])
    h.headers.push([`x-amz-meta-huge`, 'h'.repeat(n)])
    return `a ${n}-byte header`
  },
  'raw: many headers': (h, r) => {
    const n = pick(r, [100, 2000, 5000])
    for (let i = 0; i < n; i++) h.headers.push([`x-fz-${i}`, 'v'])
    return `${n} headers`
  },
  'raw: authorization': (h, r) => {
    const i = h.headers.findIndex(([n]) => n.toLowerCase() === 'authorization')
    if (i < 0) return 'raw: no authorization'
    const v = (h.headers[i] as [string, string | Buffer])[1].toString('latin1')
    const nv = pick(r, [
      v.slice(0, int(r, v.length)),
      v.replace(/Signature=[0-9a-f]/, 'Signature=g'),
      v.replace('Credential=', 'Credential=/'),
      v.replace(/SignedHeaders=[^,]*/, 'SignedHeaders=host;x-amz-nope'),
      v.replace(/SignedHeaders=[^,]*/, 'SignedHeaders='),
      v.replace(/\/\d{8}\//, '/20000101/'),
      v.replace('AWS4-HMAC-SHA256', 'AWS4-HMAC-SHA1'),
      `${v}, Signature=${'0'.repeat(64)}`,
      'AWS AKID:sig',
      'Bearer x',
      v.replace(/[0-9a-f]{64}$/, '0'.repeat(64)),
    ])
    ;(h.headers[i] as [string, string | Buffer])[1] = nv
    return `authorization ${JSON.stringify(nv.slice(0, 60))}`
  },
  'raw: x-amz-date': (h, r) => {
    const v = pick(r, ['', '20000101T000000Z', '29991231T235959Z', '20240230T000000Z', 'garbage', '2024-01-01T00:00:00Z'])
    h.headers = h.headers.map(([n, x]) => (n.toLowerCase() === 'x-amz-date' ? [n, v] : [n, x]))
    return `x-amz-date: ${v}`
  },
  'raw: target bytes': (h, r) => {
    const q = h.target.indexOf('?')
    const ins = pick(r, ['%ZZ', '%FF%FE', '%00', '%', '\u00e9', ' ', '#', '?', '//', '%2', '\u0000'])
    const at = q < 0 ? h.target.length : pick(r, [q, h.target.length])
    h.target = h.target.slice(0, at) + ins + h.target.slice(at)
    return `target +${JSON.stringify(ins)} at ${at}`
  },
  'raw: query garbage': (h, r) => {
    const ins = pick(r, [
      '&%ZZ=1',
      '&a=%FF%FE',
      '&&',
      '&=',
      '&%00=%00',
      '&uploads&uploads',
      '&max-keys=%ZZ',
      '&response-content-type=%0D%0A',
      '&x=%E2%82',
    ])
    h.target = `${h.target}${h.target.includes('?') ? '' : '?'}${ins}`
    return `query +${ins}`
  },
  'raw: many query parameters': (h, r) => {
    const n = pick(r, [1000, 10_000])
    const extra = Array.from({ length: n }, (_, i) => `q${i}=${i}`).join('&')
    h.target = `${h.target}${h.target.includes('?') ? '&' : '?'}${extra}`
    return `${n} unsigned query parameters`
  },
  'raw: chunked framing': (h, r) => {
    if (!h.headers.some(([n, v]) => n === 'x-amz-content-sha256' && v.toString().startsWith('STREAMING-'))) return 'not chunked'
    const m = mangleChunked(h.body, r)
    h.body = m.body
    h.headers = h.headers.map(([n, v]) => (n === 'content-length' ? [n, String(h.body.length)] : [n, v]))
    return `aws-chunked ${m.what}`
  },
  'raw: http version': (h, r) => {
    const v = pick(r, ['HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 x', 'FOO'])
    // The serialised line becomes `<method> <target> <v>` and the real version goes to a header.
    h.target = `${h.target} ${v}\r\nX-Ignored:`
    return `request line ${v}`
  },
}

export const FRAMING: Record<string, PostMutator> = {
  truncate: (h, r) => {
    const at = int(r, h.body.length + 1)
    h.framing = { kind: 'truncate', at }
    return `truncated body at ${at}/${h.body.length}`
  },
  reset: (h, r) => {
    const at = int(r, h.body.length + 1)
    h.framing = { kind: 'reset', at }
    return `reset after ${at}/${h.body.length} body bytes`
  },
  slow: (h, r) => {
    const pieces = 2 + int(r, 6)
    h.framing = { kind: 'slow', pieces, delayMs: 5 + int(r, 30) }
    return `${pieces} slow pieces`
  },
  'half-close': (h) => {
    h.framing = { kind: 'half-close' }
    return 'half-closed at once'
  },
  pipelined: (h, r) => {
    const copies = 2 + int(r, 3)
    h.framing = { kind: 'pipelined', copies }
    return `${copies} pipelined copies`
  },
}
