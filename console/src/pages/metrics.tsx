/** Metrics at a glance: requests, errors and bytes per second, sampled from `/metrics` while the page is open. */
import { useEffect, useState } from 'preact/hooks'
import { formatBytes } from '../format.ts'
import { parsePrometheus, ratesOf, sumOf, type Totals, totalsOf } from '../prom.ts'
import { ErrorBox, Section, useApp } from '../ui.tsx'

const EVERY_MS = 2000
const KEEP = 90

function Chart({ label, points, format }: { label: string; points: number[]; format(v: number): string }) {
  const w = 300
  const h = 60
  const max = Math.max(1e-9, ...points)
  const step = points.length > 1 ? w / (points.length - 1) : w
  const path = points
    .map((v, i) => `${i === 0 ? 'M' : 'L'}${(i * step).toFixed(1)},${(h - (v / max) * (h - 4) - 2).toFixed(1)}`)
    .join(' ')
  const last = points[points.length - 1] ?? 0
  return (
    <figure class="chart">
      <figcaption>
        {label}: <strong>{format(last)}</strong> <span class="sub">(peak {format(max === 1e-9 ? 0 : max)})</span>
      </figcaption>
      <svg
        viewBox={`0 0 ${w} ${h}`}
        role="img"
        aria-label={`${label} over the last ${points.length} samples`}
        preserveAspectRatio="none"
      >
        <path d={path} fill="none" stroke="currentColor" stroke-width="2" vector-effect="non-scaling-stroke" />
      </svg>
    </figure>
  )
}

export function MetricsPage() {
  const { api } = useApp()
  const [series, setSeries] = useState<Totals[]>([])
  const [latest, setLatest] = useState<ReturnType<typeof parsePrometheus>>([])
  const [error, setError] = useState<unknown>(undefined)
  useEffect(() => {
    let stopped = false
    const sample = async () => {
      try {
        const samples = parsePrometheus(await api.metrics())
        if (stopped) return
        setLatest(samples)
        setSeries((s) => [...s, totalsOf(samples, Date.now())].slice(-KEEP))
        setError(undefined)
      } catch (err) {
        if (!stopped) setError(err)
      }
    }
    void sample()
    const t = setInterval(() => void sample(), EVERY_MS)
    return () => {
      stopped = true
      clearInterval(t)
    }
  }, [api])
  const rates = ratesOf(series)
  const now = series[series.length - 1]
  const perSec = (v: number) => `${v.toFixed(1)}/s`
  const bytesPerSec = (v: number) => `${formatBytes(Math.round(v))}/s`
  return (
    <>
      <h1>Metrics</h1>
      <p class="hint">Sampled from this node's /metrics every {EVERY_MS / 1000} s while this page is open.</p>
      <ErrorBox error={error} />
      {now !== undefined && (
        <Section title="Totals since the node started">
          <dl class="stats" data-testid="metric-totals">
            <div>
              <dt>Requests</dt>
              <dd>{now.requests}</dd>
            </div>
            <div>
              <dt>Errors</dt>
              <dd>{now.errors}</dd>
            </div>
            <div>
              <dt>Received</dt>
              <dd>{formatBytes(now.bytesIn)}</dd>
            </div>
            <div>
              <dt>Sent</dt>
              <dd>{formatBytes(now.bytesOut)}</dd>
            </div>
            <div>
              <dt>Block resync queue</dt>
              <dd>{sumOf(latest, 'block_resync_queue_length')}</dd>
            </div>
          </dl>
        </Section>
      )}
      <Section title="Over time">
        {rates.length === 0 ? (
          <p>Collecting…</p>
        ) : (
          <div class="charts">
            <Chart label="Requests" points={rates.map((r) => r.requests)} format={perSec} />
            <Chart label="Errors" points={rates.map((r) => r.errors)} format={perSec} />
            <Chart label="Bytes received" points={rates.map((r) => r.bytesIn)} format={bytesPerSec} />
            <Chart label="Bytes sent" points={rates.map((r) => r.bytesOut)} format={bytesPerSec} />
          </div>
        )}
      </Section>
    </>
  )
}
