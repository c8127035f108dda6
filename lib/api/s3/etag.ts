/**
 * Entity-tag comparison, one place for every S3 operation that takes an ETag from the client:
 * CompleteMultipartUpload's `<ETag>`, If-Match / If-None-Match on GET and HEAD, and the
 * `x-amz-copy-source-if-*` conditions of CopyObject and UploadPartCopy.
 *
 * S3 follows RFC 7232 here, with one leniency clients rely on: a tag may come without its quotes
 * (boto3 users often pass `ETag.strip('"')`). A header is `*` or a comma-separated list of tags,
 * each `"opaque"`, `W/"opaque"` or a bare token. If-Match uses the strong comparison (a weak tag
 * never matches: S3's ETags are strong); If-None-Match uses the weak one (`W/` is ignored).
 */

/** One tag of an If-Match / If-None-Match list. */
export interface EntityTag {
  weak: boolean
  /** The opaque tag, without quotes. */
  tag: string
}

/**
 * Parses `*` or a list of entity tags. Quoted tags may contain commas; bare tags end at the next
 * comma or whitespace. Empty members of the list (`"a", , "b"`) are skipped, as RFC 7230 §7 says.
 */
export function parseEntityTags(header: string): '*' | EntityTag[] {
  if (header.trim() === '*') return '*'
  const out: EntityTag[] = []
  let i = 0
  const n = header.length
  while (i < n) {
    const c = header[i]
    if (c === ' ' || c === '\t' || c === ',') {
      i++
      continue
    }
    let weak = false
    if (header.startsWith('W/', i)) {
      weak = true
      i += 2
    }
    if (header[i] === '"') {
      const end = header.indexOf('"', i + 1)
      if (end < 0) {
        // An unterminated quote: take the rest as the tag, which then matches nothing real.
        out.push({ weak, tag: header.slice(i + 1) })
        break
      }
      out.push({ weak, tag: header.slice(i + 1, end) })
      i = end + 1
    } else {
      let end = i
      while (end < n && header[end] !== ',' && header[end] !== ' ' && header[end] !== '\t') end++
      const tag = header.slice(i, end)
      // `*` inside a list is a tag like any other: it matches any object, as AWS treats it.
      if (tag !== '') out.push({ weak, tag })
      i = end
    }
  }
  return out
}

/** If-Match (and x-amz-copy-source-if-match): does the header accept an object with `etag`? */
export function ifMatchAccepts(header: string, etag: string): boolean {
  const tags = parseEntityTags(header)
  if (tags === '*') return true
  return tags.some((t) => !t.weak && (t.tag === etag || t.tag === '*'))
}

/** If-None-Match (and x-amz-copy-source-if-none-match): does any tag of the header match `etag`? */
export function ifNoneMatchMatches(header: string, etag: string): boolean {
  const tags = parseEntityTags(header)
  if (tags === '*') return true
  return tags.some((t) => t.tag === etag || t.tag === '*')
}

/**
 * The ETag of a `<Part>` in CompleteMultipartUpload, as compared with the stored one: surrounding
 * whitespace and one pair of quotes removed (`"abc"` and `abc` are the same part, as on AWS).
 */
export function completePartEtag(written: string): string {
  const t = written.trim()
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t
}
