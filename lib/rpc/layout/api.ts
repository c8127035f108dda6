/**
 * `node.layout.*`: cluster layout management as the application sees it (Garage's `garage layout`
 * commands and admin API layout endpoints). Plain data in and out; the admin API and the CLI are
 * thin layers over the same calls. Any node can be asked: staged changes and applied versions
 * spread to every node (a CRDT merge), so all nodes converge.
 */
import type {
  ClusterLayoutView,
  LayoutApplyResult,
  LayoutHistoryView,
  LayoutManager,
  LayoutPreview,
  LayoutStageRequest,
  SkipDeadNodesResult,
} from './manager.ts'

export type {
  ClusterLayoutView,
  LayoutApplyResult,
  LayoutHistoryView,
  LayoutPreview,
  LayoutRoleChange,
  LayoutStageRequest,
  SkipDeadNodesResult,
} from './manager.ts'

/** Cluster layout management: `node.layout` (also on a standalone node, where the cluster is this node). */
export class LayoutApi {
  readonly #m: LayoutManager

  /** @internal */
  constructor(manager: LayoutManager) {
    this.#m = manager
  }

  /** The current layout version: roles with their usage, parameters, partition size, staged changes. */
  get(): ClusterLayoutView {
    return this.#m.get()
  }

  /**
   * Stages role changes (`{ id, zone, capacity, tags }`, capacity `null` for a gateway, or
   * `{ id, remove: true }`) and/or parameters for the next version. Node ids may be unique
   * prefixes of known node ids.
   *
   * @example
   * ```ts
   * await node.layout.stage({ roles: [{ id: node.nodeId, zone: 'dc1', capacity: 10e9, tags: [] }] })
   * const { layout } = await node.layout.apply(node.layout.get().version + 1)
   * ```
   * @throws LayoutError (code `GARAGE_ERR_LAYOUT`) for an unknown node, a bad capacity or parameter.
   */
  stage(request: LayoutStageRequest): Promise<ClusterLayoutView> {
    return this.#m.stage(request)
  }

  /** The layout that applying the staged changes would produce (or why it cannot), without applying. */
  preview(): LayoutPreview {
    return this.#m.preview()
  }

  /**
   * Applies the staged changes as version `version`, which must be the current version + 1.
   * @throws LayoutError for another version number or when no assignment is possible.
   */
  apply(version: number): Promise<LayoutApplyResult> {
    return this.#m.apply(version)
  }

  /** Drops the staged changes. */
  revert(): Promise<ClusterLayoutView> {
    return this.#m.revert()
  }

  /** Layout versions (newest first) with their status, and the update trackers while several are live. */
  history(): LayoutHistoryView {
    return this.#m.historyView()
  }

  /** Forces progress of a layout transition when nodes are dead (`garage layout skip-dead-nodes`). */
  skipDeadNodes(options: { version: number; allowMissingData?: boolean }): Promise<SkipDeadNodesResult> {
    return this.#m.skipDeadNodes(options)
  }
}
