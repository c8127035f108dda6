/**
 * Concurrent PUTs and DELETEs while nodes are killed and restarted at random (3 nodes, 3 zones,
 * RF 3), then a check of the whole history: every acknowledged write is readable with its last
 * acknowledged content, no read returned a value older than one acknowledged before it started,
 * and listings contain every key whose acknowledged write must be visible. The checker itself is
 * tested first on hand-made histories (it must catch a stale read and a lost write).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { type ReplicatedCluster, startReplicatedCluster } from '../../helpers/cluster.ts'
import {
  checkHistory,
  finalCandidates,
  type History,
  type ReadRecord,
  runWorkload,
  settleFinal,
  type WriteRecord,
  workloadKeys,
} from '../../helpers/workload.ts'

const put = (id: number, key: string, value: string, start: number, end: number, acked = true): WriteRecord => ({
  id,
  key,
  kind: 'put',
  value,
  start,
  end,
  acked,
})
const del = (id: number, key: string, start: number, end: number, acked = true, marker = true): WriteRecord => ({
  id,
  key,
  kind: 'delete',
  value: null,
  start,
  end,
  acked,
  marker,
})
const read = (key: string, value: string | null, start: number, end: number): ReadRecord => ({
  key,
  value,
  start,
  end,
  source: 'n',
})

describe('the history checker', () => {
  test('accepts a sequential history and its reads', () => {
    const h: History = {
      writes: [put(0, 'k', 'a', 0, 100), put(1, 'k', 'b', 200, 300), del(2, 'k', 400, 500), put(3, 'j', 'c', 0, 50)],
      reads: [read('k', null, -50, -10), read('k', 'a', 120, 180), read('k', 'b', 310, 350), read('k', null, 600, 650)],
      finals: [
        { source: 'n1', key: 'k', value: null },
        { source: 'n1', key: 'j', value: 'c' },
      ],
      listings: [{ source: 'n1', keys: ['j'] }],
    }
    assert.deepEqual(checkHistory(h), [])
  })

  test('catches a stale read: an older value after a newer one was acknowledged', () => {
    const h: History = {
      writes: [put(0, 'k', 'a', 0, 100), put(1, 'k', 'b', 200, 300)],
      reads: [read('k', 'a', 400, 450)],
    }
    const v = checkHistory(h)
    assert.equal(v.length, 1, `one violation, got ${JSON.stringify(v)}`)
    assert.match(v[0] as string, /^stale read/)
  })

  test('catches a read of a deleted key that shows the old value, and a read of nothing after a PUT', () => {
    const h: History = {
      writes: [put(0, 'k', 'a', 0, 100), del(1, 'k', 200, 300, true, false)],
      reads: [read('k', 'a', 400, 450)],
    }
    assert.match(checkHistory(h)[0] ?? '', /^stale read/)
    const h2: History = { writes: [put(0, 'k', 'a', 0, 100)], reads: [read('k', null, 200, 250)] }
    assert.match(checkHistory(h2)[0] ?? '', /^stale read/)
  })

  test('accepts reads of values written concurrently with the read, acked or not', () => {
    const h: History = {
      writes: [put(0, 'k', 'a', 0, 100), put(1, 'k', 'b', 150, 300, false), put(2, 'k', 'c', 160, 400)],
      reads: [read('k', 'a', 170, 180), read('k', 'b', 200, 350), read('k', 'c', 350, 420), read('k', 'a', 120, 500)],
    }
    assert.deepEqual(checkHistory(h), [])
  })

  test('catches a read of a value no write produced, or produced only after the read', () => {
    const h: History = { writes: [put(0, 'k', 'a', 500, 600)], reads: [read('k', 'zzz', 0, 10), read('k', 'a', 100, 200)] }
    const v = checkHistory(h)
    assert.equal(v.length, 2, JSON.stringify(v))
    assert.match(v[0] as string, /no write produced/)
    assert.match(v[1] as string, /started after the read ended/)
  })

  test('catches a lost write: the last acknowledged value is gone at the end', () => {
    const writes = [put(0, 'k', 'a', 0, 100), put(1, 'k', 'b', 200, 300)]
    const lostToAbsent = checkHistory({ writes, reads: [], finals: [{ source: 'n2', key: 'k', value: null }] })
    assert.equal(lostToAbsent.length, 1, JSON.stringify(lostToAbsent))
    assert.match(lostToAbsent[0] as string, /^lost write: k on n2 ends as absent/)
    const lostToOlder = checkHistory({ writes, reads: [], finals: [{ source: 'n2', key: 'k', value: 'a' }] })
    assert.match(lostToOlder[0] as string, /^lost write/)
    assert.deepEqual(checkHistory({ writes, reads: [], finals: [{ source: 'n2', key: 'k', value: 'b' }] }), [])
  })

  test('a write that was not acknowledged may or may not be there, unless a later write hides it', () => {
    const h: History = { writes: [put(0, 'k', 'a', 0, 100), put(1, 'k', 'b', 200, 300, false)], reads: [] }
    assert.deepEqual(finalCandidates(h, 'k').sort(), ['a', 'b'])
    h.writes.push(put(2, 'k', 'c', 400, 500))
    assert.deepEqual(finalCandidates(h, 'k'), ['c'])
    // A DELETE that wrote no marker only hides what it could see: acknowledged writes.
    const h2: History = {
      writes: [put(0, 'k', 'a', 0, 100), put(1, 'k', 'b', 200, 300, false), del(2, 'k', 400, 500, true, false)],
      reads: [],
    }
    assert.deepEqual(finalCandidates(h2, 'k').sort(), ['b', null].sort())
    const h3: History = {
      writes: [put(0, 'k', 'a', 0, 100), put(1, 'k', 'b', 200, 300, false), del(2, 'k', 400, 500, true, true)],
      reads: [],
    }
    assert.deepEqual(finalCandidates(h3, 'k'), [null])
    // A write that timed out on the client may land at any time.
    const h4: History = { writes: [put(0, 'k', 'a', 0, Number.POSITIVE_INFINITY, false), put(1, 'k', 'b', 200, 300)], reads: [] }
    assert.deepEqual(finalCandidates(h4, 'k').sort(), ['a', 'b'])
  })

  test('listings must contain every key that must exist and no key that must be absent', () => {
    const writes = [put(0, 'a', 'x', 0, 100), put(1, 'b', 'y', 0, 100), del(2, 'b', 200, 300), put(3, 'c', 'z', 0, 100, false)]
    assert.deepEqual(checkHistory({ writes, reads: [], listings: [{ source: 'n', keys: ['a'] }] }), [])
    assert.deepEqual(checkHistory({ writes, reads: [], listings: [{ source: 'n', keys: ['a', 'c'] }] }), [])
    const missing = checkHistory({ writes, reads: [], listings: [{ source: 'n', keys: [] }] })
    assert.match(missing.join('\n'), /lacks a/)
    const extra = checkHistory({ writes, reads: [], listings: [{ source: 'n', keys: ['a', 'b', 'q'] }] })
    assert.match(extra.join('\n'), /has b, which must be absent/)
    assert.match(extra.join('\n'), /has q, which was never written/)
  })

  test('with requireAgreement, sources that answer differently are reported', () => {
    const writes = [put(0, 'k', 'a', 0, 100), put(1, 'k', 'b', 50, 150)]
    const finals = [
      { source: 'n1', key: 'k', value: 'a' },
      { source: 'n2', key: 'k', value: 'b' },
    ]
    assert.deepEqual(checkHistory({ writes, reads: [], finals }), [])
    assert.equal(checkHistory({ writes, reads: [], finals }, { requireAgreement: true }).length, 1)
  })
})

describe('a workload under random node kills (3 nodes, RF 3)', { timeout: 180_000 }, () => {
  let cluster: ReplicatedCluster
  const BLOCK = 64 * 1024
  before(async () => {
    cluster = await startReplicatedCluster({
      nodes: 3,
      configLines: ['rpc_timeout_msec = 3000', `block_size = ${BLOCK}`, 'block_gc_delay_msec = 2000'],
    })
  })
  after(async () => {
    await cluster?.stop()
  })

  test('every acknowledged write survives, no stale read, listings agree', async (t) => {
    const prefix = 'wl/'
    const keyCount = 6
    const result = await runWorkload({
      cluster,
      prefix,
      keys: keyCount,
      writers: 4,
      readers: 2,
      durationMs: 25_000,
      blockSize: BLOCK,
      seed: 6,
      chaos: { upMs: [1_500, 3_000], downMs: [1_000, 2_500] },
    })
    const { stats, events } = result
    const info = `stats ${JSON.stringify(stats)}; events:\n${events.join('\n')}`
    for (const line of info.split('\n')) t.diagnostic(line)
    assert.ok(stats.kills >= 2, `at least two nodes were killed during the run (${info})`)
    assert.ok(stats.acked >= 40, `enough writes were acknowledged to mean something (${info})`)
    assert.ok(stats.reads >= 40, `enough reads were observed (${info})`)

    assert.deepEqual(result.clientErrors, [], 'no request was refused with a 4xx')
    const final = await settleFinal(cluster, workloadKeys(prefix, keyCount), prefix)
    const violations = checkHistory({ ...result.history, ...final }, { requireAgreement: true })
    const unacked = result.history.writes.filter((w) => !w.acked)
    assert.deepEqual(
      violations,
      [],
      `${info}\nunacknowledged writes:\n${unacked.map((w) => `#${w.id} ${w.kind} ${w.key}: ${w.attempts?.join('; ')}`).join('\n')}`,
    )
  })
})
