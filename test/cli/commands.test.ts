/**
 * The operator commands of `garage` (bucket, key, admin-token, status, worker, json-api…).
 *
 * - Pure parts (durations, sizes, tables, option hoisting, scopes) are tested in-process.
 * - The mapping of each command to admin API v2 calls, and the output, run the CLI as a child
 *   process (`node --import tsx lib/cli/run-dev.ts …`) against a fake admin API that records
 *   requests and answers with canned JSON, so they do not depend on the server side.
 * - Connection failures run against a closed port and a node with another token.
 * - End-to-end tests run against a real node with `[admin]` set.
 */

import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { applyScopeChange } from '../../lib/cli/commands/admin-token.ts'
import { abbreviateList, formatAgo, formatBytes, formatSize, formatTable } from '../../lib/cli/_format.ts'
import { parseCount, parseDuration, parseSize } from '../../lib/cli/_parse.ts'
import { parseAdminAddr } from '../../lib/cli/admin-client.ts'
import { hoistConfigOption, main } from '../../lib/cli/main.ts'
import { closestOption, editDistance, findUnknownOption, kStrict, unknownOptionMessage } from '../../lib/cli/_strict.ts'
import type { ArgsDef, CommandDef, Resolvable } from 'citty'
import { startTestNode, type TestNode } from '../../lib/testing.ts'
import { type CliResult, garage } from '../helpers/cli.ts'

const textLines = (s: string): string[] => s.split('\n').filter((l) => l.trim() !== '')

function expectOk(r: CliResult, what: string): void {
  assert.equal(r.code, 0, `${what}: exit code 0; output:\n${r.stdout}\n${r.stderr}`)
}

/** A failure: exit 1, one line on stderr matching `re`, no stack trace. */
function expectOneLineError(r: CliResult, re: RegExp): void {
  assert.equal(r.code, 1, `exit code 1; output:\n${r.stdout}\n${r.stderr}`)
  const lines = textLines(r.stderr)
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`)
  assert.match(lines[0] ?? '', re)
  assert.ok(!r.stderr.includes('    at '), 'no stack trace')
}

// ---------------------------------------------------------------------------------------------
// Pure parts

describe('parseDuration', () => {
  test('accepts Garage-style durations and returns seconds', () => {
    const cases: [string, number][] = [
      ['30d', 30 * 86_400],
      ['1h30m', 5400],
      ['1h 30m', 5400],
      ['90', 90],
      ['90s', 90],
      ['1.5h', 5400],
      ['2 days 3 hours', 2 * 86_400 + 3 * 3600],
      ['1w', 604_800],
      ['500ms', 0.5],
      ['10min', 600],
      ['1h, 30m', 5400],
      ['2 DAYS', 2 * 86_400],
      ['1mo', 2_629_746],
      ['1y', 31_556_952],
      ['0', 0],
      ['1000us', 0.001],
    ]
    for (const [text, secs] of cases) assert.equal(parseDuration(text), secs, text)
  })

  test('rejects garbage with a message naming the value', () => {
    for (const bad of ['', '  ', 'abc', '10 parsecs', '1h-30m', 'd', '-1h', '1e3']) {
      assert.throws(() => parseDuration(bad), /invalid duration/, bad)
    }
  })
})

describe('parseSize', () => {
  test('binary and decimal units, case-insensitive, bare bytes', () => {
    const cases: [string, number][] = [
      ['10GiB', 10 * 2 ** 30],
      ['10GB', 10e9],
      ['10G', 10e9],
      ['1.5 MiB', 1.5 * 2 ** 20],
      ['500mb', 500e6],
      ['1024', 1024],
      ['1KiB', 1024],
      ['2t', 2e12],
      ['0', 0],
    ]
    for (const [text, bytes] of cases) assert.equal(parseSize(text), bytes, text)
  })

  test('rejects unknown units and negative numbers', () => {
    for (const bad of ['10XB', '-1G', 'GiB', '', '1e3']) assert.throws(() => parseSize(bad), /invalid size/, bad)
  })

  test('parseCount takes non-negative integers only', () => {
    assert.equal(parseCount('42', 'n'), 42)
    assert.throws(() => parseCount('4.2', 'n'), /invalid n/)
    assert.throws(() => parseCount('-1', 'n'), /invalid n/)
  })
})

describe('output formatting', () => {
  test('formatTable aligns tab-separated columns with two spaces and no trailing blanks', () => {
    const out = formatTable(['ID\tName\tAliases', 'abc\tx\t', '0123456789\tlonger name\ta, ... (2)'])
    assert.equal(out, ['ID          Name         Aliases', 'abc         x', '0123456789  longer name  a, ... (2)'].join('\n'))
  })

  test('formatTable accepts arrays of cells and counts code points, not bytes', () => {
    assert.equal(
      formatTable([
        ['é', 'b'],
        ['aa', 'c'],
      ]),
      'é   b\naa  c',
    )
  })

  test('sizes in binary and decimal units, as Garage prints them', () => {
    assert.equal(formatBytes(0), '0 B')
    assert.equal(formatBytes(1023), '1023 B')
    assert.equal(formatBytes(10 * 2 ** 30), '10.0 GiB')
    assert.equal(formatBytes(10 * 2 ** 30, false), '10.7 GB')
    assert.equal(formatSize(1536), '1.5 KiB (1.5 kB)')
  })

  test('abbreviated lists and relative times', () => {
    assert.equal(abbreviateList([]), '')
    assert.equal(abbreviateList(['a']), 'a')
    assert.equal(abbreviateList(['a', 'b', 'c']), 'a, ... (3)')
    assert.equal(formatAgo(0), 'now')
    assert.equal(formatAgo(1), '1 second ago')
    assert.equal(formatAgo(7200), '2 hours ago')
  })
})

describe('command line plumbing', () => {
  test('global options before the command move after it, for any depth', () => {
    assert.deepEqual(hoistConfigOption(['-c', 'g.toml', 'server']), ['server', '--config', 'g.toml'])
    assert.deepEqual(hoistConfigOption(['-c', 'g.toml', '--json', 'bucket', 'info', 'b']), [
      'bucket',
      'info',
      'b',
      '--config',
      'g.toml',
      '--json',
    ])
    assert.deepEqual(hoistConfigOption(['--admin-addr=h:1', 'key', 'list']), ['key', 'list', '--admin-addr=h:1'])
    assert.deepEqual(hoistConfigOption(['bucket', 'list', '-c', 'x']), ['bucket', 'list', '-c', 'x'])
    assert.deepEqual(hoistConfigOption(['--admin-token', 't', 'json-api', 'X', '--', '-']), [
      'json-api',
      'X',
      '--admin-token',
      't',
      '--',
      '-',
    ])
  })

  test('admin addresses: host:port, [v6]:port, URLs, unix sockets, wildcards reach loopback', () => {
    assert.deepEqual(parseAdminAddr('127.0.0.1:3903'), { kind: 'tcp', protocol: 'http:', host: '127.0.0.1', port: 3903 })
    assert.deepEqual(parseAdminAddr('0.0.0.0:3903'), { kind: 'tcp', protocol: 'http:', host: '127.0.0.1', port: 3903 })
    assert.deepEqual(parseAdminAddr('[::]:3903'), { kind: 'tcp', protocol: 'http:', host: '::1', port: 3903 })
    assert.deepEqual(parseAdminAddr('http://localhost:9'), { kind: 'tcp', protocol: 'http:', host: 'localhost', port: 9 })
    assert.deepEqual(parseAdminAddr('/run/garage.sock'), { kind: 'unix', path: '/run/garage.sock' })
    assert.throws(() => parseAdminAddr('nope'), /invalid admin API address/)
    assert.throws(() => parseAdminAddr('h:70000'), /invalid admin API address/)
  })

  test('admin-token scopes: a list replaces, +A,-B edits', () => {
    assert.deepEqual(applyScopeChange(['*'], 'ListBuckets, GetBucketInfo'), ['ListBuckets', 'GetBucketInfo'])
    assert.deepEqual(applyScopeChange(['ListBuckets', 'GetKeyInfo'], '+CreateBucket,-GetKeyInfo'), [
      'ListBuckets',
      'CreateBucket',
    ])
    assert.throws(() => applyScopeChange([], '+A,B'), /invalid --scope/)
  })
})

// ---------------------------------------------------------------------------------------------
// Against a fake admin API: which endpoint each command calls, and what it prints

interface Recorded {
  method: string
  endpoint: string
  query: Record<string, string>
  body: unknown
  auth: string | undefined
}

type Reply = { status?: number; body?: unknown }
type Handler = (req: Recorded) => Reply

interface FakeAdmin {
  addr: string
  requests: Recorded[]
  /** Canned answers by endpoint name; unknown endpoints answer 404 NoSuchEndpoint. */
  handlers: Map<string, Handler>
}

const BUCKET_ID = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90'
const KEY_ID = 'GK0123456789abcdef01234567'
const NODE_ID = 'f00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeed'

function bucketInfo(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: BUCKET_ID,
    globalAliases: ['photos'],
    websiteAccess: false,
    websiteConfig: null,
    keys: [
      { accessKeyId: KEY_ID, name: 'alice', permissions: { read: true, write: true, owner: false }, bucketLocalAliases: [] },
    ],
    objects: 3,
    bytes: 10 * 2 ** 30,
    unfinishedUploads: 0,
    unfinishedMultipartUploads: 0,
    unfinishedMultipartUploadParts: 0,
    unfinishedMultipartUploadBytes: 0,
    quotas: { maxSize: null, maxObjects: null },
    ...extra,
  }
}

function keyInfo(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    accessKeyId: KEY_ID,
    name: 'alice',
    secretAccessKey: null,
    created: '2025-01-02T03:04:05Z',
    expiration: null,
    expired: false,
    permissions: { createBucket: false },
    buckets: [{ id: BUCKET_ID, globalAliases: ['photos'], localAliases: [], permissions: { read: true } }],
    ...extra,
  }
}

async function startFakeAdmin(token = 'tok'): Promise<FakeAdmin & { server: Server }> {
  const requests: Recorded[] = []
  const handlers = new Map<string, Handler>()
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x')
      const text = Buffer.concat(chunks).toString('utf8')
      const rec: Recorded = {
        method: req.method ?? '',
        endpoint: url.pathname.replace(/^\/v2\//, ''),
        query: Object.fromEntries(url.searchParams),
        body: text === '' ? undefined : JSON.parse(text),
        auth: req.headers.authorization,
      }
      requests.push(rec)
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' })
        res.end(body === undefined ? '' : JSON.stringify(body))
      }
      if (rec.auth !== `Bearer ${token}`) return send(403, { code: 'Forbidden', message: 'Invalid admin token' })
      const handler = handlers.get(rec.endpoint)
      if (handler === undefined) return send(404, { code: 'NoSuchEndpoint', message: `unknown endpoint ${rec.endpoint}` })
      const reply = handler(rec)
      send(reply.status ?? 200, reply.body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { server, addr: `127.0.0.1:${port}`, requests, handlers }
}

describe('unknown options', () => {
  const ARGS = {
    bucket: { type: 'positional' },
    key: { type: 'string', description: 'key' },
    read: { type: 'boolean' },
    write: { type: 'boolean' },
    'all-nodes': { type: 'boolean', alias: 'a' },
    quiet: { type: 'boolean', alias: 'q' },
    config: { type: 'string', alias: 'c' },
  } as const satisfies ArgsDef

  test('edit distance: Levenshtein, a swap of neighbours counting as one edit', () => {
    assert.equal(editDistance('write', 'write'), 0)
    assert.equal(editDistance('wirte', 'write'), 1)
    assert.equal(editDistance('confg', 'config'), 1)
    assert.equal(editDistance('kitten', 'sitting'), 3)
    assert.equal(editDistance('', 'abc'), 3)
  })

  test('the closest option is suggested only when it looks like a typo', () => {
    const valid = ['--read', '--write', '--owner', '--key', '--help']
    assert.equal(closestOption('--wirte', valid), '--write')
    assert.equal(closestOption('--writ=1', valid), '--write')
    assert.equal(closestOption('--ower', valid), '--owner')
    assert.equal(closestOption('--frobnicate', valid), undefined)
    assert.equal(closestOption('-x', ['-q', '--quiet']), undefined)
  })

  test('findUnknownOption: names, aliases, spellings, values and positionals', () => {
    const ok: string[][] = [
      ['b', '--read', '--key', 'k'],
      ['--key=k', 'b', '--write'],
      ['--key', '--read', 'b'], // the value of a string option may start with a dash
      ['-c', 'x', '-aq', 'b'],
      ['-cx', 'b'],
      ['--allNodes', '--all-nodes', '--no-read', 'b'],
      ['b', '-'],
      ['b', '--', '--anything', '-z'],
    ]
    for (const argv of ok) assert.equal(findUnknownOption(argv, ARGS, false), undefined, argv.join(' '))
    const bad: Array<[string[], string]> = [
      [['b', '--wirte'], '--wirte'],
      [['--read=yes', '--kye=k'], '--kye'],
      [['-x', 'b'], '-x'],
      [['-aqz', 'b'], '-z'],
      [['--no-key', 'b'], '--no-key'], // --no- only negates booleans
      [['--no-such'], '--no-such'],
    ]
    for (const [argv, flag] of bad) assert.equal(findUnknownOption(argv, ARGS, false), flag, argv.join(' '))
  })

  test('a command with subcommands checks only what comes before the subcommand name', () => {
    assert.equal(findUnknownOption(['allow', '--wirte'], {}, true), undefined)
    assert.equal(findUnknownOption(['--json', 'list'], {}, true), '--json')
  })

  test('the message names the command and the closest option, or lists the valid ones', () => {
    assert.equal(
      unknownOptionMessage('--wirte', 'garage bucket allow', ARGS),
      "unknown option '--wirte' for 'garage bucket allow': did you mean '--write'?",
    )
    assert.match(
      unknownOptionMessage('--frobnicate', 'garage x', ARGS),
      /^unknown option '--frobnicate' for 'garage x' \(valid options: --key, --read, --write, --all-nodes, -a, --quiet, -q, --config, -c, --help; see 'garage x --help'\)$/,
    )
    assert.match(unknownOptionMessage('--json', 'garage bucket', {}, true), /options go after the command name/)
    assert.match(unknownOptionMessage('--verison', 'garage', {}, true), /did you mean '--version'/)
  })

  test('every command of the CLI is wrapped, and accepts every option it defines', async () => {
    const resolve = async <T>(v: Resolvable<T>): Promise<T> =>
      typeof v === 'function' ? await (v as () => T | Promise<T>)() : await v
    const seen: string[] = []
    const visit = async (cmd: CommandDef<ArgsDef>, path: string): Promise<void> => {
      seen.push(path)
      assert.equal((cmd as { [kStrict]?: true })[kStrict], true, `${path} refuses unknown options`)
      const args = await resolve(cmd.args ?? {})
      const subs = cmd.subCommands === undefined ? {} : await resolve(cmd.subCommands)
      const group = Object.keys(subs).length > 0
      // Every defined option, in its long form (with a value when it takes one), is accepted...
      const argv = Object.entries(args).flatMap(([name, def]) =>
        def.type === 'positional' ? [] : def.type === 'boolean' ? [`--${name}`] : [`--${name}`, 'v'],
      )
      assert.equal(findUnknownOption(argv, args, group), undefined, `${path} accepts its own options`)
      // ...and anything else is not.
      assert.equal(findUnknownOption(['--no-such-option', ...argv], args, group), '--no-such-option', path)
      for (const [name, sub] of Object.entries(subs)) await visit(await resolve(sub), `${path} ${name}`)
    }
    await visit(main as CommandDef<ArgsDef>, 'garage')
    assert.ok(seen.length > 40, `all commands visited (${seen.length})`)
    assert.ok(seen.includes('garage bucket allow') && seen.includes('garage server') && seen.includes('garage layout assign'))
  })

  test('garage bucket allow --wirte: exit 1, one line naming --write, nothing sent', async () => {
    const r = await garage(['bucket', 'allow', '--wirte', 'photos', '--key', 'alice', '--admin-addr', '127.0.0.1:1'])
    expectOneLineError(r, /unknown option '--wirte' for 'garage bucket allow': did you mean '--write'\?/)
  })

  test('garage server --confg: exit 1 before anything starts', async () => {
    const r = await garage(['server', '--confg', '/nonexistent.toml'])
    expectOneLineError(r, /unknown option '--confg' for 'garage server': did you mean '--config'\?/)
  })

  test('an option before a subcommand name is refused too', async () => {
    const r = await garage(['bucket', '--wirte', 'allow', 'photos'])
    expectOneLineError(r, /unknown option '--wirte' for 'garage bucket'/)
  })
})

describe('operator commands against a fake admin API', async () => {
  const fake = await startFakeAdmin()
  after(() => new Promise<void>((resolve) => fake.server.close(() => resolve())))
  /** Run with the fake's address and token from the environment; clears recorded requests. */
  const run = (args: string[], opts: { stdin?: string } = {}) => {
    fake.requests.length = 0
    return garage(args, { env: { GARAGE_ADMIN_ADDR: fake.addr, GARAGE_ADMIN_TOKEN: 'tok' }, ...opts })
  }
  const calls = () => fake.requests.map((r) => `${r.method} ${r.endpoint}`)

  test('bucket list: GET ListBuckets, a table with short ids', async () => {
    fake.handlers.set('ListBuckets', () => ({
      body: [{ id: BUCKET_ID, globalAliases: ['photos', 'pics'], localAliases: [{ accessKeyId: KEY_ID, alias: 'mine' }] }],
    }))
    const r = await run(['bucket', 'list'])
    expectOk(r, 'bucket list')
    assert.deepEqual(calls(), ['GET ListBuckets'])
    assert.equal(fake.requests[0]?.auth, 'Bearer tok')
    const lines = textLines(r.stdout)
    assert.match(lines[0] ?? '', /^ID\s+Global aliases\s+Local aliases$/)
    assert.match(lines[1] ?? '', new RegExp(`^${BUCKET_ID.slice(0, 16)}\\s+photos, \\.\\.\\. \\(2\\)\\s+${KEY_ID}:mine$`))
  })

  test('--json prints the API answer as JSON, also when given before the command', async () => {
    const r = await run(['--json', 'bucket', 'list'])
    expectOk(r, 'bucket list --json')
    const parsed = JSON.parse(r.stdout) as { id: string }[]
    assert.equal(parsed[0]?.id, BUCKET_ID)
  })

  test('bucket info: GetBucketInfo?search=, sizes in both units, keys with RWO flags', async () => {
    fake.handlers.set('GetBucketInfo', () => ({ body: bucketInfo() }))
    const r = await run(['bucket', 'info', 'photos'])
    expectOk(r, 'bucket info')
    assert.deepEqual(fake.requests[0]?.query, { search: 'photos' })
    assert.match(r.stdout, /==== BUCKET INFORMATION ====/)
    assert.match(r.stdout, new RegExp(`Bucket:\\s+${BUCKET_ID}`))
    assert.match(r.stdout, /Size:\s+10\.0 GiB \(10\.7 GB\)/)
    assert.match(r.stdout, /Global alias:\s+photos/)
    assert.match(r.stdout, new RegExp(`RW \\s+${KEY_ID}\\s+alice`))
  })

  test('bucket create: POST CreateBucket {globalAlias}', async () => {
    fake.handlers.set('CreateBucket', () => ({ body: bucketInfo() }))
    const r = await run(['bucket', 'create', 'photos'])
    expectOk(r, 'bucket create')
    assert.deepEqual(calls(), ['POST CreateBucket'])
    assert.deepEqual(fake.requests[0]?.body, { globalAlias: 'photos' })
  })

  test('bucket delete needs --yes, then POST DeleteBucket?id=', async () => {
    fake.handlers.set('GetBucketInfo', () => ({ body: bucketInfo() }))
    fake.handlers.set('DeleteBucket', () => ({}))
    const refused = await run(['bucket', 'delete', 'photos'])
    expectOneLineError(refused, /Add --yes flag/)
    assert.deepEqual(calls(), ['GET GetBucketInfo'])
    const r = await run(['bucket', 'delete', 'photos', '--yes'])
    expectOk(r, 'bucket delete --yes')
    assert.deepEqual(calls(), ['GET GetBucketInfo', 'POST DeleteBucket'])
    assert.deepEqual(fake.requests[1]?.query, { id: BUCKET_ID })
    assert.match(r.stdout, /has been deleted/)
  })

  test('bucket allow: looks up bucket and key, POST AllowBucketKey with the flags', async () => {
    fake.handlers.set('GetBucketInfo', () => ({ body: bucketInfo() }))
    fake.handlers.set('GetKeyInfo', () => ({ body: keyInfo() }))
    fake.handlers.set('AllowBucketKey', () => ({ body: bucketInfo() }))
    const r = await run(['bucket', 'allow', '--read', '--owner', 'photos', '--key', 'alice'])
    expectOk(r, 'bucket allow')
    assert.deepEqual(calls(), ['GET GetBucketInfo', 'GET GetKeyInfo', 'POST AllowBucketKey'])
    assert.deepEqual(fake.requests[1]?.query, { search: 'alice' })
    assert.deepEqual(fake.requests[2]?.body, {
      bucketId: BUCKET_ID,
      accessKeyId: KEY_ID,
      permissions: { read: true, write: false, owner: true },
    })
  })

  test('bucket alias --local: AddBucketAlias with the key id', async () => {
    fake.handlers.set('AddBucketAlias', () => ({ body: bucketInfo() }))
    const r = await run(['bucket', 'alias', 'photos', 'mine', '--local', 'alice'])
    expectOk(r, 'bucket alias --local')
    assert.deepEqual(fake.requests.at(-1)?.body, { bucketId: BUCKET_ID, localAlias: 'mine', accessKeyId: KEY_ID })
  })

  test('bucket website --allow: UpdateBucket websiteAccess with index and error documents', async () => {
    fake.handlers.set('UpdateBucket', () => ({ body: bucketInfo({ websiteAccess: true }) }))
    const r = await run(['bucket', 'website', '--allow', 'photos', '-e', 'err.html'])
    expectOk(r, 'bucket website')
    assert.deepEqual(fake.requests.at(-1)?.query, { id: BUCKET_ID })
    assert.deepEqual(fake.requests.at(-1)?.body, {
      websiteAccess: { enabled: true, indexDocument: 'index.html', errorDocument: 'err.html' },
    })
    expectOneLineError(await run(['bucket', 'website', 'photos']), /exactly one flag, either --allow or --deny/)
  })

  test('bucket set-quotas: sizes parsed, the other quota kept', async () => {
    fake.handlers.set('GetBucketInfo', () => ({ body: bucketInfo({ quotas: { maxSize: null, maxObjects: 7 } }) }))
    const r = await run(['bucket', 'set-quotas', 'photos', '--max-size', '10GiB'])
    expectOk(r, 'set-quotas')
    assert.deepEqual(fake.requests.at(-1)?.body, { quotas: { maxSize: 10 * 2 ** 30, maxObjects: 7 } })
    const bad = await run(['bucket', 'set-quotas', 'photos', '--max-size', '10 parsecs'])
    expectOneLineError(bad, /invalid size '10 parsecs'/)
    assert.deepEqual(calls(), [], 'a bad size sends nothing')
  })

  test('bucket cleanup-incomplete-uploads: one call per bucket with olderThanSecs', async () => {
    fake.handlers.set('CleanupIncompleteUploads', () => ({ body: { uploadsDeleted: 2 } }))
    const r = await run(['bucket', 'cleanup-incomplete-uploads', '--older-than', '1h30m', 'photos', 'other'])
    expectOk(r, 'cleanup')
    assert.deepEqual(calls(), [
      'GET GetBucketInfo',
      'POST CleanupIncompleteUploads',
      'GET GetBucketInfo',
      'POST CleanupIncompleteUploads',
    ])
    assert.deepEqual(fake.requests[1]?.body, { bucketId: BUCKET_ID, olderThanSecs: 5400 })
    assert.match(r.stdout, /2 uploads deleted/)
  })

  test('key create: POST CreateKey with name and an RFC 3339 expiration', async () => {
    fake.handlers.set('CreateKey', () => ({ body: keyInfo({ secretAccessKey: 'sekrit' }) }))
    const before = Date.now()
    const r = await run(['key', 'create', 'alice', '--expires-in', '30d'])
    expectOk(r, 'key create')
    const body = fake.requests[0]?.body as { name: string; expiration: string }
    assert.equal(body.name, 'alice')
    const exp = Date.parse(body.expiration)
    assert.ok(Math.abs(exp - before - 30 * 86_400_000) < 60_000, `expiration ~30 days from now, got ${body.expiration}`)
    assert.match(r.stdout, /Secret key:\s+sekrit/)
  })

  test('key info --show-secret: GetKeyInfo?search=&showSecretKey=true', async () => {
    const r = await run(['key', 'info', 'alice', '--show-secret'])
    expectOk(r, 'key info')
    assert.deepEqual(fake.requests[0]?.query, { search: 'alice', showSecretKey: 'true' })
    assert.match(r.stdout, /==== BUCKETS FOR THIS KEY ====/)
  })

  test('key allow --create-bucket: UpdateKey {allow: {createBucket: true}}', async () => {
    fake.handlers.set('UpdateKey', () => ({ body: keyInfo({ permissions: { createBucket: true } }) }))
    const r = await run(['key', 'allow', '--create-bucket', 'alice'])
    expectOk(r, 'key allow')
    assert.deepEqual(fake.requests.at(-1)?.query, { id: KEY_ID })
    assert.deepEqual(fake.requests.at(-1)?.body, { allow: { createBucket: true } })
    assert.match(r.stdout, /Can create buckets:\s+true/)
  })

  test('key import refuses without --yes, before any request', async () => {
    const r = await run(['key', 'import', KEY_ID, 'secret'])
    expectOneLineError(r, /re-import keys/)
    assert.deepEqual(calls(), [])
  })

  test('admin-token create -q prints only the secret', async () => {
    fake.handlers.set('CreateAdminToken', () => ({
      body: { id: 'abc', name: 'ci', expired: false, scope: ['ListBuckets'], secretToken: 'abc.SECRET' },
    }))
    const r = await run(['admin-token', 'create', 'ci', '--scope', 'ListBuckets', '-q'])
    expectOk(r, 'admin-token create')
    assert.equal(r.stdout, 'abc.SECRET\n')
    assert.deepEqual(fake.requests[0]?.body, { name: 'ci', scope: ['ListBuckets'] })
  })

  test('status: GetClusterStatus, tolerating a 501 GetClusterLayout', async () => {
    fake.handlers.set('GetClusterStatus', () => ({
      body: {
        layoutVersion: 1,
        nodes: [
          {
            id: NODE_ID,
            hostname: 'box',
            addr: '10.0.0.1:3901',
            isUp: true,
            draining: false,
            role: { zone: 'dc1', capacity: 1e12, tags: ['a'] },
            dataPartition: { available: 5e11, total: 1e12 },
          },
        ],
      },
    }))
    fake.handlers.set('GetClusterLayout', () => ({ status: 501, body: { code: 'NotImplemented', message: 'later' } }))
    const r = await run(['status'])
    expectOk(r, 'status')
    assert.match(r.stdout, /==== HEALTHY NODES ====/)
    assert.match(
      r.stdout,
      new RegExp(
        `${NODE_ID.slice(0, 16)}\\s+box\\s+10\\.0\\.0\\.1:3901\\s+\\[a\\]\\s+dc1\\s+1\\.0 TB\\s+500\\.0 GB \\(50\\.0%\\)`,
      ),
    )
  })

  test('node id: <node id>@<rpc address> from GetNodeInfo and GetClusterStatus', async () => {
    fake.handlers.set('GetNodeInfo', () => ({
      body: { success: { [NODE_ID]: { nodeId: NODE_ID, garageVersion: '0.1.0', dbEngine: 'lmdb' } }, error: {} },
    }))
    const r = await run(['node', 'id', '-q'])
    expectOk(r, 'node id')
    assert.equal(r.stdout, `${NODE_ID}@10.0.0.1:3901\n`)
    assert.deepEqual(fake.requests[0]?.query, { node: 'self' })
  })

  test('worker list and set: per-node endpoints with node=self', async () => {
    fake.handlers.set('ListWorkers', () => ({
      body: {
        success: {
          [NODE_ID]: [
            { id: 2, name: 'gc', state: 'idle', errors: 0, consecutiveErrors: 0, freeform: [] },
            { id: 1, name: 'resync', state: 'busy', errors: 3, consecutiveErrors: 1, queueLength: 5, freeform: [] },
          ],
        },
        error: {},
      },
    }))
    const r = await run(['worker', 'list'])
    expectOk(r, 'worker list')
    assert.deepEqual(fake.requests[0]?.query, { node: 'self' })
    assert.deepEqual(fake.requests[0]?.body, { busyOnly: false, errorOnly: false })
    const lines = textLines(r.stdout)
    assert.match(lines[1] ?? '', /^1\s+Busy\s+resync\s+-\s+-\s+5\s+3\s+1$/)
    assert.match(lines[2] ?? '', /^2\s+Idle\s+gc/)

    fake.handlers.set('SetWorkerVariable', (req) => ({
      body: { success: { [NODE_ID]: req.body }, error: {} },
    }))
    const set = await run(['worker', 'set', '-a', 'resync-tranquility', '4'])
    expectOk(set, 'worker set')
    assert.deepEqual(fake.requests[0]?.query, { node: '*' })
    assert.deepEqual(fake.requests[0]?.body, { variable: 'resync-tranquility', value: '4' })
    assert.match(set.stdout, /resync-tranquility\s+4/)
  })

  test('json-api: query fields go to the query string, the rest (or body) to the body; - reads stdin', async () => {
    const r = await run(['json-api', 'GetBucketInfo', '{"search":"photos"}'])
    expectOk(r, 'json-api GetBucketInfo')
    assert.deepEqual(fake.requests[0]?.query, { search: 'photos' })
    assert.equal((JSON.parse(r.stdout) as { id: string }).id, BUCKET_ID)

    fake.handlers.set('UpdateBucket', (req) => ({ body: req.body }))
    const u = await run(['json-api', 'UpdateBucket', '-'], {
      stdin: JSON.stringify({ id: BUCKET_ID, body: { quotas: { maxSize: 1 } } }),
    })
    expectOk(u, 'json-api UpdateBucket')
    assert.deepEqual(fake.requests[0]?.query, { id: BUCKET_ID })
    assert.deepEqual(fake.requests[0]?.body, { quotas: { maxSize: 1 } })

    expectOneLineError(await run(['json-api', 'GetBucketInfo', '{nope']), /invalid JSON request/)
  })

  test('API errors are one line with the endpoint, code, status and message', async () => {
    fake.handlers.set('GetBucketInfo', () => ({
      status: 404,
      body: { code: 'NoSuchBucket', message: 'Bucket not found: nope' },
    }))
    const r = await run(['bucket', 'info', 'nope'])
    expectOneLineError(r, /GetBucketInfo returned NoSuchBucket \(404\): Bucket not found: nope/)
  })

  test('a wrong token prints the API message and where to set the token', async () => {
    const r = await garage(['bucket', 'list', '--admin-addr', fake.addr, '--admin-token', 'wrong'])
    expectOneLineError(r, /ListBuckets returned Forbidden \(403\): Invalid admin token .*--admin-token/)
  })

  test('repair without --yes fails with a clear message and sends nothing', async () => {
    // The repair and block commands against a real node: test/cli/block-repair.test.ts.
    expectOneLineError(await run(['repair', 'tables']), /Please add --yes to start the repair operation/)
    assert.deepEqual(calls(), [], 'nothing sent')
  })
})

// ---------------------------------------------------------------------------------------------
// Connection problems

describe('connection errors', () => {
  test('a closed port: one line naming the address and the likely cause', async () => {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as AddressInfo
    await new Promise<void>((resolve) => server.close(() => resolve()))
    const r = await garage(['status', '--admin-addr', `127.0.0.1:${port}`])
    expectOneLineError(
      r,
      new RegExp(
        `cannot reach the admin API at http://127\\.0\\.0\\.1:${port}: connection refused — is .?garage server.? running`,
      ),
    )
  })

  test('no address anywhere: says how to give one', async () => {
    const r = await garage(['key', 'list'], { env: { GARAGE_CONFIG_FILE: '' } })
    // /etc/garage.toml may exist on a dev machine; only check the clean failure when it does not.
    if (r.stderr.includes('no admin API address')) expectOneLineError(r, /--admin-addr/)
    else assert.notEqual(r.code, null, 'the command finished')
  })

  test('a config file without [admin] api_bind_addr is reported', async (t) => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises')
    const { tmpdir } = await import('node:os')
    const dir = await mkdtemp(join(tmpdir(), 'garage-cli-'))
    t.after(() => rm(dir, { recursive: true, force: true }))
    const file = join(dir, 'garage.toml')
    await writeFile(file, 'metadata_dir = "meta"\n')
    expectOneLineError(await garage(['-c', file, 'bucket', 'list']), /has no \[admin\] api_bind_addr/)
  })
})

// ---------------------------------------------------------------------------------------------
// End to end, against a real node

let real: { node: TestNode; endpoint: string } | undefined

describe('operator commands against a real node', () => {
  before(async () => {
    const node = await startTestNode({ admin: { api_bind_addr: '127.0.0.1:0', admin_token: 'tok' } })
    const endpoint = node.node.adminEndpoint
    assert.ok(endpoint !== undefined, 'the node serves the admin API')
    real = { node, endpoint }
  })
  after(() => real?.node.close())
  const run = (...args: string[]) => garage(args, { env: { GARAGE_ADMIN_ADDR: real?.endpoint ?? '', GARAGE_ADMIN_TOKEN: 'tok' } })

  test('bucket create, info, list, allow, delete', async () => {
    expectOk(await run('bucket', 'create', 'cli-bucket'), 'bucket create')
    const info = await run('bucket', 'info', 'cli-bucket', '--json')
    expectOk(info, 'bucket info')
    const b = JSON.parse(info.stdout) as { id: string; globalAliases: string[] }
    assert.deepEqual(b.globalAliases, ['cli-bucket'])
    const list = await run('bucket', 'list')
    expectOk(list, 'bucket list')
    assert.match(list.stdout, /cli-bucket/)
    const key = real?.node.key.accessKeyId ?? ''
    const allow = await run('bucket', 'allow', '--read', 'cli-bucket', '--key', key)
    expectOk(allow, 'bucket allow')
    assert.match(allow.stdout, new RegExp(`R  \\s+${key}`))
    expectOneLineError(await run('bucket', 'delete', 'cli-bucket'), /Add --yes flag/)
    expectOk(await run('bucket', 'delete', 'cli-bucket', '--yes'), 'bucket delete')
    expectOneLineError(await run('bucket', 'info', 'cli-bucket'), /GetBucketInfo returned/)
  })

  test('key create, rename, info, delete', async () => {
    const created = await run('key', 'create', 'cli-key', '--json')
    expectOk(created, 'key create')
    const k = JSON.parse(created.stdout) as { accessKeyId: string; secretAccessKey: string }
    assert.match(k.accessKeyId, /^GK/)
    expectOk(await run('key', 'rename', k.accessKeyId, 'renamed'), 'key rename')
    const info = await run('key', 'info', 'renamed')
    expectOk(info, 'key info')
    assert.match(info.stdout, /Key name:\s+renamed/)
    assert.match(info.stdout, /Secret key:\s+\(redacted\)/)
    expectOk(await run('key', 'delete', k.accessKeyId, '--yes'), 'key delete')
  })

  test('status and node id', async () => {
    const status = await run('status')
    expectOk(status, 'status')
    assert.match(status.stdout, /HEALTHY NODES/)
    const id = await run('node', 'id', '-q')
    expectOk(id, 'node id')
    assert.match(id.stdout, /^[0-9a-f]{64}(@\S+)?\n$/)
  })

  test('a node with another token refuses', async () => {
    const r = await garage(['bucket', 'list'], { env: { GARAGE_ADMIN_ADDR: real?.endpoint ?? '', GARAGE_ADMIN_TOKEN: 'nope' } })
    assert.equal(r.code, 1, `exit 1; output:\n${r.stdout}\n${r.stderr}`)
    assert.match(r.stderr, /ListBuckets returned \S+ \(40[13]\)/)
  })
})
