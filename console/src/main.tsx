/** The console's entry: sign-in, navigation and the hash router (`#/buckets/<id>` …). */
import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { AdminClient, TOKEN_STORAGE_KEY } from './api.ts'
import { BucketPage, BucketsPage } from './pages/buckets.tsx'
import { ObjectsPage } from './pages/objects.tsx'
import { KeyPage, KeysPage } from './pages/keys.tsx'
import { LayoutPage } from './pages/layout.tsx'
import { MetricsPage } from './pages/metrics.tsx'
import { OverviewPage } from './pages/overview.tsx'
import { TokensPage } from './pages/tokens.tsx'
import { WorkersPage } from './pages/workers.tsx'
import { App, type AppContext, ErrorBox, errorText } from './ui.tsx'

interface ConsoleConfig {
  region: string
}

const NAV = [
  ['overview', 'Cluster'],
  ['layout', 'Layout'],
  ['buckets', 'Buckets'],
  ['keys', 'Keys'],
  ['tokens', 'Admin tokens'],
  ['workers', 'Workers'],
  ['metrics', 'Metrics'],
] as const

function useHash(): string {
  const [hash, setHash] = useState(location.hash)
  useEffect(() => {
    const on = () => setHash(location.hash)
    addEventListener('hashchange', on)
    return () => removeEventListener('hashchange', on)
  }, [])
  return hash
}

function Route({ hash }: { hash: string }) {
  const [path, qs] = hash.replace(/^#\/?/, '').split('?') as [string, string | undefined]
  const parts = path.split('/').map((p) => decodeURIComponent(p))
  const query = new URLSearchParams(qs ?? '')
  switch (parts[0]) {
    case '':
    case 'overview':
      return <OverviewPage />
    case 'layout':
      return <LayoutPage />
    case 'buckets':
      if (parts[1] === undefined) return <BucketsPage />
      if (parts[2] === 'objects') return <ObjectsPage bucketId={parts[1]} prefix={query.get('prefix') ?? ''} />
      return <BucketPage id={parts[1]} />
    case 'keys':
      return parts[1] === undefined ? <KeysPage /> : <KeyPage id={parts[1]} />
    case 'tokens':
      return <TokensPage />
    case 'workers':
      return <WorkersPage />
    case 'metrics':
      return <MetricsPage />
    default:
      return <p role="alert">No page here.</p>
  }
}

function SignIn({ onSignedIn }: { onSignedIn(token: string): void }) {
  const [token, setToken] = useState('')
  const [error, setError] = useState<unknown>(undefined)
  const [busy, setBusy] = useState(false)
  const submit = async (e: Event) => {
    e.preventDefault()
    setBusy(true)
    setError(undefined)
    try {
      // Any authenticated call tells whether the token is valid; this one needs no scope beyond itself.
      await new AdminClient(token.trim()).call('GetCurrentAdminTokenInfo')
      onSignedIn(token.trim())
    } catch (err) {
      setError(err)
    } finally {
      setBusy(false)
    }
  }
  return (
    <main class="signin">
      <h1>Garage console</h1>
      <form onSubmit={submit} class="card">
        <label for="token">Admin token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="current-password"
          required
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
        />
        <p class="hint">The token stays in this tab's session storage and is sent in request headers only.</p>
        <button type="submit" disabled={busy || token.trim() === ''}>
          Sign in
        </button>
        <ErrorBox error={error} />
      </form>
    </main>
  )
}

function Shell() {
  const [token, setToken] = useState<string | null>(() => sessionStorage.getItem(TOKEN_STORAGE_KEY))
  const [config, setConfig] = useState<ConsoleConfig | undefined>(undefined)
  const [configError, setConfigError] = useState<unknown>(undefined)
  const [menuOpen, setMenuOpen] = useState(false)
  const hash = useHash()
  useEffect(() => {
    fetch('config.json')
      .then(async (r) => {
        if (!r.ok) throw new Error(`config.json: HTTP ${r.status}`)
        setConfig((await r.json()) as ConsoleConfig)
      })
      .catch(setConfigError)
  }, [])
  useEffect(() => setMenuOpen(false), [hash])
  const signOut = () => {
    sessionStorage.removeItem(TOKEN_STORAGE_KEY)
    setToken(null)
  }
  if (configError !== undefined) return <p role="alert">Cannot load the console: {errorText(configError)}</p>
  if (config === undefined) return <p>Loading…</p>
  if (token === null) {
    return (
      <SignIn
        onSignedIn={(t) => {
          sessionStorage.setItem(TOKEN_STORAGE_KEY, t)
          setToken(t)
        }}
      />
    )
  }
  const api = new AdminClient(token)
  const ctx: AppContext = {
    api,
    region: config.region,
    navigate: (h) => {
      location.hash = h
    },
    signOut,
  }
  const current = hash.replace(/^#\/?/, '').split(/[/?]/)[0] || 'overview'
  return (
    <App.Provider value={ctx}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Garage</span>
        <button
          type="button"
          class="menu-toggle"
          aria-expanded={menuOpen}
          aria-controls="nav"
          onClick={() => setMenuOpen(!menuOpen)}
        >
          Menu
        </button>
        <nav id="nav" aria-label="Main" class={menuOpen ? 'open' : ''}>
          <ul>
            {NAV.map(([id, label]) => (
              <li key={id}>
                <a href={`#/${id}`} aria-current={current === id ? 'page' : undefined}>
                  {label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <button type="button" class="signout" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        <Route hash={hash} />
      </main>
    </App.Provider>
  )
}

render(<Shell />, document.getElementById('app') as HTMLElement)
