/**
 * Convergence checks that know which nodes hold what: with more nodes than the replication
 * factor (the 5-node layout, RF 3), a table entry or a block lives on the nodes of its partition
 * only, so "every node stores the same" becomes "the holders of each partition store the same".
 * With as many storage nodes as RF (the 3-node layout) this is the plain all-equal comparison.
 *
 * Full-copy tables (buckets, aliases, keys, admin tokens) are on every node with a role; sharded
 * tables (objects, versions, block references, multipart uploads) on the nodes of the partition
 * of their tree key's first 32 bytes (the partition hash, lib/table/data.ts `treeKey`). Holders
 * come from the current layout version as node 0 (or the first node given) persisted it.
 */
import {
  blockFilesOf,
  type ReplicatedCluster,
  readCurrentLayout,
  readTableContents,
  storageNodesOfBlock,
  TABLE_NAMES,
} from '../helpers/cluster.ts'
import { nodesOfPartition, partitionOf } from '../../lib/rpc/layout/version.ts'

/** Tables stored whole on every node with a role (lib/table/replication.ts FullCopyReplication). */
const FULL_COPY: ReadonlySet<string> = new Set(['bucket_v2', 'bucket_alias', 'key', 'admin_token'])

/**
 * How the stored tables of `storage` (node indexes) differ, partition by partition: for every
 * entry, its holders among `storage` must all have it with the same bytes. Empty when converged.
 */
export async function diffReplicaTables(c: ReplicatedCluster, storage: number[]): Promise<string> {
  const layout = await readCurrentLayout(c.node(storage[0] as number))
  const tables = await Promise.all(storage.map((i) => readTableContents(c.node(i))))
  const indexOfId = new Map(storage.map((i, k) => [c.node(i).id, k]))
  const lines: string[] = []
  for (const name of TABLE_NAMES) {
    const per = tables.map((t) => t.get(name) ?? new Map<string, string>())
    const allKeys = new Set(per.flatMap((m) => [...m.keys()]))
    let missing = 0
    let differ = 0
    const where = new Map<number, number>()
    for (const key of allKeys) {
      const holders = FULL_COPY.has(name)
        ? per.map((_, k) => k)
        : nodesOfPartition(layout, partitionOf(Buffer.from(key.slice(0, 4), 'hex'))).flatMap((id) => {
            const k = indexOfId.get(id)
            return k === undefined ? [] : [k]
          })
      const values = holders.map((k) => per[k]?.get(key))
      const present = values.filter((v): v is string => v !== undefined)
      if (present.length === 0) continue // only on non-holders (left over from an older layout)
      for (const [n, v] of values.entries()) {
        if (v === undefined) {
          missing++
          const k = holders[n] as number
          where.set(k, (where.get(k) ?? 0) + 1)
        }
      }
      if (new Set(present).size > 1) differ++
    }
    if (missing + differ > 0) {
      const on = [...where].map(([k, m]) => `node ${storage[k]}: ${m}`).join(', ')
      lines.push(`${name}: ${missing} missing on a holder (${on}), ${differ} differ between holders`)
    }
  }
  return lines.join('; ')
}

/**
 * Live blocks (hex hashes) missing on their storage nodes among `storage`: count per node index
 * (same order as `storage`) and the total of expected copies.
 */
export async function missingBlocks(
  c: ReplicatedCluster,
  storage: number[],
  live: ReadonlySet<string>,
): Promise<{ missing: number[]; expected: number[] }> {
  const layout = await readCurrentLayout(c.node(storage[0] as number))
  const sets = await Promise.all(storage.map(async (i) => (await blockFilesOf(c.node(i))).blocks))
  const missing = storage.map(() => 0)
  const expected = storage.map(() => 0)
  for (const h of live) {
    const holders = new Set(storageNodesOfBlock(layout, h))
    for (const [k, i] of storage.entries()) {
      if (!holders.has(c.node(i).id)) continue
      expected[k] = (expected[k] ?? 0) + 1
      if (!sets[k]?.has(h)) missing[k] = (missing[k] ?? 0) + 1
    }
  }
  return { missing, expected }
}
