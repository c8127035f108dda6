/**
 * Uploads in progress on this node, in a local tree: a node that crashes mid-upload finds them
 * at its next start and aborts them, so their blocks are released (Garage does this with a drop
 * guard, which a killed process never runs).
 */
import type { Db, Transaction, Tree } from '../../db/db.ts'
import type { Table } from '../../table/table.ts'
import { defineCodec } from '../../util/codec.ts'
import { bytesEqual, type Uuid, utf8 } from '../../util/data.ts'
import { type MpuEntry, type MpuPartKey, mpuPartSortKey } from './mpu-table.ts'
import type { ObjectEntry } from './object-table.ts'
import { deletedVersion, type VersionEntry } from './version-table.ts'

interface InProgress {
  bucketId: Uuid
  key: string
  /**
   * The timestamp of the version's `uploading` row in the object table, when one was written
   * before the data (large PUT, copy, conditional claims). Absent for a small PUT, whose version
   * row is written before the key's row is read (put.ts): its object row is only ever `complete`.
   */
  ts?: number
  /** False for a conditional write's claim, which has no version row. Absent: true. */
  versionRow?: false
  /**
   * A one-round PUT's version (put.ts saveOneBlockOneRound): its `complete` row went to every
   * node with its block, so it may be complete on one node only; see {@link UploadGuard.resolveOneRound}.
   */
  oneRound?: true
  /**
   * An UploadPart's part (its version is the record's key): its part row, once finished, keeps it.
   * Without `ts` (a part of one block, written before its upload is read: multipart.ts), every row
   * of the part number is looked at.
   */
  part?: PartRecord
}

/** The part an UploadPart writes: its upload, number and (once known) its row's timestamp. */
type PartRecord = Omit<MpuPartKey, 'ts'> & { ts?: number; uploadId: Uuid }

/** What {@link UploadGuard.begin} records besides the version, bucket and key. */
export interface UploadGuardOptions {
  /** The timestamp of the `uploading` object row the write announced itself with, if any. */
  ts?: number
  /** False for a write that has no version row (a conditional write's claim). */
  versionRow?: boolean
  /** For an UploadPart: the part's row (its timestamp, if known before the data is written). */
  part?: PartRecord
  /** A one-round PUT's version (see {@link UploadGuard.resolveOneRound}). */
  oneRound?: boolean
}

const codec = defineCodec<InProgress>('GTup1')

export class UploadGuard {
  readonly #db: Db
  readonly #tree: Tree
  constructor(db: Db) {
    this.#db = db
    this.#tree = db.openTree('s3_uploads_in_progress')
  }

  /** Records an upload of version `versionId` of `key` before anything of it is written. */
  begin(versionId: Uuid, bucketId: Uuid, key: string, o: UploadGuardOptions = {}): void {
    this.#db.transaction((tx) => this.beginInTx(tx, versionId, bucketId, key, o))
  }

  /**
   * {@link begin} in a transaction of the caller's, which commits before anything of the upload
   * is written elsewhere (TableBatch's `before`: with the first rows when they are this node's
   * alone, saving a commit).
   */
  beginInTx(tx: Transaction, versionId: Uuid, bucketId: Uuid, key: string, o: UploadGuardOptions = {}): void {
    const rec: InProgress = { bucketId, key }
    if (o.ts !== undefined) rec.ts = o.ts
    if (o.versionRow === false) rec.versionRow = false
    if (o.oneRound === true) rec.oneRound = true
    if (o.part !== undefined) {
      rec.part = { uploadId: o.part.uploadId, partNumber: o.part.partNumber }
      if (o.part.ts !== undefined) rec.part.ts = o.part.ts
    }
    tx.insert(this.#tree, versionId, codec.encode(rec))
  }

  end(versionId: Uuid): void {
    this.#db.transaction((tx) => this.endInTx(tx, versionId))
  }

  /** {@link end} in a transaction of the caller's (with the commit that completes the upload). */
  endInTx(tx: Transaction, versionId: Uuid): void {
    tx.remove(this.#tree, versionId)
  }

  /** How many uploads are recorded as in progress (after a restart: the previous run's leftovers). */
  leftovers(): number {
    return this.#tree.count()
  }

  /**
   * For stores written by earlier versions, which recorded one-round writes (`oneRound`): now
   * each node merges such a write's rows in one transaction after its block, and nothing is
   * recorded. Settles, at the next start, a one-round PUT's version whose writer crashed between its two
   * transactions: its `complete` row went to each node with the block and is merged there after
   * it, so it may be complete on any one replica, whatever a quorum says. Where this node's copy,
   * or any replica's, has the version complete, the write took effect (anti-entropy brings the
   * row, and resync the block, to the others) and the record ends; where none has it, its version
   * row is deleted (its reference and block follow) and the record ends. (A peer still holding a
   * request of the crashed process between its block and its row, and merging the row after this
   * read, would then list a version without data: a peer stopped that long, across a restart of
   * the writer, is the window left; in the running process a failed write is completed instead,
   * put.ts `settleOneRound`.)
   * @throws QuorumError when some replica does not answer (the record stays, for the next try).
   */
  async resolveOneRound(
    versionId: Uuid,
    bucketId: Uuid,
    key: string,
    objects: Table<ObjectEntry>,
    versions: Table<VersionEntry>,
  ): Promise<void> {
    const complete = (row: ObjectEntry | undefined): boolean =>
      row?.versions.some((x) => bytesEqual(x.uuid, versionId) && x.state.t === 'complete') === true
    if (!complete(objects.data.read(bucketId, utf8(key)))) {
      const row = await objects.get(bucketId, utf8(key), { everyReplica: true })
      if (!complete(row)) await versions.insert(deletedVersion(versionId, { t: 'object', bucketId, key }))
    }
    this.end(versionId)
  }

  /**
   * Aborts every upload left over by a previous run: its `uploading` row (if it wrote one) is
   * marked aborted, and its version row is deleted, which releases its blocks, unless the version
   * completed (the crash came after the commit). Returns how many there were.
   */
  async abortLeftovers(objects: Table<ObjectEntry>, versions: Table<VersionEntry>, mpus: Table<MpuEntry>): Promise<number> {
    const left = [...this.#tree.range()].map(([k, v]) => ({ versionId: k, ...codec.decode(v) }))
    // One record that cannot be settled now (a replica down) does not hold back the others: the
    // first error is thrown once every record has been tried, and the caller tries again later.
    let failure: unknown
    for (const u of left) {
      try {
        await this.#abortOne(u, objects, versions, mpus)
      } catch (err) {
        failure ??= err
      }
    }
    if (failure !== undefined) throw failure
    return left.length
  }

  async #abortOne(
    u: InProgress & { versionId: Uuid },
    objects: Table<ObjectEntry>,
    versions: Table<VersionEntry>,
    mpus: Table<MpuEntry>,
  ): Promise<void> {
    if (u.oneRound === true && u.part === undefined) {
      await this.resolveOneRound(u.versionId, u.bucketId, u.key, objects, versions)
      return
    }
    if (u.part !== undefined) {
      // A part: kept if its row was finished (ETag recorded) before the crash, else deleted
      // (its listing, if written, stays without ETag: Complete never picks it). A one-round
      // part's finished row went with its block, so it may be on one replica only: every
      // replica is read.
      const { uploadId, partNumber, ts } = u.part
      const rows =
        ts !== undefined
          ? [await mpus.get(uploadId, mpuPartSortKey({ partNumber, ts }), { everyReplica: u.oneRound === true })]
          : // The number's rows (one per upload of it: a handful) come first from its first key on.
            (await mpus.getRange(uploadId, { start: mpuPartSortKey({ partNumber, ts: 0 }), limit: 1000 })).filter(
              (row) => row.partRow?.partNumber === partNumber,
            )
      const finished = rows.some(
        (row) => row?.deleted === false && row.parts.some((p) => bytesEqual(p.version, u.versionId) && p.etag !== null),
      )
      if (!finished) {
        // A one-round part's finished row may still be merged late somewhere: its row is
        // tombstoned first (a deletion wins over finished), so Complete never lists a part
        // whose version is gone.
        const row = rows[0]
        if (u.oneRound === true && ts !== undefined && row !== undefined) {
          await mpus.insert({ ...row, deleted: true, parts: [] })
        }
        await versions.insert(deletedVersion(u.versionId, { t: 'mpu', uploadId: u.part.uploadId }))
      }
      this.end(u.versionId)
      return
    }
    if (u.ts !== undefined) {
      await objects.insert({
        bucketId: u.bucketId,
        key: u.key,
        versions: [{ uuid: u.versionId, ts: u.ts, state: { t: 'aborted' } }],
      })
    }
    if (u.versionRow !== false) {
      // The object hook deletes the version of an `uploading` row it sees aborted, but not one
      // the row never listed (a small PUT's, or one whose row was dropped meanwhile): delete it
      // here, unless the version is complete at quorum (merged with the abort just written,
      // complete wins: the crash came after the commit).
      const row = await objects.get(u.bucketId, utf8(u.key))
      const v = row?.versions.find((x) => bytesEqual(x.uuid, u.versionId))
      if (v?.state.t !== 'complete') {
        await versions.insert(deletedVersion(u.versionId, { t: 'object', bucketId: u.bucketId, key: u.key }))
      }
    }
    this.end(u.versionId)
  }
}
