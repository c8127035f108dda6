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
import type { Transaction, Tree } from '../db/db.ts'
import { sleep, type Worker, type WorkerState } from '../util/background/worker.ts'
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

/**
 * Todo items folded per transaction by the worker. The batched fold reads, encodes and hashes
 * each touched node once per batch, so a larger batch costs less per item (the partition roots,
 * up to 256 children each, are shared by every item); 1,000 items keep one step to tens of
 * milliseconds so the worker does not stall the node's event loop.
 */
const BATCH = 1000

/**
 * How long the worker lets todo items gather after being woken before it folds them (ms). Folding
 * each write's items as they came cost a node that stores others' writes up to three commits per
 * object written (object, version and block_ref, one item each per wake-up when it was not busy)
 * and the tree nodes above each item once per item; a second's gathering folds a few hundred
 * items per transaction under load.
 * Nothing waits on the fold: a sync pass folds what is pending before it compares trees.
 * Measured in docs/design/performance.md (thirteenth session).
 */
export const MERKLE_GATHER_MSEC = 1000

/** Todo items per transaction in {@link MerkleUpdater.updateAll} (tools, rebuilds, the bench). */
const BULK_BATCH = 10_000

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
  /**
   * `batched` (default): each node touched by a batch is read and decoded once, changed in memory
   * item after item, then encoded, hashed and written once, deepest first. `per-item`: Garage's
   * algorithm, one walk reading and writing the stored nodes per item (kept as the reference the
   * tests compare the batched fold with, and for the bench's before/after figure).
   */
  fold?: 'batched' | 'per-item'
  /** The worker's {@link MERKLE_GATHER_MSEC} (0: folds at once). */
  gatherMsec?: number
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
  readonly #perItem: boolean
  readonly #gatherMsec: number

  constructor(o: MerkleUpdaterOptions<E>) {
    this.#data = o.data
    this.#gatherMsec = o.gatherMsec ?? MERKLE_GATHER_MSEC
    this.#perItem = o.fold === 'per-item'
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
    // A full batch means more is pending; otherwise the next items gather first (waitForWork).
    return this.updateBatch() >= BATCH ? 'busy' : 'idle'
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

  /**
   * The tree stops following the entries (a node alone: TableDataOptions.merkle false): its
   * partitioning record goes, so that the next start that keeps the tree rebuilds it. Without
   * this, a node that kept a tree, then ran alone for a while, then joined a cluster kept the
   * stale tree whenever the partitioning looked the same (full-copy tables are in partition 0
   * either way, and a clustered node restarted alone keeps its ring partitions).
   */
  forget(): void {
    const data = this.#data
    if (data.merkleTree.get(PARTITIONING_KEY) !== undefined)
      data.db.transaction((tx) => tx.remove(data.merkleTree, PARTITIONING_KEY))
  }

  async waitForWork(signal: AbortSignal): Promise<void> {
    await this.#data.merkleTodoNotify.wait(signal, 10_000)
    if (this.#gatherMsec > 0) await sleep(this.#gatherMsec, signal)
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
      const fold = this.#perItem ? undefined : new BatchFold(tx, data.merkleTree, this.#log, data.schema.tableName)
      for (const [k, vhash] of items) {
        const v = vhash.length === 0 ? undefined : vhash
        const partition = this.#replication.partitionOf(k.subarray(0, 32))
        if (fold === undefined) this.#updateRec(tx, k, blake2sum(k), merkleNodeKey(partition), v)
        else fold.apply(partition, k, v)
        const cur = tx.get(data.merkleTodo, k)
        if (cur !== undefined && bytesEqual(cur, vhash)) tx.remove(data.merkleTodo, k)
      }
      fold?.flush()
    })
    this.#folded += items.length
    return items.length
  }

  /** Folds everything pending (tests and tools), in transactions of `batch` items. */
  updateAll(batch = BULK_BATCH): void {
    let n: number
    do n = this.updateBatch(batch)
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
      // The tree and the todo both go: every entry is queued again below. A todo item left from
      // before (a node that ran alone kept no todo of its later changes) could name a value the
      // entry no longer has.
      for (const tree of [data.merkleTree, data.merkleTodo]) {
        for (;;) {
          const removed = data.db.transaction((tx) => {
            const keys = [...tx.range(tree, { limit: REBUILD_CHUNK })].map(([k]) => k)
            for (const k of keys) tx.remove(tree, k)
            return keys.length
          })
          if (removed === 0) break
          await yieldToEventLoop(signal)
        }
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

  /**
   * The per-item fold (Garage's): applies the change of one item under the node at `key`, reading
   * and writing the stored nodes; returns the node's new hash, or undefined if it did not change.
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

/** A node of a batch, as read from the store and then changed in memory. */
interface Slot {
  key: Uint8Array
  node: MerkleNode
  dirty: boolean
}

/** Placeholder for the hash of a child changed in this batch (set when the batch is flushed). */
const PENDING: Hash = new Uint8Array(0)

function childKey(key: Uint8Array, b: number): Uint8Array {
  const out = new Uint8Array(key.length + 1)
  out.set(key)
  out[key.length] = b
  return out
}

/** Map key of a node key (short: 2 bytes of partition and the prefix). */
function slotId(key: Uint8Array): string {
  return String.fromCharCode(...key)
}

/**
 * The batched fold. Applies items to the tree's shape in memory, node by node exactly as the
 * per-item fold does (so the shape after each item is the same), but leaves the hashes of changed
 * children pending; {@link flush} then encodes, hashes and writes each changed node once, deepest
 * first, filling in its parent's pending hash. A batch of n items in one partition thus encodes
 * the partition's root (up to 256 children) once instead of n times.
 */
class BatchFold {
  readonly #slots = new Map<string, Slot>()
  readonly #tx: Transaction
  readonly #tree: Tree
  readonly #log: Logger
  readonly #tableName: string

  constructor(tx: Transaction, tree: Tree, log: Logger, tableName: string) {
    this.#tx = tx
    this.#tree = tree
    this.#log = log
    this.#tableName = tableName
  }

  apply(partition: number, itemKey: Uint8Array, vhash: Hash | undefined): void {
    this.#apply(itemKey, blake2sum(itemKey), this.#slot(merkleNodeKey(partition)), vhash)
  }

  #slot(key: Uint8Array): Slot {
    const id = slotId(key)
    let s = this.#slots.get(id)
    if (s === undefined) {
      s = { key, node: decodeMerkleNode(this.#tx.get(this.#tree, key)), dirty: false }
      this.#slots.set(id, s)
    }
    return s
  }

  #set(s: Slot, node: MerkleNode): void {
    s.node = node
    s.dirty = true
  }

  /** Applies one item's change under `s`; returns whether `s` changed. */
  #apply(itemKey: Uint8Array, khash: Hash, s: Slot, vhash: Hash | undefined): boolean {
    const depth = s.key.length - 2
    const node = s.node
    switch (node.t) {
      case 'empty':
        if (vhash === undefined) return false
        this.#set(s, { t: 'leaf', key: itemKey, hash: vhash })
        return true
      case 'intermediate': {
        const b = khash[depth] as number
        const sub = this.#slot(childKey(s.key, b))
        if (!this.#apply(itemKey, khash, sub, vhash)) return false
        const children = node.children
        const i = children.findIndex(([c]) => c === b)
        if (sub.node.t === 'empty') {
          if (i >= 0) children.splice(i, 1)
        } else if (i >= 0) {
          ;(children[i] as [number, Hash])[1] = PENDING
        } else {
          const at = children.findIndex(([c]) => c > b)
          children.splice(at < 0 ? children.length : at, 0, [b, PENDING])
        }
        if (children.length === 0) {
          this.#log.warn(`Merkle tree of ${this.#tableName}: an intermediate node lost every child`)
          this.#set(s, EMPTY)
        } else if (children.length === 1) {
          // One child left: if it is a leaf, it moves up here (one item under this prefix).
          const only = this.#slot(childKey(s.key, (children[0] as [number, Hash])[0]))
          if (only.node.t === 'leaf') {
            this.#set(s, only.node)
            this.#set(only, EMPTY)
          } else {
            this.#set(s, node)
          }
        } else {
          this.#set(s, node)
        }
        return true
      }
      case 'leaf': {
        if (bytesEqual(node.key, itemKey)) {
          if (vhash === undefined) this.#set(s, EMPTY)
          else if (!bytesEqual(vhash, node.hash)) this.#set(s, { t: 'leaf', key: itemKey, hash: vhash })
          else return false
          return true
        }
        if (vhash === undefined) return false
        // Two items under this prefix now: both go one level down.
        const otherHash = blake2sum(node.key)
        const ob = otherHash[depth] as number
        this.#apply(node.key, otherHash, this.#slot(childKey(s.key, ob)), node.hash)
        const b = khash[depth] as number
        this.#apply(itemKey, khash, this.#slot(childKey(s.key, b)), vhash)
        const children: Array<[number, Hash]> =
          ob === b
            ? [[b, PENDING]]
            : ob < b
              ? [
                  [ob, PENDING],
                  [b, PENDING],
                ]
              : [
                  [b, PENDING],
                  [ob, PENDING],
                ]
        this.#set(s, { t: 'intermediate', children })
        return true
      }
    }
  }

  /** Writes every changed node once, deepest first, each parent getting its child's new hash. */
  flush(): void {
    const dirty = [...this.#slots.values()].filter((s) => s.dirty).sort((a, b) => b.key.length - a.key.length)
    for (const s of dirty) {
      let hash: Hash
      if (s.node.t === 'empty') {
        this.#tx.remove(this.#tree, s.key)
        hash = EMPTY_NODE_HASH
      } else {
        if (s.node.t === 'intermediate' && s.node.children.some(([, h]) => h === PENDING)) {
          throw new GarageError('GARAGE_ERR_INTERNAL', `Merkle tree of ${this.#tableName}: a changed child was not written`)
        }
        const raw = encodeMerkleNode(s.node)
        this.#tx.insert(this.#tree, s.key, raw)
        hash = blake2sum(raw)
      }
      if (s.key.length <= 2) continue
      const parent = this.#slots.get(slotId(s.key.subarray(0, s.key.length - 1)))
      if (parent?.node.t !== 'intermediate') continue
      const b = s.key[s.key.length - 1] as number
      const entry = parent.node.children.find(([c]) => c === b)
      if (entry !== undefined) entry[1] = hash
    }
    this.#slots.clear()
  }
}
