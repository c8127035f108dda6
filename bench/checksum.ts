/**
 * Checksum throughput: the CRC32, CRC32C and CRC64NVME of lib/api/common/signature/crc.ts over
 * 64 MiB in 64 KiB pieces (the size a streamed body arrives in), next to Node's native SHA-256
 * and MD5 in the same run (the bare limit a JavaScript CRC is compared with). A fall back to
 * BigInt arithmetic shows here as a drop of one or two orders of magnitude.
 *
 * Usage: `npm run bench:checksum`. Prints one JSON line per algorithm.
 */
import { createHash, randomBytes } from 'node:crypto'
import { loadavg } from 'node:os'
import { Crc32, Crc32c, Crc64Nvme } from '../lib/api/common/signature/crc.ts'

const piece = randomBytes(64 * 1024)
const PIECES = 1024

function measure(name: string, make: () => { update(b: Uint8Array): unknown }): void {
  for (let i = 0; i < 16; i++) make().update(piece) // warm the JIT up
  const c = make()
  const start = performance.now()
  for (let i = 0; i < PIECES; i++) c.update(piece)
  const seconds = (performance.now() - start) / 1000
  const mibPerS = (PIECES * piece.length) / 2 ** 20 / seconds
  console.log(JSON.stringify({ scenario: `checksum_${name}`, unit: 'MiB/s', value: Math.round(mibPerS), load_avg: loadavg()[0] }))
}

measure('crc32', () => new Crc32())
measure('crc32c', () => new Crc32c())
measure('crc64nvme', () => new Crc64Nvme())
measure('sha256_native', () => createHash('sha256'))
measure('md5_native', () => createHash('md5'))
