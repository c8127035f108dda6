/**
 * Online repairs (port of garage_api_admin::repair and garage::repair::online): background
 * workers that walk this node's copy of a table and fix what an interrupted cascade or a bug left
 * inconsistent, plus the launchers of the table sync, block resync, scrub and rebalance.
 *
 * - versions: a version no object or upload references any more → tombstone, once it is still
 *   unreferenced {@link VERSION_REPAIR_GRACE_MS} after it was first seen so (a small PUT writes
 *   its version row before the object row that references it, one round trip later).
 * - multipartUploads: an upload whose object version is no longer uploading → tombstone.
 * - blockRefs: a block reference whose version is deleted or gone → tombstone.
 * - blockRc: local reference counts recomputed from the local block_ref rows.
 *
 * Tombstones go through the tables' normal insert path (quorum writes), so their cascades run
 * on every replica.
 */
import { prefixEnd, type Tree } from '../db/db.ts'
import { MultiDirPaths } from '../block/layout.ts'
import { RebalanceWorker } from '../block/rebalance.ts'
import { OneShotWorker } from '../block/resync.ts'
import type { Table } from '../table/table.ts'
import type { Worker, WorkerState } from '../util/background/worker.ts'
import { compareBytes, type Hash, utf8 } from '../util/data.ts'
import { GarageError } from '../util/errors.ts'
import type { Logger } from '../util/logger.ts'
import type { Garage } from './garage.ts'
import type { BlockRefEntry } from './s3/block-ref-table.ts'
import type { MpuEntry } from './s3/mpu-table.ts'
import type { ObjectEntry } from './s3/object-table.ts'
import { deletedVersion, VERSION_REPAIR_GRACE_MS, type VersionEntry } from './s3/version-table.ts'

/** The scrub worker's commands (`garage repair scrub <cmd>`). */
export type ScrubCommand = 'start' | 'pause' | 'resume' | 'cancel'

/** A repair operation, named as the admin API's `repairType` (camelCase). */
export type RepairType =
  | 'tables'
  | 'blocks'
  | 'versions'
  | 'multipartUploads'
  | 'blockRefs'
  | 'blockRc'
  | 'rebalance'
  | { scrub: ScrubCommand }

export const SCRUB_COMMANDS: readonly ScrubCommand[] = ['start', 'pause', 'resume', 'cancel']
export const SIMPLE_REPAIRS = ['tables', 'blocks', 'versions', 'multipartUploads', 'blockRefs', 'blockRc', 'rebalance'] as const

/** Parses the admin API's `repairType` (`"versions"` or `{ "scrub": "start" }`); undefined if invalid. */
export function parseRepairType(v: unknown): RepairType | undefined {
  if (typeof v === 'string') return (SIMPLE_REPAIRS as readonly string[]).includes(v) ? (v as RepairType) : undefined
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const keys = Object.keys(v)
    const cmd = (v as { scrub?: unknown }).scrub
    if (keys.length === 1 && typeof cmd === 'string' && (SCRUB_COMMANDS as readonly string[]).includes(cmd)) {
      return { scrub: cmd as ScrubCommand }
    }
  }
  return undefined
}

/**
 * What the rebalance needs from the block manager beyond its public API: its per-hash lock, so
 * that a block is never moved while it is written or deleted. Used when present.
 */
export interface BlockLockHook {
  withBlockLock?(hash: Hash, fn: () => Promise<void>): Promise<void>
}

export interface RepairContext {
  garage: Garage
  /** Starts a background worker (BackgroundRunner.spawn). */
  spawn(worker: Worker): void
  /** Where the data layout is persisted (for rebalance). */
  metadataDir?: string
  /** fsync block files moved between drives (`data_fsync`). */
  fsync?: boolean
  log: Logger
  /**
   * How long a version must stay unreferenced before the `versions` repair tombstones it
   * (default {@link VERSION_REPAIR_GRACE_MS}; tests set 0).
   */
  versionGraceMs?: number
}

/** A repair this node cannot run (the part it needs is not there). */
export class RepairUnavailableError extends GarageError {
  override name = 'RepairUnavailableError'
}

function notAvailable(what: string): RepairUnavailableError {
  return new RepairUnavailableError('GARAGE_ERR_INTERNAL', `${what} is not available on this node`)
}

/** Launches one repair on this node; workers run in the background (see `garage worker list`). */
export async function launchRepair(ctx: RepairContext, op: RepairType): Promise<void> {
  const g = ctx.garage
  const bm = g.blockManager
  const log = ctx.log
  if (typeof op === 'object') {
    if (bm.scrub === undefined) throw notAvailable('the scrub worker (disable_scrub is set)')
    log.info(`sending command to the scrub worker: ${op.scrub}`)
    bm.scrubCommand(op.scrub)
    return
  }
  switch (op) {
    case 'tables':
      log.info('launching a full sync of tables')
      g.launchTableSync()
      return
    case 'blocks':
      log.info('repairing the stored blocks: queueing every known block for a resync check')
      ctx.spawn(
        new OneShotWorker('Block repair worker', async (signal) => {
          const n = await bm.queueAll(signal)
          log.info(`block repair: queued ${n} block(s) for a resync check`)
        }),
      )
      return
    case 'versions':
      log.info('repairing the versions table')
      ctx.spawn(
        new TableRepairWorker(g.versionTable, (v) => suspectVersion(g, v), log, {
          graceMs: ctx.versionGraceMs ?? VERSION_REPAIR_GRACE_MS,
          recheck: (v) => repairVersion(g, v),
        }),
      )
      return
    case 'multipartUploads':
      log.info('repairing the multipart uploads table')
      ctx.spawn(new TableRepairWorker(g.mpuTable, (u) => repairMpu(g, u), log))
      return
    case 'blockRefs':
      log.info('repairing the block refs table')
      ctx.spawn(new TableRepairWorker(g.blockRefTable, (r) => repairBlockRef(g, r), log))
      return
    case 'blockRc':
      log.info('repairing the block reference counters')
      ctx.spawn(new BlockRcRepairWorker(g, log))
      return
    case 'rebalance': {
      const paths = bm.paths
      if (!(paths instanceof MultiDirPaths)) throw notAvailable('rebalancing of data directories')
      const lock = (bm as unknown as BlockLockHook).withBlockLock
      log.info('rebalancing the stored blocks among the data directories')
      ctx.spawn(
        new RebalanceWorker({
          paths,
          ...(ctx.metadataDir === undefined ? {} : { metadataDir: ctx.metadataDir }),
          ...(lock === undefined ? {} : { withBlockLock: lock.bind(bm) }),
          ...(ctx.fsync === undefined ? {} : { fsync: ctx.fsync }),
          log: log.withTag('rebalance'),
        }),
      )
      return
    }
    default: {
      const never: never = op
      throw new GarageError('GARAGE_ERR_INTERNAL', `unknown repair ${String(never)}`)
    }
  }
}

/**
 * Returns true when it wrote a fix; `'later'` when the entry must be looked at again after the
 * worker's grace (then `recheck` decides).
 */
type RepairStep<E> = (entry: E) => Promise<boolean | 'later'>

/** Entries handled per step of a table repair worker. */
const TABLE_BATCH = 32

/** Second looks of a table repair: entries suspected in the walk, checked again after a grace. */
export interface RepairRecheck<E> {
  graceMs: number
  /** Returns true when it wrote a fix. */
  recheck(entry: E): Promise<boolean>
}

/** Walks this node's copy of a table in key order, applying `step` to each entry. */
export class TableRepairWorker<E> implements Worker {
  readonly name: string
  readonly #table: Table<E>
  readonly #step: RepairStep<E>
  readonly #log: Logger
  readonly #later: RepairRecheck<E> | undefined
  /** Suspects, in the order they were met (so by due time). */
  readonly #suspects: Array<{ entry: E; due: number }> = []
  #pos: Uint8Array | undefined
  #walked = false
  #counter = 0
  #repairs = 0

  constructor(table: Table<E>, step: RepairStep<E>, log: Logger, later?: RepairRecheck<E>) {
    this.name = `${table.name} repair worker`
    this.#table = table
    this.#step = step
    this.#log = log
    this.#later = later
  }

  async work(): Promise<WorkerState> {
    if (this.#walked) return this.#recheckDue()
    const store: Tree = this.#table.data.store
    const batch: Array<[Uint8Array, Uint8Array]> = []
    for (const [k, v] of store.range({ ...(this.#pos === undefined ? {} : { start: this.#pos }), limit: TABLE_BATCH + 1 })) {
      if (this.#pos !== undefined && compareBytes(k, this.#pos) === 0) continue
      batch.push([k, v])
      if (batch.length >= TABLE_BATCH) break
    }
    if (batch.length === 0) {
      this.#walked = true
      return this.#recheckDue()
    }
    for (const [k, v] of batch) {
      const entry = this.#table.schema.codec.decode(v)
      const r = await this.#step(entry)
      if (r === 'later' && this.#later !== undefined) {
        this.#suspects.push({ entry, due: Date.now() + this.#later.graceMs })
      } else if (r === true) this.#repairs++
      this.#counter++
      this.#pos = k
    }
    return 'busy'
  }

  async #recheckDue(): Promise<WorkerState> {
    const next = this.#suspects[0]
    if (next === undefined || this.#later === undefined) {
      this.#log.info(`${this.name}: finished, done ${this.#counter}, fixed ${this.#repairs}`)
      return 'done'
    }
    if (next.due > Date.now()) return 'idle'
    for (let i = 0; i < TABLE_BATCH; i++) {
      const s = this.#suspects[0]
      if (s === undefined || s.due > Date.now()) break
      this.#suspects.shift()
      if (await this.#later.recheck(s.entry)) this.#repairs++
    }
    return 'busy'
  }

  async waitForWork(signal: AbortSignal): Promise<void> {
    const next = this.#suspects[0]
    if (next === undefined || signal.aborted) return
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, Math.max(0, next.due - Date.now()))
      signal.addEventListener('abort', done, { once: true })
    })
  }

  info(): Record<string, string | number> {
    return {
      progress: `${this.#counter} (${this.#repairs})`,
      done: this.#counter,
      fixed: this.#repairs,
      waiting: this.#suspects.length,
    }
  }
}

const EMPTY = new Uint8Array(0)

/**
 * True when no row references `v`: looked for locally, then at quorum, or with `everyReplica`
 * on every replica (the second look, before a tombstone: a one-round write that failed may have
 * left its `complete` row on one replica only, to be completed by its writer's roll-forward,
 * and a quorum read can miss it). A replica that does not answer means "cannot tell": the
 * version is kept.
 */
async function unreferenced(g: Garage, v: VersionEntry, everyReplica = false): Promise<boolean> {
  // The local copy first: a write that sends an object row (or an upload) and the version it
  // announces together (TableBatch.insertInOrder) merges both in one transaction on every node
  // that stores the version, so this node may hold them before the quorum does. Only a
  // reference this node does not hold either is looked for at quorum.
  const read = { everyReplica }
  try {
    if (v.backlink.t === 'object') {
      const key = utf8(v.backlink.key)
      const refers = (o: ObjectEntry | undefined): boolean =>
        o?.versions.some((x) => compareBytes(x.uuid, v.uuid) === 0 && x.state.t !== 'aborted' && x.state.t !== 'purged') ?? false
      if (refers(g.objectTable.data.read(v.backlink.bucketId, key))) return false
      if (refers(await g.objectTable.get(v.backlink.bucketId, key, read))) return false
    } else {
      const live = (u: MpuEntry | undefined): boolean => u !== undefined && !u.deleted
      if (live(g.mpuTable.data.read(v.backlink.uploadId, EMPTY))) return false
      if (live(await g.mpuTable.get(v.backlink.uploadId, EMPTY, read))) return false
    }
  } catch (err) {
    if (!everyReplica) throw err
    return false
  }
  return true
}

/** First look of the `versions` repair: an unreferenced live version is looked at again later. */
async function suspectVersion(g: Garage, v: VersionEntry): Promise<boolean | 'later'> {
  if (v.deleted) return false
  return (await unreferenced(g, v)) ? 'later' : false
}

/** Second look, after the grace: a version still unreferenced is tombstoned. */
async function repairVersion(g: Garage, seen: VersionEntry): Promise<boolean> {
  const v = g.versionTable.data.read(seen.uuid, EMPTY)
  if (v === undefined || v.deleted) return false
  if (!(await unreferenced(g, v, true))) return false
  await g.versionTable.insert(deletedVersion(v.uuid, v.backlink))
  return true
}

async function repairMpu(g: Garage, u: MpuEntry): Promise<boolean> {
  if (u.deleted) return false
  const refers = (o: ObjectEntry | undefined): boolean =>
    o?.versions.some((x) => compareBytes(x.uuid, u.uploadId) === 0 && x.state.t === 'uploading' && x.state.multipart) ?? false
  // The local copy first, as for versions: CreateMultipartUpload sends both rows together.
  if (refers(g.objectTable.data.read(u.bucketId, utf8(u.key)))) return false
  if (refers(await g.objectTable.get(u.bucketId, utf8(u.key)))) return false
  await g.mpuTable.insert({ ...u, deleted: true, parts: [] })
  return true
}

async function repairBlockRef(g: Garage, r: BlockRefEntry): Promise<boolean> {
  if (r.deleted) return false
  // The local copy first, as for versions: a version and its references may arrive together.
  const local = g.versionTable.data.read(r.version, EMPTY)
  if (local !== undefined && !local.deleted) return false
  const v = await g.versionTable.get(r.version, EMPTY)
  if (v !== undefined && !v.deleted) return false
  await g.blockRefTable.insert({ ...r, deleted: true })
  return true
}

/** Hashes handled per step of the reference count repair. */
const RC_BATCH = 64

/**
 * Recomputes each block's local reference count from the local block_ref rows, over the union of
 * the hashes the counter and the block_ref table know.
 */
export class BlockRcRepairWorker implements Worker {
  readonly name = 'Block refcount repair worker'
  readonly #g: Garage
  readonly #log: Logger
  #cursor: Uint8Array = new Uint8Array(32)
  #counter = 0
  #repairs = 0
  #done = false

  constructor(g: Garage, log: Logger) {
    this.#g = g
    this.#log = log
  }

  async work(): Promise<WorkerState> {
    const rcTree = this.#g.blockManager.rc.tree
    const refs = this.#g.blockRefTable.data.store
    for (let i = 0; i < RC_BATCH && !this.#done; i++) {
      const a = first(rcTree, this.#cursor)
      const b = first(refs, this.#cursor)?.subarray(0, 32)
      const next = a === undefined ? b : b === undefined ? a : compareBytes(a, b) <= 0 ? a : b
      if (next === undefined) {
        this.#done = true
        break
      }
      if (this.#recalculate(next.slice(0, 32))) this.#repairs++
      this.#counter++
      const after = increment(next.slice(0, 32))
      if (after === undefined) this.#done = true
      else this.#cursor = after
    }
    if (!this.#done) return 'busy'
    this.#log.info(`${this.name}: finished, done ${this.#counter}, fixed ${this.#repairs}`)
    return 'done'
  }

  /** Sets the count of `hash` to its number of live block_ref rows; true if it changed. */
  #recalculate(hash: Hash): boolean {
    const g = this.#g
    const rc = g.blockManager.rc
    const refs = g.blockRefTable.data
    return g.db.transaction((tx) => {
      let actual = 0
      for (const [, raw] of tx.range(refs.store, { start: hash, ...endOf(hash) })) {
        if (!refs.schema.codec.decode(raw).deleted) actual++
      }
      const stored = rc.get(hash)
      if (actual === stored) return false
      for (let n = stored; n < actual; n++) g.blockManager.incref(tx, hash)
      for (let n = stored; n > actual; n--) g.blockManager.decref(tx, hash)
      return true
    })
  }

  waitForWork(): Promise<void> {
    return Promise.resolve()
  }

  info(): Record<string, string | number> {
    return { progress: `${this.#counter} (${this.#repairs})`, done: this.#counter, fixed: this.#repairs }
  }
}

function endOf(prefix: Uint8Array): { end?: Uint8Array } {
  const end = prefixEnd(prefix)
  return end === undefined ? {} : { end }
}

function first(tree: Tree, from: Uint8Array): Uint8Array | undefined {
  for (const [k] of tree.range({ start: from, limit: 1 })) return k
  return undefined
}

/** The next 32-byte value (big-endian + 1); undefined after all ones. */
function increment(hash: Uint8Array): Uint8Array | undefined {
  const out = Uint8Array.from(hash)
  for (let i = out.length - 1; i >= 0; i--) {
    if ((out[i] as number) < 255) {
      out[i] = (out[i] as number) + 1
      return out
    }
    out[i] = 0
  }
  return undefined
}
