import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { readBlockFile } from '../../lib/block/store.ts'

test('a block file is read whole whatever the size guess says', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'garage-read-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  for (const size of [0, 1, 4096, 65_536, 1_048_576 + 3]) {
    const path = join(dir, `b${size}`)
    const bytes = randomBytes(size)
    await writeFile(path, bytes)
    for (const guess of [undefined, 0, size - 1, size, size + 1, size * 4 + 100, 64 * 1024 * 1024]) {
      if (guess !== undefined && guess < 0) continue
      const got = await readBlockFile(path, guess)
      assert.ok(got.equals(bytes), `size ${size}, guess ${guess}: ${got.length} bytes`)
    }
  }
  // A small block read with a large guess is not left holding the large buffer: its bytes are
  // copied out, into Node's shared pool (Buffer.poolSize: 8 KiB up to Node 22, 64 KiB from 24).
  await writeFile(join(dir, 'small'), randomBytes(100))
  const small = await readBlockFile(join(dir, 'small'), 1_048_576)
  assert.equal(small.length, 100)
  assert.ok(small.buffer.byteLength <= Buffer.poolSize, `a buffer of ${small.buffer.byteLength} bytes is held`)
  await assert.rejects(readBlockFile(join(dir, 'missing'), 10), { code: 'ENOENT' })
  await assert.rejects(readBlockFile(join(dir, 'missing')), { code: 'ENOENT' })
})
