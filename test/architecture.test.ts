/**
 * Layering rules from docs/design (lower layers never import upper ones), checked on the import
 * specifiers of every file in lib/.
 */
import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join, relative, resolve } from 'node:path'
import { test } from 'node:test'

const LIB = resolve(import.meta.dirname, '../lib')

/** Which internal layers each layer may import (besides itself). */
const ALLOWED: Record<string, string[]> = {
  util: [],
  db: ['util'],
  net: ['util'],
  rpc: ['util', 'net'],
  table: ['util', 'db', 'rpc', 'net'],
  block: ['util', 'db', 'net', 'rpc', 'table'],
  model: ['util', 'db', 'net', 'rpc', 'table', 'block'],
  'api/common': ['util', 'db', 'net', 'rpc', 'table', 'block', 'model'],
  'api/s3': ['util', 'db', 'net', 'rpc', 'table', 'block', 'model', 'api/common'],
  'api/k2v': ['util', 'db', 'net', 'rpc', 'table', 'block', 'model', 'api/common'],
  'api/admin': ['util', 'db', 'net', 'rpc', 'table', 'block', 'model', 'api/common'],
  web: ['util', 'db', 'net', 'rpc', 'table', 'block', 'model', 'api/common', 'api/s3'],
  cli: ['index.ts'],
  // The K2V client (the `./k2v` package entry): standalone, it imports nothing internal.
  k2v: [],
}

/** Third-party packages and the only layers allowed to use them. */
const PACKAGE_OWNERS: Record<string, string[]> = {
  lmdb: ['db'],
  '@sinclair/typebox': ['api/admin'],
  '@msgpack/msgpack': ['util', 'net'],
  citty: ['cli'],
  consola: ['cli'],
  busboy: ['api/s3'],
  'fast-xml-parser': ['api/s3'],
  'smol-toml': ['util'],
  undici: ['net', 'cli'],
}

/**
 * Files outside every layer: the composition root (`node.ts` and its internal `_node/` stages,
 * the only places that build components and hand them to each other), the public barrel and the
 * testing entry point. Anything else at the top of lib/ must be a layer listed in ALLOWED.
 */
const ROOTS = ['node.ts', '_node', 'index.ts', 'testing.ts']

function layerOf(file: string): string {
  const rel = relative(LIB, file).split('/')
  if (rel.length === 1) return rel[0] as string
  if (rel[0] === 'api') return `api/${rel[1]}`
  return rel[0] as string
}

async function listTs(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...(await listTs(p)))
    else if (e.name.endsWith('.ts')) out.push(p)
  }
  return out
}

test('every lib/ import respects the layering', async () => {
  const violations: string[] = []
  for (const file of await listTs(LIB)) {
    const layer = layerOf(file)
    const src = await readFile(file, 'utf8')
    for (const m of src.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/gm)) {
      const spec = m[1] as string
      if (spec.startsWith('.')) {
        const target = resolve(dirname(file), spec)
        const tl = layerOf(target)
        if (tl === layer) continue
        const allowed = ALLOWED[layer]
        if (allowed === undefined) continue // node.ts, _node/, index.ts, testing.ts: see ROOTS
        if (!allowed.includes(tl)) violations.push(`${relative(LIB, file)} (${layer}) imports ${spec} (${tl})`)
      } else if (!spec.startsWith('node:')) {
        const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] as string)
        const owners = PACKAGE_OWNERS[pkg]
        if (owners !== undefined && !owners.includes(layer)) violations.push(`${relative(LIB, file)} (${layer}) uses ${pkg}`)
      }
    }
  }
  assert.deepEqual(violations, [], 'layering violations')
})

test('library code never prints', async () => {
  const offenders: string[] = []
  for (const file of await listTs(LIB)) {
    if (layerOf(file) === 'cli') continue
    const src = await readFile(file, 'utf8')
    if (/\bconsole\.(log|error|warn|info|debug)\(/.test(src) || /process\.(stdout|stderr)\.write/.test(src)) {
      offenders.push(relative(LIB, file))
    }
  }
  assert.deepEqual(offenders, [], 'files printing outside lib/cli')
})

test('request bodies reach XML only through lib/api/s3/xml.ts (one strict reader)', async () => {
  const offenders: string[] = []
  for (const file of await listTs(LIB)) {
    const rel = relative(LIB, file)
    if (rel === 'api/s3/xml.ts') continue
    const src = await readFile(file, 'utf8')
    // Another parser (fast-xml-parser's, or any DOM/SAX parser) would bypass the reader's refusal of
    // DOCTYPE and its decoding of character references.
    if (/\bfrom\s+['"](fast-xml-parser|@xmldom\/|sax|xml2js|libxmljs)/.test(src)) offenders.push(rel)
  }
  assert.deepEqual(offenders, [], 'files parsing XML on their own')
})

/** Relative import specifiers of a file, with whether the statement is type-only. */
function importsOf(src: string): Array<{ spec: string; typeOnly: boolean; reexport: boolean }> {
  const out: Array<{ spec: string; typeOnly: boolean; reexport: boolean }> = []
  for (const m of src.matchAll(/^\s*(import|export)\s+(type\s)?[^'"]*?from\s+['"]([^'"]+)['"]/gm)) {
    out.push({ spec: m[3] as string, typeOnly: m[2] !== undefined, reexport: m[1] === 'export' })
  }
  return out
}

test('every file of lib/ belongs to a layer or to the composition root', async () => {
  const strays: string[] = []
  for (const file of await listTs(LIB)) {
    const layer = layerOf(file)
    if (ALLOWED[layer] === undefined && !ROOTS.includes(layer)) strays.push(relative(LIB, file))
  }
  assert.deepEqual(strays, [], 'files in no known layer (add the folder to ALLOWED in test/architecture.test.ts)')
})

test('the APIs never import each other (only node.ts wires them; web reuses the S3 GET path)', async () => {
  const apis = ['api/s3', 'api/k2v', 'api/admin']
  const violations: string[] = []
  for (const file of await listTs(LIB)) {
    const layer = layerOf(file)
    if (!apis.includes(layer) && layer !== 'api/common') continue
    for (const { spec } of importsOf(await readFile(file, 'utf8'))) {
      if (!spec.startsWith('.')) continue
      const tl = layerOf(resolve(dirname(file), spec))
      if (tl !== layer && apis.includes(tl)) violations.push(`${relative(LIB, file)} imports ${spec}`)
    }
  }
  assert.deepEqual(violations, [], 'API-to-API imports')
})

test('node.ts is the only wiring place: lib/_node/ is internal to it, index.ts only re-exports, testing.ts only uses node.ts', async () => {
  const violations: string[] = []
  for (const file of await listTs(LIB)) {
    const rel = relative(LIB, file)
    const layer = layerOf(file)
    for (const { spec, typeOnly, reexport } of importsOf(await readFile(file, 'utf8'))) {
      if (!spec.startsWith('.')) continue
      const target = relative(LIB, resolve(dirname(file), spec))
      if (layerOf(resolve(dirname(file), spec)) === '_node' && layer !== 'node.ts' && layer !== '_node') {
        violations.push(`${rel} imports ${target} (only node.ts may use lib/_node/)`)
      }
      if (rel === 'index.ts' && !reexport) violations.push(`index.ts imports ${target} (the barrel only re-exports)`)
      if (rel === 'testing.ts' && !typeOnly && target !== 'node.ts') {
        violations.push(`testing.ts imports ${target} (it builds nodes through createGarageNode only)`)
      }
    }
  }
  assert.deepEqual(violations, [], 'wiring outside node.ts')
})

test('only lib/cli reads the GARAGE_TS_TEST_* timing variables (the library takes the typed `timing` option)', async () => {
  const offenders: string[] = []
  for (const file of await listTs(LIB)) {
    if (layerOf(file) === 'cli') continue
    if ((await readFile(file, 'utf8')).includes('GARAGE_TS_TEST_')) offenders.push(relative(LIB, file))
  }
  assert.deepEqual(offenders, [], 'files outside lib/cli mentioning GARAGE_TS_TEST_*')
})

test('TypeBox (the admin contract) is loaded only on demand: not by the barrel, the CLI or a node serving S3', async () => {
  // Static value imports (not `import type`, not dynamic `import()`) reachable from the entry
  // points; the admin server loads validate.ts and openapi.ts with `import()` on first use.
  const entries = ['index.ts', 'node.ts', 'cli/main.ts'].map((f) => join(LIB, f))
  const seen = new Set<string>()
  const chains = new Map<string, string>(entries.map((e) => [e, relative(LIB, e)]))
  const loaders: string[] = []
  const todo = [...entries]
  while (todo.length > 0) {
    const file = todo.pop() as string
    if (seen.has(file)) continue
    seen.add(file)
    for (const { spec, typeOnly } of importsOf(await readFile(file, 'utf8'))) {
      if (typeOnly) continue
      if (spec === '@sinclair/typebox' || spec.startsWith('@sinclair/typebox/')) loaders.push(chains.get(file) as string)
      if (!spec.startsWith('.')) continue
      const target = resolve(dirname(file), spec)
      if (!chains.has(target)) chains.set(target, `${chains.get(file)} → ${relative(LIB, target)}`)
      todo.push(target)
    }
  }
  assert.ok(seen.has(join(LIB, 'api/admin/api-server.ts')), 'the walk reaches the admin server')
  assert.deepEqual(loaders, [], 'import chains that load TypeBox eagerly')
})
