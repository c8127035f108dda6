/**
 * Layout editing: stage role changes (assign, change zone or capacity, remove), preview the
 * computed assignment and the partitions that move, apply or revert, and the history.
 */
import { useState } from 'preact/hooks'
import type { GetClusterLayoutResponse, NodeRoleChangeRequest } from '../../../lib/api/admin/contract.ts'
import { formatBytes, parseBytes, shortId } from '../format.ts'
import { layoutMoves } from '../layout-model.ts'
import { DataTable, ErrorBox, RowForm, Section, useAction, useApp, useLoad } from '../ui.tsx'
import { LayoutPicture } from './overview.tsx'

export function LayoutPage() {
  const { api } = useApp()
  const data = useLoad(async () => {
    const [layout, status, history] = await Promise.all([
      api.call('GetClusterLayout'),
      api.call('GetClusterStatus'),
      api.call('GetClusterLayoutHistory'),
    ])
    return { layout, status, history }
  }, [api])
  const act = useAction()
  const [preview, setPreview] = useState<
    { message: string[]; newLayout: GetClusterLayoutResponse } | { error: string } | undefined
  >(undefined)
  const [nodeId, setNodeId] = useState('')
  const [zone, setZone] = useState('')
  const [capacity, setCapacity] = useState('')
  const [gateway, setGateway] = useState(false)
  const [tags, setTags] = useState('')
  const [redundancy, setRedundancy] = useState<string | undefined>(undefined)
  const [invalid, setInvalid] = useState<string | undefined>(undefined)
  const [applied, setApplied] = useState<string[] | undefined>(undefined)
  const d = data.data
  const stage = (roles: NodeRoleChangeRequest[]) =>
    act.run(async () => {
      await api.call('UpdateClusterLayout', { body: { roles } })
      setPreview(undefined)
      data.reload()
    })
  const edit = (id: string) => {
    const r = d?.layout.roles.find((x) => x.id === id)
    setNodeId(id)
    setZone(r?.zone ?? '')
    setCapacity(r?.capacity === null || r?.capacity === undefined ? '' : String(r.capacity))
    setGateway(r !== undefined && r.capacity === null)
    setTags(r?.tags.join(', ') ?? '')
    document.getElementById('role-node')?.focus()
  }
  return (
    <>
      <h1>Cluster layout</h1>
      <ErrorBox error={data.error} />
      <ErrorBox error={act.error} />
      {d !== undefined && (
        <>
          <Section title={`Current layout (version ${d.layout.version})`}>
            <LayoutPicture layout={d.layout} />
            <DataTable testId="roles" columns={['Node', 'Zone', 'Capacity', 'Partitions', 'Usable', 'Actions']}>
              {d.layout.roles.map((r) => (
                <tr key={r.id}>
                  <th scope="row">
                    <code title={r.id}>{shortId(r.id)}</code>
                  </th>
                  <td>{r.zone}</td>
                  <td>{r.capacity === null ? 'gateway' : formatBytes(r.capacity)}</td>
                  <td>{r.storedPartitions ?? '—'}</td>
                  <td>{formatBytes(r.usableCapacity)}</td>
                  <td class="actions">
                    <button type="button" onClick={() => edit(r.id)} aria-label={`Change role of ${shortId(r.id)}`}>
                      Change
                    </button>
                    <button
                      type="button"
                      class="danger"
                      aria-label={`Remove ${shortId(r.id)} from the layout`}
                      onClick={() => void stage([{ id: r.id, remove: true }])}
                    >
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
            </DataTable>
            <RowForm
              onSubmit={() => {
                const v = redundancy ?? ''
                const atLeast = Number(v)
                if (v !== 'maximum' && !(Number.isSafeInteger(atLeast) && atLeast >= 1)) {
                  return setInvalid('Zone redundancy: maximum, or a number of zones from 1')
                }
                const zoneRedundancy = v === 'maximum' ? ('maximum' as const) : { atLeast }
                setInvalid(undefined)
                void act.run(async () => {
                  await api.call('UpdateClusterLayout', { body: { parameters: { zoneRedundancy } } })
                  setPreview(undefined)
                  data.reload()
                })
              }}
            >
              <label for="redundancy">Zone redundancy</label>
              <select
                id="redundancy"
                value={
                  redundancy ??
                  (d.layout.parameters.zoneRedundancy === 'maximum'
                    ? 'maximum'
                    : String(d.layout.parameters.zoneRedundancy.atLeast))
                }
                onChange={(e) => setRedundancy(e.currentTarget.value)}
              >
                <option value="maximum">maximum (as many zones as possible)</option>
                {[1, 2, 3, 4, 5, 6, 7].map((n) => (
                  <option key={n} value={String(n)}>
                    at least {n} zone{n > 1 ? 's' : ''}
                  </option>
                ))}
              </select>
              <button type="submit" disabled={redundancy === undefined || act.busy}>
                Stage redundancy
              </button>
            </RowForm>
          </Section>
          <Section title="Assign or change a role">
            <RowForm
              onSubmit={() => {
                const cap = gateway ? null : parseBytes(capacity)
                if (cap === undefined) return setInvalid('Capacity: a size such as 100G or 1T')
                if (zone.trim() === '') return setInvalid('Zone: required')
                setInvalid(undefined)
                const tagList = tags
                  .split(',')
                  .map((t) => t.trim())
                  .filter((t) => t !== '')
                void stage([{ id: nodeId, zone: zone.trim(), capacity: cap, tags: tagList }])
              }}
            >
              <label for="role-node">Node</label>
              <select id="role-node" required value={nodeId} onChange={(e) => edit(e.currentTarget.value)}>
                <option value="">Choose a node…</option>
                {d.status.nodes.map((n) => (
                  <option key={n.id} value={n.id}>
                    {shortId(n.id)} {n.hostname ?? ''} {n.role === null ? '(no role)' : `(${n.role.zone})`}
                  </option>
                ))}
              </select>
              <label for="role-zone">Zone</label>
              <input id="role-zone" value={zone} onInput={(e) => setZone(e.currentTarget.value)} />
              <label for="role-capacity">Capacity</label>
              <input
                id="role-capacity"
                placeholder="e.g. 100G"
                disabled={gateway}
                value={capacity}
                onInput={(e) => setCapacity(e.currentTarget.value)}
              />
              <label>
                <input type="checkbox" checked={gateway} onChange={(e) => setGateway(e.currentTarget.checked)} /> Gateway (stores
                nothing)
              </label>
              <label for="role-tags">Tags</label>
              <input id="role-tags" placeholder="comma-separated" value={tags} onInput={(e) => setTags(e.currentTarget.value)} />
              <button type="submit" disabled={nodeId === '' || act.busy}>
                Stage role
              </button>
            </RowForm>
            {invalid !== undefined && (
              <p class="error" role="alert">
                {invalid}
              </p>
            )}
          </Section>
          <Section title="Staged changes">
            {d.layout.stagedRoleChanges.length === 0 && d.layout.stagedParameters === null ? (
              <p>No staged changes.</p>
            ) : (
              <>
                <ul data-testid="staged">
                  {d.layout.stagedRoleChanges.map((c) => (
                    <li key={c.id}>
                      <code>{shortId(c.id)}</code>:{' '}
                      {'remove' in c
                        ? 'remove'
                        : `zone ${c.zone}, ${c.capacity === null ? 'gateway' : formatBytes(c.capacity)}${c.tags?.length ? `, tags ${c.tags.join(', ')}` : ''}`}
                    </li>
                  ))}
                  {d.layout.stagedParameters !== null && (
                    <li>
                      zone redundancy:{' '}
                      {d.layout.stagedParameters.zoneRedundancy === 'maximum'
                        ? 'maximum'
                        : `at least ${d.layout.stagedParameters.zoneRedundancy.atLeast}`}
                    </li>
                  )}
                </ul>
                <div class="row">
                  <button
                    type="button"
                    onClick={() => void act.run(async () => setPreview(await api.call('PreviewClusterLayoutChanges')))}
                  >
                    Preview
                  </button>
                  <button
                    type="button"
                    class="primary"
                    onClick={() =>
                      void act.run(async () => {
                        const r = await api.call('ApplyClusterLayout', { body: { version: d.layout.version + 1 } })
                        setApplied(r.message)
                        setPreview(undefined)
                        data.reload()
                      })
                    }
                  >
                    Apply as version {d.layout.version + 1}
                  </button>
                  <button
                    type="button"
                    onClick={() =>
                      void act.run(async () => {
                        await api.call('RevertClusterLayout')
                        setPreview(undefined)
                        data.reload()
                      })
                    }
                  >
                    Revert staged changes
                  </button>
                </div>
              </>
            )}
            {preview !== undefined && 'error' in preview && (
              <p class="error" role="alert">
                The layout cannot be computed: {preview.error}
              </p>
            )}
            {preview !== undefined && 'newLayout' in preview && <Preview current={d.layout} preview={preview} />}
            {applied !== undefined && (
              <div role="status" data-testid="applied">
                <p>Layout applied.</p>
                <pre>{applied.join('\n')}</pre>
              </div>
            )}
          </Section>
          <Section title="History">
            <p>
              Current version {d.history.currentVersion}; every node has acknowledged version {d.history.minAck} or later.
            </p>
            <DataTable columns={['Version', 'Status', 'Storage nodes', 'Gateways']}>
              {d.history.versions.map((v) => (
                <tr key={v.version}>
                  <th scope="row">{v.version}</th>
                  <td>{v.status}</td>
                  <td>{v.storageNodes}</td>
                  <td>{v.gatewayNodes}</td>
                </tr>
              ))}
            </DataTable>
          </Section>
        </>
      )}
    </>
  )
}

function Preview({
  current,
  preview,
}: {
  current: GetClusterLayoutResponse
  preview: { message: string[]; newLayout: GetClusterLayoutResponse }
}) {
  const moves = layoutMoves(current.roles, preview.newLayout.roles, preview.newLayout.partitionSize)
  return (
    <div data-testid="preview">
      <h3>Computed assignment</h3>
      <LayoutPicture layout={preview.newLayout} />
      <p>
        <strong data-testid="moved">{moves.partitionsMoved}</strong> partition copies change nodes. Each partition is allotted{' '}
        {formatBytes(preview.newLayout.partitionSize)} of capacity, so up to {formatBytes(moves.bytesMoved)} of data moves (what
        the partitions actually hold, usually less).
      </p>
      <DataTable columns={['Node', 'Partitions now', 'After']}>
        {moves.nodes.map((n) => (
          <tr key={n.id}>
            <th scope="row">
              <code>{shortId(n.id)}</code>
            </th>
            <td>{n.before}</td>
            <td>
              {n.after}{' '}
              {n.after !== n.before && (
                <span class="sub">
                  ({n.after > n.before ? '+' : ''}
                  {n.after - n.before})
                </span>
              )}
            </td>
          </tr>
        ))}
      </DataTable>
      <details>
        <summary>Details of the computation</summary>
        <pre>{preview.message.join('\n')}</pre>
      </details>
    </div>
  )
}
