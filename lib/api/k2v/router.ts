/**
 * The K2V router (port of garage_api_k2v::router): one typed endpoint per request, from the
 * method, the path (`/<bucket>/<partition key>`) and the query. Pure: no I/O and no auth.
 * Query parsing follows Garage's `generateQueryParameters`: `search`, `delete` and `poll_range`
 * are keywords (two of them is an error), a field given twice is an error, an empty field counts
 * as absent, and other parameters are ignored.
 * @internal
 */
import { ApiError } from '../common/errors.ts'

/** @internal */
export type K2vEndpoint =
  | { kind: 'Options'; bucket: string }
  | { kind: 'ReadItem'; bucket: string; partitionKey: string; sortKey: string }
  | {
      kind: 'PollItem'
      bucket: string
      partitionKey: string
      sortKey: string
      causalityToken: string
      timeout: number | undefined
    }
  | { kind: 'InsertItem'; bucket: string; partitionKey: string; sortKey: string }
  | { kind: 'DeleteItem'; bucket: string; partitionKey: string; sortKey: string }
  | {
      kind: 'ReadIndex'
      bucket: string
      prefix: string | undefined
      start: string | undefined
      end: string | undefined
      limit: number | undefined
      reverse: boolean | undefined
    }
  | { kind: 'InsertBatch'; bucket: string }
  | { kind: 'ReadBatch'; bucket: string }
  | { kind: 'DeleteBatch'; bucket: string }
  | { kind: 'PollRange'; bucket: string; partitionKey: string }

type Keyword = 'EMPTY' | 'search' | 'delete' | 'poll_range'
const KEYWORDS = new Set(['search', 'delete', 'poll_range'])
const FIELDS = new Set(['prefix', 'start', 'causality_token', 'end', 'limit', 'reverse', 'sort_key', 'timeout'])

const bad = (m: string): ApiError => new ApiError('InvalidRequest', m)

/** Garage's `Keyword` display: `` `` `` for none, else the name in backquotes. */
const show = (k: Keyword): string => (k === 'EMPTY' ? '``' : `\`${k}\``)

/**
 * @param rawPath the path as received (percent-encoded)
 * @param rawQuery the query as received, without '?'
 * @throws ApiError InvalidRequest for an unknown endpoint or bad parameters, InvalidUtf8String
 * for a partition key that is not UTF-8 once decoded
 */
export function parseK2vEndpoint(method: string, rawPath: string, rawQuery: string): K2vEndpoint {
  const path = rawPath.replace(/^\/+/, '')
  const slash = path.indexOf('/')
  const bucket = slash < 0 ? path : path.slice(0, slash)
  const rawPk = slash < 0 ? '' : path.slice(slash + 1).replace(/^\/+/, '')
  if (bucket === '') throw bad('Missing bucket name')
  if (method === 'OPTIONS') return { kind: 'Options', bucket }
  const partitionKey = percentDecodeUtf8(rawPk)

  let keyword: Keyword | undefined
  const fields = new Map<string, string>()
  for (const [k, v] of new URLSearchParams(rawQuery)) {
    if (KEYWORDS.has(k)) {
      if (keyword !== undefined) throw bad(`Multiple keywords: '${show(keyword)}' and '${k}'`)
      keyword = k as Keyword
    } else if (FIELDS.has(k) && v !== '') {
      if (fields.has(k)) throw bad(`Query parameter repeated: '${k}'`)
      fields.set(k, v)
    }
  }
  const kw: Keyword = keyword ?? 'EMPTY'
  const hasKey = partitionKey !== ''
  const required = (name: string): string => {
    const v = fields.get(name)
    if (v === undefined) throw bad('Missing argument for endpoint')
    return v
  }
  const invalid = (): ApiError => bad(`Invalid endpoint: ${show(kw)}`)

  switch (method) {
    case 'GET':
      if (kw !== 'EMPTY') throw invalid()
      if (hasKey) {
        if (fields.has('causality_token')) {
          return {
            kind: 'PollItem',
            bucket,
            partitionKey,
            sortKey: required('sort_key'),
            causalityToken: required('causality_token'),
            timeout: parseU64(fields.get('timeout')),
          }
        }
        return { kind: 'ReadItem', bucket, partitionKey, sortKey: required('sort_key') }
      }
      return {
        kind: 'ReadIndex',
        bucket,
        prefix: fields.get('prefix'),
        start: fields.get('start'),
        end: fields.get('end'),
        limit: parseU64(fields.get('limit')),
        reverse: parseBool(fields.get('reverse')),
      }
    case 'SEARCH':
      if (hasKey && kw === 'poll_range') return { kind: 'PollRange', bucket, partitionKey }
      if (!hasKey && kw === 'EMPTY') return { kind: 'ReadBatch', bucket }
      throw invalid()
    case 'POST':
      if (hasKey) {
        if (kw === 'poll_range') return { kind: 'PollRange', bucket, partitionKey }
        throw invalid()
      }
      if (kw === 'EMPTY') return { kind: 'InsertBatch', bucket }
      if (kw === 'delete') return { kind: 'DeleteBatch', bucket }
      if (kw === 'search') return { kind: 'ReadBatch', bucket }
      throw invalid()
    case 'PUT':
      if (hasKey && kw === 'EMPTY') return { kind: 'InsertItem', bucket, partitionKey, sortKey: required('sort_key') }
      throw invalid()
    case 'DELETE':
      if (hasKey && kw === 'EMPTY') return { kind: 'DeleteItem', bucket, partitionKey, sortKey: required('sort_key') }
      throw invalid()
    default:
      throw bad('Unknown method')
  }
}

/** Endpoints that only read (Garage's `authorization_type`: the rest need write). @internal */
export function k2vAuthorization(ep: K2vEndpoint): 'read' | 'write' {
  switch (ep.kind) {
    case 'PollItem':
    case 'ReadBatch':
    case 'ReadIndex':
    case 'ReadItem':
      return 'read'
    default:
      return 'write'
  }
}

function parseU64(v: string | undefined): number | undefined {
  if (v === undefined) return undefined
  if (!/^\+?\d{1,20}$/.test(v)) throw bad('Failed to parse query parameter')
  const n = BigInt(v.replace(/^\+/, ''))
  if (n > 0xffffffffffffffffn) throw bad('Failed to parse query parameter')
  return n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(n)
}

function parseBool(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined
  if (v === 'true') return true
  if (v === 'false') return false
  throw bad('Failed to parse query parameter')
}

/** Percent-decodes a path segment strictly as UTF-8 (Garage: `percent_decode_str(..).decode_utf8()`). */
function percentDecodeUtf8(s: string): string {
  const bytes: number[] = []
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0x25 && i + 2 < s.length && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(Number.parseInt(s.slice(i + 1, i + 3), 16))
      i += 2
    } else {
      for (const b of Buffer.from(s[i] as string, 'utf8')) bytes.push(b)
    }
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(bytes))
  } catch (err) {
    throw new ApiError('InvalidUtf8String', 'Invalid UTF-8: the partition key does not decode', { cause: err })
  }
}
