/** Formatting helpers of the console (pure; unit-tested in test/console/). */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const

/** `1536` → `1.5 KiB`; null/undefined → `—`. */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—'
  let v = n
  let i = 0
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) {
    v /= 1024
    i++
  }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)} ${UNITS[i]}`
}

/**
 * `10G`, `500 MB`, `1.5TiB`, `1024` → bytes (decimal units are powers of 1000, binary ones of
 * 1024, as Garage's CLI reads capacities). Undefined for anything else.
 */
export function parseBytes(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)(b?)\s*$/i.exec(text)
  if (m === null) return undefined
  const value = Number(m[1])
  const unit = (m[2] ?? '').toLowerCase()
  const binary = (m[3] ?? '') !== '' || ((m[4] ?? '') === '' && unit !== '')
  const power = ' kmgtp'.indexOf(unit === '' ? ' ' : unit)
  const bytes = value * (binary ? 1024 : 1000) ** power
  return Number.isSafeInteger(Math.round(bytes)) ? Math.round(bytes) : undefined
}

/** Shortens a 64-hex node id or a long key id for display. */
export const shortId = (id: string, n = 16): string => (id.length > n ? id.slice(0, n) : id)

/** `2026-01-02T03:04:05.000Z` → `2026-01-02 03:04:05 UTC`. */
export function formatDate(iso: string | null | undefined): string {
  if (iso === null || iso === undefined) return '—'
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return iso
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`
}

/** Seconds → `3 s`, `5 min`, `2 h`, `4 d`. */
export function formatAgo(secs: number | null | undefined): string {
  if (secs === null || secs === undefined) return 'never'
  if (secs < 60) return `${secs} s`
  if (secs < 3600) return `${Math.floor(secs / 60)} min`
  if (secs < 86_400) return `${Math.floor(secs / 3600)} h`
  return `${Math.floor(secs / 86_400)} d`
}

/** A fraction as `42%`. */
export const percent = (part: number, whole: number): string => (whole > 0 ? `${Math.round((100 * part) / whole)}%` : '—')
