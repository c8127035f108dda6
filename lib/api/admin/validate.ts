/**
 * Request validation from the contract (contract.ts): one compiled TypeBox validator per query
 * and body schema. A request that does not match answers 400 InvalidRequest with a message that
 * names the field and what it must be (`request body: 'roles[0].zone' is required`).
 */
import { Kind, type TSchema } from '@sinclair/typebox'
import { type TypeCheck, TypeCompiler } from '@sinclair/typebox/compiler'
import { Errors } from '@sinclair/typebox/errors'
import { ADMIN_API, type AdminApiEndpointName, type EndpointContract, RFC3339_PATTERN } from './contract.ts'
import { type AdminError, badRequest } from './errors.ts'

interface EndpointValidators {
  query?: TypeCheck<TSchema>
  body?: TypeCheck<TSchema>
  /** The body schema is an object: an absent body stands for `{}`. */
  bodyIsObject: boolean
}

/**
 * Checks requests against the contract. Each endpoint's validators are compiled on its first
 * request (a few ms each; compiling all ~100 at once cost a node's first admin request seconds of
 * CPU on a loaded machine).
 */
export class AdminRequestValidator {
  readonly #v = new Map<AdminApiEndpointName, EndpointValidators>()

  #validators(name: AdminApiEndpointName): EndpointValidators | undefined {
    let v = this.#v.get(name)
    if (v !== undefined) return v
    const ep = (ADMIN_API as Record<AdminApiEndpointName, EndpointContract | undefined>)[name]
    if (ep === undefined) return undefined
    v = {
      ...(ep.query === undefined ? {} : { query: TypeCompiler.Compile(ep.query) }),
      ...(ep.body === undefined ? {} : { body: TypeCompiler.Compile(ep.body) }),
      bodyIsObject: ep.body !== undefined && ep.body[Kind] === 'Object',
    }
    this.#v.set(name, v)
    return v
  }

  /** Throws a 400 InvalidRequest naming the first field that does not match. */
  check(name: AdminApiEndpointName, query: URLSearchParams, body: unknown): void {
    const v = this.#validators(name)
    if (v === undefined) return
    if (v.query !== undefined) {
      const q: Record<string, string> = {}
      for (const k of query.keys()) q[k] ??= query.get(k) as string
      const err = firstError(v.query, q)
      if (err !== undefined) throw queryError(err)
    }
    if (v.body !== undefined) {
      const b = v.bodyIsObject && (body === undefined || body === null) ? {} : body
      const err = firstError(v.body, b)
      if (err !== undefined) throw bodyError(err)
    }
  }
}

interface Mismatch {
  path: string
  schema: TSchema
  value: unknown
}

function firstError(check: TypeCheck<TSchema>, value: unknown): Mismatch | undefined {
  if (check.Check(value)) return undefined
  const e = check.Errors(value).First()
  // Check failed, so Errors has at least one; the fallback keeps the type honest.
  let m: Mismatch =
    e === undefined ? { path: '', schema: check.Schema(), value } : { path: e.path, schema: e.schema, value: e.value }
  // A union (an optional field is `T | null`) reports itself: go down into the variant the value
  // was meant to be, so that the message names the deepest field.
  for (let variant = unionTarget(m); variant !== undefined; variant = unionTarget(m)) {
    const inner = Errors(variant, m.value).First()
    if (inner === undefined) break
    m = { path: m.path + inner.path, schema: inner.schema, value: inner.value }
  }
  return m
}

/** The variant of a union the value was meant to be: the only non-null one, or the object sharing most keys. */
function unionTarget(m: Mismatch): TSchema | undefined {
  if (m.schema[Kind] !== 'Union' || m.value === undefined || m.value === null) return undefined
  const variants = (m.schema.anyOf as TSchema[]).filter((v) => v[Kind] !== 'Null')
  if (variants.length === 1) return variants[0]
  const v = m.value
  if (typeof v !== 'object' || Array.isArray(v)) return undefined
  const scored = variants
    .filter((s) => s[Kind] === 'Object')
    .map((s) => ({ s, n: Object.keys(s.properties as object).filter((k) => k in v).length }))
    .sort((a, b) => b.n - a.n)
  const [best, second] = scored
  return best !== undefined && best.n > 0 && (second === undefined || second.n < best.n) ? best.s : undefined
}

/** `/roles/0/zone` → `roles[0].zone` (JSON pointer unescaped). */
export function fieldName(pointer: string): string {
  let out = ''
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    out += /^\d+$/.test(seg) ? `[${seg}]` : out === '' ? seg : `.${seg}`
  }
  return out
}

function queryError(m: Mismatch): AdminError {
  const name = fieldName(m.path)
  if (m.value === undefined) return badRequest(`missing query parameter '${name}'`)
  return badRequest(`query parameter '${name}' must be ${describeSchema(m.schema)}`)
}

function bodyError(m: Mismatch): AdminError {
  const name = fieldName(m.path)
  if (name === '') {
    return badRequest(m.value === undefined ? 'request body is required' : `request body must be ${describeSchema(m.schema)}`)
  }
  if (m.value === undefined) return badRequest(`request body: '${name}' is required`)
  return badRequest(`request body: '${name}' must be ${describeSchema(m.schema)}`)
}

/** What a value must be, in words: `a non-negative integer`, `"maximum" or an object with atLeast`. */
export function describeSchema(s: TSchema): string {
  switch (s[Kind]) {
    case 'String':
      return s.pattern === RFC3339_PATTERN ? 'an RFC 3339 date-time' : 'a string'
    case 'Integer':
      return s.minimum === 0 ? 'a non-negative integer' : 'an integer'
    case 'Number':
      return 'a number'
    case 'Boolean':
      return 'a boolean'
    case 'Null':
      return 'null'
    case 'Literal':
      return JSON.stringify(s.const)
    case 'Array': {
      const items = s.items as TSchema
      return items[Kind] === 'String' ? 'an array of strings' : 'an array'
    }
    case 'Tuple':
      return 'an array'
    case 'Record':
      return 'an object'
    case 'Object': {
      const required = (s.required ?? []) as string[]
      return required.length === 0 ? 'an object' : `an object with ${required.join(', ')}`
    }
    case 'Union': {
      const variants = (s.anyOf as TSchema[]).filter((v) => v[Kind] !== 'Null')
      const literals = variants.filter((v) => v[Kind] === 'Literal').map(describeSchema)
      const others = variants.filter((v) => v[Kind] !== 'Literal').map(describeSchema)
      if (literals.length === 1 && others.length === 0) return literals[0] as string
      const parts = [...(literals.length > 1 ? [`one of ${literals.join(', ')}`] : literals), ...others]
      return parts.join(' or ')
    }
    default:
      return 'valid'
  }
}
