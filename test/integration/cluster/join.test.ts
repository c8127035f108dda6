/**
 * A fresh node joins a 3-node cluster (RF 3) that holds 2,000 objects loaded through the model
 * layer and 6 objects of 3 blocks written through S3 (bench/join.ts's scenario, small): after the
 * layout change that gives it a role, it converges — for every partition it now holds, each
 * sharded table has the same entries, byte for byte, as an old holder, and every block of those
 * partitions is in its data directory — and the entries reached it in pages (at most 256 per
 * anti-entropy message), not as one message per partition. No speed is asserted; the bench
 * (`npm run bench:join`) measures it.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { nodesOfPartition, partitionOf } from '../../../lib/rpc/layout/version.ts'
import { joinAndWait, type LoadedCluster, SHARDED_TABLES, startLoadedCluster } from '../../../bench/join.ts'
import { readTableContents } from '../../helpers/cluster.ts'
import { eventually } from '../../helpers/eventually.ts'

const OBJECTS = 2_000
const HOOK = fileURLToPath(new URL('../../helpers/sync-batch-hook.ts', import.meta.url))

describe('a node joining a cluster that holds 2,000 objects', { timeout: 1_200_000 }, () => {
  let loaded: LoadedCluster | undefined
  /** A failed start, reported by the test (node:test drops a describe-level hook's error). */
  let startError: unknown
  before(async () => {
    try {
      loaded = await startLoadedCluster({ objects: OBJECTS, buckets: 64, blockObjects: 6, joinerPreload: [HOOK] })
    } catch (err) {
      startError = err
    }
  })
  after(async () => {
    await loaded?.cluster.stop()
  })

  test('converges: tables equal, blocks present, entries received in pages', async (t) => {
    if (startError !== undefined || loaded === undefined) throw startError
    const l = loaded
    // The loaded rows and the 6 written through S3.
    assert.equal(
      l.rowsPerPartition.reduce((a, b) => a + b, 0),
      OBJECTS + 6,
    )
    assert.ok(l.blocks.length >= 18, `6 objects of 2.5 blocks: ${l.blocks.length} blocks`)
    // Waits on the end conditions (Merkle roots equal, nothing left to fold, blocks present).
    const r = await joinAndWait(l, { timeoutMs: 900_000 })
    t.diagnostic(`tables equal after ${Math.round(r.tablesEqualS)} s, blocks present after ${Math.round(r.blocksPresentS)} s`)
    const joiner = l.cluster.node(r.joiner)
    const mine = (keyHex: string): boolean =>
      nodesOfPartition(r.layout, partitionOf(Buffer.from(keyHex.slice(0, 64), 'hex'))).includes(joiner.id)

    // Byte for byte: the joiner's entries of each sharded table are the old nodes' entries of
    // the joiner's partitions (an old node that lost one of them hands it over and drops it,
    // so the union of the three is compared).
    const [theirs, ours] = await Promise.all([
      Promise.all([0, 1, 2].map((i) => readTableContents(l.cluster.node(i)))),
      readTableContents(joiner),
    ])
    let objectRows = 0
    for (const table of SHARDED_TABLES) {
      const expected = new Map<string, string>()
      for (const c of theirs) for (const [k, v] of c.get(table) ?? []) if (mine(k)) expected.set(k, v)
      const got = ours.get(table) ?? new Map<string, string>()
      assert.deepEqual(new Set(got.keys()), new Set(expected.keys()), `${table}: the joiner has its partitions' entries`)
      for (const [k, v] of expected) assert.equal(got.get(k), v, `${table} ${k.slice(0, 16)}… equal on the joiner`)
      if (table === 'object') objectRows = got.size
    }
    assert.equal(objectRows, r.expectedRows)
    // 3 of 4 nodes hold each partition: the joiner got about 3/4 of the rows (not all, not none).
    assert.ok(objectRows > OBJECTS / 2 && objectRows < OBJECTS, `${objectRows} object rows on the joiner`)

    // Paged: the hook in the joiner counted the pages of entries it received, and reports the
    // totals after each page; its last report may still be in the pipe when the tables are
    // equal, so the object rows' report is awaited (and checked below if it never comes).
    type Pages = Record<string, { calls: number; items: number; max: number } | undefined>
    const lastReport = (): { line: string; pages: Pages } | undefined => {
      const lines = joiner.proc.output().match(/^SYNC_PAGES .*$/gm) ?? []
      const line = lines[lines.length - 1]
      return line === undefined ? undefined : { line, pages: JSON.parse(line.slice('SYNC_PAGES '.length)) as Pages }
    }
    await eventually(
      'the joiner reporting every object row it received',
      () => (lastReport()?.pages.object?.items ?? 0) >= objectRows,
      {
        timeoutMs: 10_000,
      },
    ).catch(() => undefined)
    const report = lastReport()
    assert.ok(report !== undefined, 'the joiner reported the pages it received')
    const obj = report.pages.object
    assert.ok(obj !== undefined, `object entries were received through anti-entropy: ${report.line}`)
    t.diagnostic(`object entries received: ${obj.items} in ${obj.calls} pages of at most ${obj.max}`)
    assert.ok(obj.items >= objectRows, `every object row came through anti-entropy (${obj.items} ≥ ${objectRows})`)
    assert.ok(obj.max <= 256, `pages of at most 256 entries (largest: ${obj.max})`)
    assert.ok(obj.calls >= Math.ceil(objectRows / 256), `${obj.calls} pages for ${objectRows} rows`)
  })
})
