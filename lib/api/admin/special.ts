/** The endpoints outside `/v2/` (port of garage_api_admin::special): options, health, check, metrics. */
import type { ApiResponse } from '../common/server.ts'
import { clusterHealth } from './cluster.ts'
import type { AdminContext } from './context.ts'
import { badRequest } from './errors.ts'

export function handleOptions(): ApiResponse {
  return {
    status: 200,
    headers: {
      allow: 'OPTIONS,GET,POST',
      'access-control-allow-methods': 'OPTIONS,GET,POST',
      'access-control-allow-headers': 'authorization,content-type',
      'access-control-allow-origin': '*',
    },
  }
}

export function handleHealth(ctx: Pick<AdminContext, 'node'>): ApiResponse {
  const h = clusterHealth(ctx.node)
  const [status, text] =
    h.status === 'healthy'
      ? [200, 'Garage is fully operational']
      : h.status === 'degraded'
        ? [200, 'Garage is operational but some storage nodes are unavailable']
        : [503, 'Quorum is not available for some/all partitions, reads and writes will fail']
  return {
    status,
    headers: { 'content-type': 'text/plain' },
    body: `${text}\nConsult the full health check API endpoint at /v2/GetClusterHealth for more details\n`,
  }
}

/** The bucket a host name designates, if it ends with `.<root>`. */
function hostToBucket(domain: string, root: string | undefined): string | undefined {
  if (root === undefined) return undefined
  const r = root.startsWith('.') ? root : `.${root}`
  return domain.endsWith(r) && domain.length > r.length ? domain.slice(0, -r.length) : undefined
}

/**
 * For on-demand TLS (Caddy's `ask`): 200 if `domain` is `<bucket>.<s3 root domain>` of an existing
 * bucket, or `<bucket>.<web root domain>` / `<bucket>` of a bucket with website access. The bucket
 * is resolved as every request path does (`garage.access`: local first, quorum on a miss).
 */
export async function handleCheckDomain(ctx: Pick<AdminContext, 'garage' | 'settings' | 'query'>): Promise<ApiResponse> {
  const domain = ctx.query.get('domain')
  if (domain === null || domain === '') throw badRequest('No domain query string found')
  const name = domain.toLowerCase()
  const s3Bucket = hostToBucket(name, ctx.settings.s3RootDomain)
  const bucketName = s3Bucket ?? hostToBucket(name, ctx.settings.webRootDomain) ?? name
  const mustHaveWebsite = s3Bucket === undefined
  const bucket = await ctx.garage.access.findBucket(bucketName)
  const ok = bucket !== undefined && (!mustHaveWebsite || bucket.params.website.v !== null)
  if (!ok) throw badRequest(`Domain '${domain}' is not managed by Garage`)
  return { status: 200, headers: { 'content-type': 'text/plain' }, body: `Domain '${domain}' is managed by Garage` }
}

export async function handleMetrics(ctx: Pick<AdminContext, 'metrics'>): Promise<ApiResponse> {
  return { status: 200, headers: { 'content-type': ctx.metrics.contentType }, body: await ctx.metrics.text() }
}
