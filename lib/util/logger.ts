/**
 * The logger shape the library writes to. consola's instances satisfy it; the default is silent,
 * so an embedded node prints nothing.
 */
export interface Logger {
  debug(message: unknown, ...args: unknown[]): void
  info(message: unknown, ...args: unknown[]): void
  warn(message: unknown, ...args: unknown[]): void
  error(message: unknown, ...args: unknown[]): void
  withTag(tag: string): Logger
}

const noop = (): void => {}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  withTag: () => silentLogger,
}
