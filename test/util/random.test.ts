/** The pooled random bytes: right lengths, never the same bytes handed out twice. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { randomBytes } from '../../lib/util/random.ts'

test('each call gets its own bytes of the asked length, across pool refills', () => {
  const seen = new Set<string>()
  const owners: Buffer[] = []
  // 5,000 × 20 bytes spans ~25 pools of 4 KiB; sizes vary so slices straddle refills.
  for (let i = 0; i < 5000; i++) {
    const n = 8 + (i % 25)
    const b = randomBytes(n)
    assert.equal(b.length, n)
    const hex = b.toString('hex')
    assert.ok(!seen.has(hex), `bytes handed out twice at call ${i}`)
    seen.add(hex)
    owners.push(b)
  }
  // Writing into one caller's bytes changes no other caller's.
  const before = owners.map((b) => b.toString('hex'))
  for (const b of owners.filter((_, i) => i % 2 === 0)) b.fill(0)
  owners.forEach((b, i) => {
    if (i % 2 === 1) assert.equal(b.toString('hex'), before[i])
  })
})

test('a result owns its bytes: its .buffer holds nothing else', () => {
  const a = randomBytes(16)
  assert.equal(a.buffer.byteLength, 16)
  assert.equal(a.byteOffset, 0)
})

test('invalid sizes are refused as crypto.randomBytes refuses them, and do not disturb the pool', () => {
  const a = randomBytes(8)
  assert.throws(() => randomBytes(-8), RangeError)
  assert.throws(() => randomBytes(Number.NaN), RangeError)
  const b = randomBytes(8)
  assert.equal(b.length, 8)
  assert.ok(!a.equals(b))
})

test('large requests and zero bytes', () => {
  const big = randomBytes(10_000)
  assert.equal(big.length, 10_000)
  // 10,000 random bytes: every byte value shows up (the chance one is missing is ~1e-15).
  assert.equal(new Set(big).size, 256)
  assert.equal(randomBytes(0).length, 0)
})
