/**
 * The `garage` command line (citty + consola). Entry of the built `dist/cli.js`, which
 * `bin/garage.js` loads. Only this folder prints or exits, and it only uses the public API.
 */

import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { defineCommand, runMain } from 'citty'
import { serverCommand } from './commands/server.ts'

/** The `garage` command and its subcommands. */
export const main = defineCommand({
  meta: () => ({
    name: 'garage',
    version: packageVersion(),
    description: 'Garage, the S3-compatible geo-distributed object store, for Node.js',
  }),
  subCommands: {
    server: serverCommand,
  },
})

/**
 * Run the CLI on `argv` (default: the process arguments). Garage's own spelling
 * `garage -c garage.toml server` is accepted as well as `garage server -c garage.toml`.
 */
export async function runCli(argv: string[] = process.argv.slice(2)): Promise<void> {
  await runMain(main, { rawArgs: hoistConfigOption(argv) })
}

/** Move a leading `-c FILE` / `--config FILE` / `--config=FILE` after the subcommand name. */
export function hoistConfigOption(argv: readonly string[]): string[] {
  const hoisted: string[] = []
  let i = 0
  while (i < argv.length) {
    const arg = argv[i] ?? ''
    if ((arg === '-c' || arg === '--config') && i + 1 < argv.length) {
      hoisted.push(arg, argv[i + 1] ?? '')
      i += 2
    } else if (arg.startsWith('--config=')) {
      hoisted.push(arg)
      i += 1
    } else {
      break
    }
  }
  const sub = argv[i]
  if (hoisted.length === 0 || sub === undefined || sub.startsWith('-')) return [...argv]
  return [sub, ...hoisted, ...argv.slice(i + 1)]
}

/** Version of the installed package, found by walking up from this file (src or dist). */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const candidate = join(dir, 'package.json')
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: unknown; version?: unknown }
      if (pkg.name === 'garage' && typeof pkg.version === 'string') return pkg.version
    }
    const parent = dirname(dir)
    if (parent === dir) return '0.0.0'
    dir = parent
  }
}
