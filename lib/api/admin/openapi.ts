/**
 * The OpenAPI 3.1 description of our admin API, served at `GET /v2/openapi.json` (Garage ships
 * its document as doc/api/garage-admin-v2.json). Generated from the contract (contract.ts), the
 * same schemas the router validates requests with, so it cannot drift. Titled schemas become
 * components (`#/components/schemas/<title>`); names follow Garage's document.
 */
import { Kind, type TSchema } from '@sinclair/typebox'
import { GARAGE_TS_VERSION } from '../../util/version.ts'
import { ADMIN_API, type AdminApiEndpointName, type EndpointContract, ErrorResponseSchema, RFC3339_PATTERN } from './contract.ts'

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }
type JsonObject = { [k: string]: Json }

const isObject = (v: Json | undefined): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Turns TypeBox's JSON Schema into OpenAPI 3.1's dialect and hoists titled schemas into `components`. */
class SchemaWriter {
  readonly components: Record<string, JsonObject> = {}

  /** A schema for use in the document: a `$ref` if it is titled. */
  ref(schema: TSchema): Json {
    // JSON round trip: drops TypeBox's symbol-keyed metadata.
    return this.#walk(JSON.parse(JSON.stringify(schema)) as Json, false)
  }

  #walk(node: Json, inComponent: boolean): Json {
    if (Array.isArray(node)) return node.map((n) => this.#walk(n, false))
    if (!isObject(node)) return node
    const title = node.title
    if (typeof title === 'string' && !inComponent) {
      if (this.components[title] === undefined) {
        this.components[title] = {} // placeholder: recursive shapes stop here
        this.components[title] = this.#walk(node, true) as JsonObject
      }
      return { $ref: `#/components/schemas/${title}` }
    }
    const out: JsonObject = {}
    for (const [k, v] of Object.entries(node)) out[k] = this.#walk(v, false)
    if (out.type === 'string' && out.pattern === RFC3339_PATTERN) out.format = 'date-time'
    // Record: `additionalProperties` is what OpenAPI tools read.
    const pp = out.patternProperties
    if (isObject(pp) && Object.keys(pp).length === 1 && pp['^(.*)$'] !== undefined) {
      out.additionalProperties = pp['^(.*)$'] as Json
      delete out.patternProperties
    }
    // Tuple: draft 2020-12 spells positional items `prefixItems`.
    if (Array.isArray(out.items)) {
      out.prefixItems = out.items
      out.items = false
      delete out.additionalItems
    }
    return out
  }
}

/** Builds the document (plain JSON data). */
export function buildOpenApiDocument(): object {
  const w = new SchemaWriter()
  const errorRef = w.ref(ErrorResponseSchema)
  const paths: Record<string, Json> = {}
  for (const [name, ep] of Object.entries(ADMIN_API) as Array<[AdminApiEndpointName, EndpointContract]>) {
    const op: JsonObject = { tags: [ep.tag], operationId: name }
    if (ep.notImplemented === true) op.description = 'Not implemented yet: answers 501 NotImplemented.'
    const q = ep.query === undefined ? undefined : (JSON.parse(JSON.stringify(ep.query)) as JsonObject)
    const required = new Set(Array.isArray(q?.required) ? (q.required as string[]) : [])
    op.parameters = Object.entries(isObject(q?.properties) ? q.properties : {}).map(([p, schema]) => ({
      name: p,
      in: 'query',
      required: required.has(p),
      schema: w.ref(schema as unknown as TSchema),
    }))
    if (ep.body !== undefined) {
      // An object body may be left out (it reads as `{}`).
      op.requestBody = { required: ep.body[Kind] !== 'Object', content: { 'application/json': { schema: w.ref(ep.body) } } }
    }
    op.responses = {
      200: {
        description: 'Success',
        content: { 'application/json': { schema: ep.response === undefined ? { type: 'null' } : w.ref(ep.response) } },
      },
      default: { description: 'Error', content: { 'application/json': { schema: errorRef } } },
    }
    paths[`/v2/${name}`] = { [ep.method.toLowerCase()]: op }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Garage administration API (TypeScript implementation)',
      description: 'Administrate the node programmatically. Follows the Garage v2 admin API.',
      version: GARAGE_TS_VERSION,
    },
    servers: [{ url: 'http://localhost:3903/' }],
    security: [{ bearerAuth: [] }],
    paths,
    components: { schemas: w.components, securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } },
  }
}
