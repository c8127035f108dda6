/**
 * Reading admin requests: the JSON body (bounded) and typed access to its fields and to query
 * parameters, each failure a 400 naming the field.
 */
import type { IncomingMessage } from 'node:http'
import { AdminError, badRequest } from './errors.ts'

/** Admin requests are small; anything larger is refused before it is buffered. */
const MAX_BODY = 1 << 20

export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY) throw new AdminError('EntityTooLarge', `request body larger than ${MAX_BODY} bytes`)
    chunks.push(chunk as Buffer)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  if (text.trim() === '') return undefined
  try {
    return JSON.parse(text) as unknown
  } catch (err) {
    throw new AdminError('InvalidRequest', `invalid JSON in request body: ${(err as Error).message}`)
  }
}

/** A JSON object's fields, read with their expected types. `null` counts as absent. */
export class Fields {
  readonly #o: Record<string, unknown>
  readonly #where: string
  constructor(value: unknown, where = 'request body') {
    if (value === undefined || value === null) this.#o = {}
    else if (typeof value === 'object' && !Array.isArray(value)) this.#o = value as Record<string, unknown>
    else throw badRequest(`${where} must be a JSON object`)
    this.#where = where
  }

  has(name: string): boolean {
    return this.#o[name] !== undefined && this.#o[name] !== null
  }

  #get(name: string, type: string, check: (v: unknown) => boolean): unknown {
    const v = this.#o[name]
    if (v === undefined || v === null) return undefined
    if (!check(v)) throw badRequest(`${this.#where}: '${name}' must be ${type}`)
    return v
  }

  optString(name: string): string | undefined {
    return this.#get(name, 'a string', (v) => typeof v === 'string') as string | undefined
  }
  string(name: string): string {
    const v = this.optString(name)
    if (v === undefined) throw badRequest(`${this.#where}: '${name}' is required`)
    return v
  }
  optBool(name: string): boolean | undefined {
    return this.#get(name, 'a boolean', (v) => typeof v === 'boolean') as boolean | undefined
  }
  optInt(name: string): number | undefined {
    return this.#get(name, 'a non-negative integer', (v) => Number.isSafeInteger(v) && (v as number) >= 0) as number | undefined
  }
  int(name: string): number {
    const v = this.optInt(name)
    if (v === undefined) throw badRequest(`${this.#where}: '${name}' is required`)
    return v
  }
  optStringArray(name: string): string[] | undefined {
    return this.#get(name, 'an array of strings', (v) => Array.isArray(v) && v.every((x) => typeof x === 'string')) as
      | string[]
      | undefined
  }
  optObject(name: string): Fields | undefined {
    const v = this.#get(name, 'an object', (x) => typeof x === 'object' && !Array.isArray(x))
    return v === undefined ? undefined : new Fields(v, `'${name}'`)
  }
  /** An RFC 3339 date-time. */
  optDate(name: string): Date | undefined {
    const s = this.optString(name)
    if (s === undefined) return undefined
    const d = new Date(s)
    if (Number.isNaN(d.getTime()) || !/^\d{4}-\d{2}-\d{2}T/.test(s)) {
      throw badRequest(`${this.#where}: '${name}' must be an RFC 3339 date-time`)
    }
    return d
  }
}

/** A required query parameter. */
export function queryParam(query: URLSearchParams, name: string): string {
  const v = query.get(name)
  if (v === null) throw badRequest(`missing query parameter '${name}'`)
  return v
}

/** `?name=true|false`, default false. */
export function queryBool(query: URLSearchParams, name: string): boolean {
  const v = query.get(name)
  if (v === null || v === 'false') return false
  if (v === 'true' || v === '') return true
  throw badRequest(`query parameter '${name}' must be true or false`)
}

export const isoOrNull = (d: Date | null): string | null => (d === null ? null : d.toISOString())
