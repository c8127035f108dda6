import { defineConfig } from 'tsdown'

export default defineConfig({
  entry: { index: 'lib/index.ts', testing: 'lib/testing.ts', cli: 'lib/cli/main.ts' },
  format: 'esm',
  platform: 'node',
  target: 'node20',
  dts: true,
  sourcemap: true,
  clean: true,
  outDir: 'dist',
})
