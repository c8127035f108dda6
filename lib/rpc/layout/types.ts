/**
 * Data types of the cluster layout (port of the type definitions in garage_rpc::layout, mod.rs).
 * Plain data only, so that values can be encoded with msgpack and gossiped as they are.
 */
import { GarageError } from '../../util/errors.ts'

/** How many bits of a hash select its partition. */
export const PARTITION_BITS = 8
/** Number of partitions of the ring (2^PARTITION_BITS). */
export const NB_PARTITIONS = 1 << PARTITION_BITS
/** Storage nodes are numbered on 8 bits in the ring, as in Garage. */
export const MAX_NODE_NUMBER = 256

/**
 * The role of a node: the zone it lives in, its capacity in bytes (`null` for a gateway node that
 * stores no data and only serves the APIs) and free-form tags.
 */
export interface NodeRole {
  zone: string
  capacity: number | null
  tags: string[]
}

/**
 * Minimal number of distinct zones in which each partition is stored. `'maximum'` means
 * min(number of zones, replication factor).
 */
export type ZoneRedundancy = 'maximum' | number

/** Parameters of the assignment computation (Garage's `LayoutParameters`). */
export interface LayoutParameters {
  zoneRedundancy: ZoneRedundancy
}

/**
 * A partition assignment: `nodeIdVec` lists the nodes with a role, storage nodes first (sorted
 * by id) and then gateways (sorted by id); `ringAssignment` holds, for each of the 256
 * partitions, `replicationFactor` indices into `nodeIdVec`.
 */
export interface RingAssignment {
  replicationFactor: number
  partitionSize: number
  nodeIdVec: string[]
  nongatewayNodeCount: number
  ringAssignment: number[]
}

/** Statistics of one storage node in a computed assignment. */
export interface NodeAssignmentStat {
  id: string
  zone: string
  tags: string[]
  capacity: number
  /** Partition copies held by the node. */
  partitions: number
  /** Partition copies the node did not hold in the previous assignment. */
  newPartitions: number
  /** partitions × partition size. */
  usableCapacity: number
  /** usableCapacity / capacity, in percent. */
  usage: number
}

/** Statistics of one zone in a computed assignment. */
export interface ZoneAssignmentStat {
  zone: string
  nodes: number
  capacity: number
  /** Partition copies stored in the zone. */
  partitions: number
  /** Partitions with at least one copy in the zone. */
  uniquePartitions: number
  usableCapacity: number
  usage: number
}

/** Result of {@link computeAssignment}: the new assignment and what it costs to get there. */
export interface AssignmentResult extends RingAssignment {
  /** The zone redundancy actually used (`'maximum'` resolved). */
  zoneRedundancy: number
  /** partitionSize × 256 × replicationFactor. */
  usableCapacity: number
  /** Sum of the capacities of the storage nodes. */
  totalCapacity: number
  /** Partition copies that a node must fetch because it did not hold them before. */
  movedCopies: number
  nodes: NodeAssignmentStat[]
  zones: ZoneAssignmentStat[]
  /** Human-readable report, line by line, in the spirit of `garage layout show`. */
  messages: string[]
}

/** The layout cannot be computed or changed as requested (Garage's `Error::Message` in layout code). */
export class LayoutError extends GarageError {
  override name = 'LayoutError'
  constructor(message: string, options?: ErrorOptions) {
    super('GARAGE_ERR_LAYOUT', message, options)
  }
}
