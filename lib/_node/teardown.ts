/**
 * Teardowns of the node's start stages. Each stage (lib/_node/*.ts) registers an undo step for
 * everything it opens, in order; it returns one teardown that undoes them last-first, or, when it
 * fails partway, undoes what it had opened and rethrows. `Node.start` pushes each stage's teardown
 * and `Node.stop` runs them in reverse: servers first, storage last.
 */

/** Undoes one thing a stage opened. */
export type Teardown = () => Promise<void>

/** Errors of a stage's teardown steps, flattened by `Node.stop` into its own AggregateError. */
export class TeardownErrors extends AggregateError {
  override name = 'TeardownErrors'
}

/** Runs `steps` last-first; every step runs even if an earlier one failed. Returns the errors. */
export async function runInReverse(steps: readonly Teardown[]): Promise<unknown[]> {
  const errors: unknown[] = []
  for (const step of [...steps].reverse()) {
    try {
      await step()
    } catch (err) {
      // Collected, not swallowed: the caller throws them together once every step has run.
      if (err instanceof TeardownErrors) errors.push(...err.errors)
      else errors.push(err)
    }
  }
  return errors
}

/**
 * Runs one start stage. `build` calls `defer(step)` right after opening each thing that needs
 * undoing. Resolves to build's result plus the stage's teardown; if build throws, what it opened
 * is undone (last first) and its error rethrown (with the undo errors, if any, alongside).
 */
export async function stage<T extends object>(
  build: (defer: (step: Teardown) => void) => Promise<T>,
): Promise<T & { teardown: Teardown }> {
  const steps: Teardown[] = []
  let result: T
  try {
    result = await build((step) => {
      steps.push(step)
    })
  } catch (err) {
    const errors = await runInReverse(steps)
    if (errors.length === 0) throw err
    throw new AggregateError([err, ...errors], 'a start stage failed, and undoing it failed too', { cause: err })
  }
  const teardown: Teardown = async () => {
    const errors = await runInReverse(steps.splice(0))
    if (errors.length > 0) throw new TeardownErrors(errors, 'errors while undoing a start stage')
  }
  return Object.assign(result, { teardown })
}
