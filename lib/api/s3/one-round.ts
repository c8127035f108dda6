/**
 * Writes of a new object version in one round trip (docs/design/round-trips.md, "One-round PUT
 * and DELETE"). A new version must sort after every version of its key written before the
 * request started: Garage reads the key's row at quorum first and takes a timestamp above all of
 * its versions (two rounds). Here the timestamp comes from this node's own copy of the row and
 * the clock, the row is written at once, and each replica answers, with the write, the copy it
 * held before. The write quorum meets the quorum of any earlier acknowledged write, so a version
 * at or above the chosen timestamp is seen in those answers: then the write is made again, as a
 * new version above it (a second round, only after a clock jump between nodes or a write of the
 * same key from another node in the same millisecond). The first version is then older than the
 * second, so the object row's merge drops it, as any overwritten version.
 *
 * Only for writes that need nothing else from the read (put.ts handlePutObject, versioning.ts
 * deleteInOneRound say which).
 */
import type { Garage } from '../../model/garage.ts'
import type { ObjectEntry, ObjectVersion } from '../../model/s3/object-table.ts'
import type { NodeId } from '../../table/replication.ts'
import { bytesEqual, genUuid, type Uuid, utf8 } from '../../util/data.ts'
import { ApiError } from '../common/errors.ts'
import { batchItem, plannedSettled } from '../../table/batch.ts'

/** The timestamp of a version written now: above every version of this node's copy of the row. */
export function localTimestamp(garage: Garage, bucketId: Uuid, key: string): number {
  const local = garage.objectTable.data.read(bucketId, utf8(key))
  let max: number | undefined
  for (const v of local?.versions ?? []) if (max === undefined || v.ts > max) max = v.ts
  return garage.nextTimestamp(max)
}

/**
 * What the replicas' answers say of a write of version `uuid` at `ts`: the rows they held
 * before it, merged (undefined when none had one), and the newest timestamp of another version
 * when it is at or above `ts` (the write must then be made again above it).
 */
export function previousRows(
  garage: Garage,
  answers: ReadonlyMap<NodeId, Uint8Array[]>,
  uuid: Uuid,
  ts: number,
  counts: (v: ObjectVersion) => boolean = () => true,
): { before: ObjectEntry | undefined; conflict: number | undefined } {
  const schema = garage.objectTable.schema
  let before: ObjectEntry | undefined
  for (const copies of answers.values()) {
    const raw = copies[0]
    if (raw === undefined || raw.length === 0) continue
    const e = schema.codec.decode(raw)
    before = before === undefined ? e : schema.merge(before, e)
  }
  let conflict: number | undefined
  for (const v of before?.versions ?? []) {
    if (v.ts >= ts && !bytesEqual(v.uuid, uuid) && counts(v) && (conflict === undefined || v.ts > conflict)) conflict = v.ts
  }
  return { before, conflict }
}

/** One attempt's requests (see {@link writeInOneRound}). */
export interface OneRoundSent {
  /** The previous copies of the object row, by answering node. */
  answers: Map<NodeId, Uint8Array[]>
  /** Resolves once every node's request has ended. */
  settled: Promise<void>
}

/**
 * Writes a new version of `key` (`send` writes version `uuid` at `ts`, with whatever else goes
 * with it, answering the replicas' previous rows), and once more above any newer version the
 * first answers show. Answers undefined when the first `send` could not be made in one round
 * (nothing was sent: the caller takes the two-round path). The second write is not checked: its
 * timestamp is above every version of the first answers, which hold every write acknowledged
 * before this one started (the guarantee of Garage's read before a write), and a check would
 * let two writers of one key through two nodes in the same millisecond chase each other.
 * `superseded` is called for the first write once the second succeeded. `counts`: the versions
 * a new one must be above (default: all, as Garage's timestamps).
 * @throws the error of a failed write; ApiError ServiceUnavailable when the second write could
 * not be sent in one round (a layout change in between). A failed second write leaves the
 * first as written.
 */
export async function writeInOneRound(
  garage: Garage,
  bucketId: Uuid,
  key: string,
  firstUuid: Uuid,
  send: (uuid: Uuid, ts: number, attempt: 1 | 2) => Promise<OneRoundSent | undefined>,
  superseded: (uuid: Uuid, ts: number, settled: Promise<void>) => void,
  counts?: (v: ObjectVersion) => boolean,
): Promise<{ uuid: Uuid; ts: number; before: ObjectEntry | undefined } | undefined> {
  const ts = localTimestamp(garage, bucketId, key)
  const sent = await send(firstUuid, ts, 1)
  if (sent === undefined) return undefined
  const seen = previousRows(garage, sent.answers, firstUuid, ts, counts)
  if (seen.conflict === undefined) return { uuid: firstUuid, ts, before: seen.before }
  // Rare (a clock ahead elsewhere, a write this node's copy missed, or the same key written
  // through two nodes in the same millisecond), and worth seeing when it is not.
  garage.log.info(`one-round write of ${key}: a version at ${seen.conflict} ≥ ${ts} answered; writing again above it`)
  const uuid = genUuid()
  const again = garage.nextTimestamp(seen.conflict)
  if ((await send(uuid, again, 2)) === undefined) {
    throw new ApiError('ServiceUnavailable', 'Service unavailable, please retry (the cluster layout changed during the write)')
  }
  superseded(firstUuid, ts, sent.settled)
  return { uuid, ts: again, before: seen.before }
}

/**
 * Sends an object row (a version with nothing else: inline data, a delete marker) as one
 * `table/_batch` per node, answering the replicas' previous copies. Undefined, with nothing
 * sent, when it cannot go in one request per node, or with `onlyWhereStored` when this node does
 * not store the row (its copy then gives no timestamp worth having).
 */
export function sendObjectRow(garage: Garage, entry: ObjectEntry, onlyWhereStored = false): Promise<OneRoundSent | undefined> {
  return garage.tableBatch.withPlan([batchItem(garage.objectTable, [entry])], garage.objectTable, async (planned) => {
    if (onlyWhereStored && !planned.byNode.has(garage.tableBatch.self)) return undefined
    return { answers: await garage.tableBatch.sendPlanned(planned), settled: plannedSettled(planned) }
  })
}
