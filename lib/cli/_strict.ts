/**
 * Unknown options are errors. citty hands options it does not know to the command (in `args`
 * and `rawArgs`) and carries on, so `garage bucket allow --wirte b --key k` would do nothing
 * asked for and exit 0. {@link strictCommand} wraps a command tree so that every command first
 * checks its own options and stops with one line naming the closest valid option.
 * @internal
 */

import type { ArgDef, ArgsDef, CommandDef, Resolvable, SubCommandsDef } from 'citty'
import { CliError, exitWithError } from './_errors.ts'

type AnyCommand = CommandDef<ArgsDef>

const resolve = async <T>(v: Resolvable<T>): Promise<T> =>
  typeof v === 'function' ? await (v as () => T | Promise<T>)() : await v

const camel = (s: string): string => s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase())
const kebab = (s: string): string => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)

interface Known {
  /** Long name (and its camelCase/kebab-case spellings) → takes a value. */
  long: Map<string, boolean>
  /** One-letter alias → takes a value. */
  short: Map<string, boolean>
  /** What is shown in messages: `--name` and `-a`. */
  display: string[]
}

function knownOptions(args: ArgsDef): Known {
  const long = new Map<string, boolean>()
  const short = new Map<string, boolean>()
  const display: string[] = []
  for (const [name, def] of Object.entries(args) as Array<[string, ArgDef]>) {
    if (def.type === 'positional') continue
    const value = def.type === 'string' || def.type === 'enum'
    const alias = 'alias' in def ? def.alias : undefined
    const aliases = alias === undefined ? [] : Array.isArray(alias) ? alias : [alias]
    for (const n of [name, camel(name), kebab(name)]) long.set(n, value)
    display.push(`--${name}`)
    for (const a of aliases) {
      if (a.length === 1) {
        short.set(a, value)
        display.push(`-${a}`)
      } else {
        long.set(a, value)
        display.push(`--${a}`)
      }
    }
  }
  return { long, short, display }
}

/**
 * Edit distance with adjacent transpositions (optimal string alignment: Levenshtein, plus a swap
 * of two neighbours counting as one edit, so `wirte` is 1 away from `write`).
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  )
  const at = (i: number, j: number): number => (d[i] as number[])[j] as number
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, at(i - 2, j - 2) + 1)
      ;(d[i] as number[])[j] = v
    }
  }
  return at(a.length, b.length)
}

/** The valid option closest to `flag` (`--wirte` → `--write`), if close enough to be a typo. */
export function closestOption(flag: string, valid: readonly string[]): string | undefined {
  const bare = flag.replace(/^-+/, '').split('=')[0] ?? ''
  let best: { option: string; distance: number } | undefined
  for (const option of valid) {
    const distance = editDistance(bare, option.replace(/^-+/, ''))
    if (best === undefined || distance < best.distance) best = { option, distance }
  }
  // One or two letters (`-x`) say too little to guess from.
  if (best === undefined || bare.length < 3) return undefined
  // A typo, not another word: at most a third of the longer name (at least 1, at most 3 edits).
  const longer = Math.max(bare.length, best.option.replace(/^-+/, '').length)
  const limit = Math.min(3, Math.max(1, Math.floor(longer / 3)))
  return best.distance <= limit ? best.option : undefined
}

/**
 * The first option of `rawArgs` that `args` does not define, or undefined. With `subCommands`
 * (a command that only dispatches), the scan stops at the first positional: the subcommand
 * name, after which the subcommand checks its own options. Values of string options (`-c x`,
 * `--config x`, `--config=x`, `-cx`), a lone `-` and everything after `--` are not options.
 */
export function findUnknownOption(rawArgs: readonly string[], args: ArgsDef, subCommands: boolean): string | undefined {
  const known = knownOptions(args)
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i] as string
    if (arg === '--') return undefined
    if (arg === '-' || !arg.startsWith('-')) {
      if (subCommands) return undefined
      continue
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=')
      const name = arg.slice(2, eq < 0 ? undefined : eq)
      let takesValue = known.long.get(name)
      // citty reads `--no-x` as x = false.
      if (takesValue === undefined && name.startsWith('no-') && known.long.get(name.slice(3)) === false) takesValue = false
      if (takesValue === undefined) return arg.slice(0, eq < 0 ? undefined : eq)
      if (takesValue && eq < 0) i++
      continue
    }
    // Short options: `-c value`, `-cvalue`, or grouped booleans (`-aq`).
    const letters = arg.slice(1)
    for (let k = 0; k < letters.length; k++) {
      const takesValue = known.short.get(letters[k] as string)
      if (takesValue === undefined) return `-${letters[k]}`
      if (takesValue) {
        if (k === letters.length - 1) i++
        break
      }
    }
  }
  return undefined
}

/**
 * The one-line message for an unknown option of `command` (e.g. `garage bucket allow`); `group`
 * for a command that only dispatches to subcommands (whose options go after their name).
 */
export function unknownOptionMessage(flag: string, command: string, args: ArgsDef, group = false): string {
  // citty answers --help (and --version alone on the root command) before any command runs.
  const builtin = command === 'garage' ? ['--help', '--version'] : ['--help']
  const valid = [...knownOptions(args).display, ...builtin]
  const closest = closestOption(flag, valid)
  if (closest !== undefined) return `unknown option '${flag}' for '${command}': did you mean '${closest}'?`
  if (group) return `unknown option '${flag}' for '${command}': options go after the command name (see '${command} --help')`
  return `unknown option '${flag}' for '${command}' (valid options: ${valid.join(', ')}; see '${command} --help')`
}

/** Marks a command wrapped by {@link strictCommand}. */
export const kStrict: unique symbol = Symbol('garage.cli.strict')

/**
 * Wraps `cmd` and, recursively, its subcommands: before a command runs (citty's `setup`), its
 * options are checked against its `args`, and an unknown one ends the process with exit status
 * 1 and one line naming the closest valid option.
 */
export function strictCommand<T extends AnyCommand>(cmd: T, path = 'garage'): T {
  const subCommands = cmd.subCommands
  const wrapped: AnyCommand & { [kStrict]?: true } = {
    ...cmd,
    async setup(ctx) {
      const args = await resolve(cmd.args ?? {})
      const subs = subCommands === undefined ? undefined : await resolve(subCommands)
      const group = subs !== undefined && Object.keys(subs).length > 0
      const unknown = findUnknownOption(ctx.rawArgs, args, group)
      if (unknown !== undefined) exitWithError(new CliError(unknownOptionMessage(unknown, path, args, group)))
      await cmd.setup?.(ctx)
    },
    ...(subCommands === undefined ? {} : { subCommands: wrapSubCommands(subCommands, path) }),
  }
  wrapped[kStrict] = true
  return wrapped as T
}

function wrapSubCommands(subs: Resolvable<SubCommandsDef>, path: string): Resolvable<SubCommandsDef> {
  const wrapAll = (defs: SubCommandsDef): SubCommandsDef =>
    Object.fromEntries(
      Object.entries(defs).map(([name, sub]) => [
        name,
        // Plain definitions (ours) are wrapped now; lazy ones when citty resolves them.
        typeof sub === 'function' || sub instanceof Promise
          ? async () => strictCommand((await resolve(sub)) as AnyCommand, `${path} ${name}`)
          : strictCommand(sub as AnyCommand, `${path} ${name}`),
      ]),
    )
  if (typeof subs === 'function' || subs instanceof Promise) return async () => wrapAll(await resolve(subs))
  return wrapAll(subs)
}
