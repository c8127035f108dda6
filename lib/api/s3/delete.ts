/** DeleteObject and DeleteObjects (port of garage_api_s3::delete). */
import type { Readable } from 'node:stream'
import type { Garage } from '../../model/garage.ts'
import type { ChecksumResult } from '../common/signature/body.ts'
import type { Uuid } from '../../util/data.ts'
import { ApiError, toApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import type { BucketParams } from '../../model/bucket-table.ts'
import { type DeleteOptions, type DeleteOutcome, deleteHeaders, deleteObjectVersion, deleteObjectVersions } from './versioning.ts'
import { readXmlBody, renderXml, type XmlDocument, xmlChildren, xmlOnly, xmlRoot, xmlText } from './xml.ts'

/**
 * Deletes `key` of a bucket never versioned: a delete marker over its visible version. Returns
 * the marker's version id, or undefined when there was nothing to delete.
 */
export async function deleteObject(garage: Garage, bucketId: Uuid, key: string): Promise<string | undefined> {
  return (await deleteObjectVersion(garage, bucketId, {}, key, { bypassGovernance: false })).versionId
}

/**
 * DeleteObject: a delete marker, or the deletion of one version (versioning.ts
 * `deleteObjectVersion`, which follows the bucket's versioning state and object lock).
 */
export async function handleDeleteObject(
  garage: Garage,
  bucketId: Uuid,
  params: BucketParams,
  key: string,
  opts: DeleteOptions,
): Promise<ApiResponse> {
  const r = await deleteObjectVersion(garage, bucketId, params, key, opts)
  return { status: 204, headers: deleteHeaders(r) }
}

/** At most this many keys per DeleteObjects request, as on AWS. */
const MAX_DELETE_KEYS = 1000
/** 1,000 keys of 1,024 bytes, each written with references for every byte, fit well within this. */
const MAX_DELETE_BODY = 8 * 1024 * 1024

const XS_BOOLEAN: Record<string, boolean | undefined> = { true: true, '1': true, false: false, '0': false }

/** The body of a DeleteObjects request. @internal */
export interface DeleteRequest {
  quiet: boolean
  keys: string[]
  /** The `<VersionId>` of each key (undefined where absent); absent when no key has one. */
  versionIds?: Array<string | undefined>
}

/**
 * Reads `<Delete>`: `<Quiet>` and up to 1,000 `<Object>`s, each with a `<Key>` taken verbatim
 * (whitespace is part of a key). Elements AWS defines but we do not use (`VersionId`, `ETag`,
 * `LastModifiedTime`, `Size`) are accepted; unknown ones are MalformedXML, as on AWS.
 * @internal
 */
export function parseDeleteBody(doc: XmlDocument): DeleteRequest {
  const root = xmlRoot(doc, 'Delete')
  xmlOnly(root, ['Object', 'Quiet'], 'Delete')
  const quietText = xmlText(root, 'Quiet')
  const quiet = quietText === undefined ? false : XS_BOOLEAN[quietText.toLowerCase()]
  if (quiet === undefined) throw new ApiError('MalformedXML', `<Quiet> must be true or false, got '${quietText?.slice(0, 16)}'`)
  const objects = xmlChildren(root, 'Object')
  if (objects.length === 0) throw new ApiError('MalformedXML', 'at least one <Object> is required')
  if (objects.length > MAX_DELETE_KEYS) throw new ApiError('MalformedXML', `at most ${MAX_DELETE_KEYS} keys per request`)
  const versionIds: Array<string | undefined> = []
  const keys = objects.map((o) => {
    xmlOnly(o, ['Key', 'VersionId', 'ETag', 'LastModifiedTime', 'Size'], 'Object')
    const k = xmlText(o, 'Key', true)
    if (k === undefined) throw new ApiError('MalformedXML', 'each <Object> needs a <Key>')
    versionIds.push(xmlText(o, 'VersionId'))
    return k
  })
  return versionIds.some((v) => v !== undefined) ? { quiet, keys, versionIds } : { quiet, keys }
}

export async function handleDeleteObjects(
  garage: Garage,
  bucketId: Uuid,
  params: BucketParams,
  body: Readable,
  result: Promise<ChecksumResult>,
  opts: { bypassGovernance: boolean },
): Promise<ApiResponse> {
  const doc = await readXmlBody(body, MAX_DELETE_BODY)
  await result
  const { quiet, keys, versionIds } = parseDeleteBody(doc)
  const deleted: Array<Record<string, unknown>> = []
  const errors: Array<Record<string, unknown>> = []
  const items = keys.map((key, i) => ({ key, versionId: versionIds?.[i] }))
  const outcomes = await deleteObjectVersions(garage, bucketId, params, items, opts)
  outcomes.forEach((r, i) => {
    const { key, versionId } = items[i] as (typeof items)[number]
    if (r instanceof Error) {
      const e = toApiError(r)
      errors.push({ Key: key, ...(versionId !== undefined ? { VersionId: versionId } : {}), Code: e.code, Message: e.message })
    } else if (!quiet) {
      deleted.push(deletedEntry(key, versionId, r))
    }
  })
  const xml = renderXml('DeleteResult', { Deleted: deleted, Error: errors })
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: xml }
}

/**
 * One `<Deleted>` entry, as AWS writes it: the version deleted by id (with `DeleteMarker` when
 * it was one), or the delete marker written.
 */
function deletedEntry(key: string, versionId: string | undefined, r: DeleteOutcome): Record<string, unknown> {
  if (versionId !== undefined) {
    return { Key: key, VersionId: versionId, ...(r.deleteMarker ? { DeleteMarker: true, DeleteMarkerVersionId: versionId } : {}) }
  }
  if (r.versionId === undefined) return { Key: key }
  return { Key: key, DeleteMarker: true, DeleteMarkerVersionId: r.versionId }
}
