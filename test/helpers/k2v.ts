import { SignatureV4 } from '@smithy/signature-v4'
import { Sha256 } from './smithy-sha256.ts'

export interface K2vTarget {
  endpoint: string
  region: string
  accessKeyId: string
  secretAccessKey: string
}

export interface RawK2vRequest {
  method: string
  /** Bucket name. */
  bucket: string
  /** Partition key (not encoded). */
  pk?: string
  /** Query parameters (not encoded); `null` for a bare keyword. */
  query?: Record<string, string | null>
  headers?: Record<string, string>
  body?: string | Uint8Array
}

export interface RawK2vResponse {
  status: number
  headers: Headers
  body: Buffer
  json(): unknown
}

const esc = (s: string): string =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

/** Sends one signed K2V request and reads the whole answer. */
export async function k2vRaw(t: K2vTarget, r: RawK2vRequest): Promise<RawK2vResponse> {
  const url = new URL(t.endpoint)
  const path = `/${r.bucket}${r.pk === undefined ? '' : `/${esc(r.pk)}`}`
  const query: Record<string, string | null> = r.query ?? {}
  const signer = new SignatureV4({
    credentials: { accessKeyId: t.accessKeyId, secretAccessKey: t.secretAccessKey },
    region: t.region,
    service: 'k2v',
    sha256: Sha256,
  })
  const body = r.body === undefined ? undefined : typeof r.body === 'string' ? Buffer.from(r.body) : Buffer.from(r.body)
  const signed = await signer.sign({
    method: r.method,
    protocol: url.protocol,
    hostname: url.hostname,
    port: Number(url.port),
    path,
    query: Object.fromEntries(Object.entries(query).map(([k, v]) => [k, v ?? ''])) as Record<string, string>,
    headers: { host: url.host, ...(r.headers ?? {}) },
    ...(body === undefined ? {} : { body }),
  })
  const qs = Object.entries(query)
    .map(([k, v]) => (v === null ? esc(k) : `${esc(k)}=${esc(v)}`))
    .join('&')
  const headers = { ...(signed.headers as Record<string, string>) }
  delete headers.host
  const res = await fetch(`${t.endpoint}${path}${qs === '' ? '' : `?${qs}`}`, {
    method: r.method,
    headers,
    ...(body === undefined ? {} : { body }),
  })
  const buf = Buffer.from(await res.arrayBuffer())
  return { status: res.status, headers: res.headers, body: buf, json: () => JSON.parse(buf.toString('utf8')) as unknown }
}
