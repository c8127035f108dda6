/**
 * The `timing` option of `createGarageNode`: periods and delays of the background machinery,
 * in one typed, checked object. Production leaves it unset (Garage's values); tests shorten it
 * so that a cluster heals in seconds instead of minutes. Internal to lib/node.ts, which checks
 * it eagerly and hands each component its slice.
 *
 * The library never reads these from the environment: `garage server` maps its own
 * test-timing environment variables into this object (lib/cli/_timing.ts, see docs/design/timing.md).
 */
import type { SystemTiming } from '../rpc/system.ts'
import { InvalidConfigError } from '../util/errors.ts'

/**
 * Periods and delays of a node's background work, in milliseconds. Every field is optional and
 * defaults to Garage's production value; none of them is a `garage.toml` key. Meant for tests
 * (ours and yours) that need failures detected and replicas repaired within seconds.
 */
export interface NodeTiming {
  /** How often membership pings every peer; four failed pings mark it down. Default 10 000 (10 s). */
  pingIntervalMsec?: number
  /** How often nodes exchange statuses and peer lists. Default 10 000 (10 s, Garage's STATUS_EXCHANGE_INTERVAL). */
  statusExchangeIntervalMsec?: number
  /** First delay before reconnecting to a lost peer, doubled on each failure. Default 5 000 (5 s). */
  reconnectMinDelayMsec?: number
  /** Longest delay between reconnection attempts. Default 30 000 (30 s, Garage's CONN_RETRY_INTERVAL). */
  reconnectMaxDelayMsec?: number
  /** Period of the full anti-entropy sync of sharded tables (object, version, block_ref, multipart). Default 600 000 (10 min). */
  shardedTableSyncIntervalMsec?: number
  /** Period of the full anti-entropy sync of full-copy tables (bucket, alias, key, admin token). Default 10 000 (10 s). */
  fullCopyTableSyncIntervalMsec?: number
  /** Age at which a table tombstone is collected once every holder has it. Default 86 400 000 (24 h). */
  tableTombstoneGcDelayMsec?: number
  /** Delay after a block's first reference before checking that the block arrived. Default 180 000 (3 min). */
  blockResyncDelayMsec?: number
  /** Base of the backoff after a failed block resync (doubled per failure, up to 2^6 times). Default 60 000 (60 s). */
  blockResyncRetryDelayMsec?: number
}

const FIELDS = [
  'pingIntervalMsec',
  'statusExchangeIntervalMsec',
  'reconnectMinDelayMsec',
  'reconnectMaxDelayMsec',
  'shardedTableSyncIntervalMsec',
  'fullCopyTableSyncIntervalMsec',
  'tableTombstoneGcDelayMsec',
  'blockResyncDelayMsec',
  'blockResyncRetryDelayMsec',
] as const satisfies ReadonlyArray<keyof NodeTiming>

/**
 * Checks a `timing` option: known fields only, each a positive integer (ms). Throws
 * InvalidConfigError naming the field. Returns a copy without undefined fields.
 */
export function checkTiming(timing: NodeTiming | undefined): Readonly<NodeTiming> {
  if (timing === undefined) return {}
  if (typeof timing !== 'object' || timing === null) {
    throw new InvalidConfigError('timing', 'expected an object of millisecond periods')
  }
  const out: NodeTiming = {}
  for (const [name, value] of Object.entries(timing)) {
    if (!(FIELDS as readonly string[]).includes(name)) {
      throw new InvalidConfigError(`timing.${name}`, `unknown field; known fields: ${FIELDS.join(', ')}`)
    }
    if (value === undefined) continue
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
      throw new InvalidConfigError(`timing.${name}`, `expected a positive integer number of milliseconds, got ${String(value)}`)
    }
    out[name as keyof NodeTiming] = value
  }
  const { reconnectMinDelayMsec: min, reconnectMaxDelayMsec: max } = out
  if (min !== undefined && max !== undefined && min > max) {
    throw new InvalidConfigError('timing.reconnectMinDelayMsec', `must not exceed reconnectMaxDelayMsec (${max})`)
  }
  return out
}

/** The membership slice (lib/rpc/system.ts). */
export function systemTimingOf(t: Readonly<NodeTiming>): Partial<SystemTiming> {
  return {
    ...(t.pingIntervalMsec === undefined ? {} : { pingIntervalMs: t.pingIntervalMsec }),
    ...(t.statusExchangeIntervalMsec === undefined ? {} : { statusIntervalMs: t.statusExchangeIntervalMsec }),
    ...(t.reconnectMinDelayMsec === undefined ? {} : { retryMinMs: t.reconnectMinDelayMsec }),
    ...(t.reconnectMaxDelayMsec === undefined ? {} : { retryMaxMs: t.reconnectMaxDelayMsec }),
  }
}

/** The block manager slice (lib/block/manager.ts). */
export function blockTimingOf(t: Readonly<NodeTiming>): { resyncDelayMsec?: number; resyncRetryDelayMsec?: number } {
  return {
    ...(t.blockResyncDelayMsec === undefined ? {} : { resyncDelayMsec: t.blockResyncDelayMsec }),
    ...(t.blockResyncRetryDelayMsec === undefined ? {} : { resyncRetryDelayMsec: t.blockResyncRetryDelayMsec }),
  }
}
