/**
 * The logger of `garage server`: consola at the level of `--log-level`, `GARAGE_LOG_LEVEL` or
 * `log_level` (default info: one access line per request), writing text (consola's own
 * reporter) or JSON (`--log-format json`: one object per line on stdout, with the fields of
 * access log entries at the top level).
 * @internal
 */

import { formatWithOptions } from 'node:util'
import { type ConsolaInstance, type ConsolaReporter, createConsola, type LogObject } from 'consola'
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '../index.ts'
import { CliError } from './_errors.ts'

/** consola's numeric level for each of ours. */
const CONSOLA_LEVEL: Record<LogLevel, number> = { error: 0, warn: 1, info: 3, debug: 4, trace: 5 }

/** Our level name of a consola record (`success`, `ready`, `log` … are info). */
function levelName(obj: LogObject): LogLevel {
  if (obj.level <= 0) return 'error'
  if (obj.level === 1) return 'warn'
  if (obj.level <= 3) return 'info'
  if (obj.level === 4) return 'debug'
  return 'trace'
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype

/** The value of `--log-level` / `GARAGE_LOG_LEVEL`, checked; undefined when unset. */
export function parseLogLevel(value: string | undefined, origin: string): LogLevel | undefined {
  if (value === undefined || value === '') return undefined
  const v = value.toLowerCase()
  if (!(LOG_LEVELS as readonly string[]).includes(v)) {
    throw new CliError(`invalid ${origin} '${value}': expected one of ${LOG_LEVELS.join(', ')}`)
  }
  return v as LogLevel
}

/** The value of `--log-format`, checked; undefined when unset. */
export function parseLogFormat(value: string | undefined, origin: string): LogFormat | undefined {
  if (value === undefined || value === '') return undefined
  if (!(LOG_FORMATS as readonly string[]).includes(value)) {
    throw new CliError(`invalid ${origin} '${value}': expected text or json`)
  }
  return value as LogFormat
}

/** A JSON record of an Error: its message, code and stack. */
function errorRecord(err: Error): Record<string, unknown> {
  const code = (err as { code?: unknown }).code
  return { name: err.name, message: err.message, ...(code === undefined ? {} : { code }), stack: err.stack }
}

/** One JSON line per record: time, level, tag, msg, then the fields of a trailing plain object. */
export function jsonReporter(write: (line: string) => void): ConsolaReporter {
  return {
    log(obj) {
      const args = [...obj.args]
      const fields = args.length > 1 && isPlainObject(args[args.length - 1]) ? (args.pop() as Record<string, unknown>) : {}
      const errors = args.filter((a): a is Error => a instanceof Error)
      const text = args.filter((a) => !(a instanceof Error))
      const record: Record<string, unknown> = {
        time: obj.date.toISOString(),
        level: levelName(obj),
        ...(obj.tag === '' ? {} : { tag: obj.tag }),
        msg: formatWithOptions({ colors: false, breakLength: Number.POSITIVE_INFINITY }, ...text),
        ...fields,
      }
      if (errors.length > 0) record.err = errorRecord(errors[0] as Error)
      write(`${JSON.stringify(record)}\n`)
    },
  }
}

/**
 * How consola's reporter writes an access line, when it writes it plain: the text around the line
 * (`[tag] ℹ ` from the fancy reporter, `[info] [tag] ` from the basic one that consola picks under
 * CI or tests), learnt once per tag by having the reporter write a probe record to a string.
 * Undefined where the reporter adds anything else (colours, a date, a terminal's width).
 * Formatting a line costs consola's reporter ≈ 130 µs of CPU (string width measures and format
 * passes), ≈ 10 % of a small GET; written directly it is the same line, except that the fancy
 * reporter's markdown-like pass would also have removed the underscores around a `_word_` of
 * an object key.
 */
function plainPrefix(inner: ConsolaReporter, obj: LogObject, ctx: Parameters<ConsolaReporter['log']>[1]): string | undefined {
  const out = ctx.options.stdout
  if (out === undefined || out.isTTY === true || process.platform === 'win32' || process.env.TERM === 'linux') {
    return undefined
  }
  const marker = 'garage-probe-line'
  let written = ''
  const write = (chunk: string | Uint8Array): boolean => {
    written += String(chunk)
    return true
  }
  const probe = { write } as unknown as NodeJS.WriteStream
  inner.log({ ...obj, args: [marker] }, { options: { ...ctx.options, stdout: probe, stderr: probe } })
  const at = written.indexOf(marker)
  if (at < 0 || written.slice(at) !== `${marker}\n`) return undefined
  const prefix = written.slice(0, at)
  // Colours or other escapes, or a time (which would change from line to line): not plain.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for ANSI escapes
  return /[\u001b\r\n]|\d:\d\d/.test(prefix) ? undefined : prefix
}

/**
 * Plain access lines of one turn of the event loop, written together at its end: one `write` for
 * the requests that ended in that turn instead of one each. On Linux, Node.js writes to a pipe
 * (a service manager's log, `garage server | …`) synchronously, so each write is a system call
 * on the request's path, and blocks while the reader is behind. Anything else written to the
 * stream flushes the pending lines first, so the order of lines is kept. Lines still pending
 * when the process dies abruptly are lost (at most one turn's).
 */
class AccessLines {
  readonly #out: NodeJS.WriteStream
  #pending = ''
  constructor(out: NodeJS.WriteStream) {
    this.#out = out
  }
  push(line: string): void {
    if (this.#pending === '') setImmediate(() => this.flush())
    this.#pending += line
  }
  flush(): void {
    if (this.#pending === '') return
    const text = this.#pending
    this.#pending = ''
    this.#out.write(text)
  }
}

/**
 * A text reporter that leaves out the trailing fields object of an access log entry (the line
 * already says it all) and hands everything else to consola's reporter.
 */
function textReporter(inner: ConsolaReporter): ConsolaReporter {
  const prefixes = new Map<string, string | undefined>()
  let lines: AccessLines | undefined
  return {
    log(obj, ctx) {
      const last = obj.args[obj.args.length - 1]
      if (obj.args.length > 1 && obj.tag.endsWith('access') && isPlainObject(last)) {
        const line = obj.args[0]
        if (obj.args.length === 2 && typeof line === 'string' && obj.level > 1) {
          const key = `${obj.type}\u0000${obj.tag}`
          if (!prefixes.has(key)) prefixes.set(key, plainPrefix(inner, obj, ctx))
          const prefix = prefixes.get(key)
          if (prefix !== undefined) {
            lines ??= new AccessLines(ctx.options.stdout as NodeJS.WriteStream)
            lines.push(`${prefix}${line}\n`)
            return
          }
        }
        lines?.flush()
        inner.log({ ...obj, args: obj.args.slice(0, -1) }, ctx)
      } else {
        lines?.flush()
        inner.log(obj, ctx)
      }
    },
  }
}

/** The CLI's logger for `level` and `format`. */
export function createCliLogger(opts: {
  level: LogLevel
  format: LogFormat
  /** Where records go (default: process.stdout, and process.stderr for errors and warnings). */
  stdout?: NodeJS.WriteStream
  stderr?: NodeJS.WriteStream
}): ConsolaInstance {
  const level = CONSOLA_LEVEL[opts.level]
  // Every record is written when it comes. consola's default collapses a record identical to the
  // one before into "(repeated N times)", and to know, JSON-encodes the arguments of every record
  // (the access line's entry included): ≈ 2.5 % of the main thread of a 4 KiB GET, for access
  // lines that always differ (each has its request id).
  const throttle = 0
  const streams = {
    ...(opts.stdout === undefined ? {} : { stdout: opts.stdout }),
    ...(opts.stderr === undefined ? {} : { stderr: opts.stderr }),
  }
  if (opts.format === 'json') {
    const out = opts.stdout ?? process.stdout
    return createConsola({
      level,
      throttle,
      reporters: [jsonReporter((line) => out.write(line))],
    })
  }
  const base = createConsola({ level })
  return createConsola({ level, throttle, ...streams, reporters: base.options.reporters.map(textReporter) })
}
