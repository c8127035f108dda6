/**
 * The PUT path's Chunker (lib/api/s3/put.ts): exact blocks from a body cut anyhow, and, with
 * `hashBlocks`, each block's BLAKE2 computed as its bytes arrive, equal to hashing the block.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { Chunker } from '../../lib/api/s3/put.ts'
import { blake2sum } from '../../lib/util/data.ts'

/** `body` cut into pieces of the given sizes (cycled), with empty pieces in between. */
async function* pieces(body: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  let i = 0
  for (let o = 0; o < body.length; i++) {
    const n = sizes[i % sizes.length] as number
    yield body.subarray(o, o + n)
    if (i % 3 === 0) yield Buffer.alloc(0)
    o += n
  }
}

test('blocks are exact and their streamed hashes equal blake2sum of each block', async () => {
  const cases: Array<[bodyLength: number, blockSize: number, cuts: number[]]> = [
    [0, 1024, [100]],
    [1, 1024, [100]],
    [1024, 1024, [1024]],
    [3 * 1024, 1024, [1024]],
    [3 * 1024 + 1, 1024, [333, 7]],
    [10_000, 1024, [65_536]], // pieces larger than a block: one piece spans several blocks
    [100_000, 4096, [1, 4095, 4096, 4097, 12_345]],
    [2 * 1048576 + 17, 1048576, [65_536, 16_384, 1]],
  ]
  for (const [length, size, cuts] of cases) {
    const body = randomBytes(length)
    for (const hashBlocks of [true, false]) {
      const c = new Chunker(pieces(body, cuts), size, { hashBlocks })
      const blocks: Buffer[] = []
      for (let b = await c.next(); b !== undefined; b = await c.next()) {
        assert.deepEqual(c.blockHash(b), blake2sum(b), `block ${blocks.length} of ${length} bytes in blocks of ${size}`)
        // Streamed hashes are kept (the same object each time); otherwise each call hashes anew.
        const once = c.blockHash(b)
        const again = c.blockHash(b)
        assert.equal(once === again, hashBlocks, 'hashed as the bytes arrived')
        blocks.push(b)
        // atEnd between blocks takes nothing and keeps the hashes in step.
        await c.atEnd()
      }
      assert.ok(Buffer.concat(blocks).equals(body))
      assert.ok(blocks.slice(0, -1).every((b) => b.length === size))
      assert.equal(blocks.length, Math.ceil(length / size))
    }
  }
})

test('a block the chunker did not return is hashed when asked', async () => {
  const c = new Chunker(pieces(randomBytes(10), [10]), 1024, { hashBlocks: true })
  const other = randomBytes(50)
  assert.deepEqual(c.blockHash(other), blake2sum(other))
})
