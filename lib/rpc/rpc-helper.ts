/**
 * Quorum calls (port of garage_rpc::rpc_helper): reads ask the closest nodes first and only as
 * many as the quorum needs, starting another for each failure (a call past its own deadline is
 * one) or, once a call is slower than its hedge delay, alongside it; writes go to every node of
 * every write set at once and succeed when each set has its quorum, failing as soon as one set no
 * longer can. Calls still running when the answer is known finish in the background.
 * @internal
 */
import { QuorumError, TimeoutError } from '../util/errors.ts'
import type { Logger } from '../util/logger.ts'

/** One remote call; `signal` aborts when the whole operation gives up. @internal */
export type NodeCall<T> = (node: string, signal: AbortSignal) => Promise<T>

/** @internal */
export interface QuorumOptions {
  /**
   * Reads (`tryCallMany`): the deadline of each call, after which it counts as failed and the
   * next node is asked. Writes (`tryWriteManySets`, whose calls all start at once): give up
   * (QuorumError) if the quorum is not reached within this many ms. Default: the helper's.
   */
  timeoutMs?: number
  signal?: AbortSignal
  /**
   * Reads only: how long a call to `node` may stay unanswered before the next node is asked as
   * well (the slow call goes on, and counts if it answers first). `undefined`: never. A peer
   * that is frozen or behind a black hole is still "up" until its pings time out (4 × the ping
   * timeout); without this, every read that picks it would wait for the whole deadline.
   */
  hedgeAfterMs?: (node: string) => number | undefined
  /**
   * Reads only: whether a peer is known not to answer now (LayoutHelper.isUnresponsive). No
   * hedge is started towards such a peer, and once the operation has run for a whole call
   * deadline no failover call either: the operation fails instead of waiting one more deadline
   * per such peer (a node cut off from every peer answers its 503 after one deadline).
   */
  isUnresponsive?: (node: string) => boolean
}

/** @internal */
export interface RpcHelperOptions {
  log: Logger
  /** Default deadline of a quorum operation (`rpc_timeout_msec`). Default 300 s. */
  timeoutMs?: number
}

/** @internal */
export class RpcHelper {
  readonly #log: Logger
  readonly timeoutMs: number
  constructor(options: RpcHelperOptions) {
    this.#log = options.log
    this.timeoutMs = options.timeoutMs ?? 300_000
  }

  /**
   * Calls `nodes` in the given order (closest first), `quorum` at a time, starting the next one
   * for each failure (and, with `hedgeAfterMs`, for each call that is too slow), until `quorum`
   * answered. Resolves with those answers.
   *
   * Each call has its own deadline (`timeoutMs`, Garage's per-call `rs_timeout`): a call still
   * unanswered then is aborted and counts as a failure, so the next node is asked. There is no
   * deadline over the whole operation (Garage's `try_call_many` has none either): with quorum 1
   * over a first node behind a black hole, the second node is asked after one timeout, instead
   * of the operation failing at that same moment.
   * @throws QuorumError once too many calls failed or timed out for the quorum to be reached.
   */
  tryCallMany<T>(
    nodes: readonly string[],
    quorum: number,
    call: NodeCall<T>,
    options: QuorumOptions = {},
  ): Promise<Array<{ node: string; value: T }>> {
    const need = Math.min(quorum, nodes.length)
    const callTimeoutMs = options.timeoutMs ?? this.timeoutMs
    return this.#run(need, nodes.length, { ...options, timeoutMs: Number.POSITIVE_INFINITY }, (ctx) => {
      const answers: Array<{ node: string; value: T }> = []
      const errors: unknown[] = []
      let next = 0
      let running = 0
      /** Calls still running past their hedge delay: no longer counted as on their way. */
      let slow = 0
      const started = Date.now()
      /**
       * A call's deadline fired: a whole call deadline has passed. Not judged by Date.now() alone:
       * timers count whole milliseconds of the monotonic clock, so a deadline fires with
       * Date.now() - started at callTimeoutMs - 1 about one time in ten, and the unresponsive
       * peer was then asked for one more whole deadline (a 503 after 10 s in the chaos suite).
       */
      let deadlinePassed = false
      /** Starts calls while the quorum needs them; `hedging`: for a slow call, not a failed one. */
      const launch = (hedging = false): void => {
        while (running - slow < need - answers.length && next < nodes.length) {
          const candidate = nodes[next] as string
          // Asked once per candidate: it reads the peer's ping and call statistics.
          const quiet = options.isUnresponsive?.(candidate) === true
          if (quiet && (hedging || deadlinePassed || Date.now() - started >= callTimeoutMs)) {
            if (!hedging && running === 0) ctx.reject(new QuorumError(need, answers.length, [...errors, unresponsive(candidate)]))
            return
          }
          next++
          const node = candidate
          running++
          // An unresponsive peer asked after a failure (before the first deadline) gets only what
          // is left of that deadline: the operation still ends within one deadline when it does
          // not answer either, instead of waiting a whole new one for it. Not less than a fifth of
          // a deadline: a call given a few ms would time out with nothing heard and retire a
          // connection that may be fine (mux.ts).
          const callMs = quiet ? Math.max(Math.ceil(callTimeoutMs / 5), callTimeoutMs - (Date.now() - started)) : callTimeoutMs
          let isSlow = false
          let settled = false
          const hedge = options.hedgeAfterMs?.(node)
          const hedgeTimer =
            hedge === undefined || hedge >= callMs
              ? undefined
              : setTimeout(() => {
                  if (ctx.done || settled) return
                  isSlow = true
                  slow++
                  this.#log.debug(`no answer from ${node.slice(0, 16)} after ${hedge} ms: asking the next node too`)
                  launch(true)
                }, hedge)
          // The call's own signal: aborted at its deadline, or when the whole operation fails
          // (`ctx.calls`: a set, not a listener on a signal of the operation's; two fewer
          // EventTarget operations per call).
          const abort = new AbortController()
          ctx.calls.add(abort)
          const deadline =
            callMs <= MAX_TIMER_MS
              ? setTimeout(() => {
                  const err = new TimeoutError(`call to ${node.slice(0, 16)} timed out after ${callMs} ms`)
                  deadlinePassed = true
                  abort.abort(err)
                  failed(err)
                }, callMs)
              : undefined
          const settle = (): boolean => {
            if (settled) return false
            settled = true
            running--
            if (hedgeTimer !== undefined) clearTimeout(hedgeTimer)
            if (deadline !== undefined) clearTimeout(deadline)
            ctx.calls.delete(abort)
            if (isSlow) slow--
            return true
          }
          const failed = (err: unknown): void => {
            if (!settle() || ctx.done) return
            errors.push(err)
            this.#log.debug(`call to ${node.slice(0, 16)} failed: ${(err as Error).message}`)
            if (answers.length + running + (nodes.length - next) < need) {
              ctx.reject(new QuorumError(need, answers.length, errors))
            } else launch()
          }
          invoke(call, node, abort.signal).then(
            (value) => {
              if (!settle() || ctx.done) return
              answers.push({ node, value })
              if (answers.length >= need) ctx.resolve(answers)
              else launch()
            },
            (err: unknown) => failed(err),
          )
        }
      }
      ctx.errors = errors
      ctx.answered = () => answers.length
      if (need === 0) ctx.resolve(answers)
      else launch()
    })
  }

  /**
   * Calls every node of every set at once; resolves when each set has `quorum` successes
   * (min(quorum, set size)). The other calls continue in the background; their failures are
   * logged, not thrown.
   * @throws QuorumError as soon as a set can no longer reach its quorum, or at the deadline.
   */
  tryWriteManySets<T>(
    sets: readonly (readonly string[])[],
    quorum: number,
    call: NodeCall<T>,
    options: QuorumOptions = {},
  ): Promise<void> {
    const nodes = [...new Set(sets.flat())]
    return this.#run(quorum, nodes.length, options, (ctx) => {
      const ok = new Set<string>()
      const failed = new Set<string>()
      const errors: unknown[] = []
      ctx.errors = errors
      ctx.answered = () => ok.size
      const check = (): void => {
        if (ctx.done) return
        let complete = true
        for (const set of sets) {
          const need = Math.min(quorum, set.length)
          const good = set.filter((n) => ok.has(n)).length
          const bad = set.filter((n) => failed.has(n)).length
          if (set.length - bad < need) {
            ctx.reject(new QuorumError(need, good, errors))
            return
          }
          if (good < need) complete = false
        }
        if (complete) ctx.resolve(undefined)
      }
      // Background calls keep going after the answer: they get their own signal, aborted only
      // by the caller's signal (one that is never aborted without one), not by our resolution.
      const background = options.signal ?? new AbortController().signal
      for (const node of nodes) {
        invoke(call, node, background).then(
          () => {
            ok.add(node)
            check()
          },
          (err: unknown) => {
            failed.add(node)
            errors.push(err)
            if (ctx.done) this.#log.debug(`background write to ${node.slice(0, 16)} failed: ${(err as Error).message}`)
            check()
          },
        )
      }
      check()
    })
  }

  #run<R>(quorum: number, total: number, options: QuorumOptions, body: (ctx: RunContext<R>) => void): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? this.timeoutMs
      const ctx: RunContext<R> = {
        done: false,
        calls: new Set(),
        errors: [],
        answered: () => 0,
        resolve: (v) => {
          if (ctx.done) return
          finish()
          resolve(v)
        },
        reject: (e) => {
          if (ctx.done) return
          finish()
          for (const call of ctx.calls) call.abort(e)
          ctx.calls.clear()
          reject(e)
        },
      }
      const onAbort = (): void => ctx.reject(options.signal?.reason ?? new Error('aborted'))
      // Node's timers fire at once beyond 2^31-1 ms: a longer deadline means no deadline.
      const timer =
        timeoutMs <= MAX_TIMER_MS
          ? setTimeout(() => {
              ctx.reject(
                new QuorumError(quorum, ctx.answered(), [
                  ...ctx.errors,
                  new TimeoutError(`no quorum after ${timeoutMs} ms (${total} nodes asked)`),
                ]),
              )
            }, timeoutMs)
          : undefined
      const finish = (): void => {
        ctx.done = true
        if (timer !== undefined) clearTimeout(timer)
        options.signal?.removeEventListener('abort', onAbort)
      }
      if (options.signal?.aborted) {
        onAbort()
        return
      }
      options.signal?.addEventListener('abort', onAbort, { once: true })
      body(ctx)
    })
  }
}

const MAX_TIMER_MS = 2 ** 31 - 1

const unresponsive = (node: string): Error =>
  new TimeoutError(`node ${node.slice(0, 16)} not asked: not answering its pings, and the deadline of a call has passed`)

/** Runs `call`, turning a synchronous throw into a rejection. */
function invoke<T>(call: NodeCall<T>, node: string, signal: AbortSignal): Promise<T> {
  try {
    return Promise.resolve(call(node, signal))
  } catch (err) {
    return Promise.reject(err)
  }
}

interface RunContext<R> {
  done: boolean
  /** The controllers of the calls still running, aborted when the operation fails (reads stop their remaining calls). */
  calls: Set<AbortController>
  errors: unknown[]
  answered: () => number
  resolve: (v: R) => void
  reject: (e: unknown) => void
}
