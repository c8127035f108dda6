/**
 * Membership between real `garage server` processes: a full mesh from one bootstrap address,
 * failure detection and recovery, refusal of a node without the secret, and no plaintext on
 * the wire.
 */
import assert from 'node:assert/strict'
import { hostname } from 'node:os'
import { after, before, describe, test } from 'node:test'
import { garage } from '../../helpers/cli.ts'
import {
  ADMIN_TOKEN,
  adminV2,
  type ClusterNodeProcess,
  clusterStatus,
  newRpcSecret,
  startCluster,
  startClusterNode,
  upIds,
} from '../../helpers/cluster.ts'
import { CLUSTER_WAIT, eventually } from '../../helpers/eventually.ts'
import { startTcpProxy } from '../../helpers/tcp-proxy.ts'

/** Three copies of every partition, as in a real three-zone deployment. */
const CONFIG = ['replication_factor = 3']
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const countMatches = (text: string, re: RegExp): number => text.split('\n').filter((l) => re.test(l)).length

describe('cluster membership (child processes)', { timeout: 120_000 }, () => {
  let nodes: ClusterNodeProcess[] = []
  const extra: ClusterNodeProcess[] = []

  before(async () => {
    nodes = await startCluster(3, { configLines: CONFIG })
  })
  after(async () => {
    await Promise.all([...nodes, ...extra].map((n) => n.proc.stop(5_000)))
  })

  const ids = (): string[] => nodes.map((n) => n.id)
  const seesAllUp = async (n: ClusterNodeProcess, expected: string[]): Promise<boolean> => {
    const up = await upIds(n)
    return expected.every((id) => up.includes(id))
  }

  test('three nodes bootstrapped from one address see each other up', async () => {
    await eventually(
      'a full mesh of 3 nodes',
      async () => {
        for (const n of nodes) if (!(await seesAllUp(n, ids()))) return false
        return true
      },
      CLUSTER_WAIT,
    )
    for (const n of nodes) {
      const status = await clusterStatus(n)
      assert.equal(status.length, 3, `node ${n.id.slice(0, 8)} lists ${status.length} nodes`)
      for (const s of status) assert.ok(s.isUp, `node ${n.id.slice(0, 8)} sees ${s.id.slice(0, 8)} up`)
    }
    // Status exchange: hostnames and versions of the others are known.
    await eventually(
      'statuses exchanged',
      async () => (await clusterStatus(nodes[0] as ClusterNodeProcess)).every((s) => s.hostname !== null),
      CLUSTER_WAIT,
    )
    const one = nodes[0] as ClusterNodeProcess
    const health = await adminV2<{ knownNodes: number; connectedNodes: number }>(one, 'GetClusterHealth')
    assert.equal(health.status, 200)
    assert.equal(health.data.knownNodes, 3)
    assert.equal(health.data.connectedNodes, 3)
    const info = await adminV2<{ success: Record<string, { rpcAddress: string }> }>(one, 'GetNodeInfo?node=self')
    assert.equal(info.data.success[one.id]?.rpcAddress, one.rpcAddress)
  })

  test('CLI: garage node id, garage status, garage node connect', async () => {
    const [one, two] = nodes as [ClusterNodeProcess, ClusterNodeProcess]
    const env = { GARAGE_ADMIN_ADDR: one.adminEndpoint, GARAGE_ADMIN_TOKEN: ADMIN_TOKEN }
    const id = await garage(['node', 'id', '-q'], { env })
    assert.equal(id.code, 0, id.stderr)
    assert.equal(id.stdout.trim(), one.rpcAddress)
    const status = await garage(['status'], { env })
    assert.equal(status.code, 0, status.stderr)
    assert.match(status.stdout, /==== HEALTHY NODES ====/)
    for (const n of nodes) assert.ok(status.stdout.includes(n.id.slice(0, 16)), `garage status lists ${n.id.slice(0, 16)}`)
    assert.doesNotMatch(status.stdout, /FAILED NODES/)
    const connect = await garage(['node', 'connect', two.rpcAddress], { env })
    assert.equal(connect.code, 0, connect.stderr)
    assert.match(connect.stdout, /Success/)
    const bad = await adminV2<Array<{ success: boolean; error: string | null }>>(one, 'ConnectClusterNodes', [
      `${'ab'.repeat(32)}@127.0.0.1:1`,
      'not an address',
    ])
    assert.equal(bad.status, 200)
    assert.deepEqual(
      bad.data.map((r) => r.success),
      [false, false],
    )
  })

  test('a node with another rpc_secret cannot join, and refusals are logged once', async () => {
    const [one, two] = nodes as [ClusterNodeProcess, ClusterNodeProcess]
    const before1 = one.proc.output().length
    const before2 = two.proc.output().length
    const intruder = await startClusterNode({ configLines: CONFIG, secret: newRpcSecret(), bootstrap: [one.rpcAddress] })
    extra.push(intruder)
    await sleep(5_000)
    for (const n of nodes) {
      const listed = (await clusterStatus(n)).map((s) => s.id)
      assert.ok(!listed.includes(intruder.id), `node ${n.id.slice(0, 8)} does not list the intruder`)
    }
    const seen = (await clusterStatus(intruder)).map((s) => s.id)
    assert.deepEqual(seen, [intruder.id], 'the intruder lists only itself')
    const refusals1 = countMatches(one.proc.output().slice(before1), /refused an RPC handshake/)
    const refusals2 = countMatches(two.proc.output().slice(before2), /refused an RPC handshake/)
    assert.ok(refusals1 <= 1, `node 1 logged ${refusals1} refusals, expected at most one`)
    assert.ok(refusals1 === 1, `node 1 logged the refusal (${refusals1} lines)`)
    assert.equal(refusals2, 0)
    const clientSide = countMatches(intruder.proc.output(), /cannot connect to node/)
    assert.equal(clientSide, 1, `the intruder logs its failure once, got:\n${intruder.proc.output()}`)
  })

  test('RPC traffic through a proxy carries no plaintext', async () => {
    const one = nodes[0] as ClusterNodeProcess
    const [host, port] = [one.rpcHostPort.slice(0, one.rpcHostPort.lastIndexOf(':')), Number(one.rpcHostPort.split(':').pop())]
    const proxy = await startTcpProxy({ target: { host, port } })
    try {
      proxy.startCapture()
      const viaProxy = await startClusterNode({
        configLines: CONFIG,
        secret: one.secret,
        bootstrap: [`${one.id}@127.0.0.1:${proxy.port}`],
      })
      extra.push(viaProxy)
      await eventually(
        'the proxied node sees node 1 with its status',
        async () => (await clusterStatus(viaProxy)).some((s) => s.id === one.id && s.isUp && s.hostname !== null),
        CLUSTER_WAIT,
      )
      const captured = proxy.stopCapture()
      const all = Buffer.concat(captured.flatMap((c) => [c.up, c.down]))
      assert.ok(all.length > 1000, `traffic went through the proxy (${all.length} bytes)`)
      // Needles of 8 bytes or more: sealed bytes contain a given 2-byte string by chance every
      // 64 KiB or so (this machine's hostname is "vm"; the capture holds tens of kilobytes).
      const needles = ['system/exchange', 'v0.1.0-ts', 'net/ping', ...(hostname().length >= 8 ? [hostname()] : [])]
      for (const plain of needles) {
        assert.ok(!all.includes(Buffer.from(plain)), `the capture does not contain ${JSON.stringify(plain)}`)
      }
    } finally {
      await proxy.close()
    }
  })

  const layoutVersion = async (n: ClusterNodeProcess): Promise<number> =>
    (await adminV2<{ version: number }>(n, 'GetClusterLayout')).data.version
  const healthOf = async (n: ClusterNodeProcess): Promise<string> =>
    (await adminV2<{ status: string }>(n, 'GetClusterHealth')).data.status

  test('a layout of 3 zones applied from the CLI reaches every node; the cluster is healthy', async () => {
    const one = nodes[0] as ClusterNodeProcess
    const env = { GARAGE_ADMIN_ADDR: one.adminEndpoint, GARAGE_ADMIN_TOKEN: ADMIN_TOKEN }
    for (const [i, n] of nodes.entries()) {
      const r = await garage(['layout', 'assign', n.id.slice(0, 16), '-z', `zone${i + 1}`, '-c', '1G'], { env })
      assert.equal(r.code, 0, `layout assign: ${r.stdout}\n${r.stderr}`)
    }
    const applied = await garage(['layout', 'apply', '--version', '1'], { env })
    assert.equal(applied.code, 0, `layout apply: ${applied.stdout}\n${applied.stderr}`)
    for (const n of nodes)
      await eventually(
        `node ${n.id.slice(0, 8)} to have layout version 1`,
        async () => (await layoutVersion(n)) === 1,
        CLUSTER_WAIT,
      )
    await eventually('a healthy cluster', async () => (await healthOf(one)) === 'healthy', CLUSTER_WAIT)
  })

  test('a killed node is reported down, and up again after a restart', async () => {
    const [one, two, three] = nodes as [ClusterNodeProcess, ClusterNodeProcess, ClusterNodeProcess]
    await three.proc.kill({ keepDir: true })
    for (const n of [one, two]) {
      await eventually(
        `node ${n.id.slice(0, 8)} to see node 3 down`,
        async () => {
          const s = (await clusterStatus(n)).find((x) => x.id === three.id)
          return s !== undefined && !s.isUp
        },
        CLUSTER_WAIT,
      )
    }
    // One storage node of three down: every partition keeps a write quorum.
    await eventually('a degraded cluster', async () => (await healthOf(one)) === 'degraded', CLUSTER_WAIT)
    // A layout change made while node 3 is away.
    const env = { GARAGE_ADMIN_ADDR: one.adminEndpoint, GARAGE_ADMIN_TOKEN: ADMIN_TOKEN }
    const assigned = await garage(['layout', 'assign', three.id.slice(0, 16), '-z', 'zone3', '-c', '2G'], { env })
    assert.equal(assigned.code, 0, assigned.stderr)
    const applied = await garage(['layout', 'apply', '--version', '2'], { env })
    assert.equal(applied.code, 0, applied.stderr)
    const restarted = await startClusterNode({ configLines: CONFIG, secret: three.secret, reuse: three.proc })
    assert.equal(restarted.id, three.id)
    nodes[2] = restarted
    for (const n of [one, two, restarted]) {
      await eventually(`node ${n.id.slice(0, 8)} to see all three up`, () => seesAllUp(n, ids()), CLUSTER_WAIT)
    }
    await eventually(
      'the restarted node to catch up on layout version 2',
      async () => (await layoutVersion(restarted)) === 2,
      CLUSTER_WAIT,
    )
    await eventually('a healthy cluster again', async () => (await healthOf(one)) === 'healthy', CLUSTER_WAIT)
  })
})
