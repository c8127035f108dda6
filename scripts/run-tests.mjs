#!/usr/bin/env node
/**
 * `npm test`: every `test/**\/*.test.ts` file, in two lanes that run side by side, one file at a
 * time each:
 *
 * - the cluster lane: the files that start clusters of child processes (chaos runs behind the
 *   fault-injecting proxies, test/integration/cluster, anything calling startCluster,
 *   startReplicatedCluster or startLinkMesh);
 * - the other lane: everything else.
 *
 * `node --test --test-concurrency=2` over the sorted list ran the chaos files two at a time (they
 * sort together), so two clusters of 3 to 5 nodes and their proxies shared the 2 cores while each
 * measured availability and convergence against timeouts; the lanes keep the same two-wide
 * parallelism with at most one cluster file at a time.
 *
 * Each lane is Node's own runner with the spec reporter and a 15-minute default timeout per test
 * (a test that hangs fails instead of holding its lane until CI's own limit); its lines are prefixed with the lane's
 * name. At the end the failing tests of both lanes are printed again, with the totals.
 * `npm test -- FILE...` runs only those files (in the same lanes).
 */
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const CLUSTER_CALL = /\b(startCluster|startReplicatedCluster|startLinkMesh)\(/

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

function isClusterFile(file) {
  if (file.startsWith('test/chaos/') && !file.endsWith('/checker.test.ts')) return true
  if (file.startsWith('test/integration/cluster/')) return true
  return CLUSTER_CALL.test(readFileSync(file, 'utf8'))
}

/** Runs `files` one at a time under Node's test runner; resolves with the exit code and output. */
function lane(name, files) {
  if (files.length === 0) return Promise.resolve({ name, code: 0, output: '' })
  const args = ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', '--test-timeout=900000', ...files]
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  let partial = ''
  const onData = (chunk) => {
    const text = partial + chunk
    const lines = text.split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) {
      output += `${line}\n`
      process.stdout.write(`${name} │ ${line}\n`)
    }
  }
  child.stdout.setEncoding('utf8').on('data', onData)
  child.stderr.setEncoding('utf8').on('data', onData)
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      if (partial !== '') onData('\n')
      resolve({ name, code: code ?? (signal === null ? 1 : 128), output })
    })
  })
}

/** The runner's totals (`ℹ tests 12` …) of one lane's output. */
function totals(output) {
  const t = {}
  for (const m of output.matchAll(/^ℹ (tests|pass|fail|cancelled|skipped|todo) (\d+)$/gm)) t[m[1]] = Number(m[2])
  return t
}

const requested = process.argv.slice(2)
const files = requested.length > 0 ? requested : testFiles('test')
const cluster = files.filter(isClusterFile)
const other = files.filter((f) => !isClusterFile(f))
const started = Date.now()
const results = await Promise.all([lane('cluster', cluster), lane('other  ', other)])

let failed = false
const sum = {}
for (const r of results) {
  for (const [k, v] of Object.entries(totals(r.output))) sum[k] = (sum[k] ?? 0) + v
  if (r.code !== 0) {
    failed = true
    const at = r.output.indexOf('✖ failing tests:')
    process.stdout.write(`\n== ${r.name.trim()} lane: exit code ${r.code}\n`)
    if (at >= 0) process.stdout.write(r.output.slice(at))
  }
}
const line = ['tests', 'pass', 'fail', 'cancelled', 'skipped', 'todo'].map((k) => `${k} ${sum[k] ?? 0}`).join(', ')
process.stdout.write(
  `\n== ${files.length} files (${cluster.length} in the cluster lane), ${line}, ${Math.round((Date.now() - started) / 1000)} s\n`,
)
process.exitCode = failed ? 1 : 0
