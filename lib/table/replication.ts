/**
 * Where a table's entries live and how many copies an operation needs (port of
 * garage_table::replication). This single-node deployment uses {@link LocalReplication};
 * the cluster plugs sharded and full-copy strategies into the same interface.
 */
import type { Hash } from '../util/data.ts'

/** A node id, as hex. */
export type NodeId = string

export interface TableReplication {
  /** Nodes that store the partition of `hash`, to read from. */
  readNodes(hash: Hash): NodeId[]
  readQuorum(): number
  /** Sets of nodes to write to; each set must reach the write quorum. */
  writeSets(hash: Hash): NodeId[][]
  writeQuorum(): number
}

/** Every entry lives on this node only. */
export class LocalReplication implements TableReplication {
  readonly #self: NodeId
  constructor(self: NodeId) {
    this.#self = self
  }
  readNodes(): NodeId[] {
    return [this.#self]
  }
  readQuorum(): number {
    return 1
  }
  writeSets(): NodeId[][] {
    return [[this.#self]]
  }
  writeQuorum(): number {
    return 1
  }
}
