/**
 * Parsers for the values operators type on the command line: durations (`--expires-in 30d`,
 * `--older-than 1h30m`, as Garage's `parse_duration`) and sizes (`--max-size 10GiB`, as Garage's
 * `bytesize`), through the config's parsers so both read the same forms. Pure functions; they
 * throw {@link CliError} with a one-line message.
 * @internal
 */

import { parseDurationString, parseSizeString } from '../index.ts'
import { CliError } from './_errors.ts'

/**
 * Parse a duration into seconds (possibly fractional): `30d`, `1h30m`, `90`, `1.5 hours`,
 * `2 days 3 hours`. A bare number is seconds. The units are the config's
 * ({@link parseDurationString}).
 *
 * @example parseDuration('1h30m') // 5400
 */
export function parseDuration(text: string): number {
  if (text.trim() === '') throw new CliError('invalid duration: empty value (expected e.g. 30d, 1h30m, 90s)')
  const ms = parseDurationString(text)
  if (ms === undefined) {
    throw new CliError(`invalid duration '${text}' (expected e.g. 30d, 1h30m, 90s; units: ms, s, m, h, d, w, mo, y)`)
  }
  return ms / 1000
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
