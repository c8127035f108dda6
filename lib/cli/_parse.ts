/**
 * Parsers for the values operators type on the command line: durations (`--expires-in 30d`,
 * `--older-than 1h30m`, as Garage's `parse_duration`) and sizes (`--max-size 10GiB`, as Garage's
 * `bytesize`). Pure functions; they throw {@link CliError} with a one-line message.
 * @internal
 */

import { parseSizeString } from '../index.ts'
import { CliError } from './_errors.ts'

/** Seconds per duration unit, every spelling `parse_duration` accepts for the common units. */
const DURATION_UNITS: Record<string, number> = {
  ns: 1e-9,
  nsec: 1e-9,
  nanosecond: 1e-9,
  nanoseconds: 1e-9,
  us: 1e-6,
  usec: 1e-6,
  microsecond: 1e-6,
  microseconds: 1e-6,
  ms: 1e-3,
  msec: 1e-3,
  millisecond: 1e-3,
  milliseconds: 1e-3,
  s: 1,
  sec: 1,
  secs: 1,
  second: 1,
  seconds: 1,
  m: 60,
  min: 60,
  mins: 60,
  minute: 60,
  minutes: 60,
  h: 3600,
  hr: 3600,
  hrs: 3600,
  hour: 3600,
  hours: 3600,
  d: 86_400,
  day: 86_400,
  days: 86_400,
  w: 604_800,
  wk: 604_800,
  week: 604_800,
  weeks: 604_800,
  // parse_duration's month and year: 30.44 and 365.25 days.
  mo: 2_629_746,
  month: 2_629_746,
  months: 2_629_746,
  y: 31_556_952,
  yr: 31_556_952,
  year: 31_556_952,
  years: 31_556_952,
}

/**
 * Parse a duration into seconds (possibly fractional): `30d`, `1h30m`, `90`, `1.5 hours`,
 * `2 days 3 hours`. A bare number is seconds.
 *
 * @example parseDuration('1h30m') // 5400
 */
export function parseDuration(text: string): number {
  const input = text.trim()
  if (input === '') throw new CliError('invalid duration: empty value (expected e.g. 30d, 1h30m, 90s)')
  const bare = /^\d+(?:\.\d+)?$/.exec(input)
  if (bare !== null) return Number(input)
  const re = /\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*,?/y
  let total = 0
  let pos = 0
  while (pos < input.length) {
    re.lastIndex = pos
    const m = re.exec(input)
    if (m === null) throw new CliError(`invalid duration '${text}' (expected e.g. 30d, 1h30m, 90s)`)
    const unitName = m[2] as string
    const unit = DURATION_UNITS[unitName] ?? DURATION_UNITS[unitName.toLowerCase()]
    if (unit === undefined) throw new CliError(`invalid duration '${text}': unknown unit '${unitName}'`)
    total += Number(m[1]) * unit
    pos = re.lastIndex
  }
  return total
}

/**
 * Parse a size into a whole number of bytes: `10GiB`, `1.5 GB`, `500M`, `1024`.
 *
 * @example parseSize('10GiB') // 10737418240
 */
export function parseSize(text: string): number {
  const bytes = parseSizeString(text)
  if (bytes === undefined) {
    throw new CliError(`invalid size '${text}' (expected e.g. 10GiB, 500MB, 1T or a number of bytes)`)
  }
  if (!Number.isSafeInteger(bytes)) throw new CliError(`invalid size '${text}': too large`)
  return bytes
}

/** Parse a non-negative integer (`--max-objects`, worker ids). */
export function parseCount(text: string, what: string): number {
  if (!/^\s*\d+\s*$/.test(text)) throw new CliError(`invalid ${what} '${text}': expected a non-negative integer`)
  const n = Number(text)
  if (!Number.isSafeInteger(n)) throw new CliError(`invalid ${what} '${text}': too large`)
  return n
}

/** `now + duration`, as the RFC 3339 timestamp the admin API expects for `expiration`. */
export function expirationFromNow(duration: string, now: Date = new Date()): string {
  return new Date(now.getTime() + parseDuration(duration) * 1000).toISOString()
}
