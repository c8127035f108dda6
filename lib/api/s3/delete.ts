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
import { readBody } from './body.ts'
import { parseXml, renderXml, xmlChildren, xmlText } from './xml.ts'

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

export async function handleDeleteObjects(
  garage: Garage,
  bucketId: Uuid,
  body: Readable,
  result: Promise<ChecksumResult>,
): Promise<ApiResponse> {
  const text = await readBody(body, 1024 * 1024)
  await result
  const doc = parseXml(text)
  const root = xmlChildren(doc, 'Delete')
  if (root.length !== 1) throw new ApiError('MalformedXML', 'expected a <Delete> element')
  const quiet = xmlText(root[0], 'Quiet')?.toLowerCase() === 'true'
  const objects = xmlChildren(root[0], 'Object')
  if (objects.length === 0) throw new ApiError('MalformedXML', 'at least one <Object> is required')
  if (objects.length > MAX_DELETE_KEYS) throw new ApiError('MalformedXML', `at most ${MAX_DELETE_KEYS} keys per request`)
  const keys = objects.map((o) => {
    const k = xmlText(o, 'Key', true)
    if (k === undefined) throw new ApiError('MalformedXML', 'each <Object> needs a <Key>')
    return k
  })
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
