/** DeleteObject and DeleteObjects (port of garage_api_s3::delete). */
import type { Readable } from 'node:stream'
import type { Garage } from '../../model/garage.ts'
import type { ChecksumResult } from '../common/signature/body.ts'
import { genUuid, toHex, type Uuid, utf8 } from '../../util/data.ts'
import { nextTimestamp } from '../../util/time.ts'
import { ApiError, toApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import { currentVersion } from './get.ts'
import { checkS3ObjectKey } from './names.ts'
import { readXmlBody, renderXml, type XmlDocument, xmlChildren, xmlOnly, xmlRoot, xmlText } from './xml.ts'

/**
 * Writes a delete marker over the current version. Returns the marker's version id, or
 * undefined when there was nothing to delete (S3 answers 204 either way).
 */
export async function deleteObject(garage: Garage, bucketId: Uuid, key: string): Promise<Uuid | undefined> {
  // DeleteObjects' keys come from its XML body: each is checked here, before any read.
  checkS3ObjectKey(key)
  const o = await garage.objectTable.get(bucketId, utf8(key))
  // Nothing visible: nothing to write (an upload in progress belongs to its uploader).
  if (o === undefined || currentVersion(o) === undefined) return undefined
  const ts = nextTimestamp(Math.max(...o.versions.map((v) => v.ts)))
  const uuid = genUuid()
  await garage.objectTable.insert({ bucketId, key, versions: [{ uuid, ts, state: { t: 'complete', data: { t: 'delete' } } }] })
  return uuid
}

export async function handleDeleteObject(garage: Garage, bucketId: Uuid, key: string): Promise<ApiResponse> {
  const marker = await deleteObject(garage, bucketId, key)
  const headers: Record<string, string> = {}
  if (marker !== undefined) headers['x-amz-version-id'] = toHex(marker)
  return { status: 204, headers }
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
  const keys = objects.map((o) => {
    xmlOnly(o, ['Key', 'VersionId', 'ETag', 'LastModifiedTime', 'Size'], 'Object')
    const k = xmlText(o, 'Key', true)
    if (k === undefined) throw new ApiError('MalformedXML', 'each <Object> needs a <Key>')
    return k
  })
  return { quiet, keys }
}

export async function handleDeleteObjects(
  garage: Garage,
  bucketId: Uuid,
  body: Readable,
  result: Promise<ChecksumResult>,
): Promise<ApiResponse> {
  const doc = await readXmlBody(body, MAX_DELETE_BODY)
  await result
  const { quiet, keys } = parseDeleteBody(doc)
  const deleted: Array<Record<string, unknown>> = []
  const errors: Array<Record<string, unknown>> = []
  for (const key of keys) {
    try {
      const marker = await deleteObject(garage, bucketId, key)
      if (!quiet) {
        deleted.push(marker === undefined ? { Key: key } : { Key: key, DeleteMarker: true, DeleteMarkerVersionId: toHex(marker) })
      }
    } catch (err) {
      const e = toApiError(err)
      errors.push({ Key: key, Code: e.code, Message: e.message })
    }
  }
  const xml = renderXml('DeleteResult', { Deleted: deleted, Error: errors })
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: xml }
}
