/**
 * `npm run bench:multipart`: a multipart upload at AWS's limit of 10,000 parts, through the AWS
 * SDK, on one in-process node (lmdb on disk, loopback HTTP).
 *
 * Parts are small (1 KiB by default) so the figures are the metadata cost of a part, not its
 * data. UploadPart runs one at a time; "flat cost" compares the mean latency of the last 500
 * parts with the first 500 (`ratio` = last / first, 1 is flat; O(n) work per part shows as a
 * ratio growing with the part count). Then CompleteMultipartUpload, ListParts page by page, and a
 * GET of the whole object. The second scenario does the same with 1,000 other uploads in flight
 * in the same bucket (each with 10 parts).
 *
 * Prints one JSON line per figure on stdout. Environment: MPU_PARTS (default 10000), MPU_PART_SIZE
 * in bytes (default 1024), MPU_INFLIGHT (default 1000; 0 skips the second scenario), MPU_PROFILE
 * (a directory: CPU profile of each CompleteMultipartUpload).
 */
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListPartsCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector'
import { join } from 'node:path'
import { startTestNode } from '../lib/testing.ts'

const PARTS = Number(process.env.MPU_PARTS ?? 10_000)
const PART_SIZE = Number(process.env.MPU_PART_SIZE ?? 1024)
const INFLIGHT = Number(process.env.MPU_INFLIGHT ?? 1000)
const EDGE = Math.min(500, Math.floor(PARTS / 4))

const emit = (o: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(o)}\n`)
}
const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length)
const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d

/** MPU_PROFILE=<dir>: a CPU profile of CompleteMultipartUpload alone (node and client share the process). */
async function startProfile(): Promise<((name: string) => Promise<void>) | undefined> {
  const dir = process.env.MPU_PROFILE
  if (dir === undefined) return undefined
  const session = new Session()
  session.connect()
  const post = (method: string): Promise<unknown> =>
    new Promise((resolve, reject) => session.post(method, (err, res) => (err === null ? resolve(res) : reject(err))))
  await post('Profiler.enable')
  await post('Profiler.start')
  return async (name) => {
    const { profile } = (await post('Profiler.stop')) as { profile: unknown }
    await writeFile(join(dir, `${name}.cpuprofile`), JSON.stringify(profile))
    session.disconnect()
  }
}

async function bigUpload(s3: S3Client, bucket: string, key: string, scenario: string): Promise<void> {
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))
  const body = Buffer.alloc(PART_SIZE, 7)
  const lat: number[] = []
  const etags: string[] = []
  const t0 = performance.now()
  for (let n = 1; n <= PARTS; n++) {
    const s = performance.now()
    const r = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: n, Body: body }))
    lat.push(performance.now() - s)
    etags.push(r.ETag as string)
    if (n % 1000 === 0) process.stderr.write(`${scenario}: ${n} parts, last 1000 mean ${round(mean(lat.slice(-1000)))} ms\n`)
  }
  const uploadSeconds = (performance.now() - t0) / 1000
  const first = mean(lat.slice(0, EDGE))
  const last = mean(lat.slice(-EDGE))
  emit({
    scenario,
    figure: 'upload_part_ms',
    parts: PARTS,
    first_mean: round(first),
    last_mean: round(last),
    ratio: round(last / first),
    total_s: round(uploadSeconds, 1),
  })

  let pages = 0
  let listed = 0
  let marker: string | undefined
  const tl = performance.now()
  for (;;) {
    const r = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId, PartNumberMarker: marker }))
    pages++
    listed += r.Parts?.length ?? 0
    if (r.IsTruncated !== true) break
    marker = r.NextPartNumberMarker
  }
  emit({ scenario, figure: 'list_parts', parts: listed, pages, ms: round(performance.now() - tl) })

  const profile = await startProfile()
  const tc = performance.now()
  await s3.send(
    new CompleteMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      UploadId,
      MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
    }),
  )
  emit({ scenario, figure: 'complete_ms', parts: PARTS, ms: round(performance.now() - tc) })
  await profile?.(`${scenario}-complete`)

  const tg = performance.now()
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  let bytes = 0
  for await (const chunk of got.Body as AsyncIterable<Uint8Array>) bytes += chunk.length
  const gs = (performance.now() - tg) / 1000
  if (bytes !== PARTS * PART_SIZE) throw new Error(`GET returned ${bytes} bytes, expected ${PARTS * PART_SIZE}`)
  emit({ scenario, figure: 'get_whole', bytes, ms: round(gs * 1000), mb_s: round(bytes / 1e6 / gs) })
}

async function main(): Promise<void> {
  const node = await startTestNode({ s3_api: { api_bind_addr: '127.0.0.1:0', min_part_size: 0 } })
  const s3 = new S3Client({ ...node.s3Config, maxAttempts: 1 })
  try {
    await bigUpload(s3, node.bucket, 'big', 'alone')
    if (INFLIGHT > 0) {
      const body = Buffer.alloc(PART_SIZE, 3)
      const t0 = performance.now()
      for (let i = 0; i < INFLIGHT; i += 50) {
        await Promise.all(
          Array.from({ length: Math.min(50, INFLIGHT - i) }, async (_, j) => {
            const Key = `inflight/${String(i + j).padStart(5, '0')}`
            const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: node.bucket, Key }))
            for (let n = 1; n <= 10; n++) {
              await s3.send(new UploadPartCommand({ Bucket: node.bucket, Key, UploadId, PartNumber: n, Body: body }))
            }
          }),
        )
      }
      emit({
        scenario: 'inflight',
        figure: 'setup',
        uploads: INFLIGHT,
        parts_each: 10,
        s: round((performance.now() - t0) / 1000, 1),
      })
      await bigUpload(s3, node.bucket, 'big2', `with_${INFLIGHT}_inflight`)
    }
  } finally {
    s3.destroy()
    await node.close()
  }
}

await main()
