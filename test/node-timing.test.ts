/**
 * The `timing` option: checked eagerly by createGarageNode, and fed from `GARAGE_TS_TEST_*` only
 * by the CLI (lib/cli/_timing.ts). The library never reads those variables itself.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { timingFromEnv } from '../lib/cli/_timing.ts'
import { createGarageNode, InvalidConfigError, type NodeTiming } from '../lib/index.ts'

const base = { metadata_dir: '/nonexistent/meta', data_dir: '/nonexistent/data', env: {} }

test('createGarageNode accepts a timing with every documented field (no I/O before start)', () => {
  const timing: Required<NodeTiming> = {
    pingIntervalMsec: 1,
    statusExchangeIntervalMsec: 2,
    reconnectMinDelayMsec: 3,
    reconnectMaxDelayMsec: 4,
    shardedTableSyncIntervalMsec: 5,
    fullCopyTableSyncIntervalMsec: 6,
    tableTombstoneGcDelayMsec: 7,
    blockResyncDelayMsec: 8,
    blockResyncRetryDelayMsec: 9,
  }
  assert.doesNotThrow(() => createGarageNode({ ...base, timing }))
})

test('createGarageNode refuses a bad timing with InvalidConfigError naming the field', () => {
  const cases: Array<[unknown, string]> = [
    [{ pingIntervalMsec: 0 }, 'timing.pingIntervalMsec'],
    [{ blockResyncDelayMsec: -5 }, 'timing.blockResyncDelayMsec'],
    [{ tableTombstoneGcDelayMsec: 1.5 }, 'timing.tableTombstoneGcDelayMsec'],
    [{ shardedTableSyncIntervalMsec: '2000' }, 'timing.shardedTableSyncIntervalMsec'],
    [{ syncIntervalMs: 2000 }, 'timing.syncIntervalMs'],
    [{ reconnectMinDelayMsec: 10, reconnectMaxDelayMsec: 5 }, 'timing.reconnectMinDelayMsec'],
  ]
  for (const [timing, key] of cases) {
    assert.throws(
      () => createGarageNode({ ...base, timing: timing as NodeTiming }),
      (err: unknown) => err instanceof InvalidConfigError && err.key === key,
      JSON.stringify(timing),
    )
  }
})

test('the library ignores GARAGE_TS_TEST_* in its env option (only the CLI maps them)', () => {
  // A bad value would be refused if the library parsed it; it is not looked at.
  assert.doesNotThrow(() => createGarageNode({ ...base, env: { GARAGE_TS_TEST_RPC_INTERVAL_MSEC: 'nope' } }))
})

test('timingFromEnv maps the CLI variables onto the timing fields', () => {
  assert.deepEqual(timingFromEnv({}), {})
  assert.deepEqual(
    timingFromEnv({
      GARAGE_TS_TEST_RPC_INTERVAL_MSEC: '500',
      GARAGE_TS_TEST_SYNC_INTERVAL_MSEC: '2000',
      GARAGE_TS_TEST_TABLE_GC_DELAY_MSEC: '10000',
      GARAGE_TS_TEST_RESYNC_DELAY_MSEC: '200',
      GARAGE_TS_TEST_RESYNC_RETRY_MSEC: '300',
    }),
    {
      pingIntervalMsec: 500,
      statusExchangeIntervalMsec: 500,
      reconnectMinDelayMsec: 500,
      reconnectMaxDelayMsec: 1500,
      shardedTableSyncIntervalMsec: 2000,
      fullCopyTableSyncIntervalMsec: 2000,
      tableTombstoneGcDelayMsec: 10000,
      blockResyncDelayMsec: 200,
      blockResyncRetryDelayMsec: 300,
    },
  )
  // Values that are not positive integers are ignored, as before the option existed.
  assert.deepEqual(timingFromEnv({ GARAGE_TS_TEST_RPC_INTERVAL_MSEC: '0', GARAGE_TS_TEST_RESYNC_DELAY_MSEC: 'x' }), {})
})
