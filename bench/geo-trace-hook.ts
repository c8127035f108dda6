/**
 * Preloaded into each node of the geo bench (`--import`, after tsx): appends every RPC the node
 * makes, as `garage:net:call` publishes it (lib/net/netapp.ts), to
 * `$BENCH_TRACE_DIR/<pid>.jsonl`, one JSON object per line:
 * `{"from":"<id>","to":"<id>","path":"table/object","op":"update","startMs":…,"endMs":…,"ok":true}`.
 * bench/geo.ts reads these files to list the round trips of each S3 request. Does nothing when
 * BENCH_TRACE_DIR is unset.
 */
import { subscribe } from 'node:diagnostics_channel'
import { createWriteStream } from 'node:fs'
import { join } from 'node:path'
import type { NetCallEvent } from '../lib/net/netapp.ts'

const dir = process.env.BENCH_TRACE_DIR
if (dir !== undefined && dir !== '') {
  const out = createWriteStream(join(dir, `${process.pid}.jsonl`), { flags: 'a' })
  subscribe('garage:net:call', (message) => {
    const e = message as NetCallEvent
    const op = (e.req as { op?: unknown } | null)?.op
    const line = {
      from: e.from,
      to: e.to,
      path: e.path,
      op: typeof op === 'string' ? op : undefined,
      startMs: e.startMs,
      endMs: e.endMs,
      ok: e.ok,
    }
    out.write(`${JSON.stringify(line)}\n`)
  })
}
