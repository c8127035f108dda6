/** Waiting in tests for something that happens in the background (replication, workers, peers). */

import { setTimeout as sleep } from 'node:timers/promises'

export interface EventuallyOptions {
  /** Give up after this many milliseconds. Default 5000. */
  timeoutMs?: number
  /** Wait this long between two attempts. Default 50 ms. */
  intervalMs?: number
}

/** For checks against real processes: a node may take seconds to start, sync or notice a peer. */
export const CLUSTER_WAIT: EventuallyOptions = { timeoutMs: 20_000, intervalMs: 200 }

/**
 * Calls `check` until it passes, then returns what it returned. `check` is a predicate (it passes
 * when it returns anything but `false`) or an assertion (it passes when it does not throw; a
 * throw, such as a node restarting or an `assert` failing, is retried). It is called at least once
 * and is never called concurrently with itself. After `timeoutMs`, throws
 * `timed out waiting for <what>` with the last error, if any, as its `cause`.
 *
 * @example await eventually('three copies', async () => (await holders(hash)).length === 3)
 * @example const body = await eventually('C serving the object', () => getText(c, bucket, key))
 */
export async function eventually<T>(
  what: string,
  check: () => T | Promise<T>,
  options: EventuallyOptions = {},
): Promise<Exclude<T, false>> {
  const { timeoutMs = 5_000, intervalMs = 50 } = options
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  let attempts = 0
  for (;;) {
    attempts++
    try {
      const result = await check()
      if (result !== false) return result as Exclude<T, false>
      lastError = undefined
    } catch (err) {
      lastError = err // not yet: keep trying until the deadline, and report it if it never passes
    }
    const left = deadline - Date.now()
    if (left <= 0) {
      const message = `timed out waiting for ${what} (${attempts} attempts in ${timeoutMs} ms)`
      throw lastError === undefined ? new Error(message) : new Error(message, { cause: lastError })
    }
    await sleep(Math.min(intervalMs, left))
  }
}
