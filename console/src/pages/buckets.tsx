/** Buckets: the list and creation; one bucket's usage, aliases, quotas, website and key permissions. */
import { useState } from 'preact/hooks'
import type { ApiBucketKeyPerm, GetBucketInfoResponse } from '../../../lib/api/admin/contract.ts'
import { formatBytes, formatDate, parseBytes, shortId } from '../format.ts'
import { DataTable, ErrorBox, RowForm, Section, useAction, useApp, useLoad } from '../ui.tsx'

export const bucketLabel = (b: { globalAliases: string[]; id: string }): string => b.globalAliases[0] ?? shortId(b.id)

export function BucketsPage() {
  const { api, navigate } = useApp()
  const list = useLoad(() => api.call('ListBuckets'), [api])
  const [name, setName] = useState('')
  const create = useAction()
  return (
    <>
      <h1>Buckets</h1>
      <Section title="Create a bucket">
        <RowForm
          onSubmit={() => {
            void create.run(async () => {
              const b = await api.call('CreateBucket', { body: { globalAlias: name.trim() } })
              setName('')
              navigate(`#/buckets/${b.id}`)
            })
          }}
        >
          <label for="bucket-name">Name (global alias)</label>
          <input id="bucket-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
          <button type="submit" disabled={create.busy}>
            Create bucket
          </button>
        </RowForm>
        <ErrorBox error={create.error} />
      </Section>
      <Section title="All buckets">
        <ErrorBox error={list.error} />
        <DataTable testId="buckets" columns={['Bucket', 'Local aliases', 'Created', 'Id']}>
          {(list.data ?? []).map((b) => (
            <tr key={b.id}>
              <th scope="row">
                <a href={`#/buckets/${b.id}`}>{bucketLabel(b)}</a>
                {b.globalAliases.length > 1 && <div class="sub">also {b.globalAliases.slice(1).join(', ')}</div>}
              </th>
              <td>{b.localAliases.map((l) => `${l.alias} (${shortId(l.accessKeyId, 8)})`).join(', ') || '—'}</td>
              <td>{formatDate(b.created)}</td>
              <td>
                <code>{shortId(b.id)}</code>
              </td>
            </tr>
          ))}
        </DataTable>
        {list.data?.length === 0 && <p>No buckets yet.</p>}
      </Section>
    </>
  )
}

function PermBoxes({ perm, onChange, label }: { perm: ApiBucketKeyPerm; onChange(p: ApiBucketKeyPerm): void; label: string }) {
  return (
    <fieldset class="perms">
      <legend class="sr-only">Permissions of {label}</legend>
      {(['read', 'write', 'owner'] as const).map((k) => (
        <label key={k}>
          <input type="checkbox" checked={perm[k]} onChange={(e) => onChange({ ...perm, [k]: e.currentTarget.checked })} /> {k}
        </label>
      ))}
    </fieldset>
  )
}

export function BucketPage({ id }: { id: string }) {
  const { api, navigate } = useApp()
  const info = useLoad(() => api.call('GetBucketInfo', { query: { id } }), [api, id])
  const keys = useLoad(() => api.call('ListKeys'), [api])
  const act = useAction()
  const [alias, setAlias] = useState('')
  const [grantKey, setGrantKey] = useState('')
  const b = info.data
  const apply = (f: () => Promise<GetBucketInfoResponse | null>) =>
    act.run(async () => {
      await f()
      info.reload()
    })
  const setPerm = (accessKeyId: string, before: ApiBucketKeyPerm, after: ApiBucketKeyPerm) =>
    apply(async () => {
      const allow = { read: after.read && !before.read, write: after.write && !before.write, owner: after.owner && !before.owner }
      const deny = { read: !after.read && before.read, write: !after.write && before.write, owner: !after.owner && before.owner }
      if (allow.read || allow.write || allow.owner)
        await api.call('AllowBucketKey', { body: { bucketId: id, accessKeyId, permissions: allow } })
      if (deny.read || deny.write || deny.owner)
        await api.call('DenyBucketKey', { body: { bucketId: id, accessKeyId, permissions: deny } })
      return null
    })
  return (
    <>
      <p class="crumbs">
        <a href="#/buckets">Buckets</a> /
      </p>
      <h1>Bucket {b === undefined ? shortId(id) : bucketLabel(b)}</h1>
      <ErrorBox error={info.error} />
      <ErrorBox error={act.error} />
      {b !== undefined && (
        <>
          <div class="row">
            <a class="button" href={`#/buckets/${b.id}/objects`}>
              Browse objects
            </a>
            <button
              type="button"
              class="danger"
              onClick={() => {
                if (confirm(`Delete bucket ${bucketLabel(b)}? It must be empty.`)) {
                  void act.run(async () => {
                    await api.call('DeleteBucket', { query: { id: b.id } })
                    navigate('#/buckets')
                  })
                }
              }}
            >
              Delete bucket
            </button>
          </div>
          <Section title="Usage">
            <dl class="stats" data-testid="usage">
              <div>
                <dt>Objects</dt>
                <dd>{b.objects}</dd>
              </div>
              <div>
                <dt>Size</dt>
                <dd>{formatBytes(b.bytes)}</dd>
              </div>
              <div>
                <dt>Unfinished uploads</dt>
                <dd>{b.unfinishedUploads}</dd>
              </div>
              <div>
                <dt>Unfinished multipart</dt>
                <dd>
                  {b.unfinishedMultipartUploads} ({formatBytes(b.unfinishedMultipartUploadBytes)})
                </dd>
              </div>
              <div>
                <dt>Created</dt>
                <dd>{formatDate(b.created)}</dd>
              </div>
              <div>
                <dt>Id</dt>
                <dd>
                  <code>{b.id}</code>
                </dd>
              </div>
            </dl>
          </Section>
          <Section title="Aliases">
            <ul class="chips">
              {b.globalAliases.map((a) => (
                <li key={a}>
                  {a}{' '}
                  <button
                    type="button"
                    aria-label={`Remove alias ${a}`}
                    onClick={() => void apply(() => api.call('RemoveBucketAlias', { body: { bucketId: b.id, globalAlias: a } }))}
                  >
                    ×
                  </button>
                </li>
              ))}
              {b.keys.flatMap((k) =>
                k.bucketLocalAliases.map((a) => (
                  <li key={`${k.accessKeyId}/${a}`}>
                    {a} <span class="sub">(local to {k.name || shortId(k.accessKeyId, 8)})</span>{' '}
                    <button
                      type="button"
                      aria-label={`Remove local alias ${a}`}
                      onClick={() =>
                        void apply(() =>
                          api.call('RemoveBucketAlias', { body: { bucketId: b.id, localAlias: a, accessKeyId: k.accessKeyId } }),
                        )
                      }
                    >
                      ×
                    </button>
                  </li>
                )),
              )}
            </ul>
            <RowForm
              onSubmit={() => {
                void apply(async () => {
                  const r = await api.call('AddBucketAlias', { body: { bucketId: b.id, globalAlias: alias.trim() } })
                  setAlias('')
                  return r
                })
              }}
            >
              <label for="alias">New global alias</label>
              <input id="alias" required value={alias} onInput={(e) => setAlias(e.currentTarget.value)} />
              <button type="submit" disabled={act.busy}>
                Add alias
              </button>
            </RowForm>
          </Section>
          <QuotasForm
            b={b}
            onSave={(quotas) => apply(() => api.call('UpdateBucket', { query: { id: b.id }, body: { quotas } }))}
          />
          <WebsiteForm
            b={b}
            onSave={(websiteAccess) => apply(() => api.call('UpdateBucket', { query: { id: b.id }, body: { websiteAccess } }))}
          />
          <Section title="Key permissions">
            <DataTable testId="bucket-keys" columns={['Key', 'Permissions']}>
              {b.keys.map((k) => (
                <tr key={k.accessKeyId}>
                  <th scope="row">
                    <a href={`#/keys/${k.accessKeyId}`}>{k.name || k.accessKeyId}</a>
                    <div class="sub">
                      <code>{k.accessKeyId}</code>
                    </div>
                  </th>
                  <td>
                    <PermBoxes
                      label={k.name || k.accessKeyId}
                      perm={k.permissions}
                      onChange={(p) => void setPerm(k.accessKeyId, k.permissions, p)}
                    />
                  </td>
                </tr>
              ))}
            </DataTable>
            <RowForm
              onSubmit={() => {
                void apply(() =>
                  api.call('AllowBucketKey', {
                    body: { bucketId: b.id, accessKeyId: grantKey, permissions: { read: true, write: true, owner: false } },
                  }),
                )
              }}
            >
              <label for="grant-key">Give a key read and write access</label>
              <select id="grant-key" required value={grantKey} onChange={(e) => setGrantKey(e.currentTarget.value)}>
                <option value="">Choose a key…</option>
                {(keys.data ?? [])
                  .filter((k) => !b.keys.some((bk) => bk.accessKeyId === k.id))
                  .map((k) => (
                    <option key={k.id} value={k.id}>
                      {k.name || k.id} ({k.id})
                    </option>
                  ))}
              </select>
              <button type="submit" disabled={act.busy || grantKey === ''}>
                Allow
              </button>
            </RowForm>
          </Section>
        </>
      )}
    </>
  )
}

function QuotasForm({
  b,
  onSave,
}: {
  b: GetBucketInfoResponse
  onSave(q: { maxSize: number | null; maxObjects: number | null }): Promise<void>
}) {
  const [size, setSize] = useState(b.quotas.maxSize === null ? '' : String(b.quotas.maxSize))
  const [objects, setObjects] = useState(b.quotas.maxObjects === null ? '' : String(b.quotas.maxObjects))
  const [invalid, setInvalid] = useState<string | undefined>(undefined)
  return (
    <Section title="Quotas">
      <p class="hint">
        Now: {b.quotas.maxSize === null ? 'no size limit' : `at most ${formatBytes(b.quotas.maxSize)}`},{' '}
        {b.quotas.maxObjects === null ? 'no object limit' : `at most ${b.quotas.maxObjects} objects`}.
      </p>
      <RowForm
        onSubmit={() => {
          const maxSize = size.trim() === '' ? null : parseBytes(size)
          const maxObjects = objects.trim() === '' ? null : Number(objects)
          if (maxSize === undefined) return setInvalid('Maximum size: a size such as 10G, 500MiB or 1000000')
          if (maxObjects !== null && !Number.isSafeInteger(maxObjects)) return setInvalid('Maximum objects: a whole number')
          setInvalid(undefined)
          void onSave({ maxSize, maxObjects })
        }}
      >
        <label for="q-size">Maximum size</label>
        <input id="q-size" placeholder="none" value={size} onInput={(e) => setSize(e.currentTarget.value)} />
        <label for="q-objects">Maximum objects</label>
        <input
          id="q-objects"
          inputMode="numeric"
          placeholder="none"
          value={objects}
          onInput={(e) => setObjects(e.currentTarget.value)}
        />
        <button type="submit">Save quotas</button>
      </RowForm>
      {invalid !== undefined && (
        <p class="error" role="alert">
          {invalid}
        </p>
      )}
    </Section>
  )
}

function WebsiteForm({
  b,
  onSave,
}: {
  b: GetBucketInfoResponse
  onSave(w: { enabled: boolean; indexDocument?: string; errorDocument?: string }): Promise<void>
}) {
  const [enabled, setEnabled] = useState(b.websiteAccess)
  const [index, setIndex] = useState(b.websiteConfig?.indexDocument ?? 'index.html')
  const [error, setError] = useState(b.websiteConfig?.errorDocument ?? '')
  return (
    <Section title="Website">
      <RowForm
        onSubmit={() => {
          void onSave(
            enabled
              ? { enabled, indexDocument: index, ...(error.trim() === '' ? {} : { errorDocument: error.trim() }) }
              : { enabled },
          )
        }}
      >
        <label>
          <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.currentTarget.checked)} /> Serve as a website
        </label>
        <label for="w-index">Index document</label>
        <input id="w-index" value={index} disabled={!enabled} onInput={(e) => setIndex(e.currentTarget.value)} />
        <label for="w-error">Error document</label>
        <input
          id="w-error"
          value={error}
          disabled={!enabled}
          placeholder="none"
          onInput={(e) => setError(e.currentTarget.value)}
        />
        <button type="submit">Save website</button>
      </RowForm>
    </Section>
  )
}
