/**
 * `garage server`'s route for test timings into a child process: the `GARAGE_TS_TEST_*`
 * environment variables, mapped here into the library's typed `timing` option. Only the CLI
 * reads them; `createGarageNode` never looks at process.env for timings (docs/design/timing.md).
 * A value that is not a positive integer is ignored, as it always was.
 */
import type { NodeTiming } from '../index.ts'

/** The variables `garage server` reads, and what each sets. Not Garage settings; unset in production. */
export const TIMING_ENV = {
  /** Membership: ping and status periods and the first reconnection delay (the longest: three times it). */
  rpcInterval: 'GARAGE_TS_TEST_RPC_INTERVAL_MSEC',
  /** Full anti-entropy period of every table, sharded and full-copy. */
  syncInterval: 'GARAGE_TS_TEST_SYNC_INTERVAL_MSEC',
  /** Age at which table tombstones are collected. */
  tableGcDelay: 'GARAGE_TS_TEST_TABLE_GC_DELAY_MSEC',
  /** Delay after a block's first reference before checking that it arrived. */
  resyncDelay: 'GARAGE_TS_TEST_RESYNC_DELAY_MSEC',
  /** Base of the resync retry backoff. */
  resyncRetry: 'GARAGE_TS_TEST_RESYNC_RETRY_MSEC',
} as const

function msec(raw: string | undefined): number | undefined {
  const n = raw === undefined ? Number.NaN : Number(raw)
  return Number.isSafeInteger(n) && n > 0 ? n : undefined
}

/** The `timing` option the `GARAGE_TS_TEST_*` variables of `env` ask for (empty when none is set). */
export function timingFromEnv(env: Record<string, string | undefined>): NodeTiming {
  const t: NodeTiming = {}
  const rpc = msec(env[TIMING_ENV.rpcInterval])
  if (rpc !== undefined) {
    t.pingIntervalMsec = rpc
    t.statusExchangeIntervalMsec = rpc
    t.reconnectMinDelayMsec = rpc
    t.reconnectMaxDelayMsec = 3 * rpc
  }
  const sync = msec(env[TIMING_ENV.syncInterval])
  if (sync !== undefined) {
    t.shardedTableSyncIntervalMsec = sync
    t.fullCopyTableSyncIntervalMsec = sync
  }
  const gc = msec(env[TIMING_ENV.tableGcDelay])
  if (gc !== undefined) t.tableTombstoneGcDelayMsec = gc
  const resync = msec(env[TIMING_ENV.resyncDelay])
  if (resync !== undefined) t.blockResyncDelayMsec = resync
  const retry = msec(env[TIMING_ENV.resyncRetry])
  if (retry !== undefined) t.blockResyncRetryDelayMsec = retry
  return t
}
