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
}

/** Third-party packages and the only layers allowed to use them. */
const PACKAGE_OWNERS: Record<string, string[]> = {
  lmdb: ['db'],
  '@msgpack/msgpack': ['util', 'net'],
  citty: ['cli'],
  consola: ['cli'],
  'fast-xml-parser': ['api/s3'],
  'smol-toml': ['util'],
  undici: ['net', 'cli'],
}

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
        if (allowed === undefined) continue // node.ts, index.ts, testing.ts: the composition root
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
