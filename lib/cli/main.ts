/**
 * The `garage` command line (citty + consola). Entry of the built `dist/cli.cjs`, which
 * `bin/garage.js` loads. Only this folder prints or exits, and it only uses the public API.
 */

import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { defineCommand, runMain } from 'citty'
import { GLOBAL_FLAG_OPTIONS, GLOBAL_VALUE_OPTIONS } from './_command.ts'
import { strictCommand } from './_strict.ts'
import { adminTokenCommand } from './commands/admin-token.ts'
import { bucketCommand } from './commands/bucket.ts'
import { nodeCommand, statsCommand, statusCommand } from './commands/cluster.ts'
import { jsonApiCommand } from './commands/json-api.ts'
import { keyCommand } from './commands/key.ts'
import { serverCommand } from './commands/server.ts'
import { layoutCommand } from './commands/layout.ts'
import { blockCommand } from './commands/block.ts'
import { repairCommand } from './commands/repair.ts'
import { workerCommand } from './commands/worker.ts'

/** The `garage` command and its subcommands; each refuses options it does not define. */
export const main = strictCommand(
  defineCommand({
    meta: () => ({
      name: 'garage',
      version: packageVersion(),
      description: 'Garage, the S3-compatible geo-distributed object store, for Node.js',
    }),
    subCommands: {
      server: serverCommand,
      status: statusCommand,
      node: nodeCommand,
      layout: layoutCommand,
      bucket: bucketCommand,
      key: keyCommand,
      'admin-token': adminTokenCommand,
      repair: repairCommand,
      stats: statsCommand,
      worker: workerCommand,
      block: blockCommand,
      'json-api': jsonApiCommand,
    },
  }),
)

/**
 * Run the CLI on `argv` (default: the process arguments). Garage's own spelling with the
 * global options first, `garage -c garage.toml bucket list`, is accepted as well as
 * `garage bucket list -c garage.toml`.
 */
export async function runCli(argv: string[] = process.argv.slice(2)): Promise<void> {
  await runMain(main, { rawArgs: hoistConfigOption(argv) })
}

/**
 * Move leading global options (`-c FILE`, written `--config FILE` once moved, `--config[=]FILE`, `--admin-addr`, `--admin-token`,
 * `--json`) after the command: citty hands each subcommand only the arguments after its name,
 * so options written before it would be lost. They go at the end (before a `--`), which keeps
 * positionals in order for every command depth.
 */
export function hoistConfigOption(argv: readonly string[]): string[] {
  const hoisted: string[] = []
  let i = 0
  while (i < argv.length) {
    const arg = argv[i] ?? ''
    const name = arg.includes('=') ? arg.slice(0, arg.indexOf('=')) : arg
    if (GLOBAL_VALUE_OPTIONS.includes(arg) && i + 1 < argv.length) {
      // `-c` becomes `--config`: after the command, `-c` may be one of its own options
      // (`garage -c garage.toml layout assign <node> -c 10G`, as in Garage).
      hoisted.push(arg === '-c' ? '--config' : arg, argv[i + 1] ?? '')
      i += 2
    } else if (arg.startsWith('--') && arg.includes('=') && GLOBAL_VALUE_OPTIONS.includes(name)) {
      hoisted.push(arg)
      i += 1
    } else if (GLOBAL_FLAG_OPTIONS.includes(arg)) {
      hoisted.push(arg)
      i += 1
    } else {
      break
    }
  }
  const rest = argv.slice(i)
  if (hoisted.length === 0 || rest.length === 0 || (rest[0] ?? '').startsWith('-')) return [...argv]
  const dashdash = rest.indexOf('--')
  if (dashdash < 0) return [...rest, ...hoisted]
  return [...rest.slice(0, dashdash), ...hoisted, ...rest.slice(dashdash)]
}

/** Version of the installed package, found by walking up from this file (src or dist). */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const candidate = join(dir, 'package.json')
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: unknown; version?: unknown }
      if (pkg.name === 'garage-ts' && typeof pkg.version === 'string') return pkg.version
    }
    const parent = dirname(dir)
    if (parent === dir) return '0.0.0'
    dir = parent
  }
}
