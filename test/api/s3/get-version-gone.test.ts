/**
 * A GET whose object row names a version that is gone by the time its blocks are read (an
 * overwrite completed in between) starts over from the object row; when every attempt finds its
 * version gone (a key rewritten faster than it can be read), the answer is 503 ServiceUnavailable,
 * which clients retry, not a 500 InternalError (a dangerous-mode chaos run answered 500).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ApiError } from '../../../lib/api/common/errors.ts'
import { handleGetObject } from '../../../lib/api/s3/get.ts'
import { versionBlock } from '../../../lib/model/s3/version-table.ts'
import { blake2sum, genUuid } from '../../../lib/util/data.ts'
import { startModel } from '../../helpers/model.ts'

test('a GET that finds its version gone on every attempt answers 503, not 500', async (t) => {
  const { garage } = await startModel(t)
  const bucketId = genUuid()
  const version = genUuid()
  const hash = blake2sum('raced body')
  // The object row still names the version, whose row an overwrite has deleted meanwhile.
  await garage.versionTable.insert({
    uuid: version,
    deleted: true,
    blocks: [versionBlock(1, 0, hash, 10)],
    partsEtags: [],
    backlink: { t: 'object', bucketId, key: 'raced' },
  })
  await garage.objectTable.insert({
    bucketId,
    key: 'raced',
    versions: [
      {
        uuid: version,
        ts: Date.now(),
        state: { t: 'complete', data: { t: 'firstBlock', meta: { size: 10, etag: 'e', headers: [] }, hash } },
      },
    ],
  })
  await assert.rejects(
    handleGetObject(garage, {}, bucketId, 'raced', { head: false, query: new URLSearchParams() }),
    (err: unknown) => {
      assert.ok(err instanceof ApiError, `an ApiError, got ${String(err)}`)
      assert.equal(err.code, 'ServiceUnavailable')
      assert.equal(err.status, 503)
      return true
    },
  )
})
