#!/usr/bin/env node
/**
 * `npm test`: every `test/**\/*.test.ts` file under Node's own test runner (spec reporter, a
 * 15-minute default timeout per test, so a hung test fails instead of holding CI), two files at a
 * time, with one rule: at most one file that runs a cluster behind the fault-injecting proxies
 * (`startLinkMesh(`: the chaos runs) at a time.
 *
 * `node --test --test-concurrency=2` over the sorted list had run the chaos files two at a time
 * (they sort together): two clusters of 3 to 5 nodes and their proxies sharing the 2 cores while
 * each measured availability and convergence against timeouts.
 *
 * Order: the proxy runs first (the longest), then the files that start child processes
 * (clusters, servers, the CLI, a browser: test/integration, test/cli, test/console), then the
 * rest; each worker takes the first file it may run. Each file's output is printed whole when it
 * ends (no interleaving), and at the end the failing tests of every file
 * again, with the totals. `npm test -- FILE...` runs only those files.
 */
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const WORKERS = 2
const PROXY_RUN = /\bstartLinkMesh\(/
const CLUSTER_RUN = /\b(startCluster|startReplicatedCluster|startLinkMesh)\(/

/** Test files under `dir`, sorted. */
function testFiles(dir) {
  const out = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...testFiles(p))
    else if (e.name.endsWith('.test.ts')) out.push(p)
  }
  return out.sort()
}

/** Runs one file under Node's test runner; resolves with its exit code and output. */
function runFile(file) {
  const args = ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-timeout=900000', file]
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (d) => {
    output += d
  })
  child.stderr.setEncoding('utf8').on('data', (d) => {
    output += d
  })
  return new Promise((resolve) => {
    child.on('close', (code, signal) => resolve({ code: code ?? (signal === null ? 1 : 128), output }))
  })
}

/** The runner's totals (`ℹ tests 12` …) of one file's output. */
function totals(output) {
  const t = {}
  for (const m of output.matchAll(/^ℹ (tests|pass|fail|cancelled|skipped|todo) (\d+)$/gm)) t[m[1]] = Number(m[2])
  return t
}

const requested = process.argv.slice(2)
const files = requested.length > 0 ? requested : testFiles('test')
const text = new Map(files.map((f) => [f, readFileSync(f, 'utf8')]))
const isProxyRun = (f) => PROXY_RUN.test(text.get(f))
/** Files that start child processes (clusters, servers, the CLI, a browser) take longest: first. */
const SLOW_DIRS = ['test/integration/', 'test/cli/', 'test/console/']
const isSlow = (f) => CLUSTER_RUN.test(text.get(f)) || SLOW_DIRS.some((d) => f.startsWith(d))
const rank = (f) => (isProxyRun(f) ? 0 : isSlow(f) ? 1 : 2)
const queue = [...files].sort((a, b) => rank(a) - rank(b))

const started = Date.now()
const failures = []
const sum = {}
let proxyRunning = false

async function worker() {
  for (;;) {
    const i = queue.findIndex((f) => !(proxyRunning && isProxyRun(f)))
    if (i < 0) {
      if (queue.length === 0) return
      // Only proxy runs are left and one is running: wait for it.
      await new Promise((r) => setTimeout(r, 200))
      continue
    }
    const [file] = queue.splice(i, 1)
    const proxy = isProxyRun(file)
    if (proxy) proxyRunning = true
    const t0 = Date.now()
    const r = await runFile(file)
    if (proxy) proxyRunning = false
    const seconds = ((Date.now() - t0) / 1000).toFixed(1)
    const mark = r.code === 0 ? '✔' : '✖'
    process.stdout.write(`\n━━ ${mark} ${file} (${seconds} s, exit ${r.code})\n${r.output}`)
    for (const [k, v] of Object.entries(totals(r.output))) sum[k] = (sum[k] ?? 0) + v
    if (r.code !== 0) failures.push({ file, code: r.code, output: r.output })
  }
}

await Promise.all(Array.from({ length: WORKERS }, worker))

for (const f of failures) {
  process.stdout.write(`\n━━ failed: ${f.file} (exit ${f.code})\n`)
  const at = f.output.indexOf('✖ failing tests:')
  process.stdout.write(at >= 0 ? f.output.slice(at) : `${f.output.slice(-4000)}\n`)
}
const line = ['tests', 'pass', 'fail', 'cancelled', 'skipped', 'todo'].map((k) => `${k} ${sum[k] ?? 0}`).join(', ')
const failed = failures.length === 0 ? '' : `; failed files: ${failures.map((f) => f.file).join(', ')}`
process.stdout.write(`\n━━ ${files.length} files, ${line}, ${Math.round((Date.now() - started) / 1000)} s${failed}\n`)
process.exitCode = failures.length === 0 ? 0 : 1
