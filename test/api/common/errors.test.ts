/** How thrown errors become what S3 and admin clients see (one table for both APIs). */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { toAdminError } from '../../../lib/api/admin/errors.ts'
import { API_ERROR_STATUS, ApiError, isClientAbort, toApiError } from '../../../lib/api/common/errors.ts'
import { GarageError, ModelError, QuorumError, TimeoutError } from '../../../lib/util/errors.ts'

const cases: Array<[name: string, err: unknown, s3: [string, number], admin: [string, number]]> = [
  ['quorum failure', new QuorumError(2, 1, [new Error('down')]), ['ServiceUnavailable', 503], ['ServiceUnavailable', 503]],
  ['timeout', new TimeoutError('slow'), ['ServiceUnavailable', 503], ['ServiceUnavailable', 503]],
  ['remote failure', new GarageError('GARAGE_ERR_REMOTE', 'x'), ['ServiceUnavailable', 503], ['ServiceUnavailable', 503]],
  ['unknown bucket', new ModelError('NoSuchBucket', 'x'), ['NoSuchBucket', 404], ['NoSuchBucket', 404]],
  ['unknown key', new ModelError('NoSuchAccessKey', 'x'), ['InvalidAccessKeyId', 403], ['NoSuchAccessKey', 404]],
  ['bucket not empty', new ModelError('BucketNotEmpty', 'x'), ['BucketNotEmpty', 409], ['BucketNotEmpty', 409]],
  ['bad request', new ModelError('BadRequest', 'x'), ['InvalidRequest', 400], ['InvalidRequest', 400]],
  ['a bug', new TypeError('undefined is not a function'), ['InternalError', 500], ['InternalError', 500]],
  ['corrupt data', new GarageError('GARAGE_ERR_CORRUPT_DATA', 'x'), ['InternalError', 500], ['InternalError', 500]],
]

for (const [name, err, [s3Code, s3Status], [adminCode, adminStatus]] of cases) {
  test(`${name} → S3 ${s3Code} ${s3Status}, admin ${adminCode} ${adminStatus}`, () => {
    const a = toApiError(err)
    assert.equal(a.code, s3Code)
    assert.equal(a.status, s3Status)
    assert.equal(a.cause, err, 'the real cause is kept for the log')
    const b = toAdminError(err)
    assert.equal(b.code, adminCode)
    assert.equal(b.status, adminStatus)
  })
}

test('a 500 never shows the internal message to the client', () => {
  assert.doesNotMatch(toApiError(new Error('secret path /var/lib/x')).message, /secret/)
  assert.doesNotMatch(toAdminError(new Error('secret path /var/lib/x')).message, /secret/)
})

test('every S3 error code has a 3xx, 4xx or 5xx status and keeps it', () => {
  for (const [code, status] of Object.entries(API_ERROR_STATUS)) {
    assert.ok(status >= 300 && status < 600, `${code} has an HTTP error status`)
    const e = new ApiError(code as keyof typeof API_ERROR_STATUS, 'm')
    assert.equal(e.status, status)
    assert.equal(toApiError(e), e, `${code} passes through unchanged`)
  }
})

test('a client abort is a reset or premature close while the request connection is gone', () => {
  const aborted = Object.assign(new Error('aborted'), { code: 'ECONNRESET' })
  const premature = Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })
  const wrapped = new GarageError('GARAGE_ERR_INTERNAL', 'body read failed', { cause: aborted })
  const gone = { socket: { destroyed: true } }
  const detached = { socket: null }
  const alive = { socket: { destroyed: false } }
  // node:http fails an unread body with `aborted` when the client hangs up, even if every byte
  // of the body had arrived: the connection's state decides, not `req.complete`.
  assert.equal(isClientAbort(aborted, gone), true)
  assert.equal(isClientAbort(premature, detached), true)
  assert.equal(isClientAbort(wrapped, gone), true, 'found through the cause chain')
  // A reset of another connection (a peer node's) while the client still waits is ours to report.
  assert.equal(isClientAbort(aborted, alive), false)
  assert.equal(isClientAbort(new TypeError('bug'), gone), false)
})
