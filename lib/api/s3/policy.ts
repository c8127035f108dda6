/**
 * Bucket policies (AWS IAM policy language, the subset in docs/design/policies.md):
 * Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus, and the evaluation every S3 request goes
 * through (`evaluatePolicy`): an explicit Deny refuses whatever the key's permissions say, an
 * Allow grants an object-level action to the principals it names (`*`: anyone, anonymous
 * requests included), and no matching statement leaves the decision to the key's permissions.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net'
import { ApiError } from '../common/errors.ts'
import type { ApiResponse } from '../common/server.ts'
import { setBucketSetting, storedBucketSetting } from './bucket-settings.ts'
import type { BucketCtx } from './context.ts'
import type { Endpoint } from './router.ts'
import { renderXml } from './xml.ts'

/** AWS's limit on a bucket policy's size. */
export const MAX_POLICY_BYTES = 20 * 1024

type Effect = 'Allow' | 'Deny'

/** A statement as evaluated: every pattern already lowercased where matching ignores case. */
interface Statement {
  effect: Effect
  /** `*` (anyone) or access key ids. */
  principals: Set<string>
  anyPrincipal: boolean
  /** Lowercased action patterns (`s3:getobject`, `s3:*`, `s3:get*`). */
  actions: RegExp[]
  resources: RegExp[]
  conditions: Condition[]
}

interface Condition {
  op: ConditionOperator
  key: ConditionKey
  values: string[]
  /** IpAddress / NotIpAddress: the values as a block list. */
  ips?: BlockList
}

/** A parsed, validated bucket policy. @internal */
export interface BucketPolicy {
  statements: Statement[]
}

const CONDITION_OPERATORS = [
  'StringEquals',
  'StringNotEquals',
  'StringEqualsIgnoreCase',
  'StringNotEqualsIgnoreCase',
  'StringLike',
  'StringNotLike',
  'Bool',
  'IpAddress',
  'NotIpAddress',
] as const
type ConditionOperator = (typeof CONDITION_OPERATORS)[number]

/** Condition keys this implementation knows (lowercase); any other is refused at put time. */
const CONDITION_KEYS = [
  'aws:securetransport',
  'aws:sourceip',
  'aws:useragent',
  'aws:referer',
  's3:prefix',
  's3:delimiter',
  's3:max-keys',
] as const
type ConditionKey = (typeof CONDITION_KEYS)[number]

/**
 * The S3 actions a policy may name (the ones this server has endpoints for, plus the common
 * ones of AWS's list it answers NotImplemented to, so a policy written for AWS is accepted).
 */
const KNOWN_ACTIONS = new Set(
  [
    'AbortMultipartUpload',
    'CreateBucket',
    'DeleteBucket',
    'DeleteBucketPolicy',
    'DeleteBucketWebsite',
    'DeleteObject',
    'DeleteObjectTagging',
    'DeleteObjectVersion',
    'DeleteObjectVersionTagging',
    'GetBucketAcl',
    'GetBucketCORS',
    'GetBucketLocation',
    'GetBucketObjectLockConfiguration',
    'GetBucketOwnershipControls',
    'GetBucketPolicy',
    'GetBucketPolicyStatus',
    'GetBucketTagging',
    'GetBucketVersioning',
    'GetBucketWebsite',
    'GetEncryptionConfiguration',
    'GetLifecycleConfiguration',
    'GetObject',
    'GetObjectAcl',
    'GetObjectAttributes',
    'GetObjectLegalHold',
    'GetObjectRetention',
    'GetObjectTagging',
    'GetObjectVersion',
    'GetObjectVersionAcl',
    'GetObjectVersionTagging',
    'ListAllMyBuckets',
    'ListBucket',
    'ListBucketMultipartUploads',
    'ListBucketVersions',
    'ListMultipartUploadParts',
    'PutBucketAcl',
    'PutBucketCORS',
    'PutBucketObjectLockConfiguration',
    'PutBucketOwnershipControls',
    'PutBucketPolicy',
    'PutBucketTagging',
    'PutBucketVersioning',
    'PutBucketWebsite',
    'PutEncryptionConfiguration',
    'PutLifecycleConfiguration',
    'PutObject',
    'PutObjectAcl',
    'PutObjectLegalHold',
    'PutObjectRetention',
    'PutObjectTagging',
    'PutObjectVersionTagging',
    'RestoreObject',
  ].map((a) => `s3:${a.toLowerCase()}`),
)

/** Actions that apply to objects (`arn:aws:s3:::bucket/key`); all others apply to the bucket. */
const OBJECT_ACTIONS = new Set(
  [...KNOWN_ACTIONS].filter((a) => /object|multipart/.test(a) && a !== 's3:listbucketmultipartuploads'),
)

const malformed = (message: string): ApiError => new ApiError('MalformedPolicy', message)

/** A `*`/`?` glob as an anchored regular expression. */
function globRegExp(pattern: string, ignoreCase: boolean): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.')
  return new RegExp(`^${body}$`, ignoreCase ? 'si' : 's')
}

const asList = (v: unknown, what: string): string[] => {
  const list = Array.isArray(v) ? v : [v]
  if (list.length === 0 || !list.every((x) => typeof x === 'string'))
    throw malformed(`${what} must be a string or a list of strings`)
  return list as string[]
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

function checkFields(o: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(o)) {
    if (k.startsWith('Not') && allowed.includes(k.slice(3))) throw malformed(`${k} is not supported in ${where}`)
    if (!allowed.includes(k)) throw malformed(`Unknown field ${k}`)
  }
}

/**
 * Parses and validates a bucket policy for bucket `bucket`, as PutBucketPolicy does (without a
 * bucket name, for a stored policy, the resources' bucket parts are not checked again).
 * @throws ApiError MalformedPolicy with AWS's messages where they exist.
 */
export function parseBucketPolicy(text: string, bucket?: string): BucketPolicy {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    // The parser's message is no use to a client: AWS answers this one.
    throw malformed("Policies must be valid JSON and the first byte must be '{'")
  }
  if (!isObject(doc)) throw malformed("Policies must be valid JSON and the first byte must be '{'")
  checkFields(doc, ['Version', 'Id', 'Statement'], 'a policy')
  if (doc.Version !== undefined && doc.Version !== '2012-10-17' && doc.Version !== '2008-10-17') {
    throw malformed('Invalid policy version')
  }
  if (doc.Id !== undefined && typeof doc.Id !== 'string') throw malformed('Id must be a string')
  const raw = Array.isArray(doc.Statement) ? doc.Statement : doc.Statement === undefined ? [] : [doc.Statement]
  if (raw.length === 0) throw malformed('Missing required field Statement')
  return { statements: raw.map((s) => parseStatement(s, bucket)) }
}

function parseStatement(s: unknown, bucket: string | undefined): Statement {
  if (!isObject(s)) throw malformed('Statement must be an object')
  checkFields(s, ['Sid', 'Effect', 'Principal', 'Action', 'Resource', 'Condition'], 'a statement')
  if (s.Sid !== undefined && typeof s.Sid !== 'string') throw malformed('Sid must be a string')
  if (s.Effect !== 'Allow' && s.Effect !== 'Deny') {
    throw malformed(s.Effect === undefined ? 'Missing required field Effect' : 'Invalid effect')
  }
  if (s.Principal === undefined) throw malformed('Missing required field Principal')
  if (s.Action === undefined) throw malformed('Missing required field Action')
  if (s.Resource === undefined) throw malformed('Missing required field Resource')

  const principals = new Set<string>()
  let anyPrincipal = false
  if (s.Principal === '*') anyPrincipal = true
  else if (isObject(s.Principal)) {
    checkFields(s.Principal, ['AWS'], 'a principal')
    for (const p of asList(s.Principal.AWS, 'Principal.AWS')) {
      if (p === '*') anyPrincipal = true
      else if (/^[A-Za-z0-9_-]{1,128}$/.test(p)) principals.add(p)
      else throw malformed('Invalid principal in policy')
    }
  } else throw malformed('Invalid principal in policy')

  const actionNames = asList(s.Action, 'Action').map((a) => a.toLowerCase())
  for (const a of actionNames) {
    if (a === '*') continue
    if (!/^s3:[a-z*?]+$/.test(a)) throw malformed('Policy has invalid action')
    if (!/[*?]/.test(a) && !KNOWN_ACTIONS.has(a)) throw malformed('Policy has invalid action')
  }
  const actions = actionNames.map((a) => globRegExp(a, true))

  const resourceNames = asList(s.Resource, 'Resource')
  // Resources are kept without their bucket part (checked here against the bucket's name), so
  // the policy applies however the bucket is named (global or local alias).
  const resources: RegExp[] = []
  let hasBucket = false
  let hasObject = false
  for (const r of resourceNames) {
    const m = /^arn:aws:s3:::([^/]+)(\/.*)?$/.exec(r)
    const bucketPart = m?.[1]
    if (m === null || bucketPart === undefined) throw malformed('Policy has invalid resource')
    if (bucket !== undefined && !globRegExp(bucketPart, false).test(bucket)) throw malformed('Policy has invalid resource')
    const rest = m[2]
    if (rest === undefined) {
      hasBucket = true
      // `*` spans slashes: `arn:aws:s3:::*` (or `…:::my*`) also names every object.
      if (bucketPart.endsWith('*')) {
        hasObject = true
        resources.push(/^(\/.*)?$/s)
      } else resources.push(/^$/)
    } else {
      hasObject = true
      resources.push(globRegExp(rest, false))
    }
  }
  // Every named action must apply to one of the resources (wildcards are not checked).
  for (const a of actionNames) {
    if (/[*?]/.test(a)) continue
    if (OBJECT_ACTIONS.has(a) ? !hasObject : !hasBucket) throw malformed('Action does not apply to any resource(s) in statement')
  }

  const conditions: Condition[] = []
  if (s.Condition !== undefined) {
    if (!isObject(s.Condition)) throw malformed('Condition must be an object')
    for (const [op, block] of Object.entries(s.Condition)) {
      if (!(CONDITION_OPERATORS as readonly string[]).includes(op)) throw malformed(`Invalid Condition type : ${op}`)
      if (!isObject(block)) throw malformed(`Condition ${op} must be an object`)
      for (const [rawKey, v] of Object.entries(block)) {
        const key = rawKey.toLowerCase()
        if (!(CONDITION_KEYS as readonly string[]).includes(key)) throw malformed('Policy has an invalid condition key')
        const values = (Array.isArray(v) ? v : [v]).map((x) => (typeof x === 'boolean' || typeof x === 'number' ? String(x) : x))
        if (values.length === 0 || !values.every((x) => typeof x === 'string')) {
          throw malformed(`Condition ${op} ${rawKey} must be a string or a list of strings`)
        }
        const c: Condition = { op: op as ConditionOperator, key: key as ConditionKey, values: values as string[] }
        if (op === 'Bool' && !c.values.every((x) => x === 'true' || x === 'false')) {
          throw malformed(`Invalid value for Bool condition ${rawKey}`)
        }
        if (op === 'IpAddress' || op === 'NotIpAddress') c.ips = parseIps(c.values)
        conditions.push(c)
      }
    }
  }
  return { effect: s.Effect, principals, anyPrincipal, actions, resources, conditions }
}

function parseIps(values: string[]): BlockList {
  const list = new BlockList()
  for (const v of values) {
    const [addr = '', bits] = v.split('/')
    const family = isIPv4(addr) ? 'ipv4' : isIPv6(addr) ? 'ipv6' : undefined
    const prefix = bits === undefined ? (family === 'ipv4' ? 32 : 128) : /^\d{1,3}$/.test(bits) ? Number(bits) : -1
    if (family === undefined || prefix < 0 || prefix > (family === 'ipv4' ? 32 : 128)) {
      throw malformed(`Invalid IP address or range: ${v.slice(0, 64)}`)
    }
    list.addSubnet(addr, prefix, family)
  }
  return list
}

/** What a request brings to a policy evaluation. @internal */
export interface PolicyRequest {
  /** The access key id; undefined for an anonymous request. */
  principal: string | undefined
  /** `s3:GetObject`, … */
  action: string
  /** The resource without its `arn:aws:s3:::bucket` part: `''` for the bucket, `/key` for an object. */
  resource: string
  /** Condition key (lowercase) → value; absent keys are absent from the request. */
  context: Partial<Record<ConditionKey, string>>
}

/** The outcome of a policy for a request: an explicit deny, an allow, or no matching statement. */
export type PolicyDecision = 'deny' | 'allow' | 'none'

/** Evaluates a policy for a request (AWS order: any matching Deny, then any matching Allow). @internal */
export function evaluatePolicy(policy: BucketPolicy, r: PolicyRequest): PolicyDecision {
  let allowed = false
  for (const s of policy.statements) {
    if (!s.anyPrincipal && (r.principal === undefined || !s.principals.has(r.principal))) continue
    if (!s.actions.some((a) => a.test(r.action))) continue
    if (!s.resources.some((p) => p.test(r.resource))) continue
    if (!s.conditions.every((c) => conditionHolds(c, r.context))) continue
    if (s.effect === 'Deny') return 'deny'
    allowed = true
  }
  return allowed ? 'allow' : 'none'
}

function conditionHolds(c: Condition, context: PolicyRequest['context']): boolean {
  const v = context[c.key]
  const negated = c.op.includes('Not')
  // A key absent from the request matches no value: false, and true for the negated operators.
  if (v === undefined) return negated
  let matched: boolean
  switch (c.op) {
    case 'StringEquals':
    case 'StringNotEquals':
      matched = c.values.includes(v)
      break
    case 'StringEqualsIgnoreCase':
    case 'StringNotEqualsIgnoreCase':
      matched = c.values.some((x) => x.toLowerCase() === v.toLowerCase())
      break
    case 'StringLike':
    case 'StringNotLike':
      matched = c.values.some((x) => globRegExp(x, false).test(v))
      break
    case 'Bool':
      matched = c.values.includes(v)
      break
    case 'IpAddress':
    case 'NotIpAddress': {
      const family = isIPv4(v) ? 'ipv4' : isIPv6(v) ? 'ipv6' : undefined
      matched = family !== undefined && (c.ips as BlockList).check(v, family)
      break
    }
  }
  return negated ? !matched : matched
}

/**
 * True when a policy lets anyone in: an Allow to `*` with no condition (AWS also counts some
 * conditioned grants as public; a condition here makes the grant non-public).
 */
export function isPublicPolicy(policy: BucketPolicy): boolean {
  return policy.statements.some((s) => s.effect === 'Allow' && s.anyPrincipal && s.conditions.length === 0)
}

/** The IAM action of an endpoint, for the policy evaluation. @internal */
export function policyAction(ep: Endpoint): string {
  switch (ep.kind) {
    case 'HeadObject':
      return 's3:GetObject'
    case 'HeadBucket':
    case 'ListObjects':
    case 'ListObjectsV2':
      return 's3:ListBucket'
    case 'ListObjectVersions':
      return 's3:ListBucketVersions'
    case 'ListMultipartUploads':
      return 's3:ListBucketMultipartUploads'
    case 'ListParts':
      return 's3:ListMultipartUploadParts'
    case 'CreateMultipartUpload':
    case 'UploadPart':
    case 'CompleteMultipartUpload':
    case 'CopyObject':
    case 'UploadPartCopy':
    case 'PostObject':
      return 's3:PutObject'
    case 'DeleteObjects':
      return 's3:DeleteObject'
    case 'GetBucketCors':
      return 's3:GetBucketCORS'
    case 'PutBucketCors':
    case 'DeleteBucketCors':
      return 's3:PutBucketCORS'
    case 'GetBucketLifecycleConfiguration':
      return 's3:GetLifecycleConfiguration'
    case 'PutBucketLifecycleConfiguration':
    case 'DeleteBucketLifecycle':
      return 's3:PutLifecycleConfiguration'
    case 'GetBucketEncryption':
      return 's3:GetEncryptionConfiguration'
    case 'PutBucketEncryption':
    case 'DeleteBucketEncryption':
      return 's3:PutEncryptionConfiguration'
    case 'GetBucketWebsite':
      return 's3:GetBucketWebsite'
    case 'DeleteBucketTagging':
      return 's3:PutBucketTagging'
    default:
      return `s3:${ep.kind}`
  }
}

/**
 * The endpoints a policy Allow can open to a principal without a key permission (the object and
 * listing operations; bucket configuration stays with keys holding the owner flag).
 */
export const POLICY_GRANTABLE: ReadonlySet<Endpoint['kind']> = new Set<Endpoint['kind']>([
  'GetObject',
  'HeadObject',
  'GetObjectAttributes',
  'ListObjects',
  'ListObjectsV2',
  'HeadBucket',
  'GetBucketLocation',
  'PutObject',
  'DeleteObject',
  'DeleteObjects',
  'CreateMultipartUpload',
  'UploadPart',
  'CompleteMultipartUpload',
  'AbortMultipartUpload',
  'ListParts',
  'ListMultipartUploads',
  'GetObjectTagging',
  'PutObjectTagging',
  'DeleteObjectTagging',
])

/** Endpoints a bucket's `public-read` ACL opens to anyone (reads and listings). */
export const PUBLIC_READ: ReadonlySet<Endpoint['kind']> = new Set<Endpoint['kind']>([
  'GetObject',
  'HeadObject',
  'ListObjects',
  'ListObjectsV2',
  'HeadBucket',
])

/** A bounded cache of stored policies, parsed, keyed by their text. @internal */
export class PolicyCache {
  readonly #entries = new Map<string, BucketPolicy>()
  readonly #max: number
  constructor(max = 256) {
    this.#max = max
  }
  /** @throws ApiError MalformedPolicy for a stored text that does not parse (never stored by PutBucketPolicy). */
  get(text: string): BucketPolicy {
    let p = this.#entries.get(text)
    if (p === undefined) {
      p = parseBucketPolicy(text)
      if (this.#entries.size >= this.#max) {
        const first = this.#entries.keys().next()
        if (first.done !== true) this.#entries.delete(first.value)
      }
      this.#entries.set(text, p)
    }
    return p
  }
}

async function readBody(ctx: BucketCtx, max: number): Promise<string> {
  const chunks: Buffer[] = []
  let len = 0
  for await (const chunk of ctx.body as AsyncIterable<Buffer>) {
    len += chunk.length
    if (len > max) {
      ctx.body.destroy()
      throw new ApiError('MalformedPolicy', `Policies cannot exceed ${max} bytes`)
    }
    chunks.push(chunk)
  }
  await ctx.bodyResult
  return Buffer.concat(chunks).toString('utf8')
}

export async function handlePutBucketPolicy(ctx: BucketCtx): Promise<ApiResponse> {
  const text = await readBody(ctx, MAX_POLICY_BYTES)
  if (text.trim() === '') throw new ApiError('MalformedPolicy', "Policies must be valid JSON and the first byte must be '{'")
  parseBucketPolicy(text, ctx.bucketName)
  await setBucketSetting(ctx, 'policy', text)
  return { status: 204 }
}

export function handleGetBucketPolicy(ctx: BucketCtx): ApiResponse {
  const text = storedBucketSetting(ctx, 'policy', {
    code: 'NoSuchBucketPolicy',
    message: 'The bucket policy does not exist',
  })
  return { status: 200, headers: { 'content-type': 'application/json' }, body: text }
}

export async function handleDeleteBucketPolicy(ctx: BucketCtx): Promise<ApiResponse> {
  if ((ctx.bucketParams.policy?.v ?? null) !== null) {
    await setBucketSetting(ctx, 'policy', null)
  }
  return { status: 204 }
}

/** GetBucketPolicyStatus: public through an unconditioned Allow to `*` (the ACL is not looked at, as on AWS). */
export function handleGetBucketPolicyStatus(ctx: BucketCtx, cache: PolicyCache): ApiResponse {
  const text = ctx.bucketParams.policy?.v ?? null
  if (text === null) {
    throw new ApiError('NoSuchBucketPolicy', 'The bucket policy does not exist', { extra: { BucketName: ctx.bucketName } })
  }
  const isPublic = isPublicPolicy(cache.get(text))
  const xml = renderXml('PolicyStatus', { IsPublic: String(isPublic) })
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: xml }
}
