/**
 * Background workers and the runner that drives them (port of garage_util::background).
 * A worker does one bounded step of work per call and says whether more is waiting.
 */
import type { Logger } from '../logger.ts'

export type WorkerState = 'busy' | 'idle' | 'done'

export interface Worker {
  readonly name: string
  /** One step of work. Throwing is reported and retried after a pause. */
  work(signal: AbortSignal): Promise<WorkerState>
  /** Resolves when there may be work again (after an 'idle' step), or when `signal` aborts. */
  waitForWork(signal: AbortSignal): Promise<void>
  /** Extra figures shown by `garage worker info`. */
  info?(): Record<string, string | number>
}

export interface WorkerInfo {
  id: number
  name: string
  state: WorkerState | 'error'
  errors: number
  consecutiveErrors: number
  lastError?: { message: string; at: number }
  info: Record<string, string | number>
}

const ERROR_PAUSE_MSEC = [1_000, 2_000, 5_000, 10_000, 30_000, 60_000]

/** A tunable of a worker (`garage worker get/set`), read and written as a string. */
export interface WorkerVariable {
  get(): string
  /** Throws an Error with a readable message when `value` is not acceptable. */
  set(value: string): void
}

export class BackgroundRunner {
  readonly #log: Logger
  readonly #signal: AbortSignal
  readonly #workers: Array<{ id: number; worker: Worker; info: WorkerInfo; done: Promise<void> }> = []
  readonly #variables = new Map<string, WorkerVariable>()
  #nextId = 1
  constructor(log: Logger, signal: AbortSignal) {
    this.#log = log
    this.#signal = signal
  }

  spawn(worker: Worker): void {
    const id = this.#nextId++
    const info: WorkerInfo = { id, name: worker.name, state: 'busy', errors: 0, consecutiveErrors: 0, info: {} }
    const done = this.#run(worker, info)
    this.#workers.push({ id, worker, info, done })
  }

  list(): WorkerInfo[] {
    return this.#workers.map(({ worker, info }) => ({ ...info, info: worker.info?.() ?? {} }))
  }

  /** Registers a tunable (Garage's `bg_vars`), e.g. `resync-tranquility`. */
  defineVariable(name: string, variable: WorkerVariable): void {
    this.#variables.set(name, variable)
  }

  /** The registered tunables, sorted by name. */
  variables(): ReadonlyMap<string, WorkerVariable> {
    return new Map([...this.#variables].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  }

  /** Resolves once every worker loop has exited (after the shared signal aborted). */
  async join(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.done))
  }

  async #run(worker: Worker, info: WorkerInfo): Promise<void> {
    const signal = this.#signal
    while (!signal.aborted) {
      try {
        const state = await worker.work(signal)
        info.state = state
        info.consecutiveErrors = 0
        if (state === 'done') return
        if (state === 'idle') await worker.waitForWork(signal)
        // Also after a wake-up: a write wakes workers from inside its request (a microtask), and
        // that request answers first (CompleteMultipartUpload queues 10,000 tombstones at once).
        await new Promise<void>((resolve) => setImmediate(resolve))
      } catch (err) {
        if (signal.aborted) return
        info.state = 'error'
        info.errors++
        info.consecutiveErrors++
        info.lastError = { message: err instanceof Error ? err.message : String(err), at: Date.now() }
        // Logged and retried: a worker's step is idempotent, so trying again later is safe.
        this.#log.error(`worker ${worker.name} failed:`, err)
        const pause = ERROR_PAUSE_MSEC[Math.min(info.consecutiveErrors, ERROR_PAUSE_MSEC.length) - 1] ?? 60_000
        await sleep(pause, signal)
      }
    }
  }
}

/** Resolves after `ms`, or earlier when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const onAbort = (): void => {
      clearTimeout(timer)
      resolve()
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** A wake-up flag: `notify()` releases the current or the next `wait()`. */
export class Notify {
  #pending = false
  #waiters: Array<() => void> = []
  notify(): void {
    const ws = this.#waiters
    if (ws.length === 0) {
      this.#pending = true
      return
    }
    this.#waiters = []
    for (const w of ws) w()
  }
  /** Waits for a notification, at most `timeoutMs`, or until `signal` aborts. */
  wait(signal: AbortSignal, timeoutMs: number): Promise<void> {
    if (this.#pending || signal.aborted) {
      this.#pending = false
      return Promise.resolve()
    }
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined
      const done = (): void => {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        this.#waiters = this.#waiters.filter((w) => w !== done)
        resolve()
      }
      timer = setTimeout(done, timeoutMs)
      signal.addEventListener('abort', done, { once: true })
      this.#waiters.push(done)
    })
  }
}
