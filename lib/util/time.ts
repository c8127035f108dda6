/** Wall-clock helpers (port of garage_util::time). */

/** Milliseconds since the epoch. */
export const nowMsec = (): number => Date.now()

/**
 * A timestamp strictly greater than `previous` and not older than `now` (Garage's
 * next_timestamp); `now` defaults to this node's clock (a node in a cluster passes the cluster's,
 * lib/net/clock.ts).
 */
export function nextTimestamp(previous: number | undefined, now: number = nowMsec()): number {
  return previous === undefined ? now : Math.max(now, previous + 1)
}

/** RFC 7231 date, as S3 sends in Last-Modified. */
export const httpDate = (msec: number): string => new Date(msec).toUTCString()

/** ISO 8601 with milliseconds, as S3 writes in XML. */
export const isoDate = (msec: number): string => new Date(msec).toISOString()
