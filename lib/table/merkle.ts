/**
 * Merkle trees of a table, one per partition, for anti-entropy (port of garage_table::merkle).
 *
 * Every change of an entry records `item key → blake2(value)` (empty for a deletion) in the
 * table's `merkle_todo` tree, in the transaction of the change; {@link MerkleUpdater} folds those
 * into `merkle_tree`. Each partition's tree is a radix tree over blake2(item key): a node is
 * stored under `u16 BE partition ‖ prefix bytes` and is Empty (not stored), a Leaf (the only item
 * under that prefix: its key and value hash) or Intermediate (two items or more under that
 * prefix: the hash of each non-empty child, by next byte). The shape depends only on the set of
 * items, so two nodes holding the same items have the same root hash.
 * @internal
 */
import type { Transaction } from '../db/db.ts'
import type { Worker, WorkerState } from '../util/background/worker.ts'
import { defineCodec } from '../util/codec.ts'
import { blake2sum, bytesEqual, concatBytes, type Hash } from '../util/data.ts'
import { GarageError } from '../util/errors.ts'
import type { Logger } from '../util/logger.ts'
import type { TableData } from './data.ts'
import type { TableReplication } from './replication.ts'

/** A node of a partition's Merkle tree. @internal */
export type MerkleNode =
  | { t: 'empty' }
  /** Children sorted by their byte; hashes of non-empty subtrees only. */
  | { t: 'intermediate'; children: Array<[number, Hash]> }
  | { t: 'leaf'; key: Uint8Array; hash: Hash }

/** Stored and sent form: a version marker, then msgpack of a tagged tuple. */
type WireNode = [0] | [1, Array<[number, Uint8Array]>] | [2, Uint8Array, Uint8Array]

const nodeCodec = defineCodec<WireNode>('GTmkl1')

/** Encodes a node as it is stored and hashed. @internal */
export function encodeMerkleNode(n: MerkleNode): Uint8Array {
  switch (n.t) {
    case 'empty':
      return nodeCodec.encode([0])
    case 'intermediate':
      return nodeCodec.encode([1, n.children])
    case 'leaf':
      return nodeCodec.encode([2, n.key, n.hash])
  }
}

/** Decodes a stored node; `undefined` (absent) is the empty node. @internal */
export function decodeMerkleNode(raw: Uint8Array | undefined): MerkleNode {
  if (raw === undefined) return EMPTY
  const w = nodeCodec.decode(raw)
  switch (w[0]) {
    case 0:
      return EMPTY
    case 1:
      return { t: 'intermediate', children: w[1].map(([b, h]) => [b, new Uint8Array(h)]) }
    case 2:
      return { t: 'leaf', key: new Uint8Array(w[1]), hash: new Uint8Array(w[2]) }
    default:
      throw new GarageError('GARAGE_ERR_DECODE', `unknown Merkle node kind ${String((w as unknown[])[0])}`)
  }
}

const EMPTY: MerkleNode = { t: 'empty' }

/** Hash of the empty node (the root hash of an empty partition). @internal */
export const EMPTY_NODE_HASH: Hash = blake2sum(encodeMerkleNode(EMPTY))

/** Hash of a node given in its stored form (`undefined`: empty). @internal */
export function merkleNodeHash(raw: Uint8Array | undefined): Hash {
  return raw === undefined ? EMPTY_NODE_HASH : blake2sum(raw)
}

/** Key of the Merkle node at `prefix` in `partition`. @internal */
export function merkleNodeKey(partition: number, prefix: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(2 + prefix.length)
  out[0] = (partition >> 8) & 0xff
  out[1] = partition & 0xff
  out.set(prefix, 2)
  return out
}

/** The partition of a Merkle node key. @internal */
export function partitionOfMerkleKey(key: Uint8Array): number {
  return ((key[0] ?? 0) << 8) | (key[1] ?? 0)
}

const BATCH = 256

/**
 * Key of the record of how items were assigned to partitions when the tree was built. Node keys
 * are at least 2 bytes long, so a 1-byte key never collides with one.
 */
const PARTITIONING_KEY = new Uint8Array([0])

/** Keys per transaction when the tree is rebuilt. */
const REBUILD_CHUNK = 1000

/** Lets other work run between two rebuild chunks; throws if the node is stopping. */
async function yieldToEventLoop(signal?: AbortSignal): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve))
  signal?.throwIfAborted()
}

/** @internal */
export interface MerkleUpdaterOptions<E> {
  data: TableData<E>
  replication: TableReplication
  log: Logger
}

/**
 * Reads a table's Merkle trees (for sync) and folds its `merkle_todo` into them (a background
 * worker). @internal
 */
export class MerkleUpdater<E> implements Worker {
  readonly name: string
  readonly #data: TableData<E>
  readonly #replication: TableReplication
  readonly #log: Logger
  #folded = 0
  #checked = false
  #rebuilding = false

  constructor(o: MerkleUpdaterOptions<E>) {
    this.#data = o.data
    this.#replication = o.replication
    this.#log = o.log
    this.name = `${o.data.schema.tableName} Merkle`
  }

  /** The stored form of the node at `key` (undefined: empty). */
  readNodeRaw(key: Uint8Array): Uint8Array | undefined {
    return this.#data.merkleTree.get(key)
  }

  readNode(key: Uint8Array): MerkleNode {
    return decodeMerkleNode(this.readNodeRaw(key))
  }

  /** Root hash of a partition's tree. */
  rootHash(partition: number): Hash {
    return merkleNodeHash(this.readNodeRaw(merkleNodeKey(partition)))
  }

  /** Items still to fold into the tree. */
  todoLength(): number {
    return this.#data.merkleTodo.count()
  }

  /** A rebuild is in progress: the tree does not cover every item yet. */
  get rebuilding(): boolean {
    return this.#rebuilding
  }

  async work(signal: AbortSignal): Promise<WorkerState> {
    if (!this.#checked) {
      this.#checked = true
      await this.checkPartitioning(signal)
    }
    return this.updateBatch() > 0 ? 'busy' : 'idle'
  }

  /**
   * Rebuilds the tree if it was built with another assignment of items to partitions (a node
   * that ran alone, with everything in partition 0, and now is part of a cluster), or before
   * this node kept Merkle trees at all. Returns whether it rebuilt.
   */
  async checkPartitioning(signal?: AbortSignal): Promise<boolean> {
    const probe = (b: number): number => this.#replication.partitionOf(new Uint8Array(32).fill(b))
    const want = concatBytes(merkleNodeKey(probe(0x01)), merkleNodeKey(probe(0xff)))
    const have = this.#data.merkleTree.get(PARTITIONING_KEY)
    if (have !== undefined && bytesEqual(have, want)) return false
    await this.rebuild(want, signal)
    return true
  }

  waitForWork(signal: AbortSignal): Promise<void> {
    return this.#data.merkleTodoNotify.wait(signal, 10_000)
  }

  info(): Record<string, number> {
    return { todoLength: this.todoLength(), folded: this.#folded }
  }

  /**
   * Folds up to `limit` todo items into the tree, in one transaction; an item is removed from
   * the todo only if it was not changed since it was read. Returns how many were folded.
   */
  updateBatch(limit = BATCH): number {
    const data = this.#data
    const items = [...data.merkleTodo.range({ limit })]
    if (items.length === 0) return 0
    data.db.transaction((tx) => {
      for (const [k, vhash] of items) {
        this.#updateItem(tx, k, vhash.length === 0 ? undefined : vhash)
        const cur = tx.get(data.merkleTodo, k)
        if (cur !== undefined && bytesEqual(cur, vhash)) tx.remove(data.merkleTodo, k)
      }
    })
    this.#folded += items.length
    return items.length
  }

  /** Folds everything pending (tests and tools). */
  updateAll(): void {
    let n: number
    do n = this.updateBatch()
    while (n > 0)
  }

  /** Number of stored Merkle nodes. */
  nodeCount(): number {
    let n = 0
    for (const [k] of this.#data.merkleTree.range()) if (k.length >= 2) n++
    return n
  }

  /**
   * Clears the tree and queues every stored item again (after a change of partitioning), in
   * chunks of REBUILD_CHUNK keys per transaction with a yield between them, so a large table
   * does not stall the node. The partitioning marker is removed first and written last: a crash
   * midway rebuilds again at the next start. Each item is read and queued in the same
   * transaction, so a concurrent write's own todo entry is never overwritten by an older hash.
   */
  async rebuild(partitioning?: Uint8Array, signal?: AbortSignal): Promise<void> {
    const data = this.#data
    this.#rebuilding = true
    try {
      data.db.transaction((tx) => tx.remove(data.merkleTree, PARTITIONING_KEY))
      for (;;) {
        const removed = data.db.transaction((tx) => {
          const keys = [...tx.range(data.merkleTree, { limit: REBUILD_CHUNK })].map(([k]) => k)
          for (const k of keys) tx.remove(data.merkleTree, k)
          return keys.length
        })
        if (removed === 0) break
        await yieldToEventLoop(signal)
      }
      let queued = 0
      let start: Uint8Array | undefined
      for (;;) {
        const last = data.db.transaction((tx) => {
          let lastKey: Uint8Array | undefined
          for (const [k, v] of tx.range(data.store, { ...(start === undefined ? {} : { start }), limit: REBUILD_CHUNK })) {
            tx.insert(data.merkleTodo, k, blake2sum(v))
            lastKey = k
            queued++
          }
          return lastKey
        })
        if (last === undefined) break
        start = concatBytes(last, new Uint8Array([0]))
        data.merkleTodoNotify.notify()
        await yieldToEventLoop(signal)
      }
      if (partitioning !== undefined) data.db.transaction((tx) => tx.insert(data.merkleTree, PARTITIONING_KEY, partitioning))
      if (queued > 0) this.#log.info(`rebuilt the Merkle todo of ${data.schema.tableName} (${queued} items queued)`)
      data.merkleTodoNotify.notify()
    } finally {
      this.#rebuilding = false
    }
  }

  #updateItem(tx: Transaction, itemKey: Uint8Array, valueHash: Hash | undefined): void {
    const partition = this.#replication.partitionOf(itemKey.subarray(0, 32))
    this.#updateRec(tx, itemKey, blake2sum(itemKey), merkleNodeKey(partition), valueHash)
  }

  /**
   * Applies the change of one item under the node at `key`; returns the node's new hash, or
   * undefined if it did not change.
   */
  #updateRec(tx: Transaction, itemKey: Uint8Array, khash: Hash, key: Uint8Array, vhash: Hash | undefined): Hash | undefined {
    const depth = key.length - 2
    const node = decodeMerkleNode(tx.get(this.#data.merkleTree, key))
    let next: MerkleNode | undefined
    switch (node.t) {
      case 'empty':
        if (vhash !== undefined) next = { t: 'leaf', key: itemKey, hash: vhash }
        break
      case 'intermediate': {
        const b = khash[depth] as number
        const subKey = concatBytes(key, new Uint8Array([b]))
        const sub = this.#updateRec(tx, itemKey, khash, subKey, vhash)
        if (sub === undefined) break
        const children = node.children.filter(([c]) => c !== b)
        if (!bytesEqual(sub, EMPTY_NODE_HASH)) children.push([b, sub])
        children.sort((x, y) => x[0] - y[0])
        if (children.length === 0) {
          this.#log.warn(`Merkle tree of ${this.#data.schema.tableName}: an intermediate node lost every child`)
          next = EMPTY
        } else if (children.length === 1) {
          // One child left: if it is a leaf, it moves up here (one item under this prefix).
          const onlyKey = concatBytes(key, new Uint8Array([(children[0] as [number, Hash])[0]]))
          const only = decodeMerkleNode(tx.get(this.#data.merkleTree, onlyKey))
          if (only.t === 'leaf') {
            tx.remove(this.#data.merkleTree, onlyKey)
            next = only
          } else {
            next = { t: 'intermediate', children }
          }
        } else {
          next = { t: 'intermediate', children }
        }
        break
      }
      case 'leaf':
        if (bytesEqual(node.key, itemKey)) {
          if (vhash === undefined) next = EMPTY
          else if (!bytesEqual(vhash, node.hash)) next = { t: 'leaf', key: itemKey, hash: vhash }
        } else if (vhash !== undefined) {
          // Two items under this prefix now: both go one level down.
          const children: Array<[number, Hash]> = []
          const otherHash = blake2sum(node.key)
          const ob = otherHash[depth] as number
          const oh = this.#updateRec(tx, node.key, otherHash, concatBytes(key, new Uint8Array([ob])), node.hash)
          children.push([ob, oh as Hash])
          const b = khash[depth] as number
          const h = this.#updateRec(tx, itemKey, khash, concatBytes(key, new Uint8Array([b])), vhash)
          const same = children.findIndex(([c]) => c === b)
          if (same >= 0) children.splice(same, 1)
          children.push([b, h as Hash])
          children.sort((x, y) => x[0] - y[0])
          next = { t: 'intermediate', children }
        }
        break
    }
    if (next === undefined) return undefined
    if (next.t === 'empty') {
      tx.remove(this.#data.merkleTree, key)
      return EMPTY_NODE_HASH
    }
    const raw = encodeMerkleNode(next)
    tx.insert(this.#data.merkleTree, key, raw)
    return blake2sum(raw)
  }
}
