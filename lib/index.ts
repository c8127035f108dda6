/**
 * Garage in TypeScript: an S3-compatible object store you can run as a server or embed.
 * This barrel is the public API (checked by api-extractor); everything else is internal.
 * @packageDocumentation
 */
/** The admin API v2 contract's JSON shapes (Garage's names), for clients of the HTTP API. */
export type {
  AdminApiEndpointName,
  AdminApiErrorResponse,
  AdminApiMultiResponse,
  AdminApiQuery,
  AdminApiRequestBody,
  AdminApiResponse,
  ApiBucketKeyPerm,
  ApiBucketQuotas,
  ApiLayoutParameters,
  ApiRepairType,
  ApiZoneRedundancy,
  ApplyClusterLayoutResponse,
  BlockError,
  ClusterLayoutSkipDeadNodesResponse,
  CreateAdminTokenResponse,
  CreateBucketRequest,
  FreeformResponse,
  GetAdminTokenInfoResponse,
  GetBlockInfoResponse,
  GetBucketInfoResponse,
  GetClusterHealthResponse,
  GetClusterLayoutHistoryResponse,
  GetClusterLayoutResponse,
  GetClusterStatusResponse,
  GetKeyInfoResponse,
  InspectObjectResponse,
  LayoutNodeRole,
  ListBucketsResponseItem,
  ListKeysResponseItem,
  LocalGetNodeInfoResponse,
  NodeResp,
  NodeRoleChange,
  NodeRoleChangeRequest,
  PreviewClusterLayoutChangesResponse,
  PurgeBlocksResponse,
  UpdateAdminTokenRequestBody,
  UpdateBucketRequestBody,
  UpdateClusterLayoutRequest,
  UpdateKeyRequestBody,
  WorkerInfoResp,
  WorkerStateResp,
} from './api/admin/contract.ts'
export { ADMIN_API_ROUTES, type AdminApiRoute } from './api/admin/routes.ts'
export { createGarageNode, type GarageNode, type GarageNodeOptions, type NodeStatus, type NodeTiming } from './node.ts'
export type {
  BucketInfo,
  BucketPermissions,
  BucketStats,
  BucketsApi,
  CreateBucketOptions,
  CreateKeyOptions,
  KeyInfo,
  KeysApi,
  ObjectVersionInfo,
  UpdateBucketOptions,
  UpdateKeyOptions,
} from './model/helper/admin.ts'
export type {
  AdminTokenInfo,
  AdminTokensApi,
  CreateAdminTokenOptions,
  UpdateAdminTokenOptions,
} from './model/helper/admin-token.ts'
export type { BucketQuotas } from './model/bucket-table.ts'
export type {
  ClusterLayoutView,
  LayoutApi,
  LayoutApplyResult,
  LayoutHistoryView,
  LayoutPreview,
  LayoutRoleChange,
  LayoutStageRequest,
  SkipDeadNodesResult,
} from './rpc/layout/api.ts'
export type { LayoutParameters, ZoneRedundancy } from './rpc/layout/types.ts'
export type { WorkerInfo, WorkerState } from './util/background/worker.ts'
export type { AccessLogEntry } from './api/common/server.ts'
export {
  type AdminSection,
  type BindAddr,
  type ByteSize,
  type ConsistencyMode,
  type DataDirEntry,
  formatBindAddr,
  type GarageConfig,
  type K2vApiSection,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type LogLevel,
  parseConfigToml,
  parseDurationString,
  parseSizeString,
  readConfigFile,
  type ResolveConfigOptions,
  type ResolveConfigResult,
  type ResolvedConfig,
  resolveConfig,
  type S3ApiSection,
  type S3WebSection,
  type TcpAddr,
} from './util/config.ts'
export {
  CorruptDataError,
  GARAGE_ERROR_CODES,
  GarageError,
  type GarageErrorCode,
  InvalidConfigError,
  isGarageError,
  ModelError,
  type ModelErrorCode,
  QuorumError,
  TimeoutError,
} from './util/errors.ts'
export { type Logger, silentLogger } from './util/logger.ts'
