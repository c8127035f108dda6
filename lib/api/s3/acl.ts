/**
 * ACLs as clients read them. Garage has no ACLs, only per-key read/write/owner flags; this
 * answers like an AWS bucket with ObjectOwnership=BucketOwnerEnforced (ACLs disabled), with one
 * extension: the canned ACL `public-read` on a bucket is stored and lets anyone read it
 * (docs/design/policies.md).
 *
 * - GetBucketAcl / GetObjectAcl: the owner is the bucket's owner key (the first key holding the
 *   owner flag; the requesting key when none is known here); one grant to the requesting key
 *   from its flags (FULL_CONTROL for an owner; READ, READ_ACP, WRITE otherwise), plus AllUsers
 *   READ when the bucket is public-read.
 * - PutBucketAcl, `x-amz-acl` on CreateBucket: `private` and `bucket-owner-full-control` (no
 *   public access), `public-read` (anonymous reads); every other canned ACL, any `x-amz-grant-*`
 *   header, and a body granting anything but the owner's FULL_CONTROL (and AllUsers READ) is
 *   400 AccessControlListNotSupported, as AWS answers with ACLs disabled.
 * - PutObjectAcl, `x-amz-acl` on object writes: `private` and `bucket-owner-full-control` only.
 * - GetBucketOwnershipControls: BucketOwnerEnforced.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { BucketKeyPerm } from '../../model/permission.ts'
import { crdtMapGet } from '../../util/crdt/crdt.ts'
import { toHex, utf8 } from '../../util/data.ts'
import { ApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import { setBucketSetting } from './bucket-settings.ts'
import type { BucketCtx } from './context.ts'
import { currentObject } from './conditional.ts'
import { readOptionalXmlBody, renderXml, xmlChildren, xmlRoot, xmlText } from './xml.ts'

const XSI = 'http://www.w3.org/2001/XMLSchema-instance'
const ALL_USERS = 'http://acs.amazonaws.com/groups/global/AllUsers'

/** The ACL permissions standing for Garage's flags. @internal */
export function aclPermissions(p: Pick<BucketKeyPerm, 'read' | 'write' | 'owner'> | undefined): string[] {
  if (p === undefined) return []
  if (p.owner) return ['FULL_CONTROL']
  const out: string[] = []
  if (p.read) out.push('READ', 'READ_ACP')
  if (p.write) out.push('WRITE')
  return out
}

const GRANT_HEADERS = [
  'x-amz-grant-read',
  'x-amz-grant-write',
  'x-amz-grant-read-acp',
  'x-amz-grant-write-acp',
  'x-amz-grant-full-control',
]

const notSupported = (): ApiError => new ApiError('AccessControlListNotSupported', 'The bucket does not allow ACLs')

/**
 * The canned ACL of a request (`x-amz-acl`) as far as it changes anything: `public-read` on a
 * bucket, else undefined (`private`, `bucket-owner-full-control` or no header).
 * @throws ApiError AccessControlListNotSupported for other canned ACLs and grant headers,
 *   InvalidArgument for a value that is no canned ACL.
 */
export function parseCannedAcl(headers: IncomingHttpHeaders, target: 'bucket' | 'object'): 'public-read' | undefined {
  for (const h of GRANT_HEADERS) if (headers[h] !== undefined) throw notSupported()
  const raw = headers['x-amz-acl']
  if (raw === undefined) return undefined
  const v = (Array.isArray(raw) ? raw.join(',') : raw).trim()
  switch (v) {
    case 'private':
    case 'bucket-owner-full-control':
      return undefined
    case 'public-read':
      if (target === 'bucket') return 'public-read'
      throw notSupported()
    case 'public-read-write':
    case 'authenticated-read':
    case 'aws-exec-read':
    case 'bucket-owner-read':
    case 'log-delivery-write':
      throw notSupported()
    default:
      throw new ApiError('InvalidArgument', 'Invalid canned ACL', { extra: { ArgumentName: 'x-amz-acl' } })
  }
}

/** The bucket's owner key (id, display name): the first key with the owner flag, else the requester. */
function bucketOwner(ctx: BucketCtx): { id: string; displayName: string } {
  for (const [id, p] of ctx.bucketParams.authorizedKeys) {
    if (p.owner) return { id, displayName: ctx.garage.access.localKey(id)?.state.value.name.v ?? '' }
  }
  return { id: ctx.apiKey?.id ?? '', displayName: ctx.apiKey?.state.value.name.v ?? '' }
}

function renderAcl(ctx: BucketCtx): ApiResponse {
  const owner = bucketOwner(ctx)
  const key = ctx.apiKey
  const grants: unknown[] = []
  if (key !== undefined) {
    const perm = crdtMapGet(key.state.value.authorizedBuckets, toHex(ctx.bucketId))
    for (const permission of aclPermissions(perm)) {
      grants.push({
        Grantee: { '@_xmlns:xsi': XSI, '@_xsi:type': 'CanonicalUser', ID: key.id, DisplayName: key.state.value.name.v },
        Permission: permission,
      })
    }
  }
  if (ctx.bucketParams.publicRead?.v === true) {
    grants.push({ Grantee: { '@_xmlns:xsi': XSI, '@_xsi:type': 'Group', URI: ALL_USERS }, Permission: 'READ' })
  }
  const xml = renderXml('AccessControlPolicy', {
    Owner: { ID: owner.id, DisplayName: owner.displayName },
    AccessControlList: { Grant: grants },
  })
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: xml }
}

export function handleGetBucketAcl(ctx: BucketCtx): ApiResponse {
  return renderAcl(ctx)
}

async function checkObjectExists(ctx: BucketCtx, key: string): Promise<void> {
  const row = await ctx.garage.objectTable.get(ctx.bucketId, utf8(key))
  if (currentObject(row) === undefined) throw new ApiError('NoSuchKey', 'The specified key does not exist.')
}

export async function handleGetObjectAcl(ctx: BucketCtx, key: string): Promise<ApiResponse> {
  await checkObjectExists(ctx, key)
  return renderAcl(ctx)
}

/**
 * The public-read setting an `<AccessControlPolicy>` body asks for: only FULL_CONTROL grants to
 * canonical users (the owner) and READ to AllUsers are accepted.
 */
function parseAclBody(doc: Parameters<typeof xmlRoot>[0]): boolean {
  const root = xmlRoot(doc, 'AccessControlPolicy')
  let publicRead = false
  for (const list of xmlChildren(root, 'AccessControlList')) {
    for (const g of xmlChildren(list, 'Grant')) {
      const permission = xmlText(g, 'Permission')
      const grantee = xmlChildren(g, 'Grantee')[0]
      const uri = xmlText(grantee, 'URI')
      if (uri === ALL_USERS && permission === 'READ') publicRead = true
      else if (uri === undefined && xmlText(grantee, 'ID') !== undefined && permission === 'FULL_CONTROL') continue
      else throw notSupported()
    }
  }
  return publicRead
}

export async function handlePutBucketAcl(ctx: BucketCtx): Promise<ApiResponse> {
  const canned = parseCannedAcl(ctx.req.headers, 'bucket')
  const doc = await readOptionalXmlBody(ctx.body, 64 * 1024)
  await ctx.bodyResult
  if (doc !== undefined && ctx.req.headers['x-amz-acl'] !== undefined) {
    throw new ApiError('InvalidRequest', 'Specifying both Canned ACLs and Header Grants is not allowed')
  }
  if (doc === undefined && ctx.req.headers['x-amz-acl'] === undefined) {
    throw new ApiError('MissingSecurityHeader', 'Your request was missing a required header', {
      extra: { MissingHeaderName: 'x-amz-acl' },
    })
  }
  const publicRead = doc === undefined ? canned === 'public-read' : parseAclBody(doc)
  if ((ctx.bucketParams.publicRead?.v ?? false) !== publicRead) {
    await setBucketSetting(ctx, 'publicRead', publicRead)
  }
  return { status: 200 }
}

export async function handlePutObjectAcl(ctx: BucketCtx, key: string): Promise<ApiResponse> {
  parseCannedAcl(ctx.req.headers, 'object')
  const doc = await readOptionalXmlBody(ctx.body, 64 * 1024)
  await ctx.bodyResult
  if (doc !== undefined && parseAclBody(doc)) throw notSupported()
  await checkObjectExists(ctx, key)
  return { status: 200 }
}

export function handleGetBucketOwnershipControls(): ApiResponse {
  const xml = renderXml('OwnershipControls', { Rule: { ObjectOwnership: 'BucketOwnerEnforced' } })
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: xml }
}
