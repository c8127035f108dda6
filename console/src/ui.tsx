/** Shared pieces of the console's pages: the app context, data loading, errors, small widgets. */
import type { ComponentChildren } from 'preact'
import { createContext } from 'preact'
import { useCallback, useContext, useEffect, useRef, useState } from 'preact/hooks'
import type { AdminClient } from './api.ts'

export interface AppContext {
  api: AdminClient
  /** The S3 region requests are signed for. */
  region: string
  navigate(hash: string): void
  signOut(): void
}

export const App = createContext<AppContext | undefined>(undefined)

export function useApp(): AppContext {
  const c = useContext(App)
  if (c === undefined) throw new Error('useApp outside <App.Provider>')
  return c
}

export const errorText = (err: unknown): string =>
  err instanceof Error ? `${'code' in err ? `${String(err.code)}: ` : ''}${err.message}` : String(err)

export interface Loaded<T> {
  data: T | undefined
  error: unknown
  loading: boolean
  reload(): void
}

/**
 * Runs `load` now, whenever `deps` change and, with `everyMs`, periodically (while the tab is
 * visible). A late answer of an older load never overwrites a newer one.
 */
export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[], everyMs?: number): Loaded<T> {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({
    data: undefined,
    error: undefined,
    loading: true,
  })
  const seq = useRef(0)
  const run = useCallback(() => {
    const n = ++seq.current
    setState((s) => ({ ...s, loading: true }))
    load().then(
      (data) => {
        if (n === seq.current) setState({ data, error: undefined, loading: false })
      },
      (error: unknown) => {
        if (n === seq.current) setState((s) => ({ data: s.data, error, loading: false }))
      },
    )
  }, deps)
  useEffect(() => {
    run()
    if (everyMs === undefined) return undefined
    const t = setInterval(() => {
      if (document.visibilityState === 'visible') run()
    }, everyMs)
    return () => clearInterval(t)
  }, [run, everyMs])
  return { ...state, reload: run }
}

export function ErrorBox({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null
  return (
    <p class="error" role="alert">
      {errorText(error)}
    </p>
  )
}

/** Runs an action from a button or form: busy flag, error shown next to it. */
export function useAction(): {
  busy: boolean
  error: unknown
  run(f: () => Promise<unknown>): Promise<void>
  clear(): void
} {
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<unknown>(undefined)
  const run = async (f: () => Promise<unknown>) => {
    setBusy(true)
    setError(undefined)
    try {
      await f()
    } catch (err) {
      setError(err)
    } finally {
      setBusy(false)
    }
  }
  return { busy, error, run, clear: () => setError(undefined) }
}

export function Section({
  title,
  children,
  actions,
}: {
  title: string
  children: ComponentChildren
  actions?: ComponentChildren
}) {
  const id = `s-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`
  return (
    <section aria-labelledby={id} class="card">
      <div class="card-head">
        <h2 id={id}>{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  )
}

/** A labelled meter (disk space, capacity share) with its figures in text. */
export function Meter({ label, value, max, text }: { label: string; value: number; max: number; text: string }) {
  return (
    <span class="meter">
      <meter min={0} max={max} value={value} aria-label={label} />
      <span class="meter-text">{text}</span>
    </span>
  )
}

export function Badge({ ok, children }: { ok: boolean | 'warn'; children: ComponentChildren }) {
  return <span class={`badge ${ok === 'warn' ? 'warn' : ok ? 'ok' : 'bad'}`}>{children}</span>
}

/** A secret shown once, with a copy button. */
export function SecretOnce({ label, value, onDone }: { label: string; value: string; onDone(): void }) {
  return (
    <div class="secret" role="status">
      <p>
        <strong>{label}</strong> — shown only now: copy it and keep it safe.
      </p>
      <code class="secret-value" data-testid="secret-value">
        {value}
      </code>
      <div class="row">
        <button type="button" onClick={() => void navigator.clipboard?.writeText(value)}>
          Copy
        </button>
        <button type="button" onClick={onDone}>
          I have saved it
        </button>
      </div>
    </div>
  )
}

/** A scrollable table with a header row of `columns`; `children` are its body rows. */
export function DataTable({
  columns,
  testId,
  children,
}: {
  columns: readonly string[]
  testId?: string
  children: ComponentChildren
}) {
  return (
    <div class="table-wrap">
      <table data-testid={testId}>
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c} scope="col">
                {c}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  )
}

/** A one-row form whose submit runs `onSubmit` instead of navigating. */
export function RowForm({ onSubmit, children }: { onSubmit(): void; children: ComponentChildren }) {
  return (
    <form
      class="row"
      onSubmit={(e) => {
        e.preventDefault()
        onSubmit()
      }}
    >
      {children}
    </form>
  )
}
