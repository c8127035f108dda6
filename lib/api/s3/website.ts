/**
 * GetBucketWebsite, PutBucketWebsite and DeleteBucketWebsite (port of garage_api_s3::website).
 * The configuration is served by lib/web. As in Garage, `RedirectAllRequestsTo` is refused (a
 * routing rule without condition does the same), routing rules may also "rewrite" with codes
 * 200 and 404, and a redirect without code is a 302 (AWS: 301, cached forever by browsers).
 */
import type { RoutingRule, WebsiteConfig } from '../../model/bucket-table.ts'
import { ApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import { readSettingXml, setBucketSetting, storedBucketSetting, xmlAnswer } from './bucket-settings.ts'
import type { BucketCtx } from './context.ts'
import { asXmlDocument, renderXml, type XmlDocument, type XmlNode, xmlChildren, xmlOnly, xmlRoot, xmlText } from './xml.ts'

/** Object metadata header that turns an object into a redirect on the website endpoint. */
export const WEBSITE_REDIRECT_LOCATION = 'x-amz-website-redirect-location'

const MAX_BODY = 128 * 1024
/** Rules are scanned linearly on every request (Garage's limit). */
const MAX_ROUTING_RULES = 1000
const REDIRECT_CODES = new Set([301, 302, 303, 307, 308])
const REWRITE_CODES = new Set([200, 404])

export async function handleGetBucketWebsite(ctx: BucketCtx): Promise<ApiResponse> {
  const w = storedBucketSetting(ctx, 'website', {
    code: 'NoSuchWebsiteConfiguration',
    message: 'The specified bucket does not have a website configuration',
  })
  return xmlAnswer(renderWebsiteConfiguration(w))
}

export async function handlePutBucketWebsite(ctx: BucketCtx): Promise<ApiResponse> {
  await setBucketSetting(ctx, 'website', parseWebsiteConfiguration(await readSettingXml(ctx, MAX_BODY)))
  return { status: 200 }
}

export async function handleDeleteBucketWebsite(ctx: BucketCtx): Promise<ApiResponse> {
  await setBucketSetting(ctx, 'website', null)
  return { status: 204 }
}

/** `<WebsiteConfiguration>` as AWS returns it. @internal */
export function renderWebsiteConfiguration(w: WebsiteConfig): string {
  return renderXml('WebsiteConfiguration', {
    ErrorDocument: w.errorDocument === null ? undefined : { Key: w.errorDocument },
    IndexDocument: { Suffix: w.indexDocument },
    RoutingRules:
      w.routingRules.length === 0
        ? undefined
        : {
            RoutingRule: w.routingRules.map((r) => ({
              Condition:
                r.condition === null
                  ? undefined
                  : {
                      HttpErrorCodeReturnedEquals: r.condition.httpErrorCode ?? undefined,
                      KeyPrefixEquals: r.condition.keyPrefix ?? undefined,
                    },
              Redirect: {
                HostName: r.redirect.hostname ?? undefined,
                HttpRedirectCode: r.redirect.httpCode,
                Protocol: r.redirect.protocol ?? undefined,
                ReplaceKeyPrefixWith: r.redirect.replaceKeyPrefix ?? undefined,
                ReplaceKeyWith: r.redirect.replaceKey ?? undefined,
              },
            })),
          },
  })
}

function bad(message: string): ApiError {
  return new ApiError('InvalidRequest', `Bad XML: ${message}`)
}

/** The element `tag` of `node`, at most once; undefined when absent. */
function child(node: XmlNode | undefined, tag: string): XmlNode | undefined {
  const c = xmlChildren(node, tag)
  if (c.length > 1) throw new ApiError('MalformedXML', `more than one <${tag}> element`)
  const v = c[0]
  if (v === undefined) return undefined
  // `<Tag></Tag>` parses as an empty string: an element with no children.
  return v === '' ? {} : v
}

function required(node: XmlNode | undefined, tag: string, parent: string): XmlNode {
  const c = child(node, tag)
  if (c === undefined) throw new ApiError('MalformedXML', `<${parent}> must contain <${tag}>`)
  return c
}

function optionalText(node: XmlNode | undefined, tag: string): string | null {
  return xmlText(node, tag) ?? null
}

function requiredText(node: XmlNode | undefined, tag: string, parent: string): string {
  const v = xmlText(node, tag)
  if (v === undefined) throw new ApiError('MalformedXML', `<${parent}> must contain <${tag}>`)
  return v
}

function intText(node: XmlNode | undefined, tag: string): number | null {
  const v = xmlText(node, tag)
  if (v === undefined) return null
  if (!/^\d{1,4}$/.test(v)) throw new ApiError('MalformedXML', `<${tag}> must be an integer`)
  return Number(v)
}

function checkProtocol(p: string | null): void {
  if (p !== null && p !== 'http' && p !== 'https') throw bad('invalid protocol')
}

/**
 * Parses and validates a `<WebsiteConfiguration>` body.
 *
 * @throws {ApiError} `MalformedXML` for XML that is not well formed or lacks a required element;
 *   `InvalidRequest` for invalid values; `NotImplemented` for `RedirectAllRequestsTo`.
 * @internal
 */
export function parseWebsiteConfiguration(body: XmlDocument | string | Uint8Array): WebsiteConfig {
  const doc = xmlRoot(asXmlDocument(body), 'WebsiteConfiguration')
  xmlOnly(doc, ['ErrorDocument', 'IndexDocument', 'RedirectAllRequestsTo', 'RoutingRules'], 'WebsiteConfiguration')
  const errorNode = child(doc, 'ErrorDocument')
  const indexNode = child(doc, 'IndexDocument')
  const redirectAll = child(doc, 'RedirectAllRequestsTo')
  const rulesNode = child(doc, 'RoutingRules')
  const ruleNodes = xmlChildren(rulesNode, 'RoutingRule')

  const errorDocument = errorNode === undefined ? null : requiredText(errorNode, 'Key', 'ErrorDocument')
  if (errorDocument === '') throw bad('error document specified but empty')
  const indexDocument = indexNode === undefined ? 'index.html' : requiredText(indexNode, 'Suffix', 'IndexDocument')
  if (indexDocument === '' || indexDocument.includes('/')) throw bad('index document is empty or contains /')

  if (redirectAll !== undefined) {
    if (errorNode !== undefined || indexNode !== undefined || ruleNodes.length > 0) {
      throw bad("can't have RedirectAllRequestsTo and other fields")
    }
    requiredText(redirectAll, 'HostName', 'RedirectAllRequestsTo')
    checkProtocol(optionalText(redirectAll, 'Protocol'))
    throw new ApiError(
      'NotImplemented',
      'RedirectAllRequestsTo is not currently implemented; a single routing rule without condition has the same effect.',
    )
  }
  if (ruleNodes.length > MAX_ROUTING_RULES) throw bad(`RoutingRules can't have more than ${MAX_ROUTING_RULES} child elements`)
  return { indexDocument, errorDocument, routingRules: ruleNodes.map(parseRoutingRule) }
}

function parseRoutingRule(node: XmlNode): RoutingRule {
  const cond = child(node, 'Condition')
  const redirect = required(node, 'Redirect', 'RoutingRule')
  let condition: RoutingRule['condition'] = null
  if (cond !== undefined) {
    const httpErrorCode = intText(cond, 'HttpErrorCodeReturnedEquals')
    // AWS accepts any 4xx/5xx; only "not found" can happen here.
    if (httpErrorCode !== null && httpErrorCode !== 404) throw bad('HttpErrorCodeReturnedEquals must be 404 or absent')
    condition = { keyPrefix: optionalText(cond, 'KeyPrefixEquals'), httpErrorCode }
  }
  const hostname = optionalText(redirect, 'HostName')
  const protocol = optionalText(redirect, 'Protocol')
  const replaceKeyPrefix = optionalText(redirect, 'ReplaceKeyPrefixWith')
  const replaceKey = optionalText(redirect, 'ReplaceKeyWith')
  const httpCode = intText(redirect, 'HttpRedirectCode') ?? 302
  if (replaceKeyPrefix !== null && replaceKey !== null) throw bad('both ReplaceKeyPrefixWith and ReplaceKeyWith are set')
  checkProtocol(protocol)
  if (REDIRECT_CODES.has(httpCode)) {
    if (hostname === null && protocol !== null) throw bad('HostName must be set if Protocol is set')
  } else if (REWRITE_CODES.has(httpCode)) {
    // Another host would be another bucket; a protocol means nothing for a rewrite.
    if (hostname !== null || protocol !== null) {
      throw bad(`an HttpRedirectCode of ${httpCode} is not acceptable alongside HostName or Protocol`)
    }
  } else {
    throw bad('invalid HttpRedirectCode')
  }
  return { condition, redirect: { hostname, protocol, httpCode, replaceKeyPrefix, replaceKey } }
}
