/** CRC combination (used for FULL_OBJECT multipart checksums) against CRCs of the concatenation. */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { type CombinableCrc, type Crc, Crc32, Crc32c, Crc64Nvme, crcCombine } from '../../../../lib/api/common/signature/crc.ts'

const CRCS: Array<[CombinableCrc, () => Crc]> = [
  ['CRC32', () => new Crc32()],
  ['CRC32C', () => new Crc32c()],
  ['CRC64NVME', () => new Crc64Nvme()],
]

const crcOf = (make: () => Crc, data: Uint8Array): Buffer => {
  const c = make()
  c.update(data)
  return c.digest()
}

for (const [alg, make] of CRCS) {
  test(`${alg}: combining the CRCs of A and B gives the CRC of A || B`, () => {
    for (const [la, lb] of [
      [0, 0],
      [1, 0],
      [0, 5],
      [100, 333],
      [5 * 1024 * 1024, 123457],
      [7, 1024 * 1024],
    ] as const) {
      const a = randomBytes(la)
      const b = randomBytes(lb)
      const combined = crcCombine(alg, crcOf(make, a), crcOf(make, b), lb)
      assert.deepEqual(combined, crcOf(make, Buffer.concat([a, b])), `${alg} ${la}+${lb}`)
    }
  })

  test(`${alg}: folding many parts left to right`, () => {
    const parts = [randomBytes(1000), randomBytes(1), randomBytes(0), randomBytes(4097)]
    let acc = crcOf(make, parts[0] as Buffer)
    for (const p of parts.slice(1)) acc = crcCombine(alg, acc, crcOf(make, p), p.length)
    assert.deepEqual(acc, crcOf(make, Buffer.concat(parts)))
  })
}
