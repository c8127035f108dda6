/** Access keys: list and create (the secret shown once); one key's name, permissions, expiry and buckets. */
import { useState } from 'preact/hooks'
import type { GetKeyInfoResponse } from '../../../lib/api/admin/contract.ts'
import { formatDate, shortId } from '../format.ts'
import { Badge, DataTable, ErrorBox, RowForm, SecretOnce, Section, useAction, useApp, useLoad } from '../ui.tsx'

export function KeysPage() {
  const { api } = useApp()
  const list = useLoad(() => api.call('ListKeys'), [api])
  const [name, setName] = useState('')
  const [created, setCreated] = useState<GetKeyInfoResponse | undefined>(undefined)
  const create = useAction()
  return (
    <>
      <h1>Access keys</h1>
      <Section title="Create a key">
        <RowForm
          onSubmit={() => {
            void create.run(async () => {
              setCreated(await api.call('CreateKey', { body: { name: name.trim() } }))
              setName('')
              list.reload()
            })
          }}
        >
          <label for="key-name">Name</label>
          <input id="key-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
          <button type="submit" disabled={create.busy}>
            Create key
          </button>
        </RowForm>
        <ErrorBox error={create.error} />
        {created !== undefined && created.secretAccessKey !== null && (
          <div data-testid="created-key">
            <p>
              Access key id: <code data-testid="created-key-id">{created.accessKeyId}</code> —{' '}
              <a href={`#/keys/${created.accessKeyId}`}>open</a>
            </p>
            <SecretOnce label="Secret access key" value={created.secretAccessKey} onDone={() => setCreated(undefined)} />
          </div>
        )}
      </Section>
      <Section title="All keys">
        <ErrorBox error={list.error} />
        <DataTable testId="keys" columns={['Name', 'Access key id', 'Created', 'Expires']}>
          {(list.data ?? []).map((k) => (
            <tr key={k.id}>
              <th scope="row">
                <a href={`#/keys/${k.id}`}>{k.name || '(no name)'}</a>
              </th>
              <td>
                <code>{k.id}</code>
              </td>
              <td>{formatDate(k.created)}</td>
              <td>
                {k.expired ? <Badge ok={false}>expired</Badge> : k.expiration === null ? 'never' : formatDate(k.expiration)}
              </td>
            </tr>
          ))}
        </DataTable>
      </Section>
    </>
  )
}

/** `2026-01-02T03:04` (an `<input type="datetime-local">` value, UTC) ↔ RFC 3339. */
const toLocalInput = (iso: string | null): string => (iso === null ? '' : iso.slice(0, 16))

export function KeyPage({ id }: { id: string }) {
  const { api, navigate } = useApp()
  const info = useLoad(() => api.call('GetKeyInfo', { query: { id } }), [api, id])
  const buckets = useLoad(() => api.call('ListBuckets'), [api])
  const act = useAction()
  const [name, setName] = useState<string | undefined>(undefined)
  const [expiry, setExpiry] = useState<string | undefined>(undefined)
  const [grant, setGrant] = useState('')
  const k = info.data
  const update = (f: () => Promise<unknown>) =>
    act.run(async () => {
      await f()
      info.reload()
    })
  return (
    <>
      <p class="crumbs">
        <a href="#/keys">Keys</a> /
      </p>
      <h1>Key {k?.name || shortId(id)}</h1>
      <ErrorBox error={info.error} />
      <ErrorBox error={act.error} />
      {k !== undefined && (
        <>
          <Section title="Key">
            <dl class="kv">
              <div>
                <dt>Access key id</dt>
                <dd>
                  <code>{k.accessKeyId}</code>
                </dd>
              </div>
              <div>
                <dt>Created</dt>
                <dd>{formatDate(k.created)}</dd>
              </div>
              <div>
                <dt>Expires</dt>
                <dd>{k.expired ? 'expired' : k.expiration === null ? 'never' : formatDate(k.expiration)}</dd>
              </div>
              <div>
                <dt>Secret</dt>
                <dd>shown only when the key is created</dd>
              </div>
            </dl>
            <RowForm
              onSubmit={() => {
                void update(() => api.call('UpdateKey', { query: { id }, body: { name: (name ?? k.name).trim() } }))
              }}
            >
              <label for="k-name">Name</label>
              <input id="k-name" value={name ?? k.name} onInput={(e) => setName(e.currentTarget.value)} />
              <button type="submit">Rename</button>
            </RowForm>
            <RowForm
              onSubmit={() => {
                const v = expiry ?? toLocalInput(k.expiration)
                void update(() =>
                  api.call('UpdateKey', {
                    query: { id },
                    body: v === '' ? { neverExpires: true } : { expiration: new Date(`${v}:00Z`).toISOString() },
                  }),
                )
              }}
            >
              <label for="k-expiry">Expires at (UTC; empty: never)</label>
              <input
                id="k-expiry"
                type="datetime-local"
                value={expiry ?? toLocalInput(k.expiration)}
                onInput={(e) => setExpiry(e.currentTarget.value)}
              />
              <button type="submit">Set expiry</button>
            </RowForm>
            <label class="row">
              <input
                type="checkbox"
                checked={k.permissions.createBucket}
                onChange={(e) => {
                  const on = e.currentTarget.checked
                  void update(() =>
                    api.call('UpdateKey', {
                      query: { id },
                      body: on ? { allow: { createBucket: true } } : { deny: { createBucket: true } },
                    }),
                  )
                }}
              />{' '}
              May create buckets
            </label>
          </Section>
          <Section title="Buckets">
            <DataTable columns={['Bucket', 'Read', 'Write', 'Owner']}>
              {k.buckets.map((b) => (
                <tr key={b.id}>
                  <th scope="row">
                    <a href={`#/buckets/${b.id}`}>{b.globalAliases[0] ?? b.localAliases[0] ?? shortId(b.id)}</a>
                  </th>
                  {(['read', 'write', 'owner'] as const).map((p) => (
                    <td key={p}>
                      <input
                        type="checkbox"
                        aria-label={`${p} on ${b.globalAliases[0] ?? b.id}`}
                        checked={b.permissions[p]}
                        onChange={(e) => {
                          const on = e.currentTarget.checked
                          void update(() =>
                            api.call(on ? 'AllowBucketKey' : 'DenyBucketKey', {
                              body: { bucketId: b.id, accessKeyId: id, permissions: { [p]: true } },
                            }),
                          )
                        }}
                      />
                    </td>
                  ))}
                </tr>
              ))}
            </DataTable>
            <RowForm
              onSubmit={() => {
                void update(() =>
                  api.call('AllowBucketKey', {
                    body: { bucketId: grant, accessKeyId: id, permissions: { read: true, write: true } },
                  }),
                )
              }}
            >
              <label for="grant-bucket">Give read and write access to</label>
              <select id="grant-bucket" value={grant} onChange={(e) => setGrant(e.currentTarget.value)}>
                <option value="">Choose a bucket…</option>
                {(buckets.data ?? [])
                  .filter((b) => !k.buckets.some((kb) => kb.id === b.id))
                  .map((b) => (
                    <option key={b.id} value={b.id}>
                      {b.globalAliases[0] ?? b.id}
                    </option>
                  ))}
              </select>
              <button type="submit" disabled={grant === ''}>
                Allow
              </button>
            </RowForm>
          </Section>
          <button
            type="button"
            class="danger"
            onClick={() => {
              if (confirm(`Delete key ${k.name || k.accessKeyId}?`)) {
                void act.run(async () => {
                  await api.call('DeleteKey', { query: { id } })
                  navigate('#/keys')
                })
              }
            }}
          >
            Delete key
          </button>
        </>
      )}
    </>
  )
}
