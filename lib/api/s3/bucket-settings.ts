/**
 * The bucket settings that S3 exposes as subresources (`?cors`, `?website`, `?lifecycle`,
 * `?encryption`, `?policy`, `?acl`): each is one last-writer-wins register in the bucket's
 * parameters. Their GET answers a "not found" error of its own when the register is empty, their
 * PUT reads a bounded XML body and their DELETE empties the register; these helpers are the parts
 * the handlers share.
 */
import { type BucketParams, setOptLww } from '../../model/bucket-table.ts'
import type { Lww } from '../../util/crdt/crdt.ts'
import { nowMsec } from '../../util/time.ts'
import { ApiError, type ApiErrorCode } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import type { BucketCtx } from './context.ts'
import { readXmlBody, type XmlDocument } from './xml.ts'

/** The parameters that are one register each (some absent in rows written by older versions). */
export type BucketSetting = {
  [F in keyof BucketParams]-?: NonNullable<BucketParams[F]> extends Lww<unknown> ? F : never
}[keyof BucketParams]

/** What the register of `F` holds. */
export type BucketSettingValue<F extends BucketSetting> = NonNullable<BucketParams[F]> extends Lww<infer T> ? T : never

/** Sets the register `field` of the request's bucket to `value` (null: the setting is removed). */
export async function setBucketSetting<F extends BucketSetting>(
  ctx: BucketCtx,
  field: F,
  value: BucketSettingValue<F>,
): Promise<void> {
  await ctx.garage.buckets.updateParams(ctx.bucketId, (p) => ({
    ...p,
    [field]: setOptLww(p[field] as Lww<BucketSettingValue<F>> | undefined, value, nowMsec()),
  }))
}

/** The setting's value, or the subresource's own "not found" error when it is not set. */
export function storedBucketSetting<F extends BucketSetting>(
  ctx: BucketCtx,
  field: F,
  notFound: { code: ApiErrorCode; message: string },
): NonNullable<BucketSettingValue<F>> {
  const v = (ctx.bucketParams[field] as Lww<BucketSettingValue<F>> | undefined)?.v ?? null
  if (v === null) throw new ApiError(notFound.code, notFound.message, { extra: { BucketName: ctx.bucketName } })
  return v as NonNullable<BucketSettingValue<F>>
}

/** A settings PUT's XML body, parsed once the whole body has passed its signature and checksums. */
export async function readSettingXml(ctx: BucketCtx, maxBytes: number): Promise<XmlDocument> {
  const doc = await readXmlBody(ctx.body, maxBytes)
  await ctx.bodyResult
  return doc
}

/** A 200 answer carrying an XML document. */
export function xmlAnswer(body: string): ApiResponse {
  return { status: 200, headers: { 'content-type': 'application/xml' }, body }
}
