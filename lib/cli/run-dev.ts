/** Run the CLI from the TypeScript sources, for tests and development: `node --import tsx lib/cli/run-dev.ts server`. */
import { runCli } from './main.ts'

await runCli()
