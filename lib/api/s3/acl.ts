/**
 * GetBucketAcl: Garage has no ACLs, only per-key read/write/owner flags. The answer is a
 * read-only view of the calling key's flags on the bucket: FULL_CONTROL for an owner, else READ
 * and READ_ACP for read, WRITE for write. ACL writes answer NotImplemented.
 */
import type { BucketKeyPerm } from '../../model/permission.ts'
import { crdtMapGet } from '../../util/crdt/crdt.ts'
import { toHex } from '../../util/data.ts'
import type { ApiResponse } from '../common/server.ts'
import type { BucketCtx } from './context.ts'
import { renderXml } from './xml.ts'

const XSI = 'http://www.w3.org/2001/XMLSchema-instance'

/** The ACL permissions standing for Garage's flags. @internal */
export function aclPermissions(p: Pick<BucketKeyPerm, 'read' | 'write' | 'owner'> | undefined): string[] {
  if (p === undefined) return []
  if (p.owner) return ['FULL_CONTROL']
  const out: string[] = []
  if (p.read) out.push('READ', 'READ_ACP')
  if (p.write) out.push('WRITE')
  return out
}

export function handleGetBucketAcl(ctx: BucketCtx): ApiResponse {
  const key = ctx.apiKey
  const id = key.id
  const displayName = key.state.value.name.v
  const perm = crdtMapGet(key.state.value.authorizedBuckets, toHex(ctx.bucketId))
  const xml = renderXml('AccessControlPolicy', {
    Owner: { ID: id, DisplayName: displayName },
    AccessControlList: {
      Grant: aclPermissions(perm).map((permission) => ({
        Grantee: { '@_xmlns:xsi': XSI, '@_xsi:type': 'CanonicalUser', ID: id, DisplayName: displayName },
        Permission: permission,
      })),
    },
  })
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: xml }
}
