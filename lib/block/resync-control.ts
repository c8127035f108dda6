/**
 * What this node should hold, and the admin's view of it (the decisions of garage_block::resync's
 * `resync_block`, plus the queueing, scrub and start-up parts of garage_block::repair): for each
 * queued block, fetch it, hand it over, delete it or leave it; when to queue blocks (reads that
 * missed, received orphans, layout changes, a wiped data directory, `garage repair blocks`); the
 * errors list and `garage block info`; the scrub worker and its commands. The queue itself and
 * its workers are in resync.ts, the files in store.ts, the transfers in replication.ts.
 * @internal
 */
import type { Db } from '../db/db.ts'
import { Notify, type Worker, type WorkerState } from '../util/background/worker.ts'
import { bytesEqual, type Hash, toHex } from '../util/data.ts'
import { GarageError } from '../util/errors.ts'
import type { Logger } from '../util/logger.ts'
import { type BlockRc, isDeletableState, type RcState } from './rc.ts'
import type { BlockReplication } from './replication.ts'
import {
  type BlockResync,
  type BlockResyncErrorInfo,
  MAX_RESYNC_WORKERS,
  OneShotWorker,
  type ResyncOutcome,
  type ResyncTarget,
} from './resync.ts'
import { BLOCK_FILE_NAME, type ScrubStatus, ScrubWorker, walkBlockStore } from './scrub.ts'
import { DATA_DIR_MARKER, type LocalBlockStore } from './store.ts'

/** What this node knows of one block (`garage block info`). @internal */
export interface BlockInfo {
  hash: Hash
  refcount: number
  /** Unreferenced, deletable from this time. */
  deletableAt: number | undefined
  /** Local files holding it. */
  paths: string[]
  /** Nodes that should store it in the current layout. */
  storageNodes: string[]
  error: BlockResyncErrorInfo | undefined
}

/** @internal */
export interface ResyncControlOptions {
  db: Db
  store: LocalBlockStore
  replication: BlockReplication
  rc: BlockRc
  resync: BlockResync
  log: Logger
  /** Delay before an unreferenced block is deleted. */
  gcDelayMsec: number
  /** Delay after a new reference, or a missed read, before checking that the block arrived. */
  resyncDelayMsec: number
  /** Metadata referenced blocks when the manager was built (before any new write). */
  hadRefsAtStart: boolean
  /** Do not run the scrub worker (`disable_scrub`). */
  disableScrub?: boolean
  scrubIntervalMs?: number
  scrubJitterMs?: number
}

/** @internal */
export class ResyncControl implements ResyncTarget {
  readonly #o: ResyncControlOptions
  readonly #store: LocalBlockStore
  readonly #repl: BlockReplication
  readonly #rc: BlockRc
  readonly #resync: BlockResync
  /** Hex hash → due time of the missing-block checks queued by reads. */
  readonly #checksPending = new Map<string, number>()
  #scrub: ScrubWorker | undefined
  /** Set when the layout changed: every block is queued again (offload and fetch). */
  #layoutChanged = false
  readonly #layoutNotify = new Notify()

  constructor(o: ResyncControlOptions) {
    this.#o = o
    this.#store = o.store
    this.#repl = o.replication
    this.#rc = o.rc
    this.#resync = o.resync
    o.replication.cluster?.layout.onVersionChange?.(() => {
      this.#layoutChanged = true
      this.#layoutNotify.notify()
    })
  }

  // ---- when to queue -----------------------------------------------------------------------------

  /**
   * A read found no copy here. If the block is referenced, queues a check, once per resync
   * delay: reads of a hot object that is not here yet must not add a queue entry each.
   */
  missed(hash: Hash): void {
    if (this.#rc.get(hash) === 0) return
    const key = toHex(hash)
    const now = Date.now()
    const due = this.#checksPending.get(key)
    if (due !== undefined && due > now) return
    if (this.#checksPending.size >= 10_000) {
      for (const [k, d] of this.#checksPending) if (d <= now) this.#checksPending.delete(k)
      if (this.#checksPending.size >= 10_000) this.#checksPending.clear()
    }
    this.#checksPending.set(key, now + this.#o.resyncDelayMsec)
    this.#resync.put(hash, now + this.#o.resyncDelayMsec, true)
  }

  /**
   * Another node sent a block. One that nothing references here yet (its block_ref has not
   * arrived, or it was a late copy of a block already collected) is checked again after the GC
   * delay, so it is deleted if no reference ever comes instead of staying as an orphan file.
   */
  received(hash: Hash): void {
    if (this.#rc.state(hash).kind !== 'present') this.#resync.put(hash, Date.now() + this.#o.gcDelayMsec + 1)
  }

  /**
   * Queues every block this node references or holds (`garage repair blocks`): the rc tree, then
   * the files of every data directory. Returns how many entries were queued.
   */
  async queueAll(signal?: AbortSignal): Promise<number> {
    const now = Date.now()
    let n = 0
    let batch: Hash[] = []
    const flush = (): void => {
      this.#resync.putMany(batch, now)
      n += batch.length
      batch = []
    }
    let start: Uint8Array | undefined
    for (;;) {
      let last: Uint8Array | undefined
      for (const [k] of this.#rc.tree.range({ ...(start === undefined ? {} : { start }), limit: 1000 })) {
        if (start !== undefined && bytesEqual(k, start)) continue
        last = Uint8Array.from(k)
        batch.push(last)
      }
      flush()
      if (last === undefined || signal?.aborted === true) break
      start = last
      await new Promise<void>((r) => setImmediate(r))
    }
    for await (const f of walkBlockStore(this.#store.paths.dirs)) {
      if (signal?.aborted === true) break
      if (!BLOCK_FILE_NAME.test(f.name)) continue
      batch.push(Buffer.from(f.name, 'hex'))
      if (batch.length >= 1000) flush()
    }
    flush()
    this.#o.log.info(`queued ${n} block(s) for resync`)
    return n
  }

  // ---- what to do with one block -----------------------------------------------------------------

  isReferenced(hash: Hash): boolean {
    return this.#rc.state(hash).kind === 'present'
  }

  /**
   * Brings the local state of a block in line with its references and the layout (Garage's
   * `resync_block`): an unreferenced block past its delay is handed to the storage nodes that
   * need it, then deleted; a referenced block this node no longer stores is handed to the
   * storage nodes lacking it, then deleted; a referenced block this node should store but lacks
   * is fetched.
   */
  async resyncBlock(hash: Hash): Promise<ResyncOutcome | undefined> {
    const now = Date.now()
    const path = await this.#store.find(hash)
    const rc = this.#rc.state(hash)
    if (path !== undefined && rc.kind !== 'present') {
      // A block that arrived before its reference (replication, offload), or was written again
      // after its count dropped, gets the grace delay, from its file's time, before it may go.
      if ((await this.#graceAge(hash, path)) !== 'old') return // young (queued again), or deleted meanwhile
    }
    if (path !== undefined && isDeletableState(rc, now)) {
      await this.#offload(hash, path, 'needed')
      await this.#deleteIf(hash, (s) => isDeletableState(s, now), { grace: true })
      return
    }
    if (path !== undefined && rc.kind === 'deletable') {
      // Deletable later: checked again then. The queue keeps one entry per block, the earliest
      // (resync.ts), so the entry the count's drop asked for at that time may have been folded
      // into this earlier one (a layout change queues every block at once): without this, the
      // block would stay forever on a node that no longer needs it.
      this.#resync.put(hash, rc.at + 1)
      return
    }
    if (path !== undefined && rc.kind === 'present' && !this.#repl.isStorageNode(hash)) {
      await this.#offload(hash, path, 'absent')
      // Keep our copy until every current holder has the block and references it: until the
      // block_ref rows have moved too, a holder that only received the block could still drop it
      // as unreferenced. Once our own rows are handed over, the count drops and the deletable
      // branch above finishes the job.
      if (!(await this.#allHoldersReference(hash))) {
        this.#resync.put(hash, now + Math.max(this.#o.resyncDelayMsec, 1_000))
        return
      }
      await this.#deleteIf(hash, (s) => s.kind !== 'present' || !this.#repl.isStorageNode(hash))
      return
    }
    if (path === undefined && rc.kind === 'deletable' && rc.at <= now) {
      this.#o.db.transaction((tx) => this.#rc.clearDeletable(tx, hash, now))
      return
    }
    if (path === undefined && rc.kind === 'present' && this.#repl.isStorageNode(hash)) {
      if (this.#repl.cluster === undefined) {
        throw new GarageError('GARAGE_ERR_INTERNAL', `referenced block ${toHex(hash)} is missing and no other node has it`)
      }
      this.#o.log.info(`fetching missing block ${toHex(hash)}`)
      const data = await this.#repl.fetchRemote(hash, 'background')
      await this.#store.write(hash, data)
      return 'fetched'
    }
    return undefined
  }

  /**
   * Sends a local block to the other storage nodes: those that `need` it (referenced, absent),
   * or in mode 'absent' every one lacking it. Throws unless each of them answered and took it.
   */
  async #offload(hash: Hash, path: string, mode: 'needed' | 'absent'): Promise<void> {
    const cluster = this.#repl.cluster
    if (cluster === undefined) return
    const self = cluster.layout.self
    const storage = this.#repl.storageNodesOf(hash)
    const who = storage.filter((n) => n !== self)
    if (who.length === 0) return
    if (storage.length < cluster.layout.writeQuorum()) {
      throw new GarageError('GARAGE_ERR_INTERNAL', 'not offloading: too few storage nodes in the layout')
    }
    const answers = await this.#repl.askNeed(who, hash)
    const to = answers.filter(({ r }) => (mode === 'needed' ? r.needed : !r.present)).map(({ node }) => node)
    if (to.length === 0) return
    const data = await this.#store.readVerified(hash, path)
    if (data === undefined) throw new GarageError('GARAGE_ERR_INTERNAL', `block ${toHex(hash)} vanished while offloading`)
    await this.#repl.pushTo(to, hash, data)
    this.#o.log.info(`offloaded block ${toHex(hash)} to ${to.length} node(s)`)
  }

  /** Whether every current storage node of `hash` (but us) has a copy and references it. */
  async #allHoldersReference(hash: Hash): Promise<boolean> {
    const cluster = this.#repl.cluster
    if (cluster === undefined) return false
    const self = cluster.layout.self
    const who = this.#repl.storageNodesOf(hash).filter((n) => n !== self)
    if (who.length === 0) return false
    const answers = await this.#repl.askNeed(who, hash)
    return answers.every(({ r }) => r.present && r.referenced === true)
  }

  /**
   * Deletes every local copy if `still(rc)` holds under the block's lock, and clears its rc entry.
   * With `grace` (an unreferenced block), the file's age is checked again under the lock: a
   * copy received again since the age check outside it (a write of the block touches an
   * unreferenced file) gets its grace delay anew instead of going before its reference arrives.
   */
  async #deleteIf(hash: Hash, still: (s: RcState) => boolean, o: { grace?: boolean } = {}): Promise<void> {
    await this.#store.withLock(hash, async () => {
      if (!still(this.#rc.state(hash))) return
      if (o.grace === true && (await this.#graceAge(hash)) === 'young') return
      await this.#store.removeAll(hash)
      const now = Date.now()
      this.#o.db.transaction((tx) => this.#rc.clearDeletable(tx, hash, now))
      this.#o.log.debug(`deleted block ${toHex(hash)}`)
    })
  }

  /**
   * Whether the local copy of `hash` (at `path`, or found now) is still within the GC delay from
   * its file's time ('young': queued again for when the delay has passed), or 'gone'.
   */
  async #graceAge(hash: Hash, path?: string): Promise<'young' | 'old' | 'gone'> {
    const at = path ?? (await this.#store.find(hash))
    const mtime = at === undefined ? undefined : await this.#store.mtimeOf(at)
    if (mtime === undefined) return 'gone'
    const now = Date.now()
    const age = now - mtime
    if (age >= this.#o.gcDelayMsec) return 'old'
    this.#resync.put(hash, now + this.#o.gcDelayMsec - age + 1)
    return 'young'
  }

  // ---- the admin's view --------------------------------------------------------------------------

  /** Every block in a resync error state, with its reference count. */
  listErrors(): Array<BlockResyncErrorInfo & { refcount: number }> {
    return this.#resync.listErrors().map((e) => ({ ...e, refcount: this.#rc.get(e.hash) }))
  }

  /** What this node knows of a block (`garage block info`). */
  async blockInfo(hash: Hash): Promise<BlockInfo> {
    const rc = this.#rc.state(hash)
    return {
      hash,
      refcount: rc.kind === 'present' ? rc.count : 0,
      deletableAt: rc.kind === 'deletable' ? rc.at : undefined,
      paths: await this.#store.findAll(hash),
      storageNodes: this.#repl.storageNodesOf(hash),
      error: this.#resync.errorOf(hash),
    }
  }

  // ---- scrub -------------------------------------------------------------------------------------

  /** The scrub worker, if it runs (`disable_scrub` unset and workers spawned). */
  get scrub(): ScrubWorker | undefined {
    return this.#scrub
  }

  /** Scrub commands (`garage repair scrub start|pause|resume|cancel`). @throws ModelError when refused. */
  scrubCommand(cmd: 'start' | 'pause' | 'resume' | 'cancel', pauseMs?: number): void {
    const s = this.#scrub
    if (s === undefined) throw new GarageError('GARAGE_ERR_INTERNAL', 'the scrub worker is not running (disable_scrub?)')
    if (cmd === 'start') s.start()
    else if (cmd === 'pause') s.pause(pauseMs)
    else if (cmd === 'resume') s.resume()
    else s.cancel()
  }

  scrubStatus(): ScrubStatus | undefined {
    return this.#scrub?.status()
  }

  // ---- workers -----------------------------------------------------------------------------------

  /**
   * The block workers: a start-up check (data directory markers, stale temporary files), the
   * resync workers (1..8, only `resync-worker-count` of them active), the layout change watcher
   * (on a cluster) and the scrub.
   */
  workers(): Worker[] {
    const out: Worker[] = [new OneShotWorker('block startup check', (signal) => this.startupCheck(signal))]
    for (let i = 0; i < MAX_RESYNC_WORKERS; i++) out.push(this.#resync.worker(i, this))
    if (this.#repl.cluster !== undefined) out.push(new LayoutChangeWorker(this))
    if (this.#o.disableScrub !== true) {
      this.#scrub ??= new ScrubWorker({
        db: this.#o.db,
        dirs: this.#store.paths.dirs,
        check: (hash, path) => this.#store.check(hash, path),
        log: this.#o.log.withTag('scrub'),
        ...(this.#o.scrubIntervalMs === undefined ? {} : { intervalMs: this.#o.scrubIntervalMs }),
        ...(this.#o.scrubJitterMs === undefined ? {} : { jitterMs: this.#o.scrubJitterMs }),
      })
      out.push(this.#scrub)
    }
    return out
  }

  /** Consumes the "layout changed" flag. */
  takeLayoutChange(): boolean {
    const v = this.#layoutChanged
    this.#layoutChanged = false
    return v
  }

  waitLayoutChange(signal: AbortSignal): Promise<void> {
    return this.#layoutNotify.wait(signal, 60_000)
  }

  /**
   * Start-up checks: a data directory without its marker file while metadata references blocks
   * was wiped or replaced, so every referenced block is queued to be fetched back; then the
   * marker is written. Temporary files left by an interrupted write are removed, and the block
   * files written since the previous start (the markers' time) that nothing references are
   * queued, to be deleted after the GC delay if still unreferenced then: a block written with
   * its rows comes before them (BlockReplication's `#storeWithRows`), so a crash between the two
   * leaves such a file. Not when the metadata references nothing or a marker was missing (a
   * replaced metadata or data disk: table sync, or the queueing above, sorts that out), and not
   * older files (metadata restored from an older copy must not make them go).
   */
  async startupCheck(signal?: AbortSignal): Promise<void> {
    const since = await this.#store.markersTime()
    const lacking = await this.#store.ensureMarkers()
    if (this.#o.hadRefsAtStart && lacking.length > 0) {
      for (const dir of lacking) {
        this.#o.log.warn(
          `data directory ${dir} has no ${DATA_DIR_MARKER} file although blocks are referenced: it was wiped or replaced; queueing every block for resync`,
        )
      }
      await this.queueAll(signal)
    }
    let unreferenced: Uint8Array[] = []
    const queue = (): void => {
      if (unreferenced.length > 0) this.#resync.putMany(unreferenced, Date.now() + this.#o.gcDelayMsec + 1)
      unreferenced = []
    }
    const check =
      since === undefined || lacking.length > 0 || !this.#o.hadRefsAtStart
        ? undefined
        : (name: string, path: string): Promise<void> | undefined => {
            // Synchronous for the referenced files (nearly all): a walk over a million of them
            // costs a lookup each, not a promise each.
            if (!BLOCK_FILE_NAME.test(name)) return
            const hash = Buffer.from(name, 'hex')
            if (!this.#rc.isAbsent(hash)) return
            return this.#store.mtimeOf(path).then((mtime) => {
              if (mtime === undefined || mtime < since) return
              unreferenced.push(hash)
              if (unreferenced.length >= 1000) queue()
            })
          }
    await this.#store.sweepTempFiles(signal, check)
    queue()
  }
}

/**
 * After a layout change, queues every block for resync so this node fetches the blocks it now
 * stores and offloads those it no longer does (Garage gets there through table sync and
 * `garage repair blocks`; doing it at once moves blocks without an operator).
 */
class LayoutChangeWorker implements Worker {
  readonly name = 'block layout change'
  readonly #c: ResyncControl
  constructor(c: ResyncControl) {
    this.#c = c
  }
  async work(signal: AbortSignal): Promise<WorkerState> {
    if (this.#c.takeLayoutChange()) await this.#c.queueAll(signal)
    return 'idle'
  }
  waitForWork(signal: AbortSignal): Promise<void> {
    return this.#c.waitLayoutChange(signal)
  }
}
