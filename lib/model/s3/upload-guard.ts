/**
 * Uploads in progress on this node, in a local tree: a node that crashes mid-upload finds them
 * at its next start and aborts them, so their blocks are released (Garage does this with a drop
 * guard, which a killed process never runs).
 */
import type { Db, Tree } from '../../db/db.ts'
import type { Table } from '../../table/table.ts'
import { defineCodec } from '../../util/codec.ts'
import type { Uuid } from '../../util/data.ts'
import type { ObjectEntry } from './object-table.ts'

interface InProgress {
  bucketId: Uuid
  key: string
  ts: number
}

const codec = defineCodec<InProgress>('GTup1')

export class UploadGuard {
  readonly #db: Db
  readonly #tree: Tree
  constructor(db: Db) {
    this.#db = db
    this.#tree = db.openTree('s3_uploads_in_progress')
  }

  begin(versionId: Uuid, bucketId: Uuid, key: string, ts: number): void {
    this.#db.transaction((tx) => tx.insert(this.#tree, versionId, codec.encode({ bucketId, key, ts })))
  }

  end(versionId: Uuid): void {
    this.#db.transaction((tx) => tx.remove(this.#tree, versionId))
  }

  /** Marks every upload left over by a previous run as aborted. Returns how many there were. */
  async abortLeftovers(objects: Table<ObjectEntry>): Promise<number> {
    const left = [...this.#tree.range()].map(([k, v]) => ({ versionId: k, ...codec.decode(v) }))
    for (const u of left) {
      await objects.insert({
        bucketId: u.bucketId,
        key: u.key,
        versions: [{ uuid: u.versionId, ts: u.ts, state: { t: 'aborted' } }],
      })
      this.end(u.versionId)
    }
    return left.length
  }
}
