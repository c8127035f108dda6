/** The name rules (model/helper/names.ts) and the request value checks (api/common/validate.ts). */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { checkFieldValue, checkQueryEncoding, isValidFieldValue } from '../../lib/api/common/validate.ts'
import { MAX_SORT_KEY_BYTES } from '../../lib/table/data.ts'
import {
  checkBucketNameForLookup,
  checkK2vKey,
  checkKeyParameter,
  checkObjectKey,
  couldBeAccessKeyId,
  couldBeBucketName,
  isValidBucketName,
  MAX_K2V_KEY_BYTES,
  MAX_OBJECT_KEY_BYTES,
} from '../../lib/model/helper/names.ts'
import { ModelError } from '../../lib/util/errors.ts'

const refusedWith = (code: string) => (err: unknown) => err instanceof ModelError && err.modelCode === code

test('client name limits fit a table sort key', () => {
  assert.ok(MAX_OBJECT_KEY_BYTES <= MAX_SORT_KEY_BYTES)
  assert.ok(MAX_K2V_KEY_BYTES <= MAX_SORT_KEY_BYTES)
})

test('bucket names: creation rules, and the lookup rule (punycode allowed)', () => {
  const cases: Array<[string, boolean, boolean]> = [
    // name, valid for creation, may name an existing bucket
    ['abc', true, true],
    ['a'.repeat(63), true, true],
    ['a.b-c', true, true],
    ['xn--bucket', false, true],
    ['ab', false, false],
    ['a'.repeat(64), false, false],
    ['a'.repeat(9000), false, false],
    ['Upper', false, false],
    ['under_score', false, false],
    ['-dash', false, false],
    ['dash-', false, false],
    ['192.168.1.1', false, false],
    ['10.0.0.255', false, false],
    // Digits and dots that are no IPv4 address are names.
    ['1.2.3', true, true],
    ['123', true, true],
    ['1.2.3.4.5', true, true],
    ['name-s3alias', false, false],
    ['bad\nname', false, false],
    ['é-bucket', false, false],
  ]
  for (const [name, create, lookup] of cases) {
    assert.equal(isValidBucketName(name), create, `create ${name.slice(0, 20)}`)
    assert.equal(couldBeBucketName(name), lookup, `lookup ${name.slice(0, 20)}`)
    if (lookup) checkBucketNameForLookup(name)
    else assert.throws(() => checkBucketNameForLookup(name), refusedWith('InvalidBucketName'))
  }
})

test('object keys: 1 to 1024 bytes of well-formed UTF-8; control characters allowed', () => {
  for (const ok of ['a', 'k'.repeat(1024), 'é'.repeat(512), '😀'.repeat(256), 'ctl\x00\x01\x7f', 'a/b//c']) checkObjectKey(ok)
  for (const long of ['k'.repeat(1025), 'é'.repeat(513), '😀'.repeat(257), 'k'.repeat(9000)]) {
    assert.throws(() => checkObjectKey(long), refusedWith('NameTooLong'), `${Buffer.byteLength(long)} bytes`)
  }
  for (const bad of ['', 'lone \uD800 high', 'lone \uDC00 low', 'swapped \uDC00\uD800']) {
    assert.throws(() => checkObjectKey(bad), refusedWith('InvalidName'), JSON.stringify(bad))
  }
})

test('list parameters may be empty; K2V keys follow the object key rule', () => {
  checkKeyParameter('', 'prefix')
  checkKeyParameter('k'.repeat(1024), 'prefix')
  assert.throws(() => checkKeyParameter('k'.repeat(1025), 'prefix'), refusedWith('NameTooLong'))
  assert.throws(() => checkKeyParameter('\uD800', 'prefix'), refusedWith('InvalidName'))
  checkK2vKey('k'.repeat(1024), 'sort key')
  checkK2vKey('', 'start', true)
  assert.throws(() => checkK2vKey('', 'partition key'), refusedWith('InvalidName'))
  assert.throws(() => checkK2vKey('k'.repeat(1025), 'sort key'), refusedWith('NameTooLong'))
})

test('access key ids longer than 128 bytes name no key', () => {
  assert.ok(couldBeAccessKeyId(`GK${'0'.repeat(24)}`))
  assert.ok(couldBeAccessKeyId('k'.repeat(128)))
  assert.equal(couldBeAccessKeyId('k'.repeat(129)), false)
  assert.equal(couldBeAccessKeyId(''), false)
})

test('header field values: visible ASCII, space, tab and Latin-1 only', () => {
  for (const ok of ['text/plain', 'a\tb c', 'caf\u00e9', '\u00ff', '']) assert.ok(isValidFieldValue(ok), JSON.stringify(ok))
  for (const bad of ['a\r\nb', 'a\nb', 'a\rb', 'nul\0', 'bell\x07', 'esc\x1b', 'del\x7f', 'euro \u20ac', '\u0100', '😀']) {
    assert.equal(isValidFieldValue(bad), false, JSON.stringify(bad))
    assert.throws(() => checkFieldValue('response-content-type', bad), { code: 'InvalidArgument', status: 400 })
  }
})

test('query strings must be valid percent-encoded UTF-8', () => {
  for (const ok of ['', 'a=b', 'prefix=%C3%A9&list-type=2', 'x=%2F%2B+plus', 'flag', 'a=%E2%82%AC']) checkQueryEncoding(ok)
  for (const bad of ['prefix=%FF', 'a=%C3', 'a=%ED%A0%80', '%FF=1', 'a=%G1', 'a=%']) {
    assert.throws(() => checkQueryEncoding(bad), { code: 'InvalidArgument', status: 400 }, bad)
  }
})
