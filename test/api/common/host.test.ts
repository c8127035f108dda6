import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ApiError } from '../../../lib/api/common/errors.ts'
import { authorityToHost, hostToBucket } from '../../../lib/api/common/host.ts'

describe('authorityToHost', () => {
  const cases: Array<[string, string]> = [
    ['garage.tld', 'garage.tld'],
    ['garage.tld:65200', 'garage.tld'],
    ['Bucket.Garage.TLD:3900', 'bucket.garage.tld'],
    ['127.0.0.1', '127.0.0.1'],
    ['127.0.0.1:80', '127.0.0.1'],
    ['[::1]', '[::1]'],
    ['[::1]:3902', '[::1]'],
    ['[FE80::1]:3902', '[fe80::1]'],
  ]
  for (const [authority, host] of cases) {
    test(`${authority} → ${host}`, () => assert.equal(authorityToHost(authority), host))
  }

  for (const bad of ['', '[', '[hello', '[::1]x', '[::1]3900']) {
    test(`rejects ${JSON.stringify(bad)} as InvalidRequest`, () => {
      assert.throws(
        () => authorityToHost(bad),
        (err: unknown) => err instanceof ApiError && err.code === 'InvalidRequest',
      )
    })
  }
})

describe('hostToBucket', () => {
  const cases: Array<[host: string, root: string, bucket: string | undefined]> = [
    ['john.doe.garage.tld', '.garage.tld', 'john.doe'],
    ['john.doe.garage.tld', 'garage.tld', 'john.doe'],
    ['photos.s3.garage.tld', '.s3.garage.tld', 'photos'],
    ['Photos.S3.Garage.tld', '.s3.garage.tld', 'photos'],
    ['photos.s3.garage.tld', '.S3.GARAGE.TLD', 'photos'],
    ['john.doe.com', 'garage.tld', undefined],
    ['john.doe.com', '.garage.tld', undefined],
    ['garage.tld', 'garage.tld', undefined],
    ['garage.tld', '.garage.tld', undefined],
    ['not-garage.tld', 'garage.tld', undefined],
    ['not-garage.tld', '.garage.tld', undefined],
    ['.garage.tld', '.garage.tld', undefined],
    ['bucket.garage.tld', '', undefined],
    ['bucket.garage.tld', '.', undefined],
  ]
  for (const [host, root, bucket] of cases) {
    test(`${host} under ${JSON.stringify(root)} → ${String(bucket)}`, () => {
      assert.equal(hostToBucket(host, root), bucket)
    })
  }
})
