/**
 * Layout versions, staged changes and the layout history with its update trackers, as plain data
 * and pure functions (port of garage_rpc::layout::history and the data part of mod.rs). The
 * layout manager (gossip, persistence, ack locks) builds on these; nothing here does I/O.
 * @internal
 */
import {
  type CrdtMap,
  crdtMapGet,
  type Lww,
  type LwwMap,
  lww,
  lwwMapGet,
  lwwMapSet,
  mergeCrdtMap,
  mergeLww,
  mergeLwwMap,
  mergeMax,
  updateLww,
} from '../../util/crdt/crdt.ts'
import { LayoutError, type LayoutParameters, NB_PARTITIONS, type NodeRole, type RingAssignment } from './types.ts'
import { computeAssignment, partitionOf } from './version.ts'

/** Number of retired versions kept to find data that has not moved yet (Garage's OLD_VERSION_COUNT). */
export const OLD_VERSION_COUNT = 5

/** A role, or `null` for "this node has no role" (a removal, kept as a tombstone in LWW maps). */
export type NodeRoleV = NodeRole | null

/** One version of the cluster layout: the roles, the parameters and the computed assignment. @internal */
export interface LayoutVersion extends RingAssignment {
  version: number
  roles: LwwMap<NodeRoleV>
  parameters: LayoutParameters
}

/** Changes staged for the next version. @internal */
export interface LayoutStaging {
  parameters: Lww<LayoutParameters>
  roles: LwwMap<NodeRoleV>
}

/** Highest layout version reached by each node, merged by per-node maximum. @internal */
export type UpdateTracker = CrdtMap<number>

/** @internal */
export interface UpdateTrackers {
  /** Highest version each node has acknowledged (it no longer writes with older ones). */
  ackMap: UpdateTracker
  /** Highest version for which each node has finished syncing its data. */
  syncMap: UpdateTracker
  /** Highest version for which each node has seen that everyone has synced. */
  syncAckMap: UpdateTracker
}

/** @internal */
export interface LayoutHistory {
  /** Versions in use, oldest first; the last one is the current version. */
  versions: LayoutVersion[]
  /** Up to OLD_VERSION_COUNT retired versions, only used to find blocks not moved yet. */
  oldVersions: LayoutVersion[]
  updateTrackers: UpdateTrackers
  staging: Lww<LayoutStaging>
}

const DEFAULT_PARAMETERS: LayoutParameters = { zoneRedundancy: 'maximum' }

/** An empty history: version 0, no roles, no assignment yet. @internal */
export function newLayoutHistory(replicationFactor: number): LayoutHistory {
  const version: LayoutVersion = {
    version: 0,
    roles: [],
    parameters: DEFAULT_PARAMETERS,
    replicationFactor,
    partitionSize: 0,
    nodeIdVec: [],
    nongatewayNodeCount: 0,
    ringAssignment: [],
  }
  return {
    versions: [version],
    oldVersions: [],
    updateTrackers: { ackMap: [], syncMap: [], syncAckMap: [] },
    staging: lww(0, { parameters: lww(0, DEFAULT_PARAMETERS), roles: [] }),
  }
}

/** The version with the highest number. @internal */
export const currentVersion = (h: LayoutHistory): LayoutVersion => h.versions[h.versions.length - 1] as LayoutVersion

/** The number of the oldest version still in use. @internal */
export const minStored = (h: LayoutHistory): number => (h.versions[0] as LayoutVersion).version

/** The roles of a version that are present (tombstones left out), by node id. @internal */
export function presentRoles(roles: LwwMap<NodeRoleV>): Map<string, NodeRole> {
  const out = new Map<string, NodeRole>()
  for (const [id, , role] of roles) if (role !== null) out.set(id, role)
  return out
}

/** Storage nodes of every version in use. @internal */
export function allStorageNodes(h: LayoutHistory): string[] {
  const set = new Set<string>()
  for (const v of h.versions) for (const id of v.nodeIdVec.slice(0, v.nongatewayNodeCount)) set.add(id)
  return [...set].sort()
}

/** Nodes with a role (storage or gateway) in any version in use. @internal */
export function allNodes(h: LayoutHistory): string[] {
  const set = new Set<string>()
  for (const v of h.versions) for (const id of v.nodeIdVec) set.add(id)
  return [...set].sort()
}

// ---- staging ----

function mergeStaging(a: LayoutStaging, b: LayoutStaging): LayoutStaging {
  return { parameters: mergeLww(a.parameters, b.parameters), roles: mergeLwwMap(a.roles, b.roles) }
}

/** Stages a role change for `node` (`null` stages its removal). @internal */
export function stageRole(h: LayoutHistory, node: string, role: NodeRoleV, now: number = Date.now()): LayoutHistory {
  const staging = h.staging.v
  return { ...h, staging: { ts: h.staging.ts, v: { ...staging, roles: lwwMapSet(staging.roles, node, role, now) } } }
}

/** Stages new parameters. @internal */
export function stageParameters(h: LayoutHistory, parameters: LayoutParameters, now: number = Date.now()): LayoutHistory {
  const staging = h.staging.v
  return { ...h, staging: { ts: h.staging.ts, v: { ...staging, parameters: updateLww(staging.parameters, parameters, now) } } }
}

/** The role `node` will have once staged changes are applied (`undefined`: none). @internal */
export function stagedRole(h: LayoutHistory, node: string): NodeRole | undefined {
  const staged = lwwMapGet(h.staging.v.roles, node)
  if (staged !== undefined) return staged ?? undefined
  return lwwMapGet(currentVersion(h).roles, node) ?? undefined
}

/**
 * Computes the next version from the staged changes (`garage layout apply --version N`):
 * `version` must be the current version + 1. Staging is then emptied, with a newer timestamp so
 * that stale staged changes still being gossiped are dropped.
 * @throws LayoutError when the version number is wrong or the assignment cannot be computed.
 * @internal
 */
export function applyStagedChanges(
  h: LayoutHistory,
  version: number,
  now: number = Date.now(),
): { history: LayoutHistory; messages: string[] } {
  const current = currentVersion(h)
  if (version !== current.version + 1) {
    throw new LayoutError(`Invalid new layout version: expected ${current.version + 1}, got ${version}.`)
  }
  const staging = h.staging.v
  const roles = mergeLwwMap(current.roles, staging.roles).filter(([, , role]) => role !== null)
  const parameters = staging.parameters.v
  const previous = current.ringAssignment.length > 0 ? current : null
  const result = computeAssignment({
    roles: presentRoles(roles),
    replicationFactor: current.replicationFactor,
    parameters,
    previous,
  })
  const next: LayoutVersion = {
    version,
    roles,
    parameters,
    replicationFactor: result.replicationFactor,
    partitionSize: result.partitionSize,
    nodeIdVec: result.nodeIdVec,
    nongatewayNodeCount: result.nongatewayNodeCount,
    ringAssignment: result.ringAssignment,
  }
  const history = cleanupOldVersions({
    ...h,
    versions: [...h.versions, next],
    staging: updateLww(h.staging, { parameters: staging.parameters, roles: [] }, now),
  })
  return { history, messages: result.messages }
}

/** Drops staged changes (`garage layout revert`). @internal */
export function revertStagedChanges(h: LayoutHistory, now: number = Date.now()): LayoutHistory {
  const staging: LayoutStaging = { parameters: lww(now, currentVersion(h).parameters), roles: [] }
  return { ...h, staging: updateLww(h.staging, staging, now) }
}

// ---- merge ----

/** Result of {@link mergeLayoutHistory}. @internal */
export interface HistoryMerge {
  history: LayoutHistory
  changed: boolean
  /** Version numbers present on both sides with different contents (the cluster is broken until replaced). */
  conflicts: number[]
}

/**
 * Merges a history received from another node into ours (Garage's `LayoutHistory::merge`). If our
 * current version is older than everything the other side still uses, theirs replaces ours.
 * Otherwise their versions that directly follow our current one are appended, trackers are merged
 * by per-node maximum and staging by last-writer-wins.
 * @internal
 */
export function mergeLayoutHistory(ours: LayoutHistory, theirs: LayoutHistory): HistoryMerge {
  if (currentVersion(ours).version < minStored(theirs)) return { history: theirs, changed: true, conflicts: [] }
  const versions = [...ours.versions]
  const conflicts: number[] = []
  for (const v of theirs.versions) {
    const last = versions[versions.length - 1] as LayoutVersion
    if (v.version === last.version + 1) versions.push(v)
    else {
      const mine = versions.find((x) => x.version === v.version)
      if (mine !== undefined && !sameVersion(mine, v)) conflicts.push(v.version)
    }
  }
  const updateTrackers = mergeTrackers(ours.updateTrackers, theirs.updateTrackers)
  const staging = mergeLww(ours.staging, theirs.staging, mergeStaging)
  const history: LayoutHistory = { ...ours, versions, updateTrackers, staging }
  const changed =
    versions.length !== ours.versions.length ||
    JSON.stringify(updateTrackers) !== JSON.stringify(ours.updateTrackers) ||
    JSON.stringify(staging) !== JSON.stringify(ours.staging)
  return { history, changed, conflicts }
}

function sameVersion(a: LayoutVersion, b: LayoutVersion): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

// ---- update trackers ----

/** Merges trackers by per-node maximum. @internal */
export function mergeTrackers(a: UpdateTrackers, b: UpdateTrackers): UpdateTrackers {
  return {
    ackMap: mergeCrdtMap(a.ackMap, b.ackMap, mergeMax),
    syncMap: mergeCrdtMap(a.syncMap, b.syncMap, mergeMax),
    syncAckMap: mergeCrdtMap(a.syncAckMap, b.syncAckMap, mergeMax),
  }
}

/** Raises `node`'s value to at least `value`. @internal */
export const trackerSetMax = (t: UpdateTracker, node: string, value: number): UpdateTracker =>
  mergeCrdtMap(t, [[node, value]], mergeMax)

/** `node`'s value, or `minVersion` if it has none. @internal */
export const trackerGet = (t: UpdateTracker, node: string, minVersion: number): number => crdtMapGet(t, node) ?? minVersion

/** The smallest value among `nodes` (`minVersion` for a node without value, or when `nodes` is empty). @internal */
export function trackerMinAmong(t: UpdateTracker, nodes: readonly string[], minVersion: number): number {
  let min = Number.POSITIVE_INFINITY
  for (const n of nodes) min = Math.min(min, trackerGet(t, n, minVersion))
  return min === Number.POSITIVE_INFINITY ? minVersion : min
}

/**
 * Drops leading versions that have no assignment, then retires the versions that no current node
 * reads from any more (every node of the current version has `sync_ack` above them), keeping at
 * most OLD_VERSION_COUNT retired versions.
 * @internal
 */
export function cleanupOldVersions(h: LayoutHistory): LayoutHistory {
  const versions = [...h.versions]
  const oldVersions = [...h.oldVersions]
  // Versions without an assignment (version 0) are dropped once a later one has one.
  const hasRing = (v: LayoutVersion) => v.ringAssignment.length === NB_PARTITIONS * v.replicationFactor
  if (hasRing(currentVersion(h))) while (versions.length > 1 && !hasRing(versions[0] as LayoutVersion)) versions.shift()
  const currentNodes = currentVersion(h).nodeIdVec
  const syncAckMin = trackerMinAmong(h.updateTrackers.syncAckMap, currentNodes, minStored(h))
  while (versions.length > 1 && (versions[0] as LayoutVersion).version < syncAckMin) {
    oldVersions.push(versions.shift() as LayoutVersion)
  }
  while (oldVersions.length > OLD_VERSION_COUNT) oldVersions.shift()
  return { ...h, versions, oldVersions }
}

/**
 * The version reads must use to keep read-after-write consistency during a transition (Garage's
 * `calculate_sync_map_min_with_quorum`): for every partition and every older version, the highest
 * version that a write quorum of that partition's nodes has finished syncing.
 * @internal
 */
export function syncMapMinWithQuorum(h: LayoutHistory, writeQuorum: number): number {
  const current = currentVersion(h)
  if (h.versions.length === 1) return current.version
  const min = minStored(h)
  const syncMap = h.updateTrackers.syncMap
  const globalMin = trackerMinAmong(syncMap, allStorageNodes(h), min)
  if (writeQuorum === current.replicationFactor) return globalMin
  let result = current.version
  const done = new Set<string>()
  for (let p = 0; p < NB_PARTITIONS; p++) {
    for (const v of h.versions) {
      if (v.version === current.version) continue
      const rf = v.replicationFactor
      const nodes = v.ringAssignment.slice(p * rf, (p + 1) * rf).map((i) => v.nodeIdVec[i] as string)
      const key = [...nodes].sort().join(',')
      if (done.has(key)) continue
      done.add(key)
      const values = nodes.map((n) => trackerGet(syncMap, n, min)).sort((a, b) => a - b)
      const setMin = values[values.length - writeQuorum] ?? min
      result = Math.min(result, setMin)
      if (result <= globalMin) return globalMin
    }
  }
  return result
}

/** The storage nodes of `hash` in each version in use (the write sets). @internal */
export function writeSetsOf(h: LayoutHistory, hash: Uint8Array): string[][] {
  const p = partitionOf(hash)
  return h.versions
    .filter((v) => v.ringAssignment.length > 0)
    .map((v) =>
      v.ringAssignment.slice(p * v.replicationFactor, (p + 1) * v.replicationFactor).map((i) => v.nodeIdVec[i] as string),
    )
}
