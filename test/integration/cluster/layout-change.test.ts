/**
 * Layout changes under load: a 3-node, 3-zone RF 3 cluster gets a fourth node (a new zone),
 * then loses one of the first three, each change applied while writers and readers run. Once
 * the layout settles (one live version on every node), the workload's history checks out
 * (nothing acknowledged is lost, no stale read), and every block of a live object is stored on
 * exactly the nodes the new layout names for its partition — the removed node keeps none.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { garage } from '../../helpers/cli.ts'
import {
  ADMIN_TOKEN,
  activeLayoutVersions,
  applyLayout,
  blockFilesOf,
  type ReplicatedCluster,
  readCurrentLayout,
  readTree,
  startReplicatedCluster,
  storageNodesOfBlock,
  waitBucketUsable,
} from '../../helpers/cluster.ts'
import { eventually } from '../../helpers/eventually.ts'
import { blockRefCodec } from '../../../lib/model/s3/block-ref-table.ts'
import { defineCodec } from '../../../lib/util/codec.ts'
import { checkHistory, runWorkload, settleFinal, workloadKeys } from '../../helpers/workload.ts'

const BLOCK = 64 * 1024
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

describe('adding and removing a node under load (RF 3)', { timeout: 240_000 }, () => {
  let cluster: ReplicatedCluster
  before(async () => {
    cluster = await startReplicatedCluster({
      nodes: 3,
      configLines: ['rpc_timeout_msec = 5000', `block_size = ${BLOCK}`, 'block_gc_delay_msec = 1000'],
    })
  })
  after(async () => {
    await cluster?.stop()
  })

  test('nothing is lost and every block ends on the nodes of the new layout', async (t) => {
    const prefix = 'lc/'
    const keyCount = 8
    let added = -1
    let finalVersion = 0
    const removed = 1
    const steps: string[] = []
    const t0 = Date.now()
    const result = await runWorkload({
      cluster,
      prefix,
      keys: keyCount,
      writers: 3,
      readers: 2,
      durationMs: 10_000,
      blockSize: BLOCK,
      // Fewer inline objects than by default: the check of block placement below needs live
      // objects with blocks at the end, and with the default weights every key's last write left
      // none (a delete or an inline body) in about 1 run of 75 (0.58^8); with these, 1 in 2,500.
      sizes: [
        { weight: 1, min: 16, max: 2_000 },
        { weight: 3, min: 10_000, max: 100_000 },
        { weight: 2, min: 300_000, max: 700_000 },
      ],
      seed: 42,
      during: async () => {
        await sleep(2_000)
        added = await cluster.addNode('z4')
        const v2 = await applyLayout(cluster.node(0), { roles: [{ id: cluster.node(added).id, zone: 'z4' }] }, cluster.nodes)
        steps.push(`${Date.now() - t0} ms: node ${added} added in zone z4, layout v${v2} everywhere`)
        await waitBucketUsable(cluster, 20_000, [added])
        cluster.serve(added)
        steps.push(`${Date.now() - t0} ms: node ${added} serves clients`)
        await sleep(4_000)
        // Clients stop using the node that leaves (it is no gateway either once removed).
        cluster.retire(removed)
        finalVersion = await applyLayout(cluster.node(0), { remove: [cluster.node(removed).id] }, cluster.nodes)
        steps.push(`${Date.now() - t0} ms: node ${removed} removed, layout v${finalVersion} everywhere`)
        await sleep(4_000)
      },
    })
    const unacked = result.history.writes.filter((w) => !w.acked)
    const info =
      `stats ${JSON.stringify(result.stats)}; steps:\n${steps.join('\n')}\nunacknowledged writes:\n` +
      unacked.map((w) => `#${w.id} ${w.kind} ${w.key} [${w.start - t0}, ${w.end - t0}]: ${w.attempts?.join('; ')}`).join('\n')
    for (const line of info.split('\n')) t.diagnostic(line)
    assert.ok(result.stats.acked >= 30, `enough writes were acknowledged (${info})`)
    assert.equal(cluster.nodes.length, 4)
    assert.deepEqual(result.clientErrors, [], 'no request was refused with a 4xx')

    // The layout settles: every node (the removed one too) keeps only the last version.
    for (const [i, n] of cluster.nodes.entries()) {
      await eventually(
        `node ${i} to keep only layout version ${finalVersion}`,
        async () => {
          const live = await activeLayoutVersions(n)
          return live.length === 1 && live[0] === finalVersion
        },
        { timeoutMs: 90_000, intervalMs: 1_000 },
      )
    }

    const keys = workloadKeys(prefix, keyCount)
    const final = await settleFinal(cluster, keys, prefix)
    const violations = checkHistory({ ...result.history, ...final }, { requireAgreement: true })
    assert.deepEqual(violations, [], info)

    // Blocks: exactly on the nodes the current layout names, nowhere else.
    const layout = await readCurrentLayout(cluster.node(0))
    assert.equal(layout.version, finalVersion)
    const live = new Set<string>()
    for (const f of final.finals) if (f.value !== null) for (const h of result.blocksOf.get(f.value) ?? []) live.add(h)
    assert.ok(live.size > 0, `some live objects have blocks (${info})`)
    const writeOfBlock = (h: string): string => {
      const w = result.history.writes.find((x) => x.value !== null && (result.blocksOf.get(x.value) ?? []).includes(h))
      return w === undefined
        ? 'no write'
        : `write #${w.id} ${w.key} acked=${w.acked} [${w.start - t0}, ${w.end - t0}] ${w.attempts?.join('; ')}`
    }
    // Blocks of superseded writes may stay referenced: a PUT that finishes after a newer one
    // already replaced it adds block references to a deleted version, as in Garage (`garage
    // repair block-refs` drops them). Such a block is placed like any other: on all the nodes of
    // its partition. A block file nothing references any more (an orphan: a late background
    // copy that landed after the block was collected) is garbage that `garage repair blocks`
    // removes, as in Garage; it is allowed only until that repair ran.
    const rcCodec = defineCodec<{ c?: number; d?: number }>('G0rc')
    const liveRefs = async (): Promise<Map<string, string[]>> => {
      const out = new Map<string, string[]>()
      for (const [i, n] of cluster.nodes.entries()) {
        for (const v of (await readTree(n, 'block_ref:table')).values()) {
          const e = blockRefCodec.decode(v)
          if (e.deleted) continue
          const h = Buffer.from(e.block).toString('hex')
          out.set(h, [...(out.get(h) ?? []), `node ${i}`])
        }
      }
      return out
    }
    const who = (ids: string[]): string => ids.map((id) => cluster.nodes.findIndex((n) => n.id === id)).join(',')
    let leaked = 0
    let orphans: string[] = []
    const placementProblems = async (): Promise<string[]> => {
      const problems: string[] = []
      const files = await Promise.all(cluster.nodes.map(async (n) => (await blockFilesOf(n)).blocks))
      const refs = await liveRefs()
      leaked = 0
      orphans = []
      for (const h of new Set([...live, ...files.flatMap((f) => [...f])])) {
        const named = storageNodesOfBlock(layout, h)
        const holders = cluster.nodes.flatMap((n, i) => ((files[i] as Set<string>).has(h) ? [n.id] : []))
        const exact = holders.length === named.length && named.every((id) => holders.includes(id))
        const referenced = live.has(h) || refs.has(h)
        if (!referenced) {
          if (holders.length > 0) orphans.push(`${h.slice(0, 12)} on nodes [${who(holders)}] (${writeOfBlock(h)})`)
          continue
        }
        if (exact) {
          if (!live.has(h)) leaked++
          continue
        }
        problems.push(
          `${live.has(h) ? 'live' : 'still referenced'} block ${h.slice(0, 12)} on nodes [${who(holders)}], layout names [${who(named)}]` +
            `${live.has(h) ? '' : ` (refs on ${refs.get(h)?.join(', ')}; ${writeOfBlock(h)})`}`,
        )
      }
      return problems
    }
    /** Each node's reference count of a block, for failure messages. */
    const rcOf = async (h: string): Promise<string> => {
      const out: string[] = []
      for (const [i, n] of cluster.nodes.entries()) {
        const raw = (await readTree(n, 'block_local_rc')).get(h)
        out.push(`node ${i}: ${raw === undefined ? 'no rc' : JSON.stringify(rcCodec.decode(raw))}`)
      }
      return out.join(', ')
    }
    const waitPlaced = async (what: string, strict: boolean): Promise<void> => {
      let last: string[] = []
      await eventually(
        what,
        async () => {
          last = await placementProblems()
          if (strict) last.push(...orphans.map((o) => `orphan block ${o}`))
          return last.length === 0
        },
        { timeoutMs: 60_000, intervalMs: 1_000 },
      ).catch(async (err: unknown) => {
        const details: string[] = []
        for (const line of last.slice(0, 5)) {
          const h = /block ([0-9a-f]{12})/.exec(line)?.[1] as string
          const full = [...live, ...(await liveRefs()).keys()].find((x) => x.startsWith(h))
          details.push(`${line}${full === undefined ? '' : `\n    rc: ${await rcOf(full)}`}`)
        }
        throw new Error(`${(err as Error).message}:\n${details.join('\n')}\n(${last.length} problems)`, { cause: err })
      })
    }
    await waitPlaced('every referenced block on exactly the nodes of the new layout', false)
    t.diagnostic(`${live.size} live blocks; ${leaked} blocks of superseded writes still referenced (placed right too)`)
    if (orphans.length > 0) {
      t.diagnostic(`${orphans.length} orphan block files before garage repair blocks:`)
      for (const o of orphans) t.diagnostic(`  ${o}`)
      const r = await garage(['repair', '-a', '--yes', 'blocks'], {
        env: { GARAGE_ADMIN_ADDR: cluster.node(0).adminEndpoint, GARAGE_ADMIN_TOKEN: ADMIN_TOKEN },
      })
      assert.equal(r.code, 0, `garage repair -a --yes blocks: ${r.stdout}\n${r.stderr}`)
      await waitPlaced('no orphan block file left after garage repair blocks', true)
    }
    const removedBlocks = (await blockFilesOf(cluster.node(removed))).blocks.size
    assert.equal(removedBlocks, 0, 'the removed node holds no block')
  })
})
