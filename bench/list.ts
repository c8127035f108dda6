/**
 * `npm run bench:list`: ListObjectsV2 speed on one node holding LIST_OBJECTS objects in one bucket
 * (issue 21; default 200,000, keys `DDDDD/NNNNNNNNN`, 1,000 per "directory", loaded through the
 * model layer like bench/scale.ts).
 *
 * Three figures per listing (pages of 1,000 from the start, the middle and the end of the key
 * space, and with delimiter `/`):
 * - `floor`: the bare cost of reading the same lmdb range (keys and values, no decoding);
 * - `handler`: `handleListObjectsV2` called in-process (range read, row decoding, XML);
 * - `http`: signed requests to a `garage server` child process on loopback, one page at a time
 *   (also keys per second of the node's CPU time, from /proc: its cost whatever the load).
 *
 * One JSON line per figure on stdout. Environment: LIST_OBJECTS, LIST_PAGES (pages per figure,
 * default 20), LIST_DIR (reuse a directory an earlier run kept with LIST_KEEP=1; its credentials
 * in `<dir>/bench-credentials.json`), LIST_PROF=<dir> (CPU profile of the child node).
 */
import { readFile, rm, writeFile } from 'node:fs/promises'
import { Agent } from 'node:http'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { handleListObjectsV2 } from '../lib/api/s3/list.ts'
import type { Garage } from '../lib/model/garage.ts'
import { genUuid } from '../lib/util/data.ts'
import { type Credentials, type S3Target, sendSigned, startServerProcess } from '../test/helpers/server-process.ts'
import { foldObjectMerkle, inlineObjectRow, loadObjectRows, withModels } from './model-loader.ts'

const N = Number(process.env.LIST_OBJECTS ?? 200_000)
const PAGES = Number(process.env.LIST_PAGES ?? 20)
const MAIN = 'test-bucket'
const round = (x: number, d = 0): number => Math.round(x * 10 ** d) / 10 ** d
const log = (s: string): void => {
  process.stderr.write(`[list ${new Date().toISOString().slice(11, 19)}] ${s}\n`)
}
const mainKey = (i: number): string => `${String(Math.floor(i / 1000)).padStart(5, '0')}/${String(i).padStart(9, '0')}`

interface Case {
  name: string
  query: Record<string, string>
}
const cases = (): Case[] => [
  { name: 'start', query: {} },
  { name: 'middle', query: { 'start-after': mainKey(Math.floor(N / 2)) } },
  { name: 'end', query: { 'start-after': mainKey(Math.max(0, N - PAGES * 1000 - 1)) } },
  { name: 'delimiter', query: { delimiter: '/' } },
]

function bucketId(g: Garage): Uint8Array {
  for (const b of g.bucketTable.data.readRange(new Uint8Array(0), { limit: Number.MAX_SAFE_INTEGER })) {
    if (b.state.deleted) continue
    for (const [name, , active] of b.state.value.localAliases) if (active && name.endsWith(`:${MAIN}`)) return b.id
  }
  for (const a of g.bucketAliasTable.data.readRange(new Uint8Array(0), { limit: Number.MAX_SAFE_INTEGER })) {
    if (a.name === MAIN && a.state.v !== null) return a.state.v
  }
  throw new Error(`bucket ${MAIN} not found`)
}

const count = (xml: string): { n: number; token: string | undefined } => ({
  n: (xml.match(/<Key>/g)?.length ?? 0) + (xml.match(/<CommonPrefixes>/g)?.length ?? 0),
  token: /<NextContinuationToken>([^<]+)</.exec(xml)?.[1],
})

async function pages(get: (q: Record<string, string>) => Promise<string>, c: Case): Promise<{ keys: number; rate: number }> {
  let total = 0
  let token: string | undefined
  const q: Record<string, string> = { 'max-keys': '1000', ...c.query }
  const t0 = performance.now()
  for (let p = 0; p < PAGES; p++) {
    const r = count(await get(token === undefined ? q : { ...q, 'continuation-token': token }))
    total += r.n
    token = r.token
    if (token === undefined) break
    delete q['start-after']
  }
  return { keys: total, rate: total / ((performance.now() - t0) / 1000) }
}

const out = (o: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify({ bench: 'list', objects: N, ...o, load_avg_1m: round(loadavg()[0] ?? 0, 1) })}\n`)
}

async function inProcess(dir: string): Promise<void> {
  await withModels([dir], async ([g]) => {
    const garage = g as Garage
    const id = bucketId(garage)
    const owner = { id: 'o', displayName: 'o' }
    const hash = garage.objectTable.schema.partitionHash(id)
    for (const c of cases()) {
      // Floor: the same number of entries read from lmdb with nothing done to them.
      const want = c.name === 'delimiter' ? 0 : PAGES * 1000
      if (want > 0) {
        const start = c.query['start-after'] === undefined ? hash : Buffer.concat([hash, Buffer.from(c.query['start-after'])])
        const t0 = performance.now()
        let n = 0
        let bytes = 0
        for (let p = 0; p < PAGES; p++) {
          for (const [k, v] of garage.objectTable.data.store.range({ start, limit: 1000 })) {
            n++
            bytes += k.length + v.length
          }
        }
        out({ case: c.name, what: 'floor', keys_s: round(n / ((performance.now() - t0) / 1000)), bytes })
      }
      for (let rep = 0; rep < 2; rep++) {
        const r = await pages(async (q) => {
          const res = await handleListObjectsV2(
            garage,
            id,
            MAIN,
            {
              prefix: q.prefix,
              delimiter: q.delimiter,
              maxKeys: Number(q['max-keys']),
              continuationToken: q['continuation-token'],
              startAfter: q['start-after'],
            },
            owner,
          )
          return typeof res.body === 'string' ? res.body : Buffer.from(res.body as Uint8Array).toString()
        }, c)
        out({ case: c.name, what: 'handler', rep, keys_s: round(r.rate) })
      }
    }
  })
}

/** CPU seconds (user + system) a process used so far. */
async function cpuSeconds(pid: number): Promise<number> {
  const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? []
  return (Number(f[11]) + Number(f[12])) / 100
}

/**
 * Waits until the node is idle (less than 5 % of a core over 2 s; at most 5 minutes): at start
 * it may rebuild or fold its Merkle trees, which would share the event loop with the listing.
 */
async function settle(pid: number): Promise<void> {
  const t0 = performance.now()
  let last = await cpuSeconds(pid)
  while (performance.now() - t0 < 300_000) {
    await new Promise((r) => setTimeout(r, 2000))
    const now = await cpuSeconds(pid)
    if (now - last < 0.1) break
    last = now
  }
  log(`node idle after ${round((performance.now() - t0) / 1000, 1)} s`)
}

async function overHttp(dir: string, credentials: Credentials): Promise<void> {
  const prof = process.env.LIST_PROF
  const proc = await startServerProcess({
    reuse: { dir, credentials },
    startTimeoutMs: 600_000,
    ...(prof === undefined ? {} : { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${prof}`] }),
  })
  const t: S3Target = { endpoint: proc.endpoint, region: proc.region, credentials }
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  try {
    const get = async (q: Record<string, string>): Promise<string> => {
      const res = await sendSigned(t, 'GET', `/${MAIN}`, { agent, query: { 'list-type': '2', ...q } })
      const chunks: Buffer[] = []
      for await (const c of res) chunks.push(c as Buffer)
      const body = Buffer.concat(chunks).toString()
      if ((res.statusCode ?? 0) !== 200) throw new Error(`list: ${res.statusCode} ${body.slice(0, 300)}`)
      return body
    }
    await get({ 'max-keys': '10' })
    await settle(proc.pid)
    for (const c of cases()) {
      for (let rep = 0; rep < 2; rep++) {
        const cpu0 = await cpuSeconds(proc.pid)
        const r = await pages(get, c)
        const cpu = (await cpuSeconds(proc.pid)) - cpu0
        // Keys per second of the node's CPU: what the node costs, whatever share of a core it got.
        out({
          case: c.name,
          what: 'http',
          rep,
          keys_s: round(r.rate),
          node_cpu_s: round(cpu, 2),
          keys_per_node_cpu_s: round(r.keys / Math.max(cpu, 0.01)),
        })
      }
    }
  } finally {
    agent.destroy()
    await proc.stop(30_000, { keepDir: true })
  }
}

async function main(): Promise<void> {
  let dir = process.env.LIST_DIR
  let credentials: Credentials
  if (dir === undefined) {
    const first = await startServerProcess({ bucket: MAIN, startTimeoutMs: 600_000 })
    dir = first.dir
    credentials = first.credentials
    await first.stop(30_000, { keepDir: true })
    await writeFile(join(dir, 'bench-credentials.json'), JSON.stringify(credentials))
    log(`loading ${N} objects into ${dir}`)
    const t0 = performance.now()
    await withModels([dir], (gs) => {
      const id = bucketId(gs[0] as Garage)
      const ts = Date.now()
      function* rows() {
        for (let i = 0; i < N; i++) yield inlineObjectRow(id, mainKey(i), genUuid(), ts)
      }
      loadObjectRows(gs, rows())
    })
    // Folded here, so the node does not fold 200,000 Merkle items while it is measured.
    await withModels([dir], (gs) => foldObjectMerkle(gs[0] as Garage))
    log(`loaded in ${round((performance.now() - t0) / 1000, 1)} s`)
  } else {
    if (process.env.LIST_FOLD === '1') await withModels([dir], (gs) => foldObjectMerkle(gs[0] as Garage))
    credentials = JSON.parse(await readFile(join(dir, 'bench-credentials.json'), 'utf8')) as Credentials
  }
  try {
    if (process.env.LIST_HTTP_ONLY !== '1') await inProcess(dir)
    if (process.env.LIST_NO_HTTP !== '1') await overHttp(dir, credentials)
  } finally {
    if (process.env.LIST_KEEP !== '1' && process.env.LIST_DIR === undefined) await rm(dir, { recursive: true, force: true })
  }
}

await main()
