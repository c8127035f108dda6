/**
 * The admin API v2 JSON shapes the commands read, from Garage's OpenAPI document
 * (`doc/api/garage-admin-v2.json`). Fields added by later Garage versions are optional.
 * @internal
 */

export interface ApiBucketKeyPerm {
  read?: boolean
  write?: boolean
  owner?: boolean
}

export interface ApiBucketQuotas {
  maxSize?: number | null
  maxObjects?: number | null
}

export interface ListBucketsResponseItem {
  id: string
  created?: string
  globalAliases: string[]
  localAliases: { accessKeyId: string; alias: string }[]
}

export interface GetBucketInfoKey {
  accessKeyId: string
  name: string
  permissions: ApiBucketKeyPerm
  bucketLocalAliases: string[]
}

export interface GetBucketInfoResponse {
  id: string
  created?: string | null
  globalAliases: string[]
  websiteAccess: boolean
  websiteConfig?: { indexDocument: string; errorDocument?: string | null } | null
  keys: GetBucketInfoKey[]
  objects: number
  bytes: number
  unfinishedUploads: number
  unfinishedMultipartUploads: number
  unfinishedMultipartUploadParts: number
  unfinishedMultipartUploadBytes: number
  quotas: ApiBucketQuotas
}

export interface ListKeysResponseItem {
  id: string
  name: string
  created?: string | null
  expiration?: string | null
  expired?: boolean
}

export interface KeyInfoBucketResponse {
  id: string
  globalAliases: string[]
  localAliases: string[]
  permissions: ApiBucketKeyPerm
}

export interface GetKeyInfoResponse {
  accessKeyId: string
  name: string
  secretAccessKey?: string | null
  created?: string | null
  expiration?: string | null
  expired?: boolean
  permissions: { createBucket?: boolean }
  buckets: KeyInfoBucketResponse[]
}

export interface GetAdminTokenInfoResponse {
  id?: string | null
  name: string
  created?: string | null
  expiration?: string | null
  expired: boolean
  scope: string[]
}

export interface CreateAdminTokenResponse extends GetAdminTokenInfoResponse {
  secretToken: string
}

export interface FreeSpaceResp {
  available: number
  total: number
}

export interface NodeResp {
  id: string
  garageVersion?: string | null
  addr?: string | null
  hostname?: string | null
  isUp: boolean
  lastSeenSecsAgo?: number | null
  draining: boolean
  role?: { zone: string; capacity?: number | null; tags: string[] } | null
  dataPartition?: FreeSpaceResp | null
  metadataPartition?: FreeSpaceResp | null
}

export interface GetClusterStatusResponse {
  layoutVersion: number
  nodes: NodeResp[]
}

export interface NodeRoleChange {
  id: string
  remove?: boolean
  zone?: string
  capacity?: number | null
  tags?: string[]
}

/** `"maximum"` or `{ atLeast: n }`. */
export type ApiZoneRedundancy = 'maximum' | { atLeast: number }

export interface LayoutParametersResp {
  zoneRedundancy: ApiZoneRedundancy
}

export interface LayoutNodeRole {
  id: string
  zone: string
  tags: string[]
  capacity?: number | null
  storedPartitions?: number | null
  usableCapacity?: number | null
}

export interface GetClusterLayoutResponse {
  version: number
  roles: LayoutNodeRole[]
  parameters: LayoutParametersResp
  partitionSize: number
  stagedRoleChanges: NodeRoleChange[]
  stagedParameters?: LayoutParametersResp | null
}

export type PreviewClusterLayoutChangesResponse = { error: string } | { message: string[]; newLayout: GetClusterLayoutResponse }

export interface ApplyClusterLayoutResponse {
  message: string[]
  layout: GetClusterLayoutResponse
}

export interface GetClusterLayoutHistoryResponse {
  currentVersion: number
  minAck: number
  versions: Array<{ version: number; status: string; storageNodes: number; gatewayNodes: number }>
  updateTrackers?: Record<string, { ack: number; sync: number; syncAck: number }> | null
}

export interface ClusterLayoutSkipDeadNodesResponse {
  ackUpdated: string[]
  syncUpdated: string[]
}

export interface LocalGetNodeInfoResponse {
  nodeId: string
  garageVersion: string
  garageFeatures?: string[] | null
  rustVersion?: string
  dbEngine: string
}

export type WorkerStateResp = 'busy' | 'idle' | 'done' | { throttled: { durationSecs: number } }

export interface WorkerInfoResp {
  id: number
  name: string
  state: WorkerStateResp
  errors: number
  consecutiveErrors: number
  lastError?: { message: string; secsAgo: number } | null
  tranquility?: number | null
  progress?: string | null
  queueLength?: number | null
  persistentErrors?: number | null
  freeform: string[]
}

export interface InspectObjectBlock {
  partNumber: number
  offset: number
  hash: string
  size: number
}

export interface InspectObjectVersion {
  uuid: string
  timestamp: string
  encrypted: boolean
  uploading: boolean
  aborted: boolean
  deleteMarker: boolean
  inline: boolean
  size?: number | null
  etag?: string | null
  headers: [string, string][]
  blocks: InspectObjectBlock[]
}

export interface InspectObjectResponse {
  bucketId: string
  key: string
  versions: InspectObjectVersion[]
}
