import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ApiError } from '../../../lib/api/common/errors.ts'
import { keyAfterPrefix } from '../../../lib/api/k2v/range.ts'
import { k2vAuthorization, parseK2vEndpoint } from '../../../lib/api/k2v/router.ts'

describe('K2V router', () => {
  const ok: Array<[string, string, string, Record<string, unknown>]> = [
    ['GET', '/b/pk', 'sort_key=s', { kind: 'ReadItem', bucket: 'b', partitionKey: 'pk', sortKey: 's' }],
    ['GET', '/b/p%20k%C3%A9', 'sort_key=a%2Bb+c', { kind: 'ReadItem', partitionKey: 'p ké', sortKey: 'a+b c' }],
    ['GET', '/b/pk', 'sort_key=s&causality_token=ct&timeout=10', { kind: 'PollItem', causalityToken: 'ct', timeout: 10 }],
    ['GET', '/b', 'prefix=a&limit=3&reverse=true', { kind: 'ReadIndex', prefix: 'a', limit: 3, reverse: true, start: undefined }],
    ['GET', '/b/', '', { kind: 'ReadIndex' }],
    ['PUT', '/b/pk', 'sort_key=s', { kind: 'InsertItem' }],
    ['DELETE', '/b/pk', 'sort_key=s', { kind: 'DeleteItem' }],
    ['POST', '/b', '', { kind: 'InsertBatch' }],
    ['POST', '/b', 'search', { kind: 'ReadBatch' }],
    ['SEARCH', '/b', '', { kind: 'ReadBatch' }],
    ['POST', '/b', 'delete', { kind: 'DeleteBatch' }],
    ['POST', '/b/pk', 'poll_range', { kind: 'PollRange', partitionKey: 'pk' }],
    ['SEARCH', '/b/pk', 'poll_range', { kind: 'PollRange' }],
    ['OPTIONS', '/b/whatever', '', { kind: 'Options', bucket: 'b' }],
    // An empty field counts as absent; unknown parameters are ignored.
    ['GET', '/b/pk', 'sort_key=s&causality_token=&x-id=1', { kind: 'ReadItem' }],
  ]
  for (const [method, path, query, want] of ok) {
    test(`${method} ${path}?${query}`, () => {
      const ep = parseK2vEndpoint(method, path, query) as unknown as Record<string, unknown>
      for (const [k, v] of Object.entries(want)) assert.deepEqual(ep[k], v, k)
    })
  }

  const bad: Array<[string, string, string, string, RegExp]> = [
    ['GET', '/', '', 'InvalidRequest', /Missing bucket name/],
    ['GET', '/b/pk', '', 'InvalidRequest', /Missing argument/],
    ['GET', '/b/pk', 'sort_key=', 'InvalidRequest', /Missing argument/],
    ['GET', '/b/pk', 'sort_key=a&sort_key=b', 'InvalidRequest', /repeated/],
    ['POST', '/b', 'search&delete', 'InvalidRequest', /Multiple keywords/],
    ['PUT', '/b', '', 'InvalidRequest', /Invalid endpoint/],
    ['GET', '/b', 'search', 'InvalidRequest', /Invalid endpoint: `search`/],
    ['GET', '/b', 'limit=-1', 'InvalidRequest', /Failed to parse/],
    ['GET', '/b', 'reverse=yes', 'InvalidRequest', /Failed to parse/],
    ['PATCH', '/b/pk', 'sort_key=s', 'InvalidRequest', /Unknown method/],
    ['GET', '/b/%FF', 'sort_key=s', 'InvalidUtf8String', /UTF-8/],
  ]
  for (const [method, path, query, code, message] of bad) {
    test(`${method} ${path}?${query} is refused (${code})`, () => {
      assert.throws(
        () => parseK2vEndpoint(method, path, query),
        (e: unknown) => e instanceof ApiError && e.code === code && e.status === 400 && message.test(e.message),
      )
    })
  }

  test('reads need read permission, everything else write', () => {
    assert.equal(k2vAuthorization(parseK2vEndpoint('GET', '/b/p', 'sort_key=s')), 'read')
    assert.equal(k2vAuthorization(parseK2vEndpoint('POST', '/b', 'search')), 'read')
    assert.equal(k2vAuthorization(parseK2vEndpoint('POST', '/b/p', 'poll_range')), 'write')
    assert.equal(k2vAuthorization(parseK2vEndpoint('POST', '/b', 'delete')), 'write')
  })

  test('keyAfterPrefix increments the last character as Garage does', () => {
    assert.equal(keyAfterPrefix('abc'), 'abd')
    assert.equal(keyAfterPrefix('a\u{10FFFF}'), 'b')
    assert.equal(keyAfterPrefix('\u{D7FF}'), '\u{E000}')
    assert.equal(keyAfterPrefix('\u{10FFFF}'), undefined)
  })
})
