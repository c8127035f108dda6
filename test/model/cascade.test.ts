import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { test } from 'node:test'
import { saveStream } from '../../lib/api/s3/put.ts'
import { deleteObject } from '../../lib/api/s3/delete.ts'
import type { ChecksumResult } from '../../lib/api/common/signature/body.ts'
import { genUuid } from '../../lib/util/data.ts'
import { eventually } from '../helpers/eventually.ts'
import { startModel } from '../helpers/model.ts'
import { bytes, rng } from '../helpers/random.ts'

const result: Promise<ChecksumResult> = Promise.resolve({ checksums: {}, trailers: {}, md5: Buffer.alloc(16) })

function body(size: number, seed: number): Readable {
  const r = rng(seed)
  return Readable.from([Buffer.from(bytes(r, size))])
}

test('overwriting and deleting objects releases their blocks, shared blocks stay', async (t) => {
  const { garage } = await startModel(t, { gcDelayMsec: 50, blockSize: 64 * 1024 })
  const bucket = genUuid()
  const live = () => garage.blockManager.rc.tree.count()
  const files = async () => {
    let n = 0
    for (const [hash] of garage.blockManager.rc.tree.range()) if (await garage.blockManager.hasBlock(hash)) n++
    return n
  }
  await saveStream(garage, bucket, 'a', [], body(200 * 1024, 1), result) // 4 blocks
  await saveStream(garage, bucket, 'b', [], body(200 * 1024, 1), result) // same content: same 4 blocks
  assert.equal(await files(), 4, 'identical content is stored once')
  await saveStream(garage, bucket, 'a', [], body(100 * 1024, 2), result) // overwrite with 2 new blocks
  await eventually('a keeps b blocks and adds its own', async () => (await files()) === 6, { timeoutMs: 3000 })
  await deleteObject(garage, bucket, 'b')
  await eventually('b blocks released', async () => (await files()) === 2 && live() === 2, { timeoutMs: 3000 })
  await deleteObject(garage, bucket, 'a')
  await eventually('everything released', async () => (await files()) === 0 && live() === 0, { timeoutMs: 3000 })
  for (const table of garage.tables) assert.equal(table.data.insertQueue.count(), 0, `${table.name} queue drained`)
})
