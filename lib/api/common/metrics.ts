/**
 * Prometheus metrics of one node, served at `/metrics` (Garage's names from
 * doc/book/reference-manual/monitoring.md where they exist). Each node owns its own prom-client
 * Registry: two nodes in one process never share metrics, and the global registry is never used.
 * Request metrics come from {@link RequestObserver}s given to the API servers; the rest is read
 * from the node when scraped.
 *
 * It lives in api/common because every API server (S3, web, admin) is observed by it while only
 * the admin API serves it: the composition root (lib/node.ts) builds one per node and hands an
 * observer to each server, so no API imports another to get at it.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { ClusterHealth } from '../../rpc/system.ts'
import type { WorkerInfo } from '../../util/background/worker.ts'
import type { RequestObserver } from './server.ts'

/** What the node reports at scrape time (a subset of `node.status()`). */
export interface NodeStatsSource {
  readonly nodeId: string
  readonly replicationFactor: number
  version: string
  status(): {
    running: boolean
    workers: WorkerInfo[]
    blocks: { bytesWritten: number; bytesRead: number; referenced: number; resyncQueueLength: number }
    tables: Array<{ name: string; entries: number; insertQueue: number }>
  }
  health(): ClusterHealth
}

interface ApiCollectors {
  requests: Counter<'api_endpoint'>
  errors: Counter<'api_endpoint' | 'status_code'>
  duration: Histogram<'api_endpoint'>
  received: Counter<'api_endpoint'>
  sent: Counter<'api_endpoint'>
}

export class NodeMetrics {
  readonly registry = new Registry()
  readonly #apis = new Map<string, ApiCollectors>()

  constructor(source: NodeStatsSource) {
    const registers = [this.registry]
    new Gauge({
      name: 'garage_build_info',
      help: 'Version of the node software',
      labelNames: ['version'],
      registers,
      collect() {
        this.set({ version: source.version }, 1)
      },
    })
    new Gauge({
      name: 'garage_node_info',
      help: 'Identifier of this node',
      labelNames: ['id'],
      registers,
      collect() {
        this.set({ id: source.nodeId }, 1)
      },
    })
    new Gauge({
      name: 'garage_replication_factor',
      help: 'Replication factor configured on this node',
      registers,
      collect() {
        this.set(source.replicationFactor)
      },
    })
    const health: Array<[string, string, (h: ClusterHealth) => number]> = [
      ['cluster_healthy', 'Whether all storage nodes are connected (0 or 1)', (h) => (h.status === 'healthy' ? 1 : 0)],
      [
        'cluster_available',
        'Whether all requests can be served, even if some storage nodes are disconnected',
        (h) => (h.status === 'unavailable' ? 0 : 1),
      ],
      ['cluster_connected_nodes', 'Number of nodes currently connected', (h) => h.connectedNodes],
      ['cluster_known_nodes', 'Number of nodes already seen once in the cluster', (h) => h.knownNodes],
      ['cluster_storage_nodes', 'Number of storage nodes declared in the current layout', (h) => h.storageNodes],
      ['cluster_storage_nodes_ok', 'Number of storage nodes currently connected', (h) => h.storageNodesOk],
      ['cluster_partitions', 'Number of partitions in the layout (always 256)', (h) => h.partitions],
      ['cluster_partitions_all_ok', 'Number of partitions for which all storage nodes are connected', (h) => h.partitionsAllOk],
      ['cluster_partitions_quorum', 'Number of partitions for which a quorum of nodes is connected', (h) => h.partitionsQuorum],
    ]
    for (const [name, help, read] of health) {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read(source.health()))
        },
      })
    }
    // Counters that mirror a running total the block manager keeps: each scrape adds the delta.
    const mirror = (name: string, help: string, read: () => number): void => {
      let reported = 0
      new Counter({
        name,
        help,
        registers,
        collect() {
          const now = read()
          if (now > reported) this.inc(now - reported)
          reported = Math.max(reported, now)
        },
      })
    }
    mirror(
      'block_bytes_written',
      'Number of bytes written to disk in the data directory',
      () => source.status().blocks.bytesWritten,
    )
    mirror('block_bytes_read', 'Number of bytes read from disk in the data directory', () => source.status().blocks.bytesRead)
    new Gauge({
      name: 'block_resync_queue_length',
      help: 'Number of block hashes queued for a resync',
      registers,
      collect() {
        this.set(source.status().blocks.resyncQueueLength)
      },
    })
    new Gauge({
      name: 'block_referenced_count',
      help: 'Number of blocks with a reference count on this node',
      registers,
      collect() {
        this.set(source.status().blocks.referenced)
      },
    })
    new Gauge({
      name: 'table_size',
      help: 'Number of entries stored on this node, per table',
      labelNames: ['table_name'],
      registers,
      collect() {
        for (const t of source.status().tables) this.set({ table_name: t.name }, t.entries)
      },
    })
    new Gauge({
      name: 'table_insert_queue_length',
      help: 'Number of entries waiting in the insert queue of a table (cross-table effects)',
      labelNames: ['table_name'],
      registers,
      collect() {
        for (const t of source.status().tables) this.set({ table_name: t.name }, t.insertQueue)
      },
    })
    new Gauge({
      name: 'worker_count',
      help: 'Number of background workers, per state',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset()
        const counts = new Map<string, number>([
          ['busy', 0],
          ['idle', 0],
          ['done', 0],
          ['error', 0],
        ])
        for (const w of source.status().workers) counts.set(w.state, (counts.get(w.state) ?? 0) + 1)
        for (const [state, n] of counts) this.set({ state }, n)
      },
    })
  }

  /** Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }

  /**
   * A request observer for one API (`s3`, `admin`, `k2v`, `web`): `api_<name>_request_counter`,
   * `api_<name>_error_counter`, `api_<name>_request_duration` (seconds) and byte counters.
   */
  observer(api: string, endpointName?: RequestObserver['endpointName']): RequestObserver {
    const c = this.#collectors(api)
    const observer: RequestObserver = {
      onResponse(info) {
        const labels = { api_endpoint: info.endpoint }
        c.requests.inc(labels)
        c.duration.observe(labels, info.durationMsec / 1000)
        if (info.status >= 400) c.errors.inc({ api_endpoint: info.endpoint, status_code: String(info.status) })
        if (info.bytesReceived > 0) c.received.inc(labels, info.bytesReceived)
        if (info.bytesSent > 0) c.sent.inc(labels, info.bytesSent)
      },
    }
    if (endpointName !== undefined) observer.endpointName = endpointName
    return observer
  }

  #collectors(api: string): ApiCollectors {
    let c = this.#apis.get(api)
    if (c === undefined) {
      const registers = [this.registry]
      const Api = api.charAt(0).toUpperCase() + api.slice(1)
      c = {
        requests: new Counter({
          name: `api_${api}_request_counter`,
          help: `Number of requests to each endpoint of the ${Api} API`,
          labelNames: ['api_endpoint'],
          registers,
        }),
        errors: new Counter({
          name: `api_${api}_error_counter`,
          help: `Number of requests to each endpoint of the ${Api} API that returned an error`,
          labelNames: ['api_endpoint', 'status_code'],
          registers,
        }),
        duration: new Histogram({
          name: `api_${api}_request_duration`,
          help: `Duration of requests to each endpoint of the ${Api} API, in seconds`,
          labelNames: ['api_endpoint'],
          registers,
        }),
        received: new Counter({
          name: `api_${api}_request_bytes_received`,
          help: `Bytes received (headers and body) by each endpoint of the ${Api} API`,
          labelNames: ['api_endpoint'],
          registers,
        }),
        sent: new Counter({
          name: `api_${api}_response_bytes_sent`,
          help: `Bytes sent (headers and body) by each endpoint of the ${Api} API`,
          labelNames: ['api_endpoint'],
          registers,
        }),
      }
      this.#apis.set(api, c)
    }
    return c
  }
}
