/**
 * Preloaded into a `garage server` child (ClusterNodeOptions.preload) to make a node's copy of
 * the object table miss a version, for the one-round write tests (docs/design/round-trips.md):
 *
 * - `GARAGE_TEST_TS_AHEAD_MSEC=N`: the versions this node writes are stamped N ms ahead
 *   (Garage.nextTimestamp shifted), as a node whose clock is ahead would stamp them, while its
 *   clock stays right for SigV4 and the cluster clock;
 * - `GARAGE_TEST_DROP_AHEAD_MSEC=N`: this node does not store an object row of a key under
 *   `stale/` when one of its versions is stamped more than N ms ahead of now, as a node that was
 *   away when it was written (the row comes through none of its paths: writes, repairs,
 *   anti-entropy, all of which go through TableData.updateInTx).
 */
import { Garage } from '../../lib/model/garage.ts'
import { TableData } from '../../lib/table/data.ts'
import type { Transaction } from '../../lib/db/db.ts'

const ahead = Number(process.env.GARAGE_TEST_TS_AHEAD_MSEC ?? '0')
if (ahead !== 0) {
  const next = Garage.prototype.nextTimestamp
  Garage.prototype.nextTimestamp = function (this: Garage, previous: number | undefined): number {
    return next.call(this, previous) + ahead
  }
}

const dropAhead = Number(process.env.GARAGE_TEST_DROP_AHEAD_MSEC ?? '0')
if (dropAhead !== 0) {
  const update = TableData.prototype.updateInTx
  TableData.prototype.updateInTx = function (this: TableData<unknown>, tx: Transaction, entry: unknown, raw?: Uint8Array) {
    const e = entry as { key?: unknown; versions?: Array<{ ts: number }> }
    if (
      this.schema.tableName === 'object' &&
      typeof e.key === 'string' &&
      e.key.startsWith('stale/') &&
      e.versions?.some((v) => v.ts > Date.now() + dropAhead) === true
    ) {
      return undefined
    }
    return update.call(this, tx, entry, raw)
  } as typeof update
}
