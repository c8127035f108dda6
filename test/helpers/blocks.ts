/** Block accounting for tests: the block files of a test node and the hashes a body produces. */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { TestNode } from '../../lib/testing.ts'

/** The default `block_size`. */
export const BLOCK_SIZE = 1024 * 1024

/** The hex names of the block files under a node's data directory. */
export async function blockFiles(t: TestNode): Promise<Set<string>> {
  const names = await readdir(join(t.dir, 'data'), { recursive: true })
  return new Set(names.map((n) => n.split(/[\\/]/).pop() as string).filter((n) => /^[0-9a-f]{64}$/.test(n)))
}

/** The block hashes of a body written as one part (or one PutObject): `BLOCK_SIZE`-sized pieces. */
export function blockHashes(body: Buffer): string[] {
  const out: string[] = []
  for (let i = 0; i < body.length; i += BLOCK_SIZE) {
    out.push(
      createHash('blake2b512')
        .update(body.subarray(i, i + BLOCK_SIZE))
        .digest()
        .subarray(0, 32)
        .toString('hex'),
    )
  }
  return out
}

/** Waits (up to 5 s) until the node's block files are exactly `expected`. */
export async function expectBlocks(t: TestNode, expected: Iterable<string>): Promise<void> {
  const want = [...new Set(expected)].sort()
  let got: string[] = []
  for (let i = 0; i < 100; i++) {
    got = [...(await blockFiles(t))].sort()
    if (got.length === want.length && got.every((h, j) => h === want[j])) break
    await sleep(50)
  }
  assert.deepEqual(got, want)
}
