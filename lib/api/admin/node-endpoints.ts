/**
 * The table of node-scoped admin endpoints (those with `perNode` in the router): what each one
 * parses on the receiving node and runs on every node addressed. See node-rpc.ts.
 */
import * as block from './block.ts'
import * as cluster from './cluster.ts'
import type { LocalEndpointTable } from './node-rpc.ts'
import * as repair from './repair.ts'
import * as worker from './worker.ts'

export const LOCAL_ADMIN_ENDPOINTS: LocalEndpointTable = {
  GetNodeInfo: cluster.getNodeInfo,
  GetNodeStatistics: cluster.getNodeStatistics,
  CreateMetadataSnapshot: cluster.createMetadataSnapshot,
  LaunchRepairOperation: repair.launchRepairOperation,
  ListWorkers: worker.listWorkers,
  GetWorkerInfo: worker.getWorkerInfo,
  GetWorkerVariable: worker.getWorkerVariable,
  SetWorkerVariable: worker.setWorkerVariable,
  ListBlockErrors: block.listBlockErrors,
  GetBlockInfo: block.getBlockInfo,
  RetryBlockResync: block.retryBlockResync,
  PurgeBlocks: block.purgeBlocks,
}
