/**
 * GetBucketLifecycleConfiguration, PutBucketLifecycleConfiguration and DeleteBucketLifecycle
 * (port of garage_api_s3::lifecycle). The rules are applied by the lifecycle worker of the model
 * layer. Supported, as in Garage: `<Expiration>` with `<Days>` or `<Date>` (midnight),
 * `<AbortIncompleteMultipartUpload>`, and `<Filter>` on prefix, object size and tags; beyond Garage,
 * the deprecated `<Prefix>` directly in `<Rule>` (rendered back in the same form, as AWS does).
 * `<Transition>` and `<NoncurrentVersionTransition>` are validated, stored and returned as AWS
 * does, and never applied: this store has one storage class, so there is nothing to move an
 * object to. For versioned buckets, `<NoncurrentVersionExpiration>` (`<NoncurrentDays>`,
 * `<NewerNoncurrentVersions>`) and `<Expiration><ExpiredObjectDeleteMarker>` are applied by the
 * worker (docs/design/versioning.md).
 */
import {
  type LifecycleExpiration,
  type LifecycleFilter,
  type LifecycleNoncurrentTransition,
  type LifecycleRule,
  type LifecycleTransition,
  parseLifecycleDate,
  storedLifecycleRules,
} from '../../model/s3/lifecycle-worker.ts'
import { ApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import { readSettingXml, setBucketSetting, storedBucketSetting, xmlAnswer } from './bucket-settings.ts'
import type { BucketCtx } from './context.ts'
import {
  asXmlDocument,
  renderXml,
  type XmlDocument,
  type XmlNode,
  xmlChildNames,
  xmlChildren,
  xmlOnly,
  xmlRoot,
  xmlText,
} from './xml.ts'

/** AWS's limits: 1,000 rules, IDs of at most 255 characters. */
const MAX_RULES = 1000
const MAX_ID_LENGTH = 255
const MAX_BODY = 1024 * 1024

const RULE_ELEMENTS = new Set([
  'ID',
  'Status',
  'Filter',
  'Prefix',
  'Expiration',
  'AbortIncompleteMultipartUpload',
  'Transition',
  'NoncurrentVersionTransition',
  'NoncurrentVersionExpiration',
])
/** The storage classes a transition may name (S3 API reference, `Transition`). */
const TRANSITION_STORAGE_CLASSES = new Set([
  'GLACIER',
  'STANDARD_IA',
  'ONEZONE_IA',
  'INTELLIGENT_TIERING',
  'DEEP_ARCHIVE',
  'GLACIER_IR',
])
const FILTER_ELEMENTS = new Set(['Prefix', 'ObjectSizeGreaterThan', 'ObjectSizeLessThan'])

export async function handleGetBucketLifecycleConfiguration(ctx: BucketCtx): Promise<ApiResponse> {
  const stored = storedBucketSetting(ctx, 'lifecycle', {
    code: 'NoSuchLifecycleConfiguration',
    message: 'The lifecycle configuration does not exist',
  })
  return xmlAnswer(renderLifecycleConfiguration(storedLifecycleRules(stored)))
}

export async function handlePutBucketLifecycleConfiguration(ctx: BucketCtx): Promise<ApiResponse> {
  const rules = parseLifecycleConfiguration(await readSettingXml(ctx, MAX_BODY))
  await setBucketSetting(ctx, 'lifecycle', rules as unknown[])
  return { status: 200 }
}

export async function handleDeleteBucketLifecycle(ctx: BucketCtx): Promise<ApiResponse> {
  await setBucketSetting(ctx, 'lifecycle', null)
  return { status: 204 }
}

/** `<LifecycleConfiguration>` as AWS returns it. @internal */
export function renderLifecycleConfiguration(rules: readonly LifecycleRule[]): string {
  return renderXml('LifecycleConfiguration', {
    Rule: rules.map((r) => ({
      ID: r.id ?? undefined,
      Prefix: r.legacyPrefix === true ? (r.filter.prefix ?? '') : undefined,
      Filter: r.legacyPrefix === true ? undefined : renderFilter(r.filter),
      Status: r.enabled ? 'Enabled' : 'Disabled',
      Expiration:
        r.expiration !== null
          ? renderWhen(r.expiration)
          : r.expiredObjectDeleteMarker === true
            ? { ExpiredObjectDeleteMarker: true }
            : undefined,
      Transition: r.transitions?.map((t) => ({ ...renderWhen(t.when), StorageClass: t.storageClass })),
      NoncurrentVersionTransition: r.noncurrentTransitions?.map((t) => ({
        NoncurrentDays: t.noncurrentDays,
        NewerNoncurrentVersions: t.newerNoncurrentVersions ?? undefined,
        StorageClass: t.storageClass,
      })),
      NoncurrentVersionExpiration:
        r.noncurrentExpiration === undefined || r.noncurrentExpiration === null
          ? undefined
          : {
              NoncurrentDays: r.noncurrentExpiration.days,
              NewerNoncurrentVersions: r.noncurrentExpiration.newer ?? undefined,
            },
      AbortIncompleteMultipartUpload:
        r.abortIncompleteMpuDays === null ? undefined : { DaysAfterInitiation: r.abortIncompleteMpuDays },
    })),
  })
}

function renderWhen(w: LifecycleExpiration): Record<string, unknown> {
  return w.t === 'days' ? { Days: w.days } : { Date: `${w.date}T00:00:00.000Z` }
}

function renderFilter(f: LifecycleFilter): Record<string, unknown> | string {
  const parts: Record<string, unknown> = {
    Prefix: f.prefix ?? undefined,
    ObjectSizeGreaterThan: f.sizeGt ?? undefined,
    ObjectSizeLessThan: f.sizeLt ?? undefined,
    Tag: f.tags === undefined || f.tags.length === 0 ? undefined : f.tags.map(([Key, Value]) => ({ Key, Value })),
  }
  const n = Object.values(parts).filter((v) => v !== undefined).length + Math.max(0, (f.tags?.length ?? 0) - 1)
  if (n === 0) return ''
  return n === 1 ? parts : { And: parts }
}

function invalid(message: string): ApiError {
  return new ApiError('InvalidRequest', `Invalid lifecycle configuration: ${message}`)
}

function malformed(message: string): ApiError {
  return new ApiError('MalformedXML', `The XML you provided was not well-formed or did not validate: ${message}`)
}

function parseCount(node: XmlNode | undefined, tag: string, min: number): number | undefined {
  const s = xmlText(node, tag)
  if (s === undefined) return undefined
  if (!/^\d{1,15}$/.test(s) || Number(s) < min) {
    throw new ApiError('InvalidArgument', `<${tag}> must be an integer of at least ${min}, got '${s.slice(0, 32)}'`)
  }
  return Number(s)
}

/**
 * Parses and validates a `<LifecycleConfiguration>` body. Nothing is stored unless every rule is
 * valid. @internal
 */
export function parseLifecycleConfiguration(body: XmlDocument | string | Uint8Array): LifecycleRule[] {
  const root = xmlRoot(asXmlDocument(body), 'LifecycleConfiguration')
  for (const name of xmlChildNames(root)) if (name !== 'Rule') throw malformed(`unexpected <${name}> in <LifecycleConfiguration>`)
  const rules = xmlChildren(root, 'Rule')
  if (rules.length === 0) throw malformed('at least one <Rule> is required')
  if (rules.length > MAX_RULES) throw malformed(`at most ${MAX_RULES} rules are allowed`)
  const out = rules.map(parseRule)
  const ids = out.map((r) => r.id).filter((id) => id !== null)
  if (new Set(ids).size !== ids.length) throw new ApiError('InvalidArgument', 'Rule ID must be unique')
  return out
}

function parseRule(rule: XmlNode): LifecycleRule {
  for (const name of xmlChildNames(rule)) {
    if (!RULE_ELEMENTS.has(name)) throw malformed(`unexpected <${name}> in <Rule>`)
  }
  const id = xmlText(rule, 'ID', true) ?? null
  if (id !== null && id.length > MAX_ID_LENGTH) {
    throw new ApiError('InvalidArgument', `ID length should not exceed allowed limit of ${MAX_ID_LENGTH}`)
  }
  const status = xmlText(rule, 'Status')
  if (status === undefined) throw malformed('<Status> is required in <Rule>')
  if (status !== 'Enabled' && status !== 'Disabled') throw malformed(`invalid <Status> '${status.slice(0, 32)}'`)

  const filters = xmlChildren(rule, 'Filter')
  if (filters.length > 1) throw malformed('more than one <Filter> in <Rule>')
  // The deprecated form: `<Prefix>` directly in `<Rule>`. AWS refuses it next to a `<Filter>`.
  const rulePrefixes = xmlChildren(rule, 'Prefix')
  if (rulePrefixes.length > 1) throw malformed('more than one <Prefix> in <Rule>')
  if (rulePrefixes.length === 1 && filters.length === 1) throw malformed('<Rule> cannot have both <Prefix> and <Filter>')
  const legacyPrefix = rulePrefixes.length === 1
  const filter = legacyPrefix
    ? { ...emptyFilter(), prefix: xmlText(rule, 'Prefix', true) ?? '' }
    : filters.length === 0
      ? emptyFilter()
      : parseFilter(filters[0] as XmlNode)

  const expirations = xmlChildren(rule, 'Expiration')
  if (expirations.length > 1) throw malformed('more than one <Expiration> in <Rule>')
  const parsedExpiration = expirations.length === 0 ? null : parseExpiration(expirations[0] as XmlNode)
  const expiration = parsedExpiration === 'expiredObjectDeleteMarker' ? null : parsedExpiration
  const expiredObjectDeleteMarker = parsedExpiration === 'expiredObjectDeleteMarker'

  const noncurrents = xmlChildren(rule, 'NoncurrentVersionExpiration')
  if (noncurrents.length > 1) throw malformed('more than one <NoncurrentVersionExpiration> in <Rule>')
  let noncurrentExpiration: { days: number; newer: number | null } | null = null
  if (noncurrents.length === 1) {
    const n = noncurrents[0] as XmlNode
    for (const name of xmlChildNames(n)) {
      if (name !== 'NoncurrentDays' && name !== 'NewerNoncurrentVersions') {
        throw malformed(`unexpected <${name}> in <NoncurrentVersionExpiration>`)
      }
    }
    const days = parseCount(n, 'NoncurrentDays', 1)
    if (days === undefined) throw malformed('<NoncurrentVersionExpiration> needs <NoncurrentDays>')
    const newer = parseCount(n, 'NewerNoncurrentVersions', 1) ?? null
    if (newer !== null && newer > 100) throw new ApiError('InvalidArgument', 'NewerNoncurrentVersions must be at most 100')
    noncurrentExpiration = { days, newer }
  }

  const aborts = xmlChildren(rule, 'AbortIncompleteMultipartUpload')
  if (aborts.length > 1) throw malformed('more than one <AbortIncompleteMultipartUpload> in <Rule>')
  let abortIncompleteMpuDays: number | null = null
  if (aborts.length === 1) {
    const a = aborts[0] as XmlNode
    for (const name of xmlChildNames(a)) {
      if (name !== 'DaysAfterInitiation') throw malformed(`unexpected <${name}> in <AbortIncompleteMultipartUpload>`)
    }
    const days = parseCount(a, 'DaysAfterInitiation', 1)
    if (days === undefined) throw malformed('<AbortIncompleteMultipartUpload> needs <DaysAfterInitiation>')
    if ((filter.tags?.length ?? 0) > 0) throw invalid('AbortIncompleteMultipartUpload cannot be specified with Tags')
    if (filter.sizeGt !== null || filter.sizeLt !== null) {
      throw invalid('AbortIncompleteMultipartUpload cannot be combined with an object size filter')
    }
    abortIncompleteMpuDays = days
  }
  const transitions = xmlChildren(rule, 'Transition').map(parseTransition)
  const noncurrentTransitions = xmlChildren(rule, 'NoncurrentVersionTransition').map(parseNoncurrentTransition)
  if (
    expiration === null &&
    abortIncompleteMpuDays === null &&
    transitions.length === 0 &&
    noncurrentTransitions.length === 0 &&
    noncurrentExpiration === null &&
    !expiredObjectDeleteMarker
  ) {
    throw invalid('At least one action needs to be specified in a rule')
  }
  const out: LifecycleRule = { id, enabled: status === 'Enabled', filter, expiration, abortIncompleteMpuDays }
  if (noncurrentExpiration !== null) out.noncurrentExpiration = noncurrentExpiration
  if (expiredObjectDeleteMarker) out.expiredObjectDeleteMarker = true
  if (legacyPrefix) out.legacyPrefix = true
  if (transitions.length > 0) out.transitions = transitions
  if (noncurrentTransitions.length > 0) out.noncurrentTransitions = noncurrentTransitions
  return out
}

function parseStorageClass(node: XmlNode, where: string): string {
  const sc = xmlText(node, 'StorageClass')
  if (sc === undefined) throw malformed(`<${where}> needs <StorageClass>`)
  if (!TRANSITION_STORAGE_CLASSES.has(sc)) throw malformed(`invalid <StorageClass> '${sc.slice(0, 32)}' in <${where}>`)
  return sc
}

function parseTransition(node: XmlNode): LifecycleTransition {
  for (const name of xmlChildNames(node)) {
    if (name !== 'Days' && name !== 'Date' && name !== 'StorageClass') throw malformed(`unexpected <${name}> in <Transition>`)
  }
  const storageClass = parseStorageClass(node, 'Transition')
  const days = parseCount(node, 'Days', 0)
  const date = xmlText(node, 'Date')
  if (days !== undefined && date !== undefined) throw invalid('cannot have both <Days> and <Date> in <Transition>')
  if (days !== undefined) return { when: { t: 'days', days }, storageClass }
  if (date === undefined) throw invalid('<Transition> must contain either <Days> or <Date>')
  const parsed = parseLifecycleDate(date)
  if (parsed === undefined) {
    throw new ApiError('InvalidArgument', `'Date' must be at midnight GMT, got '${date.slice(0, 40)}'`)
  }
  return { when: { t: 'date', date: parsed }, storageClass }
}

function parseNoncurrentTransition(node: XmlNode): LifecycleNoncurrentTransition {
  for (const name of xmlChildNames(node)) {
    if (name !== 'NoncurrentDays' && name !== 'NewerNoncurrentVersions' && name !== 'StorageClass') {
      throw malformed(`unexpected <${name}> in <NoncurrentVersionTransition>`)
    }
  }
  const storageClass = parseStorageClass(node, 'NoncurrentVersionTransition')
  const noncurrentDays = parseCount(node, 'NoncurrentDays', 0)
  if (noncurrentDays === undefined) throw malformed('<NoncurrentVersionTransition> needs <NoncurrentDays>')
  const newer = parseCount(node, 'NewerNoncurrentVersions', 1)
  return { noncurrentDays, newerNoncurrentVersions: newer ?? null, storageClass }
}

function emptyFilter(): LifecycleFilter {
  return { prefix: null, sizeGt: null, sizeLt: null }
}

function parseFilter(node: XmlNode): LifecycleFilter {
  const names = xmlChildNames(node)
  for (const name of names) {
    if (name !== 'And' && name !== 'Tag' && !FILTER_ELEMENTS.has(name)) throw malformed(`unexpected <${name}> in <Filter>`)
  }
  const conditions = names.filter((n) => n !== 'And')
  if (names.includes('And')) {
    if (conditions.length > 0) throw invalid('<Filter> cannot contain both <And> and another condition')
    const ands = xmlChildren(node, 'And')
    if (ands.length > 1) throw malformed('more than one <And> in <Filter>')
    const and = ands[0] as XmlNode
    for (const name of xmlChildNames(and)) {
      if (name === 'And') throw invalid('nested <And> elements')
      if (name !== 'Tag' && !FILTER_ELEMENTS.has(name)) throw malformed(`unexpected <${name}> in <And>`)
    }
    return filterConditions(and)
  }
  if (conditions.length > 1 || xmlChildren(node, 'Tag').length > 1) {
    throw invalid('multiple <Filter> conditions must be wrapped in an <And> element')
  }
  return filterConditions(node)
}

function filterConditions(node: XmlNode): LifecycleFilter {
  const f: LifecycleFilter = {
    prefix: xmlText(node, 'Prefix', true) ?? null,
    sizeGt: parseCount(node, 'ObjectSizeGreaterThan', 0) ?? null,
    sizeLt: parseCount(node, 'ObjectSizeLessThan', 1) ?? null,
  }
  const tags: Array<[string, string]> = xmlChildren(node, 'Tag').map((t) => {
    xmlOnly(t, ['Key', 'Value'], 'Tag')
    const key = xmlText(t, 'Key', true)
    const value = xmlText(t, 'Value', true) ?? ''
    if (key === undefined) throw malformed('<Tag> needs a <Key>')
    return [key, value]
  })
  if (tags.length > 0) {
    if (new Set(tags.map(([k]) => k)).size !== tags.length)
      throw new ApiError('InvalidRequest', 'Duplicate Tag Keys are not allowed.')
    f.tags = tags
  }
  if (f.sizeGt !== null && f.sizeLt !== null && f.sizeGt >= f.sizeLt) {
    throw new ApiError('InvalidArgument', 'ObjectSizeGreaterThan must be less than ObjectSizeLessThan')
  }
  return f
}

/** `<Expiration>`: days, a date, or (alone) `<ExpiredObjectDeleteMarker>true`. */
function parseExpiration(node: XmlNode): LifecycleExpiration | 'expiredObjectDeleteMarker' {
  for (const name of xmlChildNames(node)) {
    if (name !== 'Days' && name !== 'Date' && name !== 'ExpiredObjectDeleteMarker') {
      throw malformed(`unexpected <${name}> in <Expiration>`)
    }
  }
  const days = parseCount(node, 'Days', 1)
  const date = xmlText(node, 'Date')
  const marker = xmlText(node, 'ExpiredObjectDeleteMarker')
  if (marker !== undefined) {
    if (marker !== 'true' && marker !== 'false') throw malformed('<ExpiredObjectDeleteMarker> must be true or false')
    if (days !== undefined || date !== undefined) {
      throw invalid('ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle Expiration Policy.')
    }
    if (marker === 'true') return 'expiredObjectDeleteMarker'
    throw invalid('<Expiration> with <ExpiredObjectDeleteMarker>false</ExpiredObjectDeleteMarker> has no action')
  }
  if (days !== undefined && date !== undefined) throw invalid('cannot have both <Days> and <Date> in <Expiration>')
  if (days !== undefined) return { t: 'days', days }
  if (date === undefined) throw invalid('<Expiration> must contain either <Days> or <Date>')
  const parsed = parseLifecycleDate(date)
  if (parsed === undefined) {
    throw new ApiError(
      'InvalidArgument',
      `'Date' must be at midnight GMT (YYYY-MM-DD or YYYY-MM-DDT00:00:00Z), got '${date.slice(0, 40)}'`,
    )
  }
  return { t: 'date', date: parsed }
}
