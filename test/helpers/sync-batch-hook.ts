/**
 * Preloaded into a `garage server` child (ClusterNodeOptions.preload) to count the pages of
 * table entries it receives (`TableData.updateManyRaw`: anti-entropy pushes and hand-overs, one
 * call per RPC), per table. Every second (when they changed) it writes
 * `SYNC_PAGES <json>` (table → { calls, items, max }) to stdout, which the test reads from the
 * process output: a join that moved N entries in pages of at most `max` shows the transfer was
 * paged (bounded memory per message) rather than one message per partition.
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
}

let last = ''
const report = (): void => {
  const line = JSON.stringify(Object.fromEntries(pages))
  if (line === last) return
  last = line
  process.stdout.write(`SYNC_PAGES ${line}\n`)
}
setInterval(report, 1_000).unref()
