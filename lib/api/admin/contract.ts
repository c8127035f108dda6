/**
 * The admin API v2 contract, declared once with TypeBox: for every endpoint its method, OpenAPI
 * tag, whether it addresses nodes (`?node=`), its query parameters, its JSON body and its
 * response. Names follow Garage's OpenAPI document (`doc/api/garage-admin-v2.json`).
 *
 * Three things come from it: the router's request validation (compiled validators, see
 * validate.ts), the OpenAPI document (openapi.ts) and the static types the CLI reads (exported
 * through lib/index.ts). Tests check handler responses against the response schemas.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox'

// ---------------------------------------------------------------------------------------------
// Building blocks

/** `T | null`. */
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()])
/** An optional request field; `null` counts as absent (as serde's `Option`). */
const Opt = <T extends TSchema>(t: T) => Type.Optional(Nullable(t))
const Str = () => Type.String()
const Bool = () => Type.Boolean()
/** A non-negative integer (counts, sizes, versions, seconds). */
const UInt = () => Type.Integer({ minimum: 0 })
const StrArray = () => Type.Array(Type.String())

/** Pattern of an RFC 3339 date-time; openapi.ts renders it as `format: date-time`. */
export const RFC3339_PATTERN = '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?(Z|[+-]\\d{2}:\\d{2})$'
const DateTime = () => Type.String({ pattern: RFC3339_PATTERN, description: 'RFC 3339 date-time' })

/** Names a schema as a component of the OpenAPI document (openapi.ts hoists titled schemas). */
const named = <T extends TSchema>(title: string, t: T): T => ({ ...t, title })

/** Garage's answer of a node-scoped endpoint: `{ success: { <node id>: T }, error: { <node id>: message } }`. */
const Multi = <T extends TSchema>(t: T) =>
  Type.Object({ success: Type.Record(Type.String(), t), error: Type.Record(Type.String(), Type.String()) })

// ---------------------------------------------------------------------------------------------
// Shared shapes

const ApiBucketKeyPerm = named('ApiBucketKeyPerm', Type.Object({ read: Bool(), write: Bool(), owner: Bool() }))
/** Permissions in a request: absent flags are false. */
const ApiBucketKeyPermRequest = named(
  'ApiBucketKeyPermRequest',
  Type.Object({ read: Opt(Bool()), write: Opt(Bool()), owner: Opt(Bool()) }),
)
const ApiBucketQuotas = named('ApiBucketQuotas', Type.Object({ maxSize: Nullable(UInt()), maxObjects: Nullable(UInt()) }))
const ApiBucketQuotasRequest = named('ApiBucketQuotasRequest', Type.Object({ maxSize: Opt(UInt()), maxObjects: Opt(UInt()) }))
const KeyPerm = named('KeyPerm', Type.Object({ createBucket: Opt(Bool()) }))

export const ErrorResponse = named(
  'ErrorResponse',
  Type.Object({ code: Str(), message: Str(), region: Type.Optional(Str()), path: Type.Optional(Str()) }),
)

const FreeformResponse = named('FreeformResponse', Type.Object({ freeform: Str() }))

// ---------------------------------------------------------------------------------------------
// Cluster

const FreeSpaceResp = named('FreeSpaceResp', Type.Object({ available: UInt(), total: UInt() }))
const NodeAssignedRole = named('NodeAssignedRole', Type.Object({ zone: Str(), capacity: Nullable(UInt()), tags: StrArray() }))
const NodeResp = named(
  'NodeResp',
  Type.Object({
    id: Str(),
    garageVersion: Type.Optional(Nullable(Str())),
    role: Nullable(NodeAssignedRole),
    addr: Nullable(Str()),
    hostname: Nullable(Str()),
    isUp: Bool(),
    lastSeenSecsAgo: Nullable(UInt()),
    draining: Bool(),
    dataPartition: Nullable(FreeSpaceResp),
    metadataPartition: Nullable(FreeSpaceResp),
  }),
)
const GetClusterStatusResponse = named(
  'GetClusterStatusResponse',
  Type.Object({ layoutVersion: UInt(), nodes: Type.Array(NodeResp) }),
)
const GetClusterHealthResponse = named(
  'GetClusterHealthResponse',
  Type.Object({
    status: Type.Union([Type.Literal('healthy'), Type.Literal('degraded'), Type.Literal('unavailable')]),
    knownNodes: UInt(),
    connectedNodes: UInt(),
    storageNodes: UInt(),
    storageNodesOk: UInt(),
    partitions: UInt(),
    partitionsQuorum: UInt(),
    partitionsAllOk: UInt(),
  }),
)
const ConnectClusterNodesRequest = named('ConnectClusterNodesRequest', StrArray())
const ConnectNodeResponse = named('ConnectNodeResponse', Type.Object({ success: Bool(), error: Nullable(Str()) }))

// ---------------------------------------------------------------------------------------------
// Admin API tokens

const GetAdminTokenInfoResponse = named(
  'GetAdminTokenInfoResponse',
  Type.Object({
    id: Nullable(Str()),
    created: Nullable(DateTime()),
    name: Str(),
    expiration: Nullable(DateTime()),
    expired: Bool(),
    scope: StrArray(),
  }),
)
const CreateAdminTokenResponse = named(
  'CreateAdminTokenResponse',
  Type.Object({ ...GetAdminTokenInfoResponse.properties, secretToken: Str() }),
)
const UpdateAdminTokenRequestBody = named(
  'UpdateAdminTokenRequestBody',
  Type.Object({ name: Opt(Str()), expiration: Opt(DateTime()), neverExpires: Opt(Bool()), scope: Opt(StrArray()) }),
)

// ---------------------------------------------------------------------------------------------
// Cluster layout

const ZoneRedundancy = named(
  'ZoneRedundancy',
  Type.Union([Type.Literal('maximum'), Type.Object({ atLeast: UInt() }, { additionalProperties: false })]),
)
const LayoutParameters = named('LayoutParameters', Type.Object({ zoneRedundancy: ZoneRedundancy }))
const NodeRoleRemove = Type.Object({ id: Str(), remove: Type.Literal(true) })
/** A staged role change as the server reports it. */
const NodeRoleChange = named(
  'NodeRoleChange',
  Type.Union([
    NodeRoleRemove,
    Type.Object({ id: Str(), zone: Str(), capacity: Nullable(UInt()), tags: Type.Optional(StrArray()) }),
  ]),
)
/** A role change in a request: capacity null or absent is a gateway, tags default to none. */
const NodeRoleChangeRequest = named(
  'NodeRoleChangeRequest',
  Type.Union([NodeRoleRemove, Type.Object({ id: Str(), zone: Str(), capacity: Opt(UInt()), tags: Opt(StrArray()) })]),
)
const LayoutNodeRole = named(
  'LayoutNodeRole',
  Type.Object({
    id: Str(),
    zone: Str(),
    tags: StrArray(),
    capacity: Nullable(UInt()),
    storedPartitions: Nullable(UInt()),
    usableCapacity: Nullable(UInt()),
  }),
)
const GetClusterLayoutResponse = named(
  'GetClusterLayoutResponse',
  Type.Object({
    version: UInt(),
    roles: Type.Array(LayoutNodeRole),
    parameters: LayoutParameters,
    partitionSize: UInt(),
    stagedRoleChanges: Type.Array(NodeRoleChange),
    stagedParameters: Nullable(LayoutParameters),
  }),
)
const GetClusterLayoutHistoryResponse = named(
  'GetClusterLayoutHistoryResponse',
  Type.Object({
    currentVersion: UInt(),
    minAck: UInt(),
    versions: Type.Array(
      Type.Object({
        version: UInt(),
        status: Type.Union([Type.Literal('Current'), Type.Literal('Draining'), Type.Literal('Historical')]),
        storageNodes: UInt(),
        gatewayNodes: UInt(),
      }),
    ),
    updateTrackers: Nullable(Type.Record(Type.String(), Type.Object({ ack: UInt(), sync: UInt(), syncAck: UInt() }))),
  }),
)
const UpdateClusterLayoutRequest = named(
  'UpdateClusterLayoutRequest',
  Type.Object({ roles: Opt(Type.Array(NodeRoleChangeRequest)), parameters: Opt(LayoutParameters) }),
)
const PreviewClusterLayoutChangesResponse = named(
  'PreviewClusterLayoutChangesResponse',
  Type.Union([Type.Object({ error: Str() }), Type.Object({ message: StrArray(), newLayout: GetClusterLayoutResponse })]),
)
const ApplyClusterLayoutRequest = named('ApplyClusterLayoutRequest', Type.Object({ version: UInt() }))
const ApplyClusterLayoutResponse = named(
  'ApplyClusterLayoutResponse',
  Type.Object({ message: StrArray(), layout: GetClusterLayoutResponse }),
)
const ClusterLayoutSkipDeadNodesRequest = named(
  'ClusterLayoutSkipDeadNodesRequest',
  Type.Object({ version: UInt(), allowMissingData: Opt(Bool()) }),
)
const ClusterLayoutSkipDeadNodesResponse = named(
  'ClusterLayoutSkipDeadNodesResponse',
  Type.Object({ ackUpdated: StrArray(), syncUpdated: StrArray() }),
)

// ---------------------------------------------------------------------------------------------
// Access keys

const ListKeysResponseItem = named(
  'ListKeysResponseItem',
  Type.Object({ id: Str(), name: Str(), created: DateTime(), expiration: Nullable(DateTime()), expired: Bool() }),
)
const KeyInfoBucketResponse = named(
  'KeyInfoBucketResponse',
  Type.Object({ id: Str(), globalAliases: StrArray(), localAliases: StrArray(), permissions: ApiBucketKeyPerm }),
)
const GetKeyInfoResponse = named(
  'GetKeyInfoResponse',
  Type.Object({
    accessKeyId: Str(),
    name: Str(),
    created: DateTime(),
    expiration: Nullable(DateTime()),
    expired: Bool(),
    secretAccessKey: Nullable(Str()),
    permissions: Type.Object({ createBucket: Bool() }),
    buckets: Type.Array(KeyInfoBucketResponse),
  }),
)
const UpdateKeyRequestBody = named(
  'UpdateKeyRequestBody',
  Type.Object({
    name: Opt(Str()),
    allow: Opt(KeyPerm),
    deny: Opt(KeyPerm),
    expiration: Opt(DateTime()),
    neverExpires: Opt(Bool()),
  }),
)
const ImportKeyRequest = named('ImportKeyRequest', Type.Object({ accessKeyId: Str(), secretAccessKey: Str(), name: Opt(Str()) }))

// ---------------------------------------------------------------------------------------------
// Buckets

const ListBucketsResponseItem = named(
  'ListBucketsResponseItem',
  Type.Object({
    id: Str(),
    created: DateTime(),
    globalAliases: StrArray(),
    localAliases: Type.Array(Type.Object({ accessKeyId: Str(), alias: Str() })),
  }),
)
const GetBucketInfoKey = named(
  'GetBucketInfoKey',
  Type.Object({ accessKeyId: Str(), name: Str(), permissions: ApiBucketKeyPerm, bucketLocalAliases: StrArray() }),
)
const GetBucketInfoWebsiteResponse = named(
  'GetBucketInfoWebsiteResponse',
  Type.Object({ indexDocument: Str(), errorDocument: Nullable(Str()) }),
)
const GetBucketInfoResponse = named(
  'GetBucketInfoResponse',
  Type.Object({
    id: Str(),
    created: DateTime(),
    globalAliases: StrArray(),
    websiteAccess: Bool(),
    websiteConfig: Nullable(GetBucketInfoWebsiteResponse),
    keys: Type.Array(GetBucketInfoKey),
    objects: UInt(),
    bytes: UInt(),
    unfinishedUploads: UInt(),
    unfinishedMultipartUploads: UInt(),
    unfinishedMultipartUploadParts: UInt(),
    unfinishedMultipartUploadBytes: UInt(),
    quotas: ApiBucketQuotas,
  }),
)
const CreateBucketLocalAlias = named(
  'CreateBucketLocalAlias',
  Type.Object({ accessKeyId: Str(), alias: Str(), allow: Opt(ApiBucketKeyPermRequest) }),
)
const CreateBucketRequest = named(
  'CreateBucketRequest',
  Type.Object({ globalAlias: Opt(Str()), localAlias: Opt(CreateBucketLocalAlias) }),
)
const UpdateBucketWebsiteAccess = named(
  'UpdateBucketWebsiteAccess',
  Type.Object({ enabled: Bool(), indexDocument: Opt(Str()), errorDocument: Opt(Str()) }),
)
const UpdateBucketRequestBody = named(
  'UpdateBucketRequestBody',
  Type.Object({ websiteAccess: Opt(UpdateBucketWebsiteAccess), quotas: Opt(ApiBucketQuotasRequest) }),
)
const CleanupIncompleteUploadsRequest = named(
  'CleanupIncompleteUploadsRequest',
  Type.Object({ bucketId: Str(), olderThanSecs: UInt() }),
)
const CleanupIncompleteUploadsResponse = named('CleanupIncompleteUploadsResponse', Type.Object({ uploadsDeleted: UInt() }))
const InspectObjectBlock = named(
  'InspectObjectBlock',
  Type.Object({ partNumber: UInt(), offset: UInt(), hash: Str(), size: UInt() }),
)
const InspectObjectVersion = named(
  'InspectObjectVersion',
  Type.Object({
    uuid: Str(),
    timestamp: DateTime(),
    encrypted: Bool(),
    uploading: Bool(),
    aborted: Bool(),
    deleteMarker: Bool(),
    inline: Bool(),
    size: Nullable(UInt()),
    etag: Nullable(Str()),
    headers: Type.Array(Type.Tuple([Str(), Str()])),
    blocks: Type.Array(InspectObjectBlock),
  }),
)
const InspectObjectResponse = named(
  'InspectObjectResponse',
  Type.Object({ bucketId: Str(), key: Str(), versions: Type.Array(InspectObjectVersion) }),
)
const BucketKeyPermChangeRequest = named(
  'BucketKeyPermChangeRequest',
  Type.Object({ bucketId: Str(), accessKeyId: Str(), permissions: ApiBucketKeyPermRequest }),
)
const BucketAliasRequest = named(
  'BucketAliasRequest',
  Type.Object({ bucketId: Str(), globalAlias: Opt(Str()), localAlias: Opt(Str()), accessKeyId: Opt(Str()) }),
)

// ---------------------------------------------------------------------------------------------
// Nodes, workers, repairs, blocks (node-scoped)

const LocalGetNodeInfoResponse = named(
  'LocalGetNodeInfoResponse',
  Type.Object({
    nodeId: Str(),
    garageVersion: Str(),
    garageFeatures: Nullable(StrArray()),
    rustVersion: Str(),
    dbEngine: Str(),
    rpcAddress: Type.Optional(Nullable(Str())),
  }),
)
const RepairType = named(
  'RepairType',
  Type.Union([
    Type.Literal('tables'),
    Type.Literal('blocks'),
    Type.Literal('versions'),
    Type.Literal('multipartUploads'),
    Type.Literal('blockRefs'),
    Type.Literal('blockRc'),
    Type.Literal('rebalance'),
    Type.Object(
      {
        scrub: Type.Union([Type.Literal('start'), Type.Literal('pause'), Type.Literal('resume'), Type.Literal('cancel')]),
      },
      { additionalProperties: false },
    ),
  ]),
)
const LaunchRepairOperationRequest = named('LaunchRepairOperationRequest', Type.Object({ repairType: RepairType }))
const WorkerStateResp = named(
  'WorkerStateResp',
  Type.Union([
    Type.Literal('busy'),
    Type.Object({ throttled: Type.Object({ durationSecs: Type.Number({ minimum: 0 }) }) }),
    Type.Literal('idle'),
    Type.Literal('done'),
  ]),
)
const WorkerInfoResp = named(
  'WorkerInfoResp',
  Type.Object({
    id: UInt(),
    name: Str(),
    state: WorkerStateResp,
    errors: UInt(),
    consecutiveErrors: UInt(),
    lastError: Nullable(Type.Object({ message: Str(), secsAgo: UInt() })),
    tranquility: Nullable(UInt()),
    progress: Nullable(Str()),
    queueLength: Nullable(UInt()),
    persistentErrors: Nullable(UInt()),
    freeform: StrArray(),
  }),
)
const ListWorkersRequest = named('ListWorkersRequest', Type.Object({ busyOnly: Opt(Bool()), errorOnly: Opt(Bool()) }))
const GetWorkerInfoRequest = named('GetWorkerInfoRequest', Type.Object({ id: UInt() }))
const GetWorkerVariableRequest = named('GetWorkerVariableRequest', Type.Object({ variable: Opt(Str()) }))
const SetWorkerVariableRequest = named('SetWorkerVariableRequest', Type.Object({ variable: Str(), value: Str() }))
const SetWorkerVariableResponse = named('SetWorkerVariableResponse', Type.Object({ variable: Str(), value: Str() }))
const BlockError = named(
  'BlockError',
  Type.Object({ blockHash: Str(), refcount: UInt(), errorCount: UInt(), lastTrySecsAgo: UInt(), nextTryInSecs: UInt() }),
)
const GetBlockInfoRequest = named('GetBlockInfoRequest', Type.Object({ blockHash: Str() }))
const BlockVersionBacklink = named(
  'BlockVersionBacklink',
  Type.Union([
    Type.Object({ object: Type.Object({ bucketId: Str(), key: Str() }) }),
    Type.Object({
      upload: Type.Object({
        uploadId: Str(),
        uploadDeleted: Bool(),
        uploadGarbageCollected: Bool(),
        bucketId: Nullable(Str()),
        key: Nullable(Str()),
      }),
    }),
  ]),
)
const BlockVersion = named(
  'BlockVersion',
  Type.Object({
    versionId: Str(),
    refDeleted: Bool(),
    versionDeleted: Bool(),
    garbageCollected: Bool(),
    backlink: Nullable(BlockVersionBacklink),
  }),
)
const GetBlockInfoResponse = named(
  'GetBlockInfoResponse',
  Type.Object({ blockHash: Str(), refcount: UInt(), versions: Type.Array(BlockVersion) }),
)
const RetryBlockResyncRequest = named(
  'RetryBlockResyncRequest',
  Type.Union([Type.Object({ all: Bool() }), Type.Object({ blockHashes: StrArray() })]),
)
const RetryBlockResyncResponse = named('RetryBlockResyncResponse', Type.Object({ count: UInt() }))
const PurgeBlocksRequest = named('PurgeBlocksRequest', StrArray())
const PurgeBlocksResponse = named(
  'PurgeBlocksResponse',
  Type.Object({ blocksPurged: UInt(), objectsDeleted: UInt(), uploadsDeleted: UInt(), versionsDeleted: UInt() }),
)

// ---------------------------------------------------------------------------------------------
// Query strings

const Q = Str
const IdQuery = Type.Object({ id: Q() })
const NodeQuery = Type.Object({ node: Type.String({ description: '`self`, `*` or a node id (prefix)' }) })
const BoolQuery = Type.Union([Type.Literal('true'), Type.Literal('false'), Type.Literal('')])

// ---------------------------------------------------------------------------------------------
// The endpoints

type Method = 'GET' | 'POST'

/** What the contract says about one endpoint. */
export interface EndpointContract {
  readonly method: Method
  /** OpenAPI tag (Garage's grouping). */
  readonly tag: string
  /** Addresses nodes through `?node=` and answers `{ success, error }` per node. */
  readonly perNode?: true
  /** Query parameters, all strings. */
  readonly query?: TSchema
  /** JSON body; absent: any body is ignored. */
  readonly body?: TSchema
  /** The answer on success (`null` when absent). */
  readonly response?: TSchema
  /** Not built yet: answers 501 NotImplemented. */
  readonly notImplemented?: true
}

const Null = Type.Null()

/** Every v2 endpoint (port of garage_api_admin::router_v2's table and api.rs's types). */
export const ADMIN_API = {
  // Cluster
  GetClusterStatus: { method: 'GET', tag: 'Cluster', response: GetClusterStatusResponse },
  GetClusterHealth: { method: 'GET', tag: 'Cluster', response: GetClusterHealthResponse },
  GetClusterStatistics: { method: 'GET', tag: 'Cluster', response: FreeformResponse },
  ConnectClusterNodes: {
    method: 'POST',
    tag: 'Cluster',
    body: ConnectClusterNodesRequest,
    response: Type.Array(ConnectNodeResponse),
  },
  // Admin API tokens
  ListAdminTokens: { method: 'GET', tag: 'Admin API token', response: Type.Array(GetAdminTokenInfoResponse) },
  GetAdminTokenInfo: {
    method: 'GET',
    tag: 'Admin API token',
    query: Type.Object({ id: Type.Optional(Q()), search: Type.Optional(Q()) }),
    response: GetAdminTokenInfoResponse,
  },
  GetCurrentAdminTokenInfo: { method: 'GET', tag: 'Admin API token', response: GetAdminTokenInfoResponse },
  CreateAdminToken: {
    method: 'POST',
    tag: 'Admin API token',
    body: UpdateAdminTokenRequestBody,
    response: CreateAdminTokenResponse,
  },
  UpdateAdminToken: {
    method: 'POST',
    tag: 'Admin API token',
    query: IdQuery,
    body: UpdateAdminTokenRequestBody,
    response: GetAdminTokenInfoResponse,
  },
  DeleteAdminToken: { method: 'POST', tag: 'Admin API token', query: IdQuery, response: Null },
  // Layout
  GetClusterLayout: { method: 'GET', tag: 'Cluster layout', response: GetClusterLayoutResponse },
  GetClusterLayoutHistory: { method: 'GET', tag: 'Cluster layout', response: GetClusterLayoutHistoryResponse },
  UpdateClusterLayout: {
    method: 'POST',
    tag: 'Cluster layout',
    body: UpdateClusterLayoutRequest,
    response: GetClusterLayoutResponse,
  },
  PreviewClusterLayoutChanges: { method: 'POST', tag: 'Cluster layout', response: PreviewClusterLayoutChangesResponse },
  ApplyClusterLayout: {
    method: 'POST',
    tag: 'Cluster layout',
    body: ApplyClusterLayoutRequest,
    response: ApplyClusterLayoutResponse,
  },
  RevertClusterLayout: { method: 'POST', tag: 'Cluster layout', response: GetClusterLayoutResponse },
  ClusterLayoutSkipDeadNodes: {
    method: 'POST',
    tag: 'Cluster layout',
    body: ClusterLayoutSkipDeadNodesRequest,
    response: ClusterLayoutSkipDeadNodesResponse,
  },
  // Access keys
  ListKeys: { method: 'GET', tag: 'Access key', response: Type.Array(ListKeysResponseItem) },
  GetKeyInfo: {
    method: 'GET',
    tag: 'Access key',
    query: Type.Object({ id: Type.Optional(Q()), search: Type.Optional(Q()), showSecretKey: Type.Optional(BoolQuery) }),
    response: GetKeyInfoResponse,
  },
  CreateKey: { method: 'POST', tag: 'Access key', body: UpdateKeyRequestBody, response: GetKeyInfoResponse },
  ImportKey: { method: 'POST', tag: 'Access key', body: ImportKeyRequest, response: GetKeyInfoResponse },
  UpdateKey: { method: 'POST', tag: 'Access key', query: IdQuery, body: UpdateKeyRequestBody, response: GetKeyInfoResponse },
  DeleteKey: { method: 'POST', tag: 'Access key', query: IdQuery, response: Null },
  // Buckets
  ListBuckets: { method: 'GET', tag: 'Bucket', response: Type.Array(ListBucketsResponseItem) },
  GetBucketInfo: {
    method: 'GET',
    tag: 'Bucket',
    query: Type.Object({ id: Type.Optional(Q()), globalAlias: Type.Optional(Q()), search: Type.Optional(Q()) }),
    response: GetBucketInfoResponse,
  },
  CreateBucket: { method: 'POST', tag: 'Bucket', body: CreateBucketRequest, response: GetBucketInfoResponse },
  UpdateBucket: { method: 'POST', tag: 'Bucket', query: IdQuery, body: UpdateBucketRequestBody, response: GetBucketInfoResponse },
  DeleteBucket: { method: 'POST', tag: 'Bucket', query: IdQuery, response: Null },
  CleanupIncompleteUploads: {
    method: 'POST',
    tag: 'Bucket',
    body: CleanupIncompleteUploadsRequest,
    response: CleanupIncompleteUploadsResponse,
  },
  InspectObject: {
    method: 'GET',
    tag: 'Bucket',
    query: Type.Object({ bucketId: Q(), key: Q() }),
    response: InspectObjectResponse,
  },
  // Permissions and aliases
  AllowBucketKey: { method: 'POST', tag: 'Permission', body: BucketKeyPermChangeRequest, response: GetBucketInfoResponse },
  DenyBucketKey: { method: 'POST', tag: 'Permission', body: BucketKeyPermChangeRequest, response: GetBucketInfoResponse },
  AddBucketAlias: { method: 'POST', tag: 'Bucket alias', body: BucketAliasRequest, response: GetBucketInfoResponse },
  RemoveBucketAlias: { method: 'POST', tag: 'Bucket alias', body: BucketAliasRequest, response: GetBucketInfoResponse },
  // Nodes
  GetNodeInfo: { method: 'GET', tag: 'Node', perNode: true, query: NodeQuery, response: Multi(LocalGetNodeInfoResponse) },
  GetNodeStatistics: { method: 'GET', tag: 'Node', perNode: true, query: NodeQuery, response: Multi(FreeformResponse) },
  CreateMetadataSnapshot: {
    method: 'POST',
    tag: 'Node',
    perNode: true,
    query: NodeQuery,
    response: Multi(Null),
    notImplemented: true,
  },
  LaunchRepairOperation: {
    method: 'POST',
    tag: 'Node',
    perNode: true,
    query: NodeQuery,
    body: LaunchRepairOperationRequest,
    response: Multi(Null),
  },
  // Workers
  ListWorkers: {
    method: 'POST',
    tag: 'Worker',
    perNode: true,
    query: NodeQuery,
    body: ListWorkersRequest,
    response: Multi(Type.Array(WorkerInfoResp)),
  },
  GetWorkerInfo: {
    method: 'POST',
    tag: 'Worker',
    perNode: true,
    query: NodeQuery,
    body: GetWorkerInfoRequest,
    response: Multi(WorkerInfoResp),
  },
  GetWorkerVariable: {
    method: 'POST',
    tag: 'Worker',
    perNode: true,
    query: NodeQuery,
    body: GetWorkerVariableRequest,
    response: Multi(Type.Record(Type.String(), Type.String())),
  },
  SetWorkerVariable: {
    method: 'POST',
    tag: 'Worker',
    perNode: true,
    query: NodeQuery,
    body: SetWorkerVariableRequest,
    response: Multi(SetWorkerVariableResponse),
  },
  // Blocks
  ListBlockErrors: { method: 'GET', tag: 'Block', perNode: true, query: NodeQuery, response: Multi(Type.Array(BlockError)) },
  GetBlockInfo: {
    method: 'POST',
    tag: 'Block',
    perNode: true,
    query: NodeQuery,
    body: GetBlockInfoRequest,
    response: Multi(GetBlockInfoResponse),
  },
  RetryBlockResync: {
    method: 'POST',
    tag: 'Block',
    perNode: true,
    query: NodeQuery,
    body: RetryBlockResyncRequest,
    response: Multi(RetryBlockResyncResponse),
  },
  PurgeBlocks: {
    method: 'POST',
    tag: 'Block',
    perNode: true,
    query: NodeQuery,
    body: PurgeBlocksRequest,
    response: Multi(PurgeBlocksResponse),
  },
} as const satisfies Record<string, EndpointContract>

// ---------------------------------------------------------------------------------------------
// Static types (public through lib/index.ts)

/** The name of an admin API v2 endpoint (`/v2/<name>`; also the name a token's scope lists). */
export type AdminApiEndpointName = keyof typeof ADMIN_API

type Contract = typeof ADMIN_API
type StaticOf<S> = S extends TSchema ? Static<S> : never

/** What endpoint `E` answers on success (its JSON body, parsed). */
export type AdminApiResponse<E extends AdminApiEndpointName> = Contract[E] extends { response: infer S } ? StaticOf<S> : null

/** The JSON body endpoint `E` takes (`undefined` for endpoints without one). */
export type AdminApiRequestBody<E extends AdminApiEndpointName> = Contract[E] extends { body: infer S } ? StaticOf<S> : undefined

/** The query parameters endpoint `E` takes (all strings on the wire). */
export type AdminApiQuery<E extends AdminApiEndpointName> = Contract[E] extends { query: infer S }
  ? StaticOf<S>
  : Record<string, never>

/** Garage's answer of a node-scoped endpoint: each addressed node's result or error message. */
export type AdminApiMultiResponse<T> = { success: Record<string, T>; error: Record<string, string> }

/** An admin API error body: `{ code, message, region, path }`. */
export type AdminApiErrorResponse = Static<typeof ErrorResponse>
/** Permissions of an access key on a bucket. */
export type ApiBucketKeyPerm = Static<typeof ApiBucketKeyPerm>
/** Quotas of a bucket (null: no limit). */
export type ApiBucketQuotas = Static<typeof ApiBucketQuotas>
/** One node of GetClusterStatus. */
export type NodeResp = Static<typeof NodeResp>
/** Answer of GetClusterStatus. */
export type GetClusterStatusResponse = Static<typeof GetClusterStatusResponse>
/** Answer of GetClusterHealth. */
export type GetClusterHealthResponse = Static<typeof GetClusterHealthResponse>
/** Answer of GetClusterStatistics and, per node, GetNodeStatistics. */
export type FreeformResponse = Static<typeof FreeformResponse>
/** An admin API token (ListAdminTokens, GetAdminTokenInfo, UpdateAdminToken). */
export type GetAdminTokenInfoResponse = Static<typeof GetAdminTokenInfoResponse>
/** Answer of CreateAdminToken: the token and its secret, shown once. */
export type CreateAdminTokenResponse = Static<typeof CreateAdminTokenResponse>
/** Body of CreateAdminToken and UpdateAdminToken. */
export type UpdateAdminTokenRequestBody = Static<typeof UpdateAdminTokenRequestBody>
/** `"maximum"` or `{ atLeast: n }`. */
export type ApiZoneRedundancy = Static<typeof ZoneRedundancy>
/** Parameters of a layout version. */
export type ApiLayoutParameters = Static<typeof LayoutParameters>
/** A staged role change: a new role, or `{ id, remove: true }`. */
export type NodeRoleChange = Static<typeof NodeRoleChange>
/** A role change in an UpdateClusterLayout request. */
export type NodeRoleChangeRequest = Static<typeof NodeRoleChangeRequest>
/** One node's role in a layout version. */
export type LayoutNodeRole = Static<typeof LayoutNodeRole>
/** Answer of GetClusterLayout (and of the calls that change it). */
export type GetClusterLayoutResponse = Static<typeof GetClusterLayoutResponse>
/** Answer of GetClusterLayoutHistory. */
export type GetClusterLayoutHistoryResponse = Static<typeof GetClusterLayoutHistoryResponse>
/** Body of UpdateClusterLayout. */
export type UpdateClusterLayoutRequest = Static<typeof UpdateClusterLayoutRequest>
/** Answer of PreviewClusterLayoutChanges: the new layout, or why it cannot be computed. */
export type PreviewClusterLayoutChangesResponse = Static<typeof PreviewClusterLayoutChangesResponse>
/** Answer of ApplyClusterLayout. */
export type ApplyClusterLayoutResponse = Static<typeof ApplyClusterLayoutResponse>
/** Answer of ClusterLayoutSkipDeadNodes. */
export type ClusterLayoutSkipDeadNodesResponse = Static<typeof ClusterLayoutSkipDeadNodesResponse>
/** One access key of ListKeys. */
export type ListKeysResponseItem = Static<typeof ListKeysResponseItem>
/** An access key with its buckets (GetKeyInfo, CreateKey, ImportKey, UpdateKey). */
export type GetKeyInfoResponse = Static<typeof GetKeyInfoResponse>
/** Body of CreateKey and UpdateKey. */
export type UpdateKeyRequestBody = Static<typeof UpdateKeyRequestBody>
/** One bucket of ListBuckets. */
export type ListBucketsResponseItem = Static<typeof ListBucketsResponseItem>
/** A bucket with its keys and usage (GetBucketInfo and the calls that change a bucket). */
export type GetBucketInfoResponse = Static<typeof GetBucketInfoResponse>
/** Body of CreateBucket. */
export type CreateBucketRequest = Static<typeof CreateBucketRequest>
/** Body of UpdateBucket. */
export type UpdateBucketRequestBody = Static<typeof UpdateBucketRequestBody>
/** Answer of InspectObject. */
export type InspectObjectResponse = Static<typeof InspectObjectResponse>
/** One node's answer to GetNodeInfo. */
export type LocalGetNodeInfoResponse = Static<typeof LocalGetNodeInfoResponse>
/** A repair LaunchRepairOperation can start. */
export type ApiRepairType = Static<typeof RepairType>
/** State of a background worker. */
export type WorkerStateResp = Static<typeof WorkerStateResp>
/** A background worker (ListWorkers, GetWorkerInfo). */
export type WorkerInfoResp = Static<typeof WorkerInfoResp>
/** A block whose resync failed (ListBlockErrors). */
export type BlockError = Static<typeof BlockError>
/** One node's answer to GetBlockInfo. */
export type GetBlockInfoResponse = Static<typeof GetBlockInfoResponse>
/** One node's answer to PurgeBlocks. */
export type PurgeBlocksResponse = Static<typeof PurgeBlocksResponse>
