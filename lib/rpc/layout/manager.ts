/**
 * The layout manager (port of garage_rpc::layout::manager): holds this node's copy of the cluster
 * layout history, persists it in `metadata_dir/cluster_layout`, applies the operator's changes
 * (stage, apply, revert, skip dead nodes) and gossips the history so that every node converges:
 * a local change is advertised to every peer that is up, and a peer whose status carries another
 * digest (or that just came up) is asked for its history, which is merged (a CRDT merge) and
 * persisted when it changed something.
 * @internal
 */
import { createHash } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { defineEndpoint } from '../../net/endpoint.ts'
import type { NetApp } from '../../net/netapp.ts'
import { defineCodec } from '../../util/codec.ts'
import { lwwMapGet } from '../../util/crdt/crdt.ts'
import type { Logger } from '../../util/logger.ts'
import {
  allNodes,
  allStorageNodes,
  applyStagedChanges,
  cleanupOldVersions,
  currentVersion,
  type LayoutHistory,
  type LayoutVersion,
  mergeLayoutHistory,
  minStored,
  type NodeRoleV,
  newLayoutHistory,
  revertStagedChanges,
  stageParameters,
  stageRole,
  trackerGet,
  trackerMinAmong,
  trackerSetMax,
} from './history.ts'
import { LayoutError, type LayoutParameters, type NodeRole, type ZoneRedundancy } from './types.ts'

/** File name of the persisted history inside `metadata_dir`. */
export const CLUSTER_LAYOUT_FILE = 'cluster_layout'

/** Persisted format of the history; never rename a marker once written. @internal */
export const LAYOUT_HISTORY_CODEC = defineCodec<LayoutHistory>('GTSlayout1')

/** Sends our history to a peer, which merges it. @internal */
export const LAYOUT_ADVERTISE = defineEndpoint<{ history: LayoutHistory }, { ok: true }>('layout/advertise')
/** Asks a peer for its history. @internal */
export const LAYOUT_PULL = defineEndpoint<{ digest: string }, { history: LayoutHistory }>('layout/pull')

/** Smallest capacity accepted for a storage node, as Garage's admin API (1 KiB). */
export const MIN_CAPACITY = 1024

/** What the layout manager needs from membership (lib/rpc/system.ts). @internal */
export interface LayoutPeers {
  /** Ids of the peers currently up, without this node. */
  upPeers(): string[]
  onPeerUp(cb: (nodeId: string) => void): void
  onStatus(cb: (nodeId: string, status: { layoutDigest: string }) => void): void
}

/** @internal */
export interface LayoutManagerOptions {
  /** Absent on a standalone node: the layout is then only local. */
  netApp?: NetApp
  system?: LayoutPeers
  metadataDir: string
  replicationFactor: number
  nodeId: string
  log: Logger
  signal: AbortSignal
  /** Time source for CRDT timestamps (tests). Default `Date.now`. */
  now?: () => number
  /**
   * Record this node's sync of a new version as soon as it knows it. True while no table places
   * its data by the layout (tables replicate locally), so that there is nothing to move and
   * old versions can retire; the table sync will call {@link LayoutManager.markSynced} instead.
   */
  syncImmediately?: boolean
}

/** A role change: a new role, or a removal. */
export type LayoutRoleChange =
  | { id: string; zone: string; capacity: number | null; tags?: string[] }
  | { id: string; remove: true }

/** Changes to stage for the next layout version. */
export interface LayoutStageRequest {
  /** Roles to set (capacity in bytes, `null` for a gateway) or remove; ids may be unique prefixes. */
  roles?: LayoutRoleChange[]
  /** New parameters: `zoneRedundancy` is `'maximum'` or a number of zones (1 … replication factor). */
  parameters?: { zoneRedundancy: ZoneRedundancy }
}

/** The operator-facing view of a layout version (Garage's GetClusterLayoutResponse). */
export interface ClusterLayoutView {
  /** Version number of the current layout (0: none applied yet). */
  version: number
  /** Nodes with a role in the current version. */
  roles: Array<{
    /** Full hex node id. */
    id: string
    zone: string
    tags: string[]
    /** Null for a gateway. */
    capacity: number | null
    /** Partition copies the node stores (null for a gateway). */
    storedPartitions: number | null
    /** storedPartitions × partitionSize (null for a gateway). */
    usableCapacity: number | null
  }>
  /** Parameters the current version was computed with. */
  parameters: LayoutParameters
  /** Bytes of one partition copy (0 before the first version). */
  partitionSize: number
  /** Role changes that the next version would apply. */
  stagedRoleChanges: LayoutRoleChange[]
  /** Null when the staged parameters equal the current ones. */
  stagedParameters: LayoutParameters | null
}

/** Result of a preview: the layout the staged changes would produce, or why they cannot. */
export type LayoutPreview = { ok: true; messages: string[]; layout: ClusterLayoutView } | { ok: false; error: string }

export interface LayoutApplyResult {
  /** Garage-style report of the computation (partition size, usage, partitions to move); not for parsing. */
  messages: string[]
  /** The new current layout. */
  layout: ClusterLayoutView
}

export interface LayoutHistoryView {
  /** Number of the current version. */
  currentVersion: number
  /** Every node has acknowledged at least this version. */
  minAck: number
  /** Newest first: active versions, then retired ones. */
  versions: Array<{
    version: number
    status: 'Current' | 'Draining' | 'Historical'
    storageNodes: number
    gatewayNodes: number
  }>
  /** Per node, when several versions are live (null otherwise). */
  updateTrackers: Record<string, { ack: number; sync: number; syncAck: number }> | null
}

export interface SkipDeadNodesResult {
  /** Nodes whose ack tracker was raised to the version. */
  ackUpdated: string[]
  /** Nodes whose sync tracker was raised (only with `allowMissingData`). */
  syncUpdated: string[]
}

const HEX_ID = /^[0-9a-f]{64}$/

/**
 * Keeps, persists and gossips the cluster layout history of one node.
 * @internal
 */
export class LayoutManager {
  readonly #o: LayoutManagerOptions
  readonly #log: Logger
  readonly #now: () => number
  readonly #file: string
  #history: LayoutHistory
  #digest = ''
  #saving: Promise<void> = Promise.resolve()
  readonly #pulling = new Set<string>()
  readonly #listeners: Array<(h: LayoutHistory) => void> = []
  #started = false
  #ackLimit: () => number = () => Number.POSITIVE_INFINITY

  constructor(options: LayoutManagerOptions) {
    this.#o = options
    this.#log = options.log
    this.#now = options.now ?? Date.now
    this.#file = join(options.metadataDir, CLUSTER_LAYOUT_FILE)
    this.#history = newLayoutHistory(options.replicationFactor)
    this.#digest = digestOf(this.#history)
  }

  /** Loads the persisted history (if any) and registers the RPC endpoints. */
  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    let bytes: Buffer | undefined
    try {
      bytes = await readFile(this.#file)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    if (bytes !== undefined) {
      const loaded = LAYOUT_HISTORY_CODEC.decode(bytes)
      const rf = currentVersion(loaded).replicationFactor
      if (rf !== this.#o.replicationFactor && currentVersion(loaded).ringAssignment.length > 0) {
        throw new LayoutError(
          `the stored cluster layout uses replication factor ${rf}, but the configuration says ${this.#o.replicationFactor}`,
        )
      }
      this.#history = loaded
      this.#digest = digestOf(loaded)
    }
    this.#bumpOwnTrackers()
    const net = this.#o.netApp
    if (net !== undefined) {
      net.handle(LAYOUT_ADVERTISE, async (req, from) => {
        await this.#merge(req.history, from)
        return { ok: true }
      })
      net.handle(LAYOUT_PULL, () => ({ history: this.#history }))
    }
    const system = this.#o.system
    if (system !== undefined) {
      system.onPeerUp((id) => this.#pull(id))
      system.onStatus((id, status) => {
        if (status.layoutDigest !== this.#digest) this.#pull(id)
      })
    }
  }

  /** A short fingerprint of the history, exchanged in status messages. */
  digest(): string {
    return this.#digest
  }

  /** The whole history (plain data; do not mutate). */
  history(): LayoutHistory {
    return this.#history
  }

  /** The current layout version. */
  current(): LayoutVersion {
    return currentVersion(this.#history)
  }

  /** Called after every change of the history, local or merged. */
  onChange(cb: (h: LayoutHistory) => void): void {
    this.#listeners.push(cb)
  }

  /** Waits until the history is on disk. */
  flush(): Promise<void> {
    return this.#saving
  }

  // ---- operations ----

  /** The current version, with the staged changes. */
  get(): ClusterLayoutView {
    return layoutView(this.#history)
  }

  /** Stages role changes and/or parameters for the next version. */
  async stage(request: LayoutStageRequest): Promise<ClusterLayoutView> {
    let h = this.#history
    const now = this.#now()
    const rf = currentVersion(h).replicationFactor
    for (const change of request.roles ?? []) {
      const id = this.resolveNodeId(change.id)
      let role: NodeRoleV
      if ('remove' in change) {
        if (change.remove !== true) throw new LayoutError(`invalid role change for node ${change.id}`)
        role = null
      } else {
        if (typeof change.zone !== 'string' || change.zone === '') {
          throw new LayoutError(`node ${id.slice(0, 16)}: a zone is required`)
        }
        const cap = change.capacity
        if (cap !== null && (!Number.isSafeInteger(cap) || cap < MIN_CAPACITY)) {
          throw new LayoutError(`node ${id.slice(0, 16)}: the capacity must be an integer of at least 1K (${MIN_CAPACITY})`)
        }
        role = { zone: change.zone, capacity: cap, tags: [...(change.tags ?? [])] }
      }
      h = stageRole(h, id, role, now)
    }
    if (request.parameters !== undefined) {
      const zr = request.parameters.zoneRedundancy
      if (zr !== 'maximum') {
        if (!Number.isInteger(zr) || zr < 1) throw new LayoutError('The zone redundancy must be at least 1.')
        if (zr > rf) throw new LayoutError(`The zone redundancy must be smaller or equal to the replication factor (${rf}).`)
      }
      h = stageParameters(h, { zoneRedundancy: zr }, now)
    }
    await this.#commit(h)
    return this.get()
  }

  /** What applying the staged changes would produce; changes nothing. Same result as {@link apply}. */
  preview(): LayoutPreview {
    const h = this.#history
    try {
      const { history, messages } = applyStagedChanges(h, currentVersion(h).version + 1, this.#now())
      return { ok: true, messages, layout: layoutView(history) }
    } catch (err) {
      if (err instanceof LayoutError) return { ok: false, error: err.message }
      throw err
    }
  }

  /**
   * Computes and installs the next version from the staged changes. `version` must be the current
   * version + 1 (a safety check against concurrent applies).
   * @throws LayoutError for another version number or when no assignment is possible.
   */
  async apply(version: number): Promise<LayoutApplyResult> {
    const { history, messages } = applyStagedChanges(this.#history, version, this.#now())
    await this.#commit(history)
    return { messages, layout: this.get() }
  }

  /** Drops the staged changes. */
  async revert(): Promise<ClusterLayoutView> {
    await this.#commit(revertStagedChanges(this.#history, this.#now()))
    return this.get()
  }

  /** Versions with their status, and the update trackers. */
  historyView(): LayoutHistoryView {
    const h = this.#history
    const current = currentVersion(h).version
    const min = minStored(h)
    const versions = [...h.versions].reverse().concat([...h.oldVersions].reverse())
    const nodes = allNodes(h)
    const t = h.updateTrackers
    let updateTrackers: LayoutHistoryView['updateTrackers'] = null
    if (h.versions.length > 1) {
      updateTrackers = {}
      for (const n of nodes) {
        updateTrackers[n] = {
          ack: trackerGet(t.ackMap, n, min),
          sync: trackerGet(t.syncMap, n, min),
          syncAck: trackerGet(t.syncAckMap, n, min),
        }
      }
    }
    return {
      currentVersion: current,
      minAck: trackerMinAmong(t.ackMap, nodes, min),
      versions: versions.map((v) => {
        let storageNodes = 0
        let gatewayNodes = 0
        for (const [, , role] of v.roles) {
          if (role === null) continue
          if (role.capacity === null) gatewayNodes++
          else storageNodes++
        }
        const status = v.version === current ? 'Current' : v.version >= min ? 'Draining' : 'Historical'
        return { version: v.version, status, storageNodes, gatewayNodes }
      }),
      updateTrackers,
    }
  }

  /**
   * Lets the cluster progress without nodes that are down: raises their ack tracker to `version`
   * (and, with `allowMissingData`, every node's ack and sync trackers).
   */
  async skipDeadNodes(options: { version: number; allowMissingData?: boolean }): Promise<SkipDeadNodesResult> {
    let h = this.#history
    if (h.versions.length === 1) {
      throw new LayoutError('This command cannot be called when there is only one live cluster layout version')
    }
    const min = minStored(h)
    const cur = currentVersion(h).version
    const { version } = options
    const allow = options.allowMissingData === true
    if (!(version > min && version <= cur)) {
      const valid: number[] = []
      for (let v = min + 1; v <= cur; v++) valid.push(v)
      throw new LayoutError(`Invalid version, you may use the following version numbers: ${valid.join(' ')}`)
    }
    const up = new Set([this.#o.nodeId, ...(this.#o.system?.upPeers() ?? [])])
    const ackUpdated: string[] = []
    const syncUpdated: string[] = []
    let trackers = h.updateTrackers
    for (const node of allNodes(h)) {
      if (allow || !up.has(node)) {
        if (trackerGet(trackers.ackMap, node, min) < version) {
          trackers = { ...trackers, ackMap: trackerSetMax(trackers.ackMap, node, version) }
          ackUpdated.push(node)
        }
      }
      if (allow && trackerGet(trackers.syncMap, node, min) < version) {
        trackers = { ...trackers, syncMap: trackerSetMax(trackers.syncMap, node, version) }
        syncUpdated.push(node)
      }
    }
    h = { ...h, updateTrackers: trackers }
    await this.#commit(h)
    return { ackUpdated, syncUpdated }
  }

  /** Records that this node finished syncing its data for `version` (the table sync calls it). */
  async markSynced(version: number): Promise<void> {
    const t = this.#history.updateTrackers
    await this.#commit({
      ...this.#history,
      updateTrackers: { ...t, syncMap: trackerSetMax(t.syncMap, this.#o.nodeId, version) },
    })
  }

  /** Sets the highest version this node may acknowledge (writes in flight; see LayoutHelper.lockWrite). */
  setAckLimit(limit: () => number): void {
    this.#ackLimit = limit
  }

  /** The ack limit moved up: acknowledge what can be now, persist and gossip it. */
  refreshAck(): void {
    const before = this.#digest
    this.#bumpOwnTrackers()
    if (this.#digest === before) return
    this.#save().then(
      () => this.#advertise(),
      (err: unknown) => this.#log.warn(`saving the cluster layout failed: ${(err as Error).message}`),
    )
  }

  /**
   * The full id of a node given as its id or a unique prefix of a known node id (this node, the
   * peers up, and the nodes named in the layout history or the staged changes).
   * @throws LayoutError when no node or several nodes match.
   */
  resolveNodeId(given: string): string {
    const pattern = given.trim().toLowerCase()
    if (HEX_ID.test(pattern)) return pattern
    const known = new Set<string>([this.#o.nodeId, ...(this.#o.system?.upPeers() ?? [])])
    const h = this.#history
    for (const v of [...h.versions, ...h.oldVersions]) for (const [id] of v.roles) known.add(id)
    for (const [id] of h.staging.v.roles) known.add(id)
    const matches = pattern === '' ? [] : [...known].filter((id) => id.startsWith(pattern))
    if (matches.length !== 1) throw new LayoutError(`${matches.length} nodes match '${given}'`)
    return matches[0] as string
  }

  // ---- internals ----

  /** Installs a new local history: trackers, persistence, gossip. */
  async #commit(h: LayoutHistory): Promise<void> {
    this.#set(h)
    this.#bumpOwnTrackers()
    await this.#save()
    this.#advertise()
  }

  #set(h: LayoutHistory): void {
    this.#history = h
    this.#digest = digestOf(h)
    for (const cb of this.#listeners) cb(h)
  }

  /**
   * This node acknowledges every version it knows (no write is in flight with an older one in
   * this implementation), records its sync when {@link LayoutManagerOptions.syncImmediately},
   * and raises its sync-ack to the lowest sync of all storage nodes; old versions then retire.
   */
  #bumpOwnTrackers(): void {
    const h = this.#history
    const self = this.#o.nodeId
    const cur = currentVersion(h).version
    let t = h.updateTrackers
    // Acknowledge the current version unless writes made with an older one are still in flight.
    t = { ...t, ackMap: trackerSetMax(t.ackMap, self, Math.min(cur, this.#ackLimit())) }
    if (this.#o.syncImmediately !== false) t = { ...t, syncMap: trackerSetMax(t.syncMap, self, cur) }
    const syncMin = trackerMinAmong(t.syncMap, allStorageNodes(h), minStored(h))
    t = { ...t, syncAckMap: trackerSetMax(t.syncAckMap, self, syncMin) }
    const next = cleanupOldVersions({ ...h, updateTrackers: t })
    if (digestOf(next) !== this.#digest) this.#set(next)
  }

  #save(): Promise<void> {
    const run = async () => {
      const bytes = LAYOUT_HISTORY_CODEC.encode(this.#history)
      await mkdir(this.#o.metadataDir, { recursive: true })
      const tmp = `${this.#file}.tmp`
      await writeFile(tmp, bytes)
      await rename(tmp, this.#file)
    }
    // Writes run one after the other; each writes the newest history.
    this.#saving = this.#saving.then(run, run)
    return this.#saving
  }

  #advertise(): void {
    const net = this.#o.netApp
    const system = this.#o.system
    if (net === undefined || system === undefined || this.#o.signal.aborted) return
    const history = this.#history
    for (const peer of system.upPeers()) {
      net.call(peer, LAYOUT_ADVERTISE, { history }, { priority: 'high', signal: this.#o.signal }).catch((err: unknown) => {
        // Best effort: the peer pulls our history when it sees our digest in the status exchange.
        this.#log.debug(`advertising the layout to ${peer.slice(0, 16)} failed: ${(err as Error).message}`)
      })
    }
  }

  #pull(peer: string): void {
    const net = this.#o.netApp
    if (net === undefined || this.#o.signal.aborted || this.#pulling.has(peer)) return
    this.#pulling.add(peer)
    net
      .call(peer, LAYOUT_PULL, { digest: this.#digest }, { priority: 'high', signal: this.#o.signal })
      .then((res) => this.#merge(res.history, peer))
      .catch((err: unknown) => {
        // Retried at the next status exchange that still shows a different digest.
        this.#log.debug(`pulling the layout from ${peer.slice(0, 16)} failed: ${(err as Error).message}`)
      })
      .finally(() => this.#pulling.delete(peer))
  }

  async #merge(theirs: LayoutHistory, from: string): Promise<void> {
    const { history, changed, conflicts } = mergeLayoutHistory(this.#history, theirs)
    if (conflicts.length > 0) {
      this.#log.warn(
        `node ${from.slice(0, 16)} has different contents for layout version(s) ${conflicts.join(', ')}: two applies with the same version number?`,
      )
    }
    if (!changed) return
    const before = currentVersion(this.#history).version
    this.#set(history)
    this.#bumpOwnTrackers()
    const after = currentVersion(this.#history).version
    if (after !== before) this.#log.info(`cluster layout version ${after} received from ${from.slice(0, 16)}`)
    await this.#save()
    this.#advertise()
  }
}

/** Garage's `format_cluster_layout`. */
function layoutView(h: LayoutHistory): ClusterLayoutView {
  const current = currentVersion(h)
  const counts = new Map<string, number>()
  for (const i of current.ringAssignment) {
    const id = current.nodeIdVec[i] as string
    counts.set(id, (counts.get(id) ?? 0) + 1)
  }
  const hasRing = current.ringAssignment.length > 0
  const roles: ClusterLayoutView['roles'] = []
  for (const [id, , role] of current.roles) {
    if (role === null) continue
    const stored = role.capacity !== null && hasRing ? (counts.get(id) ?? 0) : null
    roles.push({
      id,
      zone: role.zone,
      tags: [...role.tags],
      capacity: role.capacity,
      storedPartitions: stored,
      usableCapacity: stored === null ? null : stored * current.partitionSize,
    })
  }
  const staging = h.staging.v
  const stagedRoleChanges: LayoutRoleChange[] = []
  for (const [id, , role] of staging.roles) {
    const cur = lwwMapGet(current.roles, id)
    if (sameRole(cur ?? null, role)) continue
    if (role === null) stagedRoleChanges.push({ id, remove: true })
    else stagedRoleChanges.push({ id, zone: role.zone, capacity: role.capacity, tags: [...role.tags] })
  }
  const staged = staging.parameters.v
  return {
    version: current.version,
    roles,
    parameters: { ...current.parameters },
    partitionSize: current.partitionSize,
    stagedRoleChanges,
    stagedParameters: staged.zoneRedundancy === current.parameters.zoneRedundancy ? null : { ...staged },
  }
}

function sameRole(a: NodeRole | null, b: NodeRole | null): boolean {
  if (a === null || b === null) return a === b
  return (
    a.zone === b.zone && a.capacity === b.capacity && a.tags.join('\0') === b.tags.join('\0') && a.tags.length === b.tags.length
  )
}

/** SHA-256 of a canonical JSON rendering (sorted keys), so equal histories agree whatever their key order. */
function digestOf(h: LayoutHistory): string {
  return createHash('sha256').update(canonicalJson(h)).digest('hex').slice(0, 32)
}

function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null'
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`
  const o = v as Record<string, unknown>
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`
}
