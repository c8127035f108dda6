/** Membership between in-process transports, and the health model. */
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, type TestContext, test } from 'node:test'
import type { NetApp } from '../../lib/net/netapp.ts'
import type { NodeKey } from '../../lib/net/node-key.ts'
import { applyStagedChanges, newLayoutHistory, stageRole } from '../../lib/rpc/layout/history.ts'
import { computeClusterHealth, System, type SystemTiming, writeQuorum } from '../../lib/rpc/system.ts'
import { type Logger, silentLogger } from '../../lib/util/logger.ts'
import { eventually } from '../helpers/eventually.ts'
import { startTcpProxy } from '../helpers/tcp-proxy.ts'
import { memoryNodeKey, newSecret, startNode } from '../net/net-fixtures.ts'

const FAST: SystemTiming = { pingIntervalMs: 100, statusIntervalMs: 200, retryMinMs: 100, retryMaxMs: 300 }

interface Member {
  net: NetApp
  key: NodeKey
  system: System
  dir: string
  addr: string
}

async function member(
  t: TestContext,
  secret: string,
  bootstrap: Member[] = [],
  o: { key?: NodeKey; dir?: string; log?: Logger } = {},
): Promise<Member> {
  const dir = o.dir ?? (await mkdtemp(join(tmpdir(), 'garage-system-')))
  const { net, key, addr } = await startNode(t, secret, { nodeKey: o.key ?? memoryNodeKey() })
  const stop = new AbortController()
  const system = new System({
    netApp: net,
    nodeKey: key,
    metadataDir: dir,
    bootstrapPeers: bootstrap.map((b) => ({ nodeId: b.key.id, addr: { host: '127.0.0.1', port: Number(b.addr.split(':')[1]) } })),
    replicationFactor: 3,
    log: o.log ?? silentLogger,
    signal: stop.signal,
    statusExtra: () => ({ layoutDigest: `digest-${key.id.slice(0, 4)}` }),
    timing: FAST,
  })
  t.after(async () => {
    stop.abort()
    await system.close()
    // Only once the system is closed: it may still be writing its peer list.
    if (o.dir === undefined) await rm(dir, { recursive: true, force: true })
  })
  await system.start()
  return { net, key, system, dir, addr: `127.0.0.1:${addr.port}` }
}

describe('System', () => {
  test('a full mesh forms from one bootstrap address; statuses and events flow', async (t) => {
    const secret = newSecret()
    const a = await member(t, secret)
    const ups: string[] = []
    const digests = new Map<string, string>()
    a.system.onPeerUp((id) => ups.push(id))
    a.system.onStatus((id, s) => digests.set(id, s.layoutDigest))
    const b = await member(t, secret, [a])
    const c = await member(t, secret, [a])
    const all = [a, b, c]
    await eventually('every node sees the two others up', () => all.every((m) => m.system.upPeers().length === 2))
    assert.deepEqual(new Set(ups), new Set([b.key.id, c.key.id]))
    await eventually('statuses received', () => digests.size === 2)
    assert.equal(digests.get(b.key.id), `digest-${b.key.id.slice(0, 4)}`)
    const status = a.system.peerStatus()
    assert.equal(status[0]?.id, a.key.id, 'ourselves first')
    assert.equal(status.length, 3)
    assert.ok(
      status.every((s) => s.isUp && s.hostname !== undefined),
      'every node is up with a hostname',
    )
    // The peer list is persisted, so a restart reconnects without bootstrap peers.
    await new Promise((r) => setTimeout(r, 300))
    const saved = JSON.parse(await readFile(join(b.dir, 'peer_list'), 'utf8')) as { peers: Array<{ id: string }> }
    assert.deepEqual(new Set(saved.peers.map((p) => p.id)), new Set([a.key.id, c.key.id]))
  })

  test('a closed peer goes down after failed pings; it is up again once back', async (t) => {
    const secret = newSecret()
    const lines: string[] = []
    const t0 = Date.now()
    const logOf = (name: string): Logger => {
      const at =
        (level: string) =>
        (message: unknown, ...args: unknown[]): void => {
          lines.push(`${Date.now() - t0} ms ${name} ${level}: ${String(message)} ${args.map(String).join(' ')}`)
        }
      const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), withTag: () => log }
      return log
    }
    const a = await member(t, secret, [], { log: logOf('a') })
    const b = await member(t, secret, [a])
    await eventually('a sees b up', () => a.system.upPeers().includes(b.key.id))
    await b.system.close()
    await b.net.close()
    await eventually('a sees b down', () => !a.system.upPeers().includes(b.key.id))
    const b2 = await member(t, secret, [], { key: b.key, dir: b.dir, log: logOf('b2') })
    // What is checked is that the nodes find each other again, not how fast: 15 s, not the
    // default 5, so that a CI machine busy starting other tests' clusters does not fail it (it
    // failed at 5 s once in a full run and was not reproduced; retries are 100–300 ms apart
    // here). A slow return is reported with both nodes' logs, and a failure carries them.
    const started = Date.now()
    const back = { timeoutMs: 15_000 }
    try {
      await eventually('b is back from its peer_list', () => b2.system.upPeers().includes(a.key.id), back)
      await eventually('a sees b up again', () => a.system.upPeers().includes(b.key.id), back)
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${lines.join('\n')}`, { cause: err })
    }
    if (Date.now() - started > 5_000) t.diagnostic(`slow return (${Date.now() - started} ms):\n${lines.join('\n')}`)
  })

  test('a ping on a pooled socket that died while idle is sent again on a new one, not counted as failed', async (t) => {
    // Every connection through the proxy dies when a request arrives on it after it sat idle:
    // pings find their pooled socket closed ("other side closed" / ECONNRESET at once). Sent
    // again on a fresh connection, they succeed: no failed ping is counted (before, each such
    // ping counted, one step towards the 4 that mark a peer down: docs/design/chaos.md, the
    // 1 s flap that marked a node down).
    const secret = newSecret()
    const a = await member(t, secret)
    const aPort = Number(a.addr.split(':')[1])
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: aPort } })
    t.after(() => proxy.close())
    const debug: string[] = []
    const log: Logger = { ...silentLogger, debug: (m: unknown) => void debug.push(String(m)) }
    log.withTag = () => log
    const b = await member(t, secret, [], { log })
    await b.system.connect(`${a.key.id}@127.0.0.1:${proxy.port}`)
    const lastUp = new Map<number, number>()
    let killed = 0
    proxy.setTamper((chunk, info) => {
      if (info.direction !== 'up') return undefined
      const now = Date.now()
      const prev = lastUp.get(info.conn)
      lastUp.set(info.conn, now)
      if (prev !== undefined && now - prev > 50) {
        killed++
        setImmediate(() => proxy.dropConnections())
        return null
      }
      return chunk
    })
    const downs: string[] = []
    const until = Date.now() + 1_500
    while (Date.now() < until) {
      if (!b.system.upPeers().includes(a.key.id)) downs.push('down')
      await new Promise((r) => setTimeout(r, 20))
    }
    assert.ok(killed >= 3, `pooled sockets were killed under pings (${killed})`)
    assert.deepEqual(downs, [], 'a stays up')
    const retried = debug.filter((m) => m.includes('sent again on a new connection'))
    assert.ok(retried.length >= 1, `pings were sent again (${retried.length})`)
    assert.deepEqual(
      debug.filter((m) => /ping to node .* failed \(\d+ in a row\)/.test(m)),
      [],
      'no failed ping counted: each succeeded on its second, fresh connection',
    )
  })

  test('connect() reaches a node given as <id>@host:port and rejects a bad one', async (t) => {
    const secret = newSecret()
    const a = await member(t, secret)
    const b = await member(t, secret)
    await a.system.connect(`${b.key.id}@${b.addr}`)
    assert.ok(a.system.upPeers().includes(b.key.id), 'b is up after connect()')
    const stranger = await member(t, newSecret())
    await assert.rejects(a.system.connect(`${stranger.key.id}@${stranger.addr}`))
    await assert.rejects(a.system.connect('not-an-address'))
  })
})

describe('computeClusterHealth', () => {
  const ids = ['a', 'b', 'c'].map((x) => x.repeat(64))
  let layout = newLayoutHistory(3)
  for (const [i, id] of ids.entries()) layout = stageRole(layout, id, { zone: `z${i}`, capacity: 1e9, tags: [] })
  layout = applyStagedChanges(layout, 1).history
  const nodes = (up: number) => ids.map((id, i) => ({ id, isUp: i < up }))

  test('write quorum of the consistent mode', () => {
    assert.deepEqual([1, 2, 3, 5].map(writeQuorum), [1, 2, 2, 3])
  })
  test('without a layout the cluster is unavailable (as Garage)', () => {
    const h = computeClusterHealth(newLayoutHistory(3), nodes(3))
    assert.equal(h.status, 'unavailable')
    assert.equal(h.storageNodes, 0)
    assert.equal(h.partitionsQuorum, 0)
    assert.equal(h.knownNodes, 3)
  })
  const cases: Array<[number, string, number, number]> = [
    [3, 'healthy', 256, 256],
    [2, 'degraded', 256, 0],
    [1, 'unavailable', 0, 0],
  ]
  for (const [up, status, quorum, allOk] of cases) {
    test(`${up} of 3 storage nodes up: ${status}`, () => {
      const h = computeClusterHealth(layout, nodes(up))
      assert.equal(h.status, status)
      assert.equal(h.partitions, 256)
      assert.equal(h.partitionsQuorum, quorum)
      assert.equal(h.partitionsAllOk, allOk)
      assert.equal(h.storageNodes, 3)
      assert.equal(h.storageNodesOk, up)
      assert.equal(h.connectedNodes, up)
    })
  }
})
