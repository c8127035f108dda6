/**
 * The part bookkeeping of UploadPart (lib/api/s3/multipart.ts) on a model without a server:
 * finishPart answers without reading the upload back; a part whose upload was aborted before the
 * part was even listed (so the upload's deletion cannot reach its version) is released in the
 * background, and a part of a live upload is kept.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Readable } from 'node:stream'
import { ApiError } from '../../../lib/api/common/errors.ts'
import type { BucketCtx } from '../../../lib/api/s3/context.ts'
import { beginPart, finishPart, getUpload, handleUploadPart } from '../../../lib/api/s3/multipart.ts'
import { blockRefCodec } from '../../../lib/model/s3/block-ref-table.ts'
import { versionCodec } from '../../../lib/model/s3/version-table.ts'
import { deletedMpu } from '../../../lib/model/s3/mpu-table.ts'
import { genUuid, toHex } from '../../../lib/util/data.ts'
import { recordingLogger } from '../../net/net-fixtures.ts'
import { eventually } from '../../helpers/eventually.ts'
import { startModel } from '../../helpers/model.ts'

const EMPTY = new Uint8Array(0)

test('a part finished after its upload was aborted is released after the answer; a live upload keeps its part', async (t) => {
  const { garage } = await startModel(t)
  const log = recordingLogger()
  const bucketId = genUuid()
  const start = async (key: string) => {
    const uploadId = genUuid()
    await garage.objectTable.insert({
      bucketId,
      key,
      versions: [{ uuid: uploadId, ts: 1, state: { t: 'uploading', multipart: true, headers: [] } }],
    })
    await garage.mpuTable.insert({ uploadId, deleted: false, parts: [], ts: 1, bucketId, key })
    return getUpload(garage, bucketId, key, uploadId)
  }

  const live = await start('live')
  const livePart = await beginPart(garage, live, 1)
  await finishPart(garage, live, { ...livePart, etag: 'e', size: 1 }, log)

  const gone = await start('gone')
  // Aborted (or completed) after the request found the upload, before the part was listed: the
  // deleted upload row drops the listing, so its deletion cascade never sees this part.
  await garage.mpuTable.insert(deletedMpu(gone.uploadId, gone.mpu.ts, bucketId, 'gone'))
  const gonePart = await beginPart(garage, gone, 1)
  // Written (the deleted upload's cascade may already have released it: no order is promised).
  assert.notEqual(await garage.versionTable.get(gonePart.version, EMPTY), undefined, 'the part version was written')
  // The part is acknowledged (AWS does the same in this race) and released afterwards.
  await finishPart(garage, gone, { ...gonePart, etag: 'e', size: 1 }, log)
  await eventually(
    'the late part is released',
    async () => (await garage.versionTable.get(gonePart.version, EMPTY))?.deleted === true,
  )

  assert.equal((await garage.versionTable.get(livePart.version, EMPTY))?.deleted, false, 'the live part is kept')
  assert.deepEqual(log.warnings, [])
})

test('a part of several blocks is written while its upload is read; NoSuchUpload stops it at the next block and releases what was written', async (t) => {
  const { garage } = await startModel(t, { blockSize: 4096 })
  const bucketId = genUuid()
  const key = 'stale'
  const uploadId = genUuid()
  // This node's copy lists the upload in progress; the quorum read finds no upload row (aborted
  // elsewhere, say): UploadPart starts writing from the local copy, then learns the upload is gone.
  await garage.objectTable.insert({
    bucketId,
    key,
    versions: [{ uuid: uploadId, ts: 1, state: { t: 'uploading', multipart: true, headers: [] } }],
  })
  const blocks = 40
  let sent = 0
  const body = new Readable({
    read() {
      if (sent === blocks) return void this.push(null)
      sent++
      setTimeout(() => this.push(Buffer.alloc(4096, sent)), 5)
    },
  })
  const bodyResult = new Promise<never>(() => {})
  const ctx = {
    garage,
    settings: { region: 'garage' },
    req: { headers: { 'content-length': String(blocks * 4096) } },
    log: recordingLogger(),
    bucketId,
    body,
    bodyResult,
    checksums: { expected: {} },
  } as unknown as BucketCtx
  await assert.rejects(
    handleUploadPart(ctx, { key, partNumber: 1, uploadId: toHex(uploadId) }),
    (err: unknown) => err instanceof ApiError && err.code === 'NoSuchUpload',
  )
  assert.ok(sent < blocks, `the body stopped early (${sent} of ${blocks} blocks read)`)
  // What was written is released: every version row of the part deleted, no block referenced.
  await eventually('the part version deleted', () => {
    const rows = [...garage.versionTable.data.store.range()].map(([, v]) => versionCodec.decode(v))
    return rows.length > 0 && rows.every((v) => v.deleted)
  })
  await eventually('no block referenced', () =>
    [...garage.blockRefTable.data.store.range()].every(([, v]) => blockRefCodec.decode(v).deleted),
  )
})
