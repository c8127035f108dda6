import assert from 'node:assert/strict'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import type { GarageConfig } from '../../lib/util/config.ts'
import {
  formatBindAddr,
  parseByteSize,
  parseConfigToml,
  parseDurationString,
  readConfigFile,
  resolveConfig,
} from '../../lib/util/config.ts'
import { InvalidConfigError, isGarageError } from '../../lib/util/errors.ts'

const FIXTURES = fileURLToPath(new URL('../fixtures/config/', import.meta.url))
const SECRET = '4425f5c26c5e11581d3223904324dcb5b5d5dfb14e5e7f35e38c595424f5f1e6'
const NO_ENV = { env: {} }

/** Resolve with no environment, as every test here should be independent of the caller's. */
const resolveQuiet = (input: unknown, env: Record<string, string> = {}) =>
  resolveConfig(input as GarageConfig, { env, baseDir: '/srv/garage' })

function assertConfigError(fn: () => unknown, key: string, message?: RegExp): InvalidConfigError {
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  assert.ok(caught instanceof InvalidConfigError, `expected an InvalidConfigError for '${key}', got ${String(caught)}`)
  assert.equal(caught.key, key)
  assert.equal(caught.code, 'GARAGE_ERR_INVALID_CONFIG')
  assert.ok(isGarageError(caught))
  assert.match(caught.message, new RegExp(`^invalid configuration: ${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `))
  assert.ok(!caught.message.includes('\n'), `message is one line: ${caught.message}`)
  if (message !== undefined) assert.match(caught.message, message)
  return caught
}

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'garage-config-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

describe('resolveConfig: the embedded default', () => {
  test('an empty config gives the documented defaults and no warning', () => {
    const { config, warnings } = resolveConfig({}, { env: {}, baseDir: '/srv/garage' })
    assert.deepEqual(warnings, [])
    assert.equal(config.metadataDir, '/srv/garage/garage-data/meta')
    assert.equal(config.dataDir, '/srv/garage/garage-data/data')
    assert.deepEqual(config.dataDirs, [{ path: '/srv/garage/garage-data/data', readOnly: false }])
    assert.equal(config.replicationFactor, 1)
    assert.equal(config.consistencyMode, 'consistent')
    assert.equal(config.blockSize, 1024 * 1024)
    assert.equal(config.blockGcDelayMsec, 600_000)
    assert.equal(config.metadataFsync, false)
    assert.equal(config.dataFsync, false)
    assert.equal(config.dbEngine, 'lmdb')
    assert.deepEqual(config.s3Api, {
      apiBindAddr: { host: '127.0.0.1', port: 3900 },
      s3Region: 'garage',
      minPartSize: 5 * 1024 * 1024,
    })
    assert.deepEqual(config.rpcBindAddr, { host: '::', port: 3901 })
    assert.equal(config.rpcSecret, undefined)
    assert.equal(config.s3Web, undefined)
    assert.equal(config.k2vApi, undefined)
    assert.deepEqual(config.admin, { metricsRequireToken: false, console: true })
  })

  test('relative paths resolve against process.cwd() without baseDir', () => {
    const { config } = resolveConfig({ metadata_dir: 'm', data_dir: 'd' }, NO_ENV)
    assert.equal(config.metadataDir, resolve(process.cwd(), 'm'))
    assert.equal(config.dataDir, resolve(process.cwd(), 'd'))
  })

  test('supported keys are taken as given, without warnings', () => {
    const { config, warnings } = resolveQuiet({
      metadata_dir: '/a/meta',
      data_dir: '/b/data',
      block_size: '10MiB',
      metadata_fsync: true,
      data_fsync: true,
      replication_factor: 3,
      consistency_mode: 'consistent',
      db_engine: 'lmdb',
      block_gc_delay_msec: 50,
      rpc_secret: SECRET.toUpperCase(),
      s3_api: { api_bind_addr: '[::1]:0', s3_region: 'eu-west-1', root_domain: '.s3.example.com' },
    })
    assert.deepEqual(warnings, [])
    assert.equal(config.metadataDir, '/a/meta')
    assert.equal(config.dataDir, '/b/data')
    assert.equal(config.blockSize, 10 * 1024 * 1024)
    assert.equal(config.metadataFsync, true)
    assert.equal(config.dataFsync, true)
    assert.equal(config.replicationFactor, 3)
    assert.equal(config.blockGcDelayMsec, 50)
    assert.equal(config.rpcSecret, SECRET)
    assert.deepEqual(config.s3Api, {
      apiBindAddr: { host: '::1', port: 0 },
      s3Region: 'eu-west-1',
      rootDomain: '.s3.example.com',
      minPartSize: 5 * 1024 * 1024,
    })
  })

  test('a key set to undefined counts as absent', () => {
    const { config, warnings } = resolveQuiet({ block_size: undefined, s3_web: undefined, foo: undefined })
    assert.deepEqual(warnings, [])
    assert.equal(config.blockSize, 1024 * 1024)
    assert.equal(config.s3Web, undefined)
  })
})

describe('resolveConfig: invalid values name their key', () => {
  const cases: Array<[name: string, input: unknown, key: string, message?: RegExp]> = [
    ['config not a table', 'metadata_dir = 1', '(root)', /expected a table/],
    ['metadata_dir not a string', { metadata_dir: 3 }, 'metadata_dir', /expected a non-empty directory path, got a number \(3\)/],
    ['metadata_dir empty', { metadata_dir: '' }, 'metadata_dir'],
    ['data_dir a number', { data_dir: 1 }, 'data_dir', /directory path or a list/],
    ['data_dir empty list', { data_dir: [] }, 'data_dir', /empty/],
    ['data_dir entry not a table', { data_dir: ['/x'] }, 'data_dir[0]'],
    ['data_dir entry without path', { data_dir: [{ capacity: '1T' }] }, 'data_dir[0].path', /required/],
    ['data_dir entry without capacity', { data_dir: [{ path: '/x' }] }, 'data_dir[0].capacity', /required unless read_only/],
    ['data_dir read_only with capacity', { data_dir: [{ path: '/x', read_only: true, capacity: '1T' }] }, 'data_dir[0].capacity'],
    ['data_dir all read_only', { data_dir: [{ path: '/x', read_only: true }] }, 'data_dir', /must not be read_only/],
    ['data_dir bad capacity', { data_dir: [{ path: '/x', capacity: 'lots' }] }, 'data_dir[0].capacity', /size in bytes/],
    [
      'db_engine unknown',
      { db_engine: 'rocksdb' },
      'db_engine',
      /expected "lmdb" \(the only engine of this implementation\), got a string \("rocksdb"\)/,
    ],
    [
      'db_engine sqlite',
      { db_engine: 'sqlite' },
      'db_engine',
      /"sqlite" is not supported: this implementation only has the "lmdb" engine/,
    ],
    ['db_engine sqlite3', { db_engine: 'sqlite3' }, 'db_engine', /only has the "lmdb" engine/],
    ['db_engine rusqlite', { db_engine: 'rusqlite' }, 'db_engine', /only has the "lmdb" engine/],
    ['db_engine sled', { db_engine: 'sled' }, 'db_engine', /removed/],
    ['block_size bad unit', { block_size: '1 furlong' }, 'block_size', /size in bytes/],
    ['block_size negative', { block_size: -1 }, 'block_size'],
    ['block_size fractional number', { block_size: 1.5 }, 'block_size'],
    ['block_size zero', { block_size: 0 }, 'block_size', /between 1 byte and 1 GiB/],
    ['block_size too large', { block_size: '2GiB' }, 'block_size', /between 1 byte and 1 GiB/],
    ['block_size a boolean', { block_size: true }, 'block_size', /got a boolean/],
    ['block_ram_buffer_max bad', { block_ram_buffer_max: 'x' }, 'block_ram_buffer_max'],
    ['lmdb_map_size bad', { lmdb_map_size: '1X' }, 'lmdb_map_size'],
    ['metadata_fsync a string', { metadata_fsync: 'yes' }, 'metadata_fsync', /expected true or false/],
    ['data_fsync a number', { data_fsync: 1 }, 'data_fsync', /expected true or false/],
    ['disable_scrub a string', { disable_scrub: 'no' }, 'disable_scrub'],
    [
      'metadata_auto_snapshot_interval bad',
      { metadata_auto_snapshot_interval: 'often' },
      'metadata_auto_snapshot_interval',
      /duration/,
    ],
    ['compression_level out of range', { compression_level: 23 }, 'compression_level', /-99 and 22/],
    ['compression_level bad string', { compression_level: 'max' }, 'compression_level'],
    ['replication_factor zero', { replication_factor: 0 }, 'replication_factor', /positive integer/],
    ['replication_factor fractional', { replication_factor: 1.5 }, 'replication_factor', /positive integer/],
    ['replication_factor a string', { replication_factor: '3' }, 'replication_factor', /positive integer/],
    ['consistency_mode unknown', { consistency_mode: 'strong' }, 'consistency_mode', /"consistent", "degraded" or "dangerous"/],
    ['replication_mode unknown', { replication_mode: '4' }, 'replication_mode'],
    [
      'replication_mode with replication_factor',
      { replication_mode: '3', replication_factor: 3 },
      'replication_mode',
      /together/,
    ],
    ['block_gc_delay_msec negative', { block_gc_delay_msec: -5 }, 'block_gc_delay_msec'],
    ['block_gc_delay_msec a string', { block_gc_delay_msec: '10m' }, 'block_gc_delay_msec'],
    ['rpc_secret too short', { rpc_secret: 'abcd' }, 'rpc_secret', /64 hex characters/],
    ['rpc_secret not hex', { rpc_secret: 'z'.repeat(64) }, 'rpc_secret', /64 hex characters/],
    ['rpc_secret a number', { rpc_secret: 42 }, 'rpc_secret', /expected a string/],
    [
      'rpc_secret and rpc_secret_file',
      { rpc_secret: SECRET, rpc_secret_file: '/x' },
      'rpc_secret',
      /only one of 'rpc_secret' and 'rpc_secret_file'/,
    ],
    ['rpc_secret_file missing', { rpc_secret_file: '/nonexistent/secret' }, 'rpc_secret_file', /no such file/],
    ['rpc_bind_addr bad', { rpc_bind_addr: 'nope' }, 'rpc_bind_addr', /no port/],
    ['rpc_bind_addr unix path', { rpc_bind_addr: '/run/rpc.sock' }, 'rpc_bind_addr'],
    ['rpc_public_addr bad port', { rpc_public_addr: '1.2.3.4:70000' }, 'rpc_public_addr', /between 0 and 65535/],
    ['rpc_public_addr_subnet bad', { rpc_public_addr_subnet: 'my lan' }, 'rpc_public_addr_subnet', /subnet/],
    ['rpc_timeout_msec zero', { rpc_timeout_msec: 0 }, 'rpc_timeout_msec'],
    ['rpc_bind_outgoing a string', { rpc_bind_outgoing: 'true' }, 'rpc_bind_outgoing'],
    ['bootstrap_peers not a list', { bootstrap_peers: 'peer' }, 'bootstrap_peers', /list of strings/],
    ['bootstrap_peers bad key', { bootstrap_peers: ['abc@1.2.3.4:3901'] }, 'bootstrap_peers[0]', /64 hex/],
    ['bootstrap_peers bad address', { bootstrap_peers: [`${SECRET}@[zz]:3901`] }, 'bootstrap_peers[0]', /IPv6/],
    ['allow_world_readable_secrets a string', { allow_world_readable_secrets: 'yes' }, 'allow_world_readable_secrets'],
    ['s3_api not a table', { s3_api: 'x' }, 's3_api', /expected a table/],
    ['s3_api.api_bind_addr bad port', { s3_api: { api_bind_addr: '127.0.0.1:http' } }, 's3_api.api_bind_addr', /port/],
    [
      's3_api.api_bind_addr a number',
      { s3_api: { api_bind_addr: 3900 } },
      's3_api.api_bind_addr',
      /unix socket path, got a number/,
    ],
    ['s3_api.api_bind_addr unbracketed v6', { s3_api: { api_bind_addr: '::1:3900' } }, 's3_api.api_bind_addr', /brackets/],
    ['s3_api.api_bind_addr bad v4', { s3_api: { api_bind_addr: '1.2.3:3900' } }, 's3_api.api_bind_addr', /not an IP address/],
    ['s3_api.s3_region empty', { s3_api: { s3_region: '' } }, 's3_api.s3_region', /must not be empty/],
    ['s3_api.s3_region a number', { s3_api: { s3_region: 1 } }, 's3_api.s3_region', /expected a string/],
    ['s3_api.root_domain empty', { s3_api: { root_domain: '' } }, 's3_api.root_domain'],
    ['s3_web without bind_addr', { s3_web: { root_domain: '.web' } }, 's3_web.bind_addr', /required/],
    ['s3_web without root_domain', { s3_web: { bind_addr: '[::]:3902' } }, 's3_web.root_domain', /required/],
    [
      's3_web.add_host_to_metrics a string',
      { s3_web: { bind_addr: '[::]:3902', root_domain: '.w', add_host_to_metrics: 'y' } },
      's3_web.add_host_to_metrics',
    ],
    ['k2v_api without api_bind_addr', { k2v_api: {} }, 'k2v_api.api_bind_addr', /required/],
    ['admin.api_bind_addr bad', { admin: { api_bind_addr: 'localhost' } }, 'admin.api_bind_addr'],
    ['admin.admin_token and file', { admin: { admin_token: 'a', admin_token_file: '/x' } }, 'admin.admin_token', /only one of/],
    [
      'admin.metrics_token and file',
      { admin: { metrics_token: 'a', metrics_token_file: '/x' } },
      'admin.metrics_token',
      /only one of/,
    ],
    ['admin.metrics_require_token a string', { admin: { metrics_require_token: 'yes' } }, 'admin.metrics_require_token'],
    ['admin.console a string', { admin: { console: 'no' } }, 'admin.console'],
    [
      'consul_discovery missing service_name',
      { consul_discovery: { consul_http_addr: 'http://c:8500' } },
      'consul_discovery.service_name',
    ],
    [
      'consul_discovery bad api',
      { consul_discovery: { api: 'rest', consul_http_addr: 'h', service_name: 's' } },
      'consul_discovery.api',
    ],
    [
      'consul_discovery bad meta',
      { consul_discovery: { consul_http_addr: 'h', service_name: 's', meta: { a: 1 } } },
      'consul_discovery.meta',
    ],
    ['kubernetes_discovery missing namespace', { kubernetes_discovery: { service_name: 's' } }, 'kubernetes_discovery.namespace'],
  ]
  for (const [name, input, key, message] of cases) {
    test(`${name} → ${key}`, () => {
      assertConfigError(() => resolveQuiet(input), key, message)
    })
  }
})

describe('resolveConfig: warnings', () => {
  test('an unknown key warns instead of failing, at any depth', () => {
    const { warnings } = resolveQuiet({ sled_cache_capacity: 1, s3_api: { s3_regoin: 'x' }, admin: { foo: 1 } })
    assert.deepEqual(warnings.sort(), [
      "unknown configuration key 'admin.foo'",
      "unknown configuration key 's3_api.s3_regoin'",
      "unknown configuration key 'sled_cache_capacity'",
    ])
  })

  const unsupported: Array<[input: Record<string, unknown>, key: string]> = [
    [{ compression_level: 3 }, 'compression_level'],
    [{ metadata_snapshots_dir: '/snap' }, 'metadata_snapshots_dir'],
    [{ metadata_auto_snapshot_interval: '1h 30m' }, 'metadata_auto_snapshot_interval'],
    [{ rpc_bind_outgoing: true }, 'rpc_bind_outgoing'],
    [{ rpc_public_addr_subnet: 'fd00::/8' }, 'rpc_public_addr_subnet'],
    [{ admin: { api_bind_addr: '127.0.0.1:3903', trace_sink: 'http://localhost:4317' } }, 'admin.trace_sink'],
    [{ consul_discovery: { consul_http_addr: 'http://127.0.0.1:8500', service_name: 'garage' } }, 'consul_discovery'],
    [{ kubernetes_discovery: { namespace: 'garage', service_name: 'garage' } }, 'kubernetes_discovery'],
  ]
  for (const [input, key] of unsupported) {
    test(`'${key}' is accepted with a "not supported yet" warning`, () => {
      const { warnings } = resolveQuiet(input)
      assert.deepEqual(warnings, [`'${key}' is not supported yet and is ignored`])
    })
  }

  test('the sections and keys this implementation serves do not warn', () => {
    const { config, warnings } = resolveQuiet({
      lmdb_map_size: '10G',
      allow_punycode: true,
      block_max_concurrent_writes_per_request: 8,
      block_max_concurrent_reads: 4,
      admin: { api_bind_addr: '127.0.0.1:3903', admin_token: 'a', metrics_token: 'm', metrics_require_token: true },
    })
    assert.deepEqual(warnings, [])
    assert.equal(config.blockMaxConcurrentWritesPerRequest, 8)
    assert.equal(config.blockMaxConcurrentReads, 4)
    assert.equal(config.lmdbMapSize, 10e9)
    assert.equal(config.allowPunycode, true)
    assert.deepEqual(config.admin.apiBindAddr, { host: '127.0.0.1', port: 3903 })
  })

  test('the sqlite error says how to fix the file', () => {
    const err = assertConfigError(() => resolveQuiet({ db_engine: 'sqlite' }), 'db_engine')
    assert.match(err.message, /set db_engine = "lmdb" \(or remove the line: lmdb is the default\)/i)
    assert.match(err.message, /a metadata_dir of its own/)
  })

  test('db_engine "lmdb" and its Garage alias "heed" are lmdb', () => {
    for (const db_engine of ['lmdb', 'heed']) {
      const { config, warnings } = resolveQuiet({ db_engine })
      assert.equal(config.dbEngine, 'lmdb')
      assert.deepEqual(warnings, [])
    }
    assert.equal(resolveQuiet({}).config.dbEngine, 'lmdb')
  })

  test('consistency_mode, block_ram_buffer_max and disable_scrub are read without warning', () => {
    const { config, warnings } = resolveQuiet({
      consistency_mode: 'degraded',
      block_ram_buffer_max: '64MiB',
      disable_scrub: true,
    })
    assert.deepEqual(warnings, [])
    assert.equal(config.consistencyMode, 'degraded')
    assert.equal(config.blockRamBufferMax, 64 * 1024 * 1024)
    assert.equal(config.disableScrub, true)
  })

  test('values that ask for what we do anyway do not warn', () => {
    const { warnings } = resolveQuiet({
      db_engine: 'lmdb',
      consistency_mode: 'consistent',
      compression_level: 'none',
      use_local_tz: false,
      rpc_bind_outgoing: false,
      allow_punycode: false,
      disable_scrub: true,
      allow_world_readable_secrets: false,
      bootstrap_peers: [],
    })
    assert.deepEqual(warnings, [])
  })

  test('the RPC settings the cluster implements do not warn', () => {
    const { warnings } = resolveQuiet({
      rpc_bind_addr: '0.0.0.0:3901',
      rpc_public_addr: 'node1.example.com:3901',
      rpc_ping_timeout_msec: 1000,
      rpc_timeout_msec: 30000,
      bootstrap_peers: [`${SECRET}@10.0.0.1:3901`],
    })
    assert.deepEqual(warnings, [])
  })

  test('unsupported values are still parsed', () => {
    const { config } = resolveQuiet({
      compression_level: 'NONE',
      lmdb_map_size: '1T',
      metadata_auto_snapshot_interval: '1d 6h',
      rpc_public_addr: 'node1.example.com:3901',
      s3_web: { bind_addr: '/run/garage/web.sock', root_domain: '.web.garage', add_host_to_metrics: true },
      k2v_api: { api_bind_addr: '[::]:3904' },
    })
    assert.equal(config.compressionLevel, null)
    assert.equal(config.lmdbMapSize, 1e12)
    assert.equal(config.metadataAutoSnapshotIntervalMsec, 30 * 3_600_000)
    assert.deepEqual(config.rpcPublicAddr, { host: 'node1.example.com', port: 3901 })
    assert.deepEqual(config.s3Web, {
      bindAddr: { path: '/run/garage/web.sock' },
      rootDomain: '.web.garage',
      addHostToMetrics: true,
    })
    assert.deepEqual(config.k2vApi, { apiBindAddr: { host: '::', port: 3904 } })
  })

  test('legacy replication_mode is converted, with a deprecation warning', () => {
    const { config, warnings } = resolveQuiet({ replication_mode: '3-degraded' })
    assert.equal(config.replicationFactor, 3)
    assert.equal(config.consistencyMode, 'degraded')
    assert.deepEqual(warnings, [`'replication_mode' is deprecated: use replication_factor = 3 and consistency_mode = "degraded"`])
    assert.equal(resolveQuiet({ replication_mode: 'none' }).config.replicationFactor, 1)
  })

  test('a list of data directories is resolved in order (dataDir: the first writable one), without warning', () => {
    const { config, warnings } = resolveQuiet({
      data_dir: [
        { path: 'old', read_only: true },
        { path: '/hdd1', capacity: '2T' },
        { path: '/hdd2', capacity: 4_000_000 },
      ],
    })
    assert.equal(config.dataDir, '/hdd1')
    assert.deepEqual(config.dataDirs, [
      { path: '/srv/garage/old', readOnly: true },
      { path: '/hdd1', readOnly: false, capacity: 2e12 },
      { path: '/hdd2', readOnly: false, capacity: 4_000_000 },
    ])
    assert.deepEqual(warnings, [])
  })

  test('a list of a single data directory is used without warning', () => {
    const { config, warnings } = resolveQuiet({ data_dir: [{ path: '/hdd1', capacity: '2TiB' }] })
    assert.equal(config.dataDir, '/hdd1')
    assert.equal(config.dataDirs[0]?.capacity, 2 * 2 ** 40)
    assert.deepEqual(warnings, [])
  })
})

describe('sizes', () => {
  const cases: Array<[input: number | string, bytes: number]> = [
    [0, 0],
    [1048576, 1048576],
    ['1048576', 1048576],
    ['512B', 512],
    ['1k', 1000],
    ['1KB', 1000],
    ['1Ki', 1024],
    ['1KiB', 1024],
    ['1M', 1_000_000],
    ['1MB', 1_000_000],
    ['1MiB', 1_048_576],
    ['10MiB', 10_485_760],
    ['10 MiB', 10_485_760],
    ['1.5MiB', 1_572_864],
    ['256mib', 268_435_456],
    ['1G', 1e9],
    ['1GiB', 2 ** 30],
    ['1T', 1e12],
    ['1TiB', 2 ** 40],
    ['2P', 2e15],
  ]
  for (const [input, bytes] of cases) {
    test(`${JSON.stringify(input)} is ${bytes} bytes`, () => {
      assert.equal(parseByteSize('k', input), bytes)
    })
  }
  for (const bad of ['', 'MiB', '1 MiBs', '-1M', '1e6', '1,5M', '1 2M', 'one']) {
    test(`${JSON.stringify(bad)} is refused`, () => {
      assertConfigError(() => parseByteSize('block_size', bad), 'block_size', /size in bytes/)
    })
  }
  test('block_size in the config accepts units', () => {
    assert.equal(resolveQuiet({ block_size: '1M' }).config.blockSize, 1_000_000)
    assert.equal(resolveQuiet({ block_size: 4096 }).config.blockSize, 4096)
  })
})

describe('durations', () => {
  // One parser for the config and the CLI: every form either accepted before, in milliseconds.
  const cases: Array<[input: string, ms: number]> = [
    ['6h', 6 * 3_600_000],
    ['30min', 1_800_000],
    ['1d 12h', 36 * 3_600_000],
    ['1h 30m', 5_400_000],
    ['1h30m', 5_400_000],
    ['1h, 30m', 5_400_000],
    ['1h,30m', 5_400_000],
    ['2 days 3 hours', 51 * 3_600_000],
    ['2 days, 3 hours,', 51 * 3_600_000],
    [' 1.5h ', 5_400_000],
    ['1.5 hours', 5_400_000],
    ['90', 90_000],
    ['90s', 90_000],
    ['10 sec', 10_000],
    ['1 second', 1000],
    ['500ms', 500],
    ['500msec', 500],
    ['2 milliseconds', 2],
    ['1w', 604_800_000],
    ['1wk', 604_800_000],
    ['2 weeks', 2 * 604_800_000],
    ['30d', 30 * 86_400_000],
    ['1 day', 86_400_000],
    ['3hrs', 3 * 3_600_000],
    ['1H', 3_600_000],
    ['10MIN', 600_000],
    ['1mo', 2_629_746_000],
    ['1 month', 2_629_746_000],
    ['1y', 31_556_952_000],
    ['1 year', 31_556_952_000],
    ['1000us', 1],
    ['1000000ns', 1],
    ['0s', 0],
    ['0', 0],
  ]
  for (const [input, ms] of cases) {
    test(`${JSON.stringify(input)} is ${ms} ms`, () => assert.equal(parseDurationString(input), ms))
  }
  for (const bad of ['', '   ', 'often', 'd', '10 parsecs', '1h-30m', '-1h', '1e3s', ',1h', '1h 30', 'h1', '1 h m']) {
    test(`${JSON.stringify(bad)} is not a duration`, () => assert.equal(parseDurationString(bad), undefined))
  }
  test('metadata_auto_snapshot_interval takes every form, rounded to whole milliseconds', () => {
    const interval = (v: unknown) => resolveQuiet({ metadata_auto_snapshot_interval: v }).config.metadataAutoSnapshotIntervalMsec
    assert.equal(interval('1d 6h'), 30 * 3_600_000)
    assert.equal(interval('90'), 90_000)
    assert.equal(interval('1 week'), 604_800_000)
    assert.equal(interval('1500us'), 2)
  })
  for (const bad of ['0s', '0', '100us', 'often', '']) {
    test(`metadata_auto_snapshot_interval ${JSON.stringify(bad)} is refused`, () => {
      assertConfigError(
        () => resolveQuiet({ metadata_auto_snapshot_interval: bad }),
        'metadata_auto_snapshot_interval',
        /duration/,
      )
    })
  }
  test('metadata_auto_snapshot_interval is a string, not a number', () => {
    assertConfigError(
      () => resolveQuiet({ metadata_auto_snapshot_interval: 3600 }),
      'metadata_auto_snapshot_interval',
      /duration/,
    )
  })
})

describe('addresses', () => {
  const good: Array<[input: string, parsed: { host: string; port: number } | { path: string }]> = [
    ['127.0.0.1:3900', { host: '127.0.0.1', port: 3900 }],
    ['0.0.0.0:0', { host: '0.0.0.0', port: 0 }],
    ['[::]:3900', { host: '::', port: 3900 }],
    ['[::1]:65535', { host: '::1', port: 65535 }],
    ['[fc00:1::1]:3900', { host: 'fc00:1::1', port: 3900 }],
    ['localhost:3900', { host: 'localhost', port: 3900 }],
    ['s3.example.com:80', { host: 's3.example.com', port: 80 }],
    ['/run/garage/s3.sock', { path: '/run/garage/s3.sock' }],
  ]
  for (const [input, parsed] of good) {
    test(`${input} parses`, () => {
      const { config } = resolveQuiet({ s3_api: { api_bind_addr: input } })
      assert.deepEqual(config.s3Api.apiBindAddr, parsed)
      assert.equal(formatBindAddr(config.s3Api.apiBindAddr), input)
    })
  }
  const bad: Array<[input: string, message: RegExp]> = [
    ['127.0.0.1', /no port/],
    ['127.0.0.1:', /port number/],
    ['127.0.0.1:65536', /between 0 and 65535/],
    ['127.0.0.1:-1', /port number/],
    ['127.0.0.1:3900x', /port number/],
    ['[::1]', /no port|brackets/],
    ['[::1:3900', /brackets/],
    ['[1.2.3.4]:3900', /not an IPv6 address/],
    ['[::g]:3900', /not an IPv6 address/],
    ['::1:3900', /brackets/],
    ['256.1.1.1:3900', /not an IP address or host name/],
    ['bad host:3900', /not an IP address or host name/],
    [':3900', /not an IP address or host name/],
    ['run/s3.sock', /no port/],
  ]
  for (const [input, message] of bad) {
    test(`${JSON.stringify(input)} is refused`, () => {
      assertConfigError(() => resolveQuiet({ s3_api: { api_bind_addr: input } }), 's3_api.api_bind_addr', message)
    })
  }
})

describe('secrets', () => {
  async function secretFile(t: Parameters<typeof tempDir>[0], content: string, mode: number): Promise<string> {
    const path = join(await tempDir(t), 'secret')
    await writeFile(path, content)
    await chmod(path, mode)
    return path
  }

  test('rpc_secret from the value', () => {
    assert.equal(resolveQuiet({ rpc_secret: SECRET }).config.rpcSecret, SECRET)
  })

  test('rpc_secret from rpc_secret_file, trimmed', async (t) => {
    const path = await secretFile(t, `  ${SECRET}\n`, 0o600)
    assert.equal(resolveQuiet({ rpc_secret_file: path }).config.rpcSecret, SECRET)
  })

  test('a relative secret file resolves against baseDir', async (t) => {
    const path = await secretFile(t, SECRET, 0o600)
    const { config } = resolveConfig({ rpc_secret_file: 'secret' }, { env: {}, baseDir: join(path, '..') })
    assert.equal(config.rpcSecret, SECRET)
  })

  test('a secret file readable by group or others is refused', async (t) => {
    const path = await secretFile(t, SECRET, 0o644)
    assertConfigError(
      () => resolveQuiet({ rpc_secret_file: path }),
      'rpc_secret_file',
      /accessible by group or others \(mode 0644, expected 0600\).*allow_world_readable_secrets/,
    )
    const group = await secretFile(t, 'token', 0o640)
    assertConfigError(() => resolveQuiet({ admin: { admin_token_file: group } }), 'admin.admin_token_file', /mode 0640/)
  })

  test('allow_world_readable_secrets = true skips the check', async (t) => {
    const path = await secretFile(t, SECRET, 0o644)
    assert.equal(resolveQuiet({ rpc_secret_file: path, allow_world_readable_secrets: true }).config.rpcSecret, SECRET)
  })

  test('GARAGE_ALLOW_WORLD_READABLE_SECRETS wins over the file', async (t) => {
    const path = await secretFile(t, SECRET, 0o644)
    const allow = resolveQuiet({ rpc_secret_file: path }, { GARAGE_ALLOW_WORLD_READABLE_SECRETS: 'true' })
    assert.equal(allow.config.rpcSecret, SECRET)
    assert.equal(allow.config.allowWorldReadableSecrets, true)
    assertConfigError(
      () =>
        resolveQuiet(
          { rpc_secret_file: path, allow_world_readable_secrets: true },
          { GARAGE_ALLOW_WORLD_READABLE_SECRETS: 'false' },
        ),
      'rpc_secret_file',
    )
    assertConfigError(
      () => resolveQuiet({}, { GARAGE_ALLOW_WORLD_READABLE_SECRETS: 'maybe' }),
      'GARAGE_ALLOW_WORLD_READABLE_SECRETS',
    )
  })

  test('an empty secret file is refused', async (t) => {
    const path = await secretFile(t, '\n', 0o600)
    assertConfigError(() => resolveQuiet({ rpc_secret_file: path }), 'rpc_secret_file', /empty/)
  })

  test('the environment wins over the value and the file', async (t) => {
    const other = 'ab'.repeat(32)
    const path = await secretFile(t, SECRET, 0o600)
    assert.equal(resolveQuiet({ rpc_secret: SECRET }, { GARAGE_RPC_SECRET: other }).config.rpcSecret, other)
    assert.equal(resolveQuiet({ rpc_secret_file: path }, { GARAGE_RPC_SECRET: other }).config.rpcSecret, other)
    const envFile = await secretFile(t, `${other}\n`, 0o600)
    assert.equal(resolveQuiet({ rpc_secret: SECRET }, { GARAGE_RPC_SECRET_FILE: envFile }).config.rpcSecret, other)
    // A value and its file in the config conflict even when the environment would win? No:
    // as Garage, the environment replaces both without looking at them.
    assert.equal(
      resolveQuiet({ rpc_secret: SECRET, rpc_secret_file: path }, { GARAGE_RPC_SECRET: other }).config.rpcSecret,
      other,
    )
  })

  test('an empty environment variable counts as unset', () => {
    assert.equal(resolveQuiet({ rpc_secret: SECRET }, { GARAGE_RPC_SECRET: '' }).config.rpcSecret, SECRET)
  })

  test('a bad secret from the environment names the variable', async (t) => {
    assertConfigError(() => resolveQuiet({}, { GARAGE_RPC_SECRET: 'short' }), 'GARAGE_RPC_SECRET', /64 hex characters/)
    const path = await secretFile(t, 'short', 0o600)
    assertConfigError(() => resolveQuiet({}, { GARAGE_RPC_SECRET_FILE: path }), 'GARAGE_RPC_SECRET_FILE', /64 hex characters/)
    const open = await secretFile(t, SECRET, 0o666)
    assertConfigError(
      () => resolveQuiet({}, { GARAGE_RPC_SECRET_FILE: open }),
      'GARAGE_RPC_SECRET_FILE',
      /accessible by group or others/,
    )
    assertConfigError(
      () => resolveQuiet({}, { GARAGE_RPC_SECRET_FILE: '/nonexistent' }),
      'GARAGE_RPC_SECRET_FILE',
      /no such file/,
    )
  })

  test('an error never echoes the secret', () => {
    const err = assertConfigError(() => resolveQuiet({ rpc_secret: 'not-a-secret-value' }), 'rpc_secret')
    assert.ok(!err.message.includes('not-a-secret-value'))
  })

  test('a variable and its _FILE form conflict', () => {
    assertConfigError(
      () => resolveQuiet({}, { GARAGE_ADMIN_TOKEN: 'a', GARAGE_ADMIN_TOKEN_FILE: '/x' }),
      'GARAGE_ADMIN_TOKEN',
      /only one of GARAGE_ADMIN_TOKEN and GARAGE_ADMIN_TOKEN_FILE/,
    )
  })

  test('admin and metrics tokens from value, file and environment', async (t) => {
    const adminFile = await secretFile(t, 'admin-from-file\n', 0o600)
    const metricsFile = await secretFile(t, 'metrics-from-file', 0o400)
    const fromConfig = resolveQuiet({ admin: { admin_token: 'admin-value', metrics_token_file: metricsFile } })
    assert.equal(fromConfig.config.admin.adminToken, 'admin-value')
    assert.equal(fromConfig.config.admin.metricsToken, 'metrics-from-file')
    assert.deepEqual(fromConfig.warnings, [], 'tokens alone start no admin server, so nothing is ignored')
    const fromEnv = resolveQuiet(
      { admin: { admin_token: 'admin-value' } },
      { GARAGE_ADMIN_TOKEN_FILE: adminFile, GARAGE_METRICS_TOKEN: 'metrics-env' },
    )
    assert.equal(fromEnv.config.admin.adminToken, 'admin-from-file')
    assert.equal(fromEnv.config.admin.metricsToken, 'metrics-env')
    const envOnly = resolveQuiet({}, { GARAGE_ADMIN_TOKEN: 'x' })
    assert.equal(envOnly.config.admin.adminToken, 'x')
  })

  test('the environment defaults to process.env', () => {
    const saved = process.env.GARAGE_METRICS_TOKEN
    process.env.GARAGE_METRICS_TOKEN = 'from-process-env'
    try {
      assert.equal(resolveConfig({}).config.admin.metricsToken, 'from-process-env')
    } finally {
      if (saved === undefined) delete process.env.GARAGE_METRICS_TOKEN
      else process.env.GARAGE_METRICS_TOKEN = saved
    }
  })
})

describe('parseConfigToml and readConfigFile', () => {
  test("Garage's full example parses with only 'not supported yet' warnings", async () => {
    const input = await readConfigFile(join(FIXTURES, 'garage-full.toml'))
    const { config, warnings } = resolveConfig(input, NO_ENV)
    assert.ok(warnings.length > 0)
    for (const w of warnings) assert.match(w, /^'[a-z0-9_.]+' is not supported yet and is ignored$/)
    // Only what is really not built: the admin API, lmdb_map_size and the rest are served.
    assert.deepEqual(warnings.map((w) => /^'([^']+)'/.exec(w)?.[1]).sort(), [
      'admin.trace_sink',
      'compression_level',
      'consul_discovery',
      'kubernetes_discovery',
      'metadata_auto_snapshot_interval',
    ])
    assert.equal(config.replicationFactor, 3)
    assert.equal(config.metadataDir, '/var/lib/garage/meta')
    assert.equal(config.dataDir, '/var/lib/garage/data')
    assert.equal(config.metadataFsync, true)
    assert.equal(config.blockSize, 1_000_000)
    assert.equal(config.rpcSecret, SECRET)
    assert.deepEqual(config.s3Api, {
      apiBindAddr: { host: '::', port: 3900 },
      s3Region: 'garage',
      rootDomain: '.s3.garage',
      minPartSize: 5 * 1024 * 1024,
    })
    assert.equal(config.admin.adminToken, 'UkLeGWEvHnXBqnueR3ISEMWpOnm40jH2tM2HnnL/0F4=')
    assert.equal(config.bootstrapPeers.length, 4)
  })

  test('a TOML syntax error names the source, line and column on one line', () => {
    const err = assertConfigError(
      () => parseConfigToml('metadata_dir = "/m"\nblock_size = = 1\n', '/etc/garage.toml'),
      '/etc/garage.toml',
    )
    assert.match(err.message, /TOML syntax error at line 2, column \d+: invalid value/)
    assert.ok(err.cause !== undefined)
  })

  test('a duplicated key is a syntax error', () => {
    assertConfigError(() => parseConfigToml('a = 1\na = 2\n'), 'garage.toml', /line 2/)
  })

  test('TOML tables become sections', () => {
    const input = parseConfigToml('[s3_api]\napi_bind_addr = "[::1]:3900"\ns3_region = "r"\n')
    assert.deepEqual(input, { s3_api: { api_bind_addr: '[::1]:3900', s3_region: 'r' } })
  })

  test('a missing file names its path', async () => {
    await assert.rejects(readConfigFile('/nonexistent/garage.toml'), (err: unknown) => {
      assert.ok(err instanceof InvalidConfigError)
      assert.equal(err.key, '/nonexistent/garage.toml')
      assert.match(
        err.message,
        /^invalid configuration: \/nonexistent\/garage\.toml: cannot read configuration file: no such file$/,
      )
      return true
    })
  })

  test('a file with a syntax error names its path', async (t) => {
    const path = join(await tempDir(t), 'garage.toml')
    await writeFile(path, '[s3_api\n')
    await assert.rejects(readConfigFile(path), (err: unknown) => err instanceof InvalidConfigError && err.key === path)
  })
})
