/**
 * The cluster's clock: this node's wall clock, raised to the latest clock any peer showed in a
 * ping answer (aged by this node's monotonic clock since). Not in Garage, whose timestamps are
 * each node's own `now_msec()`.
 *
 * Why: an object version is stamped `max(now, newest version seen + 1)` (Garage's
 * next_timestamp). A version the write's read did not see (a PUT that failed on a node cut off
 * right after its read, stored there only) is ordered against it by the clocks alone, so a
 * write acknowledged later through a node whose clock is behind lost to it once the links healed
 * (docs/design/chaos.md, "an acknowledged DELETE lost to a failed PUT"). Stamping with the
 * highest clock of the cluster orders such writes as their wall-clock order again, whichever
 * node runs behind or ahead, to within one network delay.
 *
 * A ping answer carries the answering node's cluster time (not only its own clock), so the
 * highest clock spreads to every node and outlives the node that had it. A peer more than
 * {@link MAX_ADOPTED_SKEW_MS} ahead is not followed (warned once): a clock that wrong is a fault to
 * fix, not a time to adopt.
 * @internal
 */
import { performance } from 'node:perf_hooks'
import type { Logger } from '../util/logger.ts'

/** A peer's clock further ahead than this is ignored (and warned about): 15 minutes, SigV4's own bound. @internal */
export const MAX_ADOPTED_SKEW_MS = 15 * 60_000

/** @internal */
export class ClusterClock {
  readonly #log: Logger
  readonly #wall: () => number
  readonly #mono: () => number
  /** Highest time seen from any peer, and this node's monotonic time when it arrived. */
  #peer: { time: number; at: number; from: string } | undefined
  readonly #warned = new Set<string>()
  /** The lead over our own clock last logged (logged again when it grows by a second). */
  #logged = 0

  constructor(log: Logger, clocks: { wall?: () => number; mono?: () => number } = {}) {
    this.#log = log
    this.#wall = clocks.wall ?? Date.now
    this.#mono = clocks.mono ?? (() => performance.now())
  }

  /** The cluster's time in ms since the epoch: never behind this node's own clock. */
  now(): number {
    const wall = this.#wall()
    const p = this.#peer
    if (p === undefined) return wall
    return Math.max(wall, Math.floor(p.time + (this.#mono() - p.at)))
  }

  /** How far the cluster's time is ahead of this node's own clock, in ms (0 when it is not). */
  aheadMs(): number {
    return this.now() - this.#wall()
  }

  /** `peer` answered a ping with `time` (its cluster time), which arrived just now. */
  observe(peer: string, time: number): void {
    if (!Number.isFinite(time)) return
    const wall = this.#wall()
    const ahead = time - wall
    if (ahead > MAX_ADOPTED_SKEW_MS) {
      if (!this.#warned.has(peer)) {
        this.#warned.add(peer)
        this.#log.warn(
          `node ${peer.slice(0, 16)}'s clock is ${Math.round(ahead / 1000)} s ahead of ours: not followed (over ${MAX_ADOPTED_SKEW_MS / 60_000} min); fix the clocks`,
        )
      }
      return
    }
    if (time <= this.now()) return
    if (ahead > this.#logged + 1_000) {
      this.#logged = ahead
      this.#log.info(`following node ${peer.slice(0, 16)}'s clock, ${Math.round(ahead)} ms ahead of ours, for version timestamps`)
    }
    this.#peer = { time, at: this.#mono(), from: peer }
  }
}
