/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`, e.g. `BENCH_CPU_PROF=dir npm run bench`):
 * the functions with the most self time and the most inclusive time, in ms.
 * Usage: `node --import tsx bench/cpuprofile-top.ts <file.cpuprofile | dir> [count] [last-seconds] [skip-seconds]`;
 * with `last-seconds`, only the samples of the profile's last seconds (a scenario that ran just
 * before the process stopped, without the start-up's module loading); with `skip-seconds` too,
 * the window ends that many seconds before the end (an earlier scenario: `… 60 8 24` is the
 * third-last 8 s).
 */

import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

const arg = process.argv[2]
if (arg === undefined) throw new Error('usage: cpuprofile-top.ts <file.cpuprofile | dir> [count]')
const count = Number(process.argv[3] ?? 30)
const file = statSync(arg).isDirectory()
  ? join(arg, readdirSync(arg).find((f) => f.endsWith('.cpuprofile')) ?? 'missing.cpuprofile')
  : arg
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile

const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const parent = new Map<number, number>()
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const label = (n: ProfileNode): string =>
  `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/.*\/(lib|node_modules)\//, '$1/')}:${n.callFrame.lineNumber + 1}`

const skipUs = Number(process.argv[5] ?? 0) * 1e6
const lastUs = process.argv[4] === undefined ? Number.POSITIVE_INFINITY : Number(process.argv[4]) * 1e6 + skipUs
const span = profile.timeDeltas.reduce((a, d) => a + d, 0)
let at = 0
const selfById = new Map<number, number>()
for (let i = 0; i < profile.samples.length; i++) {
  at += profile.timeDeltas[i] ?? 0
  if (span - at > lastUs || span - at < skipUs) continue
  const id = profile.samples[i] as number
  selfById.set(id, (selfById.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
}
const self = new Map<string, number>()
const inclusive = new Map<string, number>()
let total = 0
for (const [id, us] of selfById) {
  total += us
  const node = byId.get(id) as ProfileNode
  self.set(label(node), (self.get(label(node)) ?? 0) + us)
  const seen = new Set<string>()
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const l = label(byId.get(cur) as ProfileNode)
    if (seen.has(l)) continue // recursion: count once
    seen.add(l)
    inclusive.set(l, (inclusive.get(l) ?? 0) + us)
  }
}

const top = (m: Map<string, number>): string =>
  [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([l, us]) => `${(us / 1000).toFixed(0).padStart(8)}  ${l}`)
    .join('\n')
process.stdout.write(
  `${file}: ${(total / 1000).toFixed(0)} ms sampled\n--- self\n${top(self)}\n--- inclusive\n${top(inclusive)}\n`,
)
