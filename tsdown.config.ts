import { defineConfig } from 'tsdown'

// One CommonJS build of the code (.cjs + .d.cts), so `require('garage-ts')` works (Jest's
// default CommonJS mode, node10 resolution); scripts/esm-entries.mjs then writes the ES module
// entries (.mjs + .d.mts) as thin re-exports of it. One copy of the code means one set of classes
// whether a program imports or requires it (no dual-package hazard) and half the size. The CLI is
// in the same build and shares its chunk; citty is ES-only, so it is bundled in (a require() of
// it fails before Node 20.19). No source maps (they held the whole source, two thirds of the
// package); the JavaScript is minified (comments, whitespace, local names, compression), but
// every function and class keeps its name (`keepNames`), so stack traces still name the
// functions and `constructor.name` is unchanged. The .d.cts files keep the TSDoc.
export default defineConfig({
  entry: { index: 'lib/index.ts', testing: 'lib/testing.ts', k2v: 'lib/k2v/client.ts', cli: 'lib/cli/main.ts' },
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  dts: true,
  sourcemap: false,
  shims: true,
  clean: true,
  outDir: 'dist',
  noExternal: ['citty'],
  outputOptions: { comments: false },
  minify: {
    compress: { keepNames: { function: true, class: true } },
    mangle: { keepNames: true },
    codegen: { removeWhitespace: true },
  },
})
