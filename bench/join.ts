/**
 * `npm run bench:join`: a fresh node joins a 3-node cluster (RF 3, 3 zones) that holds many
 * objects (issue 21). How long until it is in sync, at what rate, with how much memory.
 *
 * 1. A 3-node cluster of `garage server` processes (test/helpers/cluster.ts) gets
 *    JOIN_BLOCK_OBJECTS objects of 2.5 blocks through S3 (so that blocks have to move too).
 * 2. The nodes are stopped and JOIN_OBJECTS inline objects are loaded into each node's lmdb
 *    through the model layer (bench/model-loader.ts: same rows on the 3 nodes, spread over
 *    JOIN_BUCKETS buckets so that they fall in every partition — the object table is partitioned
 *    by bucket), the Merkle trees folded, and the nodes restarted.
 * 3. A 4th node (zone z4) starts and a layout change gives it a role: it now holds 3/4 of the
 *    partitions. Until it is in sync, every second: its object rows (rows/s received), and the
 *    end conditions — for every partition it holds, each sharded table's Merkle root equal to an
 *    old holder's with nothing left to fold on either side (tables equal), every block of those
 *    partitions in its data directory (blocks present).
 *
 * One JSON line on stdout: load figures, time to tables equal and to blocks present, rows/s,
 * the object entries (and pages) the joiner received, counting those sent by more than one holder,
 * the joiner's RSS and peak RSS (and the senders' peaks), the load average before and after.
 * Environment: JOIN_OBJECTS (default 100000), JOIN_BUCKETS (default 1000), JOIN_BLOCK_OBJECTS
 * (default 20), JOIN_TIMEOUT_S (default 3600), JOIN_LOG_DIR (a directory: each node's output is
 * written there at the end, `node<i>.log`, also when the run fails), JOIN_PROFILE (a directory:
 * every node process runs with `--cpu-prof` and writes its profile there when it exits).
 */
import { createHash } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { PutObjectCommand } from '@aws-sdk/client-s3'
import { open as openLmdbEnv } from 'lmdb'
import type { LayoutVersion } from '../lib/rpc/layout/history.ts'
import { nodesOfPartition, partitionOf } from '../lib/rpc/layout/version.ts'
import { merkleNodeKey } from '../lib/table/merkle.ts'
import {
  applyLayout,
  blockFilesOf,
  type ClusterNodeProcess,
  type ReplicatedCluster,
  readCurrentLayout,
  readTableContents,
  startReplicatedCluster,
} from '../test/helpers/cluster.ts'
import { foldObjectMerkle, inlineObjectRow, loadObjectRows, withModels } from './model-loader.ts'

const BLOCK = 16 * 1024
/** Sharded tables whose Merkle roots must agree. */
export const SHARDED_TABLES = ['object', 'version', 'block_ref', 'multipart_upload'] as const

const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d
const sha = (s: string): Buffer => createHash('sha256').update(s).digest()

export interface LoadedCluster {
  cluster: ReplicatedCluster
  /** Object rows per partition (the same on the 3 nodes). */
  rowsPerPartition: number[]
  /** Hex hashes of the blocks written through S3. */
  blocks: string[]
  loadS: number
  merkleS: number
}

/**
 * Starts 3 nodes, writes `blockObjects` objects through S3, stops the nodes, loads `objects`
 * inline objects over `buckets` bucket ids into each, folds their Merkle trees and restarts them.
 */
export async function startLoadedCluster(o: {
  objects: number
  buckets: number
  blockObjects: number
  log?: (s: string) => void
  /** Modules preloaded into the joining node (the 4th), e.g. test/helpers/sync-batch-hook.ts. */
  joinerPreload?: string[]
  /** Node.js flags of every node process (e.g. `--cpu-prof`). */
  nodeArgs?: string[]
}): Promise<LoadedCluster> {
  const log = o.log ?? (() => {})
  const cluster = await startReplicatedCluster({
    nodes: 3,
    configLines: [`block_size = ${BLOCK}`],
    nodeOptions: (i) => ({
      startTimeoutMs: 300_000,
      ...(o.nodeArgs === undefined ? {} : { nodeArgs: o.nodeArgs }),
      ...(i === 3 && o.joinerPreload !== undefined ? { preload: o.joinerPreload } : {}),
    }),
    startStepTimeoutMs: 300_000,
    requestTimeoutMs: 300_000,
  })
  try {
    const bodies = Array.from({ length: o.blockObjects }, (_, i) =>
      Buffer.concat([sha(`body ${i}`), Buffer.alloc(2 * BLOCK + BLOCK / 2 - 32, i)]),
    )
    for (let i = 0; i < bodies.length; i += 4) {
      await Promise.all(
        bodies
          .slice(i, i + 4)
          .map((body, j) =>
            cluster
              .client((i + j) % 3)
              .send(new PutObjectCommand({ Bucket: cluster.bucket, Key: `blocks/${i + j}`, Body: body })),
          ),
      )
    }
    // Settled (queued inserts applied, block references written everywhere) before stopping.
    const blocks = await settledBlocks(cluster)
    log(`${o.blockObjects} objects through S3: ${blocks.length} blocks`)
    for (const i of [0, 1, 2]) await cluster.kill(i)
    const ts = Date.now()
    const bucketIds = Array.from({ length: o.buckets }, (_, j) => sha(`join bucket ${j}`))
    function* rows(): Generator<ReturnType<typeof inlineObjectRow>> {
      for (let i = 0; i < o.objects; i++) {
        const key = `${String(Math.floor(i / o.buckets) % 1000).padStart(3, '0')}/${String(i).padStart(9, '0')}`
        yield inlineObjectRow(bucketIds[i % o.buckets] as Uint8Array, key, sha(`v ${i}`).subarray(0, 16), ts)
      }
    }
    const dirs = cluster.nodes.map((n) => n.proc.dir)
    const { loadS, merkleS, rowsPerPartition } = await withModels(dirs, async (gs) => {
      const t0 = performance.now()
      loadObjectRows(gs, rows(), { progress: (done) => done % 100_000 === 0 && log(`loaded ${done} / ${o.objects}`) })
      const loadS = (performance.now() - t0) / 1000
      const m0 = performance.now()
      for (const g of gs) await foldObjectMerkle(g)
      const merkleS = (performance.now() - m0) / 1000
      const rowsPerPartition = new Array<number>(256).fill(0)
      for (const [k] of (gs[0] as (typeof gs)[number]).objectTable.data.store.range()) {
        const p = partitionOf(k.subarray(0, 32))
        rowsPerPartition[p] = (rowsPerPartition[p] as number) + 1
      }
      return { loadS, merkleS, rowsPerPartition }
    })
    log(`loaded ${o.objects} rows into 3 nodes in ${round(loadS)} s, Merkle folded in ${round(merkleS)} s`)
    for (const i of [0, 1, 2]) await cluster.restart(i, { waitMesh: false })
    await cluster.waitMesh(300_000)
    return { cluster, rowsPerPartition, blocks, loadS, merkleS }
  } catch (err) {
    await cluster.stop()
    throw err
  }
}

/** Waits until the 3 nodes' tables are equal; returns the block hashes they reference. */
async function settledBlocks(cluster: ReplicatedCluster): Promise<string[]> {
  const deadline = Date.now() + 300_000
  for (;;) {
    const contents = await Promise.all(cluster.nodes.map((n) => readTableContents(n)))
    const dump = (c: Map<string, Map<string, string>>): string =>
      JSON.stringify(SHARDED_TABLES.map((t) => [...(c.get(t) ?? new Map<string, string>())].sort()))
    const first = dump(contents[0] as Map<string, Map<string, string>>)
    if (contents.every((c) => dump(c) === first)) {
      // block_ref keys: partition hash = the block hash.
      return [...(contents[0]?.get('block_ref')?.keys() ?? [])].map((k) => k.slice(0, 64))
    }
    if (Date.now() > deadline) throw new Error('the 3 nodes did not agree on their tables within 300 s')
    await new Promise((r) => setTimeout(r, 500))
  }
}

export interface JoinState {
  /** Object rows the joiner stores. */
  rows: number
  /** Sharded tables with partitions whose roots still differ (or fold pending), e.g. `object: 3`. */
  differing: string[]
  /** Blocks of the joiner's partitions it does not have yet. */
  missingBlocks: number
}

/** Opens a node's lmdb read-only for `fn`. */
async function withEnv<T>(n: ClusterNodeProcess, fn: (env: ReturnType<typeof openLmdbEnv>) => T): Promise<T> {
  const env = openLmdbEnv({ path: join(n.proc.dir, 'meta', 'db.lmdb'), readOnly: true, maxDbs: 64, compression: false })
  try {
    return fn(env)
  } finally {
    await env.close()
  }
}

type Env = ReturnType<typeof openLmdbEnv>
const tree = (env: Env, name: string): ReturnType<Env['openDB']> | undefined => {
  try {
    return env.openDB({ name, encoding: 'binary', keyEncoding: 'binary' })
  } catch {
    return undefined // not created (yet) on this node
  }
}

/** Where the joiner stands: its rows, the partitions of each table not equal yet, its missing blocks. */
export async function joinState(
  joiner: ClusterNodeProcess,
  others: readonly ClusterNodeProcess[],
  layout: LayoutVersion,
  blocks: readonly string[],
): Promise<JoinState> {
  const mine = Array.from({ length: 256 }, (_, p) => p).filter((p) => nodesOfPartition(layout, p).includes(joiner.id))
  // Each partition is compared with another of its holders in the new layout: a node that no
  // longer holds it hands its rows over and drops them, so its tree says nothing of the joiner's.
  const holderOf = mine.map((p) => {
    const h = others.find((n) => nodesOfPartition(layout, p).includes(n.id))
    if (h === undefined) throw new Error(`partition ${p}: no other holder`)
    return h
  })
  const roots = (env: Env, table: string, parts: readonly number[]): { roots: Array<string | undefined>; todo: boolean } => {
    const t = tree(env, `${table}:merkle_tree`)
    const todo = tree(env, `${table}:merkle_todo`)
    return {
      roots: parts.map((p) => {
        const v = t?.getBinary(merkleNodeKey(p))
        return v === undefined ? undefined : Buffer.from(v).toString('hex')
      }),
      todo: todo !== undefined && [...todo.getKeys({ limit: 1 })].length > 0,
    }
  }
  const a = await withEnv(joiner, (env) => ({
    rows: tree(env, 'object:table')?.getKeysCount() ?? 0,
    tables: SHARDED_TABLES.map((t) => roots(env, t, mine)),
  }))
  // Per holder: the roots of the joiner's partitions it is compared on.
  const theirs = new Map<string, Array<{ roots: Array<string | undefined>; todo: boolean }>>()
  for (const h of new Set(holderOf)) {
    theirs.set(h.id, await withEnv(h, (env) => SHARDED_TABLES.map((t) => roots(env, t, mine))))
  }
  const differing: string[] = []
  for (const [i, table] of SHARDED_TABLES.entries()) {
    const x = a.tables[i] as { roots: Array<string | undefined>; todo: boolean }
    let n = 0
    let todo = x.todo
    for (const [j, h] of holderOf.entries()) {
      const y = (theirs.get(h.id) as Array<{ roots: Array<string | undefined>; todo: boolean }>)[i] as {
        roots: Array<string | undefined>
        todo: boolean
      }
      if (x.roots[j] !== y.roots[j]) n++
      todo ||= y.todo
    }
    if (n > 0 || todo) differing.push(`${table}: ${n} partitions${todo ? ', fold pending' : ''}`)
  }
  const have = (await blockFilesOf(joiner)).blocks
  const missingBlocks = blocks.filter((h) => mine.includes(partitionOf(Buffer.from(h, 'hex'))) && !have.has(h)).length
  return { rows: a.rows, differing, missingBlocks }
}

/** CPU seconds (user + system) a process has used so far. */
const cpuS = async (pid: number): Promise<number> => {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / 100 // USER_HZ
}

/**
 * RSS, its peak, and its anonymous part (the process's own memory: heap, buffers, lmdb-js's
 * write buffers; the rest of RSS is mostly lmdb's file pages mapped, which the kernel reclaims).
 */
const rssMb = async (pid: number): Promise<{ rss: number; peak: number; anon: number }> => {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (f: string): number => Number(new RegExp(`^${f}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1] ?? 0)
  return { rss: round(kb('VmRSS') / 1024), peak: round(kb('VmHWM') / 1024), anon: round(kb('RssAnon') / 1024) }
}

export interface JoinResult {
  joiner: number
  layout: LayoutVersion
  expectedRows: number
  tablesEqualS: number
  blocksPresentS: number
  samples: Array<{ s: number; rows: number }>
}

/** Adds a 4th node in zone z4 with a layout change and waits until it is in sync. */
export async function joinAndWait(
  l: LoadedCluster,
  o: {
    timeoutMs: number
    log?: (s: string) => void
    onSample?: (s: { s: number; rows: number; state: JoinState }) => Promise<void> | void
  },
): Promise<JoinResult> {
  const { cluster } = l
  const log = o.log ?? (() => {})
  const joiner = await cluster.addNode('z4', { meshTimeoutMs: 300_000 })
  const t0 = performance.now()
  await applyLayout(cluster.node(0), { roles: [{ id: cluster.node(joiner).id, zone: 'z4' }] }, cluster.nodes, 300_000)
  const layout = await readCurrentLayout(cluster.node(0))
  const expectedRows = l.rowsPerPartition
    .filter((_, p) => nodesOfPartition(layout, p).includes(cluster.node(joiner).id))
    .reduce((a, b) => a + b, 0)
  log(`layout v${layout.version} applied; the joiner should receive ${expectedRows} object rows`)
  const samples: Array<{ s: number; rows: number }> = []
  let tablesEqualS: number | undefined
  let blocksPresentS: number | undefined
  for (;;) {
    const s = (performance.now() - t0) / 1000
    const others = cluster.nodes.filter((_, i) => i !== joiner)
    const state = await joinState(cluster.node(joiner), others, layout, l.blocks)
    samples.push({ s: round(s, 2), rows: state.rows })
    await o.onSample?.({ s, rows: state.rows, state })
    if (tablesEqualS === undefined && state.differing.length === 0) tablesEqualS = s
    if (blocksPresentS === undefined && state.missingBlocks === 0) blocksPresentS = s
    if (tablesEqualS !== undefined && blocksPresentS !== undefined) break
    if (samples.length % 10 === 0)
      log(
        `${round(s)} s: ${state.rows} rows, ${state.differing.join('; ') || 'tables equal'}, ${state.missingBlocks} blocks missing`,
      )
    if (s * 1000 > o.timeoutMs) {
      throw new Error(
        `the joiner is not in sync after ${round(s)} s: ${state.rows}/${expectedRows} rows, ${state.differing.join('; ')}, ${state.missingBlocks} blocks missing`,
      )
    }
    await new Promise((r) => setTimeout(r, 1_000))
  }
  return { joiner, layout, expectedRows, tablesEqualS, blocksPresentS, samples }
}

async function main(): Promise<void> {
  const objects = Number(process.env.JOIN_OBJECTS ?? 100_000)
  const buckets = Number(process.env.JOIN_BUCKETS ?? 1000)
  const blockObjects = Number(process.env.JOIN_BLOCK_OBJECTS ?? 20)
  const timeoutMs = Number(process.env.JOIN_TIMEOUT_S ?? 3600) * 1000
  const log = (s: string): void => {
    process.stderr.write(`[join ${new Date().toISOString().slice(11, 19)}] ${s}\n`)
  }
  const loadBefore = loadavg().map((x) => round(x))
  const profileDir = process.env.JOIN_PROFILE
  const l = await startLoadedCluster({
    objects,
    buckets,
    blockObjects,
    log,
    joinerPreload: [fileURLToPath(new URL('../test/helpers/sync-batch-hook.ts', import.meta.url))],
    ...(profileDir === undefined ? {} : { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] }),
  })
  try {
    const senders = l.cluster.nodes.map((n) => n.proc.child.pid as number)
    await Promise.all(l.cluster.nodes.map((n) => n.proc.resetPeakRss()))
    let peakJoiner = 0
    // Peaks of RssAnon, sampled every second (the kernel keeps no peak of it).
    let peakJoinerAnon = 0
    const senderAnon = senders.map(() => 0)
    const sendersCpu0 = await Promise.all(senders.map(cpuS))
    // The joiner's CPU at its first sample (just after the layout change): what it used to sync
    // is read against it, a figure the machine's load does not change as much as wall time.
    let joinerCpu0: number | undefined
    let joinerCpuAtEqual: number | undefined
    const r = await joinAndWait(l, {
      timeoutMs,
      log,
      onSample: async ({ state }) => {
        const pid = l.cluster.nodes[3]?.proc.child.pid
        if (pid === undefined) return
        const m = await rssMb(pid)
        peakJoiner = Math.max(peakJoiner, m.peak)
        peakJoinerAnon = Math.max(peakJoinerAnon, m.anon)
        await Promise.all(
          senders.map(async (p, i) => {
            senderAnon[i] = Math.max(senderAnon[i] ?? 0, (await rssMb(p)).anon)
          }),
        )
        joinerCpu0 ??= await cpuS(pid)
        if (joinerCpuAtEqual === undefined && state.differing.length === 0) joinerCpuAtEqual = await cpuS(pid)
      },
    })
    const sendersCpu = (await Promise.all(senders.map(cpuS))).map((c, i) => round(c - (sendersCpu0[i] ?? 0)))
    const joinerMem = await rssMb(l.cluster.node(r.joiner).proc.child.pid as number)
    // Entries the joiner received (test/helpers/sync-batch-hook.ts): every old holder pushes
    // what the joiner's tree lacks when it compares, so some arrive more than once.
    await new Promise((res) => setTimeout(res, 1_100))
    const pages =
      l.cluster
        .node(r.joiner)
        .proc.output()
        .match(/^SYNC_PAGES .*$/gm) ?? []
    const received = JSON.parse(pages[pages.length - 1]?.slice('SYNC_PAGES '.length) ?? '{}') as Record<
      string,
      { calls: number; items: number; max: number }
    >
    const senderPeaks = await Promise.all(senders.map(async (pid) => (await rssMb(pid)).peak))
    // Rows/s over the stretch where rows arrived (first to last change).
    const moving = r.samples.filter((s, i) => i === 0 || s.rows !== r.samples[i - 1]?.rows)
    const first = r.samples.find((s) => s.rows > 0)
    const last = moving[moving.length - 1]
    const rowsS =
      first !== undefined && last !== undefined && last.s > first.s ? (last.rows - first.rows) / (last.s - first.s) : null
    const out = {
      bench: 'join',
      objects,
      buckets,
      block_objects: blockObjects,
      blocks: l.blocks.length,
      load_s: round(l.loadS),
      merkle_fold_s: round(l.merkleS),
      joiner_rows: r.expectedRows,
      first_row_s: first?.s ?? null,
      tables_equal_s: round(r.tablesEqualS),
      blocks_present_s: round(r.blocksPresentS),
      rows_per_s: rowsS === null ? null : Math.round(rowsS),
      object_entries_received: received.object?.items ?? null,
      object_pages_received: received.object?.calls ?? null,
      joiner_cpu_s_to_tables_equal:
        joinerCpu0 === undefined || joinerCpuAtEqual === undefined ? null : round(joinerCpuAtEqual - joinerCpu0),
      senders_cpu_s: sendersCpu,
      joiner_rss_mb: joinerMem.rss,
      joiner_peak_rss_mb: Math.max(peakJoiner, joinerMem.peak),
      sender_peak_rss_mb: senderPeaks,
      joiner_peak_anon_mb: peakJoinerAnon,
      sender_peak_anon_mb: senderAnon,
      loadavg_before: loadBefore,
      loadavg_after: loadavg().map((x) => round(x)),
    }
    process.stdout.write(`${JSON.stringify(out)}\n`)
  } finally {
    const dir = process.env.JOIN_LOG_DIR
    if (dir !== undefined) {
      await mkdir(dir, { recursive: true })
      await Promise.all(l.cluster.nodes.map((n, i) => writeFile(join(dir, `node${i}.log`), n.proc.output())))
    }
    await l.cluster.stop()
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main()
