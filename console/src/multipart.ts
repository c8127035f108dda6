/** How the console cuts an upload into parts (pure; unit-tested). */

export const MIB = 1024 * 1024
/** Files from this size on go up as multipart uploads (S3's smallest part is 5 MiB). */
export const MULTIPART_THRESHOLD = 8 * MIB
export const MIN_PART_SIZE = 5 * MIB
export const MAX_PARTS = 10_000

export interface PartPlan {
  partNumber: number
  start: number
  end: number
}

/**
 * The parts of a multipart upload of `size` bytes: `partSize` (at least 5 MiB, and large enough
 * for at most 10 000 parts), the last one shorter. Undefined when one PUT is enough.
 */
export function planParts(size: number, partSize = MIN_PART_SIZE, threshold = MULTIPART_THRESHOLD): PartPlan[] | undefined {
  if (size < threshold) return undefined
  const step = Math.max(partSize, MIN_PART_SIZE, Math.ceil(size / MAX_PARTS))
  const parts: PartPlan[] = []
  for (let start = 0, n = 1; start < size; start += step, n++)
    parts.push({ partNumber: n, start, end: Math.min(size, start + step) })
  return parts
}

/** The CompleteMultipartUpload body. */
export function completeMultipartXml(parts: ReadonlyArray<{ partNumber: number; etag: string }>): string {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
  return `<CompleteMultipartUpload>${parts
    .map((p) => `<Part><PartNumber>${p.partNumber}</PartNumber><ETag>${esc(p.etag)}</ETag></Part>`)
    .join('')}</CompleteMultipartUpload>`
}
