/** freePort: a port handed out is not handed out again, in this process or another. */
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { freePort } from '../helpers/links.ts'

test('freePort never returns a port twice, and reserves each one for the other test processes', async () => {
  const ports = new Set<number>()
  for (let i = 0; i < 300; i++) {
    const p = await freePort()
    assert.ok(!ports.has(p), `port ${p} returned twice`)
    ports.add(p)
    const file = join(tmpdir(), 'garage-test-ports', String(p))
    assert.ok(existsSync(file), `no reservation for ${p}`)
    assert.equal(readFileSync(file, 'utf8').trim(), String(process.pid))
  }
})
