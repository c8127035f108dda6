/**
 * How each admin API v2 endpoint is called over HTTP: its method, the request fields that travel
 * in the query string and whether it addresses nodes. Plain data, so that the router and the
 * CLI do not load TypeBox and the contract (≈ 15–25 MB of RSS) on a node that only serves S3:
 * the contract (contract.ts) is loaded with the request validator, when the admin server
 * receives its first `/v2/` request. test/api/admin/contract.test.ts checks that this table is
 * exactly what the contract declares.
 */
import type { AdminApiEndpointName } from './contract.ts'

/** How one admin API v2 endpoint is called over HTTP (from the contract). */
export interface AdminApiRoute {
  /** `GET` or `POST` (`/v2/<Endpoint>`). */
  readonly method: 'GET' | 'POST'
  /** Addresses nodes with `?node=<id>|self|*` and answers `{ success, error }` per node. */
  readonly perNode: boolean
  /** Names of the request fields that travel in the query string (besides `node`). */
  readonly queryParams: readonly string[]
}

/**
 * Every admin API v2 endpoint's method, query parameters and per-node flag: the contract's
 * (the test suite checks they agree), so a client built on it cannot drift.
 */
export const ADMIN_API_ROUTES: Readonly<Record<AdminApiEndpointName, AdminApiRoute>> = {
  GetClusterStatus: { method: 'GET', perNode: false, queryParams: [] },
  GetClusterHealth: { method: 'GET', perNode: false, queryParams: [] },
  GetClusterStatistics: { method: 'GET', perNode: false, queryParams: [] },
  ConnectClusterNodes: { method: 'POST', perNode: false, queryParams: [] },
  ListAdminTokens: { method: 'GET', perNode: false, queryParams: [] },
  GetAdminTokenInfo: { method: 'GET', perNode: false, queryParams: ['id', 'search'] },
  GetCurrentAdminTokenInfo: { method: 'GET', perNode: false, queryParams: [] },
  CreateAdminToken: { method: 'POST', perNode: false, queryParams: [] },
  UpdateAdminToken: { method: 'POST', perNode: false, queryParams: ['id'] },
  DeleteAdminToken: { method: 'POST', perNode: false, queryParams: ['id'] },
  GetClusterLayout: { method: 'GET', perNode: false, queryParams: [] },
  GetClusterLayoutHistory: { method: 'GET', perNode: false, queryParams: [] },
  UpdateClusterLayout: { method: 'POST', perNode: false, queryParams: [] },
  PreviewClusterLayoutChanges: { method: 'POST', perNode: false, queryParams: [] },
  ApplyClusterLayout: { method: 'POST', perNode: false, queryParams: [] },
  RevertClusterLayout: { method: 'POST', perNode: false, queryParams: [] },
  ClusterLayoutSkipDeadNodes: { method: 'POST', perNode: false, queryParams: [] },
  ListKeys: { method: 'GET', perNode: false, queryParams: [] },
  GetKeyInfo: { method: 'GET', perNode: false, queryParams: ['id', 'search', 'showSecretKey'] },
  CreateKey: { method: 'POST', perNode: false, queryParams: [] },
  ImportKey: { method: 'POST', perNode: false, queryParams: [] },
  UpdateKey: { method: 'POST', perNode: false, queryParams: ['id'] },
  DeleteKey: { method: 'POST', perNode: false, queryParams: ['id'] },
  ListBuckets: { method: 'GET', perNode: false, queryParams: [] },
  GetBucketInfo: { method: 'GET', perNode: false, queryParams: ['id', 'globalAlias', 'search'] },
  CreateBucket: { method: 'POST', perNode: false, queryParams: [] },
  UpdateBucket: { method: 'POST', perNode: false, queryParams: ['id'] },
  DeleteBucket: { method: 'POST', perNode: false, queryParams: ['id'] },
  CleanupIncompleteUploads: { method: 'POST', perNode: false, queryParams: [] },
  InspectObject: { method: 'GET', perNode: false, queryParams: ['bucketId', 'key'] },
  AllowBucketKey: { method: 'POST', perNode: false, queryParams: [] },
  DenyBucketKey: { method: 'POST', perNode: false, queryParams: [] },
  AddBucketAlias: { method: 'POST', perNode: false, queryParams: [] },
  RemoveBucketAlias: { method: 'POST', perNode: false, queryParams: [] },
  GetNodeInfo: { method: 'GET', perNode: true, queryParams: [] },
  GetNodeStatistics: { method: 'GET', perNode: true, queryParams: [] },
  CreateMetadataSnapshot: { method: 'POST', perNode: true, queryParams: [] },
  LaunchRepairOperation: { method: 'POST', perNode: true, queryParams: [] },
  ListWorkers: { method: 'POST', perNode: true, queryParams: [] },
  GetWorkerInfo: { method: 'POST', perNode: true, queryParams: [] },
  GetWorkerVariable: { method: 'POST', perNode: true, queryParams: [] },
  SetWorkerVariable: { method: 'POST', perNode: true, queryParams: [] },
  ListBlockErrors: { method: 'GET', perNode: true, queryParams: [] },
  GetBlockInfo: { method: 'POST', perNode: true, queryParams: [] },
  RetryBlockResync: { method: 'POST', perNode: true, queryParams: [] },
  PurgeBlocks: { method: 'POST', perNode: true, queryParams: [] },
}
