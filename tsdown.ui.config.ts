import { defineConfig } from 'tsdown'

/**
 * The web console (console/, served by the admin API under /ui/): one browser bundle with Preact
 * inlined, plus index.html and app.css, into dist/ui/. Built by `npm run build` after the library.
 */
export default defineConfig({
  entry: { app: 'console/src/main.tsx' },
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  tsconfig: 'console/tsconfig.json',
  dts: false,
  sourcemap: false,
  minify: true,
  clean: true,
  outDir: 'dist/ui',
  outExtensions: () => ({ js: '.js' }),
  deps: { alwaysBundle: [/.*/], onlyBundle: ['preact'] },
  copy: [{ from: ['console/index.html', 'console/app.css'] }],
})
