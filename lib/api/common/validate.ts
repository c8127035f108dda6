/**
 * Checks of request input shared by every API: query strings must be valid percent-encoded UTF-8,
 * and every header value taken from a request (`response-*` overrides, form fields stored as
 * object metadata) must be a valid HTTP field value before it is stored or sent back.
 * @module
 */
import { ApiError } from './errors.ts'

/**
 * A valid HTTP field value as Node.js sends it (RFC 9110 §5.5): visible ASCII, space, horizontal
 * tab and obs-text (`\x80`–`\xFF`, so Latin-1 only). No CR, LF, NUL, DEL or other control
 * character; nothing above U+00FF (`setHeader` would throw).
 * @internal
 */
export function isValidFieldValue(value: string): boolean {
  return !/[^\t\x20-\x7e\x80-\xff]/.test(value)
}

/**
 * Checks a header value taken from request input (`what` names its source in the message).
 * @throws {ApiError} `InvalidArgument` for a value that is not a valid HTTP field value.
 * @internal
 */
export function checkFieldValue(what: string, value: string): void {
  if (!isValidFieldValue(value)) {
    throw new ApiError(
      'InvalidArgument',
      `${what} must be a valid HTTP header value: no control characters other than tab, only Latin-1 characters`,
    )
  }
}

/**
 * Checks that every name and value of a query string is valid percent-encoded UTF-8.
 * `URLSearchParams` silently turns an invalid sequence such as `%FF` into U+FFFD, which would
 * then name another key or prefix; here it is refused instead.
 * @throws {ApiError} `InvalidArgument` naming the offending parameter.
 * @internal
 */
export function checkQueryEncoding(rawQuery: string): void {
  if (!rawQuery.includes('%')) return
  for (const part of rawQuery.split('&')) {
    if (!part.includes('%')) continue
    const eq = part.indexOf('=')
    const name = eq < 0 ? part : part.slice(0, eq)
    for (const component of eq < 0 ? [name] : [name, part.slice(eq + 1)]) {
      try {
        decodeURIComponent(component.replaceAll('+', ' '))
      } catch (err) {
        throw new ApiError(
          'InvalidArgument',
          `Query parameter ${JSON.stringify(safeName(name))} is not valid percent-encoded UTF-8`,
          {
            cause: err,
          },
        )
      }
    }
  }
}

/** A parameter name for an error message: decoded when possible, short. */
function safeName(raw: string): string {
  let s = raw
  try {
    s = decodeURIComponent(raw)
  } catch {
    // Not decodable: the raw text names it well enough.
  }
  return s.length <= 64 ? s : `${s.slice(0, 64)}…`
}
