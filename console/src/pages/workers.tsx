/** Background workers and repairs per node: worker states and errors, repairs to launch, blocks that failed to resync. */
import { useState } from 'preact/hooks'
import type { ApiRepairType, WorkerInfoResp } from '../../../lib/api/admin/contract.ts'
import { formatAgo, shortId } from '../format.ts'
import { Badge, DataTable, ErrorBox, Section, useAction, useApp, useLoad } from '../ui.tsx'

const REPAIRS: ReadonlyArray<readonly [string, ApiRepairType]> = [
  ['Start scrub', { scrub: 'start' }],
  ['Pause scrub', { scrub: 'pause' }],
  ['Resume scrub', { scrub: 'resume' }],
  ['Cancel scrub', { scrub: 'cancel' }],
  ['Resync blocks', 'blocks'],
  ['Repair tables', 'tables'],
  ['Repair versions', 'versions'],
  ['Repair multipart uploads', 'multipartUploads'],
  ['Repair block references', 'blockRefs'],
  ['Recount block references', 'blockRc'],
  ['Rebalance data directories', 'rebalance'],
]

const stateText = (s: WorkerInfoResp['state']): string =>
  typeof s === 'string' ? s : `throttled ${s.throttled.durationSecs.toFixed(1)} s`

export function WorkersPage() {
  const { api } = useApp()
  const [node, setNode] = useState('*')
  const status = useLoad(() => api.call('GetClusterStatus'), [api])
  const workers = useLoad(() => api.call('ListWorkers', { query: { node }, body: {} }), [api, node], 3000)
  const errors = useLoad(() => api.call('ListBlockErrors', { query: { node } }), [api, node], 3000)
  const act = useAction()
  const [launched, setLaunched] = useState<string | undefined>(undefined)
  const nodeName = (id: string) => shortId(id)
  return (
    <>
      <h1>Workers and repairs</h1>
      <div class="row">
        <label for="w-node">Node</label>
        <select id="w-node" value={node} onChange={(e) => setNode(e.currentTarget.value)}>
          <option value="*">All nodes</option>
          {(status.data?.nodes ?? []).map((n) => (
            <option key={n.id} value={n.id}>
              {shortId(n.id)} {n.hostname ?? ''}
            </option>
          ))}
        </select>
      </div>
      <Section title="Repairs">
        <div class="row wrap">
          {REPAIRS.map(([label, repairType]) => (
            <button
              key={label}
              type="button"
              onClick={() =>
                void act.run(async () => {
                  const r = await api.call('LaunchRepairOperation', { query: { node }, body: { repairType } })
                  const failed = Object.entries(r.error)
                  if (failed.length > 0) throw new Error(failed.map(([n, m]) => `${shortId(n)}: ${m}`).join('; '))
                  setLaunched(`${label}: launched on ${Object.keys(r.success).length} node(s)`)
                  workers.reload()
                })
              }
            >
              {label}
            </button>
          ))}
        </div>
        <ErrorBox error={act.error} />
        {launched !== undefined && <p role="status">{launched}</p>}
      </Section>
      <Section title="Workers">
        <ErrorBox error={workers.error} />
        {Object.entries(workers.data?.error ?? {}).map(([n, m]) => (
          <p key={n} class="error" role="alert">
            {nodeName(n)}: {m}
          </p>
        ))}
        <DataTable testId="workers" columns={['Node', 'Worker', 'State', 'Progress', 'Queue', 'Errors', 'Last error']}>
          {Object.entries(workers.data?.success ?? {}).flatMap(([n, list]) =>
            list.map((w) => (
              <tr key={`${n}/${w.id}`}>
                <td>
                  <code>{nodeName(n)}</code>
                </td>
                <th scope="row">{w.name}</th>
                <td>
                  <Badge ok={w.state === 'busy' ? 'warn' : w.errors === 0 || w.consecutiveErrors === 0}>
                    {stateText(w.state)}
                  </Badge>
                </td>
                <td>{w.progress ?? ''}</td>
                <td>{w.queueLength ?? ''}</td>
                <td>
                  {w.errors}
                  {w.consecutiveErrors > 0 && ` (${w.consecutiveErrors} in a row)`}
                </td>
                <td>{w.lastError === null ? '' : `${w.lastError.message} (${formatAgo(w.lastError.secsAgo)} ago)`}</td>
              </tr>
            )),
          )}
        </DataTable>
      </Section>
      <Section title="Block errors">
        <ErrorBox error={errors.error} />
        <DataTable testId="block-errors" columns={['Node', 'Block', 'References', 'Failures', 'Next try']}>
          {Object.entries(errors.data?.success ?? {}).flatMap(([n, list]) =>
            list.map((b) => (
              <tr key={`${n}/${b.blockHash}`}>
                <td>
                  <code>{nodeName(n)}</code>
                </td>
                <th scope="row">
                  <code>{shortId(b.blockHash, 24)}</code>
                </th>
                <td>{b.refcount}</td>
                <td>{b.errorCount}</td>
                <td>in {formatAgo(b.nextTryInSecs)}</td>
              </tr>
            )),
          )}
        </DataTable>
        {Object.values(errors.data?.success ?? {}).every((l) => l.length === 0) && <p>No block errors.</p>}
        <button
          type="button"
          onClick={() =>
            void act.run(async () => {
              await api.call('RetryBlockResync', { query: { node }, body: { all: true } })
              errors.reload()
            })
          }
        >
          Retry every failed block now
        </button>
      </Section>
    </>
  )
}
