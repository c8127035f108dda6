/**
 * The object browser's S3 client. Requests go to `/ui/s3/<bucket>/<key>` on the console's own
 * origin and are signed (SigV4) with the access key the operator picked; the admin server hands
 * them to the node's S3 handler, which checks the signature and the key's permissions. Uploads
 * use XMLHttpRequest for progress events; large files go up as multipart uploads.
 */
import { completeMultipartXml, planParts } from './multipart.ts'
import { EMPTY_SHA256, objectPath, presignQuery, type SigningKey, sha256Hex, signRequest, UNSIGNED_PAYLOAD } from './sigv4.ts'

export interface S3Target {
  /** `location.host`. */
  host: string
  /** `location.origin`. */
  origin: string
  region: string
  /** Path prefix of the S3 API on the admin server: `/ui/s3`. */
  prefix: string
  key: SigningKey
}

export class S3ApiError extends Error {
  override name = 'S3ApiError'
  readonly code: string
  readonly status: number
  constructor(code: string, status: number, message: string) {
    super(message)
    this.code = code
    this.status = status
  }
}

export interface ObjectEntry {
  key: string
  size: number
  lastModified: string
  etag: string
}

export interface VersionEntry extends ObjectEntry {
  versionId: string
  isLatest: boolean
  deleteMarker: boolean
}

export interface Listing {
  prefixes: string[]
  objects: ObjectEntry[]
  nextToken: string | undefined
}

const text = (el: Element | Document, tag: string): string => el.getElementsByTagName(tag)[0]?.textContent ?? ''

async function errorOf(res: Response): Promise<S3ApiError> {
  const body = await res.text()
  const doc = body.startsWith('<') ? new DOMParser().parseFromString(body, 'application/xml') : undefined
  const code = doc === undefined ? `HTTP${res.status}` : text(doc, 'Code') || `HTTP${res.status}`
  const message = doc === undefined ? body || `HTTP ${res.status}` : text(doc, 'Message') || code
  return new S3ApiError(code, res.status, message)
}

export type Progress = (sent: number, total: number) => void

export class ConsoleS3 {
  readonly #t: S3Target

  constructor(target: S3Target) {
    this.#t = target
  }

  async #signed(
    method: string,
    path: string,
    query: Array<[string, string]>,
    o: { payloadHash?: string; headers?: Record<string, string> } = {},
  ): Promise<{ url: string; headers: Record<string, string> }> {
    const t = this.#t
    const s = await signRequest({
      method,
      host: t.host,
      path,
      query,
      payloadHash: o.payloadHash ?? EMPTY_SHA256,
      key: t.key,
      region: t.region,
      ...(o.headers === undefined ? {} : { headers: o.headers }),
    })
    return { url: `${t.prefix}${path}${s.query === '' ? '' : `?${s.query}`}`, headers: s.headers }
  }

  async #fetch(method: string, path: string, query: Array<[string, string]> = [], body?: string): Promise<Response> {
    const payloadHash = body === undefined ? EMPTY_SHA256 : await sha256Hex(body)
    const { url, headers } = await this.#signed(method, path, query, { payloadHash })
    const res = await fetch(url, { method, headers, ...(body === undefined ? {} : { body }) })
    if (!res.ok) throw await errorOf(res)
    return res
  }

  async #xml(method: string, path: string, query: Array<[string, string]> = [], body?: string): Promise<Document> {
    const res = await this.#fetch(method, path, query, body)
    return new DOMParser().parseFromString(await res.text(), 'application/xml')
  }

  /** One page of `prefix`'s children: common prefixes ("folders") and objects. */
  async list(bucket: string, prefix: string, token?: string): Promise<Listing> {
    const q: Array<[string, string]> = [
      ['list-type', '2'],
      ['delimiter', '/'],
      ['prefix', prefix],
      ['max-keys', '200'],
    ]
    if (token !== undefined) q.push(['continuation-token', token])
    const doc = await this.#xml('GET', objectPath(bucket), q)
    const prefixes = [...doc.getElementsByTagName('CommonPrefixes')].map((p) => text(p, 'Prefix'))
    const objects = [...doc.getElementsByTagName('Contents')].map((c) => ({
      key: text(c, 'Key'),
      size: Number(text(c, 'Size')),
      lastModified: text(c, 'LastModified'),
      etag: text(c, 'ETag'),
    }))
    const truncated = text(doc, 'IsTruncated') === 'true'
    return { prefixes, objects, nextToken: truncated ? text(doc, 'NextContinuationToken') : undefined }
  }

  /** `Enabled`, `Suspended` or '' (never enabled). */
  async versioning(bucket: string): Promise<string> {
    const doc = await this.#xml('GET', objectPath(bucket), [['versioning', '']])
    return text(doc, 'Status')
  }

  /** Every version of the objects whose key is exactly `key`. */
  async versions(bucket: string, key: string): Promise<VersionEntry[]> {
    const doc = await this.#xml('GET', objectPath(bucket), [
      ['versions', ''],
      ['prefix', key],
    ])
    const out: VersionEntry[] = []
    for (const el of doc.documentElement.children) {
      if (el.tagName !== 'Version' && el.tagName !== 'DeleteMarker') continue
      if (text(el, 'Key') !== key) continue
      out.push({
        key,
        versionId: text(el, 'VersionId'),
        isLatest: text(el, 'IsLatest') === 'true',
        deleteMarker: el.tagName === 'DeleteMarker',
        size: Number(text(el, 'Size') || 0),
        lastModified: text(el, 'LastModified'),
        etag: text(el, 'ETag'),
      })
    }
    return out
  }

  /** The object's metadata headers (HEAD). */
  async head(bucket: string, key: string, versionId?: string): Promise<Array<[string, string]>> {
    const res = await this.#fetch('HEAD', objectPath(bucket, key), versionId === undefined ? [] : [['versionId', versionId]])
    return [...res.headers.entries()].filter(([k]) => k !== 'x-amz-request-id' && k !== 'connection' && k !== 'keep-alive')
  }

  async delete(bucket: string, key: string, versionId?: string): Promise<void> {
    await this.#fetch('DELETE', objectPath(bucket, key), versionId === undefined ? [] : [['versionId', versionId]])
  }

  /**
   * A presigned GET URL on this origin, valid `expiresSecs`; with `download`, the answer asks the
   * browser to save the file under that name.
   */
  async presign(bucket: string, key: string, o: { expiresSecs: number; download?: string; versionId?: string }): Promise<string> {
    const t = this.#t
    const path = objectPath(bucket, key)
    const query: Array<[string, string]> = []
    if (o.versionId !== undefined) query.push(['versionId', o.versionId])
    if (o.download !== undefined) {
      query.push(['response-content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(o.download)}`])
    }
    const q = await presignQuery({
      method: 'GET',
      host: t.host,
      path,
      query,
      key: t.key,
      region: t.region,
      expiresSecs: o.expiresSecs,
    })
    return `${t.origin}${t.prefix}${path}?${q}`
  }

  /** Uploads `file` as `key`, reporting progress; multipart from 8 MiB on. */
  async upload(bucket: string, key: string, file: Blob, onProgress: Progress, signal?: AbortSignal): Promise<void> {
    const path = objectPath(bucket, key)
    const type = file.type === '' ? 'application/octet-stream' : file.type
    const parts = planParts(file.size)
    if (parts === undefined) {
      const { url, headers } = await this.#signed('PUT', path, [], { payloadHash: UNSIGNED_PAYLOAD })
      await xhrPut(url, { ...headers, 'content-type': type }, file, (n) => onProgress(n, file.size), signal)
      onProgress(file.size, file.size)
      return
    }
    const init = await this.#signed('POST', path, [['uploads', '']], { headers: { 'content-type': type } })
    const initRes = await fetch(init.url, { method: 'POST', headers: { ...init.headers, 'content-type': type } })
    if (!initRes.ok) throw await errorOf(initRes)
    const uploadId = text(new DOMParser().parseFromString(await initRes.text(), 'application/xml'), 'UploadId')
    const done: Array<{ partNumber: number; etag: string }> = []
    let sentBefore = 0
    try {
      for (const p of parts) {
        const q: Array<[string, string]> = [
          ['partNumber', String(p.partNumber)],
          ['uploadId', uploadId],
        ]
        const { url, headers } = await this.#signed('PUT', path, q, { payloadHash: UNSIGNED_PAYLOAD })
        const etag = await xhrPut(url, headers, file.slice(p.start, p.end), (n) => onProgress(sentBefore + n, file.size), signal)
        sentBefore += p.end - p.start
        done.push({ partNumber: p.partNumber, etag })
      }
      await this.#fetch('POST', path, [['uploadId', uploadId]], completeMultipartXml(done))
    } catch (err) {
      // The parts already sent would otherwise stay until a cleanup; the upload's own error is
      // what the operator needs to see, so a failure to abort is only added to it.
      try {
        await this.#fetch('DELETE', path, [['uploadId', uploadId]])
      } catch (abortErr) {
        throw new AggregateError([err, abortErr], `${(err as Error).message} (and aborting the upload failed)`)
      }
      throw err
    }
    onProgress(file.size, file.size)
  }
}

/** PUT with upload progress; resolves with the ETag. */
function xhrPut(
  url: string,
  headers: Record<string, string>,
  body: Blob,
  onProgress: (sent: number) => void,
  signal?: AbortSignal,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    xhr.open('PUT', url)
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v)
    xhr.upload.onprogress = (e) => onProgress(e.loaded)
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve(xhr.getResponseHeader('etag') ?? '')
      const doc = new DOMParser().parseFromString(xhr.responseText, 'application/xml')
      reject(new S3ApiError(text(doc, 'Code') || `HTTP${xhr.status}`, xhr.status, text(doc, 'Message') || `HTTP ${xhr.status}`))
    }
    xhr.onerror = () => reject(new S3ApiError('NetworkError', 0, 'the upload was interrupted'))
    xhr.onabort = () => reject(new S3ApiError('Aborted', 0, 'the upload was cancelled'))
    signal?.addEventListener('abort', () => xhr.abort(), { once: true })
    xhr.send(body)
  })
}
