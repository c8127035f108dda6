/**
 * readAhead (lib/api/s3/get.ts), the GET path's block prefetch: items come out in order, one item
 * is read ahead of the one in use, and with a window more small items are read at once while
 * their sizes fit, so memory stays bounded by the window whatever the object size.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { readAhead } from '../../../lib/api/s3/get.ts'

/** Reads that resolve on the next macrotask, recording how many were in flight at most. */
function tracked(): { read: (n: number) => Promise<number>; peak: () => number; started: number[] } {
  let inFlight = 0
  let peak = 0
  const started: number[] = []
  return {
    started,
    peak: () => peak,
    read: (n) => {
      started.push(n)
      inFlight++
      peak = Math.max(peak, inFlight)
      return new Promise((resolve) =>
        setImmediate(() => {
          inFlight--
          resolve(n * 10)
        }),
      )
    },
  }
}

test('without a window: in order, the current item and the next one read at once', async () => {
  const t = tracked()
  const items = Array.from({ length: 20 }, (_, i) => i)
  const out: Array<[number, number]> = []
  for await (const pair of readAhead(items, t.read)) out.push(pair)
  assert.deepEqual(
    out,
    items.map((i) => [i, i * 10]),
  )
  assert.equal(t.peak(), 2)
})

test('with a window: small items are read many at once, within the bytes and the count', async () => {
  const items = Array.from({ length: 200 }, (_, i) => i)
  const small = tracked()
  const out: number[] = []
  for await (const [, r] of readAhead(items, small.read, { size: () => 64 * 1024, bytes: 2 * 1024 * 1024, items: 32 })) {
    out.push(r)
  }
  assert.deepEqual(
    out,
    items.map((i) => i * 10),
  )
  assert.equal(small.peak(), 32, 'as many as the count allows (32 × 64 KiB = 2 MiB)')
  const big = tracked()
  for await (const _ of readAhead(items.slice(0, 10), big.read, { size: () => 1024 * 1024, bytes: 2 * 1024 * 1024, items: 32 })) {
    // consumed
  }
  assert.equal(big.peak(), 2, '1 MiB items: the current one and the next, as without a window')
})

test('a failed read ahead is reported when its turn comes, not before', async () => {
  const items = [0, 1, 2, 3]
  const got: number[] = []
  const read = (n: number): Promise<number> => (n === 2 ? Promise.reject(new Error('block 2 lost')) : Promise.resolve(n))
  await assert.rejects(async () => {
    for await (const [, r] of readAhead(items, read, { size: () => 1, bytes: 100, items: 10 })) got.push(r)
  }, /block 2 lost/)
  assert.deepEqual(got, [0, 1])
})
