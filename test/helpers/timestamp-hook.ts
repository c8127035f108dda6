/**
 * Preloaded into a `garage server` child (ClusterNodeOptions.preload) to make a node's copy of
 * the object table miss a version, for the one-round write tests (docs/design/round-trips.md):
 *
 * - `GARAGE_TEST_TS_AHEAD_MSEC=N`: the versions this node writes are stamped N ms ahead
 *   (Garage.nextTimestamp shifted), as a node whose clock is ahead would stamp them, while its
 *   clock stays right for SigV4 and the cluster clock;
 * - `GARAGE_TEST_DROP_AHEAD_MSEC=N`: this node refuses (an error, as a node that was away does
 *   not answer) every write that carries an object row of a key under `stale/` with a version
 *   stamped more than N ms ahead of now, or a part row of such a key's multipart upload so
 *   stamped: the row comes through none of its paths (writes,
 *   repairs, anti-entropy, all of which go through TableData.updateInTx), and a write of it is
 *   acknowledged by the other two nodes, as it would be with this node away.
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
    const e = entry as { key?: unknown; versions?: Array<{ ts: number }>; partRow?: { ts: number } }
    const future = (ts: number): boolean => ts > Date.now() + dropAhead
    const table = this.schema.tableName
    if (
      typeof e.key === 'string' &&
      e.key.startsWith('stale/') &&
      ((table === 'object' && e.versions?.some((v) => future(v.ts)) === true) ||
        (table === 'multipart_upload' && e.partRow !== undefined && future(e.partRow.ts)))
    ) {
      throw new Error(`timestamp-hook: this node is away for ${e.key}`)
    }
    return update.call(this, tx, entry, raw)
  } as typeof update
}
