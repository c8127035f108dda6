/**
 * `garage block …`, `garage repair …` and `garage worker …` as child processes against a real
 * node with the admin API, plus the pure renderers.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { renderBlockErrors, renderBlockInfo } from '../../lib/cli/commands/block.ts'
import { renderRepairResult, repairTypeOf } from '../../lib/cli/commands/repair.ts'
import { startTestNode, type TestNode } from '../../lib/testing.ts'
import { blake2sum, toHex } from '../../lib/util/data.ts'
import { type CliResult, garage } from '../helpers/cli.ts'

const lines = (s: string): string[] => s.split('\n').filter((l) => l.trim() !== '')

function expectOk(r: CliResult, what: string): void {
  assert.equal(r.code, 0, `${what}: exit code 0; output:\n${r.stdout}\n${r.stderr}`)
}

function expectOneLineError(r: CliResult, re: RegExp): void {
  assert.equal(r.code, 1, `exit code 1; output:\n${r.stdout}\n${r.stderr}`)
  const errs = lines(r.stderr)
  assert.equal(errs.length, 1, `one line on stderr, got:\n${r.stderr}`)
  assert.match(errs[0] ?? '', re)
}

describe('renderers', () => {
  test('repairTypeOf maps Garage names to repairType', () => {
    assert.equal(repairTypeOf('mpu', undefined), 'multipartUploads')
    assert.equal(repairTypeOf('block-rc', undefined), 'blockRc')
    assert.deepEqual(repairTypeOf('scrub', 'resume'), { scrub: 'resume' })
    assert.throws(() => repairTypeOf('scrub', undefined), /start, pause, resume, cancel/)
    assert.throws(() => repairTypeOf('nothing', undefined), /unknown repair/)
  })
  test('renderRepairResult lists errors, then launched repairs', () => {
    const rows = renderRepairResult({ success: { ['a'.repeat(64)]: null }, error: { ['b'.repeat(64)]: 'down' } })
    assert.deepEqual(rows, [`${'b'.repeat(16)}\tError: down`, `${'a'.repeat(16)}\tRepair launched`])
  })
  test('renderBlockErrors and renderBlockInfo follow Garage', () => {
    const h = 'c'.repeat(64)
    const t = lines(renderBlockErrors([{ blockHash: h, refcount: 1, errorCount: 2, lastTrySecsAgo: 120, nextTryInSecs: 0 }]))
    assert.match(t[0] ?? '', /^Hash\s+RC\s+Errors\s+Last error\s+Next try$/)
    assert.match(t[1] ?? '', new RegExp(`^${h}\\s+1\\s+2\\s+2 minutes ago\\s+in asap$`))
    const info = renderBlockInfo({
      blockHash: h,
      refcount: 2,
      versions: [
        {
          versionId: 'd'.repeat(64),
          refDeleted: false,
          versionDeleted: true,
          garbageCollected: false,
          backlink: { object: { bucketId: 'e'.repeat(64), key: 'k' } },
        },
      ],
    })
    assert.match(info, /==== BLOCK INFORMATION ====/)
    assert.match(info, /active\s+d{16} \(deleted\)\s+e{16}\s+k/)
    assert.match(info, /garage repair block-refs/)
    assert.match(info, /garage repair block-rc/)
  })
})

describe('block, repair and worker commands against a node', () => {
  let node: TestNode
  const body = Buffer.alloc(32 * 1024, 3)
  const hash = toHex(blake2sum(body))
  let env: Record<string, string>
  before(async () => {
    node = await startTestNode({ admin: { api_bind_addr: '127.0.0.1:0', admin_token: 'cli-tok' } })
    env = { GARAGE_ADMIN_ADDR: node.adminEndpoint ?? '', GARAGE_ADMIN_TOKEN: 'cli-tok' }
    const s3 = new S3Client(node.s3Config)
    await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'obj', Body: body }))
    s3.destroy()
  })
  after(() => node.close())
  const run = (args: string[]): Promise<CliResult> => garage(args, { env })

  test('block info shows the block and the object using it; an unknown block is one error line', async () => {
    const [r, unknown] = await Promise.all([run(['block', 'info', hash.slice(0, 8)]), run(['block', 'info', 'f'.repeat(64)])])
    expectOk(r, 'block info')
    assert.match(r.stdout, new RegExp(`Block hash:\\s+${hash}`))
    assert.match(r.stdout, /Refcount:\s+1/)
    assert.match(r.stdout, /active\s+[0-9a-f]{16}\s+[0-9a-f]{16}\s+obj/)
    expectOneLineError(unknown, /NoSuchBlock/)
  })

  test('block list-errors, retry-now and purge', async () => {
    // Independent commands run side by side: each child process takes a few seconds to start.
    const [l, retry, purgeNoYes] = await Promise.all([
      run(['block', 'list-errors']),
      run(['block', 'retry-now', '--all']),
      run(['block', 'purge', hash]),
    ])
    expectOk(l, 'block list-errors')
    assert.deepEqual(
      lines(l.stdout).map((x) => x.split(/\s+/)[0]),
      ['Hash'],
    )
    expectOk(retry, 'retry-now --all')
    assert.match(retry.stdout, /^0 blocks returned in queue for a retry now/)
    expectOneLineError(purgeNoYes, /Pass the --yes flag/)
    const p = await run(['block', 'purge', '--yes', hash])
    expectOk(p, 'block purge')
    assert.match(p.stdout, /^Purged 1 blocks: deleted 1 versions, 1 objects, 0 multipart uploads/)
  })

  test('repair launches on this node or on all nodes, and worker list shows the repair workers', async () => {
    const [versions, all] = await Promise.all([run(['repair', '--yes', 'versions']), run(['repair', '-a', '--yes', 'block-rc'])])
    expectOk(versions, 'repair versions')
    assert.match(versions.stdout, new RegExp(`^${node.node.nodeId.slice(0, 16)}\\s+Repair launched`))
    expectOk(all, 'repair -a block-rc')
    assert.match(all.stdout, /Repair launched/)
    const [w, g] = await Promise.all([run(['worker', 'list']), run(['worker', 'get', '-a', 'resync-tranquility'])])
    expectOk(w, 'worker list')
    assert.match(w.stdout, /version repair worker/)
    assert.match(w.stdout, /Block refcount repair worker/)
    expectOk(g, 'worker get -a')
    assert.match(g.stdout, new RegExp(`${node.node.nodeId.slice(0, 16)}\\s+resync-tranquility\\s+\\d+`))
  })
})
