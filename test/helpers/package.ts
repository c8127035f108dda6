/**
 * The package as a user gets it: `npm pack` of the built tree, unpacked into a fresh app's
 * node_modules. The build runs at most once per change of the sources (an up-to-date dist/ is
 * reused; CI builds before testing), the tarball once per build, shared by the test files that
 * need it (a lock directory keeps two test processes from building at the same time).
 *
 * The app gets the package's declared `dependencies` (linked from our node_modules, so no network
 * is needed) and nothing else it did not ask for: a runtime import the package forgot to declare
 * fails there, as it would for a user.
 */

import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rename, rm, rmdir, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm'

/** Newest modification time (ms) of the files a build reads. */
function newestSource(): number {
  let newest = 0
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else newest = Math.max(newest, statSync(path).mtimeMs)
    }
  }
  walk(join(ROOT, 'lib'))
  for (const f of ['package.json', 'tsdown.config.ts', 'scripts/esm-entries.mjs']) {
    newest = Math.max(newest, statSync(join(ROOT, f)).mtimeMs)
  }
  return newest
}

/** Whether dist/ was built after the last change of its sources. */
function distIsFresh(): boolean {
  const stamp = join(ROOT, 'dist/index.mjs')
  return existsSync(stamp) && statSync(stamp).mtimeMs >= newestSource()
}

async function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(tmpdir(), `${name}.lock`)
  for (let i = 0; ; i++) {
    try {
      await mkdir(lock)
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      // A lock older than 5 minutes belongs to a process that died.
      if (i > 0 && Date.now() - statSync(lock).mtimeMs > 300_000) await rmdir(lock).catch(() => {})
      await new Promise((r) => setTimeout(r, 250))
    }
  }
  try {
    return await fn()
  } finally {
    await rmdir(lock)
  }
}

/** Build if dist/ is stale, then `npm pack` once per build; the tarball's path. */
export async function packedTarball(): Promise<string> {
  const key = createHash('sha256').update(ROOT).digest('hex').slice(0, 12)
  return withLock(`garage-ts-pack-${key}`, async () => {
    if (!distIsFresh()) await run(NPM, ['run', 'build', '--silent'], { cwd: ROOT, maxBuffer: 16 << 20 })
    const stamp = Math.floor(statSync(join(ROOT, 'dist/index.mjs')).mtimeMs)
    const dest = join(tmpdir(), `garage-ts-pack-${key}-${stamp}`)
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string }
    const tarball = join(dest, `${pkg.name}-${pkg.version}.tgz`)
    if (existsSync(tarball)) return tarball
    const staging = `${dest}.${process.pid}`
    await mkdir(staging, { recursive: true })
    // --ignore-scripts: dist/ is already built; pack only collects the files.
    await run(NPM, ['pack', '--ignore-scripts', '--silent', '--pack-destination', staging], { cwd: ROOT })
    await rename(staging, dest).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err
      await rm(staging, { recursive: true, force: true })
    })
    return tarball
  })
}

export interface PackedApp {
  /** The app's directory: package.json, node_modules/garage-ts, its dependencies. */
  dir: string
  /** The unpacked package (node_modules/garage-ts). */
  pkgDir: string
  close(): Promise<void>
}

/**
 * A fresh app with the packed package installed. `extra` names packages of our own
 * node_modules the app also depends on (an S3 client, TypeScript's Node types).
 */
export async function createPackedApp(options: { type?: 'module' | 'commonjs'; extra?: string[] } = {}): Promise<PackedApp> {
  const tarball = await packedTarball()
  const dir = await mkdtemp(join(tmpdir(), 'garage-ts-app-'))
  const close = (): Promise<void> => rm(dir, { recursive: true, force: true })
  try {
    const pkgJson = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      name: string
      dependencies: Record<string, string>
    }
    const pkgDir = join(dir, 'node_modules', pkgJson.name)
    await mkdir(pkgDir, { recursive: true })
    await run('tar', ['-xzf', tarball, '-C', pkgDir, '--strip-components=1'])
    await writeFile(
      join(dir, 'package.json'),
      JSON.stringify({ name: 'app', private: true, type: options.type ?? 'commonjs', dependencies: { [pkgJson.name]: '*' } }),
    )
    // The package's declared dependencies go next to it, as npm would hoist them; `extra` too.
    const packed = JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
    for (const dep of [...Object.keys(packed.dependencies), ...(options.extra ?? [])]) {
      const link = join(dir, 'node_modules', dep)
      await mkdir(dirname(link), { recursive: true })
      await symlink(join(ROOT, 'node_modules', dep), link, 'dir')
    }
    // The package's bin, as npm links it.
    await mkdir(join(dir, 'node_modules/.bin'), { recursive: true })
    await symlink(join(pkgDir, 'bin/garage.js'), join(dir, 'node_modules/.bin/garage'))
    return { dir, pkgDir, close }
  } catch (err) {
    await close()
    throw err
  }
}

/** Run `node <args>` in `cwd` with the same node binary as the test; stdout, stderr. */
export async function runNode(
  cwd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ stdout: string; stderr: string }> {
  const clean: Record<string, string | undefined> = { ...process.env, NO_COLOR: '1', ...env }
  for (const name of Object.keys(clean)) if (name.startsWith('GARAGE_') && !(name in env)) delete clean[name]
  // The test runner's own options (--import tsx, --test …) must not reach the app.
  delete clean.NODE_OPTIONS
  delete clean.NODE_TEST_CONTEXT
  return run(process.execPath, args, { cwd, env: clean, maxBuffer: 16 << 20, timeout: 120_000 })
}
