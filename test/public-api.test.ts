/** The names exported by the package's entry points (the API report in etc/ has the types). */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import * as garage from '../lib/index.ts'
import * as testing from '../lib/testing.ts'

test('lib/index.ts exports exactly the public runtime names', () => {
  assert.deepEqual(Object.keys(garage).sort(), [
    'ADMIN_API_ROUTES',
    'CorruptDataError',
    'GARAGE_ERROR_CODES',
    'GarageError',
    'InvalidConfigError',
    'LOG_FORMATS',
    'LOG_LEVELS',
    'ModelError',
    'QuorumError',
    'TimeoutError',
    'createGarageNode',
    'formatBindAddr',
    'isGarageError',
    'parseConfigToml',
    'parseDurationString',
    'parseSizeString',
    'readConfigFile',
    'resolveConfig',
    'silentLogger',
  ])
})

test('garage-ts/testing exports startTestNode and startTestCluster', () => {
  assert.deepEqual(Object.keys(testing).sort(), ['startTestCluster', 'startTestNode'])
})

test('every error code is documented and every error class carries its code', () => {
  for (const [code, text] of Object.entries(garage.GARAGE_ERROR_CODES)) {
    assert.match(code, /^GARAGE_ERR_[A-Z_]+$/)
    assert.ok(text.length > 10, `${code} has a description`)
  }
  const cases: Array<[garage.GarageError, string]> = [
    [new garage.QuorumError(2, 1, [new Error('x')]), 'GARAGE_ERR_QUORUM'],
    [new garage.TimeoutError('t'), 'GARAGE_ERR_TIMEOUT'],
    [new garage.CorruptDataError('c'), 'GARAGE_ERR_CORRUPT_DATA'],
    [new garage.InvalidConfigError('k', 'm'), 'GARAGE_ERR_INVALID_CONFIG'],
    [new garage.ModelError('NoSuchBucket', 'm'), 'GARAGE_ERR_MODEL'],
  ]
  for (const [err, code] of cases) {
    assert.equal(err.code, code)
    assert.ok(garage.isGarageError(err), `${code} is recognised as a GarageError`)
    assert.ok(code in garage.GARAGE_ERROR_CODES, `${code} is listed`)
  }
  assert.equal(garage.isGarageError(new Error('plain')), false)
})
