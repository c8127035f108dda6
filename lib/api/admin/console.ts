/**
 * The web console, served by the admin API server under `/ui/` (no Garage counterpart: Garage
 * ships no web interface). Two parts:
 *
 * - static assets (`index.html`, `app.js`, `app.css`) built from `console/` by `npm run build`
 *   into `dist/ui/`, read from the package at run time; nothing is fetched from elsewhere;
 * - `/ui/s3/<path>`: the S3 API of this node, reached from the console's own origin. The console
 *   signs each S3 request (SigV4) with an access key the signed-in operator picks, for the path
 *   without the `/ui/s3` prefix; the request is handed in-process to the S3 handler, which checks
 *   the signature and the key's permissions exactly as on the S3 port. The admin token never
 *   travels there (see docs/design/console.md).
 */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { join, normalize, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { incompleteBody, isClientAbort, toApiError } from '../common/errors.ts'
import type { ApiHandler, ApiResponse, RequestContext } from '../common/server.ts'

/** Where the console is mounted on the admin API. */
export const CONSOLE_PREFIX = '/ui'
/** Where the S3 API is reachable for the console. */
export const CONSOLE_S3_PREFIX = '/ui/s3'

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.map': 'application/json',
  '.ico': 'image/x-icon',
}

/**
 * Headers of every console asset. The policy allows only this origin's scripts, styles and
 * requests (blob: for downloads of fetched objects), and no framing.
 */
const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
}

/**
 * The directory of the built console: `dist/ui` next to the bundled library (`dist/*.cjs`), or
 * the repository's `dist/ui` when running from the TypeScript sources. Undefined when it has not
 * been built (the console then answers 404 with a hint).
 * @internal
 */
export function findConsoleAssets(): string | undefined {
  const candidates = [new URL('./ui/', import.meta.url), new URL('../../../dist/ui/', import.meta.url)]
  for (const c of candidates) {
    if (c.protocol !== 'file:') continue
    const dir = fileURLToPath(c)
    if (existsSync(join(dir, 'index.html'))) return dir
  }
  return undefined
}

/** Whether `path` (without its query) is the console's. @internal */
export const isConsolePath = (path: string): boolean => path === CONSOLE_PREFIX || path.startsWith(`${CONSOLE_PREFIX}/`)

/** @internal */
export interface ConsoleOptions {
  /** Directory of the built assets; undefined: not built. */
  assets: string | undefined
  /** The node's S3 handler, for `/ui/s3/`. */
  s3: ApiHandler | undefined
  /** The S3 region, which the console signs its requests for (served as `/ui/config.json`). */
  region: string
}

/**
 * Serves a console request (`path` starts with `/ui`). Throws nothing for a missing file: the
 * answer is a plain 404.
 * @internal
 */
export async function handleConsole(
  o: ConsoleOptions,
  req: IncomingMessage,
  rctx: RequestContext,
  path: string,
): Promise<ApiResponse> {
  if (path === CONSOLE_S3_PREFIX || path.startsWith(`${CONSOLE_S3_PREFIX}/`)) return forwardToS3(o, req, rctx)
  rctx.endpoint = 'Console'
  const method = (req.method ?? 'GET').toUpperCase()
  if (method !== 'GET' && method !== 'HEAD') {
    return { status: 405, headers: { allow: 'GET, HEAD', 'content-type': 'text/plain' }, body: 'Method Not Allowed\n' }
  }
  if (path === CONSOLE_PREFIX) return { status: 308, headers: { location: `${CONSOLE_PREFIX}/` } }
  if (path === `${CONSOLE_PREFIX}/config.json`) {
    const body = JSON.stringify({ region: o.region })
    return {
      status: 200,
      headers: { 'content-type': 'application/json', 'cache-control': 'no-cache', ...SECURITY_HEADERS },
      body,
    }
  }
  if (o.assets === undefined) {
    return {
      status: 404,
      headers: { 'content-type': 'text/plain' },
      body: 'The web console has not been built: run `npm run build` in the package.\n',
    }
  }
  // The console is a single page: every path that is not an asset gets index.html.
  let rel = path.slice(CONSOLE_PREFIX.length + 1)
  const dot = rel.lastIndexOf('.')
  if (rel === '' || dot < 0 || rel.lastIndexOf('/') > dot) rel = 'index.html'
  let decoded: string
  try {
    decoded = decodeURIComponent(rel)
  } catch {
    // Malformed percent-encoding names no asset: answered like any missing file.
    return notFound()
  }
  const file = normalize(join(o.assets, decoded))
  if (!file.startsWith(o.assets.endsWith(sep) ? o.assets : o.assets + sep)) return notFound()
  const ext = file.slice(file.lastIndexOf('.'))
  let body: Buffer
  try {
    body = await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EISDIR') return notFound()
    throw err
  }
  return {
    status: 200,
    headers: {
      'content-type': TYPES[ext] ?? 'application/octet-stream',
      'cache-control': 'no-cache',
      ...SECURITY_HEADERS,
    },
    body: method === 'HEAD' ? '' : body,
  }
}

function notFound(): ApiResponse {
  return { status: 404, headers: { 'content-type': 'text/plain' }, body: 'Not Found\n' }
}

/**
 * Hands `/ui/s3/<rest>` to the S3 handler as `/<rest>`: the console signed it for that path and
 * this request's Host, so the handler authenticates it as it would on its own port.
 */
async function forwardToS3(o: ConsoleOptions, req: IncomingMessage, rctx: RequestContext): Promise<ApiResponse> {
  if (o.s3 === undefined) return notFound()
  const url = req.url ?? '/'
  req.url = url.slice(CONSOLE_S3_PREFIX.length) || '/'
  if (!req.url.startsWith('/')) req.url = `/${req.url}`
  try {
    return await o.s3.handle(req, rctx)
  } catch (err) {
    // Rendered as the S3 port renders it (XML), not as an admin error.
    const e = isClientAbort(err, req) ? incompleteBody(err) : toApiError(err)
    if (e.status >= 500) rctx.log.error(`console s3 ${req.method} ${req.url} → ${e.code} [${rctx.requestId}]`, e.cause ?? e)
    if (!req.complete) req.resume()
    return o.s3.renderError(e, req, rctx)
  } finally {
    req.url = url
  }
}
