/** The GC queue's keys: the time big-endian, then the item key; read back as written. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { gcTodoKey, parseGcTodoKey } from '../../lib/table/data.ts'

test('gcTodoKey writes the time as a u64 big-endian and parseGcTodoKey reads it back', () => {
  const times = [0, 1, 255, 256, 65_535, 2 ** 32 - 1, 2 ** 32, 1_796_517_657_019, Number.MAX_SAFE_INTEGER]
  for (let i = 0; i < 200; i++) times.push(Math.floor(Math.random() * 2 ** 48))
  const item = Uint8Array.from([9, 8, 7])
  for (const time of times) {
    const k = gcTodoKey(time, item)
    const want = Buffer.alloc(8)
    want.writeBigUInt64BE(BigInt(time))
    assert.deepEqual([...k.subarray(0, 8)], [...want], String(time))
    assert.deepEqual([...k.subarray(8)], [...item])
    const back = parseGcTodoKey(k)
    assert.equal(back.time, time)
    assert.deepEqual([...back.key], [...item])
  }
  // Keys sort by time (the GC worker reads them in order).
  assert.ok(Buffer.compare(gcTodoKey(1000, item), gcTodoKey(1001, item)) < 0)
  assert.equal(gcTodoKey(-5, item)[7], 0)
})

test('a time that is not a number, and a key too short to hold one, are refused', () => {
  assert.throws(() => gcTodoKey(Number.NaN, new Uint8Array(1)), RangeError)
  assert.throws(() => parseGcTodoKey(new Uint8Array(7)), /GC queue key of 7 bytes/)
})
