/**
 * RpcHelper's quorum rules with scripted node calls: reads ask the closest nodes first and one
 * more per failure, writes need a quorum in every set and fail as soon as one set cannot reach
 * it, deadlines become QuorumError, and writes still running after the answer finish.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { RpcHelper } from '../../lib/rpc/rpc-helper.ts'
import { isGarageError, QuorumError } from '../../lib/util/errors.ts'
import { silentLogger } from '../../lib/util/logger.ts'

type Behaviour = { ok: string } | { fail: string } | 'hang'

/** Node calls that answer after `delayMs` as scripted, recording who was called and aborted. */
function scripted(script: Record<string, Behaviour>, delayMs = 5) {
  const called: string[] = []
  const aborted: string[] = []
  const finished: string[] = []
  const call = (node: string, signal: AbortSignal): Promise<string> => {
    called.push(node)
    const b = script[node] ?? { fail: 'unknown node' }
    return new Promise<string>((resolve, reject) => {
      signal.addEventListener(
        'abort',
        () => {
          if (!finished.includes(node)) aborted.push(node)
        },
        { once: true },
      )
      if (b === 'hang') return
      setTimeout(() => {
        finished.push(node)
        if ('ok' in b) resolve(b.ok)
        else reject(new Error(b.fail))
      }, delayMs)
    })
  }
  return { call, called, aborted, finished }
}

const helper = (timeoutMs = 2_000): RpcHelper => new RpcHelper({ log: silentLogger, timeoutMs })

const isQuorumError = (err: unknown): boolean => {
  assert.ok(err instanceof QuorumError, `expected a QuorumError, got ${String(err)}`)
  assert.ok(isGarageError(err) && err.code === 'GARAGE_ERR_QUORUM', 'code GARAGE_ERR_QUORUM')
  return true
}

test('a read asks only as many nodes as the quorum needs, closest first', async () => {
  const s = scripted({ a: { ok: 'A' }, b: { ok: 'B' }, c: { ok: 'C' } })
  const res = await helper().tryCallMany(['a', 'b', 'c'], 2, s.call)
  assert.deepEqual(
    res.map((r) => [r.node, r.value]),
    [
      ['a', 'A'],
      ['b', 'B'],
    ],
  )
  assert.deepEqual(s.called, ['a', 'b'], 'the third node is never asked')
})

test('each failed read starts the next node in order', async () => {
  const s = scripted({ a: { fail: 'down' }, b: { ok: 'B' }, c: { ok: 'C' } })
  const res = await helper().tryCallMany(['a', 'b', 'c'], 2, s.call)
  assert.deepEqual(res.map((r) => r.node).sort(), ['b', 'c'])
  assert.deepEqual(s.called, ['a', 'b', 'c'])
})

test('a read fails with QuorumError once too few nodes are left, without waiting for the deadline', async () => {
  const s = scripted({ a: { fail: 'down' }, b: { fail: 'down too' }, c: { ok: 'C' } })
  const t0 = Date.now()
  await assert.rejects(helper(60_000).tryCallMany(['a', 'b', 'c'], 2, s.call), (err: unknown) => {
    isQuorumError(err)
    const causes = ((err as Error).cause as AggregateError).errors.map((e: Error) => e.message)
    assert.deepEqual(causes.sort(), ['down', 'down too'], 'every failure is kept as the cause')
    return true
  })
  assert.ok(Date.now() - t0 < 1_000, 'failed fast')
})

test('a read that can no longer reach its quorum aborts the calls still running', async () => {
  const s = scripted({ a: 'hang', b: { fail: 'down' }, c: { fail: 'down too' } })
  const t0 = Date.now()
  await assert.rejects(helper(2_000).tryCallMany(['a', 'b', 'c'], 2, s.call), isQuorumError)
  assert.ok(Date.now() - t0 < 1_000, 'failed once b and c had failed, not at the deadline')
  assert.deepEqual(s.called, ['a', 'b', 'c'])
  assert.deepEqual(s.aborted, ['a'], 'the call still running is aborted')
})

test('a read whose calls all reach their own deadline fails with QuorumError and aborts them', async () => {
  const s = scripted({ a: { ok: 'A' }, b: 'hang', c: 'hang' })
  const t0 = Date.now()
  await assert.rejects(helper(100).tryCallMany(['a', 'b', 'c'], 2, s.call), (err: unknown) => {
    isQuorumError(err)
    const causes = ((err as Error).cause as AggregateError).errors.map((e: Error) => e.message)
    assert.deepEqual(causes, ['call to b timed out after 100 ms', 'call to c timed out after 100 ms'])
    return true
  })
  const took = Date.now() - t0
  assert.ok(took >= 190 && took < 2_000, `b timed out, then c was asked and timed out (${took} ms)`)
  assert.deepEqual(s.called, ['a', 'b', 'c'])
  assert.deepEqual(s.aborted, ['b', 'c'], 'each hanging call is aborted at its deadline')
})

test('quorum 1: a first node past its deadline counts as failed and the next node is asked (Garage)', async () => {
  // The chaos suite's K2V finding: the whole call was bounded by one deadline, so an insert
  // whose first node was cut off answered 503 at that deadline and the next node was never asked.
  const s = scripted({ a: 'hang', b: { ok: 'B' }, c: { ok: 'C' } })
  const res = await helper(100).tryCallMany(['a', 'b', 'c'], 1, s.call)
  assert.deepEqual(
    res.map((r) => [r.node, r.value]),
    [['b', 'B']],
  )
  assert.deepEqual(s.called, ['a', 'b'], 'c is never asked')
  assert.deepEqual(s.aborted, ['a'], 'the call past its deadline is aborted')
})

test('a read hedges: a node silent past its hedge delay no longer holds the read, the next node is asked too', async () => {
  // The chaos suite's finding: with a peer behind a black hole (still "up" until its pings time
  // out), every quorum read that picked it waited for the whole deadline and failed with 503.
  const s = scripted({ a: { ok: 'A' }, b: 'hang', c: { ok: 'C' } })
  // b's call goes on after the answer, until its deadline: 2 s, not 60 (the file would wait for it).
  const res = await helper(2_000).tryCallMany(['a', 'b', 'c'], 2, s.call, {
    hedgeAfterMs: (n) => (n === 'a' ? undefined : 30),
  })
  assert.deepEqual(res.map((r) => r.node).sort(), ['a', 'c'], 'the quorum came from a and c')
  assert.deepEqual(s.called, ['a', 'b', 'c'])
  assert.deepEqual(s.aborted, [], 'the slow call is not aborted by the hedge (it still counts if it answers)')
  // Without hedging, the same read waits for b's own deadline, then asks c.
  const s2 = scripted({ a: { ok: 'A' }, b: 'hang', c: { ok: 'C' } })
  const t0 = Date.now()
  const res2 = await helper(150).tryCallMany(['a', 'b', 'c'], 2, s2.call)
  assert.deepEqual(res2.map((r) => r.node).sort(), ['a', 'c'])
  assert.ok(Date.now() - t0 >= 140, 'c was asked only once b had timed out')
  assert.deepEqual(s2.aborted, ['b'])
})

test('a slow node that answers first after the hedge still counts; fast answers ask nobody else', async () => {
  const slowB = scripted({ a: { ok: 'A' }, b: { ok: 'B' }, c: 'hang' }, 60)
  const res = await helper().tryCallMany(['a', 'b', 'c'], 2, slowB.call, { hedgeAfterMs: () => 20 })
  assert.deepEqual(res.map((r) => r.node).sort(), ['a', 'b'], 'a and b answered after c was asked; c hangs')
  assert.deepEqual(slowB.called, ['a', 'b', 'c'])
  const fast = scripted({ a: { ok: 'A' }, b: { ok: 'B' }, c: { ok: 'C' } }, 5)
  await helper().tryCallMany(['a', 'b', 'c'], 2, fast.call, { hedgeAfterMs: () => 1_000 })
  assert.deepEqual(fast.called, ['a', 'b'], 'no hedge when the quorum answers in time')
})

test('a per-call deadline overrides the default one', async () => {
  const s = scripted({ a: 'hang' })
  const t0 = Date.now()
  await assert.rejects(helper(60_000).tryCallMany(['a'], 1, s.call, { timeoutMs: 50 }), isQuorumError)
  assert.ok(Date.now() - t0 < 1_000, 'the 50 ms deadline applied')
})

test('a synchronous throw from a call counts as a failure', async () => {
  const res = await helper().tryCallMany(['a', 'b'], 1, (node) => {
    if (node === 'a') throw new Error('sync')
    return Promise.resolve(node)
  })
  assert.deepEqual(
    res.map((r) => r.value),
    ['b'],
  )
})

test('the caller aborting a read rejects it with the abort reason', async () => {
  const s = scripted({ a: 'hang' })
  const ac = new AbortController()
  const p = helper().tryCallMany(['a'], 1, s.call, { signal: ac.signal })
  ac.abort(new Error('stopping'))
  await assert.rejects(p, /stopping/)
  assert.deepEqual(s.aborted, ['a'])
})

test('a write resolves at the quorum of each set; the other calls finish in the background', async () => {
  const s = scripted({ a: { ok: 'A' }, b: { ok: 'B' }, c: { ok: 'C' } })
  // c answers much later than a and b.
  const slow = (node: string, signal: AbortSignal): Promise<string> =>
    node === 'c' ? new Promise((r) => setTimeout(r, 150)).then(() => s.call(node, signal)) : s.call(node, signal)
  const t0 = Date.now()
  await helper().tryWriteManySets([['a', 'b', 'c']], 2, slow)
  assert.ok(Date.now() - t0 < 120, 'did not wait for the slow node')
  assert.deepEqual(s.finished.sort(), ['a', 'b'])
  await new Promise((r) => setTimeout(r, 250))
  assert.deepEqual(s.finished.sort(), ['a', 'b', 'c'], 'the slow write completed after the answer')
  assert.deepEqual(s.aborted, [], 'nothing was aborted')
})

test('a write needs the quorum in every set (layout transition)', async () => {
  // Old set a,b,c; new set c,d,e: a and b succeed, but the new set only has c.
  const s = scripted({ a: { ok: '' }, b: { ok: '' }, c: { ok: '' }, d: { fail: 'down' }, e: { fail: 'down' } })
  await assert.rejects(
    helper().tryWriteManySets(
      [
        ['a', 'b', 'c'],
        ['c', 'd', 'e'],
      ],
      2,
      s.call,
    ),
    isQuorumError,
  )
  const ok = scripted({ a: { ok: '' }, b: { fail: 'down' }, c: { ok: '' }, d: { ok: '' }, e: 'hang' })
  await helper().tryWriteManySets(
    [
      ['a', 'b', 'c'],
      ['c', 'd', 'e'],
    ],
    2,
    ok.call,
  )
  assert.deepEqual([...new Set(ok.called)].sort(), ['a', 'b', 'c', 'd', 'e'], 'each node is called once')
  assert.equal(ok.called.length, 5, 'a node in two sets gets one call')
})

test('a write fails as soon as one set can no longer reach its quorum', async () => {
  const s = scripted({ a: { fail: 'down' }, b: { fail: 'down' }, c: 'hang' })
  const t0 = Date.now()
  await assert.rejects(helper(60_000).tryWriteManySets([['a', 'b', 'c']], 2, s.call), isQuorumError)
  assert.ok(Date.now() - t0 < 1_000, 'did not wait for the hanging node or the deadline')
})

test('a write that does not reach its quorum in time fails with QuorumError', async () => {
  const s = scripted({ a: { ok: '' }, b: 'hang', c: 'hang' })
  const t0 = Date.now()
  await assert.rejects(helper(100).tryWriteManySets([['a', 'b', 'c']], 2, s.call), isQuorumError)
  assert.ok(Date.now() - t0 < 1_000, 'gave up at the deadline')
})

test('a set smaller than the quorum needs all of its nodes', async () => {
  const s = scripted({ a: { ok: '' } })
  await helper().tryWriteManySets([['a']], 2, s.call)
  const f = scripted({ a: { fail: 'down' } })
  await assert.rejects(helper().tryWriteManySets([['a']], 2, f.call), isQuorumError)
})

test('background writes stop when the caller signal aborts', async () => {
  const s = scripted({ a: { ok: '' }, b: { ok: '' }, c: 'hang' })
  const ac = new AbortController()
  await helper().tryWriteManySets([['a', 'b', 'c']], 2, s.call, { signal: ac.signal })
  assert.deepEqual(s.aborted, [], 'still running after the answer')
  ac.abort()
  assert.deepEqual(s.aborted, ['c'], 'aborted with the caller signal')
})

test('an infinite deadline means no deadline', async () => {
  const res = await helper(Number.POSITIVE_INFINITY).tryCallMany(['a'], 1, async () => 'x')
  assert.equal(res[0]?.value, 'x')
})

test('no hedge towards an unresponsive peer, and no failover to one after a whole call deadline', async () => {
  // A node cut off from every peer: its own call fails at the deadline, the others are known
  // not to answer pings. Before: one more deadline per peer (a K2V insert answered 503 at 10.7 s).
  const s = scripted({ self: 'hang', b: 'hang', c: { ok: 'C' } })
  const t0 = Date.now()
  await assert.rejects(
    helper(100).tryCallMany(['self', 'b', 'c'], 1, s.call, { isUnresponsive: (n) => n !== 'self', hedgeAfterMs: () => 20 }),
    (err: unknown) => {
      isQuorumError(err)
      assert.match((err as Error).message, /not answering its pings/)
      return true
    },
  )
  assert.ok(Date.now() - t0 < 1_000, 'failed at the first deadline')
  assert.deepEqual(s.called, ['self'], 'neither hedged nor failed over to an unresponsive peer')
  // A responsive next node is still asked after the deadline (the K2V insert through a connected zone).
  const r = scripted({ a: 'hang', b: { ok: 'B' } })
  const res = await helper(100).tryCallMany(['a', 'b'], 1, r.call, { isUnresponsive: (n) => n === 'a' })
  assert.deepEqual(
    res.map((x) => x.value),
    ['B'],
  )
})

test('no failover to an unresponsive peer when a deadline fires a millisecond early by Date.now()', async () => {
  // Timers count whole milliseconds of the monotonic clock: about one deadline in ten fired with
  // Date.now() - start at the deadline - 1, and the unresponsive peer was then asked for a whole
  // second deadline (the cut-off node's DELETE answered 503 after 10,009 ms in the chaos suite).
  const h = helper(30)
  const asked = await Promise.all(
    Array.from({ length: 100 }, async (_, i) => {
      await sleep(i * 7)
      const called: string[] = []
      const call = (node: string, signal: AbortSignal): Promise<string> => {
        called.push(node)
        if (node === 'self') return Promise.resolve('S')
        return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }))
      }
      await assert.rejects(
        h.tryCallMany(['self', 'b', 'c'], 2, call, { isUnresponsive: (n) => n !== 'self', hedgeAfterMs: () => 10 }),
      )
      return called.includes('c')
    }),
  )
  assert.equal(asked.filter(Boolean).length, 0, 'the unresponsive peer is never asked after the first deadline')
})

test('an unresponsive peer asked after an early failure gets only what is left of the first deadline', async () => {
  // The chaos suite's cut-off node: one peer's call fails early (its connection dropped), the other
  // peer is known not to answer. Before: that peer got a whole new deadline (a GET answered its
  // 503 after 8.9 s with a 5 s deadline).
  const called: string[] = []
  const call = (node: string): Promise<string> => {
    called.push(node)
    if (node === 'self') return Promise.resolve('S')
    if (node === 'a') return new Promise((_, reject) => setTimeout(() => reject(new Error('connection closed')), 300))
    return new Promise(() => {})
  }
  const t0 = Date.now()
  await assert.rejects(helper(500).tryCallMany(['self', 'a', 'b'], 2, call, { isUnresponsive: (n) => n === 'b' }), isQuorumError)
  const took = Date.now() - t0
  assert.deepEqual(called, ['self', 'a', 'b'], 'the unresponsive peer was still asked before the deadline')
  assert.ok(took >= 480 && took < 700, `ended at the first deadline (${took} ms), not 300 ms + a whole one`)
})
