/**
 * Scrub: re-reads and verifies every local block file on a slow schedule (every 25 days plus a
 * random 0-10 days, so the nodes of a cluster do not all scrub at once), and on demand (port of
 * the scrub part of garage_block::repair). Its state (schedule, checkpoint, tranquility,
 * corruptions found) is persisted in the metadata db, so a restart resumes where it stopped.
 * @internal
 */
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Db, Tree } from '../db/db.ts'
import { Notify, sleep, type Worker, type WorkerState } from '../util/background/worker.ts'
import { defineCodec } from '../util/codec.ts'
import { fromHex, type Hash, utf8 } from '../util/data.ts'
import { ModelError } from '../util/errors.ts'
import type { Logger } from '../util/logger.ts'

/** @internal */
export const SCRUB_INTERVAL_MS = 25 * 24 * 3600_000
/** @internal */
export const SCRUB_JITTER_MS = 10 * 24 * 3600_000
/** How long `pause` lasts by default. @internal */
export const SCRUB_PAUSE_MS = 24 * 3600_000
const INITIAL_SCRUB_TRANQUILITY = 4
const CHECKPOINT_EVERY_MS = 60_000

/** What the scrub found in one file. @internal */
export type ScrubCheck = 'ok' | 'corrupt' | 'missing'

interface ScrubPersisted {
  tranquility: number
  lastComplete: number
  nextRun: number
  corruptions: number
  state: 'finished' | 'running' | 'paused'
  resumeAt: number
  /** Position of the last file checked: data dir index and file name. */
  checkpoint: { dir: number; after: string } | null
}
const scrubCodec = defineCodec<ScrubPersisted>('G0bsc')
const STATE_KEY = utf8('scrub')

/** Scrub status, for `garage worker info` and the admin API. */
export interface ScrubStatus {
  state: 'finished' | 'running' | 'paused'
  tranquility: number
  lastComplete: number
  nextRun: number
  resumeAt: number | undefined
  corruptionsDetected: number
  /** Files checked by the current run since this process started. */
  checked: number
}

/** @internal */
export interface ScrubWorkerOptions {
  db: Db
  dirs: readonly string[]
  /** Verifies one block file, moving it aside and queueing a resync when it is corrupt. */
  check(hash: Hash, path: string): Promise<ScrubCheck>
  log: Logger
  /** Default {@link SCRUB_INTERVAL_MS} and {@link SCRUB_JITTER_MS}. */
  intervalMs?: number
  jitterMs?: number
}

/** One file under a data directory's `xx/yy/` tree. @internal */
export interface BlockStoreFile {
  dir: number
  path: string
  name: string
}

/**
 * Walks the files of the data directories in a stable order (directory index, then name),
 * starting after `from` when given. Directories that vanish while walking are skipped.
 * @internal
 */
export async function* walkBlockStore(
  dirs: readonly string[],
  from?: { dir: number; after: string },
): AsyncGenerator<BlockStoreFile> {
  for (let d = from?.dir ?? 0; d < dirs.length; d++) {
    const root = dirs[d] as string
    const after = from !== undefined && d === from.dir ? from.after : ''
    for (const a of await listDir(root, /^[0-9a-f]{2}$/)) {
      if (a < after.slice(0, 2)) continue
      for (const b of await listDir(join(root, a), /^[0-9a-f]{2}$/)) {
        if (a === after.slice(0, 2) && b < after.slice(2, 4)) continue
        for (const name of await listDir(join(root, a, b), /./)) {
          if (after !== '' && name <= after) continue
          yield { dir: d, path: join(root, a, b, name), name }
        }
      }
    }
  }
}

async function listDir(dir: string, re: RegExp): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((n) => re.test(n)).sort()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return []
    throw err
  }
}

/** The name of a block file (64 hex characters, no suffix). @internal */
export const BLOCK_FILE_NAME = /^[0-9a-f]{64}$/

/** @internal */
export class ScrubWorker implements Worker {
  readonly name = 'block scrub'
  readonly #o: ScrubWorkerOptions
  readonly #tree: Tree
  readonly #notify = new Notify()
  readonly #intervalMs: number
  readonly #jitterMs: number
  #p: ScrubPersisted
  #iter: AsyncGenerator<BlockStoreFile> | undefined
  #lastSave = 0
  #checked = 0

  constructor(o: ScrubWorkerOptions) {
    this.#o = o
    this.#intervalMs = o.intervalMs ?? SCRUB_INTERVAL_MS
    this.#jitterMs = o.jitterMs ?? SCRUB_JITTER_MS
    this.#tree = o.db.openTree('block_local_config')
    const raw = this.#tree.get(STATE_KEY)
    this.#p =
      raw === undefined
        ? {
            tranquility: INITIAL_SCRUB_TRANQUILITY,
            lastComplete: 0,
            nextRun: this.#randomNextRun(Date.now()),
            corruptions: 0,
            state: 'finished',
            resumeAt: 0,
            checkpoint: null,
          }
        : scrubCodec.decode(raw)
    if (raw === undefined) this.#save()
  }

  #randomNextRun(from: number): number {
    return from + this.#intervalMs + Math.floor(Math.random() * this.#jitterMs)
  }

  #save(): void {
    const p = this.#p
    this.#o.db.transaction((tx) => tx.insert(this.#tree, STATE_KEY, scrubCodec.encode(p)))
    this.#lastSave = Date.now()
  }

  status(): ScrubStatus {
    const p = this.#p
    return {
      state: p.state,
      tranquility: p.tranquility,
      lastComplete: p.lastComplete,
      nextRun: p.nextRun,
      resumeAt: p.state === 'paused' ? p.resumeAt : undefined,
      corruptionsDetected: p.corruptions,
      checked: this.#checked,
    }
  }

  get tranquility(): number {
    return this.#p.tranquility
  }
  set tranquility(n: number) {
    this.#p = { ...this.#p, tranquility: n }
    this.#save()
  }

  /** Starts a full scrub now. @throws ModelError when one is already running or paused. */
  start(): void {
    if (this.#p.state !== 'finished') throw new ModelError('BadRequest', 'a scrub is already running or paused')
    this.#o.log.info('starting a scrub of the data directories')
    this.#p = { ...this.#p, state: 'running', checkpoint: null }
    this.#closeIter()
    this.#checked = 0
    this.#save()
    this.#notify.notify()
  }

  /** Pauses the running scrub; it resumes by itself after `ms` (default 24 h). */
  pause(ms: number = SCRUB_PAUSE_MS): void {
    if (this.#p.state === 'finished') throw new ModelError('BadRequest', 'no scrub is running')
    this.#p = { ...this.#p, state: 'paused', resumeAt: Date.now() + ms }
    this.#save()
    this.#notify.notify()
  }

  /** Resumes a paused scrub. */
  resume(): void {
    if (this.#p.state !== 'paused') throw new ModelError('BadRequest', 'the scrub is not paused')
    this.#p = { ...this.#p, state: 'running' }
    this.#save()
    this.#notify.notify()
  }

  /** Stops the current scrub; the next one runs at the scheduled time. */
  cancel(): void {
    if (this.#p.state === 'finished') throw new ModelError('BadRequest', 'no scrub is running')
    this.#p = { ...this.#p, state: 'finished', checkpoint: null }
    this.#closeIter()
    this.#save()
    this.#notify.notify()
  }

  #closeIter(): void {
    const it = this.#iter
    this.#iter = undefined
    // Closing a suspended generator only runs its (empty) finally blocks.
    it?.return(undefined).catch((err: unknown) => this.#o.log.debug(`closing the scrub iterator: ${(err as Error).message}`))
  }

  async work(signal: AbortSignal): Promise<WorkerState> {
    const now = Date.now()
    if (this.#p.state === 'paused' && now >= this.#p.resumeAt) {
      this.#p = { ...this.#p, state: 'running' }
      this.#save()
    }
    if (this.#p.state === 'finished' && now >= this.#p.nextRun) this.start()
    if (this.#p.state !== 'running') return 'idle'
    const started = performance.now()
    this.#iter ??= walkBlockStore(this.#o.dirs, this.#p.checkpoint ?? undefined)
    const iter = this.#iter
    let next = await iter.next()
    while (!next.done && !BLOCK_FILE_NAME.test(next.value.name)) next = await iter.next()
    if (this.#iter !== iter || this.#p.state !== 'running') return 'busy' // cancelled or paused meanwhile
    if (next.done) {
      const end = Date.now()
      this.#p = { ...this.#p, state: 'finished', lastComplete: end, nextRun: this.#randomNextRun(end), checkpoint: null }
      this.#iter = undefined
      this.#save()
      this.#o.log.info(`scrub completed (${this.#checked} blocks checked); next at ${new Date(this.#p.nextRun).toISOString()}`)
      return 'idle'
    }
    const f = next.value
    const r = await this.#o.check(fromHex(f.name), f.path)
    this.#checked++
    if (r === 'corrupt') {
      this.#o.log.error(`scrub found a corrupt block: ${f.path}`)
      this.#p = { ...this.#p, corruptions: this.#p.corruptions + 1 }
    }
    this.#p = { ...this.#p, checkpoint: { dir: f.dir, after: f.name } }
    if (r === 'corrupt' || Date.now() - this.#lastSave > CHECKPOINT_EVERY_MS) this.#save()
    const pause = (performance.now() - started) * this.#p.tranquility
    if (pause >= 1) await sleep(Math.min(pause, 10_000), signal)
    return 'busy'
  }

  waitForWork(signal: AbortSignal): Promise<void> {
    const p = this.#p
    const until = p.state === 'paused' ? p.resumeAt : p.state === 'finished' ? p.nextRun : Date.now()
    return this.#notify.wait(signal, Math.min(Math.max(until - Date.now(), 0), 2 ** 31 - 1))
  }

  info(): Record<string, string | number> {
    const s = this.status()
    return {
      state: s.state,
      tranquility: s.tranquility,
      corruptionsDetected: s.corruptionsDetected,
      checked: s.checked,
      ...(s.state === 'finished' ? { nextRun: new Date(s.nextRun).toISOString() } : {}),
    }
  }
}
