/** Admin API tokens: the current one, the list, creation (secret shown once), deletion. */
import { useState } from 'preact/hooks'
import type { CreateAdminTokenResponse } from '../../../lib/api/admin/contract.ts'
import { formatDate } from '../format.ts'
import { Badge, DataTable, ErrorBox, RowForm, SecretOnce, Section, useAction, useApp, useLoad } from '../ui.tsx'

export function TokensPage() {
  const { api } = useApp()
  const current = useLoad(() => api.call('GetCurrentAdminTokenInfo'), [api])
  const list = useLoad(() => api.call('ListAdminTokens'), [api])
  const [name, setName] = useState('')
  const [scope, setScope] = useState('*')
  const [days, setDays] = useState('')
  const [created, setCreated] = useState<CreateAdminTokenResponse | undefined>(undefined)
  const act = useAction()
  return (
    <>
      <h1>Admin tokens</h1>
      <ErrorBox error={current.error} />
      {current.data !== undefined && (
        <p>
          Signed in with <strong>{current.data.name}</strong> (scope: {current.data.scope.join(', ')}).
        </p>
      )}
      <Section title="Create a token">
        <RowForm
          onSubmit={() => {
            void act.run(async () => {
              const n = Number(days)
              const expiration = days.trim() === '' ? undefined : new Date(Date.now() + n * 86_400_000).toISOString()
              setCreated(
                await api.call('CreateAdminToken', {
                  body: {
                    name: name.trim(),
                    scope: scope
                      .split(',')
                      .map((s) => s.trim())
                      .filter((s) => s !== ''),
                    ...(expiration === undefined ? { neverExpires: true } : { expiration }),
                  },
                }),
              )
              setName('')
              list.reload()
            })
          }}
        >
          <label for="t-name">Name</label>
          <input id="t-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
          <label for="t-scope">Scope (endpoint names, comma-separated; * for all)</label>
          <input id="t-scope" value={scope} onInput={(e) => setScope(e.currentTarget.value)} />
          <label for="t-days">Expires in (days; empty: never)</label>
          <input id="t-days" inputMode="numeric" value={days} onInput={(e) => setDays(e.currentTarget.value)} />
          <button type="submit" disabled={act.busy}>
            Create token
          </button>
        </RowForm>
        <ErrorBox error={act.error} />
        {created !== undefined && (
          <SecretOnce label="Admin token" value={created.secretToken} onDone={() => setCreated(undefined)} />
        )}
      </Section>
      <Section title="Tokens">
        <ErrorBox error={list.error} />
        <DataTable testId="tokens" columns={['Name', 'Scope', 'Created', 'Expires', 'Actions']}>
          {(list.data ?? []).map((t) => (
            <tr key={t.id ?? t.name}>
              <th scope="row">{t.name}</th>
              <td>{t.scope.join(', ')}</td>
              <td>{formatDate(t.created)}</td>
              <td>
                {t.expired ? <Badge ok={false}>expired</Badge> : t.expiration === null ? 'never' : formatDate(t.expiration)}
              </td>
              <td>
                {t.id !== null && (
                  <button
                    type="button"
                    class="danger"
                    aria-label={`Delete token ${t.name}`}
                    onClick={() => {
                      if (confirm(`Delete token ${t.name}?`)) {
                        void act.run(async () => {
                          await api.call('DeleteAdminToken', { query: { id: t.id as string } })
                          list.reload()
                        })
                      }
                    }}
                  >
                    Delete
                  </button>
                )}
              </td>
            </tr>
          ))}
        </DataTable>
      </Section>
    </>
  )
}
