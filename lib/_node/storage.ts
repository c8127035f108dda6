/** Start stage 1: this node's identity and its metadata database (metadata_dir). */
import type { Db } from '../db/db.ts'
import { openLmdb } from '../db/lmdb.ts'
import { loadOrCreateNodeKey, type NodeKey } from '../net/node-key.ts'
import type { ResolvedConfig } from '../util/config.ts'
import { stage, type Teardown } from './teardown.ts'

export interface Storage {
  /** Ed25519 identity (metadata_dir/node_key), created on first start. */
  nodeKey: NodeKey
  /** The lmdb environment holding every table. */
  db: Db
  /** Closes the database (flushes it). */
  teardown: Teardown
}

/** Loads (or creates) the node key and opens lmdb. */
export function openStorage(c: ResolvedConfig): Promise<Storage> {
  return stage(async (defer) => {
    const nodeKey = await loadOrCreateNodeKey(c.metadataDir)
    const db: Db = await openLmdb(c.metadataDir, { fsync: c.metadataFsync, mapSize: c.lmdbMapSize })
    defer(() => db.close())
    return { nodeKey, db }
  })
}
