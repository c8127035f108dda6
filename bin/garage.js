#!/usr/bin/env node
// The `garage` command: loads the CLI of the package's CommonJS build (dist/cli.cjs).
import cli from '../dist/cli.cjs'

await cli.runCli()
