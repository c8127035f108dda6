/**
 * A typed client of Garage's K2V API (the counterpart of Garage's `k2v-client` crate), for this
 * server and for Garage itself. Standalone: it signs requests itself (AWS SigV4, service `k2v`)
 * and talks HTTP through the global `fetch`; it imports nothing else from the package.
 *
 * ```ts
 * import { K2vClient } from 'garage-ts/k2v'
 * const k2v = new K2vClient({ endpoint: 'http://localhost:3904', region: 'garage', bucket: 'mail',
 *   accessKeyId: 'GK…', secretAccessKey: '…' })
 * await k2v.insertItem('inbox', 'msg-1', 'hello')
 * const { causality, values } = await k2v.readItem('inbox', 'msg-1')
 * await k2v.insertItem('inbox', 'msg-1', 'hello, world', causality)   // replaces what was read
 * ```
 *
 * Causality tokens are opaque strings: pass back the one a read returned to replace (or delete)
 * the values that read saw. Values are bytes; `null` marks a deletion (a tombstone).
 */
import { createHash, createHmac } from 'node:crypto'

/** A value: bytes, or `null` for a deletion (tombstone). */
export type K2vValue = Uint8Array | null

/** The values of an item and the causality token covering them. */
export interface CausalValue {
  /** Opaque token: send it with a write to replace these values. */
  causality: string
  /** One value, or several concurrent ones (siblings), in the server's order. */
  values: K2vValue[]
}

/** An item as the batch reads return it. */
export interface K2vItem extends CausalValue {
  sortKey: string
}

export interface K2vClientOptions {
  /** `http://host:port` of the K2V API (port 3904 in Garage's examples). */
  endpoint: string
  /** The S3 region the server is configured with (`s3_region`). Default `garage`. */
  region?: string
  accessKeyId: string
  secretAccessKey: string
  bucket: string
  /** The fetch implementation (default: the global one). */
  fetch?: typeof fetch
}

/** Options of any call. */
export interface K2vCallOptions {
  /** Aborts the request (a poll stops waiting). */
  signal?: AbortSignal
}

/** Options of a poll. */
export interface K2vPollOptions extends K2vCallOptions {
  /** How long the server waits, in seconds (server default 300, at most 600). */
  timeoutSeconds?: number
}

/** A range of sort keys (or partition keys, for ReadIndex). */
export interface K2vRange {
  prefix?: string
  start?: string
  end?: string
  limit?: number
  reverse?: boolean
}

/** One partition key of the index with its counts. */
export interface K2vPartitionInfo {
  partitionKey: string
  entries: number
  conflicts: number
  values: number
  bytes: number
}

/** A page of a range read. */
export interface K2vPage<T> {
  items: T[]
  more: boolean
  nextStart: string | undefined
}

/** One write of InsertBatch. */
export interface K2vBatchInsert {
  partitionKey: string
  sortKey: string
  /** `null` deletes. */
  value: Uint8Array | string | null
  causality?: string
}

/** One query of ReadBatch. */
export interface K2vBatchRead extends K2vRange {
  partitionKey: string
  /** Read only the item whose sort key is `start`. */
  singleItem?: boolean
  /** Only items with several values. */
  conflictsOnly?: boolean
  /** Include items whose every value is a deletion. */
  tombstones?: boolean
}

/** One query of DeleteBatch. */
export interface K2vBatchDelete {
  partitionKey: string
  prefix?: string
  start?: string
  end?: string
  /** Delete only the item whose sort key is `start`. */
  singleItem?: boolean
}

/** The range PollRange watches. */
export interface K2vPollRangeFilter {
  prefix?: string
  start?: string
  end?: string
}

/**
 * An error answered by the server, with Garage's code (`NoSuchKey`, `NotAcceptable`,
 * `CausalityToken`, `InvalidBase64`, `InvalidRequest`, `AccessDenied`, `NoSuchBucket`, …) and the
 * HTTP status; or, with code `K2V_ERR_RESPONSE`, an answer the client could not understand.
 */
export class K2vError extends Error {
  override name = 'K2vError'
  readonly code: string
  readonly status: number
  /** The request path the server reported. */
  readonly path: string | undefined
  constructor(code: string, status: number, message: string, path?: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
    this.status = status
    this.path = path
  }
}

const CAUSALITY_HEADER = 'x-garage-causality-token'

export class K2vClient {
  readonly #o: Required<Omit<K2vClientOptions, 'fetch'>>
  readonly #fetch: typeof fetch
  readonly #url: URL

  constructor(options: K2vClientOptions) {
    if (options.bucket === '') throw new TypeError('K2vClient: bucket must not be empty')
    this.#url = new URL(options.endpoint)
    this.#o = {
      endpoint: options.endpoint.replace(/\/+$/, ''),
      region: options.region ?? 'garage',
      accessKeyId: options.accessKeyId,
      secretAccessKey: options.secretAccessKey,
      bucket: options.bucket,
    }
    this.#fetch = options.fetch ?? fetch
  }

  /**
   * ReadItem: the values of one item and their causality token.
   * @throws K2vError NoSuchKey (404) when the item never existed.
   */
  async readItem(partitionKey: string, sortKey: string, options: K2vCallOptions = {}): Promise<CausalValue> {
    const res = await this.#request(
      'GET',
      partitionKey,
      { sort_key: sortKey },
      { accept: 'application/json' },
      undefined,
      options,
    )
    return { causality: tokenOf(res), values: parseValues(await json(res)) }
  }

  /**
   * PollItem: waits until the item has a value newer than `causality`; undefined when the
   * server's timeout passed first.
   */
  async pollItem(
    partitionKey: string,
    sortKey: string,
    causality: string,
    options: K2vPollOptions = {},
  ): Promise<CausalValue | undefined> {
    const query: Record<string, string> = { sort_key: sortKey, causality_token: causality }
    if (options.timeoutSeconds !== undefined) query.timeout = String(Math.max(1, Math.round(options.timeoutSeconds)))
    const res = await this.#request('GET', partitionKey, query, { accept: 'application/json' }, undefined, options, [304])
    if (res.status === 304) return undefined
    return { causality: tokenOf(res), values: parseValues(await json(res)) }
  }

  /** InsertItem: stores `value`, replacing the values `causality` covers (none: a new sibling). */
  async insertItem(
    partitionKey: string,
    sortKey: string,
    value: Uint8Array | string,
    causality?: string,
    options: K2vCallOptions = {},
  ): Promise<void> {
    const headers: Record<string, string> = causality === undefined ? {} : { [CAUSALITY_HEADER]: causality }
    await this.#request('PUT', partitionKey, { sort_key: sortKey }, headers, toBytes(value), options)
  }

  /** DeleteItem: replaces the values `causality` covers with a deletion marker. */
  async deleteItem(partitionKey: string, sortKey: string, causality: string, options: K2vCallOptions = {}): Promise<void> {
    await this.#request('DELETE', partitionKey, { sort_key: sortKey }, { [CAUSALITY_HEADER]: causality }, undefined, options)
  }

  /** ReadIndex: the partition keys of the bucket that hold items, with their counts. */
  async readIndex(range: K2vRange = {}, options: K2vCallOptions = {}): Promise<K2vPage<K2vPartitionInfo>> {
    const query: Record<string, string> = {}
    if (range.prefix !== undefined) query.prefix = range.prefix
    if (range.start !== undefined) query.start = range.start
    if (range.end !== undefined) query.end = range.end
    if (range.limit !== undefined) query.limit = String(range.limit)
    if (range.reverse !== undefined) query.reverse = String(range.reverse)
    const res = await this.#request('GET', undefined, query, {}, undefined, options)
    const body = (await json(res)) as {
      partitionKeys?: Array<{ pk: string; entries: number; conflicts: number; values: number; bytes: number }>
      more?: boolean
      nextStart?: string | null
    }
    if (!Array.isArray(body.partitionKeys)) throw malformed('ReadIndex')
    return {
      items: body.partitionKeys.map((p) => ({
        partitionKey: p.pk,
        entries: p.entries,
        conflicts: p.conflicts,
        values: p.values,
        bytes: p.bytes,
      })),
      more: body.more === true,
      nextStart: body.nextStart ?? undefined,
    }
  }

  /** InsertBatch: several writes in one request (not a transaction). */
  async insertBatch(ops: readonly K2vBatchInsert[], options: K2vCallOptions = {}): Promise<void> {
    const body = ops.map((op) => ({
      pk: op.partitionKey,
      sk: op.sortKey,
      ct: op.causality ?? null,
      v: op.value === null ? null : Buffer.from(toBytes(op.value)).toString('base64'),
    }))
    await this.#request('POST', undefined, {}, { 'content-type': 'application/json' }, utf8(JSON.stringify(body)), options)
  }

  /** ReadBatch: one page of items per query. */
  async readBatch(ops: readonly K2vBatchRead[], options: K2vCallOptions = {}): Promise<Array<K2vPage<K2vItem>>> {
    const body = ops.map((op) => ({
      partitionKey: op.partitionKey,
      prefix: op.prefix ?? null,
      start: op.start ?? null,
      end: op.end ?? null,
      limit: op.limit ?? null,
      reverse: op.reverse ?? false,
      singleItem: op.singleItem ?? false,
      conflictsOnly: op.conflictsOnly ?? false,
      tombstones: op.tombstones ?? false,
    }))
    const res = await this.#request(
      'POST',
      undefined,
      { search: '' },
      { 'content-type': 'application/json' },
      utf8(JSON.stringify(body)),
      options,
    )
    const out = (await json(res)) as Array<{ items?: unknown; more?: boolean; nextStart?: string | null }>
    if (!Array.isArray(out)) throw malformed('ReadBatch')
    return out.map((r) => ({ items: parseItems(r.items), more: r.more === true, nextStart: r.nextStart ?? undefined }))
  }

  /** DeleteBatch: deletes what each query selects; the number deleted per query. */
  async deleteBatch(ops: readonly K2vBatchDelete[], options: K2vCallOptions = {}): Promise<number[]> {
    const body = ops.map((op) => ({
      partitionKey: op.partitionKey,
      prefix: op.prefix ?? null,
      start: op.start ?? null,
      end: op.end ?? null,
      singleItem: op.singleItem ?? false,
    }))
    const res = await this.#request(
      'POST',
      undefined,
      { delete: '' },
      { 'content-type': 'application/json' },
      utf8(JSON.stringify(body)),
      options,
    )
    const out = (await json(res)) as Array<{ deletedItems?: number }>
    if (!Array.isArray(out)) throw malformed('DeleteBatch')
    return out.map((r) => r.deletedItems ?? 0)
  }

  /**
   * PollRange: without `seenMarker`, the items of the range now and a marker; with one, waits for
   * items changed since, and answers undefined when the server's timeout passed first.
   */
  async pollRange(
    partitionKey: string,
    filter: K2vPollRangeFilter = {},
    seenMarker?: string,
    options: K2vPollOptions = {},
  ): Promise<{ items: Map<string, CausalValue>; seenMarker: string } | undefined> {
    const body = {
      prefix: filter.prefix ?? null,
      start: filter.start ?? null,
      end: filter.end ?? null,
      timeout: options.timeoutSeconds === undefined ? null : Math.max(1, Math.round(options.timeoutSeconds)),
      seenMarker: seenMarker ?? null,
    }
    const res = await this.#request(
      'POST',
      partitionKey,
      { poll_range: '' },
      { 'content-type': 'application/json' },
      utf8(JSON.stringify(body)),
      options,
      [304],
    )
    if (res.status === 304) return undefined
    const out = (await json(res)) as { items?: unknown; seenMarker?: string }
    if (typeof out.seenMarker !== 'string') throw malformed('PollRange')
    const items = new Map<string, CausalValue>()
    for (const it of parseItems(out.items)) items.set(it.sortKey, { causality: it.causality, values: it.values })
    return { items, seenMarker: out.seenMarker }
  }

  async #request(
    method: string,
    partitionKey: string | undefined,
    query: Record<string, string>,
    headers: Record<string, string>,
    body: Uint8Array | undefined,
    options: K2vCallOptions,
    okStatuses: readonly number[] = [],
  ): Promise<Response> {
    const path = `/${awsEncode(this.#o.bucket)}${partitionKey === undefined ? '' : `/${awsEncode(partitionKey)}`}`
    const qs = Object.keys(query)
      .sort()
      .map((k) => `${awsEncode(k)}=${awsEncode(query[k] as string)}`)
      .join('&')
    const payload = body ?? new Uint8Array(0)
    const signed = signV4({
      method,
      // As Garage (and AWS for every service but S3): the path is encoded a second time.
      canonicalPath: path
        .split('/')
        .map((s) => awsEncode(s))
        .join('/'),
      canonicalQuery: qs,
      host: this.#url.host,
      headers,
      payloadSha256: createHash('sha256').update(payload).digest('hex'),
      region: this.#o.region,
      accessKeyId: this.#o.accessKeyId,
      secretAccessKey: this.#o.secretAccessKey,
      now: new Date(),
    })
    let res: Response
    try {
      res = await this.#fetch(`${this.#o.endpoint}${path}${qs === '' ? '' : `?${qs}`}`, {
        method,
        headers: signed,
        ...(body === undefined ? {} : { body }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      })
    } catch (err) {
      if (options.signal?.aborted === true) throw err
      throw new K2vError('K2V_ERR_NETWORK', 0, `K2V request failed: ${(err as Error).message}`, undefined, { cause: err })
    }
    if (res.ok || okStatuses.includes(res.status)) return res
    const text = await res.text()
    let e: { code?: unknown; message?: unknown; path?: unknown } = {}
    try {
      e = JSON.parse(text) as typeof e
    } catch (err) {
      throw new K2vError('K2V_ERR_RESPONSE', res.status, `HTTP ${res.status}: ${text.slice(0, 200)}`, undefined, { cause: err })
    }
    throw new K2vError(
      typeof e.code === 'string' ? e.code : 'K2V_ERR_RESPONSE',
      res.status,
      typeof e.message === 'string' ? e.message : `HTTP ${res.status}`,
      typeof e.path === 'string' ? e.path : undefined,
    )
  }
}

function malformed(what: string): K2vError {
  return new K2vError('K2V_ERR_RESPONSE', 200, `malformed ${what} answer`)
}

async function json(res: Response): Promise<unknown> {
  const text = await res.text()
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new K2vError('K2V_ERR_RESPONSE', res.status, 'the answer is not JSON', undefined, { cause: err })
  }
}

function tokenOf(res: Response): string {
  const ct = res.headers.get(CAUSALITY_HEADER)
  if (ct === null) throw new K2vError('K2V_ERR_RESPONSE', res.status, 'the answer has no causality token')
  return ct
}

function parseValues(v: unknown): K2vValue[] {
  if (!Array.isArray(v)) throw malformed('item')
  return v.map((x) => {
    if (x === null) return null
    if (typeof x !== 'string') throw malformed('item')
    return new Uint8Array(Buffer.from(x, 'base64'))
  })
}

function parseItems(v: unknown): K2vItem[] {
  if (!Array.isArray(v)) throw malformed('items')
  return v.map((it: { sk?: unknown; ct?: unknown; v?: unknown }) => {
    if (typeof it.sk !== 'string' || typeof it.ct !== 'string') throw malformed('items')
    return { sortKey: it.sk, causality: it.ct, values: parseValues(it.v) }
  })
}

const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'))
const toBytes = (v: Uint8Array | string): Uint8Array => (typeof v === 'string' ? utf8(v) : v)

/** AWS URI encoding: everything but `A-Za-z0-9-_.~` as %XX of its UTF-8 bytes (slashes too). */
function awsEncode(s: string): string {
  let out = ''
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b)
    out += /[A-Za-z0-9\-_.~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

function signV4(o: {
  method: string
  canonicalPath: string
  canonicalQuery: string
  host: string
  headers: Record<string, string>
  payloadSha256: string
  region: string
  accessKeyId: string
  secretAccessKey: string
  now: Date
}): Record<string, string> {
  const datetime = o.now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '')
  const date = datetime.slice(0, 8)
  const all: Record<string, string> = {
    ...Object.fromEntries(Object.entries(o.headers).map(([k, v]) => [k.toLowerCase(), v.trim()])),
    host: o.host,
    'x-amz-content-sha256': o.payloadSha256,
    'x-amz-date': datetime,
  }
  const names = Object.keys(all).sort()
  const signedHeaders = names.join(';')
  const canonical = [
    o.method,
    o.canonicalPath,
    o.canonicalQuery,
    names.map((n) => `${n}:${all[n]}\n`).join(''),
    signedHeaders,
    o.payloadSha256,
  ].join('\n')
  const scope = `${date}/${o.region}/k2v/aws4_request`
  const toSign = ['AWS4-HMAC-SHA256', datetime, scope, createHash('sha256').update(canonical).digest('hex')].join('\n')
  const hmac = (key: string | Buffer, data: string): Buffer => createHmac('sha256', key).update(data).digest()
  const key = hmac(hmac(hmac(hmac(`AWS4${o.secretAccessKey}`, date), o.region), 'k2v'), 'aws4_request')
  const signature = createHmac('sha256', key).update(toSign).digest('hex')
  const { host: _host, ...rest } = all
  return {
    ...rest,
    authorization: `AWS4-HMAC-SHA256 Credential=${o.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
  }
}
