/**
 * What makes a table: how to key, merge and encode its entries (port of garage_table::schema).
 * Entries are plain msgpack-friendly data; behaviour lives in the schema object.
 */
import type { Transaction } from '../db/db.ts'
import type { VersionedCodec } from '../util/codec.ts'
import { blake2sum, type Hash } from '../util/data.ts'

export interface TableSchema<E> {
  /** lmdb tree prefix and RPC path suffix; never renamed once shipped. */
  readonly tableName: string
  readonly codec: VersionedCodec<E>
  /** Partition key bytes: entries with the same one live on the same nodes. */
  partitionKey(entry: E): Uint8Array
  /** Sort key bytes, ordering entries inside a partition. */
  sortKey(entry: E): Uint8Array
  /**
   * Hash of a partition key, which places it on the ring. Keys that are already random 32-byte
   * ids use them as they are; others are hashed (see {@link hashPartitionKey}).
   */
  partitionHash(partitionKey: Uint8Array): Hash
  /** CRDT merge: commutative, associative, idempotent. */
  merge(current: E, incoming: E): E
  /** A tombstone can be garbage-collected once every replica has it. */
  isTombstone(entry: E): boolean
  /**
   * Runs inside the transaction that changed the entry (after the merge), with the stored
   * value before and after. Use it for cross-table effects through insert queues. `next` is
   * undefined when the entry is deleted locally (handed over to its new holders by
   * anti-entropy, or a tombstone garbage-collected): undo what `previous` counted.
   */
  updated?(tx: Transaction, previous: E | undefined, next: E | undefined): void
}

const ZERO_HASH = new Uint8Array(32)

/** Garage's rule: the empty key hashes to zeros, other keys to blake2sum(key). */
export function hashPartitionKey(partitionKey: Uint8Array): Hash {
  return partitionKey.length === 0 ? ZERO_HASH : blake2sum(partitionKey)
}

/** For tables whose partition key is already a random 32-byte id (uuid, block hash). */
export function identityPartitionKey(partitionKey: Uint8Array): Hash {
  return partitionKey
}
