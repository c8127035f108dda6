import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  applyStagedChanges,
  cleanupOldVersions,
  currentVersion,
  type LayoutHistory,
  mergeLayoutHistory,
  minStored,
  newLayoutHistory,
  OLD_VERSION_COUNT,
  presentRoles,
  revertStagedChanges,
  stagedRole,
  stageParameters,
  stageRole,
  syncMapMinWithQuorum,
  trackerSetMax,
  writeSetsOf,
} from '../../../lib/rpc/layout/history.ts'
import { LayoutError, type NodeRole } from '../../../lib/rpc/layout/types.ts'
import { checkAssignment } from '../../../lib/rpc/layout/version.ts'

const role = (zone: string, capacity: number | null = 1e9): NodeRole => ({ zone, capacity, tags: [] })

/** A history with nodes a, b, c in three zones applied as version 1 (timestamps 100..). */
function threeNodes(): LayoutHistory {
  let h = newLayoutHistory(3)
  h = stageRole(h, 'a', role('dc1'), 100)
  h = stageRole(h, 'b', role('dc2'), 100)
  h = stageRole(h, 'c', role('dc3'), 100)
  return applyStagedChanges(h, 1, 110).history
}

/** Marks every node of the current version as acked/synced up to the current version. */
function syncAll(h: LayoutHistory): LayoutHistory {
  const v = currentVersion(h).version
  let t = h.updateTrackers
  for (const id of currentVersion(h).nodeIdVec) {
    t = {
      ackMap: trackerSetMax(t.ackMap, id, v),
      syncMap: trackerSetMax(t.syncMap, id, v),
      syncAckMap: trackerSetMax(t.syncAckMap, id, v),
    }
  }
  return cleanupOldVersions({ ...h, updateTrackers: t })
}

test('applying staged roles computes version 1 and empties staging', () => {
  const h = threeNodes()
  const v1 = currentVersion(h)
  assert.equal(v1.version, 1, 'version 1')
  assert.deepEqual([...presentRoles(v1.roles).keys()], ['a', 'b', 'c'], 'roles')
  assert.deepEqual(checkAssignment(v1, presentRoles(v1.roles), 3), [], 'the ring is valid')
  assert.deepEqual(h.staging.v.roles, [], 'staging is empty')
  assert.ok(h.staging.ts >= 110, 'staging was reset with a newer timestamp')
  assert.deepEqual(writeSetsOf(h, new Uint8Array(32)), [['a', 'b', 'c']], 'one write set')
})

test('a wrong version number is refused', () => {
  const h = stageRole(newLayoutHistory(1), 'a', role('dc1'), 1)
  assert.throws(
    () => applyStagedChanges(h, 2),
    (e: unknown) => e instanceof LayoutError && /Invalid new layout version/.test(e.message),
    'version 2 after 0',
  )
})

test('a transition keeps both versions until every node has synced, then retires the old one', () => {
  let h = syncAll(threeNodes())
  h = stageRole(h, 'd', role('dc1'), 200)
  h = stageRole(h, 'a', null, 200)
  assert.equal(stagedRole(h, 'a'), undefined, 'a is staged for removal')
  assert.deepEqual(stagedRole(h, 'b'), role('dc2'), 'b keeps its role')
  const { history, messages } = applyStagedChanges(h, 2, 210)
  h = history
  assert.deepEqual(
    h.versions.map((v) => v.version),
    [1, 2],
    'both versions are in use',
  )
  assert.ok(messages.includes('A total of 256 new copies of partitions need to be transferred.'), 'd takes over the copies of a')
  assert.equal(writeSetsOf(h, new Uint8Array(32)).length, 2, 'writes go to both versions')
  assert.equal(syncMapMinWithQuorum(h, 2), 1, 'reads stay on version 1 until the sync')
  h = syncAll(h)
  assert.deepEqual(
    h.versions.map((v) => v.version),
    [2],
    'version 1 is retired',
  )
  assert.deepEqual(
    h.oldVersions.map((v) => v.version),
    [1],
    'and kept among the old versions',
  )
  assert.equal(syncMapMinWithQuorum(h, 2), 2, 'reads move to version 2')
})

test('at most OLD_VERSION_COUNT old versions are kept', () => {
  let h = syncAll(threeNodes())
  for (let v = 2; v <= 9; v++) {
    h = stageRole(h, 'a', role('dc1', v * 1e9), v * 100)
    h = syncAll(applyStagedChanges(h, v, v * 100 + 1).history)
  }
  assert.equal(currentVersion(h).version, 9, 'current version')
  assert.deepEqual(
    h.oldVersions.map((v) => v.version),
    [4, 5, 6, 7, 8],
    `${OLD_VERSION_COUNT} old versions`,
  )
})

test('merging histories: catch-up, idempotence, trackers and staging', () => {
  const a = threeNodes()
  const fresh = newLayoutHistory(3)
  const caughtUp = mergeLayoutHistory(fresh, a)
  assert.ok(caughtUp.changed, 'a node at version 0 takes the newer history')
  assert.deepEqual(caughtUp.history, a, 'identical')
  assert.equal(mergeLayoutHistory(a, a).changed, false, 'merging with itself changes nothing')

  // Concurrent staging on two nodes converges whatever the merge order.
  const x = stageParameters(stageRole(a, 'd', role('dc1'), 300), { zoneRedundancy: 2 }, 301)
  const y = stageRole(stageRole(a, 'e', role('dc2'), 250), 'd', role('dc3'), 310)
  const xy = mergeLayoutHistory(x, y).history
  const yx = mergeLayoutHistory(y, x).history
  assert.deepEqual(xy.staging, yx.staging, 'staging merge commutes')
  assert.deepEqual(stagedRole(xy, 'd'), role('dc3'), 'the later write wins')
  assert.deepEqual(stagedRole(xy, 'e'), role('dc2'), 'both nodes are staged')
  assert.equal(xy.staging.v.parameters.v.zoneRedundancy, 2, 'parameters staged')

  // Trackers merge by maximum.
  const t1 = {
    ...a,
    updateTrackers: { ...a.updateTrackers, ackMap: [['a', 3] as [string, number], ['b', 1] as [string, number]] },
  }
  const t2 = { ...a, updateTrackers: { ...a.updateTrackers, ackMap: [['b', 2] as [string, number]] } }
  assert.deepEqual(
    mergeLayoutHistory(t1, t2).history.updateTrackers.ackMap,
    [
      ['a', 3],
      ['b', 2],
    ],
    'per-node maximum',
  )

  // The next version is appended on the other side.
  const v2 = applyStagedChanges(x, 2, 400).history
  const merged = mergeLayoutHistory(a, v2)
  assert.deepEqual(
    merged.history.versions.map((v) => v.version),
    [1, 2],
    'version 2 appended',
  )
  assert.equal(minStored(merged.history), 1, 'version 1 still in use')
})

test('a version applied twice differently is reported as a conflict', () => {
  const base = threeNodes()
  const left = applyStagedChanges(stageRole(base, 'd', role('dc1'), 300), 2, 310).history
  const right = applyStagedChanges(stageRole(base, 'e', role('dc2'), 300), 2, 310).history
  assert.deepEqual(mergeLayoutHistory(left, right).conflicts, [2], 'version 2 conflicts')
})

test('revert drops staged changes, and stale staged changes do not come back', () => {
  const staged = stageRole(threeNodes(), 'd', role('dc1'), 300)
  const reverted = revertStagedChanges(staged, 400)
  assert.deepEqual(reverted.staging.v.roles, [], 'staging is empty')
  const merged = mergeLayoutHistory(reverted, staged).history
  assert.equal(stagedRole(merged, 'd'), undefined, 'the older staging loses')
})
