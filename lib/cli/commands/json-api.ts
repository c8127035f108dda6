/**
 * `garage json-api <Endpoint> [json|-]`: call any admin API v2 endpoint with a JSON request and
 * print its JSON answer, for scripts (Garage's `cmd_json_api`). Fields named like the
 * endpoint's query parameters (`id`, `search`, `node`, …) go in the query string; a `body`
 * field, or else the other fields, is the request body.
 */

import { text } from 'node:stream/consumers'
import { adminCommand } from '../_command.ts'
import { CliError } from '../_errors.ts'

export const jsonApiCommand = adminCommand({
  meta: { name: 'json-api', description: 'Call an admin API endpoint with a JSON request and print the JSON response' },
  args: {
    endpoint: { type: 'positional', required: true, description: 'Endpoint name, e.g. GetClusterStatus, GetBucketInfo' },
    payload: {
      type: 'positional',
      required: false,
      default: 'null',
      description: 'JSON request, or - to read it from stdin',
    },
  },
  async run(ctx, args) {
    if (!/^[A-Za-z]+$/.test(args.endpoint)) throw new CliError(`invalid endpoint name '${args.endpoint}'`)
    const raw = args.payload === '-' ? await text(process.stdin) : args.payload
    let payload: unknown
    try {
      payload = JSON.parse(raw)
    } catch (err) {
      throw new CliError(`invalid JSON request: ${(err as Error).message}`, { cause: err })
    }
    const res = await ctx.api.callJson(args.endpoint, payload)
    ctx.out.json(res ?? null)
  },
})
