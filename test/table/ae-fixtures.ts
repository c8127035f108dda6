/**
 * Shared setup of the anti-entropy tests (merkle, sync, gc): lmdb stores in temp dirs, a
 * last-writer-wins register table with tombstones, fixed layout histories fed to a real
 * LayoutHelper, and real NetApp nodes connected in a full mesh on 127.0.0.1.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import type { Db } from '../../lib/db/db.ts'
import { openLmdb } from '../../lib/db/lmdb.ts'
import type { NetApp } from '../../lib/net/netapp.ts'
import { applyStagedChanges, type LayoutHistory, newLayoutHistory, stageRole } from '../../lib/rpc/layout/history.ts'
import { LayoutHelper, type LayoutSource } from '../../lib/rpc/layout/helper.ts'
import { hashPartitionKey, type TableSchema } from '../../lib/table/schema.ts'
import { defineCodec } from '../../lib/util/codec.ts'
import { utf8 } from '../../lib/util/data.ts'
import { silentLogger } from '../../lib/util/logger.ts'
import { newSecret, startNode } from '../net/net-fixtures.ts'

export async function openDb(t: TestContext): Promise<Db> {
  const dir = await mkdtemp(join(tmpdir(), 'garage-ae-'))
  const db = await openLmdb(dir, { fsync: false })
  t.after(async () => {
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })
  return db
}

/** A register: the highest `v` wins; at equal `v`, deleted wins. `deleted` rows are tombstones. */
export interface Reg {
  pk: string
  sk: string
  v: number
  deleted: boolean
}

export const regCodec = defineCodec<Reg>('Treg1')

/** Deletions seen by the schema's hook (`next` undefined), as `pk/sk`. */
export interface RegHooks {
  deletedLocally: string[]
}

export function regSchema(name: string, hooks?: RegHooks): TableSchema<Reg> {
  return {
    tableName: name,
    codec: regCodec,
    partitionKey: (e) => utf8(e.pk),
    sortKey: (e) => utf8(e.sk),
    partitionHash: hashPartitionKey,
    merge: (a, b) => (a.v !== b.v ? (a.v > b.v ? a : b) : { ...a, deleted: a.deleted || b.deleted }),
    isTombstone: (e) => e.deleted,
    updated(_tx, previous, next) {
      if (next === undefined && previous !== undefined) hooks?.deletedLocally.push(`${previous.pk}/${previous.sk}`)
    },
  }
}

export const reg = (pk: string, sk: string, v: number, deleted = false): Reg => ({ pk, sk, v, deleted })

/** A layout history whose current version gives each node its own zone and equal capacity. */
export function layoutOf(nodes: readonly string[], rf: number, base?: LayoutHistory): LayoutHistory {
  let h = base ?? newLayoutHistory(rf)
  const cur = h.versions[h.versions.length - 1]
  const current = new Set(cur === undefined ? [] : cur.nodeIdVec)
  for (const id of current) if (!nodes.includes(id)) h = stageRole(h, id, null, Date.now())
  nodes.forEach((id, i) => {
    h = stageRole(h, id, { zone: `z${i}`, capacity: 1_000_000_000, tags: [] }, Date.now())
  })
  const next = (cur?.version ?? 0) + 1
  return applyStagedChanges(h, next, Date.now()).history
}

/** A layout source whose history the test sets; records the versions marked synced. */
export { TestLayoutSource as FixedLayout } from '../helpers/layout-source.ts'

export function helperOf(source: LayoutSource, self: string): LayoutHelper {
  return new LayoutHelper({
    source,
    self,
    consistencyMode: 'consistent',
    replicationFactor: source.history().versions[0]?.replicationFactor ?? 1,
    log: silentLogger,
  })
}

/** `n` NetApp nodes sharing a secret, each connected to every other. */
export async function startMesh(t: TestContext, n: number): Promise<NetApp[]> {
  const secret = newSecret()
  const nodes = await Promise.all(Array.from({ length: n }, () => startNode(t, secret)))
  for (const a of nodes) for (const b of nodes) if (a !== b) await a.net.connect(b.key.id, b.addr)
  return nodes.map((x) => x.net)
}

/** Every stored entry of a tree, as `hex key → hex value`, for comparisons. */
export function dump(tree: { range(): Iterable<[Uint8Array, Uint8Array]> }): Map<string, string> {
  const out = new Map<string, string>()
  for (const [k, v] of tree.range()) out.set(Buffer.from(k).toString('hex'), Buffer.from(v).toString('hex'))
  return out
}
