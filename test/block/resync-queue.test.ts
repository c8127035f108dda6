/**
 * The resync queue on its own (lmdb on disk, a recording target): one entry per block with the
 * earliest requested time, requests made while the block is being checked kept for after the
 * check, a new request bringing a failed block's retry forward, and referenced blocks checked
 * before unreferenced ones in a backlog, and no tranquility pause after a fetch.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import { BlockResync, type ResyncTarget } from '../../lib/block/resync.ts'
import type { Db } from '../../lib/db/db.ts'
import { openLmdb } from '../../lib/db/lmdb.ts'
import { blake2sum, toHex } from '../../lib/util/data.ts'
import { silentLogger } from '../../lib/util/logger.ts'

async function queue(t: { after(fn: () => Promise<void>): void }, retryDelayMs = 60_000): Promise<{ q: BlockResync; db: Db }> {
  const dir = await mkdtemp(join(tmpdir(), 'garage-resync-queue-'))
  const db = await openLmdb(join(dir, 'meta'), { fsync: false })
  t.after(async () => {
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })
  return { q: new BlockResync({ db, log: silentLogger, retryDelayMs }), db }
}

const hashOf = (s: string): Uint8Array => blake2sum(Buffer.from(s))

/** Runs steps until nothing is due; returns the hashes checked, in order. */
async function drain(q: BlockResync, target: ResyncTarget, max = 100): Promise<string[]> {
  const seen: string[] = []
  const recording: ResyncTarget = {
    resyncBlock: async (h) => {
      seen.push(toHex(h))
      return target.resyncBlock(h)
    },
    ...(target.isReferenced === undefined ? {} : { isReferenced: (h) => target.isReferenced?.(h) === true }),
  }
  for (let i = 0; i < max; i++) if (typeof (await q.step(recording)) === 'object') break
  return seen
}

test('a block is queued once, at the earliest time asked', async (t) => {
  const { q } = await queue(t)
  const h = hashOf('a')
  const now = Date.now()
  q.put(h, now + 60_000)
  q.put(h, now - 10)
  q.put(h, now + 5_000)
  assert.equal(q.length(), 1, 'one entry per block')
  const seen = await drain(q, { resyncBlock: async () => {} })
  assert.deepEqual(seen, [toHex(h)], 'checked once, now (the earliest time asked)')
  assert.equal(q.length(), 0)
})

test('a request made while the block is checked is kept for after the check', async (t) => {
  const { q } = await queue(t)
  const h = hashOf('b')
  q.put(h, Date.now() - 1)
  let calls = 0
  const target: ResyncTarget = {
    resyncBlock: async (x) => {
      calls++
      // A block_ref arrives during the check (the check may already have looked at the count).
      if (calls === 1) q.put(x, Date.now() - 1)
    },
  }
  const seen = await drain(q, target)
  assert.deepEqual(seen, [toHex(h), toHex(h)], 'checked again after the request made during the first check')
  assert.equal(q.length(), 0)
})

test('a new request brings a failed block forward; a failure alone waits out its backoff', async (t) => {
  const { q } = await queue(t, 60_000)
  const h = hashOf('c')
  q.put(h, Date.now() - 1)
  const failing: ResyncTarget = {
    resyncBlock: async () => {
      throw new Error('no peer has it')
    },
  }
  assert.deepEqual(await drain(q, failing), [toHex(h)], 'one try, then the backoff')
  const [e] = q.listErrors()
  assert.equal(e?.errors, 1)
  assert.ok((e?.nextTry ?? 0) > Date.now() + 50_000, 'retried in a minute')
  assert.equal(q.length(), 1, 'still queued (at the retry time)')
  // A new reference (or a read that missed) asks again: the block is checked now.
  q.put(h, Date.now() - 1)
  assert.equal(q.length(), 1)
  assert.deepEqual(await drain(q, { resyncBlock: async () => {} }), [toHex(h)])
  assert.equal(q.listErrors().length, 0, 'the success clears the error')
  assert.equal(q.length(), 0)
})

test('in a backlog, referenced blocks are checked before unreferenced ones', async (t) => {
  const { q } = await queue(t)
  const now = Date.now()
  const garbage = Array.from({ length: 5 }, (_, i) => hashOf(`garbage-${i}`))
  const live = Array.from({ length: 3 }, (_, i) => hashOf(`live-${i}`))
  // The garbage checks came due first (older entries), the live ones after.
  for (const [i, h] of garbage.entries()) q.put(h, now - 10_000 + i)
  for (const [i, h] of live.entries()) q.put(h, now - 5_000 + i)
  const liveHex = new Set(live.map(toHex))
  const seen = await drain(q, { resyncBlock: async () => {}, isReferenced: (h) => liveHex.has(toHex(h)) })
  assert.deepEqual(seen.slice(0, 3), live.map(toHex), 'the referenced blocks first, in due order')
  assert.deepEqual(seen.slice(3), garbage.map(toHex), 'then the rest, in due order')
})

test('a block queued as urgent is checked before a backlog larger than the pick window', async (t) => {
  const { q, db } = await queue(t)
  const now = Date.now()
  // A backlog of garbage checks, all due, older than anything else (a layout change's sweep).
  const garbage = Array.from({ length: 150 }, (_, i) => hashOf(`old-${i}`))
  q.putMany(garbage, now - 60_000)
  // Referenced blocks whose references just arrived: due now, behind the whole backlog.
  const live = [hashOf('ref-1'), hashOf('ref-2')]
  for (const h of live) q.put(h, now - 1, true)
  const liveHex = new Set(live.map(toHex))
  const seen = await drain(q, { resyncBlock: async () => {}, isReferenced: (h) => liveHex.has(toHex(h)) }, 2)
  assert.deepEqual(seen, live.map(toHex), 'the urgent blocks first, in the order asked')
  assert.equal(q.length(), 150, 'the backlog stays queued')
  // Urgency is not persisted, the entries are: after a restart (a new queue on the same db), the
  // referenced blocks found in the kept queue are taken first again, then the rest, each once.
  const late = hashOf('ref-3')
  q.put(late, now - 1)
  const again = new BlockResync({ db, log: silentLogger })
  const order = await drain(again, { resyncBlock: async () => {}, isReferenced: (h) => toHex(h) === toHex(late) }, 200)
  assert.equal(order[0], toHex(late), 'the referenced block, 151st in due order, first after the restart')
  assert.equal(order.length, 151, 'every entry checked once')
  assert.equal(new Set(order).size, 151)
})

test('the worker pauses (tranquility) after a check, not after fetching a referenced block', async (t) => {
  const { q } = await queue(t)
  // Each step takes ≥ 30 ms: at tranquility 1000 the pause after it is the 10 s cap.
  q.tranquility = 1_000
  const fetched = hashOf('fetched')
  const checked = hashOf('checked')
  let stepDone = (): void => {}
  const target: ResyncTarget = {
    resyncBlock: async (h) => {
      await sleep(30)
      stepDone()
      return toHex(h) === toHex(fetched) ? 'fetched' : undefined
    },
  }
  const worker = q.worker(0, target)
  const ac = new AbortController()
  t.after(() => ac.abort())

  q.put(fetched, Date.now() - 1)
  let done = false
  const fetchStep = worker.work(ac.signal).then((s) => {
    done = true
    return s
  })
  const guard = sleep(5_000, 'paused' as const, { signal: ac.signal }).catch(() => 'aborted' as const)
  assert.equal(await Promise.race([fetchStep, guard]), 'busy', 'the fetch step returns without the 10 s pause')
  assert.ok(done)

  q.put(checked, Date.now() - 1)
  const stepped = new Promise<void>((r) => {
    stepDone = r
  })
  let checkDone = false
  const checkStep = worker.work(ac.signal).then(() => {
    checkDone = true
  })
  await stepped
  await sleep(200)
  assert.equal(checkDone, false, 'after a check, the worker sleeps its tranquility pause')
  ac.abort()
  await checkStep
  assert.equal(q.length(), 0, 'both blocks processed')
})
