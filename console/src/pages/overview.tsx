/** Cluster overview: health, nodes (up/down, zone, disks), and the layout drawn by zone and capacity. */
import type { GetClusterLayoutResponse, NodeResp } from '../../../lib/api/admin/contract.ts'
import { formatAgo, formatBytes, shortId } from '../format.ts'
import { zonesOf } from '../layout-model.ts'
import { Badge, DataTable, ErrorBox, Meter, Section, useApp, useLoad } from '../ui.tsx'

function Disk({ label, part }: { label: string; part: NodeResp['dataPartition'] }) {
  if (part === null) return <span>—</span>
  const used = part.total - part.available
  return (
    <Meter
      label={label}
      value={used}
      max={part.total}
      text={`${formatBytes(part.available)} free of ${formatBytes(part.total)}`}
    />
  )
}

/** Zones side by side, each node a block whose width is its share of the zone's capacity. */
export function LayoutPicture({ layout, up }: { layout: GetClusterLayoutResponse; up?: ReadonlyMap<string, boolean> }) {
  const zones = zonesOf(layout.roles)
  const total = zones.reduce((t, z) => t + z.capacity, 0)
  if (zones.length === 0) return <p>No node has a role yet.</p>
  return (
    <figure class="layout-picture">
      <div class="zones">
        {zones.map((z) => (
          <div class="zone" key={z.zone} style={{ flexGrow: Math.max(1, z.capacity) }}>
            <div class="zone-name">
              Zone <strong>{z.zone}</strong> · {formatBytes(z.capacity)} ({total > 0 ? Math.round((100 * z.capacity) / total) : 0}
              %) · {z.partitions} partition copies
            </div>
            <div class="zone-nodes">
              {z.nodes.map((n) => {
                const isUp = up?.get(n.id)
                return (
                  <div
                    key={n.id}
                    class={`zone-node ${n.capacity === null ? 'gateway' : ''} ${isUp === false ? 'down' : ''}`}
                    style={{ flexGrow: Math.max(1, n.capacity ?? 0) }}
                    title={`${n.id}`}
                  >
                    <code>{shortId(n.id, 8)}</code>
                    <span>{n.capacity === null ? 'gateway' : formatBytes(n.capacity)}</span>
                    <span>{n.storedPartitions ?? 0} part.</span>
                    {isUp === false && <span class="badge bad">down</span>}
                  </div>
                )
              })}
            </div>
          </div>
        ))}
      </div>
      <figcaption>
        Layout version {layout.version}: {layout.roles.length} nodes in {zones.length} zones, {formatBytes(total)} in total.
      </figcaption>
    </figure>
  )
}

export function OverviewPage() {
  const { api } = useApp()
  const data = useLoad(
    async () => {
      const [status, health, layout] = await Promise.all([
        api.call('GetClusterStatus'),
        api.call('GetClusterHealth'),
        api.call('GetClusterLayout'),
      ])
      return { status, health, layout }
    },
    [api],
    2000,
  )
  const d = data.data
  return (
    <>
      <h1>Cluster</h1>
      <ErrorBox error={data.error} />
      {d !== undefined && (
        <>
          <Section title="Health">
            <dl class="stats" data-testid="health">
              <div>
                <dt>Status</dt>
                <dd>
                  <Badge ok={d.health.status === 'healthy' ? true : d.health.status === 'degraded' ? 'warn' : false}>
                    {d.health.status}
                  </Badge>
                </dd>
              </div>
              <div>
                <dt>Nodes connected</dt>
                <dd>
                  {d.health.connectedNodes} / {d.health.knownNodes}
                </dd>
              </div>
              <div>
                <dt>Storage nodes up</dt>
                <dd>
                  {d.health.storageNodesOk} / {d.health.storageNodes}
                </dd>
              </div>
              <div>
                <dt>Partitions with quorum</dt>
                <dd>
                  {d.health.partitionsQuorum} / {d.health.partitions}
                </dd>
              </div>
              <div>
                <dt>Partitions fully replicated</dt>
                <dd>
                  {d.health.partitionsAllOk} / {d.health.partitions}
                </dd>
              </div>
              <div>
                <dt>Layout version</dt>
                <dd>{d.status.layoutVersion}</dd>
              </div>
            </dl>
          </Section>
          <Section title="Nodes">
            <DataTable testId="nodes" columns={['Node', 'State', 'Zone', 'Capacity', 'Address', 'Data disk', 'Metadata disk']}>
              {d.status.nodes.map((n) => (
                <tr key={n.id} data-node={n.id}>
                  <th scope="row">
                    <code title={n.id}>{shortId(n.id)}</code>
                    <div class="sub">{n.hostname ?? ''}</div>
                  </th>
                  <td>
                    {n.isUp ? (
                      <Badge ok={true}>up</Badge>
                    ) : (
                      <>
                        <Badge ok={false}>down</Badge>
                        <div class="sub">seen {formatAgo(n.lastSeenSecsAgo)} ago</div>
                      </>
                    )}
                    {n.draining && <Badge ok="warn">draining</Badge>}
                  </td>
                  <td>{n.role?.zone ?? '—'}</td>
                  <td>{n.role === null ? 'no role' : n.role.capacity === null ? 'gateway' : formatBytes(n.role.capacity)}</td>
                  <td>{n.addr ?? '—'}</td>
                  <td>
                    <Disk label={`data disk of ${shortId(n.id)}`} part={n.dataPartition} />
                  </td>
                  <td>
                    <Disk label={`metadata disk of ${shortId(n.id)}`} part={n.metadataPartition} />
                  </td>
                </tr>
              ))}
            </DataTable>
          </Section>
          <Section title="Layout by zone and capacity">
            <LayoutPicture layout={d.layout} up={new Map(d.status.nodes.map((n) => [n.id, n.isUp]))} />
          </Section>
        </>
      )}
    </>
  )
}
