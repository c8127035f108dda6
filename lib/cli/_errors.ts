/**
 * How the CLI reports a failure: one clean line for errors the user can fix (a bad config, a
 * refused operation, an unreachable node), the full stack for anything unexpected (a bug).
 * Only lib/cli prints.
 * @internal
 */

import { consola } from 'consola'
import { isGarageError } from '../index.ts'

/**
 * An error the operator can act on: its message is complete and printed alone on one line
 * (the cause, if any, is printed only with `GARAGE_DEBUG=1`).
 */
export class CliError extends Error {
  override name = 'CliError'
}

/** Print `err` for a human, then exit with status 1. */
export function exitWithError(err: unknown): never {
  if (err instanceof CliError) {
    consola.error(err.message)
    if (process.env.GARAGE_DEBUG === '1' && err.cause !== undefined) consola.error(err.cause)
  } else if (isGarageError(err)) {
    // Our own errors carry a complete, one-line message; the cause adds the OS-level reason.
    const cause = err.code !== 'GARAGE_ERR_INVALID_CONFIG' && err.cause instanceof Error ? ` (${err.cause.message})` : ''
    consola.error(`${err.message}${cause}`)
    if (process.env.GARAGE_DEBUG === '1') consola.error(err)
  } else {
    consola.error(err)
  }
  process.exit(1)
}

/** Wrap a command's `run` so its errors are reported by {@link exitWithError}, not by citty. */
export function reportErrors<A extends unknown[]>(run: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args) => {
    try {
      await run(...args)
    } catch (err) {
      exitWithError(err)
    }
  }
}
