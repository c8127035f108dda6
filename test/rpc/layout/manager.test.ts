/** LayoutManager on one node: staging, preview, apply, revert, persistence, history, node id prefixes. */
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { LayoutError } from '../../../lib/rpc/layout/types.ts'
import {
  HEDGE_MAX_MS,
  HEDGE_MIN_MS,
  HEDGE_UNKNOWN_MS,
  LayoutHelper,
  SILENT_CALLS_MIN_MS,
} from '../../../lib/rpc/layout/helper.ts'
import { trackerGet } from '../../../lib/rpc/layout/history.ts'
import { CLUSTER_LAYOUT_FILE, LayoutManager } from '../../../lib/rpc/layout/manager.ts'
import { silentLogger } from '../../../lib/util/logger.ts'

const ids = ['a1', 'b2', 'c3', 'd4'].map((p) => p.repeat(32))
const [A, B, C, D] = ids as [string, string, string, string]
const GB = 1_000_000_000

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'garage-layout-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

function manager(dir: string, rf = 3, peers: string[] = []): LayoutManager {
  return new LayoutManager({
    metadataDir: dir,
    replicationFactor: rf,
    nodeId: A,
    log: silentLogger,
    signal: new AbortController().signal,
    system: { upPeers: () => peers, onPeerUp: () => {}, onStatus: () => {} },
  })
}

const threeZones = [
  { id: A, zone: 'z1', capacity: 10 * GB, tags: ['x'] },
  { id: B, zone: 'z2', capacity: 10 * GB, tags: [] },
  { id: C, zone: 'z3', capacity: 10 * GB, tags: [] },
]

test('a fresh manager has version 0 and no roles', async (t) => {
  const m = manager(await tempDir(t))
  await m.start()
  const l = m.get()
  assert.equal(l.version, 0)
  assert.deepEqual(l.roles, [])
  assert.deepEqual(l.stagedRoleChanges, [])
  assert.equal(l.stagedParameters, null)
  assert.deepEqual(l.parameters, { zoneRedundancy: 'maximum' })
})

test('stage, preview, apply: preview equals what apply produces; usage per node', async (t) => {
  const m = manager(await tempDir(t))
  await m.start()
  const staged = await m.stage({ roles: threeZones })
  assert.equal(staged.stagedRoleChanges.length, 3)
  assert.equal(staged.version, 0)
  const p = m.preview()
  assert.ok(p.ok, 'the preview succeeds')
  assert.equal(p.layout.version, 1)
  assert.ok(
    p.messages.some((l) => l.includes('Optimal partition size')),
    'the preview explains the computation',
  )
  const applied = await m.apply(1)
  assert.deepEqual(applied.layout, p.layout)
  assert.deepEqual(applied.messages, p.messages)
  assert.equal(m.current().version, 1)
  const l = m.get()
  assert.equal(l.stagedRoleChanges.length, 0)
  assert.equal(l.roles.length, 3)
  for (const r of l.roles) {
    assert.equal(r.storedPartitions, 256)
    assert.equal(r.usableCapacity, 256 * l.partitionSize)
  }
  assert.ok(l.partitionSize > 0, 'a partition size is computed')
})

test('apply refuses any version but current + 1, and a layout that cannot be computed', async (t) => {
  const m = manager(await tempDir(t))
  await m.start()
  await m.stage({ roles: threeZones })
  await assert.rejects(m.apply(2), (err: unknown) => err instanceof LayoutError && /expected 1, got 2/.test(err.message))
  await assert.rejects(m.apply(0), LayoutError)
  await m.apply(1)
  await m.stage({ roles: [{ id: C, remove: true }] })
  const p = m.preview()
  assert.ok(!p.ok, 'two storage nodes cannot hold 3 copies')
  await assert.rejects(m.apply(2), LayoutError)
  assert.equal(m.current().version, 1)
  await assert.rejects(m.apply(3), LayoutError)
})

test('revert drops staged roles and parameters', async (t) => {
  const m = manager(await tempDir(t))
  await m.start()
  await m.stage({ roles: threeZones, parameters: { zoneRedundancy: 2 } })
  assert.deepEqual(m.get().stagedParameters, { zoneRedundancy: 2 })
  const after = await m.revert()
  assert.deepEqual(after.stagedRoleChanges, [])
  assert.equal(after.stagedParameters, null)
  assert.equal(m.preview().ok, false)
})

test('input checks: capacity, zone redundancy, node ids', async (t) => {
  const m = manager(await tempDir(t), 3, [B])
  await m.start()
  await assert.rejects(m.stage({ roles: [{ id: A, zone: 'z', capacity: 10, tags: [] }] }), /at least 1K/)
  await assert.rejects(m.stage({ roles: [{ id: A, zone: '', capacity: 10 * GB, tags: [] }] }), /zone/)
  await assert.rejects(m.stage({ parameters: { zoneRedundancy: 4 } }), /replication factor/)
  await assert.rejects(m.stage({ parameters: { zoneRedundancy: 0 } }), /at least 1/)
  await assert.rejects(m.stage({ roles: [{ id: 'ff', zone: 'z', capacity: null }] }), /0 nodes match 'ff'/)
  // Prefixes of known nodes (self and peers up) resolve to the full id.
  const l = await m.stage({ roles: [{ id: 'b2b2', zone: 'z', capacity: null }] })
  assert.deepEqual(l.stagedRoleChanges, [{ id: B, zone: 'z', capacity: null, tags: [] }])
  assert.equal(m.resolveNodeId(A.slice(0, 6)), A)
  // A full id is accepted even when the node was never seen.
  assert.equal(m.resolveNodeId(D), D)
})

test('the history persists across restarts (staged changes too)', async (t) => {
  const dir = await tempDir(t)
  const m = manager(dir)
  await m.start()
  await m.stage({ roles: threeZones })
  await m.apply(1)
  await m.stage({ roles: [{ id: D, zone: 'z1', capacity: 5 * GB, tags: [] }] })
  await m.flush()
  const bytes = await readFile(join(dir, CLUSTER_LAYOUT_FILE))
  assert.equal(bytes.subarray(0, 10).toString('ascii'), 'GTSlayout1')
  const again = manager(dir)
  await again.start()
  assert.equal(again.current().version, 1)
  assert.deepEqual(again.get(), m.get())
  assert.equal(again.digest(), m.digest())
  const p = again.preview()
  assert.ok(p.ok, 'the staged change survives')
  assert.equal(p.layout.roles.length, 4)
})

test('a second version moves few partitions; history shows versions with status', async (t) => {
  const m = manager(await tempDir(t), 3, [])
  await m.start()
  await m.stage({ roles: threeZones })
  await m.apply(1)
  await m.stage({ roles: [{ id: D, zone: 'z1', capacity: 10 * GB, tags: [] }] })
  const res = await m.apply(2)
  const moved = res.messages.find((l) => l.startsWith('A total of'))
  assert.ok(moved !== undefined, 'the number of moved partitions is reported')
  const h = m.historyView()
  assert.equal(h.currentVersion, 2)
  assert.equal(h.versions[0]?.version, 2)
  assert.equal(h.versions[0]?.status, 'Current')
  assert.equal(h.versions[0]?.storageNodes, 4)
  // B, C, D never acknowledged version 2 (they are not running): version 1 is still live.
  assert.equal(h.versions[1]?.status, 'Draining')
  assert.ok(h.updateTrackers !== null, 'trackers are shown while two versions are live')
  assert.equal(h.updateTrackers?.[A]?.ack, 2)
  assert.equal(h.minAck, 1)
  // Skipping the dead nodes with --allow-missing-data lets version 1 retire.
  await assert.rejects(m.skipDeadNodes({ version: 3 }), /following version numbers: 2/)
  const skipped = await m.skipDeadNodes({ version: 2, allowMissingData: true })
  assert.deepEqual(skipped.ackUpdated.sort(), [B, C, D].sort())
  assert.ok(skipped.syncUpdated.includes(B), 'sync trackers are raised too')
})

test('skip-dead-nodes needs two live versions', async (t) => {
  const m = manager(await tempDir(t))
  await m.start()
  await assert.rejects(m.skipDeadNodes({ version: 1 }), /only one live cluster layout version/)
})

test('a single-node layout with replication factor 1 retires old versions at once', async (t) => {
  const m = manager(await tempDir(t), 1)
  await m.start()
  await m.stage({ roles: [{ id: A, zone: 'dc1', capacity: GB, tags: [] }] })
  await m.apply(1)
  await m.stage({ roles: [{ id: A, zone: 'dc1', capacity: 2 * GB, tags: [] }] })
  await m.apply(2)
  const h = m.historyView()
  assert.deepEqual(
    h.versions.map((v) => [v.version, v.status]),
    [
      [2, 'Current'],
      [1, 'Historical'],
    ],
  )
  assert.equal(h.updateTrackers, null)
})

/** A helper for node A over `m` (consistent mode, RF 3), with the peer-state callbacks given. */
function helperOf(
  m: ConstructorParameters<typeof LayoutHelper>[0]['source'],
  peers: Pick<ConstructorParameters<typeof LayoutHelper>[0], 'pingOf' | 'pingStateOf' | 'isUp'> = {},
): LayoutHelper {
  return new LayoutHelper({
    source: m,
    self: A,
    consistencyMode: 'consistent',
    replicationFactor: 3,
    log: silentLogger,
    ...peers,
  })
}

test('ack lock: a write in flight with version N holds this node ack at N until it is done', async (t) => {
  const m = manager(await tempDir(t), 3)
  await m.start()
  const helper = helperOf(m)
  const ackOfA = (): number => trackerGet(m.history().updateTrackers.ackMap, A, -1)
  await m.stage({ roles: threeZones })
  await m.apply(1)
  assert.equal(ackOfA(), 1, 'version 1 acknowledged at once without writes in flight')
  const unlock = helper.lockWrite()
  const unlockToo = helper.lockWrite()
  await m.stage({ roles: [{ id: D, zone: 'z1', capacity: 10 * GB, tags: [] }] })
  await m.apply(2)
  assert.equal(ackOfA(), 1, 'version 2 is not acknowledged while writes made with version 1 are in flight')
  assert.equal(helper.ackLimit(), 1, 'the ack limit is the oldest version in use')
  unlock()
  unlock() // releasing twice changes nothing
  assert.equal(ackOfA(), 1, 'one write with version 1 is still in flight')
  unlockToo()
  assert.equal(ackOfA(), 2, 'version 2 acknowledged once the last write with version 1 is done')
  assert.equal(helper.ackLimit(), Number.POSITIVE_INFINITY, 'no write in flight, no limit')
  await m.flush()
})

test('hedge delay of a read: 4 average pings, within 500 ms – 2 s, 1 s before any ping, none for this node', async (t) => {
  const m = manager(await tempDir(t), 3)
  const pings: Record<string, number | undefined> = { b: 300, c: 20, e: 1_500 }
  const helper = helperOf(m, { pingOf: (id) => pings[id] })
  assert.equal(helper.hedgeDelayOf(A), undefined, 'a local read is never hedged')
  assert.equal(helper.hedgeDelayOf('b'), 4 * 300)
  assert.equal(helper.hedgeDelayOf('c'), HEDGE_MIN_MS, 'the floor applies to close peers')
  assert.equal(helper.hedgeDelayOf('d'), HEDGE_UNKNOWN_MS, 'a peer never pinged')
  assert.equal(helper.hedgeDelayOf('e'), HEDGE_MAX_MS, 'the ceiling applies to slow peers (a loaded machine)')
})

test('a peer whose last ping failed or whose ping is overdue is tried after the responsive ones, before those down', async (t) => {
  const m = manager(await tempDir(t), 3)
  const pings: Record<string, number | undefined> = { b: 100, c: 200, d: 50, e: 10 }
  const state: Record<string, { failedPings: number; pingPendingMs: number | undefined; callsSilentMs?: number }> = {
    b: { failedPings: 0, pingPendingMs: undefined },
    c: { failedPings: 0, pingPendingMs: 100 },
    d: { failedPings: 0, pingPendingMs: undefined },
    e: { failedPings: 0, pingPendingMs: undefined },
  }
  const helper = helperOf(m, { pingOf: (id) => pings[id], pingStateOf: (id) => state[id], isUp: (id) => id !== 'e' })
  assert.deepEqual(helper.orderByCloseness(['e', 'c', 'b', 'd', A]), [A, 'd', 'b', 'c', 'e'], 'by ping; down last')
  // d's ping has been unanswered past its hedge delay (500 ms floor), b's last ping failed.
  state.d = { failedPings: 0, pingPendingMs: HEDGE_MIN_MS + 1 }
  state.b = { failedPings: 1, pingPendingMs: undefined }
  assert.equal(helper.isUnresponsive('d'), true)
  assert.equal(helper.isUnresponsive('b'), true)
  assert.equal(helper.isUnresponsive('c'), false, 'a ping in flight within its hedge delay is normal')
  assert.equal(helper.isUnresponsive(A), false, 'never this node')
  assert.deepEqual(helper.orderByCloseness(['e', 'c', 'b', 'd', A]), [A, 'c', 'd', 'b', 'e'], 'unresponsive after responsive')
  state.b = { failedPings: 0, pingPendingMs: undefined }
  assert.equal(helper.isUnresponsive('b'), false, 'a good ping clears it')
  // Calls unanswered past max(hedge delay, SILENT_CALLS_MIN_MS), with no ping pending (pings come every 10 s).
  state.b = { failedPings: 0, pingPendingMs: undefined, callsSilentMs: SILENT_CALLS_MIN_MS - 100 }
  assert.equal(helper.isUnresponsive('b'), false, 'a call may take a while')
  state.b = { failedPings: 0, pingPendingMs: undefined, callsSilentMs: SILENT_CALLS_MIN_MS + 1 }
  assert.equal(helper.isUnresponsive('b'), true, 'calls silent past the bar')
})
