/**
 * Random bytes from the CSPRNG in small amounts, cheaply. Each `crypto.randomBytes` call costs
 * ≈ 8 µs whatever its size (measured: 4, 8 and 32 bytes alike; 4 KiB costs ≈ 7 µs), and the
 * hot paths ask for a few bytes at a time: a version id per write, a request id per request, a
 * key per sealed RPC message, a nonce per encrypted block. This draws them from a 4 KiB pool
 * filled by one call, as `crypto.randomUUID` does for its own ids. Every byte is handed out
 * once; the bytes are the CSPRNG's, so they are as good for keys and nonces as a direct call.
 */
import { randomBytes as cryptoRandomBytes, randomFillSync } from 'node:crypto'

const POOL_SIZE = 4096
/** Larger requests go to the CSPRNG directly (they are rare and amortise the call). */
const MAX_POOLED = 256

let pool: Buffer = Buffer.alloc(0)
let at = 0

/**
 * `n` fresh random bytes, in a Buffer of their own (its `.buffer` holds nothing else: never a
 * view of the pool, whose other bytes become other callers' keys and nonces).
 */
export function randomBytes(n: number): Buffer {
  // Anything but a small non-negative integer goes to crypto, which refuses what is invalid (a
  // negative or NaN size here would move the cursor back or break it).
  if (!Number.isSafeInteger(n) || n < 0 || n > MAX_POOLED) return cryptoRandomBytes(n)
  if (at + n > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafeSlow(POOL_SIZE))
    at = 0
  }
  const out = Buffer.allocUnsafeSlow(n)
  pool.copy(out, 0, at, at + n)
  at += n
  return out
}
