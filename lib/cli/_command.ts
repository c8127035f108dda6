/**
 * `adminCommand()`: a citty command that talks to a node through the admin API. Adds the
 * connection options and `--json` to the command's own, connects, and reports errors as one
 * line (exit status 1).
 * @internal
 */

import { type ArgsDef, type CommandDef, type CommandMeta, defineCommand, type ParsedArgs } from 'citty'
import { type Output, createOutput } from './_format.ts'
import { reportErrors } from './_errors.ts'
import { type AdminClient, connectAdmin } from './admin-client.ts'

/** Options every operator command accepts (also before the command name: `garage -c f bucket list`). */
export const CONNECTION_ARGS = {
  config: {
    type: 'string',
    alias: 'c',
    valueHint: 'garage.toml',
    description: 'Config file giving [admin] api_bind_addr and admin_token (default: $GARAGE_CONFIG_FILE, else /etc/garage.toml)',
  },
  'admin-addr': {
    type: 'string',
    valueHint: 'host:port',
    description: 'Admin API address (default: $GARAGE_ADMIN_ADDR, else [admin] api_bind_addr)',
  },
  'admin-token': {
    type: 'string',
    valueHint: 'token',
    description: 'Admin API bearer token (default: $GARAGE_ADMIN_TOKEN, else [admin] admin_token)',
  },
  json: { type: 'boolean', description: 'Print the admin API JSON response instead of tables' },
} as const satisfies ArgsDef

/** Names of the global options, for hoisting them from before the command name. */
export const GLOBAL_VALUE_OPTIONS: readonly string[] = ['-c', '--config', '--admin-addr', '--admin-token']
export const GLOBAL_FLAG_OPTIONS: readonly string[] = ['--json']

/** What an operator command's `run` receives. */
export interface AdminContext {
  api: AdminClient
  out: Output
  /** `--json`: print the API's answer as JSON rather than tables. */
  json: boolean
}

type WithConnection<A extends ArgsDef> = A & typeof CONNECTION_ARGS

/**
 * The connection options for a command: a command with its own `-c` (`layout assign -c 10G`, as
 * in Garage) keeps `--config` without the short alias.
 */
function connectionArgsFor(args: ArgsDef | undefined): typeof CONNECTION_ARGS {
  const own = Object.values(args ?? {}).some(
    (a) => 'alias' in a && (a.alias === 'c' || (Array.isArray(a.alias) && a.alias.includes('c'))),
  )
  if (!own) return CONNECTION_ARGS
  const { alias: _alias, ...config } = CONNECTION_ARGS.config
  return { ...CONNECTION_ARGS, config } as unknown as typeof CONNECTION_ARGS
}

/** Define a command that calls the admin API. */
export function adminCommand<const A extends ArgsDef>(def: {
  meta: CommandMeta
  args?: A
  run: (ctx: AdminContext, args: ParsedArgs<WithConnection<A>>) => Promise<void>
}): CommandDef<WithConnection<A>> {
  return defineCommand<WithConnection<A>>({
    meta: def.meta,
    args: { ...def.args, ...connectionArgsFor(def.args) } as WithConnection<A>,
    run: reportErrors(async ({ args }) => {
      const conn = args as ParsedArgs<typeof CONNECTION_ARGS>
      const api = await connectAdmin({
        config: conn.config,
        adminAddr: conn['admin-addr'],
        adminToken: conn['admin-token'],
      })
      await def.run({ api, out: createOutput(), json: conn.json === true }, args)
    }),
  })
}
