/**
 * Preloaded into a `garage server` child (ClusterNodeOptions.preload) to run its clock
 * `CHAOS_CLOCK_SKEW_MSEC` milliseconds ahead (or behind, when negative) of the machine's: the
 * chaos suite's injected clock skew. Every wall-clock reading of the library goes through
 * `Date.now()` or `new Date()` (lib/util/time.ts, SigV4 dates, HTTP dates), so both are shifted;
 * monotonic timers (`setTimeout`, `performance.now()`) are not, as a skewed clock's are not.
 */
const skew = Number(process.env.CHAOS_CLOCK_SKEW_MSEC ?? '0')
if (!Number.isFinite(skew)) throw new Error(`CHAOS_CLOCK_SKEW_MSEC must be a number, got ${process.env.CHAOS_CLOCK_SKEW_MSEC}`)

if (skew !== 0) {
  const RealDate = Date
  const realNow = RealDate.now
  class SkewedDate extends RealDate {
    // biome-ignore lint/suspicious/noExplicitAny: Date's constructor overloads, forwarded as they come
    constructor(...args: any[]) {
      if (args.length === 0) super(realNow() + skew)
      else super(...(args as [number]))
    }
    static override now(): number {
      return realNow() + skew
    }
  }
  globalThis.Date = SkewedDate as DateConstructor
}
