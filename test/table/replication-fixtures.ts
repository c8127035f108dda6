/** A fixed placement for table tests: one partition, the same nodes for every entry. */
import type { NodeId, SyncPartitions, TableReplication } from '../../lib/table/replication.ts'

export interface FixedPlacement {
  /** The nodes reads ask, in order. */
  read: NodeId[]
  /** The nodes that store every entry (one write set). */
  write: NodeId[]
  /** Default: every read node. */
  readQuorum?: number
  /** Default: every write node. */
  writeQuorum?: number
}

/** Every entry on the same nodes; no anti-entropy timer. */
export class FixedReplication implements TableReplication {
  readonly antiEntropyIntervalMs = Number.POSITIVE_INFINITY
  readonly #o: FixedPlacement
  constructor(o: FixedPlacement) {
    this.#o = o
  }
  storageNodes(): NodeId[] {
    return this.#o.write
  }
  readNodes(): NodeId[] {
    return this.#o.read
  }
  readQuorum(): number {
    return this.#o.readQuorum ?? this.#o.read.length
  }
  writeSets(): NodeId[][] {
    return [this.#o.write]
  }
  writeQuorum(): number {
    return this.#o.writeQuorum ?? this.#o.write.length
  }
  partitionOf(): number {
    return 0
  }
  syncPartitions(): SyncPartitions {
    return { layoutVersion: 0, partitions: [] }
  }
}

/** Every entry on `nodes`, read from `self` first (when it is one of them), quorums of two. */
export function onNodes(self: NodeId, nodes: readonly NodeId[]): FixedReplication {
  const ordered = nodes.includes(self) ? [self, ...nodes.filter((n) => n !== self)] : [...nodes]
  return new FixedReplication({ read: ordered, write: ordered, readQuorum: 2, writeQuorum: 2 })
}
