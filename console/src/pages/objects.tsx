/**
 * The object browser: prefix navigation, upload with progress (multipart for large files),
 * download, delete, metadata, presigned links and versions. S3 requests are signed with an access
 * key of the bucket the operator picks (see s3.ts).
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import { formatBytes, formatDate } from '../format.ts'
import { ConsoleS3, type ObjectEntry, type VersionEntry } from '../s3.ts'
import { DataTable, ErrorBox, RowForm, Section, useAction, useApp, useLoad } from '../ui.tsx'
import { bucketLabel } from './buckets.tsx'

interface Upload {
  name: string
  sent: number
  total: number
  state: 'running' | 'done' | 'failed'
  error?: string
}

export function ObjectsPage({ bucketId, prefix }: { bucketId: string; prefix: string }) {
  const { api, region } = useApp()
  const info = useLoad(() => api.call('GetBucketInfo', { query: { id: bucketId } }), [api, bucketId])
  const usable = (info.data?.keys ?? []).filter((k) => k.permissions.read || k.permissions.owner)
  const [keyId, setKeyId] = useState<string | undefined>(undefined)
  const chosen = keyId ?? usable[0]?.accessKeyId
  const s3 = useLoad(async () => {
    if (chosen === undefined) return undefined
    const k = await api.call('GetKeyInfo', { query: { id: chosen, showSecretKey: 'true' } })
    if (k.secretAccessKey === null) throw new Error('the node did not return the secret of this key')
    return new ConsoleS3({
      host: location.host,
      origin: location.origin,
      region,
      prefix: '/ui/s3',
      key: { accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey },
    })
  }, [api, chosen, region])
  const b = info.data
  const bucketName = b?.globalAliases[0]
  return (
    <>
      <p class="crumbs">
        <a href="#/buckets">Buckets</a> / <a href={`#/buckets/${bucketId}`}>{b === undefined ? '…' : bucketLabel(b)}</a> /
      </p>
      <h1>Objects</h1>
      <ErrorBox error={info.error} />
      {b !== undefined && bucketName === undefined && (
        <p role="alert">This bucket has no global alias: give it one on its page to browse it.</p>
      )}
      {b !== undefined && usable.length === 0 && (
        <p role="alert">
          No access key may read this bucket: allow one on the <a href={`#/buckets/${bucketId}`}>bucket's page</a>.
        </p>
      )}
      {usable.length > 0 && (
        <div class="row">
          <label for="as-key">Act as key</label>
          <select id="as-key" value={chosen} onChange={(e) => setKeyId(e.currentTarget.value)}>
            {usable.map((k) => (
              <option key={k.accessKeyId} value={k.accessKeyId}>
                {k.name || k.accessKeyId} ({['read', 'write', 'owner'].filter((p) => k.permissions[p as 'read']).join(', ')})
              </option>
            ))}
          </select>
        </div>
      )}
      <ErrorBox error={s3.error} />
      {s3.data !== undefined && bucketName !== undefined && (
        <Browser s3={s3.data} bucket={bucketName} bucketId={bucketId} prefix={prefix} />
      )}
    </>
  )
}

function Browser({ s3, bucket, bucketId, prefix }: { s3: ConsoleS3; bucket: string; bucketId: string; prefix: string }) {
  const { navigate } = useApp()
  const [pages, setPages] = useState<string[]>([])
  const token = pages[pages.length - 1]
  const listing = useLoad(() => s3.list(bucket, prefix, token), [s3, bucket, prefix, token])
  const versioning = useLoad(() => s3.versioning(bucket), [s3, bucket])
  const [uploads, setUploads] = useState<Upload[]>([])
  const [selected, setSelected] = useState<string | undefined>(undefined)
  const fileInput = useRef<HTMLInputElement>(null)
  const act = useAction()
  useEffect(() => {
    setPages([])
    setSelected(undefined)
  }, [prefix, bucket])
  const go = (p: string) => navigate(`#/buckets/${bucketId}/objects${p === '' ? '' : `?prefix=${encodeURIComponent(p)}`}`)
  const crumbs = useMemo(() => {
    const parts = prefix.split('/').filter((x) => x !== '')
    return parts.map((name, i) => ({ name, prefix: `${parts.slice(0, i + 1).join('/')}/` }))
  }, [prefix])

  const upload = async (files: FileList) => {
    for (const file of Array.from(files)) {
      const name = prefix + file.name
      const update = (u: Partial<Upload>) => setUploads((all) => all.map((x) => (x.name === name ? { ...x, ...u } : x)))
      setUploads((all) => [...all.filter((x) => x.name !== name), { name, sent: 0, total: file.size, state: 'running' }])
      try {
        await s3.upload(bucket, name, file, (sent) => update({ sent }))
        update({ state: 'done', sent: file.size })
      } catch (err) {
        update({ state: 'failed', error: (err as Error).message })
      }
    }
    listing.reload()
  }

  const download = (o: ObjectEntry) =>
    act.run(async () => {
      const name = o.key.slice(o.key.lastIndexOf('/') + 1)
      const url = await s3.presign(bucket, o.key, { expiresSecs: 300, download: name })
      const a = document.createElement('a')
      a.href = url
      a.download = name
      document.body.append(a)
      a.click()
      a.remove()
    })

  const l = listing.data
  return (
    <>
      <nav aria-label="Prefix" class="crumbs">
        <button type="button" class="link" onClick={() => go('')}>
          {bucket}
        </button>
        {crumbs.map((c) => (
          <span key={c.prefix}>
            {' / '}
            <button type="button" class="link" onClick={() => go(c.prefix)}>
              {c.name}
            </button>
          </span>
        ))}
      </nav>
      <Section title="Upload">
        <div class="row">
          <label for="upload-file">Files to upload into {prefix === '' ? 'the bucket root' : prefix}</label>
          <input id="upload-file" ref={fileInput} type="file" multiple />
          <button
            type="button"
            onClick={() => {
              const files = fileInput.current?.files
              if (files !== null && files !== undefined && files.length > 0) void upload(files)
            }}
          >
            Upload
          </button>
        </div>
        <ul class="uploads" aria-live="polite">
          {uploads.map((u) => (
            <li key={u.name} data-state={u.state}>
              <label>
                {u.name}: {u.state === 'failed' ? `failed (${u.error})` : u.state === 'done' ? 'uploaded' : 'uploading'}
                <progress max={u.total || 1} value={u.state === 'done' ? u.total || 1 : u.sent} />
              </label>
              <span class="sub">
                {formatBytes(u.sent)} / {formatBytes(u.total)}
              </span>
            </li>
          ))}
        </ul>
      </Section>
      <Section title={`Contents${versioning.data === 'Enabled' ? ' (versioned bucket)' : ''}`}>
        <ErrorBox error={listing.error} />
        <ErrorBox error={versioning.error} />
        <ErrorBox error={act.error} />
        <DataTable testId="objects" columns={['Name', 'Size', 'Modified', 'Actions']}>
          {l?.prefixes.map((p) => (
            <tr key={p}>
              <th scope="row">
                <button type="button" class="link" onClick={() => go(p)}>
                  📁 {p.slice(prefix.length)}
                </button>
              </th>
              <td>—</td>
              <td>—</td>
              <td />
            </tr>
          ))}
          {l?.objects.map((o) => (
            <tr key={o.key} data-key={o.key}>
              <th scope="row">{o.key.slice(prefix.length)}</th>
              <td>{formatBytes(o.size)}</td>
              <td>{formatDate(o.lastModified)}</td>
              <td class="actions">
                <button type="button" onClick={() => void download(o)} aria-label={`Download ${o.key}`}>
                  Download
                </button>
                <button type="button" onClick={() => setSelected(o.key)} aria-label={`Details of ${o.key}`}>
                  Details
                </button>
                <button
                  type="button"
                  class="danger"
                  aria-label={`Delete ${o.key}`}
                  onClick={() => {
                    if (confirm(`Delete ${o.key}?`)) {
                      void act.run(async () => {
                        await s3.delete(bucket, o.key)
                        if (selected === o.key) setSelected(undefined)
                        listing.reload()
                      })
                    }
                  }}
                >
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </DataTable>
        {l !== undefined && l.prefixes.length === 0 && l.objects.length === 0 && <p>Nothing here.</p>}
        <div class="row">
          {pages.length > 0 && (
            <button type="button" onClick={() => setPages(pages.slice(0, -1))}>
              Previous page
            </button>
          )}
          {l?.nextToken !== undefined && (
            <button type="button" onClick={() => setPages([...pages, l.nextToken as string])}>
              Next page
            </button>
          )}
        </div>
      </Section>
      {selected !== undefined && (
        <ObjectDetails
          key={selected}
          s3={s3}
          bucket={bucket}
          objectKey={selected}
          versioned={versioning.data === 'Enabled' || versioning.data === 'Suspended'}
          onClose={() => setSelected(undefined)}
        />
      )}
    </>
  )
}

function ObjectDetails({
  s3,
  bucket,
  objectKey,
  versioned,
  onClose,
}: {
  s3: ConsoleS3
  bucket: string
  objectKey: string
  versioned: boolean
  onClose(): void
}) {
  const head = useLoad(() => s3.head(bucket, objectKey), [s3, bucket, objectKey])
  const versions = useLoad(
    async (): Promise<VersionEntry[]> => (versioned ? s3.versions(bucket, objectKey) : []),
    [s3, bucket, objectKey, versioned],
  )
  const [expires, setExpires] = useState('3600')
  const [link, setLink] = useState<string | undefined>(undefined)
  const act = useAction()
  return (
    <Section
      title={`Object ${objectKey}`}
      actions={
        <button type="button" onClick={onClose}>
          Close
        </button>
      }
    >
      <ErrorBox error={head.error} />
      <h3>Metadata</h3>
      <dl class="kv" data-testid="object-metadata">
        {(head.data ?? []).map(([k, v]) => (
          <div key={k}>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </div>
        ))}
      </dl>
      <h3>Presigned link</h3>
      <RowForm
        onSubmit={() => {
          void act.run(async () => setLink(await s3.presign(bucket, objectKey, { expiresSecs: Number(expires) })))
        }}
      >
        <label for="expires">Valid for</label>
        <select id="expires" value={expires} onChange={(e) => setExpires(e.currentTarget.value)}>
          <option value="900">15 minutes</option>
          <option value="3600">1 hour</option>
          <option value="86400">1 day</option>
          <option value="604800">7 days</option>
        </select>
        <button type="submit">Create link</button>
      </RowForm>
      <ErrorBox error={act.error} />
      {link !== undefined && (
        <p>
          <label for="presigned">Link (signed with the chosen key, through this node's admin address)</label>
          <input id="presigned" readOnly value={link} onFocus={(e) => e.currentTarget.select()} class="wide" />
        </p>
      )}
      {versioned && (
        <>
          <h3>Versions</h3>
          <ErrorBox error={versions.error} />
          <DataTable testId="versions" columns={['Version', 'Size', 'Modified', 'Actions']}>
            {(versions.data ?? []).map((v) => (
              <tr key={v.versionId}>
                <th scope="row">
                  <code>{v.versionId}</code> {v.isLatest && <span class="badge ok">latest</span>}
                  {v.deleteMarker && <span class="badge warn">delete marker</span>}
                </th>
                <td>{v.deleteMarker ? '—' : formatBytes(v.size)}</td>
                <td>{formatDate(v.lastModified)}</td>
                <td class="actions">
                  {!v.deleteMarker && (
                    <button
                      type="button"
                      onClick={() =>
                        void act.run(async () => {
                          location.href = await s3.presign(bucket, objectKey, {
                            expiresSecs: 300,
                            versionId: v.versionId,
                            download: objectKey.slice(objectKey.lastIndexOf('/') + 1),
                          })
                        })
                      }
                    >
                      Download
                    </button>
                  )}
                  <button
                    type="button"
                    class="danger"
                    onClick={() =>
                      void act.run(async () => {
                        await s3.delete(bucket, objectKey, v.versionId)
                        versions.reload()
                      })
                    }
                  >
                    Delete version
                  </button>
                </td>
              </tr>
            ))}
          </DataTable>
        </>
      )}
    </Section>
  )
}
