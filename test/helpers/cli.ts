/** Runs the `garage` CLI from source (`node --import tsx lib/cli/run-dev.ts …`) as a child process. */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const RUN_DEV = join(ROOT, 'lib/cli/run-dev.ts')
const TSX = import.meta.resolve('tsx')

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Run `garage <args>` to completion, with no GARAGE_* variables from the caller's environment. */
export function garage(args: string[], opts: { env?: Record<string, string>; stdin?: string } = {}): Promise<CliResult> {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: '1' }
  for (const name of Object.keys(env)) if (name.startsWith('GARAGE_')) delete env[name]
  Object.assign(env, opts.env)
  const child = spawn(process.execPath, ['--import', TSX, RUN_DEV, ...args], {
    cwd: ROOT,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d
  })
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d
  })
  child.stdin.end(opts.stdin ?? '')
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`garage ${args.join(' ')} timed out; output:\n${stdout}\n${stderr}`))
    }, 60_000)
    child.once('exit', (code) => {
      clearTimeout(timer)
      // Let the pipes drain.
      setImmediate(() => resolve({ code, stdout, stderr }))
    })
  })
}
