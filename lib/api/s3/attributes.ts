/**
 * GetObjectAttributes (`GET /bucket/key?attributes`): an object's ETag, checksum, parts, storage
 * class and size in one XML answer, selected by `x-amz-object-attributes`. Garage does not
 * implement it. Parts are listed for multipart objects only, paginated by `x-amz-max-parts` and
 * `x-amz-part-number-marker`; per-part checksums are not kept once an upload completes, so parts
 * carry their number and size.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { toHex, utf8 } from '../../util/data.ts'
import { httpDate } from '../../util/time.ts'
import { ApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import type { BucketCtx } from './context.ts'
import type { DataVersion } from './get.ts'
import { readableVersion } from './versioning.ts'
import { openObjectCipher, refuseSseHeaderOnRead } from './sse-s3.ts'
import { renderXml } from './xml.ts'

const ATTRIBUTES = ['ETag', 'Checksum', 'ObjectParts', 'StorageClass', 'ObjectSize'] as const
type Attribute = (typeof ATTRIBUTES)[number]

/** Parses `x-amz-object-attributes` (comma-separated, repeatable). @internal */
export function parseObjectAttributes(headers: IncomingHttpHeaders): Set<Attribute> {
  const raw = headers['x-amz-object-attributes']
  if (raw === undefined) {
    throw new ApiError('InvalidArgument', 'Missing required header for this request: x-amz-object-attributes', {
      extra: { ArgumentName: 'x-amz-object-attributes' },
    })
  }
  const out = new Set<Attribute>()
  for (const name of (Array.isArray(raw) ? raw.join(',') : raw).split(',').map((s) => s.trim())) {
    if (name === '') continue
    const a = ATTRIBUTES.find((x) => x.toLowerCase() === name.toLowerCase())
    if (a === undefined) {
      throw new ApiError('InvalidArgument', 'Invalid attribute name specified.', {
        extra: { ArgumentName: 'x-amz-object-attributes', ArgumentValue: name.slice(0, 100) },
      })
    }
    out.add(a)
  }
  if (out.size === 0) {
    throw new ApiError('InvalidArgument', 'Missing required header for this request: x-amz-object-attributes')
  }
  return out
}

function intHeader(headers: IncomingHttpHeaders, name: string, dflt: number, max: number): number {
  const v = headers[name]
  if (v === undefined) return dflt
  const s = (Array.isArray(v) ? v[0] : v)?.trim() ?? ''
  if (!/^\d{1,10}$/.test(s) || Number(s) > max) {
    throw new ApiError('InvalidArgument', `Invalid ${name} header: '${s.slice(0, 20)}'`, { extra: { ArgumentName: name } })
  }
  return Number(s)
}

export async function handleGetObjectAttributes(ctx: BucketCtx, ep: { key: string; versionId?: string }): Promise<ApiResponse> {
  const { garage, bucketId } = ctx
  const headers = ctx.req.headers
  // As on GET and HEAD, `x-amz-server-side-encryption` has no meaning on a read: 400.
  refuseSseHeaderOnRead(headers)
  const wanted = parseObjectAttributes(headers)
  const maxParts = Math.min(intHeader(headers, 'x-amz-max-parts', 1000, 2 ** 31 - 1), 1000)
  const marker = intHeader(headers, 'x-amz-part-number-marker', 0, 10000)

  const object = await garage.objectTable.get(bucketId, utf8(ep.key))
  // The version named (versionId) or the latest, with GET's errors (versioning.ts).
  const version = readableVersion(object, ep.versionId, ctx.bucketParams) as DataVersion
  // SSE-C: the key must come with the request, as for HEAD; SSE-S3: the node's master key.
  const at = { bucketId, versionId: version.uuid, key: ep.key }
  const cipher = openObjectCipher(headers, version.state.data.meta.encryption, at, ctx.settings.sseKeyring)
  const meta = cipher === undefined ? version.state.data.meta : cipher.openObjectMeta(version.state.data.meta)

  const body: Record<string, unknown> = {}
  if (wanted.has('ETag')) body.ETag = meta.etag
  if (wanted.has('Checksum') && meta.checksum !== undefined) {
    body.Checksum = { [`Checksum${meta.checksum.algorithm}`]: meta.checksum.value, ChecksumType: meta.checksum.type }
  }
  const partCount = /-(\d+)$/.exec(meta.etag)
  if (wanted.has('ObjectParts') && partCount !== null && version.state.data.t !== 'inline') {
    const v = await garage.versionTable.get(version.uuid, new Uint8Array(0))
    const sizes = new Map<number, number>()
    for (const b of v?.blocks ?? []) sizes.set(b.partNumber, (sizes.get(b.partNumber) ?? 0) + b.size)
    const parts = [...sizes.entries()].sort((a, b) => a[0] - b[0]).filter(([n]) => n > marker)
    const page = parts.slice(0, maxParts)
    const truncated = parts.length > page.length
    const last = page[page.length - 1]
    body.ObjectParts = {
      // The model's TotalPartsCount is the element <PartsCount>.
      PartsCount: Number(partCount[1]),
      PartNumberMarker: marker,
      NextPartNumberMarker: last?.[0] ?? marker,
      MaxParts: maxParts,
      IsTruncated: truncated,
      Part: page.map(([n, size]) => ({ PartNumber: n, Size: size })),
    }
  }
  if (wanted.has('StorageClass')) body.StorageClass = 'STANDARD'
  if (wanted.has('ObjectSize')) body.ObjectSize = meta.size
  const out: Record<string, string> = {
    'content-type': 'application/xml',
    'last-modified': httpDate(version.ts),
    'x-amz-version-id': toHex(version.uuid),
  }
  if (cipher !== undefined) Object.assign(out, cipher.responseHeaders())
  return { status: 200, headers: out, body: renderXml('GetObjectAttributesResponse', body) }
}
