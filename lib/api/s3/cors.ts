/**
 * GetBucketCors, PutBucketCors and DeleteBucketCors (port of garage_api_s3::cors). The rules are
 * applied by api/common/cors.ts, to S3 answers and to website answers.
 */
import type { CorsRule } from '../../model/bucket-table.ts'
import { ApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import { readSettingXml, setBucketSetting, storedBucketSetting, xmlAnswer } from './bucket-settings.ts'
import type { BucketCtx } from './context.ts'
import { asXmlDocument, renderXml, type XmlDocument, type XmlNode, xmlChildren, xmlOnly, xmlRoot, xmlText } from './xml.ts'

/** AWS's limits: 100 rules per bucket, 64 KiB of configuration. */
const MAX_RULES = 100
const MAX_BODY = 64 * 1024
/** Methods a rule may allow (AWS's list, plus Garage's `*`). */
const CORS_METHODS = new Set(['GET', 'PUT', 'HEAD', 'POST', 'DELETE', '*'])
/** An HTTP token (RFC 9110), which header names are; `*` is a token character. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

export async function handleGetBucketCors(ctx: BucketCtx): Promise<ApiResponse> {
  const rules = storedBucketSetting(ctx, 'cors', {
    code: 'NoSuchCORSConfiguration',
    message: 'The CORS configuration does not exist',
  })
  return xmlAnswer(renderCorsConfiguration(rules))
}

export async function handlePutBucketCors(ctx: BucketCtx): Promise<ApiResponse> {
  await setBucketSetting(ctx, 'cors', parseCorsConfiguration(await readSettingXml(ctx, MAX_BODY)))
  return { status: 200 }
}

export async function handleDeleteBucketCors(ctx: BucketCtx): Promise<ApiResponse> {
  await setBucketSetting(ctx, 'cors', null)
  return { status: 204 }
}

/** `<CORSConfiguration>` as AWS returns it. @internal */
export function renderCorsConfiguration(rules: readonly CorsRule[]): string {
  return renderXml('CORSConfiguration', {
    CORSRule: rules.map((r) => ({
      ID: r.id ?? undefined,
      AllowedHeader: r.allowHeaders,
      AllowedMethod: r.allowMethods,
      AllowedOrigin: r.allowOrigins,
      ExposeHeader: r.exposeHeaders,
      MaxAgeSeconds: r.maxAgeSeconds ?? undefined,
    })),
  })
}

/**
 * Parses and validates a `<CORSConfiguration>` body.
 *
 * @throws {ApiError} `MalformedXML` for XML that is not well formed or lacks a required element;
 *   `InvalidRequest` for a method, header name or max age that is not allowed.
 * @internal
 */
export function parseCorsConfiguration(body: XmlDocument | string | Uint8Array): CorsRule[] {
  const root = xmlRoot(asXmlDocument(body), 'CORSConfiguration')
  xmlOnly(root, ['CORSRule'], 'CORSConfiguration')
  const rules = xmlChildren(root, 'CORSRule')
  if (rules.length === 0) throw new ApiError('MalformedXML', '<CORSConfiguration> must contain at least one <CORSRule>')
  if (rules.length > MAX_RULES) {
    throw new ApiError('InvalidRequest', `a CORS configuration may have at most ${MAX_RULES} rules`)
  }
  return rules.map(parseRule)
}

function texts(node: XmlNode, tag: string): string[] {
  return xmlChildren(node, tag).map((c) => {
    const v = xmlText({ [tag]: c }, tag)
    if (v === undefined) throw new ApiError('MalformedXML', `<${tag}> must contain text`)
    return v
  })
}

function parseRule(node: XmlNode): CorsRule {
  if (typeof node === 'string') throw new ApiError('MalformedXML', '<CORSRule> must contain elements')
  xmlOnly(node, ['ID', 'AllowedHeader', 'AllowedMethod', 'AllowedOrigin', 'ExposeHeader', 'MaxAgeSeconds'], 'CORSRule')
  const id = xmlText(node, 'ID') ?? null
  if (id !== null && id.length > 255) throw new ApiError('InvalidRequest', 'a CORS rule ID is at most 255 characters')
  const allowOrigins = texts(node, 'AllowedOrigin')
  const allowMethods = texts(node, 'AllowedMethod')
  const allowHeaders = texts(node, 'AllowedHeader')
  const exposeHeaders = texts(node, 'ExposeHeader')
  if (allowOrigins.length === 0) throw new ApiError('MalformedXML', '<CORSRule> must have an <AllowedOrigin>')
  if (allowMethods.length === 0) throw new ApiError('MalformedXML', '<CORSRule> must have an <AllowedMethod>')
  for (const m of allowMethods) {
    if (!CORS_METHODS.has(m)) {
      throw new ApiError('InvalidRequest', `Found unsupported HTTP method in CORS config. Unsupported method is ${m}`)
    }
  }
  for (const o of allowOrigins) {
    if (o.length === 0 || o.split('*').length > 2) {
      throw new ApiError('InvalidRequest', `AllowedOrigin "${o}" can not have more than one wildcard.`)
    }
  }
  for (const h of allowHeaders) {
    if (!TOKEN.test(h) || h.split('*').length > 2) {
      throw new ApiError('InvalidRequest', `AllowedHeader "${h}" is not a valid header name (at most one wildcard).`)
    }
  }
  for (const h of exposeHeaders) {
    if (!TOKEN.test(h)) throw new ApiError('InvalidRequest', `ExposeHeader "${h}" is not a valid header name.`)
  }
  const maxAgeText = xmlText(node, 'MaxAgeSeconds')
  let maxAgeSeconds: number | null = null
  if (maxAgeText !== undefined) {
    if (!/^\d{1,10}$/.test(maxAgeText)) throw new ApiError('InvalidRequest', 'MaxAgeSeconds must be a non-negative integer')
    maxAgeSeconds = Number(maxAgeText)
  }
  return { id, maxAgeSeconds, allowOrigins, allowMethods, allowHeaders, exposeHeaders }
}
