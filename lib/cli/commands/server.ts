/**
 * `garage server [-c garage.toml] [flags]`: run a node until SIGINT or SIGTERM.
 *
 * Without `-c` or `GARAGE_CONFIG_FILE` it runs the embedded default (Garage itself reads
 * `/etc/garage.toml`): data under `./garage-data` (or `--data-dir`), S3 on 127.0.0.1:3900, the
 * admin API on 127.0.0.1:3903 with a token generated into `<data dir>/admin-token`, and a ready
 * access key named `default`, created on first start and shown again on every start. The flags
 * (`--data-dir`, `--s3-bind`, …) override the configuration file or the embedded default.
 */

import { randomBytes } from 'node:crypto'
import { readFile, mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { defineCommand } from 'citty'
import type { ConsolaInstance } from 'consola'
import type { GarageConfig, LogFormat, LogLevel } from '../../index.ts'
// A namespace import: the config checks keep working while parts of the node are unfinished.
import * as garage from '../../index.ts'
import { reportErrors } from '../_errors.ts'
import { createCliLogger, parseLogFormat, parseLogLevel } from '../_logger.ts'
import { timingFromEnv } from '../_timing.ts'

/** Name of the key the embedded default creates. */
const DEFAULT_KEY_NAME = 'default'
/** Where the embedded default keeps everything. */
const DEFAULT_DATA_ROOT = './garage-data'
/** Where the embedded default serves the admin API (Garage's usual port, loopback only). */
const DEFAULT_ADMIN_BIND = '127.0.0.1:3903'
/** Website root domain when `--web-bind` turns websites on without a configured one. */
const DEFAULT_WEB_ROOT_DOMAIN = '.web.garage.localhost'
/** File of the embedded default's admin token, in the data directory. */
const ADMIN_TOKEN_FILE = 'admin-token'

export interface ServerOptions {
  /** Path of garage.toml; undefined runs the embedded default. */
  configFile?: string | undefined
  /** `--data-dir`: metadata in `<dir>/meta`, data blocks in `<dir>/data`. */
  dataDir?: string | undefined
  s3Bind?: string | undefined
  webBind?: string | undefined
  adminBind?: string | undefined
  rpcBind?: string | undefined
  logLevel?: LogLevel | undefined
  logFormat?: LogFormat | undefined
}

export const serverCommand = defineCommand({
  meta: {
    name: 'server',
    description:
      'Run a Garage node (with no config file: a single node with data in ./garage-data, the admin API on 127.0.0.1:3903)',
  },
  args: {
    config: {
      type: 'string',
      alias: 'c',
      valueHint: 'garage.toml',
      description: 'Configuration file (default: $GARAGE_CONFIG_FILE, else the embedded default configuration)',
    },
    'data-dir': {
      type: 'string',
      valueHint: 'dir',
      description: 'Keep metadata in <dir>/meta and data blocks in <dir>/data (default ./garage-data)',
    },
    's3-bind': { type: 'string', valueHint: 'host:port', description: 'S3 API address (default 127.0.0.1:3900)' },
    'web-bind': {
      type: 'string',
      valueHint: 'host:port',
      description: `Serve bucket websites on this address (root domain ${DEFAULT_WEB_ROOT_DOMAIN} unless configured)`,
    },
    'admin-bind': {
      type: 'string',
      valueHint: 'host:port',
      description: `Admin API address (embedded default: ${DEFAULT_ADMIN_BIND})`,
    },
    'rpc-bind': { type: 'string', valueHint: 'host:port', description: 'Inter-node RPC address (default [::]:3901)' },
    'log-level': {
      type: 'string',
      valueHint: 'error|warn|info|debug|trace',
      description: 'What to log (default: $GARAGE_LOG_LEVEL, else log_level, else info: one line per request)',
    },
    'log-format': {
      type: 'string',
      valueHint: 'text|json',
      description: 'Log as text (default) or as one JSON object per line',
    },
  },
  run: reportErrors(async ({ args }) => {
    const env = process.env.GARAGE_CONFIG_FILE
    await runServer({
      configFile: args.config ?? (env === undefined || env === '' ? undefined : env),
      dataDir: args['data-dir'],
      s3Bind: args['s3-bind'],
      webBind: args['web-bind'],
      adminBind: args['admin-bind'],
      rpcBind: args['rpc-bind'],
      logLevel: parseLogLevel(args['log-level'], '--log-level'),
      logFormat: parseLogFormat(args['log-format'], '--log-format'),
    })
  }),
})

/**
 * The configuration with the command-line flags applied over it. Paths and addresses given on
 * the command line are relative to the current directory, whatever the file's directory is.
 */
export function applyServerFlags(input: GarageConfig, opts: ServerOptions): GarageConfig {
  const out: GarageConfig = { ...input }
  if (opts.dataDir !== undefined) {
    const root = resolve(opts.dataDir)
    out.metadata_dir = join(root, 'meta')
    out.data_dir = join(root, 'data')
  }
  if (opts.s3Bind !== undefined) out.s3_api = { ...out.s3_api, api_bind_addr: opts.s3Bind }
  if (opts.webBind !== undefined) out.s3_web = { root_domain: DEFAULT_WEB_ROOT_DOMAIN, ...out.s3_web, bind_addr: opts.webBind }
  if (opts.adminBind !== undefined) out.admin = { ...out.admin, api_bind_addr: opts.adminBind }
  if (opts.rpcBind !== undefined) out.rpc_bind_addr = opts.rpcBind
  return out
}

/**
 * The embedded default's admin API: on loopback unless `--admin-bind` says otherwise, with the
 * token kept in `<data dir>/admin-token` (created with mode 0600 on first start).
 */
async function embeddedAdmin(input: GarageConfig, opts: ServerOptions): Promise<{ config: GarageConfig; tokenFile: string }> {
  const root = resolve(opts.dataDir ?? DEFAULT_DATA_ROOT)
  const tokenFile = join(root, ADMIN_TOKEN_FILE)
  await mkdir(root, { recursive: true })
  try {
    await writeFile(tokenFile, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  }
  const admin = { api_bind_addr: DEFAULT_ADMIN_BIND, ...input.admin, admin_token_file: tokenFile }
  return { config: { ...input, admin }, tokenFile }
}

/** Load and check the configuration, start the node, print how to reach it, stop on a signal. */
export async function runServer(opts: ServerOptions): Promise<void> {
  const embedded = opts.configFile === undefined
  const fromFile: GarageConfig = embedded ? {} : await garage.readConfigFile(opts.configFile as string)
  let input = applyServerFlags(fromFile, opts)
  let tokenFile: string | undefined
  if (embedded) ({ config: input, tokenFile } = await embeddedAdmin(input, opts))
  // Validate before anything is created, so a bad file fails fast with one line.
  const { config, warnings } = garage.resolveConfig(input)
  const level = opts.logLevel ?? parseLogLevel(process.env.GARAGE_LOG_LEVEL, 'GARAGE_LOG_LEVEL') ?? config.logLevel ?? 'info'
  const log = createCliLogger({ level, format: opts.logFormat ?? config.logFormat ?? 'text' })
  for (const warning of warnings) log.warn(warning)
  if (embedded) {
    log.info(
      'No configuration file (-c or GARAGE_CONFIG_FILE): running the embedded default configuration, ' +
        `metadata in ${config.metadataDir}, data in ${config.dataDir}`,
    )
  }

  const stopSignal = waitForStopSignal(log)
  try {
    // Test timings reach a child process through GARAGE_TS_TEST_* variables (lib/cli/_timing.ts).
    const node = garage.createGarageNode({ ...input, logger: log.withTag('garage'), timing: timingFromEnv(process.env) })
    await node.start()
    const endpoint = node.s3Endpoint ?? garage.formatBindAddr(config.s3Api.apiBindAddr)
    log.success(`S3 API listening on ${endpoint} (region ${config.s3Api.s3Region})`)
    if (node.webEndpoint !== undefined)
      log.info(`Websites on ${node.webEndpoint} (bucket b answers at b${config.s3Web?.rootDomain ?? ''})`)
    if (node.rpcAddress !== undefined) log.info(`RPC address of this node: ${node.rpcAddress}`)

    if (embedded) {
      const existing = (await node.keys.list()).find((k) => k.name === DEFAULT_KEY_NAME)
      const key = existing ?? (await node.keys.create({ name: DEFAULT_KEY_NAME, allowCreateBucket: true }))
      log.info(`${existing === undefined ? 'Created' : 'Using'} access key '${DEFAULT_KEY_NAME}':`)
      log.log(`  Access key ID:     ${key.accessKeyId}`)
      log.log(`  Secret access key: ${key.secretAccessKey}`)
      if (endpoint.startsWith('http')) {
        log.log(
          `  Try: AWS_ACCESS_KEY_ID=${key.accessKeyId} AWS_SECRET_ACCESS_KEY=${key.secretAccessKey} ` +
            `aws --endpoint-url ${endpoint} --region ${config.s3Api.s3Region} s3 ls`,
        )
      }
      if (node.adminEndpoint !== undefined && tokenFile !== undefined)
        await printAdminAccess(log, node.adminEndpoint, tokenFile, config)
    }
    log.info('Press Ctrl-C to stop')

    const signal = await stopSignal.promise
    log.info(`Received ${signal}, stopping (send it again to exit at once)`)
    await node.stop()
    log.success('Stopped')
  } finally {
    stopSignal.dispose()
  }
}

/** How the CLI reaches the embedded default's admin API, from another shell. */
async function printAdminAccess(
  log: ConsolaInstance,
  adminEndpoint: string,
  tokenFile: string,
  config: garage.ResolvedConfig,
): Promise<void> {
  const fromFile = (await readFile(tokenFile, 'utf8')).trim()
  const addr = adminEndpoint.replace(/^http:\/\//, '')
  if (config.admin.adminToken === fromFile) {
    log.info(`Admin API on ${adminEndpoint}, token in ${tokenFile}. The CLI reaches it from another shell with:`)
    log.log(`  export GARAGE_ADMIN_ADDR=${addr} GARAGE_ADMIN_TOKEN="$(cat ${tokenFile})"`)
  } else {
    log.info(`Admin API on ${adminEndpoint} (token from the environment). The CLI reaches it with:`)
    log.log(`  export GARAGE_ADMIN_ADDR=${addr}`)
  }
  log.log('  garage status')
}

/** Resolves on the first SIGINT or SIGTERM; a second one exits at once without a clean stop. */
function waitForStopSignal(log: ConsolaInstance): { promise: Promise<NodeJS.Signals>; dispose: () => void } {
  let received = false
  let resolve: (signal: NodeJS.Signals) => void = () => {}
  const promise = new Promise<NodeJS.Signals>((r) => {
    resolve = r
  })
  const onSignal = (signal: NodeJS.Signals): void => {
    if (received) {
      log.warn(`Received ${signal} again: exiting without a clean stop`)
      process.exit(130)
    }
    received = true
    resolve(signal)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  return {
    promise,
    dispose: () => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    },
  }
}
