/**
 * CPU cost of the RPC transport alone (lib/net), both ends in this process over loopback: what a
 * table call and a block transfer cost before any handler work. Steadier than the cluster bench
 * on a shared machine, since it counts CPU time, not throughput.
 *
 * Usage: `node --import tsx bench/rpc.ts [repo root]` (default this checkout; another root
 * measures another commit's lib/net with this script). Prints one JSON line per scenario:
 * µs of CPU (user + system, this process, both ends) per call, or ms per MB.
 */
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { NetApp, NetAppOptions } from '../lib/net/netapp.ts'
import type { NodeKey } from '../lib/net/node-key.ts'

const root = resolve(process.argv[2] ?? new URL('..', import.meta.url).pathname)
const netMod = (await import(pathToFileURL(`${root}/lib/net/netapp.ts`).href)) as typeof import('../lib/net/netapp.ts')
const endpointMod = (await import(pathToFileURL(`${root}/lib/net/endpoint.ts`).href)) as typeof import('../lib/net/endpoint.ts')

function nodeKey(): NodeKey {
  const { privateKey } = generateKeyPairSync('ed25519')
  const pub = createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).subarray(-32)
  return { publicKey: new Uint8Array(pub), privateKey, id: pub.toString('hex') }
}

const secret = randomBytes(32).toString('hex')
const opts = (): NetAppOptions => ({ nodeKey: nodeKey(), rpcSecret: secret, bindAddr: { host: '127.0.0.1', port: 0 } })
const a: NetApp = netMod.createNetApp(opts())
const b: NetApp = netMod.createNetApp(opts())
const addr = await b.listen()
await a.listen()

interface SmallReq {
  items: Array<{ table: string; entries: Uint8Array[] }>
}
const SMALL = endpointMod.defineEndpoint<SmallReq, null>('bench/small')
const PUT = endpointMod.defineEndpoint<{ h: Uint8Array }, null>('bench/put')
const GET = endpointMod.defineEndpoint<{ h: Uint8Array }, { len: number }>('bench/get')
const MiB = 1024 * 1024
const block = randomBytes(MiB)
b.handle(SMALL, () => null)
b.handle(PUT, async (_req, _from, ctx) => {
  let n = 0
  for await (const c of ctx.stream as AsyncIterable<Buffer>) n += c.length
  if (n !== MiB) throw new Error(`got ${n} bytes`)
  return null
})
b.handle(GET, () => endpointMod.withStream({ len: block.length }, block))
await a.connect(b.id, addr)

/** A table batch of a small PUT: two entries of a few hundred bytes. */
const smallReq = (): SmallReq => ({
  items: [
    { table: 'version', entries: [randomBytes(300)] },
    { table: 'block_ref', entries: [randomBytes(120)] },
  ],
})

/** RPC_BENCH_ONLY=<substring>: only the scenarios whose name contains it. */
const only = process.env.RPC_BENCH_ONLY ?? ''

async function run(name: string, count: number, concurrency: number, per: 'call' | 'MB', fn: () => Promise<void>) {
  if (!name.includes(only)) return
  for (let i = 0; i < Math.min(200, count); i++) await fn() // warm-up
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  let left = count
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left-- > 0) await fn()
    }),
  )
  const ms = performance.now() - t0
  const c = process.cpuUsage(cpu0)
  const cpuUs = c.user + c.system
  const line =
    per === 'call'
      ? { scenario: name, cpu_us_per_call: Math.round(cpuUs / count), calls_per_s: Math.round(count / (ms / 1000)) }
      : { scenario: name, cpu_ms_per_mb: Number((cpuUs / 1000 / ((count * MiB) / 1e6)).toFixed(2)) }
  process.stdout.write(`${JSON.stringify(line)}\n`)
}

const h = randomBytes(32)
await run('rpc_small_call', 4000, 16, 'call', async () => {
  await a.call(b.id, SMALL, smallReq())
})
await run('rpc_block_put_1mib', 200, 3, 'MB', async () => {
  // As lib/block/rpc.ts sends a block to a replica (over the mux connection since it has one).
  await a.call(b.id, PUT, { h }, { stream: block, priority: 'background' })
})
await run('rpc_block_get_1mib', 200, 3, 'MB', async () => {
  const { stream } = await a.callStreaming(b.id, GET, { h }, { priority: 'background' })
  let n = 0
  for await (const c of stream as AsyncIterable<Buffer>) n += c.length
  if (n !== MiB) throw new Error(`got ${n} bytes`)
})
await Promise.all([a.close(), b.close()])
