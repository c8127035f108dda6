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

/** Pattern of an RFC 3339 date-time; openapi.ts renders it as `format: date-time`. @internal */
export const RFC3339_PATTERN = '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?(Z|[+-]\\d{2}:\\d{2})$'
const DateTime = () => Type.String({ pattern: RFC3339_PATTERN, description: 'RFC 3339 date-time' })

/** Names a schema as a component of the OpenAPI document (openapi.ts hoists titled schemas). */
const named = <T extends TSchema>(title: string, t: T): T => ({ ...t, title })

/** Garage's answer of a node-scoped endpoint: `{ success: { <node id>: T }, error: { <node id>: message } }`. */
const Multi = <T extends TSchema>(t: T) =>
  Type.Object({ success: Type.Record(Type.String(), t), error: Type.Record(Type.String(), Type.String()) })

// ---------------------------------------------------------------------------------------------
// Shared shapes

const ApiBucketKeyPermSchema = named('ApiBucketKeyPerm', Type.Object({ read: Bool(), write: Bool(), owner: Bool() }))
/** Permissions in a request: absent flags are false. */
const ApiBucketKeyPermRequestSchema = named(
  'ApiBucketKeyPermRequest',
  Type.Object({ read: Opt(Bool()), write: Opt(Bool()), owner: Opt(Bool()) }),
)
const ApiBucketQuotasSchema = named('ApiBucketQuotas', Type.Object({ maxSize: Nullable(UInt()), maxObjects: Nullable(UInt()) }))
const ApiBucketQuotasRequestSchema = named(
  'ApiBucketQuotasRequest',
  Type.Object({ maxSize: Opt(UInt()), maxObjects: Opt(UInt()) }),
)
const KeyPermSchema = named('KeyPerm', Type.Object({ createBucket: Opt(Bool()) }))

/** @internal */
export const ErrorResponseSchema = named(
  'ErrorResponse',
  Type.Object({ code: Str(), message: Str(), region: Type.Optional(Str()), path: Type.Optional(Str()) }),
)

const FreeformResponseSchema = named('FreeformResponse', Type.Object({ freeform: Str() }))

// ---------------------------------------------------------------------------------------------
// Cluster

const FreeSpaceRespSchema = named('FreeSpaceResp', Type.Object({ available: UInt(), total: UInt() }))
const NodeAssignedRoleSchema = named(
  'NodeAssignedRole',
  Type.Object({ zone: Str(), capacity: Nullable(UInt()), tags: StrArray() }),
)
const NodeRespSchema = named(
  'NodeResp',
  Type.Object({
    id: Str(),
    garageVersion: Type.Optional(Nullable(Str())),
    role: Nullable(NodeAssignedRoleSchema),
    addr: Nullable(Str()),
    hostname: Nullable(Str()),
    isUp: Bool(),
    lastSeenSecsAgo: Nullable(UInt()),
    draining: Bool(),
    dataPartition: Nullable(FreeSpaceRespSchema),
    metadataPartition: Nullable(FreeSpaceRespSchema),
  }),
)
const GetClusterStatusResponseSchema = named(
  'GetClusterStatusResponse',
  Type.Object({ layoutVersion: UInt(), nodes: Type.Array(NodeRespSchema) }),
)
const GetClusterHealthResponseSchema = named(
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
const ConnectClusterNodesRequestSchema = named('ConnectClusterNodesRequest', StrArray())
const ConnectNodeResponseSchema = named('ConnectNodeResponse', Type.Object({ success: Bool(), error: Nullable(Str()) }))

// ---------------------------------------------------------------------------------------------
// Admin API tokens

const GetAdminTokenInfoResponseSchema = named(
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
const CreateAdminTokenResponseSchema = named(
  'CreateAdminTokenResponse',
  Type.Object({ ...GetAdminTokenInfoResponseSchema.properties, secretToken: Str() }),
)
const UpdateAdminTokenRequestBodySchema = named(
  'UpdateAdminTokenRequestBody',
  Type.Object({ name: Opt(Str()), expiration: Opt(DateTime()), neverExpires: Opt(Bool()), scope: Opt(StrArray()) }),
)

// ---------------------------------------------------------------------------------------------
// Cluster layout

const ZoneRedundancySchema = named(
  'ZoneRedundancy',
  Type.Union([Type.Literal('maximum'), Type.Object({ atLeast: UInt() }, { additionalProperties: false })]),
)
const LayoutParametersSchema = named('LayoutParameters', Type.Object({ zoneRedundancy: ZoneRedundancySchema }))
const NodeRoleRemove = Type.Object({ id: Str(), remove: Type.Literal(true) })
/** A staged role change as the server reports it. */
const NodeRoleChangeSchema = named(
  'NodeRoleChange',
  Type.Union([
    NodeRoleRemove,
    Type.Object({ id: Str(), zone: Str(), capacity: Nullable(UInt()), tags: Type.Optional(StrArray()) }),
  ]),
)
/** A role change in a request: capacity null or absent is a gateway, tags default to none. */
const NodeRoleChangeRequestSchema = named(
  'NodeRoleChangeRequest',
  Type.Union([NodeRoleRemove, Type.Object({ id: Str(), zone: Str(), capacity: Opt(UInt()), tags: Opt(StrArray()) })]),
)
const LayoutNodeRoleSchema = named(
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
const GetClusterLayoutResponseSchema = named(
  'GetClusterLayoutResponse',
  Type.Object({
    version: UInt(),
    roles: Type.Array(LayoutNodeRoleSchema),
    parameters: LayoutParametersSchema,
    partitionSize: UInt(),
    stagedRoleChanges: Type.Array(NodeRoleChangeSchema),
    stagedParameters: Nullable(LayoutParametersSchema),
  }),
)
const GetClusterLayoutHistoryResponseSchema = named(
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
const UpdateClusterLayoutRequestSchema = named(
  'UpdateClusterLayoutRequest',
  Type.Object({ roles: Opt(Type.Array(NodeRoleChangeRequestSchema)), parameters: Opt(LayoutParametersSchema) }),
)
const PreviewClusterLayoutChangesResponseSchema = named(
  'PreviewClusterLayoutChangesResponse',
  Type.Union([Type.Object({ error: Str() }), Type.Object({ message: StrArray(), newLayout: GetClusterLayoutResponseSchema })]),
)
const ApplyClusterLayoutRequestSchema = named('ApplyClusterLayoutRequest', Type.Object({ version: UInt() }))
const ApplyClusterLayoutResponseSchema = named(
  'ApplyClusterLayoutResponse',
  Type.Object({ message: StrArray(), layout: GetClusterLayoutResponseSchema }),
)
const ClusterLayoutSkipDeadNodesRequestSchema = named(
  'ClusterLayoutSkipDeadNodesRequest',
  Type.Object({ version: UInt(), allowMissingData: Opt(Bool()) }),
)
const ClusterLayoutSkipDeadNodesResponseSchema = named(
  'ClusterLayoutSkipDeadNodesResponse',
  Type.Object({ ackUpdated: StrArray(), syncUpdated: StrArray() }),
)

// ---------------------------------------------------------------------------------------------
// Access keys

const ListKeysResponseItemSchema = named(
  'ListKeysResponseItem',
  Type.Object({ id: Str(), name: Str(), created: DateTime(), expiration: Nullable(DateTime()), expired: Bool() }),
)
const KeyInfoBucketResponseSchema = named(
  'KeyInfoBucketResponse',
  Type.Object({ id: Str(), globalAliases: StrArray(), localAliases: StrArray(), permissions: ApiBucketKeyPermSchema }),
)
const GetKeyInfoResponseSchema = named(
  'GetKeyInfoResponse',
  Type.Object({
    accessKeyId: Str(),
    name: Str(),
    created: DateTime(),
    expiration: Nullable(DateTime()),
    expired: Bool(),
    secretAccessKey: Nullable(Str()),
    permissions: Type.Object({ createBucket: Bool() }),
    buckets: Type.Array(KeyInfoBucketResponseSchema),
  }),
)
const UpdateKeyRequestBodySchema = named(
  'UpdateKeyRequestBody',
  Type.Object({
    name: Opt(Str()),
    allow: Opt(KeyPermSchema),
    deny: Opt(KeyPermSchema),
    expiration: Opt(DateTime()),
    neverExpires: Opt(Bool()),
  }),
)
const ImportKeyRequestSchema = named(
  'ImportKeyRequest',
  Type.Object({ accessKeyId: Str(), secretAccessKey: Str(), name: Opt(Str()) }),
)

// ---------------------------------------------------------------------------------------------
// Buckets

const ListBucketsResponseItemSchema = named(
  'ListBucketsResponseItem',
  Type.Object({
    id: Str(),
    created: DateTime(),
    globalAliases: StrArray(),
    localAliases: Type.Array(Type.Object({ accessKeyId: Str(), alias: Str() })),
  }),
)
const GetBucketInfoKeySchema = named(
  'GetBucketInfoKey',
  Type.Object({ accessKeyId: Str(), name: Str(), permissions: ApiBucketKeyPermSchema, bucketLocalAliases: StrArray() }),
)
const GetBucketInfoWebsiteResponseSchema = named(
  'GetBucketInfoWebsiteResponse',
  Type.Object({ indexDocument: Str(), errorDocument: Nullable(Str()) }),
)
const GetBucketInfoResponseSchema = named(
  'GetBucketInfoResponse',
  Type.Object({
    id: Str(),
    created: DateTime(),
    globalAliases: StrArray(),
    websiteAccess: Bool(),
    websiteConfig: Nullable(GetBucketInfoWebsiteResponseSchema),
    keys: Type.Array(GetBucketInfoKeySchema),
    objects: UInt(),
    bytes: UInt(),
    unfinishedUploads: UInt(),
    unfinishedMultipartUploads: UInt(),
    unfinishedMultipartUploadParts: UInt(),
    unfinishedMultipartUploadBytes: UInt(),
    quotas: ApiBucketQuotasSchema,
    /** Extension: whether a bucket policy is set (S3 PutBucketPolicy). */
    bucketPolicy: Opt(Bool()),
    /** Extension: whether the bucket's canned ACL is `public-read` (anonymous reads). */
    publicRead: Opt(Bool()),
    /** S3 versioning state, `Enabled` or `Suspended`; absent for a bucket never versioned (beyond Garage). */
    versioning: Opt(Str()),
    /** True when S3 Object Lock is enabled on the bucket; absent otherwise (beyond Garage). */
    objectLockEnabled: Opt(Bool()),
  }),
)
const CreateBucketLocalAliasSchema = named(
  'CreateBucketLocalAlias',
  Type.Object({ accessKeyId: Str(), alias: Str(), allow: Opt(ApiBucketKeyPermRequestSchema) }),
)
const CreateBucketRequestSchema = named(
  'CreateBucketRequest',
  Type.Object({ globalAlias: Opt(Str()), localAlias: Opt(CreateBucketLocalAliasSchema) }),
)
const UpdateBucketWebsiteAccessSchema = named(
  'UpdateBucketWebsiteAccess',
  Type.Object({ enabled: Bool(), indexDocument: Opt(Str()), errorDocument: Opt(Str()) }),
)
const UpdateBucketRequestBodySchema = named(
  'UpdateBucketRequestBody',
  Type.Object({ websiteAccess: Opt(UpdateBucketWebsiteAccessSchema), quotas: Opt(ApiBucketQuotasRequestSchema) }),
)
const CleanupIncompleteUploadsRequestSchema = named(
  'CleanupIncompleteUploadsRequest',
  Type.Object({ bucketId: Str(), olderThanSecs: UInt() }),
)
const CleanupIncompleteUploadsResponseSchema = named('CleanupIncompleteUploadsResponse', Type.Object({ uploadsDeleted: UInt() }))
const InspectObjectBlockSchema = named(
  'InspectObjectBlock',
  Type.Object({ partNumber: UInt(), offset: UInt(), hash: Str(), size: UInt() }),
)
const InspectObjectVersionSchema = named(
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
    blocks: Type.Array(InspectObjectBlockSchema),
  }),
)
const InspectObjectResponseSchema = named(
  'InspectObjectResponse',
  Type.Object({ bucketId: Str(), key: Str(), versions: Type.Array(InspectObjectVersionSchema) }),
)
const BucketKeyPermChangeRequestSchema = named(
  'BucketKeyPermChangeRequest',
  Type.Object({ bucketId: Str(), accessKeyId: Str(), permissions: ApiBucketKeyPermRequestSchema }),
)
const BucketAliasRequestSchema = named(
  'BucketAliasRequest',
  Type.Object({ bucketId: Str(), globalAlias: Opt(Str()), localAlias: Opt(Str()), accessKeyId: Opt(Str()) }),
)

// ---------------------------------------------------------------------------------------------
// Nodes, workers, repairs, blocks (node-scoped)

const LocalGetNodeInfoResponseSchema = named(
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
const RepairTypeSchema = named(
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
const LaunchRepairOperationRequestSchema = named('LaunchRepairOperationRequest', Type.Object({ repairType: RepairTypeSchema }))
const WorkerStateRespSchema = named(
  'WorkerStateResp',
  Type.Union([
    Type.Literal('busy'),
    Type.Object({ throttled: Type.Object({ durationSecs: Type.Number({ minimum: 0 }) }) }),
    Type.Literal('idle'),
    Type.Literal('done'),
  ]),
)
const WorkerInfoRespSchema = named(
  'WorkerInfoResp',
  Type.Object({
    id: UInt(),
    name: Str(),
    state: WorkerStateRespSchema,
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
const ListWorkersRequestSchema = named('ListWorkersRequest', Type.Object({ busyOnly: Opt(Bool()), errorOnly: Opt(Bool()) }))
const GetWorkerInfoRequestSchema = named('GetWorkerInfoRequest', Type.Object({ id: UInt() }))
const GetWorkerVariableRequestSchema = named('GetWorkerVariableRequest', Type.Object({ variable: Opt(Str()) }))
const SetWorkerVariableRequestSchema = named('SetWorkerVariableRequest', Type.Object({ variable: Str(), value: Str() }))
const SetWorkerVariableResponseSchema = named('SetWorkerVariableResponse', Type.Object({ variable: Str(), value: Str() }))
const BlockErrorSchema = named(
  'BlockError',
  Type.Object({ blockHash: Str(), refcount: UInt(), errorCount: UInt(), lastTrySecsAgo: UInt(), nextTryInSecs: UInt() }),
)
const GetBlockInfoRequestSchema = named('GetBlockInfoRequest', Type.Object({ blockHash: Str() }))
const BlockVersionBacklinkSchema = named(
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
const BlockVersionSchema = named(
  'BlockVersion',
  Type.Object({
    versionId: Str(),
    refDeleted: Bool(),
    versionDeleted: Bool(),
    garbageCollected: Bool(),
    backlink: Nullable(BlockVersionBacklinkSchema),
  }),
)
const GetBlockInfoResponseSchema = named(
  'GetBlockInfoResponse',
  Type.Object({ blockHash: Str(), refcount: UInt(), versions: Type.Array(BlockVersionSchema) }),
)
const RetryBlockResyncRequestSchema = named(
  'RetryBlockResyncRequest',
  Type.Union([Type.Object({ all: Bool() }), Type.Object({ blockHashes: StrArray() })]),
)
const RetryBlockResyncResponseSchema = named('RetryBlockResyncResponse', Type.Object({ count: UInt() }))
const PurgeBlocksRequestSchema = named('PurgeBlocksRequest', StrArray())
const PurgeBlocksResponseSchema = named(
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

/** What the contract says about one endpoint. @internal */
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

/**
 * Every v2 endpoint (port of garage_api_admin::router_v2's table and api.rs's types). Each
 * `X as typeof X` keeps the schema's name in the emitted .d.ts, where its inferred type would be
 * spelled out again in full (about 60 kB of the package). @internal
 */
export const ADMIN_API = {
  // Cluster
  GetClusterStatus: {
    method: 'GET',
    tag: 'Cluster',
    response: GetClusterStatusResponseSchema as typeof GetClusterStatusResponseSchema,
  },
  GetClusterHealth: {
    method: 'GET',
    tag: 'Cluster',
    response: GetClusterHealthResponseSchema as typeof GetClusterHealthResponseSchema,
  },
  GetClusterStatistics: { method: 'GET', tag: 'Cluster', response: FreeformResponseSchema as typeof FreeformResponseSchema },
  ConnectClusterNodes: {
    method: 'POST',
    tag: 'Cluster',
    body: ConnectClusterNodesRequestSchema as typeof ConnectClusterNodesRequestSchema,
    response: Type.Array(ConnectNodeResponseSchema),
  },
  // Admin API tokens
  ListAdminTokens: { method: 'GET', tag: 'Admin API token', response: Type.Array(GetAdminTokenInfoResponseSchema) },
  GetAdminTokenInfo: {
    method: 'GET',
    tag: 'Admin API token',
    query: Type.Object({ id: Type.Optional(Q()), search: Type.Optional(Q()) }),
    response: GetAdminTokenInfoResponseSchema as typeof GetAdminTokenInfoResponseSchema,
  },
  GetCurrentAdminTokenInfo: {
    method: 'GET',
    tag: 'Admin API token',
    response: GetAdminTokenInfoResponseSchema as typeof GetAdminTokenInfoResponseSchema,
  },
  CreateAdminToken: {
    method: 'POST',
    tag: 'Admin API token',
    body: UpdateAdminTokenRequestBodySchema as typeof UpdateAdminTokenRequestBodySchema,
    response: CreateAdminTokenResponseSchema as typeof CreateAdminTokenResponseSchema,
  },
  UpdateAdminToken: {
    method: 'POST',
    tag: 'Admin API token',
    query: IdQuery,
    body: UpdateAdminTokenRequestBodySchema as typeof UpdateAdminTokenRequestBodySchema,
    response: GetAdminTokenInfoResponseSchema as typeof GetAdminTokenInfoResponseSchema,
  },
  DeleteAdminToken: { method: 'POST', tag: 'Admin API token', query: IdQuery, response: Null },
  // Layout
  GetClusterLayout: {
    method: 'GET',
    tag: 'Cluster layout',
    response: GetClusterLayoutResponseSchema as typeof GetClusterLayoutResponseSchema,
  },
  GetClusterLayoutHistory: {
    method: 'GET',
    tag: 'Cluster layout',
    response: GetClusterLayoutHistoryResponseSchema as typeof GetClusterLayoutHistoryResponseSchema,
  },
  UpdateClusterLayout: {
    method: 'POST',
    tag: 'Cluster layout',
    body: UpdateClusterLayoutRequestSchema as typeof UpdateClusterLayoutRequestSchema,
    response: GetClusterLayoutResponseSchema as typeof GetClusterLayoutResponseSchema,
  },
  PreviewClusterLayoutChanges: {
    method: 'POST',
    tag: 'Cluster layout',
    response: PreviewClusterLayoutChangesResponseSchema as typeof PreviewClusterLayoutChangesResponseSchema,
  },
  ApplyClusterLayout: {
    method: 'POST',
    tag: 'Cluster layout',
    body: ApplyClusterLayoutRequestSchema as typeof ApplyClusterLayoutRequestSchema,
    response: ApplyClusterLayoutResponseSchema as typeof ApplyClusterLayoutResponseSchema,
  },
  RevertClusterLayout: {
    method: 'POST',
    tag: 'Cluster layout',
    response: GetClusterLayoutResponseSchema as typeof GetClusterLayoutResponseSchema,
  },
  ClusterLayoutSkipDeadNodes: {
    method: 'POST',
    tag: 'Cluster layout',
    body: ClusterLayoutSkipDeadNodesRequestSchema as typeof ClusterLayoutSkipDeadNodesRequestSchema,
    response: ClusterLayoutSkipDeadNodesResponseSchema as typeof ClusterLayoutSkipDeadNodesResponseSchema,
  },
  // Access keys
  ListKeys: { method: 'GET', tag: 'Access key', response: Type.Array(ListKeysResponseItemSchema) },
  GetKeyInfo: {
    method: 'GET',
    tag: 'Access key',
    query: Type.Object({ id: Type.Optional(Q()), search: Type.Optional(Q()), showSecretKey: Type.Optional(BoolQuery) }),
    response: GetKeyInfoResponseSchema as typeof GetKeyInfoResponseSchema,
  },
  CreateKey: {
    method: 'POST',
    tag: 'Access key',
    body: UpdateKeyRequestBodySchema as typeof UpdateKeyRequestBodySchema,
    response: GetKeyInfoResponseSchema as typeof GetKeyInfoResponseSchema,
  },
  ImportKey: {
    method: 'POST',
    tag: 'Access key',
    body: ImportKeyRequestSchema as typeof ImportKeyRequestSchema,
    response: GetKeyInfoResponseSchema as typeof GetKeyInfoResponseSchema,
  },
  UpdateKey: {
    method: 'POST',
    tag: 'Access key',
    query: IdQuery,
    body: UpdateKeyRequestBodySchema as typeof UpdateKeyRequestBodySchema,
    response: GetKeyInfoResponseSchema as typeof GetKeyInfoResponseSchema,
  },
  DeleteKey: { method: 'POST', tag: 'Access key', query: IdQuery, response: Null },
  // Buckets
  ListBuckets: { method: 'GET', tag: 'Bucket', response: Type.Array(ListBucketsResponseItemSchema) },
  GetBucketInfo: {
    method: 'GET',
    tag: 'Bucket',
    query: Type.Object({ id: Type.Optional(Q()), globalAlias: Type.Optional(Q()), search: Type.Optional(Q()) }),
    response: GetBucketInfoResponseSchema as typeof GetBucketInfoResponseSchema,
  },
  CreateBucket: {
    method: 'POST',
    tag: 'Bucket',
    body: CreateBucketRequestSchema as typeof CreateBucketRequestSchema,
    response: GetBucketInfoResponseSchema as typeof GetBucketInfoResponseSchema,
  },
  UpdateBucket: {
    method: 'POST',
    tag: 'Bucket',
    query: IdQuery,
    body: UpdateBucketRequestBodySchema as typeof UpdateBucketRequestBodySchema,
    response: GetBucketInfoResponseSchema as typeof GetBucketInfoResponseSchema,
  },
  DeleteBucket: { method: 'POST', tag: 'Bucket', query: IdQuery, response: Null },
  CleanupIncompleteUploads: {
    method: 'POST',
    tag: 'Bucket',
    body: CleanupIncompleteUploadsRequestSchema as typeof CleanupIncompleteUploadsRequestSchema,
    response: CleanupIncompleteUploadsResponseSchema as typeof CleanupIncompleteUploadsResponseSchema,
  },
  InspectObject: {
    method: 'GET',
    tag: 'Bucket',
    query: Type.Object({ bucketId: Q(), key: Q() }),
    response: InspectObjectResponseSchema as typeof InspectObjectResponseSchema,
  },
  // Permissions and aliases
  AllowBucketKey: {
    method: 'POST',
    tag: 'Permission',
    body: BucketKeyPermChangeRequestSchema as typeof BucketKeyPermChangeRequestSchema,
    response: GetBucketInfoResponseSchema as typeof GetBucketInfoResponseSchema,
  },
  DenyBucketKey: {
    method: 'POST',
    tag: 'Permission',
    body: BucketKeyPermChangeRequestSchema as typeof BucketKeyPermChangeRequestSchema,
    response: GetBucketInfoResponseSchema as typeof GetBucketInfoResponseSchema,
  },
  AddBucketAlias: {
    method: 'POST',
    tag: 'Bucket alias',
    body: BucketAliasRequestSchema as typeof BucketAliasRequestSchema,
    response: GetBucketInfoResponseSchema as typeof GetBucketInfoResponseSchema,
  },
  RemoveBucketAlias: {
    method: 'POST',
    tag: 'Bucket alias',
    body: BucketAliasRequestSchema as typeof BucketAliasRequestSchema,
    response: GetBucketInfoResponseSchema as typeof GetBucketInfoResponseSchema,
  },
  // Nodes
  GetNodeInfo: { method: 'GET', tag: 'Node', perNode: true, query: NodeQuery, response: Multi(LocalGetNodeInfoResponseSchema) },
  GetNodeStatistics: { method: 'GET', tag: 'Node', perNode: true, query: NodeQuery, response: Multi(FreeformResponseSchema) },
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
    body: LaunchRepairOperationRequestSchema as typeof LaunchRepairOperationRequestSchema,
    response: Multi(Null),
  },
  // Workers
  ListWorkers: {
    method: 'POST',
    tag: 'Worker',
    perNode: true,
    query: NodeQuery,
    body: ListWorkersRequestSchema as typeof ListWorkersRequestSchema,
    response: Multi(Type.Array(WorkerInfoRespSchema)),
  },
  GetWorkerInfo: {
    method: 'POST',
    tag: 'Worker',
    perNode: true,
    query: NodeQuery,
    body: GetWorkerInfoRequestSchema as typeof GetWorkerInfoRequestSchema,
    response: Multi(WorkerInfoRespSchema),
  },
  GetWorkerVariable: {
    method: 'POST',
    tag: 'Worker',
    perNode: true,
    query: NodeQuery,
    body: GetWorkerVariableRequestSchema as typeof GetWorkerVariableRequestSchema,
    response: Multi(Type.Record(Type.String(), Type.String())),
  },
  SetWorkerVariable: {
    method: 'POST',
    tag: 'Worker',
    perNode: true,
    query: NodeQuery,
    body: SetWorkerVariableRequestSchema as typeof SetWorkerVariableRequestSchema,
    response: Multi(SetWorkerVariableResponseSchema),
  },
  // Blocks
  ListBlockErrors: {
    method: 'GET',
    tag: 'Block',
    perNode: true,
    query: NodeQuery,
    response: Multi(Type.Array(BlockErrorSchema)),
  },
  GetBlockInfo: {
    method: 'POST',
    tag: 'Block',
    perNode: true,
    query: NodeQuery,
    body: GetBlockInfoRequestSchema as typeof GetBlockInfoRequestSchema,
    response: Multi(GetBlockInfoResponseSchema),
  },
  RetryBlockResync: {
    method: 'POST',
    tag: 'Block',
    perNode: true,
    query: NodeQuery,
    body: RetryBlockResyncRequestSchema as typeof RetryBlockResyncRequestSchema,
    response: Multi(RetryBlockResyncResponseSchema),
  },
  PurgeBlocks: {
    method: 'POST',
    tag: 'Block',
    perNode: true,
    query: NodeQuery,
    body: PurgeBlocksRequestSchema as typeof PurgeBlocksRequestSchema,
    response: Multi(PurgeBlocksResponseSchema),
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
export type AdminApiErrorResponse = Static<typeof ErrorResponseSchema>
/** Permissions of an access key on a bucket. */
export type ApiBucketKeyPerm = Static<typeof ApiBucketKeyPermSchema>
/** Quotas of a bucket (null: no limit). */
export type ApiBucketQuotas = Static<typeof ApiBucketQuotasSchema>
/** One node of GetClusterStatus. */
export type NodeResp = Static<typeof NodeRespSchema>
/** Answer of GetClusterStatus. */
export type GetClusterStatusResponse = Static<typeof GetClusterStatusResponseSchema>
/** Answer of GetClusterHealth. */
export type GetClusterHealthResponse = Static<typeof GetClusterHealthResponseSchema>
/** Answer of GetClusterStatistics and, per node, GetNodeStatistics. */
export type FreeformResponse = Static<typeof FreeformResponseSchema>
/** An admin API token (ListAdminTokens, GetAdminTokenInfo, UpdateAdminToken). */
export type GetAdminTokenInfoResponse = Static<typeof GetAdminTokenInfoResponseSchema>
/** Answer of CreateAdminToken: the token and its secret, shown once. */
export type CreateAdminTokenResponse = Static<typeof CreateAdminTokenResponseSchema>
/** Body of CreateAdminToken and UpdateAdminToken. */
export type UpdateAdminTokenRequestBody = Static<typeof UpdateAdminTokenRequestBodySchema>
/** `"maximum"` or `{ atLeast: n }`. */
export type ApiZoneRedundancy = Static<typeof ZoneRedundancySchema>
/** Parameters of a layout version. */
export type ApiLayoutParameters = Static<typeof LayoutParametersSchema>
/** A staged role change: a new role, or `{ id, remove: true }`. */
export type NodeRoleChange = Static<typeof NodeRoleChangeSchema>
/** A role change in an UpdateClusterLayout request. */
export type NodeRoleChangeRequest = Static<typeof NodeRoleChangeRequestSchema>
/** One node's role in a layout version. */
export type LayoutNodeRole = Static<typeof LayoutNodeRoleSchema>
/** Answer of GetClusterLayout (and of the calls that change it). */
export type GetClusterLayoutResponse = Static<typeof GetClusterLayoutResponseSchema>
/** Answer of GetClusterLayoutHistory. */
export type GetClusterLayoutHistoryResponse = Static<typeof GetClusterLayoutHistoryResponseSchema>
/** Body of UpdateClusterLayout. */
export type UpdateClusterLayoutRequest = Static<typeof UpdateClusterLayoutRequestSchema>
/** Answer of PreviewClusterLayoutChanges: the new layout, or why it cannot be computed. */
export type PreviewClusterLayoutChangesResponse = Static<typeof PreviewClusterLayoutChangesResponseSchema>
/** Answer of ApplyClusterLayout. */
export type ApplyClusterLayoutResponse = Static<typeof ApplyClusterLayoutResponseSchema>
/** Answer of ClusterLayoutSkipDeadNodes. */
export type ClusterLayoutSkipDeadNodesResponse = Static<typeof ClusterLayoutSkipDeadNodesResponseSchema>
/** One access key of ListKeys. */
export type ListKeysResponseItem = Static<typeof ListKeysResponseItemSchema>
/** An access key with its buckets (GetKeyInfo, CreateKey, ImportKey, UpdateKey). */
export type GetKeyInfoResponse = Static<typeof GetKeyInfoResponseSchema>
/** Body of CreateKey and UpdateKey. */
export type UpdateKeyRequestBody = Static<typeof UpdateKeyRequestBodySchema>
/** One bucket of ListBuckets. */
export type ListBucketsResponseItem = Static<typeof ListBucketsResponseItemSchema>
/** A bucket with its keys and usage (GetBucketInfo and the calls that change a bucket). */
export type GetBucketInfoResponse = Static<typeof GetBucketInfoResponseSchema>
/** Body of CreateBucket. */
export type CreateBucketRequest = Static<typeof CreateBucketRequestSchema>
/** Body of UpdateBucket. */
export type UpdateBucketRequestBody = Static<typeof UpdateBucketRequestBodySchema>
/** Answer of InspectObject. */
export type InspectObjectResponse = Static<typeof InspectObjectResponseSchema>
/** One node's answer to GetNodeInfo. */
export type LocalGetNodeInfoResponse = Static<typeof LocalGetNodeInfoResponseSchema>
/** A repair LaunchRepairOperation can start. */
export type ApiRepairType = Static<typeof RepairTypeSchema>
/** State of a background worker. */
export type WorkerStateResp = Static<typeof WorkerStateRespSchema>
/** A background worker (ListWorkers, GetWorkerInfo). */
export type WorkerInfoResp = Static<typeof WorkerInfoRespSchema>
/** A block whose resync failed (ListBlockErrors). */
export type BlockError = Static<typeof BlockErrorSchema>
/** One node's answer to GetBlockInfo. */
export type GetBlockInfoResponse = Static<typeof GetBlockInfoResponseSchema>
/** One node's answer to PurgeBlocks. */
export type PurgeBlocksResponse = Static<typeof PurgeBlocksResponseSchema>
