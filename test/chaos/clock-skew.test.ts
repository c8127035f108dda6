/**
 * The chaos suite's lost DELETE with a node 2 minutes behind (docs/design/chaos.md, "Finding: an
 * acknowledged DELETE lost to a failed PUT with a node's clock 2 minutes off"), reproduced on its
 * own and deterministically.
 *
 * A PUT through a node that is cut off after it read the key's row fails (503: no write quorum),
 * but its version stays complete on that node, stamped with that node's clock. A DELETE
 * acknowledged later through another node cannot see it (its quorum read misses the cut-off
 * node) and stamps its marker `max(own clock, newest seen + 1)`. Once the links heal, the two
 * merge by timestamp: the DELETE must win, as it came after the PUT's answer. It did only when
 * the DELETE's node read a clock later than the cut-off node's: with node 2 two minutes ahead,
 * or node 1 two minutes behind, the failed PUT's value came back over the acknowledged DELETE.
 *
 * Every link goes through the chaos suite's proxies (test/helpers/links.ts); clocks are shifted
 * by test/helpers/clock-skew-hook.ts: node 1 runs 2 minutes behind, node 2 two minutes ahead.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'
import { type ReplicatedCluster, startReplicatedCluster } from '../helpers/cluster.ts'
import { eventually } from '../helpers/eventually.ts'
import { type LinkMesh, startLinkMesh } from '../helpers/links.ts'
import { signV4 } from '../helpers/server-process.ts'
import { rawS3 } from '../helpers/workload.ts'

const SKEW_HOOK = fileURLToPath(new URL('../helpers/clock-skew-hook.ts', import.meta.url))
const SKEW_MS = 120_000
/** Node 1 behind, node 2 ahead, node 0 on time. */
const SKEWS = [0, -SKEW_MS, SKEW_MS]
const RPC_TIMEOUT_MS = 3_000

describe('clock skew of ±2 minutes: a failed PUT never overrides a later acknowledged DELETE', { timeout: 240_000 }, () => {
  let mesh: LinkMesh
  let cluster: ReplicatedCluster
  before(async () => {
    mesh = await startLinkMesh(3)
    cluster = await startReplicatedCluster({
      nodes: 3,
      configLines: [`rpc_timeout_msec = ${RPC_TIMEOUT_MS}`],
      env: { GARAGE_LOG_LEVEL: process.env.CHAOS_NODE_LOG_LEVEL ?? 'info' },
      nodeOptions: (i) => {
        const m = mesh.nodeOptions(i)
        const skew = SKEWS[i] ?? 0
        if (skew === 0) return m
        return { ...m, preload: [...(m.preload ?? []), SKEW_HOOK], env: { ...m.env, CHAOS_CLOCK_SKEW_MSEC: String(skew) } }
      },
    })
    mesh.setRtt(20, 0)
  })
  after(async () => {
    await cluster?.stop()
    await mesh?.close()
  })

  const path = (key: string): string => `/${cluster.bucket}/${key}`

  /**
   * A PUT through node `i` that sends one byte of its body, waits until the node has read the
   * key's row (it reads while the body arrives), lets `cut()` isolate the node, then sends the
   * rest: the node stamps and stores the version locally, no peer gets it. Resolves with the
   * HTTP status.
   */
  async function putCutOffMidway(i: number, key: string, body: Buffer, cut: () => void): Promise<number> {
    const target = cluster.target(i)
    const headers = signV4(target, 'PUT', path(key), { 'content-length': String(body.length) })
    return await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${target.endpoint}${path(key)}`, { method: 'PUT', headers, agent: false }, (res) => {
        res.resume()
        res.once('end', () => resolve(res.statusCode ?? 0))
        res.once('error', reject)
      })
      req.once('error', reject)
      req.write(body.subarray(0, 1))
      sleep(1_500).then(
        () => {
          cut()
          req.end(body.subarray(1))
        },
        (err: unknown) => reject(err),
      )
    })
  }

  /** Every node's answer to a GET of `key` once they agree (anti-entropy spread what each has). */
  async function settled(key: string): Promise<number[]> {
    let last: number[] = []
    await eventually(
      `every node to answer alike for ${key}`,
      async () => {
        last = await Promise.all([0, 1, 2].map(async (i) => (await rawS3(cluster.target(i), 'GET', path(key))).status))
        return last.every((s) => s === last[0])
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    )
    // The cut-off node's GET reads its own copy first, so a stray version there shows at once;
    // one more anti-entropy period (2 s, FAST_ENV) spreads it to the others as well.
    await sleep(2_500)
    return Promise.all([0, 1, 2].map(async (i) => (await rawS3(cluster.target(i), 'GET', path(key))).status))
  }

  for (const [name, writer, deleter] of [
    ['PUT through node 2 (2 minutes ahead), DELETE through node 0', 2, 0],
    ['PUT through node 0, DELETE through node 1 (2 minutes behind)', 0, 1],
  ] as const) {
    test(name, async (t) => {
      const key = `skew/${writer}-${deleter}`
      const first = await rawS3(cluster.target(0), 'PUT', path(key), randomBytes(100))
      assert.equal(first.status, 200)

      // The PUT reads the row, then its node is cut off: 503, its version stored there only.
      const status = await putCutOffMidway(writer, key, randomBytes(200), () => mesh.isolate([writer]))
      assert.equal(status, 503, 'the PUT through the cut-off node has no write quorum')

      // After that answer, a DELETE through a connected node, acknowledged.
      const del = await rawS3(cluster.target(deleter), 'DELETE', path(key))
      assert.equal(del.status, 204)
      mesh.heal()

      const finals = await settled(key)
      t.diagnostic(`GET ${key} through nodes 0, 1, 2 after the heal: ${finals.join(', ')}`)
      assert.deepEqual(finals, [404, 404, 404], 'the acknowledged DELETE hides the failed PUT on every node')
    })
  }
})
