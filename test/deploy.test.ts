/**
 * deploy/: checked without a Docker engine or a running systemd. The Dockerfile is read
 * instruction by instruction and held to what its build and run need (stages, sources that
 * exist and are not ignored, a non-root user, the volumes, a health check that compiles, a
 * command whose flags `garage server` knows); the systemd unit goes through `systemd-analyze
 * verify` when it is installed (unknown keys are errors) and keeps its hardening; the example
 * garage.toml resolves with no warning.
 */

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { promisify } from 'node:util'
import { Script } from 'node:vm'
import { serverCommand } from '../lib/cli/commands/server.ts'
import { parseConfigToml, resolveConfig } from '../lib/index.ts'
import { binary } from './helpers/clients.ts'
import { ROOT } from './helpers/package.ts'

const run = promisify(execFile)
const DEPLOY = join(ROOT, 'deploy')

interface Instruction {
  op: string
  args: string
  line: number
}

/** Dockerfile instructions: comments dropped, `\` continuations joined. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    let line = (lines[i] as string).trim()
    const start = i + 1
    if (line === '' || line.startsWith('#')) continue
    while (line.endsWith('\\') && i + 1 < lines.length) {
      i++
      line = `${line.slice(0, -1).trim()} ${(lines[i] as string).trim()}`
    }
    const m = /^(\S+)\s*(.*)$/.exec(line) as RegExpExecArray
    out.push({ op: (m[1] as string).toUpperCase(), args: m[2] as string, line: start })
  }
  return out
}

/** The stages of a Dockerfile: name (or index) → its instructions. */
function stages(ins: Instruction[]): Array<{ name: string; from: string; body: Instruction[] }> {
  const out: Array<{ name: string; from: string; body: Instruction[] }> = []
  for (const i of ins) {
    if (i.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(i.args) as RegExpExecArray
      out.push({ name: m[2] ?? String(out.length), from: m[1] as string, body: [] })
    } else out.at(-1)?.body.push(i)
  }
  return out
}

describe('deploy/Dockerfile', () => {
  const text = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8')
  const ins = parseDockerfile(text)
  const all = stages(ins)
  const build = all.find((s) => s.name === 'build')
  const runtime = all.at(-1)
  const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))

  test('is multi-stage: a build stage that builds and prunes, a runtime stage that copies its output', () => {
    assert.ok(all.length >= 2 && build !== undefined && runtime !== undefined && runtime !== build)
    const runs = build.body.filter((i) => i.op === 'RUN').map((i) => i.args)
    assert.ok(
      runs.some((r) => r.includes('npm ci')),
      'npm ci in the build stage',
    )
    assert.ok(
      runs.some((r) => r.includes('npm run build') && r.includes('npm prune --omit=dev')),
      'build, then drop dev dependencies',
    )
    const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts
    assert.ok(scripts.build !== undefined)
    const fromBuild = runtime.body.filter((i) => i.op === 'COPY' && i.args.startsWith('--from=build'))
    const copied = fromBuild.map((i) => i.args.split(/\s+/)[1])
    for (const need of ['/src/dist', '/src/node_modules', '/src/bin', '/src/package.json']) {
      assert.ok(copied.includes(need), `runtime copies ${need} from the build stage`)
    }
  })

  test('copies only files that exist and that .dockerignore lets through', () => {
    for (const i of ins.filter((x) => x.op === 'COPY' && !x.args.startsWith('--from'))) {
      const parts = i.args.split(/\s+/).filter((p) => !p.startsWith('--'))
      for (const src of parts.slice(0, -1)) {
        assert.ok(existsSync(join(ROOT, src)), `line ${i.line}: ${src} exists`)
        assert.ok(!ignored.includes(src), `line ${i.line}: ${src} is not in .dockerignore`)
      }
    }
    // What the build stage needs to run `npm run build`.
    const copiedToBuild = (build?.body ?? []).filter((i) => i.op === 'COPY').flatMap((i) => i.args.split(/\s+/).slice(0, -1))
    for (const need of ['package.json', 'package-lock.json', 'tsdown.config.ts', 'scripts', 'lib', 'bin']) {
      assert.ok(copiedToBuild.includes(need), `the build stage gets ${need}`)
    }
  })

  test('runs as a non-root user, with the state in volumes under /var/lib/garage and a health check', () => {
    const body = runtime?.body ?? []
    const user = body.filter((i) => i.op === 'USER').at(-1)
    assert.ok(user !== undefined && !['root', '0', '0:0'].includes(user.args), 'a non-root USER')
    const entry = body.findIndex((i) => i.op === 'ENTRYPOINT')
    assert.ok(body.indexOf(user) < entry, 'USER comes before ENTRYPOINT')
    const volume = body.find((i) => i.op === 'VOLUME')
    assert.deepEqual(JSON.parse(volume?.args ?? '[]'), ['/var/lib/garage/meta', '/var/lib/garage/data'])
    assert.ok(
      body.some((i) => i.op === 'RUN' && /chown -R node:node \/var\/lib\/garage/.test(i.args)),
      'the volumes belong to that user',
    )
    const health = body.find((i) => i.op === 'HEALTHCHECK')
    assert.ok(health !== undefined)
    const cmd = JSON.parse(health.args.slice(health.args.indexOf('CMD') + 3).trim()) as string[]
    assert.equal(cmd[0], 'node')
    assert.equal(cmd[1], '-e')
    // The script compiles.
    new Script(cmd[2] as string)
    assert.match(cmd[2] as string, /127\.0\.0\.1:3903\/health/)
  })

  test('the entry point is the installed CLI and the default command uses flags `garage server` has', () => {
    const body = runtime?.body ?? []
    const entry = JSON.parse(body.find((i) => i.op === 'ENTRYPOINT')?.args ?? '[]') as string[]
    assert.deepEqual(entry, ['node', '/app/bin/garage.js'])
    const cmd = JSON.parse(body.find((i) => i.op === 'CMD')?.args ?? '[]') as string[]
    assert.equal(cmd[0], 'server')
    const known = Object.keys(serverCommand.args ?? {}).map((n) => `--${n}`)
    for (const flag of cmd.filter((a) => a.startsWith('--'))) assert.ok(known.includes(flag), `garage server ${flag}`)
    assert.deepEqual(
      cmd.slice(cmd.indexOf('--data-dir'), cmd.indexOf('--data-dir') + 2),
      ['--data-dir', '/var/lib/garage'],
      'meta and data land in the two volumes',
    )
  })
})

describe('deploy/garage.service', () => {
  const unit = readFileSync(join(DEPLOY, 'garage.service'), 'utf8')
  const keys = new Map<string, string[]>()
  for (const line of unit.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim())
    if (m !== null) keys.set(m[1] as string, [...(keys.get(m[1] as string) ?? []), m[2] as string])
  }

  test('runs garage server on /etc/garage.toml with its state in /var/lib/garage', () => {
    assert.match(keys.get('ExecStart')?.[0] ?? '', /garage server -c \/etc\/garage\.toml$/)
    assert.deepEqual(keys.get('StateDirectory'), ['garage'])
    assert.deepEqual(keys.get('DynamicUser'), ['yes'])
  })

  test('is hardened, without the option that would break V8', () => {
    for (const [k, v] of [
      ['NoNewPrivileges', 'yes'],
      ['ProtectSystem', 'strict'],
      ['ProtectHome', 'yes'],
      ['PrivateTmp', 'yes'],
      ['PrivateDevices', 'yes'],
      ['RestrictAddressFamilies', 'AF_UNIX AF_INET AF_INET6'],
      ['CapabilityBoundingSet', ''],
      ['SystemCallArchitectures', 'native'],
    ]) {
      assert.ok(keys.get(k as string)?.includes(v as string), `${k}=${v}`)
    }
    // V8's JIT writes executable pages: MemoryDenyWriteExecute=yes kills node at start.
    assert.equal(keys.get('MemoryDenyWriteExecute'), undefined)
    // Secrets reach the dynamic user through credentials, in the variables garage reads.
    assert.ok(keys.get('Environment')?.includes('GARAGE_RPC_SECRET_FILE=%d/rpc_secret'))
  })

  test('systemd-analyze verify finds nothing to say', {
    skip: binary('systemd-analyze') === undefined ? 'systemd-analyze is not installed' : false,
  }, async () => {
    const { stdout, stderr } = await run(binary('systemd-analyze') as string, ['verify', join(DEPLOY, 'garage.service')])
    assert.equal(`${stdout}${stderr}`.trim(), '')
  })
})

describe('deploy/garage.toml', () => {
  test('a 3-zone cluster node: resolves with no warning once its placeholders are filled in', () => {
    const text = readFileSync(join(DEPLOY, 'garage.toml'), 'utf8')
      .replaceAll('<node2-id>', 'a'.repeat(64))
      .replaceAll('<node3-id>', 'b'.repeat(64))
    const { config, warnings } = resolveConfig(parseConfigToml(text, 'deploy/garage.toml'), {
      // The secret files are on the real node; the environment, which wins, stands in for them.
      env: { GARAGE_RPC_SECRET: 'c'.repeat(64), GARAGE_ADMIN_TOKEN: 'admin', GARAGE_METRICS_TOKEN: 'metrics' },
    })
    assert.deepEqual(warnings, [])
    assert.equal(config.replicationFactor, 3)
    assert.equal(config.metadataDir, '/var/lib/garage/meta')
    assert.equal(config.bootstrapPeers.length, 2)
    assert.ok(config.s3Web !== undefined)
  })
})
