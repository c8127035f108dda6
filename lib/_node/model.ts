/**
 * Start stages 3 and 4: build the model (every table and the block manager, handed their
 * collaborators; port of garage_model::garage) and spawn its background workers.
 */
import { openBlockPaths } from '../block/layout.ts'
import type { Db } from '../db/db.ts'
import { Garage } from '../model/garage.ts'
import { BackgroundRunner } from '../util/background/worker.ts'
import type { ResolvedConfig } from '../util/config.ts'
import type { Logger } from '../util/logger.ts'
import type { ClusterMembership } from './cluster.ts'
import type { Teardown } from './teardown.ts'
import { blockTimingOf, type NodeTiming } from './timing.ts'

export interface BuildModelOptions {
  config: ResolvedConfig
  db: Db
  /** This node's id. */
  self: string
  cluster: Pick<ClusterMembership, 'sharded' | 'fullCopy' | 'context'>
  timing: Readonly<NodeTiming>
  clock: (() => number) | undefined
  log: Logger
}

/**
 * Opens the data directories' layout, builds the model, computes the bucket counters on a first
 * start that has objects, and aborts the uploads a previous stop interrupted. Nothing to undo:
 * the model owns no resource of its own (the database and the workers are closed by their stages).
 */
export async function buildModel(o: BuildModelOptions): Promise<Garage> {
  const { config: c, cluster, timing, log } = o
  // Where block files go among the data directories (`data_dir` list; metadata_dir/data_layout).
  const blockPaths = await openBlockPaths({ dirs: c.dataDirs, metadataDir: c.metadataDir })
  const garage = new Garage({
    db: o.db,
    self: o.self,
    dataDir: c.dataDir,
    blockPaths,
    dataFsync: c.dataFsync,
    blockSize: c.blockSize,
    ...(c.blockMaxConcurrentWritesPerRequest === undefined
      ? {}
      : { blockWritesPerRequest: c.blockMaxConcurrentWritesPerRequest }),
    blockGcDelayMsec: c.blockGcDelayMsec,
    allowPunycode: c.allowPunycode,
    sharded: cluster.sharded,
    fullCopy: cluster.fullCopy,
    ...(cluster.context === undefined ? {} : { cluster: cluster.context }),
    ...(c.rpcTimeoutMsec === undefined ? {} : { rpcTimeoutMs: c.rpcTimeoutMsec }),
    block: {
      ramBufferMax: c.blockRamBufferMax,
      disableScrub: c.disableScrub,
      ...(c.blockMaxConcurrentReads === undefined ? {} : { maxConcurrentReads: c.blockMaxConcurrentReads }),
      ...blockTimingOf(timing),
    },
    ...(timing.tableTombstoneGcDelayMsec === undefined ? {} : { tableGcDelayMsec: timing.tableTombstoneGcDelayMsec }),
    log,
    useLocalTz: c.useLocalTz,
    ...(o.clock === undefined ? {} : { clock: o.clock }),
  })
  const objectData = garage.objectTable.data
  if (garage.objectCounter.initialize(objectData.store, (raw) => objectData.schema.codec.decode(raw))) {
    log.debug('computed the bucket object counters from the stored objects')
  }
  // Undone here when the quorum answers; if it does not (a node restarting while cut off from
  // its peers), the node starts anyway and the worker `upload-leftovers` retries: a leftover's
  // version is listed by no object row meanwhile, so nothing of it is visible.
  try {
    const aborted = await garage.uploads.abortLeftovers(garage.objectTable, garage.versionTable, garage.mpuTable)
    if (aborted > 0) log.warn(`aborted ${aborted} upload(s) interrupted by the previous stop`)
  } catch (err) {
    log.warn(
      `${garage.uploads.leftovers()} upload(s) interrupted by the previous stop not undone yet (${(err as Error).message}): retried in the background`,
    )
  }
  return garage
}

/**
 * Starts every background worker of the model on one runner. Its teardown aborts `stop` (the
 * signal every worker, membership and the layout manager listen to) and waits for the workers.
 */
export function spawnWorkers(
  garage: Garage,
  stop: AbortController,
  log: Logger,
): { runner: BackgroundRunner; teardown: Teardown } {
  const runner = new BackgroundRunner(log.withTag('worker'), stop.signal)
  garage.spawnWorkers(runner)
  return {
    runner,
    teardown: async () => {
      stop.abort()
      await runner.join()
    },
  }
}
