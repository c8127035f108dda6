/**
 * `npm run bench:multipart`: a multipart upload at AWS's limit of 10,000 parts, through the AWS
 * SDK, on one in-process node (lmdb on disk, loopback HTTP).
 *
 * Parts are small (1 KiB by default) so the figures are the metadata cost of a part, not its
 * data. UploadPart runs one at a time; "flat cost" compares the mean latency of the last 500
 * parts with the first 500 (`ratio` = last / first, 1 is flat; O(n) work per part shows as a
 * ratio growing with the part count). Then CompleteMultipartUpload, ListParts page by page, and a
 * GET of the whole object. The second scenario does the same with 1,000 other uploads in flight
 * in the same bucket (each with 10 parts), then ListMultipartUploads over them and the Complete of
 * each (MPU_SKIP_ALONE=1 runs the second scenario only).
 *
 * Prints one JSON line per figure on stdout. Environment: MPU_PARTS (default 10000), MPU_PART_SIZE
 * in bytes (default 1024), MPU_INFLIGHT (default 1000; 0 skips the second scenario), MPU_PROFILE
 * (a directory: CPU profiles of each CompleteMultipartUpload and GET, in-process target only),
 * MPU_CONCURRENCY (parts uploaded at once, default 1: the flat-cost ratio wants 1; more only
 * shortens the set-up of a Complete measurement), MPU_TARGET: `inproc` (default: the node in this
 * process), `node` (one `garage server` child process) or `cluster3` (three child processes,
 * RF 3, requests through node 1). With child processes the CPU time each node spent during
 * Complete is read from /proc (that, not the wall time, is what a loaded machine leaves
 * comparable), and the GET reports the serving node's peak RSS.
 */
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { readFile, writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector'
import { join } from 'node:path'
import { startTestNode } from '../lib/testing.ts'
import { startReplicatedCluster } from '../test/helpers/cluster.ts'
import { startServerProcess } from '../test/helpers/server-process.ts'

const PARTS = Number(process.env.MPU_PARTS ?? 10_000)
const PART_SIZE = Number(process.env.MPU_PART_SIZE ?? 1024)
const INFLIGHT = Number(process.env.MPU_INFLIGHT ?? 1000)
const EDGE = Math.min(500, Math.floor(PARTS / 4))
const CONCURRENCY = Math.max(1, Number(process.env.MPU_CONCURRENCY ?? 1))
const TARGET = process.env.MPU_TARGET ?? 'inproc'
if (!['inproc', 'node', 'cluster3'].includes(TARGET)) throw new Error(`MPU_TARGET: inproc, node or cluster3, not ${TARGET}`)

/** What the scenarios run against: a client, a bucket, and how to read the nodes' CPU time and memory. */
interface Target {
  s3: S3Client
  bucket: string
  /** CPU seconds (user + system) of each node process so far; this process's for `inproc`. */
  cpu(): Promise<number[]>
  /** Resets, then reads, the peak RSS of the serving node (bytes); undefined in-process. */
  resetPeak(): Promise<void>
  peak(): Promise<number | undefined>
  close(): Promise<void>
}

const TICK = 100 // USER_HZ on Linux
async function procCpu(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / TICK
}

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

async function bigUpload(target: Target, key: string, scenario: string): Promise<void> {
  const { s3, bucket } = target
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))
  const body = Buffer.alloc(PART_SIZE, 7)
  const lat: number[] = []
  const etags: string[] = []
  const t0 = performance.now()
  let next = 1
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let n = next++; n <= PARTS; n = next++) {
        const s = performance.now()
        const r = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: n, Body: body }))
        lat[n - 1] = performance.now() - s
        etags[n - 1] = r.ETag as string
        if (n % 1000 === 0) process.stderr.write(`${scenario}: ${n} parts, last 1000 mean ${round(mean(lat.slice(-1000)))} ms\n`)
      }
    }),
  )
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
    concurrency: CONCURRENCY,
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

  const profile = TARGET === 'inproc' ? await startProfile() : undefined
  const cpu0 = await target.cpu()
  const tc = performance.now()
  await s3.send(
    new CompleteMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      UploadId,
      MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
    }),
  )
  const completeMs = performance.now() - tc
  const cpu1 = await target.cpu()
  emit({
    scenario,
    figure: 'complete_ms',
    parts: PARTS,
    ms: round(completeMs),
    // CPU seconds each node (or, in-process, node and client together) spent meanwhile.
    cpu_s: cpu1.map((c, i) => round(c - (cpu0[i] ?? 0))),
  })
  await profile?.(`${scenario}-complete`)

  await target.resetPeak()
  const getProfile = TARGET === 'inproc' ? await startProfile() : undefined
  let peakHere = 0
  const sampler = setInterval(() => {
    peakHere = Math.max(peakHere, process.memoryUsage().rss)
  }, 50)
  const tg = performance.now()
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  let bytes = 0
  for await (const chunk of got.Body as AsyncIterable<Uint8Array>) bytes += chunk.length
  const gs = (performance.now() - tg) / 1000
  clearInterval(sampler)
  await getProfile?.(`${scenario}-get`)
  if (bytes !== PARTS * PART_SIZE) throw new Error(`GET returned ${bytes} bytes, expected ${PARTS * PART_SIZE}`)
  const peak = (await target.peak()) ?? peakHere
  emit({
    scenario,
    figure: 'get_whole',
    bytes,
    part_size: PART_SIZE,
    ms: round(gs * 1000),
    mb_s: round(bytes / 1e6 / gs),
    peak_rss_mb: round(peak / 1e6, 1),
  })
}

async function startTarget(): Promise<Target> {
  const s3ApiLines = ['min_part_size = 0']
  if (TARGET === 'inproc') {
    const node = await startTestNode({ s3_api: { api_bind_addr: '127.0.0.1:0', min_part_size: 0 } })
    const s3 = new S3Client({ ...node.s3Config, maxAttempts: 1 })
    return {
      s3,
      bucket: node.bucket,
      cpu: async () => {
        const u = process.cpuUsage()
        return [(u.user + u.system) / 1e6]
      },
      resetPeak: async () => {},
      peak: async () => undefined,
      close: async () => {
        s3.destroy()
        await node.close()
      },
    }
  }
  const sdk = (endpoint: string, region: string, credentials: { accessKeyId: string; secretAccessKey: string }): S3Client =>
    new S3Client({
      endpoint,
      region,
      credentials,
      forcePathStyle: true,
      maxAttempts: 1,
      requestHandler: { requestTimeout: 600_000 },
    })
  if (TARGET === 'node') {
    const proc = await startServerProcess({ bucket: 'bench', s3ApiLines, startTimeoutMs: 180_000 })
    const s3 = sdk(proc.endpoint, proc.region, proc.credentials)
    return {
      s3,
      bucket: proc.bucket,
      cpu: async () => [await procCpu(proc.pid)],
      resetPeak: () => proc.resetPeakRss(),
      peak: () => proc.peakRss(),
      close: async () => {
        s3.destroy()
        await proc.stop(5_000)
      },
    }
  }
  const cluster = await startReplicatedCluster({
    nodes: 3,
    bucket: 'bench',
    env: { GARAGE_TS_TEST_RPC_INTERVAL_MSEC: '1000', GARAGE_TS_TEST_SYNC_INTERVAL_MSEC: '600000' },
    nodeOptions: () => ({ s3ApiLines, startTimeoutMs: 180_000 }),
  })
  const t = cluster.target(0)
  const s3 = sdk(t.endpoint, t.region, t.credentials)
  const first = cluster.node(0).proc
  return {
    s3,
    bucket: cluster.bucket,
    cpu: () => Promise.all(cluster.nodes.map((n) => procCpu(n.proc.pid))),
    resetPeak: () => first.resetPeakRss(),
    peak: () => first.peakRss(),
    close: async () => {
      s3.destroy()
      await cluster.stop()
    },
  }
}

/**
 * The second scenario: INFLIGHT uploads of 10 parts each open in the bucket, then the big upload
 * among them (its UploadPart cost, ListParts, Complete, GET), ListMultipartUploads page by page
 * over all of them, and the Complete of each.
 */
async function inflight(target: Target): Promise<void> {
  const { s3, bucket } = target
  const scenario = `with_${INFLIGHT}_inflight`
  const body = Buffer.alloc(PART_SIZE, 3)
  const uploads: Array<{ Key: string; UploadId: string; etags: string[] }> = []
  const t0 = performance.now()
  for (let i = 0; i < INFLIGHT; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, INFLIGHT - i) }, async (_, j) => {
        const Key = `inflight/${String(i + j).padStart(5, '0')}`
        const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key }))
        const etags: string[] = []
        for (let n = 1; n <= 10; n++) {
          const r = await s3.send(new UploadPartCommand({ Bucket: bucket, Key, UploadId, PartNumber: n, Body: body }))
          etags.push(r.ETag as string)
        }
        uploads.push({ Key, UploadId: UploadId as string, etags })
      }),
    )
  }
  emit({ scenario, figure: 'setup', uploads: INFLIGHT, parts_each: 10, s: round((performance.now() - t0) / 1000, 1) })

  await bigUpload(target, 'big2', scenario)

  let pages = 0
  let listed = 0
  let keyMarker: string | undefined
  let idMarker: string | undefined
  const tl = performance.now()
  for (;;) {
    const r = await s3.send(
      new ListMultipartUploadsCommand({ Bucket: bucket, KeyMarker: keyMarker, UploadIdMarker: idMarker, MaxUploads: 100 }),
    )
    pages++
    listed += r.Uploads?.length ?? 0
    if (r.IsTruncated !== true) break
    keyMarker = r.NextKeyMarker
    idMarker = r.NextUploadIdMarker
  }
  if (listed !== INFLIGHT) throw new Error(`ListMultipartUploads listed ${listed} uploads, expected ${INFLIGHT}`)
  emit({ scenario, figure: 'list_uploads', uploads: listed, pages, page_size: 100, ms: round(performance.now() - tl) })

  const lat: number[] = []
  const tc = performance.now()
  let next = 0
  await Promise.all(
    Array.from({ length: 10 }, async () => {
      for (let i = next++; i < uploads.length; i = next++) {
        const u = uploads[i] as (typeof uploads)[number]
        const s = performance.now()
        await s3.send(
          new CompleteMultipartUploadCommand({
            Bucket: bucket,
            Key: u.Key,
            UploadId: u.UploadId,
            MultipartUpload: { Parts: u.etags.map((ETag, k) => ({ ETag, PartNumber: k + 1 })) },
          }),
        )
        lat.push(performance.now() - s)
      }
    }),
  )
  lat.sort((a, b) => a - b)
  emit({
    scenario,
    figure: 'complete_each',
    uploads: lat.length,
    concurrency: 10,
    mean_ms: round(mean(lat)),
    p99_ms: round(lat[Math.floor(lat.length * 0.99)] ?? 0),
    s: round((performance.now() - tc) / 1000, 1),
  })
}

async function main(): Promise<void> {
  const target = await startTarget()
  try {
    if (process.env.MPU_SKIP_ALONE !== '1') await bigUpload(target, 'big', 'alone')
    if (INFLIGHT > 0) await inflight(target)
  } finally {
    await target.close()
  }
}

await main()
