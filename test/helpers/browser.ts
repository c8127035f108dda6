/**
 * Headless Chromium for the console's end-to-end tests: Debian's /usr/bin/chromium driven by
 * playwright-core (no browser download). Also makes sure the console is built (dist/ui), since
 * the tests run from the TypeScript sources.
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { rename, rm } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { type Browser, chromium } from 'playwright-core'

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/**
 * Builds dist/ui when it is missing (CI runs `npm run build` first, so this is for local runs).
 * Test files run in parallel: each builds into its own directory and renames it into place, and
 * the loser of the race drops its copy.
 */
export async function ensureConsoleBuilt(): Promise<void> {
  const target = `${ROOT}dist/ui`
  if (existsSync(`${target}/index.html`)) return
  const tmp = `${ROOT}dist/ui-build-${process.pid}`
  await promisify(execFile)(
    process.execPath,
    [`${ROOT}node_modules/tsdown/dist/run.mjs`, '-c', 'tsdown.ui.config.ts', '-d', tmp],
    {
      cwd: ROOT,
    },
  )
  try {
    await rename(tmp, target)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err
    // Another test file built it first.
    await rm(tmp, { recursive: true, force: true })
  }
}

export async function launchBrowser(): Promise<Browser> {
  await ensureConsoleBuilt()
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    // --no-sandbox: CI runs as root in a container, where Chromium's sandbox cannot start.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  })
}

/** Where screenshots go when CONSOLE_SCREENSHOTS=1 (docs/console/), else undefined. */
export const SCREENSHOT_DIR = process.env.CONSOLE_SCREENSHOTS === '1' ? `${ROOT}docs/console/` : undefined
