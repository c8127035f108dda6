/**
 * Object and bucket tagging: Put/Get/DeleteObjectTagging, Put/Get/DeleteBucketTagging,
 * `x-amz-tagging` on object writes, `x-amz-tagging-count` on GET/HEAD. Object tags live in the
 * complete version's state (`tagging`, a register of its own, object-table.ts); bucket tags in
 * the bucket row (`tags`). Limits and errors as AWS: 10 tags per object, 50 per bucket, keys of
 * 1–128 characters, values of at most 256, no duplicate keys, no `aws:` prefix (InvalidTag).
 */
import type { IncomingHttpHeaders } from 'node:http'
import { setOptLww } from '../../model/bucket-table.ts'
import type { ObjectTagging, ObjectVersion } from '../../model/s3/object-table.ts'
import { bytesEqual, fromHex, toHex, utf8 } from '../../util/data.ts'
import { nowMsec } from '../../util/time.ts'
import { ApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import { currentObject } from './conditional.ts'
import type { BucketCtx } from './context.ts'
import { readXmlBody, renderXml, type XmlDocument, xmlChildren, xmlOnly, xmlRoot, xmlText } from './xml.ts'

export type Tags = Array<[key: string, value: string]>

export const MAX_OBJECT_TAGS = 10
export const MAX_BUCKET_TAGS = 50
const MAX_KEY_CHARS = 128
const MAX_VALUE_CHARS = 256
/** Characters AWS allows in tag keys and values: letters, digits, spaces and `+ - = . _ : / @`. */
const TAG_CHARS = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u

const invalidTag = (message: string): ApiError => new ApiError('InvalidTag', message)

/** Checks a tag set against AWS's rules (`max` tags). */
export function checkTags(tags: Tags, max: number, target: 'object' | 'bucket'): void {
  if (tags.length > max) {
    throw invalidTag(
      target === 'object' ? `Object tags cannot be greater than ${max}` : `Bucket tag count cannot be greater than ${max}`,
    )
  }
  const seen = new Set<string>()
  for (const [k, v] of tags) {
    const keyChars = [...k].length
    if (keyChars === 0 || keyChars > MAX_KEY_CHARS) throw invalidTag('The TagKey you have provided is invalid')
    if ([...v].length > MAX_VALUE_CHARS) throw invalidTag('The TagValue you have provided is invalid')
    if (!TAG_CHARS.test(k) || !TAG_CHARS.test(v))
      throw invalidTag('The TagKey or TagValue you have provided contains invalid characters')
    if (k.toLowerCase().startsWith('aws:')) {
      throw invalidTag(
        target === 'object' ? 'Your TagKey cannot be prefixed with aws:' : 'System tags cannot be added/updated by requester',
      )
    }
    if (seen.has(k)) throw invalidTag('Cannot provide multiple Tags with the same key')
    seen.add(k)
  }
}

/** The tags of an `x-amz-tagging` header (`k1=v1&k2=v2`, URL-encoded), checked; undefined without one. */
export function parseTaggingHeader(headers: IncomingHttpHeaders): Tags | undefined {
  const raw = headers['x-amz-tagging']
  if (raw === undefined) return undefined
  const text = Array.isArray(raw) ? raw.join('&') : raw
  const tags: Tags = []
  for (const part of text.split('&')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    const [k, v] = eq < 0 ? [part, ''] : [part.slice(0, eq), part.slice(eq + 1)]
    let key: string
    let value: string
    try {
      key = decodeURIComponent(k.replace(/\+/g, ' '))
      value = decodeURIComponent(v.replace(/\+/g, ' '))
    } catch (err) {
      throw new ApiError('InvalidArgument', 'The header x-amz-tagging is not URL-encoded', { cause: err })
    }
    tags.push([key, value])
  }
  checkTags(tags, MAX_OBJECT_TAGS, 'object')
  return tags
}

/** A `<Tagging><TagSet><Tag>…` body. */
export function parseTaggingXml(doc: XmlDocument, max: number, target: 'object' | 'bucket'): Tags {
  const root = xmlRoot(doc, 'Tagging')
  xmlOnly(root, ['TagSet'], 'Tagging')
  const sets = xmlChildren(root, 'TagSet')
  if (sets.length !== 1) throw new ApiError('MalformedXML', 'expected one <TagSet> in <Tagging>')
  xmlOnly(sets[0], ['Tag'], 'TagSet')
  const tags: Tags = xmlChildren(sets[0], 'Tag').map((t) => {
    xmlOnly(t, ['Key', 'Value'], 'Tag')
    const key = xmlText(t, 'Key', true)
    const value = xmlText(t, 'Value', true)
    if (key === undefined || value === undefined) throw new ApiError('MalformedXML', 'each <Tag> needs <Key> and <Value>')
    return [key, value]
  })
  checkTags(tags, max, target)
  return tags
}

export function renderTagging(tags: Tags): string {
  return renderXml('Tagging', { TagSet: { Tag: tags.map(([Key, Value]) => ({ Key, Value })) } })
}

/** The tagging register of a new version written with `tags` at `ts` (none for no tags). */
export function initialTagging(tags: Tags | undefined, ts: number): ObjectTagging | undefined {
  return tags === undefined || tags.length === 0 ? undefined : { ts, tags }
}

/** `x-amz-tagging-count` of a version with tags (GET/HEAD), else nothing. */
export function taggingCountHeader(v: ObjectVersion): Record<string, string> {
  const n = v.state.t === 'complete' ? (v.state.tagging?.tags.length ?? 0) : 0
  return n > 0 ? { 'x-amz-tagging-count': String(n) } : {}
}

/** The version a tagging request addresses: `versionId`'s, else the current one. */
async function taggedVersion(ctx: BucketCtx, key: string, versionId: string | undefined): Promise<ObjectVersion> {
  const row = await ctx.garage.objectTable.get(ctx.bucketId, utf8(key))
  if (versionId !== undefined && versionId !== 'null') {
    const id = /^[0-9a-f]{64}$/.test(versionId) ? fromHex(versionId) : undefined
    const v = id === undefined ? undefined : row?.versions.find((x) => bytesEqual(x.uuid, id))
    if (v === undefined || v.state.t !== 'complete' || v.state.data.t === 'delete') {
      throw new ApiError('NoSuchVersion', 'The specified version does not exist.', { extra: { Key: key, VersionId: versionId } })
    }
    return v
  }
  const v = currentObject(row)
  if (v === undefined) throw new ApiError('NoSuchKey', 'The specified key does not exist.', { extra: { Key: key } })
  return v
}

async function setObjectTags(ctx: BucketCtx, key: string, v: ObjectVersion, tags: Tags): Promise<void> {
  if (v.state.t !== 'complete') return
  const ts = ctx.garage.nextTimestamp(v.state.tagging?.ts ?? v.ts)
  const state = { t: 'complete' as const, data: v.state.data, tagging: { ts, tags } }
  await ctx.garage.objectTable.insert({ bucketId: ctx.bucketId, key, versions: [{ uuid: v.uuid, ts: v.ts, state }] })
}

type TaggingEndpoint = { key: string; versionId?: string | undefined }

export async function handleGetObjectTagging(ctx: BucketCtx, ep: TaggingEndpoint): Promise<ApiResponse> {
  const v = await taggedVersion(ctx, ep.key, ep.versionId)
  const tags = v.state.t === 'complete' ? (v.state.tagging?.tags ?? []) : []
  return {
    status: 200,
    headers: { 'content-type': 'application/xml', 'x-amz-version-id': toHex(v.uuid) },
    body: renderTagging(tags),
  }
}

export async function handlePutObjectTagging(ctx: BucketCtx, ep: TaggingEndpoint): Promise<ApiResponse> {
  const doc = await readXmlBody(ctx.body, 64 * 1024)
  await ctx.bodyResult
  const tags = parseTaggingXml(doc, MAX_OBJECT_TAGS, 'object')
  const v = await taggedVersion(ctx, ep.key, ep.versionId)
  await setObjectTags(ctx, ep.key, v, tags)
  return { status: 200, headers: { 'x-amz-version-id': toHex(v.uuid) } }
}

export async function handleDeleteObjectTagging(ctx: BucketCtx, ep: TaggingEndpoint): Promise<ApiResponse> {
  const v = await taggedVersion(ctx, ep.key, ep.versionId)
  if (v.state.t === 'complete' && v.state.tagging !== undefined) await setObjectTags(ctx, ep.key, v, [])
  return { status: 204, headers: { 'x-amz-version-id': toHex(v.uuid) } }
}

export function handleGetBucketTagging(ctx: BucketCtx): ApiResponse {
  const tags = ctx.bucketParams.tags?.v ?? null
  if (tags === null) throw new ApiError('NoSuchTagSet', 'The TagSet does not exist', { extra: { BucketName: ctx.bucketName } })
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: renderTagging(tags) }
}

export async function handlePutBucketTagging(ctx: BucketCtx): Promise<ApiResponse> {
  const doc = await readXmlBody(ctx.body, 64 * 1024)
  await ctx.bodyResult
  const tags = parseTaggingXml(doc, MAX_BUCKET_TAGS, 'bucket')
  await ctx.garage.buckets.updateParams(ctx.bucketId, (p) => ({ ...p, tags: setOptLww(p.tags, tags, nowMsec()) }))
  return { status: 204 }
}

export async function handleDeleteBucketTagging(ctx: BucketCtx): Promise<ApiResponse> {
  if ((ctx.bucketParams.tags?.v ?? null) !== null) {
    await ctx.garage.buckets.updateParams(ctx.bucketId, (p) => ({ ...p, tags: setOptLww(p.tags, null, nowMsec()) }))
  }
  return { status: 204 }
}
