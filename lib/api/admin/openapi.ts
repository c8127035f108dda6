/**
 * The OpenAPI 3.1 description of our admin API, served at `GET /v2/openapi.json` (Garage ships
 * its document as doc/api/garage-admin-v2.json; ours is built from the endpoint table so it never
 * drifts from the router). Endpoint names, parameters and field names follow Garage's document.
 */
import { ADMIN_ENDPOINTS, type AdminEndpointName } from './router.ts'
import { GARAGE_TS_VERSION } from '../../util/version.ts'

const str = { type: 'string' }
const strOrNull = { type: ['string', 'null'] }
const int = { type: 'integer', minimum: 0 }
const intOrNull = { type: ['integer', 'null'], minimum: 0 }
const bool = { type: 'boolean' }
const dateOrNull = { type: ['string', 'null'], format: 'date-time' }
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` })
const arr = (items: object) => ({ type: 'array', items })
const obj = (properties: Record<string, object>, required: string[] = []) => ({ type: 'object', properties, required })
const multi = (item: object) =>
  obj({ success: { type: 'object', additionalProperties: item }, error: { type: 'object', additionalProperties: str } }, [
    'success',
    'error',
  ])

const SCHEMAS: Record<string, object> = {
  ApiBucketKeyPerm: obj({ read: bool, write: bool, owner: bool }),
  ApiBucketQuotas: obj({ maxSize: intOrNull, maxObjects: intOrNull }),
  KeyPerm: obj({ createBucket: bool }),
  ErrorResponse: obj({ code: str, message: str, region: str, path: str }, ['code', 'message']),
  GetKeyInfoResponse: obj(
    {
      accessKeyId: str,
      name: str,
      created: dateOrNull,
      expiration: dateOrNull,
      expired: bool,
      secretAccessKey: strOrNull,
      permissions: ref('KeyPerm'),
      buckets: arr(obj({ id: str, globalAliases: arr(str), localAliases: arr(str), permissions: ref('ApiBucketKeyPerm') })),
    },
    ['accessKeyId', 'name', 'expired', 'permissions', 'buckets'],
  ),
  UpdateKeyRequestBody: obj({
    name: strOrNull,
    allow: ref('KeyPerm'),
    deny: ref('KeyPerm'),
    expiration: dateOrNull,
    neverExpires: bool,
  }),
  ImportKeyRequest: obj({ accessKeyId: str, secretAccessKey: str, name: strOrNull }, ['accessKeyId', 'secretAccessKey']),
  ListKeysResponseItem: obj({ id: str, name: str, created: dateOrNull, expiration: dateOrNull, expired: bool }, ['id', 'name']),
  GetBucketInfoResponse: obj(
    {
      id: str,
      created: { type: 'string', format: 'date-time' },
      globalAliases: arr(str),
      websiteAccess: bool,
      websiteConfig: { oneOf: [{ type: 'null' }, obj({ indexDocument: str, errorDocument: strOrNull }, ['indexDocument'])] },
      keys: arr(obj({ accessKeyId: str, name: str, permissions: ref('ApiBucketKeyPerm'), bucketLocalAliases: arr(str) })),
      objects: int,
      bytes: int,
      unfinishedUploads: int,
      unfinishedMultipartUploads: int,
      unfinishedMultipartUploadParts: int,
      unfinishedMultipartUploadBytes: int,
      quotas: ref('ApiBucketQuotas'),
    },
    ['id', 'created', 'globalAliases', 'websiteAccess', 'keys', 'objects', 'bytes', 'quotas'],
  ),
  ListBucketsResponseItem: obj(
    { id: str, created: str, globalAliases: arr(str), localAliases: arr(obj({ accessKeyId: str, alias: str })) },
    ['id', 'globalAliases', 'localAliases'],
  ),
  CreateBucketRequest: obj({
    globalAlias: strOrNull,
    localAlias: obj({ accessKeyId: str, alias: str, allow: ref('ApiBucketKeyPerm') }, ['accessKeyId', 'alias']),
  }),
  UpdateBucketRequestBody: obj({
    websiteAccess: obj({ enabled: bool, indexDocument: strOrNull, errorDocument: strOrNull }, ['enabled']),
    quotas: ref('ApiBucketQuotas'),
  }),
  BucketKeyPermChangeRequest: obj({ bucketId: str, accessKeyId: str, permissions: ref('ApiBucketKeyPerm') }, [
    'bucketId',
    'accessKeyId',
    'permissions',
  ]),
  BucketAliasRequest: obj({ bucketId: str, globalAlias: str, localAlias: str, accessKeyId: str }, ['bucketId']),
  CleanupIncompleteUploadsRequest: obj({ bucketId: str, olderThanSecs: int }, ['bucketId', 'olderThanSecs']),
  CleanupIncompleteUploadsResponse: obj({ uploadsDeleted: int }, ['uploadsDeleted']),
  InspectObjectResponse: obj({ bucketId: str, key: str, versions: arr({ type: 'object' }) }, ['bucketId', 'key', 'versions']),
  GetAdminTokenInfoResponse: obj(
    { id: strOrNull, created: dateOrNull, name: str, expiration: dateOrNull, expired: bool, scope: arr(str) },
    ['name', 'expired', 'scope'],
  ),
  UpdateAdminTokenRequestBody: obj({ name: strOrNull, expiration: dateOrNull, neverExpires: bool, scope: arr(str) }),
  CreateAdminTokenResponse: { allOf: [ref('GetAdminTokenInfoResponse'), obj({ secretToken: str }, ['secretToken'])] },
  GetClusterHealthResponse: obj(
    {
      status: str,
      knownNodes: int,
      connectedNodes: int,
      storageNodes: int,
      storageNodesOk: int,
      partitions: int,
      partitionsQuorum: int,
      partitionsAllOk: int,
    },
    ['status'],
  ),
  ZoneRedundancy: { oneOf: [{ type: 'string', enum: ['maximum'] }, obj({ atLeast: int }, ['atLeast'])] },
  LayoutParameters: obj({ zoneRedundancy: ref('ZoneRedundancy') }, ['zoneRedundancy']),
  NodeRoleChange: {
    oneOf: [
      obj({ id: str, remove: bool }, ['id', 'remove']),
      obj({ id: str, zone: str, capacity: intOrNull, tags: arr(str) }, ['id', 'zone', 'tags']),
    ],
  },
  GetClusterLayoutResponse: obj(
    {
      version: int,
      roles: arr(
        obj({ id: str, zone: str, tags: arr(str), capacity: intOrNull, storedPartitions: intOrNull, usableCapacity: intOrNull }, [
          'id',
          'zone',
          'tags',
        ]),
      ),
      parameters: ref('LayoutParameters'),
      partitionSize: int,
      stagedRoleChanges: arr(ref('NodeRoleChange')),
      stagedParameters: { oneOf: [{ type: 'null' }, ref('LayoutParameters')] },
    },
    ['version', 'roles', 'parameters', 'partitionSize', 'stagedRoleChanges'],
  ),
  UpdateClusterLayoutRequest: obj({ roles: arr(ref('NodeRoleChange')), parameters: ref('LayoutParameters') }),
  ApplyClusterLayoutRequest: obj({ version: int }, ['version']),
  ClusterLayoutSkipDeadNodesRequest: obj({ version: int, allowMissingData: bool }, ['version', 'allowMissingData']),
  GetClusterStatusResponse: obj({ layoutVersion: int, nodes: arr({ type: 'object' }) }, ['layoutVersion', 'nodes']),
  FreeformResponse: obj({ freeform: str }, ['freeform']),
  WorkerInfoResp: obj(
    {
      id: int,
      name: str,
      state: {},
      errors: int,
      consecutiveErrors: int,
      lastError: {},
      queueLength: intOrNull,
      freeform: arr(str),
    },
    ['id', 'name', 'state', 'errors', 'consecutiveErrors', 'freeform'],
  ),
  RepairType: {
    oneOf: [
      { type: 'string', enum: ['tables', 'blocks', 'versions', 'multipartUploads', 'blockRefs', 'blockRc', 'rebalance'] },
      obj({ scrub: { type: 'string', enum: ['start', 'pause', 'resume', 'cancel'] } }, ['scrub']),
    ],
  },
  LaunchRepairOperationRequest: obj({ repairType: ref('RepairType') }, ['repairType']),
  BlockError: obj({ blockHash: str, refcount: int, errorCount: int, lastTrySecsAgo: int, nextTryInSecs: int }, [
    'blockHash',
    'refcount',
    'errorCount',
    'lastTrySecsAgo',
    'nextTryInSecs',
  ]),
  GetBlockInfoRequest: obj({ blockHash: str }, ['blockHash']),
  BlockVersion: obj({ versionId: str, refDeleted: bool, versionDeleted: bool, garbageCollected: bool, backlink: {} }, [
    'versionId',
    'refDeleted',
    'versionDeleted',
    'garbageCollected',
  ]),
  GetBlockInfoResponse: obj({ blockHash: str, refcount: int, versions: arr(ref('BlockVersion')) }, [
    'blockHash',
    'refcount',
    'versions',
  ]),
  RetryBlockResyncRequest: { oneOf: [obj({ all: bool }, ['all']), obj({ blockHashes: arr(str) }, ['blockHashes'])] },
  PurgeBlocksRequest: arr(str),
  PurgeBlocksResponse: obj({ blocksPurged: int, objectsDeleted: int, uploadsDeleted: int, versionsDeleted: int }, [
    'blocksPurged',
    'objectsDeleted',
    'uploadsDeleted',
    'versionsDeleted',
  ]),
}

type Io = { query?: string[]; body?: string; response?: object }

const IO: Partial<Record<AdminEndpointName, Io>> = {
  GetClusterStatus: { response: ref('GetClusterStatusResponse') },
  GetClusterHealth: { response: ref('GetClusterHealthResponse') },
  GetClusterStatistics: { response: ref('FreeformResponse') },
  GetClusterLayout: { response: ref('GetClusterLayoutResponse') },
  GetClusterLayoutHistory: {
    response: obj({
      currentVersion: int,
      minAck: int,
      versions: arr(obj({ version: int, status: str, storageNodes: int, gatewayNodes: int })),
      updateTrackers: { type: ['object', 'null'] },
    }),
  },
  UpdateClusterLayout: { body: 'UpdateClusterLayoutRequest', response: ref('GetClusterLayoutResponse') },
  PreviewClusterLayoutChanges: {
    response: {
      oneOf: [obj({ error: str }, ['error']), obj({ message: arr(str), newLayout: ref('GetClusterLayoutResponse') })],
    },
  },
  ApplyClusterLayout: {
    body: 'ApplyClusterLayoutRequest',
    response: obj({ message: arr(str), layout: ref('GetClusterLayoutResponse') }),
  },
  RevertClusterLayout: { response: ref('GetClusterLayoutResponse') },
  ClusterLayoutSkipDeadNodes: {
    body: 'ClusterLayoutSkipDeadNodesRequest',
    response: obj({ ackUpdated: arr(str), syncUpdated: arr(str) }),
  },
  ListAdminTokens: { response: arr(ref('GetAdminTokenInfoResponse')) },
  GetAdminTokenInfo: { query: ['id', 'search'], response: ref('GetAdminTokenInfoResponse') },
  GetCurrentAdminTokenInfo: { response: ref('GetAdminTokenInfoResponse') },
  CreateAdminToken: { body: 'UpdateAdminTokenRequestBody', response: ref('CreateAdminTokenResponse') },
  UpdateAdminToken: { query: ['id'], body: 'UpdateAdminTokenRequestBody', response: ref('GetAdminTokenInfoResponse') },
  DeleteAdminToken: { query: ['id'] },
  ListKeys: { response: arr(ref('ListKeysResponseItem')) },
  GetKeyInfo: { query: ['id', 'search', 'showSecretKey'], response: ref('GetKeyInfoResponse') },
  CreateKey: { body: 'UpdateKeyRequestBody', response: ref('GetKeyInfoResponse') },
  ImportKey: { body: 'ImportKeyRequest', response: ref('GetKeyInfoResponse') },
  UpdateKey: { query: ['id'], body: 'UpdateKeyRequestBody', response: ref('GetKeyInfoResponse') },
  DeleteKey: { query: ['id'] },
  ListBuckets: { response: arr(ref('ListBucketsResponseItem')) },
  GetBucketInfo: { query: ['id', 'globalAlias', 'search'], response: ref('GetBucketInfoResponse') },
  CreateBucket: { body: 'CreateBucketRequest', response: ref('GetBucketInfoResponse') },
  UpdateBucket: { query: ['id'], body: 'UpdateBucketRequestBody', response: ref('GetBucketInfoResponse') },
  DeleteBucket: { query: ['id'] },
  CleanupIncompleteUploads: { body: 'CleanupIncompleteUploadsRequest', response: ref('CleanupIncompleteUploadsResponse') },
  InspectObject: { query: ['bucketId', 'key'], response: ref('InspectObjectResponse') },
  AllowBucketKey: { body: 'BucketKeyPermChangeRequest', response: ref('GetBucketInfoResponse') },
  DenyBucketKey: { body: 'BucketKeyPermChangeRequest', response: ref('GetBucketInfoResponse') },
  AddBucketAlias: { body: 'BucketAliasRequest', response: ref('GetBucketInfoResponse') },
  RemoveBucketAlias: { body: 'BucketAliasRequest', response: ref('GetBucketInfoResponse') },
  GetNodeInfo: { response: multi({ type: 'object' }) },
  GetNodeStatistics: { response: multi(ref('FreeformResponse')) },
  ListWorkers: { response: multi(arr(ref('WorkerInfoResp'))) },
  GetWorkerInfo: { response: multi(ref('WorkerInfoResp')) },
  GetWorkerVariable: { response: multi({ type: 'object', additionalProperties: str }) },
  SetWorkerVariable: { response: multi(obj({ variable: str, value: str })) },
  LaunchRepairOperation: { body: 'LaunchRepairOperationRequest', response: multi({ type: 'null' }) },
  ListBlockErrors: { response: multi(arr(ref('BlockError'))) },
  GetBlockInfo: { body: 'GetBlockInfoRequest', response: multi(ref('GetBlockInfoResponse')) },
  RetryBlockResync: { body: 'RetryBlockResyncRequest', response: multi(obj({ count: int }, ['count'])) },
  PurgeBlocks: { body: 'PurgeBlocksRequest', response: multi(ref('PurgeBlocksResponse')) },
}

/** Builds the document (plain JSON data). */
export function buildOpenApiDocument(): object {
  const paths: Record<string, object> = {}
  for (const [name, ep] of Object.entries(ADMIN_ENDPOINTS) as Array<
    [AdminEndpointName, (typeof ADMIN_ENDPOINTS)[AdminEndpointName]]
  >) {
    const io = IO[name] ?? {}
    const query = [...(io.query ?? []), ...('perNode' in ep ? ['node'] : [])]
    const op: Record<string, unknown> = {
      tags: [ep.tag],
      operationId: name,
      parameters: query.map((q) => ({
        name: q,
        in: 'query',
        required: q === 'node' || (q === 'id' && io.body !== undefined),
        schema: str,
      })),
      responses: {
        200: { description: 'Success', content: { 'application/json': { schema: io.response ?? { type: 'null' } } } },
        default: { description: 'Error', content: { 'application/json': { schema: ref('ErrorResponse') } } },
      },
    }
    if (io.body !== undefined || ep.method === 'POST') {
      op.requestBody = { content: { 'application/json': { schema: io.body === undefined ? { type: 'object' } : ref(io.body) } } }
    }
    if (IO[name] === undefined && !('perNode' in ep && /Worker|Node(Info|Statistics)/.test(name))) {
      op.description = 'Not implemented yet: answers 501 NotImplemented.'
    }
    paths[`/v2/${name}`] = { [ep.method.toLowerCase()]: op }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Garage administration API (TypeScript implementation)',
      description: 'Administrate the node programmatically. Follows the Garage v2 admin API.',
      version: GARAGE_TS_VERSION,
    },
    servers: [{ url: 'http://localhost:3903/' }],
    security: [{ bearerAuth: [] }],
    paths,
    components: { schemas: SCHEMAS, securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } },
  }
}
