/** `garage layout …` against a real node, through the admin API. */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { startTestNode, type TestNode } from '../../lib/testing.ts'
import { type CliResult, garage } from '../helpers/cli.ts'

let node: TestNode
before(async () => {
  node = await startTestNode({ replication_factor: 3, admin: { api_bind_addr: '127.0.0.1:0', admin_token: 'tok' } })
})
after(() => node.close())

const run = (...args: string[]) =>
  garage(['layout', ...args], { env: { GARAGE_ADMIN_ADDR: node.adminEndpoint ?? '', GARAGE_ADMIN_TOKEN: 'tok' } })

function ok(r: CliResult, what: string): string {
  assert.equal(r.code, 0, `${what} failed:\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}
function fails(r: CliResult, re: RegExp): void {
  assert.notEqual(r.code, 0, `expected a failure:\n${r.stdout}`)
  assert.match(r.stderr, re)
}

const B = 'b2'.repeat(32)
const C = 'c3'.repeat(32)
const D = 'd4'.repeat(32)

describe('garage layout', () => {
  test('assign, show, apply, revert, history, config, remove', async () => {
    const self = node.node.nodeId
    // Independent commands run side by side: each one is a process start.
    const [assigned, two, unknown] = await Promise.all([
      run('assign', self.slice(0, 10), '-z', 'dc1', '-c', '10G', '-t', 'fast'),
      run('assign', B, C, '-z', 'dc2', '-c', '10G'),
      run('assign', 'ffff', '-z', 'dc1', '-c', '1G'),
    ])
    assert.match(ok(assigned, 'assign'), /Role changes are staged but not yet committed/)
    ok(two, 'assign two nodes')
    fails(unknown, /0 nodes match 'ffff'/)

    const show = ok(await run('show'), 'show')
    assert.match(show, /==== CURRENT CLUSTER LAYOUT ====/)
    assert.match(show, /No nodes currently have a role in the cluster/)
    assert.match(show, /Current cluster layout version: 0/)
    assert.match(show, /==== STAGED ROLE CHANGES ====/)
    assert.match(show, new RegExp(`${self.slice(0, 16)}\\s+fast\\s+dc1\\s+10\\.0 GB`))
    assert.match(show, /==== NEW CLUSTER LAYOUT AFTER APPLYING CHANGES ====/)
    assert.match(show, /Optimal partition size/)
    assert.match(show, /garage layout apply --version 1/)

    const [noVersion, wrong] = await Promise.all([run('apply'), run('apply', '--version', '2')])
    fails(noVersion, /Please pass the new layout version number/)
    fails(wrong, /expected 1, got 2/)
    const applied = ok(await run('apply', '--version', '1'), 'apply')
    assert.match(applied, /New cluster layout with updated role assignment has been applied in cluster/)

    ok(await run('assign', D, '-z', 'dc3', '-c', '10G'), 'assign a fourth node')
    const show2 = ok(await run('show'), 'show after a change')
    assert.match(show2, /Current cluster layout version: 1/)
    assert.match(show2, /A total of \d+ new copies of partitions need to be transferred/)
    assert.match(show2, /Zone redundancy: maximum/)
    assert.match(show2, /TOTAL/)

    const [noYes, history, historyText] = await Promise.all([run('revert'), run('history', '--json'), run('history')])
    fails(noYes, /--yes/)
    const h = JSON.parse(ok(history, 'history')) as { currentVersion: number; versions: Array<{ status: string }> }
    assert.equal(h.currentVersion, 1)
    assert.equal(h.versions[0]?.status, 'Current')
    const hist = ok(historyText, 'history')
    assert.match(hist, /==== LAYOUT HISTORY ====/)
    assert.match(hist, /#1\s+Current\s+3\s+0/)
    assert.match(ok(await run('revert', '--yes'), 'revert'), /All proposed role changes in cluster layout have been canceled/)

    const [config, remove] = await Promise.all([run('config', '-r', '2'), run('remove', C.slice(0, 8))])
    assert.match(ok(config, 'config'), /The zone redundancy parameter has been set to '2'/)
    assert.match(ok(remove, 'remove'), /Role removal is staged/)
    const json = JSON.parse(ok(await run('show', '--json'), 'show --json')) as {
      layout: { version: number; stagedRoleChanges: unknown[]; stagedParameters: unknown }
    }
    assert.equal(json.layout.version, 1)
    assert.deepEqual(json.layout.stagedRoleChanges, [{ id: C, remove: true }])
    assert.deepEqual(json.layout.stagedParameters, { zoneRedundancy: { atLeast: 2 } })
  })
})
