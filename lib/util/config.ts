/**
 * The node's configuration: Garage's `garage.toml` keys as input ({@link GarageConfig}), and the
 * defaulted, validated form the rest of the library reads ({@link ResolvedConfig}).
 * Port of garage_util::config and garage's secrets.rs.
 *
 * Validation is eager: {@link resolveConfig} throws an {@link InvalidConfigError} naming the
 * dotted key (`s3_api.api_bind_addr`) and what it expects. Unknown keys and keys of features
 * that are not built yet are accepted and reported as warnings, so a Garage user's file works.
 */

import { readFileSync, statSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { isIPv4, isIPv6 } from 'node:net'
import { resolve as resolvePath } from 'node:path'
import { parse as parseToml, TomlError } from 'smol-toml'
import { InvalidConfigError } from './errors.ts'

// ---------------------------------------------------------------------------------------------
// Input: garage.toml, key for key
// ---------------------------------------------------------------------------------------------

/**
 * A size in bytes: an integer, or a string with a unit as Garage's `bytesize` parsing accepts
 * (case-insensitive, optional space): `B`, decimal `K`/`KB`, `M`/`MB`, `G`/`GB`, `T`/`TB`,
 * `P`/`PB` (powers of 1000) and binary `Ki`/`KiB`, `Mi`/`MiB`, ... (powers of 1024).
 * So `"1M"` is 1 000 000 bytes and `"1MiB"` is 1 048 576 bytes.
 */
export type ByteSize = number | string

/** One entry of a multi-directory `data_dir` list (Garage ≥ 0.9). */
export interface DataDirEntry {
  /** Directory holding data blocks. */
  path: string
  /** Space to use on this drive. Required unless `read_only` is true. */
  capacity?: ByteSize
  /** A legacy directory that is only read from (blocks are moved away from it). Default false. */
  read_only?: boolean
}

/** How quorums are computed. See {@link GarageConfig.consistency_mode}. */
export type ConsistencyMode = 'consistent' | 'degraded' | 'dangerous'

/** Default of `s3_api.min_part_size`: AWS's 5 MiB. */
const DEFAULT_MIN_PART_SIZE = 5 * 1024 * 1024

/** The `[s3_api]` section. */
export interface S3ApiSection {
  /**
   * Where the S3 API listens: `"host:port"`, `"[ipv6]:port"`, or an absolute unix socket path.
   * No TLS: put a reverse proxy in front. Default `"127.0.0.1:3900"` (Garage has no default).
   */
  api_bind_addr?: string
  /** The region clients must sign for; other regions are refused. Default `"garage"`. */
  s3_region?: string
  /** Suffix enabling vhost-style requests (`bucket.<root_domain>`). Path style always works. */
  root_domain?: string
  /**
   * SSE-S3 master keys, as `id:key` entries (one per line, or separated by commas or spaces):
   * `id` is 1–64 characters among `A-Z a-z 0-9 . _ -`, `key` is 32 bytes as 64 hex characters
   * (`openssl rand -hex 32`). The first entry wraps the data keys of new objects; the others
   * stay readable (rotation: put a new key first, keep the old ones). Every node of a cluster
   * needs the same keys, like `rpc_secret`. Also `GARAGE_SSE_MASTER_KEY`. Without it a node
   * outside a cluster generates one in `metadata_dir/sse_master_key`; a node in a cluster
   * refuses SSE-S3 (see docs/design/sse-s3.md).
   */
  sse_master_key?: string
  /** A file holding {@link S3ApiSection.sse_master_key} (mode 0600). Also `GARAGE_SSE_MASTER_KEY_FILE`. */
  sse_master_key_file?: string
  /**
   * Smallest size of every part but the last that CompleteMultipartUpload accepts. Default 5 MiB,
   * AWS's limit (Garage has no such setting). Lower it only for tests and benchmarks that need many
   * small parts.
   */
  min_part_size?: ByteSize
}

/** The `[s3_web]` section: static website serving from buckets. */
export interface S3WebSection {
  /** Where the web server listens (same forms as `s3_api.api_bind_addr`). Required. */
  bind_addr: string
  /** Suffix of website host names: bucket `b` answers at `b.<root_domain>` and at `b`. Required. */
  root_domain: string
  /** Add the requested host to the exported metrics. Default false. */
  add_host_to_metrics?: boolean
}

/** The `[k2v_api]` section. */
export interface K2vApiSection {
  /** Where the K2V API listens (same forms as `s3_api.api_bind_addr`). Required. */
  api_bind_addr: string
}

/** The `[admin]` section: administration API and metrics. */
export interface AdminSection {
  /** Where the admin API listens (same forms as `s3_api.api_bind_addr`). None by default. */
  api_bind_addr?: string
  /**
   * Bearer token for the admin endpoints; without one they are disabled. Also from
   * `admin_token_file`, `GARAGE_ADMIN_TOKEN` or `GARAGE_ADMIN_TOKEN_FILE`.
   */
  admin_token?: string
  /** File holding the admin token (trimmed; must not be accessible by group or others). */
  admin_token_file?: string
  /**
   * Bearer token for `/metrics`; without one metrics are open (unless `metrics_require_token`).
   * Also from `metrics_token_file`, `GARAGE_METRICS_TOKEN` or `GARAGE_METRICS_TOKEN_FILE`.
   */
  metrics_token?: string
  /** File holding the metrics token (trimmed; must not be accessible by group or others). */
  metrics_token_file?: string
  /** Refuse `/metrics` without a token even when no `metrics_token` is set. Default false. */
  metrics_require_token?: boolean
  /** OpenTelemetry collector to send traces to, e.g. `"http://localhost:4317"`. */
  trace_sink?: string
  /**
   * Serve the web console under `/ui/` on the admin port. Default true; `false` answers those
   * paths as any unknown admin path (404).
   */
  console?: boolean
}

/** The `[consul_discovery]` section: find peers through Consul. */
export interface ConsulDiscoverySection {
  /** Registration API: `"catalog"` (default, mTLS with client_cert/client_key) or `"agent"`. */
  api?: 'catalog' | 'agent'
  /** HTTP(S) address of the Consul server. Required. */
  consul_http_addr: string
  /** Service name under which RPC ports are announced. Required. */
  service_name: string
  /** CA certificate for TLS to Consul. */
  ca_cert?: string
  /** Client certificate for TLS to Consul (catalog API). */
  client_cert?: string
  /** Client key for TLS to Consul (catalog API). */
  client_key?: string
  /** Consul token (agent API). */
  token?: string
  /** Skip server name verification (then `ca_cert` is ignored). Default false. */
  tls_skip_verify?: boolean
  /** Extra service tags. */
  tags?: string[]
  /** Extra service metadata. */
  meta?: Record<string, string>
}

/** The `[kubernetes_discovery]` section: find peers through Kubernetes custom resources. */
export interface KubernetesDiscoverySection {
  /** Namespace of the custom resources. Required. */
  namespace: string
  /** Label used to filter the resources. Required. */
  service_name: string
  /** Do not create or patch the `garagenodes.deuxfleurs.fr` CRD. Default false. */
  skip_crd?: boolean
}

/**
 * The configuration as `garage.toml` spells it: a parsed TOML file is a `GarageConfig`, and the
 * same plain object is accepted by `createGarageNode`. Every key is optional here: the embedded
 * default fills in what is missing (see {@link resolveConfig}).
 */
export interface GarageConfig {
  /** Metadata directory (node id, layout, tables). Put it on an SSD. Default `./garage-data/meta`. */
  metadata_dir?: string
  /**
   * Directory for data blocks, or (Garage ≥ 0.9) a list of `{ path, capacity }` /
   * `{ path, read_only: true }` entries. Default `./garage-data/data`.
   */
  data_dir?: string | DataDirEntry[]
  /**
   * Metadata engine: `"lmdb"` (default; Garage's alias `"heed"` too), the only one this
   * implementation has. Garage's `"sqlite"` is refused with a hint; `"sled"` was removed.
   */
  db_engine?: string
  /** Size objects are cut into. Default 1 MiB. Changing it only affects new uploads. */
  block_size?: ByteSize
  /** Limit on block data buffered in RAM awaiting slow replicas. Default 256 MiB. */
  block_ram_buffer_max?: ByteSize
  /** Block files read from disk at once (Garage ≥ 2.0); more reads wait their turn. Default 16. */
  block_max_concurrent_reads?: number
  /**
   * Blocks of one PUT or UploadPart written at once (Garage ≥ 2.1). Default 3. Each is held in
   * memory until its replicas have it; across links of RTT r, one request writes at most this
   * many blocks per r (3 MiB per 100 ms: 30 MB/s), so raise it for distant zones.
   */
  block_max_concurrent_writes_per_request?: number
  /** Sync the metadata database on every transaction. Default false. */
  metadata_fsync?: boolean
  /** fsync data blocks and their directory after writing. Default false. */
  data_fsync?: boolean
  /** Do not scrub (re-read and check) the data directory about once a month. Default false. */
  disable_scrub?: boolean
  /** Use the local time zone instead of UTC (lifecycle days, logs). Default false. */
  use_local_tz?: boolean
  /**
   * Our extension: what `garage server` logs, `"error"`, `"warn"`, `"info"` (default: one access
   * line per request), `"debug"` or `"trace"`. `--log-level` and `GARAGE_LOG_LEVEL` win. An
   * embedded node logs through the `logger` it is given, whatever this says.
   */
  log_level?: LogLevel
  /** Our extension: `"text"` (default) or `"json"` (one JSON object per line) for `garage server`. */
  log_format?: LogFormat
  /** Where metadata snapshots are written. Default `<metadata_dir>/snapshots`. */
  metadata_snapshots_dir?: string
  /** Take a metadata snapshot this often, e.g. `"6h"`. No automatic snapshots by default. */
  metadata_auto_snapshot_interval?: string
  /** LMDB map size, the maximum size of the metadata database. Default 1 TiB on 64-bit. */
  lmdb_map_size?: ByteSize
  /** zstd level for stored blocks (-99..22, 0 = zstd's default), or `"none"`. Default 1. */
  compression_level?: number | 'none'
  /** Number of copies of every piece of data (1, 2, 3, ...). Same on every node. Default 1. */
  replication_factor?: number
  /**
   * `"consistent"` (default): read-after-write consistency. `"degraded"`: read quorum of 1.
   * `"dangerous"`: read and write quorums of 1.
   */
  consistency_mode?: ConsistencyMode
  /**
   * Legacy (Garage before 1.0) form of replication_factor + consistency_mode: `"none"`, `"1"`, `"2"`,
   * `"2-dangerous"`, `"3"`, `"3-degraded"`, `"3-dangerous"`. Accepted with a warning.
   */
  replication_mode?: string
  /**
   * Cluster secret, 32 bytes as 64 hex characters (`openssl rand -hex 32`). Also from
   * `rpc_secret_file`, `GARAGE_RPC_SECRET` or `GARAGE_RPC_SECRET_FILE`. Without one the node
   * runs alone: no RPC server, every table and block local.
   */
  rpc_secret?: string
  /** File holding the RPC secret (trimmed; must not be accessible by group or others). */
  rpc_secret_file?: string
  /** Where inter-node RPC listens. Default `"[::]:3901"`. */
  rpc_bind_addr?: string
  /** Bind outgoing RPC sockets to the IP of `rpc_bind_addr`. Default false. */
  rpc_bind_outgoing?: boolean
  /** `host:port` other nodes use to reach this one (recommended behind NAT). */
  rpc_public_addr?: string
  /** When `rpc_public_addr` is unset, only announce autodiscovered addresses in this subnet. */
  rpc_public_addr_subnet?: string
  /** Timeout of RPC pings, in milliseconds. */
  rpc_ping_timeout_msec?: number
  /** Timeout of RPC calls, in milliseconds. */
  rpc_timeout_msec?: number
  /** Peers to contact at startup: `"<node public key hex>@<host>:<port>"`. Default none. */
  bootstrap_peers?: string[]
  /**
   * Skip the permission check of secret files (e.g. with POSIX ACLs). Default false. Also from
   * `GARAGE_ALLOW_WORLD_READABLE_SECRETS`, which wins.
   */
  allow_world_readable_secrets?: boolean
  /** Allow punycode (`xn--`) in bucket names. Default false. */
  allow_punycode?: boolean
  /** Find peers through Consul. */
  consul_discovery?: ConsulDiscoverySection
  /** Find peers through Kubernetes. */
  kubernetes_discovery?: KubernetesDiscoverySection
  /** The S3 API. Defaults to `127.0.0.1:3900`, region `garage`. */
  s3_api?: S3ApiSection
  /** Static websites. No web server unless set. */
  s3_web?: S3WebSection
  /** The K2V API. No K2V server unless set. */
  k2v_api?: K2vApiSection
  /** The admin API. No admin server unless `api_bind_addr` is set. */
  admin?: AdminSection
  /**
   * Our extension: how long an unreferenced data block is kept before it is deleted, in
   * milliseconds. Default 600 000 (Garage's fixed 10 minutes); tests set it short.
   */
  block_gc_delay_msec?: number
}

// ---------------------------------------------------------------------------------------------
// Output: resolved, camelCase, defaulted
// ---------------------------------------------------------------------------------------------

/** A TCP address: `host` has no brackets (`'::'`, `'127.0.0.1'`, `'localhost'`). */
export interface TcpAddr {
  host: string
  port: number
}

/** Where a server listens: a TCP address or a unix socket path. */
export type BindAddr = TcpAddr | { path: string }

/** One data directory, with an absolute path. */
export interface ResolvedDataDir {
  path: string
  /** In bytes; undefined for a single directory or a read-only one. */
  capacity?: number
  readOnly: boolean
}

/** The `[s3_api]` section, resolved. */
export interface ResolvedS3Api {
  apiBindAddr: BindAddr
  s3Region: string
  rootDomain?: string
  /** SSE-S3 master keys (the first one is current), when configured. `key` is 64 hex characters. */
  sseMasterKeys?: ReadonlyArray<{ readonly id: string; readonly key: string }>
  /** See {@link S3ApiSection.min_part_size}. */
  minPartSize: number
}

/** The `[s3_web]` section, resolved. */
export interface ResolvedS3Web {
  bindAddr: BindAddr
  rootDomain: string
  addHostToMetrics: boolean
}

/** The `[k2v_api]` section, resolved. */
export interface ResolvedK2vApi {
  apiBindAddr: BindAddr
}

/** The `[admin]` section, resolved; tokens come from their value, file or environment. */
export interface ResolvedAdmin {
  /** Undefined: no admin server. */
  apiBindAddr?: BindAddr
  adminToken?: string
  metricsToken?: string
  metricsRequireToken: boolean
  traceSink?: string
  /** Serve the web console under `/ui/` (default true). */
  console: boolean
}

/** The `[consul_discovery]` section, resolved. */
export interface ResolvedConsulDiscovery {
  api: 'catalog' | 'agent'
  consulHttpAddr: string
  serviceName: string
  caCert?: string
  clientCert?: string
  clientKey?: string
  token?: string
  tlsSkipVerify: boolean
  tags: string[]
  meta: Record<string, string>
}

/** The `[kubernetes_discovery]` section, resolved. */
export interface ResolvedKubernetesDiscovery {
  namespace: string
  serviceName: string
  skipCrd: boolean
}

/**
 * The configuration every component reads: complete, validated, paths absolute, sizes in bytes,
 * addresses parsed, secrets read. Fields of features that are not built yet are parsed (so a
 * bad value is caught today) but not used.
 */
export interface ResolvedConfig {
  /** Absolute metadata directory. */
  metadataDir: string
  /** Absolute data directory: the single `data_dir`, or the first writable entry of the list. */
  dataDir: string
  /** Every data directory (one entry for a single `data_dir`). */
  dataDirs: ResolvedDataDir[]
  /** Always `'lmdb'`: the only metadata engine of this implementation. */
  dbEngine: 'lmdb'
  /** Bytes. */
  blockSize: number
  /** Bytes. */
  blockRamBufferMax: number
  blockMaxConcurrentReads?: number
  blockMaxConcurrentWritesPerRequest?: number
  /** Delay before an unreferenced block is deleted, in milliseconds. */
  blockGcDelayMsec: number
  metadataFsync: boolean
  dataFsync: boolean
  disableScrub: boolean
  useLocalTz: boolean
  /** `log_level`, when set. */
  logLevel?: LogLevel
  /** `log_format`, when set. */
  logFormat?: LogFormat
  /** Absolute; undefined means `<metadataDir>/snapshots`. */
  metadataSnapshotsDir?: string
  /** Milliseconds; undefined means no automatic snapshots. */
  metadataAutoSnapshotIntervalMsec?: number
  /** Bytes; undefined means the engine's default. */
  lmdbMapSize?: number
  /** zstd level, or null for no compression. */
  compressionLevel: number | null
  replicationFactor: number
  consistencyMode: ConsistencyMode
  /** 64 hex characters; undefined means the node generates one. */
  rpcSecret?: string
  rpcBindAddr: TcpAddr
  rpcBindOutgoing: boolean
  rpcPublicAddr?: TcpAddr
  rpcPublicAddrSubnet?: string
  rpcPingTimeoutMsec?: number
  rpcTimeoutMsec?: number
  bootstrapPeers: { nodeId: string; addr: TcpAddr }[]
  allowWorldReadableSecrets: boolean
  allowPunycode: boolean
  consulDiscovery?: ResolvedConsulDiscovery
  kubernetesDiscovery?: ResolvedKubernetesDiscovery
  s3Api: ResolvedS3Api
  /** Undefined: no web server. */
  s3Web?: ResolvedS3Web
  /** Undefined: no K2V server. */
  k2vApi?: ResolvedK2vApi
  admin: ResolvedAdmin
}

/** Options of {@link resolveConfig}. */
export interface ResolveConfigOptions {
  /**
   * Environment read for `GARAGE_RPC_SECRET`, `GARAGE_ADMIN_TOKEN`, `GARAGE_METRICS_TOKEN`,
   * their `_FILE` forms and `GARAGE_ALLOW_WORLD_READABLE_SECRETS`. Default `process.env`, as
   * Garage; pass `{}` to ignore the environment.
   */
  env?: Record<string, string | undefined>
  /** Directory that relative paths are resolved against. Default `process.cwd()`. */
  baseDir?: string
}

/** What {@link resolveConfig} returns. */
export interface ResolveConfigResult {
  config: ResolvedConfig
  /** Human-readable notes on unknown or not yet supported keys; the CLI prints them. */
  warnings: string[]
}

/** Default S3 API address of the embedded configuration. @internal */
export const DEFAULT_S3_API_BIND_ADDR = '127.0.0.1:3900'
/** Log levels of `log_level`, `--log-level` and `GARAGE_LOG_LEVEL`, from the quietest. */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug', 'trace'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]
/** Log formats of `log_format` and `--log-format`. */
export const LOG_FORMATS = ['text', 'json'] as const
export type LogFormat = (typeof LOG_FORMATS)[number]

/** Default S3 region, as Garage's examples. @internal */
export const DEFAULT_S3_REGION = 'garage'
/** Default block size: 1 MiB. @internal */
export const DEFAULT_BLOCK_SIZE = 1024 * 1024
/** Default delay before an unreferenced block is deleted: 10 minutes, as Garage. @internal */
export const DEFAULT_BLOCK_GC_DELAY_MSEC = 10 * 60 * 1000

const DEFAULT_METADATA_DIR = './garage-data/meta'
const DEFAULT_DATA_DIR = './garage-data/data'
const DEFAULT_RPC_BIND_ADDR = '[::]:3901'
const DEFAULT_BLOCK_RAM_BUFFER_MAX = 256 * 1024 * 1024
const DEFAULT_COMPRESSION_LEVEL = 1
/** Larger blocks would not fit comfortably in one Buffer. */
const MAX_BLOCK_SIZE = 1024 * 1024 * 1024

// ---------------------------------------------------------------------------------------------
// Parsers of single values
// ---------------------------------------------------------------------------------------------

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  switch (typeof value) {
    case 'string':
      return `a string (${JSON.stringify(value)})`
    case 'number':
      return `a number (${value})`
    case 'boolean':
      return `a boolean (${value})`
    case 'bigint':
      return `an integer (${value})`
    case 'object':
      return value instanceof Date || isTomlDate(value) ? 'a date' : 'a table'
    default:
      return typeof value
  }
}

function isTomlDate(value: object): boolean {
  return typeof (value as { toISOString?: unknown }).toISOString === 'function'
}

function isTable(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  ki: 2 ** 10,
  kib: 2 ** 10,
  m: 1e6,
  mb: 1e6,
  mi: 2 ** 20,
  mib: 2 ** 20,
  g: 1e9,
  gb: 1e9,
  gi: 2 ** 30,
  gib: 2 ** 30,
  t: 1e12,
  tb: 1e12,
  ti: 2 ** 40,
  tib: 2 ** 40,
  p: 1e15,
  pb: 1e15,
  pi: 2 ** 50,
  pib: 2 ** 50,
}

/**
 * Parse a {@link ByteSize} into bytes. Throws an {@link InvalidConfigError} for `key`.
 * @internal
 */
export function parseByteSize(key: string, value: unknown): number {
  const expected = 'expected a size in bytes: an integer, or a string like "1M", "10MiB", "1T"'
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new InvalidConfigError(key, `${expected}, got ${describe(value)}`)
    return value
  }
  if (typeof value !== 'string') throw new InvalidConfigError(key, `${expected}, got ${describe(value)}`)
  const bytes = parseSizeString(value)
  if (bytes === undefined) throw new InvalidConfigError(key, `${expected}, got ${describe(value)}`)
  if (!Number.isSafeInteger(bytes)) throw new InvalidConfigError(key, `size ${JSON.stringify(value)} is too large`)
  return bytes
}

/**
 * Parses a size with Garage's units (`K`/`KB` = 1000, `Ki`/`KiB` = 1024, up to `P`/`PiB`,
 * case-insensitive): `"10GiB"`, `"1.5 GB"`, `"500M"`, `"1024"`. Returns undefined when the text
 * is not a size; the result may exceed Number.MAX_SAFE_INTEGER for absurd inputs.
 */
export function parseSizeString(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text)
  const unit = m === null ? undefined : SIZE_UNITS[(m[2] ?? '').toLowerCase()]
  if (m === null || unit === undefined) return undefined
  return Math.floor(Number(m[1]) * unit)
}

/**
 * Milliseconds per duration unit: every spelling Garage's `parse_duration` accepts for the common
 * units. The config and the CLI both read durations through {@link parseDurationString}.
 */
const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6,
  nsec: 1e-6,
  nanosecond: 1e-6,
  nanoseconds: 1e-6,
  us: 1e-3,
  usec: 1e-3,
  microsecond: 1e-3,
  microseconds: 1e-3,
  ms: 1,
  msec: 1,
  millisecond: 1,
  milliseconds: 1,
  s: 1000,
  sec: 1000,
  secs: 1000,
  second: 1000,
  seconds: 1000,
  m: 60_000,
  min: 60_000,
  mins: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
  hrs: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  days: 86_400_000,
  w: 604_800_000,
  wk: 604_800_000,
  week: 604_800_000,
  weeks: 604_800_000,
  // parse_duration's month and year: 30.44 and 365.25 days.
  mo: 2_629_746_000,
  month: 2_629_746_000,
  months: 2_629_746_000,
  y: 31_556_952_000,
  yr: 31_556_952_000,
  year: 31_556_952_000,
  years: 31_556_952_000,
}

/**
 * Parses a duration as Garage's `parse_duration` does for the common units, into milliseconds
 * (fractional below one millisecond): `"6h"`, `"1h30m"`, `"1h 30m"`, `"1.5 hours"`,
 * `"2 days, 3 hours"`, `"500ms"`. A bare number is seconds (`"90"`). Units, case-insensitive:
 * `ns`, `us`, `ms`, `s`/`sec`/`second(s)`, `m`/`min`/`minute(s)`, `h`/`hr`/`hour(s)`,
 * `d`/`day(s)`, `w`/`wk`/`week(s)`, `mo`/`month(s)` (30.44 days), `y`/`yr`/`year(s)` (365.25 days).
 * Terms are separated by spaces, commas or nothing. Returns undefined when the text is not a
 * duration (empty, negative, an unknown unit, anything else).
 *
 * @example parseDurationString('1h30m') // 5_400_000
 * @example parseDurationString('90') // 90_000
 */
export function parseDurationString(text: string): number | undefined {
  const input = text.trim()
  if (/^\d+(?:\.\d+)?$/.test(input)) return Number(input) * 1000
  if (input === '') return undefined
  const term = /(\d+(?:\.\d+)?)\s*([a-zA-Z]+)[\s,]*/y
  let total = 0
  while (term.lastIndex < input.length) {
    const m = term.exec(input)
    const unit = m === null ? undefined : DURATION_UNITS[(m[2] as string).toLowerCase()]
    if (m === null || unit === undefined) return undefined
    total += Number(m[1]) * unit
  }
  return total
}

/** Parse a positive duration such as `"6h"`, `"1h 30m"` or `"2 days"` into whole milliseconds. */
function parseDuration(key: string, value: unknown): number {
  const expected = 'expected a duration such as "6h", "30min" or "1d 12h"'
  const ms = typeof value === 'string' ? parseDurationString(value) : undefined
  if (ms === undefined || Math.round(ms) <= 0) throw new InvalidConfigError(key, `${expected}, got ${describe(value)}`)
  return Math.round(ms)
}

const HOSTNAME =
  /^(?=.{1,253}$)[a-zA-Z0-9_](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?(?:\.[a-zA-Z0-9_](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?)*\.?$/

/**
 * Parse `"host:port"` or `"[ipv6]:port"`, where host is an IPv4 address or a host name.
 * Port 0 (any free port) is allowed. Throws an {@link InvalidConfigError} for `key`.
 * @internal
 */
export function parseTcpAddr(key: string, value: unknown): TcpAddr {
  const expected = 'expected "host:port" or "[ipv6]:port"'
  if (typeof value !== 'string') throw new InvalidConfigError(key, `${expected}, got ${describe(value)}`)
  let host: string
  let portText: string
  const v6 = /^\[([^\]]*)\]:([^:]*)$/.exec(value)
  if (v6 !== null) {
    host = v6[1] ?? ''
    portText = v6[2] ?? ''
    if (!isIPv6(host)) throw new InvalidConfigError(key, `'${host}' is not an IPv6 address (in ${JSON.stringify(value)})`)
  } else {
    const colon = value.lastIndexOf(':')
    if (colon < 0) throw new InvalidConfigError(key, `${expected}, got ${describe(value)} (no port)`)
    host = value.slice(0, colon)
    portText = value.slice(colon + 1)
    if (host.includes(':')) {
      throw new InvalidConfigError(key, `${expected}, got ${describe(value)} (an IPv6 address must be in brackets)`)
    }
    if (!isIPv4(host) && !(HOSTNAME.test(host) && !/^[\d.]+$/.test(host))) {
      throw new InvalidConfigError(key, `'${host}' is not an IP address or host name (in ${JSON.stringify(value)})`)
    }
  }
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN
  if (!(port >= 0 && port <= 65535)) {
    throw new InvalidConfigError(key, `'${portText}' is not a port number between 0 and 65535 (in ${JSON.stringify(value)})`)
  }
  return { host, port }
}

/**
 * Parse a server address: `"host:port"`, `"[ipv6]:port"`, or an absolute unix socket path.
 * Throws an {@link InvalidConfigError} for `key`.
 * @internal
 */
export function parseBindAddr(key: string, value: unknown): BindAddr {
  if (typeof value === 'string' && value.startsWith('/')) return { path: value }
  if (typeof value !== 'string') {
    throw new InvalidConfigError(key, `expected "host:port", "[ipv6]:port" or a unix socket path, got ${describe(value)}`)
  }
  return parseTcpAddr(key, value)
}

/**
 * Render a {@link BindAddr} as the config spells it: `127.0.0.1:3900`, `[::1]:3900`, `/run/s3.sock`.
 */
export function formatBindAddr(addr: BindAddr): string {
  if ('path' in addr) return addr.path
  return addr.host.includes(':') ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`
}

// ---------------------------------------------------------------------------------------------
// Reading a table key by key
// ---------------------------------------------------------------------------------------------

/** Reads the keys of one table, remembering which were read so the rest can be reported. */
class Table {
  readonly #obj: Record<string, unknown>
  readonly #prefix: string
  readonly #read = new Set<string>()

  constructor(obj: Record<string, unknown>, prefix: string) {
    this.#obj = obj
    this.#prefix = prefix
  }

  key(name: string): string {
    return this.#prefix === '' ? name : `${this.#prefix}.${name}`
  }

  /** The raw value, or undefined when absent. */
  get(name: string): unknown {
    this.#read.add(name)
    return Object.hasOwn(this.#obj, name) ? this.#obj[name] : undefined
  }

  has(name: string): boolean {
    return Object.hasOwn(this.#obj, name) && this.#obj[name] !== undefined
  }

  string(name: string, opts: { nonEmpty?: boolean } = {}): string | undefined {
    const v = this.get(name)
    if (v === undefined) return undefined
    if (typeof v !== 'string') throw new InvalidConfigError(this.key(name), `expected a string, got ${describe(v)}`)
    if (opts.nonEmpty === true && v.trim() === '') throw new InvalidConfigError(this.key(name), 'must not be empty')
    return v
  }

  requiredString(name: string, what: string): string {
    const v = this.string(name, { nonEmpty: true })
    if (v === undefined) throw new InvalidConfigError(this.key(name), `is required (${what})`)
    return v
  }

  path(name: string, baseDir: string): string | undefined {
    const v = this.get(name)
    if (v === undefined) return undefined
    if (typeof v !== 'string' || v === '') {
      throw new InvalidConfigError(this.key(name), `expected a non-empty directory path, got ${describe(v)}`)
    }
    return resolvePath(baseDir, v)
  }

  bool(name: string): boolean | undefined {
    const v = this.get(name)
    if (v === undefined) return undefined
    if (typeof v !== 'boolean') throw new InvalidConfigError(this.key(name), `expected true or false, got ${describe(v)}`)
    return v
  }

  int(name: string, min: number, what = 'an integer'): number | undefined {
    const v = this.get(name)
    if (v === undefined) return undefined
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      throw new InvalidConfigError(this.key(name), `expected ${what}, got ${describe(v)}`)
    }
    return v
  }

  stringList(name: string): string[] | undefined {
    const v = this.get(name)
    if (v === undefined) return undefined
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
      throw new InvalidConfigError(this.key(name), `expected a list of strings, got ${describe(v)}`)
    }
    return v as string[]
  }

  /** A nested table, or undefined when absent. */
  table(name: string): Table | undefined {
    const v = this.get(name)
    if (v === undefined) return undefined
    if (!isTable(v)) throw new InvalidConfigError(this.key(name), `expected a table ([${this.key(name)}]), got ${describe(v)}`)
    return new Table(v, this.key(name))
  }

  /** Dotted keys present in the input but never read. */
  unknownKeys(): string[] {
    return Object.keys(this.#obj)
      .filter((k) => !this.#read.has(k) && this.#obj[k] !== undefined)
      .map((k) => this.key(k))
  }
}

// ---------------------------------------------------------------------------------------------
// Secrets (port of garage's secrets.rs)
// ---------------------------------------------------------------------------------------------

interface SecretSource {
  /** Dotted config key, e.g. `admin.admin_token`. */
  key: string
  value: string | undefined
  file: string | undefined
  /** e.g. `GARAGE_ADMIN_TOKEN`; `_FILE` is appended for the file form. */
  envName: string
}

interface SecretContext {
  env: Record<string, string | undefined>
  baseDir: string
  allowWorldReadable: boolean
}

/** The resolved secret and the key to blame if its value is then found invalid. */
interface Secret {
  value: string
  origin: string
}

function nonEmptyEnv(env: Record<string, string | undefined>, name: string): string | undefined {
  const v = env[name]
  return v === undefined || v === '' ? undefined : v
}

/** The environment wins over the file's value, as Garage; a value and its `_file` conflict. */
function resolveSecret(src: SecretSource, ctx: SecretContext): Secret | undefined {
  const envValue = nonEmptyEnv(ctx.env, src.envName)
  const envFile = nonEmptyEnv(ctx.env, `${src.envName}_FILE`)
  if (envValue !== undefined && envFile !== undefined) {
    throw new InvalidConfigError(src.envName, `only one of ${src.envName} and ${src.envName}_FILE can be set`)
  }
  if (envValue !== undefined) return { value: envValue, origin: src.envName }
  if (envFile !== undefined) {
    const origin = `${src.envName}_FILE`
    return { value: readSecretFile(origin, envFile, ctx), origin }
  }
  if (src.value !== undefined && src.file !== undefined) {
    throw new InvalidConfigError(src.key, `only one of '${src.key}' and '${src.key}_file' can be set`)
  }
  if (src.file !== undefined) {
    const origin = `${src.key}_file`
    return { value: readSecretFile(origin, src.file, ctx), origin }
  }
  return src.value === undefined ? undefined : { value: src.value, origin: src.key }
}

function readSecretFile(key: string, file: string, ctx: SecretContext): string {
  const path = resolvePath(ctx.baseDir, file)
  let mode: number
  let text: string
  try {
    mode = statSync(path).mode
    text = readFileSync(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(err)
    throw new InvalidConfigError(key, `cannot read secret file '${path}': ${reason}`, { cause: err })
  }
  if (!ctx.allowWorldReadable && process.platform !== 'win32' && (mode & 0o077) !== 0) {
    const octal = (mode & 0o777).toString(8).padStart(4, '0')
    throw new InvalidConfigError(
      key,
      `secret file '${path}' is accessible by group or others (mode ${octal}, expected 0600); ` +
        `run 'chmod 600 ${path}', or set allow_world_readable_secrets = true ` +
        '(or GARAGE_ALLOW_WORLD_READABLE_SECRETS=true) to skip this check',
    )
  }
  const secret = text.trim()
  if (secret === '') throw new InvalidConfigError(key, `secret file '${path}' is empty`)
  return secret
}

function parseEnvBool(env: Record<string, string | undefined>, name: string): boolean | undefined {
  const v = nonEmptyEnv(env, name)
  if (v === undefined) return undefined
  const lower = v.toLowerCase()
  if (lower === 'true' || lower === '1') return true
  if (lower === 'false' || lower === '0') return false
  throw new InvalidConfigError(name, `expected true or false, got ${JSON.stringify(v)}`)
}

// ---------------------------------------------------------------------------------------------
// resolveConfig
// ---------------------------------------------------------------------------------------------

const CONSISTENCY_MODES: readonly ConsistencyMode[] = ['consistent', 'degraded', 'dangerous']

const LEGACY_REPLICATION_MODES: Record<string, { factor: number; mode: ConsistencyMode }> = {
  none: { factor: 1, mode: 'consistent' },
  '1': { factor: 1, mode: 'consistent' },
  '2': { factor: 2, mode: 'consistent' },
  '2-dangerous': { factor: 2, mode: 'dangerous' },
  '3': { factor: 3, mode: 'consistent' },
  '3-degraded': { factor: 3, mode: 'degraded' },
  '3-dangerous': { factor: 3, mode: 'dangerous' },
}

const notSupported = (key: string): string => `'${key}' is not supported yet and is ignored`

/**
 * Fill in defaults and validate a configuration, eagerly.
 *
 * With an empty object this is the embedded default: metadata in `./garage-data/meta`, data in
 * `./garage-data/data`, replication factor 1, 1 MiB blocks, S3 on `127.0.0.1:3900` in region
 * `garage`, no web, K2V or admin server. Secrets are taken from the environment first, then from
 * the `*_file` key, then from the value (as Garage).
 *
 * Pure apart from reading secret files and the environment; never logs: `warnings` lists unknown
 * keys (`unknown configuration key 'x'`) and keys of features not built yet
 * (`'x' is not supported yet and is ignored`) for the caller to show.
 *
 * @throws {@link InvalidConfigError} naming the dotted key and what it expects.
 *
 * @example
 * ```ts
 * const { config, warnings } = resolveConfig({ metadata_dir: '/tmp/g/meta', data_dir: '/tmp/g/data' })
 * config.s3Api.apiBindAddr // { host: '127.0.0.1', port: 3900 }
 * ```
 */
export function resolveConfig(input: GarageConfig, opts: ResolveConfigOptions = {}): ResolveConfigResult {
  if (!isTable(input)) throw new InvalidConfigError('(root)', `expected a table of settings, got ${describe(input)}`)
  const env = opts.env ?? process.env
  const baseDir = resolvePath(opts.baseDir ?? process.cwd())
  const warnings: string[] = []
  const root = new Table(input as Record<string, unknown>, '')

  /** Warn about a key of a feature not built yet, unless it asks for what we do anyway. */
  const ignored = (table: Table, name: string, harmless?: unknown): void => {
    if (table.has(name) && table.get(name) !== harmless) warnings.push(notSupported(table.key(name)))
  }

  // -- Storage
  const metadataDir = root.path('metadata_dir', baseDir) ?? resolvePath(baseDir, DEFAULT_METADATA_DIR)
  const dataDirs = resolveDataDirs(root, baseDir, warnings)
  const dataDir = dataDirs.find((d) => !d.readOnly)?.path ?? resolvePath(baseDir, DEFAULT_DATA_DIR)

  const dbEngine = resolveDbEngine(root.string('db_engine'))

  const blockSize = root.has('block_size') ? parseByteSize('block_size', root.get('block_size')) : DEFAULT_BLOCK_SIZE
  if (blockSize < 1 || blockSize > MAX_BLOCK_SIZE) {
    throw new InvalidConfigError('block_size', `must be between 1 byte and 1 GiB, got ${blockSize} bytes`)
  }
  const blockRamBufferMax = root.has('block_ram_buffer_max')
    ? parseByteSize('block_ram_buffer_max', root.get('block_ram_buffer_max'))
    : DEFAULT_BLOCK_RAM_BUFFER_MAX
  const blockMaxConcurrentReads = root.int('block_max_concurrent_reads', 1, 'a positive integer')
  const blockMaxConcurrentWritesPerRequest = root.int('block_max_concurrent_writes_per_request', 1, 'a positive integer')
  const blockGcDelayMsec =
    root.int('block_gc_delay_msec', 0, 'a number of milliseconds (an integer ≥ 0)') ?? DEFAULT_BLOCK_GC_DELAY_MSEC

  const metadataFsync = root.bool('metadata_fsync') ?? false
  const dataFsync = root.bool('data_fsync') ?? false
  const disableScrub = root.bool('disable_scrub') ?? false
  const useLocalTz = root.bool('use_local_tz') ?? false
  const logLevel = root.string('log_level')
  if (logLevel !== undefined && !LOG_LEVELS.includes(logLevel as LogLevel)) {
    throw new InvalidConfigError(
      'log_level',
      `expected one of ${LOG_LEVELS.map((l) => `"${l}"`).join(', ')}, got ${describe(logLevel)}`,
    )
  }
  const logFormat = root.string('log_format')
  if (logFormat !== undefined && !LOG_FORMATS.includes(logFormat as LogFormat)) {
    throw new InvalidConfigError('log_format', `expected "text" or "json", got ${describe(logFormat)}`)
  }
  const metadataSnapshotsDir = root.path('metadata_snapshots_dir', baseDir)
  ignored(root, 'metadata_snapshots_dir')
  const metadataAutoSnapshotIntervalMsec = root.has('metadata_auto_snapshot_interval')
    ? parseDuration('metadata_auto_snapshot_interval', root.get('metadata_auto_snapshot_interval'))
    : undefined
  ignored(root, 'metadata_auto_snapshot_interval')
  const lmdbMapSize = root.has('lmdb_map_size') ? parseByteSize('lmdb_map_size', root.get('lmdb_map_size')) : undefined
  const compressionLevel = resolveCompressionLevel(root)
  ignored(root, 'compression_level', 'none')

  // -- Replication
  let replicationFactor = root.int('replication_factor', 1, 'a positive integer (1, 2, 3, ...)')
  const consistencyRaw = root.get('consistency_mode')
  if (consistencyRaw !== undefined && !CONSISTENCY_MODES.includes(consistencyRaw as ConsistencyMode)) {
    throw new InvalidConfigError(
      'consistency_mode',
      `expected "consistent", "degraded" or "dangerous", got ${describe(consistencyRaw)}`,
    )
  }
  let consistencyMode = (consistencyRaw as ConsistencyMode | undefined) ?? 'consistent'
  const replicationMode = root.string('replication_mode')
  if (replicationMode !== undefined) {
    const legacy = LEGACY_REPLICATION_MODES[replicationMode]
    if (legacy === undefined) {
      throw new InvalidConfigError(
        'replication_mode',
        `expected one of ${Object.keys(LEGACY_REPLICATION_MODES)
          .map((m) => `"${m}"`)
          .join(', ')}, got ${describe(replicationMode)}`,
      )
    }
    if (replicationFactor !== undefined) {
      throw new InvalidConfigError(
        'replication_mode',
        'cannot be set together with replication_factor; keep only replication_factor',
      )
    }
    replicationFactor = legacy.factor
    if (consistencyRaw === undefined) consistencyMode = legacy.mode
    warnings.push(
      `'replication_mode' is deprecated: use replication_factor = ${legacy.factor}` +
        (legacy.mode === 'consistent' ? '' : ` and consistency_mode = "${legacy.mode}"`),
    )
  }

  // -- Secrets
  const allowInConfig = root.bool('allow_world_readable_secrets')
  const allowWorldReadableSecrets = parseEnvBool(env, 'GARAGE_ALLOW_WORLD_READABLE_SECRETS') ?? allowInConfig ?? false
  const secretCtx: SecretContext = { env, baseDir, allowWorldReadable: allowWorldReadableSecrets }
  const rpcSecret = resolveSecret(
    {
      key: 'rpc_secret',
      value: root.string('rpc_secret'),
      file: root.string('rpc_secret_file', { nonEmpty: true }),
      envName: 'GARAGE_RPC_SECRET',
    },
    secretCtx,
  )
  if (rpcSecret !== undefined && !/^[0-9a-fA-F]{64}$/.test(rpcSecret.value)) {
    throw new InvalidConfigError(
      rpcSecret.origin,
      `the RPC secret must be 32 bytes written as 64 hex characters (generate one with 'openssl rand -hex 32'), got ${rpcSecret.value.length} characters`,
    )
  }

  // -- RPC and discovery
  const rpcBindAddr = parseTcpAddr('rpc_bind_addr', root.get('rpc_bind_addr') ?? DEFAULT_RPC_BIND_ADDR)
  const rpcBindOutgoing = root.bool('rpc_bind_outgoing') ?? false
  ignored(root, 'rpc_bind_outgoing', false)
  const rpcPublicAddr = root.has('rpc_public_addr') ? parseTcpAddr('rpc_public_addr', root.get('rpc_public_addr')) : undefined
  const rpcPublicAddrSubnet = root.string('rpc_public_addr_subnet', { nonEmpty: true })
  if (rpcPublicAddrSubnet !== undefined && !/^[0-9a-fA-F.:]+\/\d{1,3}$/.test(rpcPublicAddrSubnet)) {
    throw new InvalidConfigError(
      'rpc_public_addr_subnet',
      `expected a subnet such as "10.0.0.0/8" or "fd00::/8", got ${describe(rpcPublicAddrSubnet)}`,
    )
  }
  ignored(root, 'rpc_public_addr_subnet')
  const rpcPingTimeoutMsec = root.int('rpc_ping_timeout_msec', 1, 'a positive number of milliseconds')
  const rpcTimeoutMsec = root.int('rpc_timeout_msec', 1, 'a positive number of milliseconds')
  const bootstrapPeers = (root.stringList('bootstrap_peers') ?? []).map((peer, i) => parsePeer(`bootstrap_peers[${i}]`, peer))
  const allowPunycode = root.bool('allow_punycode') ?? false
  const consulDiscovery = resolveConsul(root.table('consul_discovery'), warnings)
  if (consulDiscovery !== undefined) warnings.push(notSupported('consul_discovery'))
  const kubernetesDiscovery = resolveKubernetes(root.table('kubernetes_discovery'), warnings)
  if (kubernetesDiscovery !== undefined) warnings.push(notSupported('kubernetes_discovery'))

  // -- APIs
  const s3Table = root.table('s3_api')
  const s3Api: ResolvedS3Api = {
    apiBindAddr: parseBindAddr(
      s3Table?.key('api_bind_addr') ?? 's3_api.api_bind_addr',
      s3Table?.get('api_bind_addr') ?? DEFAULT_S3_API_BIND_ADDR,
    ),
    s3Region: s3Table?.string('s3_region', { nonEmpty: true }) ?? DEFAULT_S3_REGION,
    minPartSize: s3Table?.has('min_part_size')
      ? parseByteSize('s3_api.min_part_size', s3Table.get('min_part_size'))
      : DEFAULT_MIN_PART_SIZE,
  }
  const s3RootDomain = s3Table?.string('root_domain', { nonEmpty: true })
  if (s3RootDomain !== undefined) s3Api.rootDomain = s3RootDomain
  const sseMasterKey = resolveSecret(
    {
      key: 's3_api.sse_master_key',
      value: s3Table?.string('sse_master_key', { nonEmpty: true }),
      file: s3Table?.string('sse_master_key_file', { nonEmpty: true }),
      envName: 'GARAGE_SSE_MASTER_KEY',
    },
    secretCtx,
  )
  if (sseMasterKey !== undefined) s3Api.sseMasterKeys = parseSseMasterKeys(sseMasterKey.value, sseMasterKey.origin)
  if (s3Table !== undefined) warnings.push(...unknown(s3Table))

  const webTable = root.table('s3_web')
  let s3Web: ResolvedS3Web | undefined
  if (webTable !== undefined) {
    s3Web = {
      bindAddr: parseBindAddr(
        webTable.key('bind_addr'),
        required(webTable, 'bind_addr', 'the address the web server listens on'),
      ),
      rootDomain: webTable.requiredString('root_domain', 'the suffix of website host names, e.g. ".web.garage"'),
      addHostToMetrics: webTable.bool('add_host_to_metrics') ?? false,
    }
    warnings.push(...unknown(webTable))
  }

  const k2vTable = root.table('k2v_api')
  let k2vApi: ResolvedK2vApi | undefined
  if (k2vTable !== undefined) {
    k2vApi = {
      apiBindAddr: parseBindAddr(
        k2vTable.key('api_bind_addr'),
        required(k2vTable, 'api_bind_addr', 'the address the K2V API listens on'),
      ),
    }
    warnings.push(...unknown(k2vTable))
  }

  const admin = resolveAdmin(root.table('admin'), secretCtx, warnings)

  warnings.push(...unknown(root))

  const config: ResolvedConfig = {
    metadataDir,
    dataDir,
    dataDirs: dataDirs.length > 0 ? dataDirs : [{ path: dataDir, readOnly: false }],
    dbEngine,
    blockSize,
    blockRamBufferMax,
    blockGcDelayMsec,
    metadataFsync,
    dataFsync,
    disableScrub,
    useLocalTz,
    compressionLevel,
    replicationFactor: replicationFactor ?? 1,
    consistencyMode,
    rpcBindAddr,
    rpcBindOutgoing,
    bootstrapPeers,
    allowWorldReadableSecrets,
    allowPunycode,
    s3Api,
    admin,
  }
  // Optional fields are only set when present (exactOptionalPropertyTypes-friendly, and
  // `'x' in config` stays meaningful).
  if (blockMaxConcurrentReads !== undefined) config.blockMaxConcurrentReads = blockMaxConcurrentReads
  if (blockMaxConcurrentWritesPerRequest !== undefined)
    config.blockMaxConcurrentWritesPerRequest = blockMaxConcurrentWritesPerRequest
  if (metadataSnapshotsDir !== undefined) config.metadataSnapshotsDir = metadataSnapshotsDir
  if (metadataAutoSnapshotIntervalMsec !== undefined) config.metadataAutoSnapshotIntervalMsec = metadataAutoSnapshotIntervalMsec
  if (lmdbMapSize !== undefined) config.lmdbMapSize = lmdbMapSize
  if (logLevel !== undefined) config.logLevel = logLevel as LogLevel
  if (logFormat !== undefined) config.logFormat = logFormat as LogFormat
  if (rpcSecret !== undefined) config.rpcSecret = rpcSecret.value.toLowerCase()
  if (rpcPublicAddr !== undefined) config.rpcPublicAddr = rpcPublicAddr
  if (rpcPublicAddrSubnet !== undefined) config.rpcPublicAddrSubnet = rpcPublicAddrSubnet
  if (rpcPingTimeoutMsec !== undefined) config.rpcPingTimeoutMsec = rpcPingTimeoutMsec
  if (rpcTimeoutMsec !== undefined) config.rpcTimeoutMsec = rpcTimeoutMsec
  if (consulDiscovery !== undefined) config.consulDiscovery = consulDiscovery
  if (kubernetesDiscovery !== undefined) config.kubernetesDiscovery = kubernetesDiscovery
  if (s3Web !== undefined) config.s3Web = s3Web
  if (k2vApi !== undefined) config.k2vApi = k2vApi
  return { config, warnings }
}

/** Garage's names of its SQLite engine (src/db/open.rs). */
const SQLITE_NAMES: readonly string[] = ['sqlite', 'sqlite3', 'rusqlite']

/**
 * `db_engine`: only lmdb (Garage also spells it `heed`). Garage's SQLite engine is refused rather
 * than silently replaced by lmdb, which would start an empty metadata store next to the user's
 * SQLite database.
 */
function resolveDbEngine(raw: string | undefined): 'lmdb' {
  if (raw === undefined || raw === 'lmdb' || raw === 'heed') return 'lmdb'
  if (SQLITE_NAMES.includes(raw)) {
    throw new InvalidConfigError(
      'db_engine',
      `${JSON.stringify(raw)} is not supported: this implementation only has the "lmdb" engine. ` +
        'Set db_engine = "lmdb" (or remove the line: lmdb is the default) and give it a metadata_dir of its own; ' +
        "it keeps its own metadata format and cannot open a Garage node's database, SQLite or lmdb",
    )
  }
  const hint = raw === 'sled' ? ' (sled was removed in Garage v1.0; convert with Garage v0.9 first)' : ''
  throw new InvalidConfigError(
    'db_engine',
    `expected "lmdb" (the only engine of this implementation), got ${describe(raw)}${hint}`,
  )
}

const SSE_KEY_ID = /^[A-Za-z0-9._-]{1,64}$/

/**
 * Parses SSE-S3 master keys: `id:hex` entries separated by newlines, commas or spaces, `#`
 * comments to the end of a line. Ids are unique; a key is 32 bytes in hex.
 * @throws {@link InvalidConfigError} naming `origin`.
 * @internal
 */
export function parseSseMasterKeys(text: string, origin: string): Array<{ id: string; key: string }> {
  const out: Array<{ id: string; key: string }> = []
  const entries = text
    .split('\n')
    .map((line) => line.replace(/#.*$/, ''))
    .join(' ')
    .split(/[\s,]+/)
    .filter((e) => e !== '')
  for (const [i, entry] of entries.entries()) {
    const colon = entry.indexOf(':')
    const id = colon < 0 ? '' : entry.slice(0, colon)
    const key = colon < 0 ? '' : entry.slice(colon + 1)
    if (!SSE_KEY_ID.test(id) || !/^[0-9a-fA-F]{64}$/.test(key)) {
      throw new InvalidConfigError(
        origin,
        `entry ${i + 1} must be 'id:key', the id made of 1-64 letters, digits, '.', '_' or '-' and the key 32 bytes as 64 hex characters (generate one with 'openssl rand -hex 32')`,
      )
    }
    if (out.some((k) => k.id === id)) throw new InvalidConfigError(origin, `master key id '${id}' is given twice`)
    out.push({ id, key: key.toLowerCase() })
  }
  if (out.length === 0) throw new InvalidConfigError(origin, "expected at least one 'id:key' entry")
  return out
}

function unknown(table: Table): string[] {
  return table.unknownKeys().map((k) => `unknown configuration key '${k}'`)
}

function required(table: Table, name: string, what: string): unknown {
  const v = table.get(name)
  if (v === undefined) throw new InvalidConfigError(table.key(name), `is required (${what})`)
  return v
}

function resolveDataDirs(root: Table, baseDir: string, warnings: string[]): ResolvedDataDir[] {
  const raw = root.get('data_dir')
  if (raw === undefined) return []
  if (typeof raw === 'string') {
    if (raw === '') throw new InvalidConfigError('data_dir', 'expected a non-empty directory path')
    return [{ path: resolvePath(baseDir, raw), readOnly: false }]
  }
  if (!Array.isArray(raw)) {
    throw new InvalidConfigError(
      'data_dir',
      `expected a directory path or a list of { path, capacity } tables, got ${describe(raw)}`,
    )
  }
  if (raw.length === 0) throw new InvalidConfigError('data_dir', 'the list of data directories is empty')
  const dirs = raw.map((entry: unknown, i): ResolvedDataDir => {
    const key = `data_dir[${i}]`
    if (!isTable(entry))
      throw new InvalidConfigError(
        key,
        `expected a table { path, capacity } or { path, read_only = true }, got ${describe(entry)}`,
      )
    const t = new Table(entry, key)
    const path = t.path('path', baseDir)
    if (path === undefined) throw new InvalidConfigError(t.key('path'), 'is required')
    const readOnly = t.bool('read_only') ?? false
    const capacityRaw = t.get('capacity')
    if (readOnly && capacityRaw !== undefined)
      throw new InvalidConfigError(t.key('capacity'), 'must not be set on a read_only directory')
    if (!readOnly && capacityRaw === undefined)
      throw new InvalidConfigError(t.key('capacity'), 'is required unless read_only = true (e.g. capacity = "2T")')
    warnings.push(...unknown(t))
    const dir: ResolvedDataDir = { path, readOnly }
    if (capacityRaw !== undefined) dir.capacity = parseByteSize(t.key('capacity'), capacityRaw)
    return dir
  })
  const writable = dirs.find((d) => !d.readOnly)
  if (writable === undefined) throw new InvalidConfigError('data_dir', 'at least one data directory must not be read_only')
  return dirs
}

function resolveCompressionLevel(root: Table): number | null {
  const v = root.get('compression_level')
  if (v === undefined) return DEFAULT_COMPRESSION_LEVEL
  if (typeof v === 'string' && v.toLowerCase() === 'none') return null
  if (typeof v !== 'number' || !Number.isInteger(v) || v < -99 || v > 22) {
    throw new InvalidConfigError('compression_level', `expected an integer between -99 and 22, or "none", got ${describe(v)}`)
  }
  return v
}

function parsePeer(key: string, peer: string): { nodeId: string; addr: TcpAddr } {
  const at = peer.indexOf('@')
  const nodeId = at < 0 ? '' : peer.slice(0, at)
  if (!/^[0-9a-fA-F]{64}$/.test(nodeId)) {
    throw new InvalidConfigError(key, `expected "<node public key, 64 hex characters>@<host>:<port>", got ${describe(peer)}`)
  }
  return { nodeId: nodeId.toLowerCase(), addr: parseTcpAddr(key, peer.slice(at + 1)) }
}

function resolveConsul(t: Table | undefined, warnings: string[]): ResolvedConsulDiscovery | undefined {
  if (t === undefined) return undefined
  const api = t.get('api') ?? 'catalog'
  if (api !== 'catalog' && api !== 'agent')
    throw new InvalidConfigError(t.key('api'), `expected "catalog" or "agent", got ${describe(api)}`)
  const out: ResolvedConsulDiscovery = {
    api,
    consulHttpAddr: t.requiredString('consul_http_addr', 'the HTTP(S) address of the Consul server'),
    serviceName: t.requiredString('service_name', 'the service name RPC ports are announced under'),
    tlsSkipVerify: t.bool('tls_skip_verify') ?? false,
    tags: t.stringList('tags') ?? [],
    meta: {},
  }
  for (const [name, field] of [
    ['ca_cert', 'caCert'],
    ['client_cert', 'clientCert'],
    ['client_key', 'clientKey'],
    ['token', 'token'],
  ] as const) {
    const v = t.string(name, { nonEmpty: true })
    if (v !== undefined) out[field] = v
  }
  const meta = t.get('meta')
  if (meta !== undefined) {
    if (!isTable(meta) || !Object.values(meta).every((v) => typeof v === 'string')) {
      throw new InvalidConfigError(t.key('meta'), `expected a table of strings, got ${describe(meta)}`)
    }
    out.meta = { ...(meta as Record<string, string>) }
  }
  warnings.push(...unknown(t))
  return out
}

function resolveKubernetes(t: Table | undefined, warnings: string[]): ResolvedKubernetesDiscovery | undefined {
  if (t === undefined) return undefined
  const out: ResolvedKubernetesDiscovery = {
    namespace: t.requiredString('namespace', 'the namespace of the custom resources'),
    serviceName: t.requiredString('service_name', 'the label the resources are filtered by'),
    skipCrd: t.bool('skip_crd') ?? false,
  }
  warnings.push(...unknown(t))
  return out
}

function resolveAdmin(t: Table | undefined, ctx: SecretContext, warnings: string[]): ResolvedAdmin {
  const admin: ResolvedAdmin = {
    metricsRequireToken: t?.bool('metrics_require_token') ?? false,
    console: t?.bool('console') ?? true,
  }
  if (t?.has('api_bind_addr') === true) admin.apiBindAddr = parseBindAddr(t.key('api_bind_addr'), t.get('api_bind_addr'))
  const traceSink = t?.string('trace_sink', { nonEmpty: true })
  if (traceSink !== undefined) admin.traceSink = traceSink
  const token = (name: 'admin_token' | 'metrics_token', envName: string): string | undefined =>
    resolveSecret(
      {
        key: `admin.${name}`,
        value: t?.string(name, { nonEmpty: true }),
        file: t?.string(`${name}_file`, { nonEmpty: true }),
        envName,
      },
      ctx,
    )?.value
  const adminToken = token('admin_token', 'GARAGE_ADMIN_TOKEN')
  if (adminToken !== undefined) admin.adminToken = adminToken
  const metricsToken = token('metrics_token', 'GARAGE_METRICS_TOKEN')
  if (metricsToken !== undefined) admin.metricsToken = metricsToken
  if (t !== undefined) {
    warnings.push(...unknown(t))
    // The admin API itself is served; only the OpenTelemetry export is not built.
    if (admin.traceSink !== undefined) warnings.push(notSupported(t.key('trace_sink')))
  }
  return admin
}

// ---------------------------------------------------------------------------------------------
// Reading garage.toml
// ---------------------------------------------------------------------------------------------

/**
 * Parse the text of a `garage.toml`. Only the syntax is checked here; pass the result to
 * {@link resolveConfig} to validate it.
 *
 * @param source - Named in error messages (a file path); default `garage.toml`.
 * @throws {@link InvalidConfigError} with the line and column of a syntax error.
 */
export function parseConfigToml(text: string, source = 'garage.toml'): GarageConfig {
  try {
    // smol-toml builds null-prototype tables; hand out ordinary objects (unsafe keys are refused).
    return toPlain(parseToml(text, { unsafeKeyBehaviour: 'throw' })) as GarageConfig
  } catch (err) {
    if (err instanceof TomlError) {
      const what = (err.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '')
      throw new InvalidConfigError(source, `TOML syntax error at line ${err.line}, column ${err.column}: ${what}`, {
        cause: err,
      })
    }
    throw err
  }
}

function toPlain(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toPlain)
  if (isTable(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toPlain(v)]))
  return value
}

/**
 * Read and parse a `garage.toml` file (see {@link parseConfigToml}).
 * @throws {@link InvalidConfigError} when the file cannot be read or is not valid TOML.
 */
export async function readConfigFile(path: string): Promise<GarageConfig> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const reason =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'is a directory'
            : String(err)
    throw new InvalidConfigError(path, `cannot read configuration file: ${reason}`, { cause: err })
  }
  return parseConfigToml(text, path)
}
