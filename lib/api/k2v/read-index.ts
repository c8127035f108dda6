/**
 * ReadIndex (port of garage_api_k2v::index): the partition keys of a bucket with their counts,
 * read from `k2v_index_counter_v2`. A partition key whose counts are all zero on the current
 * storage nodes is left out.
 * @internal
 */
import { counterIsZero, filteredCounterValues } from '../../model/index-counter.ts'
import type { ApiResponse } from '../common/server.ts'
import type { K2vCtx } from './context.ts'
import { jsonResponse } from './item.ts'
import { readRange } from './range.ts'

export async function handleReadIndex(
  ctx: K2vCtx,
  q: {
    prefix: string | undefined
    start: string | undefined
    end: string | undefined
    limit: number | undefined
    reverse: boolean | undefined
  },
): Promise<ApiResponse> {
  const reverse = q.reverse ?? false
  const nodes = ctx.garage.k2v.storageNodes()
  const r = await readRange(
    ctx.garage.k2v.counter.table,
    ctx.bucketId,
    (e) => e.sk,
    { ...q, reverse },
    (e) => !counterIsZero(e, nodes),
  )
  return jsonResponse({
    prefix: q.prefix ?? null,
    start: q.start ?? null,
    end: q.end ?? null,
    limit: q.limit ?? null,
    reverse,
    partitionKeys: r.entries.map((e) => {
      const v = filteredCounterValues(e, nodes)
      return { pk: e.sk, entries: v.entries ?? 0, conflicts: v.conflicts ?? 0, values: v.values ?? 0, bytes: v.bytes ?? 0 }
    }),
    more: r.more,
    nextStart: r.nextStart ?? null,
  })
}
