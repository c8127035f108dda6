/**
 * Output helpers of the operator commands: Garage's tab-separated tables, byte sizes as
 * `10.0 GiB (10.7 GB)`, relative times, and the `--json` output. Pure, except {@link Output}.
 * @internal
 */

/**
 * Lay out rows as aligned columns, as Garage's `format_table`: each row is a tab-separated
 * string (or an array of cells), every column but the last is padded to its widest cell plus
 * two spaces, and trailing spaces are dropped.
 */
export function formatTable(rows: ReadonlyArray<string | readonly string[]>): string {
  const cells = rows.map((r) => (typeof r === 'string' ? r.split('\t') : [...r]))
  const widths: number[] = []
  for (const row of cells) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, displayWidth(cell))
    })
  }
  return cells
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell + ' '.repeat((widths[i] ?? 0) - displayWidth(cell) + 2)))
        .join('')
        .trimEnd(),
    )
    .join('\n')
}

/** Number of code points (close enough to the terminal width for ids, names and aliases). */
function displayWidth(s: string): number {
  return [...s].length
}

const BINARY_PREFIXES = 'KMGTPE'
const DECIMAL_PREFIXES = 'kMGTPE'

/**
 * A byte count in binary (`10.0 GiB`) or decimal (`10.7 GB`) units, as the `bytesize` crate
 * prints them (`512 B` below one unit).
 */
export function formatBytes(bytes: number, binary = true): string {
  const base = binary ? 1024 : 1000
  if (bytes < base) return `${bytes} B`
  const exp = Math.min(Math.floor(Math.log(bytes) / Math.log(base)), 6)
  const prefix = (binary ? BINARY_PREFIXES : DECIMAL_PREFIXES)[exp - 1] ?? ''
  return `${(bytes / base ** exp).toFixed(1)} ${prefix}${binary ? 'iB' : 'B'}`
}

/** `10.0 GiB (10.7 GB)`: how Garage shows sizes in `bucket info`. */
export function formatSize(bytes: number): string {
  return `${formatBytes(bytes, true)} (${formatBytes(bytes, false)})`
}

/** The first 16 characters of a hex id, as Garage shows bucket and node ids in tables. */
export function shortId(id: string): string {
  return id.slice(0, 16)
}

/** `first` or `first, ... (n)`: a list abbreviated to fit in a table cell (Garage's `table_list_abbr`). */
export function abbreviateList(values: readonly string[]): string {
  const [first] = values
  if (first === undefined) return ''
  return values.length === 1 ? first : `${first}, ... (${values.length})`
}

const AGO_UNITS: ReadonlyArray<readonly [string, number]> = [
  ['year', 31_536_000],
  ['month', 2_592_000],
  ['week', 604_800],
  ['day', 86_400],
  ['hour', 3600],
  ['minute', 60],
  ['second', 1],
]

/** `5 minutes ago`, from a number of seconds (as the `timeago` crate). */
export function formatAgo(secs: number): string {
  for (const [name, size] of AGO_UNITS) {
    if (secs >= size) {
      const n = Math.floor(secs / size)
      return `${n} ${name}${n === 1 ? '' : 's'} ago`
    }
  }
  return 'now'
}

/** A date from the API (RFC 3339) in the local time zone, `YYYY-MM-DD HH:MM:SS ±HH:MM`. */
export function formatDate(rfc3339: string, withTime = true): string {
  const d = new Date(rfc3339)
  if (Number.isNaN(d.getTime())) return rfc3339
  const p = (n: number) => String(n).padStart(2, '0')
  const date = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`
  if (!withTime) return date
  const off = -d.getTimezoneOffset()
  const tz = `${off >= 0 ? '+' : '-'}${p(Math.floor(Math.abs(off) / 60))}:${p(Math.abs(off) % 60)}`
  return `${date} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${tz}`
}

/** JSON as the CLI prints it: two-space indentation, like Garage's `json-api`. */
export function formatJson(value: unknown): string {
  return JSON.stringify(value, null, 2)
}

/** Where commands write their results (stdout), so tests can capture it. */
export interface Output {
  /** Print text followed by a newline. */
  line(text?: string): void
  /** Print a table (see {@link formatTable}); nothing for no rows. */
  table(rows: ReadonlyArray<string | readonly string[]>): void
  /** Print a value as JSON. */
  json(value: unknown): void
}

/** An {@link Output} writing to a stream (default: stdout). */
export function createOutput(stream: NodeJS.WritableStream = process.stdout): Output {
  const line = (text = ''): void => {
    stream.write(`${text}\n`)
  }
  return {
    line,
    table: (rows) => {
      if (rows.length > 0) line(formatTable(rows))
    },
    json: (value) => line(formatJson(value)),
  }
}
