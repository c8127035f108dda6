/** ETag comparison: CompleteMultipartUpload, If-Match / If-None-Match, and the copy-source conditions. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { checkCopyPreconditions } from '../../../lib/api/s3/copy.ts'
import { completePartEtag, ifMatchAccepts, ifNoneMatchMatches, parseEntityTags } from '../../../lib/api/s3/etag.ts'
import { checkPreconditions } from '../../../lib/api/s3/get.ts'

const E = '9b2cf535f27731c974343645a3985328'
const OTHER = 'd41d8cd98f00b204e9800998ecf8427e'
const MPU = `${E}-3`

describe('the ETag of a <Part> in CompleteMultipartUpload', () => {
  const rows: Array<[written: string, compared: string]> = [
    [`"${E}"`, E],
    [E, E],
    [` "${E}" `, E],
    [`\n\t"${E}"\n`, E],
    [`"${E}`, `"${E}`],
    [`""${E}""`, `"${E}"`],
    ['"', '"'],
    ['""', ''],
  ]
  for (const [written, compared] of rows) {
    test(`${JSON.stringify(written)} → ${JSON.stringify(compared)}`, () => assert.equal(completePartEtag(written), compared))
  }
})

describe('parsing an If-Match / If-None-Match header', () => {
  const rows: Array<[header: string, parsed: ReturnType<typeof parseEntityTags>]> = [
    ['*', '*'],
    [' * ', '*'],
    [`"${E}"`, [{ weak: false, tag: E }]],
    [E, [{ weak: false, tag: E }]],
    [`W/"${E}"`, [{ weak: true, tag: E }]],
    [
      `"a", W/"b" ,c,, "d,e"`,
      [
        { weak: false, tag: 'a' },
        { weak: true, tag: 'b' },
        { weak: false, tag: 'c' },
        { weak: false, tag: 'd,e' },
      ],
    ],
    ['', []],
    [' , ', []],
    ['"unterminated', [{ weak: false, tag: 'unterminated' }]],
  ]
  for (const [header, parsed] of rows) {
    test(JSON.stringify(header), () => assert.deepEqual(parseEntityTags(header), parsed))
  }
})

describe('If-Match (strong comparison) and If-None-Match (weak comparison)', () => {
  const rows: Array<[header: string, etag: string, ifMatch: boolean, ifNoneMatch: boolean]> = [
    [`"${E}"`, E, true, true],
    [E, E, true, true],
    [`"${OTHER}"`, E, false, false],
    ['*', E, true, true],
    [`W/"${E}"`, E, false, true],
    [`"${OTHER}", "${E}"`, E, true, true],
    [`"${OTHER}",W/"${E}"`, E, false, true],
    [`"${OTHER}", *`, E, true, true],
    [`"${MPU}"`, MPU, true, true],
    [`"${E}"`, MPU, false, false],
    [`"${E.toUpperCase()}"`, E, false, false],
    [`'${E}'`, E, false, false],
    ['', E, false, false],
  ]
  for (const [header, etag, ifMatch, ifNoneMatch] of rows) {
    test(`${JSON.stringify(header)} against ${etag.slice(0, 6)}…: If-Match ${ifMatch}, If-None-Match matches ${ifNoneMatch}`, () => {
      assert.equal(ifMatchAccepts(header, etag), ifMatch)
      assert.equal(ifNoneMatchMatches(header, etag), ifNoneMatch)
    })
  }
})

describe('GET/HEAD and copy-source conditions use the same comparison', () => {
  const modified = Date.UTC(2024, 0, 2)
  const before = new Date(Date.UTC(2024, 0, 1)).toUTCString()
  const after = new Date(Date.UTC(2024, 0, 3)).toUTCString()
  const code = (f: () => unknown): string => {
    try {
      return String(f())
    } catch (err) {
      return (err as { code: string }).code
    }
  }
  const rows: Array<[headers: Record<string, string>, get: string, copy: string]> = [
    [{ 'if-match': `"${E}"` }, 'false', 'undefined'],
    [{ 'if-match': E }, 'false', 'undefined'],
    [{ 'if-match': `W/"${E}"` }, 'PreconditionFailed', 'PreconditionFailed'],
    [{ 'if-match': `"${OTHER}", "${E}"` }, 'false', 'undefined'],
    [{ 'if-match': `"${OTHER}"` }, 'PreconditionFailed', 'PreconditionFailed'],
    [{ 'if-none-match': `"${E}"` }, 'true', 'PreconditionFailed'],
    [{ 'if-none-match': `W/"${E}"` }, 'true', 'PreconditionFailed'],
    [{ 'if-none-match': '*' }, 'true', 'PreconditionFailed'],
    [{ 'if-none-match': `"${OTHER}"` }, 'false', 'undefined'],
    // If-Match holding makes If-Unmodified-Since irrelevant.
    [{ 'if-match': E, 'if-unmodified-since': before }, 'false', 'undefined'],
    [{ 'if-unmodified-since': before }, 'PreconditionFailed', 'PreconditionFailed'],
    // If-None-Match decides over If-Modified-Since.
    [{ 'if-none-match': `"${OTHER}"`, 'if-modified-since': after }, 'false', 'undefined'],
    [{ 'if-modified-since': after }, 'true', 'PreconditionFailed'],
  ]
  for (const [headers, get, copy] of rows) {
    test(`${JSON.stringify(headers)} → GET ${get}, copy ${copy}`, () => {
      assert.equal(
        code(() => checkPreconditions(headers, E, modified)),
        get,
        'GET/HEAD (true = 304)',
      )
      const copyHeaders = Object.fromEntries(Object.entries(headers).map(([k, v]) => [`x-amz-copy-source-${k}`, v]))
      assert.equal(
        code(() => checkCopyPreconditions(copyHeaders, E, modified)),
        copy,
        'copy source',
      )
    })
  }
})
