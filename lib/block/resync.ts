/**
 * The resync queue and its workers (port of garage_block::resync). Blocks to check are queued by
 * due time, one entry per block (the earliest requested time wins, as in Garage 2.x); a worker
 * takes the first due one and lets the block manager bring it in line with what the node should
 * hold (fetch, offload, delete). A failure is counted in `block_resync_errors` and retried with
 * exponential backoff; a new request for the block (a reference arriving, a missed read) brings
 * the retry forward.
 * @internal
 */
import type { Db, Transaction, Tree } from '../db/db.ts'
import { Notify, sleep, type Worker, type WorkerState } from '../util/background/worker.ts'
import { defineCodec } from '../util/codec.ts'
import { concatBytes, type Hash, toHex, utf8 } from '../util/data.ts'
import { ModelError } from '../util/errors.ts'
import type { Logger } from '../util/logger.ts'

/** Base delay of a retry after a failure (Garage's RESYNC_RETRY_DELAY). @internal */
export const RESYNC_RETRY_DELAY_MS = 60_000
/** The retry delay doubles per failure up to 2^6 times the base. @internal */
export const RESYNC_MAX_BACKOFF_POWER = 6
/** Most resync workers (`resync-worker-count` is 1..8). @internal */
export const MAX_RESYNC_WORKERS = 8
const INITIAL_RESYNC_TRANQUILITY = 2

interface ErrorCounter {
  /** Consecutive failures. */
  n: number
  /** Time of the last try, ms. */
  last: number
}
const errorCodec = defineCodec<ErrorCounter>('G0bre')

interface ResyncConfig {
  tranquility: number
  workers: number
}
const configCodec = defineCodec<ResyncConfig>('G0brc')
const CONFIG_KEY = utf8('resync')

/** A block whose resync failed. */
export interface BlockResyncErrorInfo {
  hash: Hash
  /** Consecutive failures. */
  errors: number
  /** Time of the last try (ms since the epoch). */
  lastTry: number
  /** Time of the next try. */
  nextTry: number
}

/**
 * What a resync step did, when it matters to the worker: `'fetched'`, a referenced block this
 * node lacked was fetched (no tranquility pause after it). @internal
 */
export type ResyncOutcome = 'fetched'

/** What the queue asks the block manager to do for one block. @internal */
export interface ResyncTarget {
  /** Brings the local state of `hash` in line with the layout; throws to retry later. */
  resyncBlock(hash: Hash): Promise<ResyncOutcome | undefined | void>
  /**
   * Whether this node references `hash` (a cheap, synchronous check). Among due entries, referenced
   * blocks (which may have to be fetched) go before unreferenced ones (garbage to collect).
   */
  isReferenced?(hash: Hash): boolean
}

/** How many due entries a worker looks at to find a referenced block before the others. */
const PICK_WINDOW = 64
/** Most blocks remembered as urgent (beyond, they wait their turn in due order). */
const MAX_URGENT = 10_000

/** @internal */
export interface BlockResyncOptions {
  db: Db
  /** Base of the retry backoff. Default {@link RESYNC_RETRY_DELAY_MS}. */
  retryDelayMs?: number
  log: Logger
}

/** The persisted queue, the error counters and the workers' settings. @internal */
export class BlockResync {
  /** Key: due time (u64 big-endian ms) then hash; value empty. */
  readonly queue: Tree
  /** Key: hash; value: due time (u64 big-endian) of its one entry in `queue`. */
  readonly #due: Tree
  /** Key: hash; value: error counter. */
  readonly errors: Tree
  readonly notify = new Notify()
  readonly retryDelayMs: number
  readonly #db: Db
  readonly #config: Tree
  readonly #log: Logger
  readonly #busy = new Set<string>()
  /** Hex hash → earliest time requested while a worker was processing that block. */
  readonly #requeue = new Map<string, number>()
  /**
   * Hex hash → due time of the blocks queued as urgent (a reference arriving, a read that
   * missed, a corrupt copy: the block may have to be fetched), in the order they were asked.
   * Taken before every other due entry: the pick window sees only the first due entries, so
   * behind a backlog of older garbage checks (a layout change queues every block) a reference
   * synced after a restart waited minutes. In memory only, bounded: the queue itself is the
   * persisted truth, and a block not found here is still checked in due order.
   */
  readonly #urgent = new Map<string, number>()
  /** Whether the queue kept from before the start was scanned for referenced blocks. */
  #scannedAtStart = false
  #settings: ResyncConfig

  constructor(o: BlockResyncOptions) {
    this.#db = o.db
    this.#log = o.log
    this.retryDelayMs = o.retryDelayMs ?? RESYNC_RETRY_DELAY_MS
    this.queue = o.db.openTree('block_local_resync_queue')
    this.#due = o.db.openTree('block_local_resync_due')
    this.errors = o.db.openTree('block_resync_errors')
    this.#config = o.db.openTree('block_local_config')
    const raw = this.#config.get(CONFIG_KEY)
    this.#settings = raw === undefined ? { tranquility: INITIAL_RESYNC_TRANQUILITY, workers: 1 } : configCodec.decode(raw)
  }

  /** Sleep after each step, as a multiple of the step's duration (persisted). */
  get tranquility(): number {
    return this.#settings.tranquility
  }
  set tranquility(n: number) {
    this.#saveSettings({ ...this.#settings, tranquility: n })
  }

  /** Number of workers that run (1..8, persisted). */
  get workerCount(): number {
    return this.#settings.workers
  }
  set workerCount(n: number) {
    if (!Number.isInteger(n) || n < 1 || n > MAX_RESYNC_WORKERS) {
      throw new ModelError('BadRequest', `resync-worker-count must be between 1 and ${MAX_RESYNC_WORKERS}`)
    }
    this.#saveSettings({ ...this.#settings, workers: n })
  }

  #saveSettings(s: ResyncConfig): void {
    this.#db.transaction((tx) => tx.insert(this.#config, CONFIG_KEY, configCodec.encode(s)))
    this.#settings = s
    this.notify.notify()
  }

  /**
   * Queues a check of `hash` at `at` inside a transaction. A block has one entry: when it is
   * queued already, the earlier time is kept (Garage 2.x's `put_to_resync_at`). While a worker
   * processes the block, the request is kept aside and queued when it is done, so a reference
   * that arrives during a check is never folded into the entry the check is about to remove.
   * `urgent`: the block may be missing here although referenced; checked before the backlog.
   */
  schedule(tx: Transaction, hash: Hash, at: number, urgent = false): void {
    const hex = toHex(hash)
    if (urgent) {
      const cur = this.#urgent.get(hex)
      if (cur !== undefined) this.#urgent.set(hex, Math.min(cur, at))
      else if (this.#urgent.size < MAX_URGENT) this.#urgent.set(hex, at)
    }
    if (this.#busy.has(hex)) {
      const pending = this.#requeue.get(hex)
      if (pending === undefined || at < pending) this.#requeue.set(hex, at)
      return
    }
    this.#insert(tx, hash, at)
  }

  #insert(tx: Transaction, hash: Hash, at: number): void {
    const t = Math.max(0, Math.floor(at))
    const cur = tx.get(this.#due, hash)
    if (cur !== undefined) {
      const curAt = readU64(cur)
      if (curAt <= t) return
      tx.remove(this.queue, queueKey(curAt, hash))
    }
    tx.insert(this.queue, queueKey(t, hash), new Uint8Array(0))
    tx.insert(this.#due, hash, u64(t))
    queueMicrotask(() => this.notify.notify())
  }

  /** Removes the queue entry `key` of `hash` (and its index if it points there). */
  #remove(tx: Transaction, key: Uint8Array, hash: Hash): void {
    tx.remove(this.queue, key)
    const cur = tx.get(this.#due, hash)
    if (cur !== undefined && readU64(cur) === readU64(key)) tx.remove(this.#due, hash)
  }

  /** Queues a check of `hash` at `at` (its own transaction); `urgent` as {@link schedule}. */
  put(hash: Hash, at: number, urgent = false): void {
    this.#db.transaction((tx) => this.schedule(tx, hash, at, urgent))
  }

  /**
   * Once, at the first step: the urgency is not persisted, so the referenced blocks among the
   * first {@link MAX_URGENT} entries of the queue kept from before a restart (a reference
   * synced just before a SIGKILL) are marked urgent again, in due order. One bounded read of
   * the queue and the counts; a referenced block already here costs a local check only.
   */
  #scanReferenced(target: ResyncTarget): void {
    this.#scannedAtStart = true
    const isReferenced = target.isReferenced
    if (isReferenced === undefined) return
    for (const [k] of this.queue.range({ limit: MAX_URGENT })) {
      if (this.#urgent.size >= MAX_URGENT) break
      const hash = Uint8Array.from(k.subarray(8))
      const hex = toHex(hash)
      if (!this.#urgent.has(hex) && isReferenced.call(target, hash)) this.#urgent.set(hex, readU64(k))
    }
  }

  /** The first due urgent block not being processed, with its queue entry. */
  #pickUrgent(now: number): { key: Uint8Array; hash: Hash } | undefined {
    for (const [hex, at] of this.#urgent) {
      // Asked in (nearly) due order: every request adds the same delay to its time.
      if (at > now) return undefined
      if (this.#busy.has(hex)) continue
      const hash = Uint8Array.from(Buffer.from(hex, 'hex'))
      const due = this.#due.get(hash)
      if (due === undefined) {
        // Checked meanwhile (the entry went with the check).
        this.#urgent.delete(hex)
        continue
      }
      const dueAt = readU64(due)
      // Its entry is later than asked (a failure moved it to the retry time): not due yet.
      if (dueAt > now) {
        this.#urgent.delete(hex)
        continue
      }
      return { key: queueKey(dueAt, hash), hash }
    }
    return undefined
  }

  /** Queues many hashes at `at`, in batched transactions. */
  putMany(hashes: readonly Hash[], at: number): void {
    if (hashes.length === 0) return
    this.#db.transaction((tx) => {
      for (const h of hashes) this.schedule(tx, h, at)
    })
  }

  length(): number {
    return this.queue.count()
  }

  erroredCount(): number {
    return this.errors.count()
  }

  /** When a block that failed `n` times in a row at `lastTry` is tried again. */
  nextTry(n: number, lastTry: number): number {
    return lastTry + this.retryDelayMs * 2 ** Math.min(Math.max(n - 1, 0), RESYNC_MAX_BACKOFF_POWER)
  }

  errorOf(hash: Hash): BlockResyncErrorInfo | undefined {
    const raw = this.errors.get(hash)
    if (raw === undefined) return undefined
    const e = errorCodec.decode(raw)
    return { hash, errors: e.n, lastTry: e.last, nextTry: this.nextTry(e.n, e.last) }
  }

  /** Every block in an error state, by hash. */
  listErrors(): BlockResyncErrorInfo[] {
    const out: BlockResyncErrorInfo[] = []
    for (const [k, v] of this.errors.range()) {
      const e = errorCodec.decode(v)
      out.push({ hash: Uint8Array.from(k), errors: e.n, lastTry: e.last, nextTry: this.nextTry(e.n, e.last) })
    }
    return out
  }

  /**
   * Lifts the backoff of errored blocks and queues them now (`garage block retry-now`).
   * Returns how many were queued.
   * @throws ModelError when a given block is not in an error state.
   */
  retryNow(hashes: readonly Hash[] | 'all'): number {
    const list = hashes === 'all' ? this.listErrors().map((e) => e.hash) : hashes
    const now = Date.now()
    return this.#db.transaction((tx) => {
      for (const h of list) {
        const raw = tx.get(this.errors, h)
        if (raw === undefined) throw new ModelError('BadRequest', `block ${toHex(h)} is not in an error state`)
        const e = errorCodec.decode(raw)
        tx.insert(this.errors, h, errorCodec.encode({ n: e.n, last: 0 }))
        this.schedule(tx, h, now)
      }
      return list.length
    })
  }

  /** Forgets the error counter of `hash`; true if there was one. */
  clearError(hash: Hash): boolean {
    return this.#db.transaction((tx) => {
      if (tx.get(this.errors, hash) === undefined) return false
      tx.remove(this.errors, hash)
      return true
    })
  }

  /**
   * Processes the first due block not already being processed by another worker.
   * @returns 'did' after one block ('fetched' when it was a referenced block fetched from
   *   another node), or the time the next block is due.
   */
  async step(target: ResyncTarget): Promise<'did' | 'fetched' | { idleUntil: number }> {
    const now = Date.now()
    if (!this.#scannedAtStart) this.#scanReferenced(target)
    let picked = this.#pickUrgent(now)
    let anyDue = picked !== undefined
    // A backlog (a node back from a crash or a long partition) holds both blocks to fetch and
    // garbage to collect, each check a round trip or more followed by the tranquility pause: the
    // blocks this node references, which may be missing here, are checked first, so a node
    // holds its live data again before it has sorted out its garbage.
    for (const [k] of picked === undefined ? this.queue.range({ limit: PICK_WINDOW }) : []) {
      const at = readU64(k)
      if (at > now) {
        if (!anyDue) return { idleUntil: at }
        break
      }
      anyDue = true
      const hash = Uint8Array.from(k.subarray(8))
      if (this.#busy.has(toHex(hash))) continue
      if (target.isReferenced === undefined || target.isReferenced(hash)) {
        picked = { key: Uint8Array.from(k), hash }
        break
      }
      picked ??= { key: Uint8Array.from(k), hash }
    }
    if (picked === undefined) return { idleUntil: anyDue ? now + 100 : Number.POSITIVE_INFINITY }
    const { key, hash } = picked
    // The entry's time is the retry time after a failure (set below), unless a newer request
    // brought it forward: a block_ref that arrives, a read that missed, `retry-now`.
    const err = this.errorOf(hash)
    const hex = toHex(hash)
    this.#busy.add(hex)
    // A request made during the check marks it urgent again (and queues it for after).
    this.#urgent.delete(hex)
    const started = Date.now()
    let outcome: ResyncOutcome | undefined | void
    try {
      outcome = await target.resyncBlock(hash)
      this.#log.debug(`resync of block ${hex} done in ${Date.now() - started} ms (due ${now - readU64(key)} ms ago)`)
      this.#db.transaction((tx) => {
        tx.remove(this.errors, hash)
        this.#remove(tx, key, hash)
      })
    } catch (e) {
      // Counted and retried with backoff; the error stays visible in `listErrors()`.
      const n = (err?.errors ?? 0) + 1
      this.#log.warn(`resync of block ${hex} failed (${n} time(s) in a row): ${(e as Error).message}`)
      this.#db.transaction((tx) => {
        tx.insert(this.errors, hash, errorCodec.encode({ n, last: now }))
        this.#remove(tx, key, hash)
        this.#insert(tx, hash, this.nextTry(n, now))
      })
    } finally {
      this.#busy.delete(hex)
      const again = this.#requeue.get(hex)
      if (again !== undefined) {
        this.#requeue.delete(hex)
        this.#db.transaction((tx) => this.#insert(tx, hash, again))
      }
    }
    return outcome === 'fetched' ? 'fetched' : 'did'
  }

  /** The `index`-th worker (0-based); it idles while `index >= workerCount`. */
  worker(index: number, target: ResyncTarget): Worker {
    return new ResyncWorker(this, index, target)
  }
}

class ResyncWorker implements Worker {
  readonly name: string
  readonly #q: BlockResync
  readonly #index: number
  readonly #target: ResyncTarget
  #nextAt = 0
  constructor(q: BlockResync, index: number, target: ResyncTarget) {
    this.#q = q
    this.#index = index
    this.#target = target
    this.name = `block resync #${index + 1}`
  }
  async work(signal: AbortSignal): Promise<WorkerState> {
    if (this.#index >= this.#q.workerCount) {
      this.#nextAt = Number.POSITIVE_INFINITY
      return 'idle'
    }
    const started = performance.now()
    const r = await this.#q.step(this.#target)
    if (typeof r === 'object') {
      this.#nextAt = r.idleUntil
      return 'idle'
    }
    // No pause after fetching a referenced block this node lacked: the node holds too few copies
    // of live data until it has them all (a node back from a crash or a partition; each fetch
    // was 0.6-1.4 s plus twice that asleep at tranquility 2). The pause still spaces the checks,
    // offloads and deletions, and `resync-worker-count` bounds the fetches in flight.
    if (r === 'fetched') return 'busy'
    const pause = (performance.now() - started) * this.#q.tranquility
    if (pause >= 1) await sleep(Math.min(pause, 10_000), signal)
    return 'busy'
  }
  waitForWork(signal: AbortSignal): Promise<void> {
    const wait = Math.min(Math.max(this.#nextAt - Date.now(), 10), 10_000)
    return this.#q.notify.wait(signal, wait)
  }
  info(): Record<string, number> {
    if (this.#index >= this.#q.workerCount) return { disabled: 1 }
    return { queueLength: this.#q.length(), persistentErrors: this.#q.erroredCount(), tranquility: this.#q.tranquility }
  }
}

/** A worker that runs `fn` once. @internal */
export class OneShotWorker implements Worker {
  readonly name: string
  readonly #fn: (signal: AbortSignal) => Promise<void>
  constructor(name: string, fn: (signal: AbortSignal) => Promise<void>) {
    this.name = name
    this.#fn = fn
  }
  async work(signal: AbortSignal): Promise<WorkerState> {
    await this.#fn(signal)
    return 'done'
  }
  waitForWork(): Promise<void> {
    return Promise.resolve()
  }
}

function queueKey(at: number, hash: Hash): Uint8Array {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(at))))
  return concatBytes(new Uint8Array(b), hash)
}

function u64(n: number): Uint8Array {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(n))
  return new Uint8Array(b)
}

function readU64(b: Uint8Array): number {
  return Number(Buffer.from(b.buffer, b.byteOffset, 8).readBigUInt64BE())
}
