/**
 * `garage server [-c garage.toml]`: run a node until SIGINT or SIGTERM.
 *
 * Without `-c` or `GARAGE_CONFIG_FILE` it runs the embedded default (Garage itself reads
 * `/etc/garage.toml`): data under `./garage-data`, S3 on 127.0.0.1:3900, and a ready access key
 * named `default`, created on first start and shown again on every start.
 */

import { defineCommand } from 'citty'
import { consola } from 'consola'
import type { GarageConfig } from '../../index.ts'
// A namespace import: the config checks keep working while parts of the node are unfinished.
import * as garage from '../../index.ts'
import { reportErrors } from '../_errors.ts'
import { timingFromEnv } from '../_timing.ts'

/** Name of the key the embedded default creates. */
const DEFAULT_KEY_NAME = 'default'

export interface ServerOptions {
  /** Path of garage.toml; undefined runs the embedded default. */
  configFile?: string | undefined
}

export const serverCommand = defineCommand({
  meta: {
    name: 'server',
    description: 'Run a Garage node (with no config file: a single node with data in ./garage-data)',
  },
  args: {
    config: {
      type: 'string',
      alias: 'c',
      valueHint: 'garage.toml',
      description: 'Configuration file (default: $GARAGE_CONFIG_FILE, else the embedded default configuration)',
    },
  },
  run: reportErrors(async ({ args }) => {
    const env = process.env.GARAGE_CONFIG_FILE
    await runServer({ configFile: args.config ?? (env === undefined || env === '' ? undefined : env) })
  }),
})

/** Load and check the configuration, start the node, print how to reach it, stop on a signal. */
export async function runServer(opts: ServerOptions): Promise<void> {
  const embedded = opts.configFile === undefined
  const input: GarageConfig = embedded ? {} : await garage.readConfigFile(opts.configFile as string)
  // Validate before anything is created, so a bad file fails fast with one line.
  const { config, warnings } = garage.resolveConfig(input)
  for (const warning of warnings) consola.warn(warning)
  if (embedded) {
    consola.info(
      'No configuration file (-c or GARAGE_CONFIG_FILE): running the embedded default configuration, ' +
        `metadata in ${config.metadataDir}, data in ${config.dataDir}`,
    )
  }

  const stopSignal = waitForStopSignal()
  try {
    // Test timings reach a child process through GARAGE_TS_TEST_* variables (lib/cli/_timing.ts).
    const node = garage.createGarageNode({ ...input, logger: consola.withTag('garage'), timing: timingFromEnv(process.env) })
    await node.start()
    const endpoint = node.s3Endpoint ?? garage.formatBindAddr(config.s3Api.apiBindAddr)
    consola.success(`S3 API listening on ${endpoint} (region ${config.s3Api.s3Region})`)
    if (node.rpcAddress !== undefined) consola.info(`RPC address of this node: ${node.rpcAddress}`)

    if (embedded) {
      const existing = (await node.keys.list()).find((k) => k.name === DEFAULT_KEY_NAME)
      const key = existing ?? (await node.keys.create({ name: DEFAULT_KEY_NAME, allowCreateBucket: true }))
      consola.info(`${existing === undefined ? 'Created' : 'Using'} access key '${DEFAULT_KEY_NAME}':`)
      consola.log(`  Access key ID:     ${key.accessKeyId}`)
      consola.log(`  Secret access key: ${key.secretAccessKey}`)
      if (endpoint.startsWith('http')) {
        consola.log(
          `  Try: AWS_ACCESS_KEY_ID=${key.accessKeyId} AWS_SECRET_ACCESS_KEY=${key.secretAccessKey} ` +
            `aws --endpoint-url ${endpoint} --region ${config.s3Api.s3Region} s3 ls`,
        )
      }
    }
    consola.info('Press Ctrl-C to stop')

    const signal = await stopSignal.promise
    consola.info(`Received ${signal}, stopping (send it again to exit at once)`)
    await node.stop()
    consola.success('Stopped')
  } finally {
    stopSignal.dispose()
  }
}

/** Resolves on the first SIGINT or SIGTERM; a second one exits at once without a clean stop. */
function waitForStopSignal(): { promise: Promise<NodeJS.Signals>; dispose: () => void } {
  let received = false
  let resolve: (signal: NodeJS.Signals) => void = () => {}
  const promise = new Promise<NodeJS.Signals>((r) => {
    resolve = r
  })
  const onSignal = (signal: NodeJS.Signals): void => {
    if (received) {
      consola.warn(`Received ${signal} again: exiting without a clean stop`)
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
