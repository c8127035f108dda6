/** Reading the node's `/metrics` (Prometheus text format) for the metrics page (pure; unit-tested). */

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

/** Every sample of a Prometheus text exposition; comments and malformed lines are skipped. */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const m = LINE.exec(line)
    if (m === null) continue
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(LABEL)) {
      labels[l[1] as string] = (l[2] as string).replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\')
    }
    const v = m[3] === '+Inf' ? Number.POSITIVE_INFINITY : m[3] === '-Inf' ? Number.NEGATIVE_INFINITY : Number(m[3])
    if (!Number.isNaN(v)) out.push({ name: m[1] as string, labels, value: v })
  }
  return out
}

/** The sum of every sample named `name` whose labels match `where`. */
export function sumOf(samples: readonly Sample[], name: string, where: Record<string, string> = {}): number {
  let total = 0
  for (const s of samples) {
    if (s.name !== name) continue
    if (Object.entries(where).every(([k, v]) => s.labels[k] === v)) total += s.value
  }
  return total
}

/** The figures the metrics page plots, summed over every API and endpoint. */
export interface Totals {
  at: number
  requests: number
  errors: number
  bytesIn: number
  bytesOut: number
}

const APIS = ['s3', 'k2v', 'admin', 'web'] as const

export function totalsOf(samples: readonly Sample[], at: number): Totals {
  const sum = (suffix: string) => APIS.reduce((t, api) => t + sumOf(samples, `api_${api}_${suffix}`), 0)
  return {
    at,
    requests: sum('request_counter'),
    errors: sum('error_counter'),
    bytesIn: sum('request_bytes_received'),
    bytesOut: sum('response_bytes_sent'),
  }
}

/** Per-second rates between consecutive totals (a counter that went down, a restart, counts from 0). */
export function ratesOf(series: readonly Totals[]): Totals[] {
  const out: Totals[] = []
  for (let i = 1; i < series.length; i++) {
    const a = series[i - 1] as Totals
    const b = series[i] as Totals
    const dt = (b.at - a.at) / 1000
    if (dt <= 0) continue
    const rate = (x: number, y: number) => (y >= x ? y - x : y) / dt
    out.push({
      at: b.at,
      requests: rate(a.requests, b.requests),
      errors: rate(a.errors, b.errors),
      bytesIn: rate(a.bytesIn, b.bytesIn),
      bytesOut: rate(a.bytesOut, b.bytesOut),
    })
  }
  return out
}
