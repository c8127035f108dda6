/**
 * K2V items in a recorded workload (the chaos suite's `extra` task): writers read an item through
 * a random node, then insert a fresh value with the causality token of that read (the value ids
 * the read returned are what the token covers), through a random node, the next one on a 5xx or
 * a connection error; readers read items through every node. The checker:
 *
 * An insert `w` is *accounted for* in a set of values `V` when `w ∈ V`, or some insert `w'` (acknowledged
 * or not: an unacknowledged insert may have been applied) that started before the read ended
 * carried a token covering `w` (its read returned `w`) and is itself accounted for in `V`. Every
 * acknowledged insert must be accounted for in every read that started after it was acknowledged
 * (during the run, and the final reads through every node after the heal). Sibling values (two
 * writers with the same token) are fine: both stay until a token covering them replaces them.
 */
import { K2vClient, K2vError } from '../../lib/k2v/client.ts'
import type { ReplicatedCluster } from './cluster.ts'
import type { RequestLog } from './workload.ts'

export interface K2vInsert {
  id: string
  item: string
  /** Value ids the token's read returned (what the insert replaces). */
  covers: string[]
  node: number
  start: number
  end: number
  acked: boolean
}

export interface K2vRead {
  item: string
  node: number
  start: number
  end: number
  values: string[]
}

export interface K2vHistory {
  inserts: K2vInsert[]
  reads: K2vRead[]
  finals: K2vRead[]
}

export interface K2vWorkloadOptions {
  /** Items (sort keys of one partition). Default 3. */
  items?: number
  /** Default 2. */
  writers?: number
  /** Default 1. */
  readers?: number
  /** Partition key. Default `chaos`. */
  partition?: string
  /** Client timeout of one request. Default 20 s. */
  requestTimeoutMs?: number
  seed?: number
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const text = (v: Uint8Array | null): string => (v === null ? '(deleted)' : Buffer.from(v).toString())

/** The K2V endpoint node `i` printed (it changes when the node restarts). */
function k2vClient(cluster: ReplicatedCluster, i: number): K2vClient {
  const endpoint = /k2v API listening on (http:\/\/\S+)/.exec(cluster.node(i).proc.output())?.[1]
  if (endpoint === undefined) throw new Error(`node ${i} reported no K2V endpoint (is [k2v_api] configured?)`)
  return new K2vClient({ endpoint, region: cluster.node(i).proc.region, bucket: cluster.bucket, ...cluster.credentials })
}

/** 5xx, a connection error or a timeout: the client tries another node. */
function retryable(err: unknown): boolean {
  if (err instanceof K2vError) return err.status >= 500 || err.code === 'K2V_ERR_NETWORK'
  return true
}

/** A seeded generator (mulberry32), so a run's choices can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * The K2V workload: `task` goes into `runWorkload({ extra: [task] })` once the cluster runs
 * (`bind`); `history` is filled as it goes; `final` reads every item through every serving node.
 */
export function k2vWorkload(o: K2vWorkloadOptions = {}): {
  bind(cluster: ReplicatedCluster): void
  task: (ctx: { running: () => boolean; log: (r: RequestLog) => void }) => Promise<void>
  history: K2vHistory
  final(cluster: ReplicatedCluster): Promise<void>
} {
  const items = Array.from({ length: o.items ?? 3 }, (_, i) => `k2v-${i}`)
  const pk = o.partition ?? 'chaos'
  const timeoutMs = o.requestTimeoutMs ?? 20_000
  const r = rng(o.seed ?? 7)
  const history: K2vHistory = { inserts: [], reads: [], finals: [] }
  let cluster: ReplicatedCluster | undefined

  /** Runs `fn` through random nodes (the next one on a retryable failure); undefined when all failed. */
  const through = async <T>(
    op: string,
    log: (r: RequestLog) => void,
    fn: (c: K2vClient, node: number) => Promise<T>,
    onTry?: (node: number, start: number, end: number, ok: boolean) => void,
  ): Promise<T | undefined> => {
    const c = cluster as ReplicatedCluster
    const nodes = c.clientIndexes()
    const first = Math.floor(r() * nodes.length)
    for (let k = 0; k < nodes.length; k++) {
      const node = nodes[(first + k) % nodes.length] as number
      if (c.isDown(node)) continue
      const start = Date.now()
      let status: RequestLog['status'] = 200
      try {
        const out = await fn(k2vClient(c, node), node)
        log({ op, node, start, end: Date.now(), status })
        onTry?.(node, start, Date.now(), true)
        return out
      } catch (err) {
        status =
          err instanceof K2vError && err.status > 0 ? err.status : (err as Error).name === 'TimeoutError' ? 'timeout' : 'error'
        log({ op, node, start, end: Date.now(), status })
        onTry?.(node, start, Date.now(), false)
        if (!retryable(err)) throw err
      }
    }
    return undefined
  }

  const read = async (c: K2vClient, item: string): Promise<{ causality?: string; values: string[] }> => {
    try {
      const v = await c.readItem(pk, item, { signal: AbortSignal.timeout(timeoutMs) })
      return { causality: v.causality, values: v.values.map(text) }
    } catch (err) {
      if (err instanceof K2vError && err.status === 404) return { values: [] }
      throw err
    }
  }

  const writer = async (w: number, running: () => boolean, log: (r: RequestLog) => void): Promise<void> => {
    for (let n = 0; running(); n++) {
      const item = items[Math.floor(r() * items.length)] as string
      const seen = await through('k2v-read', log, (c) => read(c, item))
      if (seen === undefined) {
        await sleep(200)
        continue
      }
      const id = `w${w}-${n}`
      const rec: K2vInsert = { id, item, covers: seen.values, node: -1, start: Date.now(), end: Number.NaN, acked: false }
      history.inserts.push(rec)
      const ok = await through(
        'k2v-insert',
        log,
        async (c) => {
          await c.insertItem(pk, item, id, seen.causality, { signal: AbortSignal.timeout(timeoutMs) })
          return true
        },
        (node, _s, end, done) => {
          rec.node = node
          rec.end = end
          rec.acked = done
        },
      )
      if (ok === undefined) rec.acked = false
      await sleep(200 + Math.floor(r() * 300))
    }
  }

  const reader = async (running: () => boolean, log: (r: RequestLog) => void): Promise<void> => {
    while (running()) {
      const item = items[Math.floor(r() * items.length)] as string
      let node = -1
      let start = 0
      const got = await through(
        'k2v-read',
        log,
        (c) => read(c, item),
        (n, s) => {
          node = n
          start = s
        },
      )
      if (got !== undefined) history.reads.push({ item, node, start, end: Date.now(), values: got.values })
      await sleep(300 + Math.floor(r() * 300))
    }
  }

  return {
    history,
    bind(c) {
      cluster = c
    },
    async task({ running, log }) {
      if (cluster === undefined) throw new Error('k2vWorkload: bind(cluster) before the workload starts')
      await Promise.all([
        ...Array.from({ length: o.writers ?? 2 }, (_, w) => writer(w, running, log)),
        ...Array.from({ length: o.readers ?? 1 }, () => reader(running, log)),
      ])
    },
    async final(c) {
      for (const node of c.servingIndexes()) {
        for (const item of items) {
          const start = Date.now()
          const got = await read(k2vClient(c, node), item)
          history.finals.push({ item, node, start, end: Date.now(), values: got.values })
        }
      }
    },
  }
}

/** Violations of the K2V history: acknowledged inserts a read does not account for. */
export function checkK2v(h: K2vHistory): string[] {
  const out: string[] = []
  const byId = new Map(h.inserts.map((w) => [w.id, w]))
  /** Inserts whose token covered `id`. */
  const supersededBy = new Map<string, K2vInsert[]>()
  for (const w of h.inserts) {
    for (const id of w.covers) {
      const list = supersededBy.get(id) ?? []
      list.push(w)
      supersededBy.set(id, list)
    }
  }
  for (const read of [...h.reads, ...h.finals]) {
    const values = new Set(read.values)
    const memo = new Map<string, boolean>()
    const accounted = (id: string): boolean => {
      const m = memo.get(id)
      if (m !== undefined) return m
      memo.set(id, false) // no cycles (a token covers only values applied before), but be safe
      const ok =
        values.has(id) || (supersededBy.get(id) ?? []).some((w) => w.item === read.item && w.start < read.end && accounted(w.id))
      memo.set(id, ok)
      return ok
    }
    for (const w of h.inserts) {
      if (!w.acked || w.item !== read.item || !(w.end < read.start)) continue
      if (!accounted(w.id)) {
        const kind = h.finals.includes(read) ? 'final read' : 'read'
        out.push(
          `K2V lost insert: ${w.id} on ${w.item} (acked at node ${w.node}, ${w.end}) missing from a ${kind} through node ${read.node} at ${read.start}: [${read.values.join(', ')}]`,
        )
      }
    }
  }
  // Values no insert produced would be a bug too.
  for (const read of [...h.reads, ...h.finals]) {
    for (const v of read.values)
      if (!byId.has(v)) out.push(`K2V read of ${read.item} through node ${read.node} returned an unknown value ${v}`)
  }
  return out
}
