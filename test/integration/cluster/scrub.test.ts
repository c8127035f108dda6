/**
 * Block repair in a 3-node RF 3 cluster of `garage server` processes: a block file damaged on
 * one node's disk is found by `garage repair --yes scrub start`, moved aside as `.corrupted` and
 * fetched again from a replica; a node whose data directory was wiped while it was stopped gets
 * every block back through resync (after `garage repair --yes blocks`).
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { garage } from '../../helpers/cli.ts'
import {
  ADMIN_TOKEN,
  blockFilesOf,
  blockPathOf,
  type ClusterNodeProcess,
  type ReplicatedCluster,
  startReplicatedCluster,
} from '../../helpers/cluster.ts'
import { CLUSTER_WAIT, eventually } from '../../helpers/eventually.ts'
import { putBlockHashes, rawS3 } from '../../helpers/workload.ts'

const BLOCK = 128 * 1024
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const blake = (b: Uint8Array): string => createHash('blake2b512').update(b).digest().subarray(0, 32).toString('hex')

/** Whether the block file of `hash` on `n` exists and holds the right bytes. */
async function validBlock(n: ClusterNodeProcess, hash: string): Promise<boolean> {
  try {
    return blake(await readFile(blockPathOf(n, hash))) === hash
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

describe('scrub and resync repair damaged or lost blocks (3 nodes, RF 3)', { timeout: 150_000 }, () => {
  let cluster: ReplicatedCluster
  const objects = new Map<string, Buffer>()
  let blocks: string[] = []
  const cli = (n: ClusterNodeProcess, args: string[]) =>
    garage(args, { env: { GARAGE_ADMIN_ADDR: n.adminEndpoint, GARAGE_ADMIN_TOKEN: ADMIN_TOKEN } })

  before(async () => {
    cluster = await startReplicatedCluster({
      nodes: 3,
      configLines: [`block_size = ${BLOCK}`, 'block_gc_delay_msec = 1000'],
    })
    for (const [key, size] of [
      ['a', 5 * BLOCK + 100],
      ['b', 2 * BLOCK],
      ['c', 300],
    ] as const) {
      const body = randomBytes(size)
      const r = await rawS3(cluster.target(0), 'PUT', `/${cluster.bucket}/${key}`, body)
      assert.equal(r.status, 200, `PUT ${key}: ${r.body}`)
      objects.set(key, body)
    }
    blocks = [...objects.values()].flatMap((b) => putBlockHashes(b, BLOCK))
    for (const [i, n] of cluster.nodes.entries()) {
      await eventually(
        `node ${i} to hold all ${blocks.length} blocks`,
        async () => {
          const have = (await blockFilesOf(n)).blocks
          return blocks.every((h) => have.has(h))
        },
        CLUSTER_WAIT,
      )
    }
  })
  after(async () => {
    await cluster?.stop()
  })

  const expectObjects = async (i: number): Promise<void> => {
    for (const [key, body] of objects) {
      const r = await rawS3(cluster.target(i), 'GET', `/${cluster.bucket}/${key}`)
      assert.equal(r.status, 200, `GET ${key} through node ${i}`)
      assert.equal(sha(r.body), sha(body), `GET ${key} through node ${i}: same bytes`)
    }
  }

  test('a block damaged on disk is found by scrub, moved aside and fetched again from a replica', async () => {
    const n = cluster.node(1)
    const hash = blocks[2] as string
    const path = blockPathOf(n, hash)
    const data = await readFile(path)
    for (let i = 0; i < 16; i++) data[1000 + i] = (data[1000 + i] as number) ^ 0xff
    await writeFile(path, data)
    assert.notEqual(blake(await readFile(path)), hash, 'the block file is damaged')

    const r = await cli(n, ['repair', '--yes', 'scrub', 'start'])
    assert.equal(r.code, 0, `garage repair --yes scrub start: ${r.stdout}\n${r.stderr}`)

    await eventually(
      'the damaged block to be moved aside and restored',
      async () => (await blockFilesOf(n)).corrupted.some((p) => p.startsWith(path)) && (await validBlock(n, hash)),
      { ...CLUSTER_WAIT, timeoutMs: 30_000 },
    )
    const aside = (await blockFilesOf(n)).corrupted.find((p) => p.startsWith(path)) as string
    assert.deepEqual(await readFile(aside), data, 'the .corrupted file keeps the damaged bytes')
    // Every other block on that node is untouched and still valid.
    for (const h of blocks) assert.ok(await validBlock(n, h), `block ${h.slice(0, 12)} valid on node 1`)
    await expectObjects(1)
  })

  test('a node whose data directory was wiped gets every block back through resync', async () => {
    const i = 2
    await cluster.kill(i)
    const dataDir = join(cluster.node(i).proc.dir, 'data')
    await rm(dataDir, { recursive: true, force: true })
    await mkdir(dataDir)
    assert.equal((await blockFilesOf(dataDir)).blocks.size, 0, 'no block file is left')
    // (Resync may start fetching as soon as the node is up: no check of an empty state after this.)
    const n = await cluster.restart(i)

    const r = await cli(n, ['repair', '--yes', 'blocks'])
    assert.equal(r.code, 0, `garage repair --yes blocks: ${r.stdout}\n${r.stderr}`)
    await eventually(
      `node ${i} to fetch all ${blocks.length} blocks again`,
      async () => {
        for (const h of blocks) if (!(await validBlock(n, h))) return false
        return true
      },
      { ...CLUSTER_WAIT, timeoutMs: 30_000 },
    )
    await expectObjects(i)
  })
})
