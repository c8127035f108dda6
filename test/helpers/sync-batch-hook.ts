/**
 * Preloaded into a `garage server` child (ClusterNodeOptions.preload) to count the pages of
 * table entries it receives (`TableData.updateManyRaw`: anti-entropy pushes and hand-overs, one
 * call per RPC), per table. After each page it writes `SYNC_PAGES <json>` (table → { calls,
 * items, max }, the totals so far) to stdout, which the test reads from the process output: a
 * join that moved N entries in pages of at most `max` shows the transfer was paged (bounded memory
 * per message) rather than one message per partition. (It wrote once a second before; a join that
 * converged within that second left its last pages out of the last line the test read.)
 */
import { TableData } from '../../lib/table/data.ts'

const pages = new Map<string, { calls: number; items: number; max: number }>()
const original = TableData.prototype.updateManyRaw
TableData.prototype.updateManyRaw = function (this: TableData<unknown>, raws: readonly Uint8Array[]): void {
  const name = this.schema.tableName
  const p = pages.get(name) ?? { calls: 0, items: 0, max: 0 }
  p.calls++
  p.items += raws.length
  p.max = Math.max(p.max, raws.length)
  pages.set(name, p)
  original.call(this, raws)
  process.stdout.write(`SYNC_PAGES ${JSON.stringify(Object.fromEntries(pages))}\n`)
}
