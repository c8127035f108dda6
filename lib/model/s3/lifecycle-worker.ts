/**
 * Bucket lifecycle rules and the worker that applies them (port of
 * garage_model::s3::lifecycle_worker and the lifecycle part of garage_model::bucket_table).
 *
 * Once per day (at midnight UTC, or local midnight with `use_local_tz`), the worker walks the
 * object rows stored on this node, bucket by bucket. In a bucket with rules, an object whose
 * current version has expired gets a delete marker, and multipart uploads started too long ago
 * are aborted (version aborted, upload row deleted), both through the ordinary table inserts.
 * Buckets without rules are skipped in one jump. The date of the last completed pass is kept in
 * a local tree, so a restart does not redo a day's pass.
 */
import { type Db, prefixEnd, type Tree } from '../../db/db.ts'
import type { Table } from '../../table/table.ts'
import { sleep, type Worker, type WorkerState } from '../../util/background/worker.ts'
import { bytesEqual, fromUtf8, genUuid, type Uuid, utf8 } from '../../util/data.ts'
import type { Logger } from '../../util/logger.ts'
import type { BucketEntry } from '../bucket-table.ts'
import { deletedMpu, type MpuEntry } from './mpu-table.ts'
import type { ObjectEntry, ObjectVersion } from './object-table.ts'

/** Which objects a rule applies to; every condition given must hold. */
export interface LifecycleFilter {
  prefix: string | null
  /** Objects strictly larger than this many bytes. */
  sizeGt: number | null
  /** Objects strictly smaller than this many bytes. */
  sizeLt: number | null
  /** Objects carrying every one of these tags (absent in rules stored before tag filters). */
  tags?: Array<[key: string, value: string]>
}

/** Expire objects a number of days after their creation, or from a date (`YYYY-MM-DD`) on. */
export type LifecycleExpiration = { t: 'days'; days: number } | { t: 'date'; date: string }

/**
 * A `<Transition>` to another storage class. Stored and returned as AWS does, never applied:
 * every object stays in the one storage class this store has (STANDARD).
 */
export interface LifecycleTransition {
  when: LifecycleExpiration
  storageClass: string
}

/** A `<NoncurrentVersionTransition>`: stored and returned, never applied (see {@link LifecycleTransition}). */
export interface LifecycleNoncurrentTransition {
  noncurrentDays: number
  newerNoncurrentVersions: number | null
  storageClass: string
}

/** One lifecycle rule, as stored in the bucket's parameters. */
export interface LifecycleRule {
  id: string | null
  enabled: boolean
  filter: LifecycleFilter
  expiration: LifecycleExpiration | null
  abortIncompleteMpuDays: number | null
  /** The prefix was given in the deprecated `<Rule><Prefix>` form (and is rendered back so). */
  legacyPrefix?: boolean
  transitions?: LifecycleTransition[]
  noncurrentTransitions?: LifecycleNoncurrentTransition[]
  /**
   * `<NoncurrentVersionExpiration>`: purge versions noncurrent for `days` days, beyond the
   * `newer` newest noncurrent ones (absent from rules stored before versioning).
   */
  noncurrentExpiration?: { days: number; newer: number | null } | null
  /** `<Expiration><ExpiredObjectDeleteMarker>true`: purge a delete marker left alone. */
  expiredObjectDeleteMarker?: boolean
}

/**
 * Parses a lifecycle date: `YYYY-MM-DD`, or `YYYY-MM-DDT00:00:00Z` (only midnight is allowed, as
 * on AWS and Garage; fractional zero seconds are accepted too). Returns `YYYY-MM-DD`.
 */
export function parseLifecycleDate(s: string): string | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})(?:\.0+)?Z)?$/.exec(s.trim())
  if (m === null) return undefined
  const [, y, mo, d, h, mi, se] = m
  if (h !== undefined && (h !== '00' || mi !== '00' || se !== '00')) return undefined
  const t = Date.UTC(Number(y), Number(mo) - 1, Number(d))
  const back = new Date(t)
  if (back.getUTCFullYear() !== Number(y) || back.getUTCMonth() !== Number(mo) - 1 || back.getUTCDate() !== Number(d)) {
    return undefined
  }
  return `${y}-${mo}-${d}`
}

/** Reads rules stored by the S3 API; anything that does not have the expected shape is dropped. */
export function storedLifecycleRules(stored: readonly unknown[] | null): LifecycleRule[] {
  if (stored === null) return []
  return stored.filter((r): r is LifecycleRule => {
    const x = r as Partial<LifecycleRule> | null
    return typeof x === 'object' && x !== null && typeof x.enabled === 'boolean' && typeof x.filter === 'object'
  })
}

/** Calendar days, counted as whole days since 1970-01-01 in UTC or in the local time zone. */
export interface DayClock {
  /** The day number of instant `ms`. */
  day(ms: number): number
  /** The instant at which day `day` starts. */
  midnight(day: number): number
}

const DAY_MSEC = 86_400_000

export function dayClock(useLocalTz: boolean): DayClock {
  if (!useLocalTz) {
    return { day: (ms) => Math.floor(ms / DAY_MSEC), midnight: (day) => day * DAY_MSEC }
  }
  return {
    day: (ms) => {
      const d = new Date(ms)
      return Math.round(Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()) / DAY_MSEC)
    },
    midnight: (day) => {
      const d = new Date(day * DAY_MSEC)
      return new Date(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()).getTime()
    },
  }
}

/** `YYYY-MM-DD` of a day number. */
export const dayString = (day: number): string => new Date(day * DAY_MSEC).toISOString().slice(0, 10)

const dayOfDateString = (date: string): number => Math.round(Date.parse(`${date}T00:00:00Z`) / DAY_MSEC)

/** Rows examined per step of the worker. */
const ROWS_PER_STEP = 100
/** Longest sleep between two looks at the clock while waiting for the next day. */
const POLL_MSEC = 1000

const LAST_COMPLETED = utf8('last_completed')

export interface LifecycleWorkerDeps {
  db: Db
  objects: Table<ObjectEntry>
  mpus: Table<MpuEntry>
  buckets: Table<BucketEntry>
  /** Current time in ms (`Date.now` unless a test drives it). */
  clock: () => number
  /**
   * The timestamp of a delete marker over a version stamped `previous` (Garage#nextTimestamp:
   * the cluster's clock). Default `max(Date.now(), previous + 1)`.
   */
  timestamp?: (previous: number) => number
  useLocalTz: boolean
  log: Logger
}

interface Pass {
  day: number
  /** The first store key not yet examined. */
  pos: Uint8Array
  examined: number
  expired: number
  aborted: number
  /** Versions purged by noncurrent expiry, and delete markers left alone. */
  purged: number
  bucket?: { id: Uuid; rules: LifecycleRule[]; versioning: 'Enabled' | 'Suspended' | null }
}

export class LifecycleWorker implements Worker {
  readonly name = 'object lifecycle worker'
  readonly #d: LifecycleWorkerDeps
  readonly #days: DayClock
  readonly #tree: Tree
  #lastCompleted: number | undefined
  #pass: Pass | undefined
  #totals = { expired: 0, aborted: 0, purged: 0 }

  constructor(deps: LifecycleWorkerDeps) {
    this.#d = deps
    this.#days = dayClock(deps.useLocalTz)
    this.#tree = deps.db.openTree('lifecycle_worker')
    const raw = this.#tree.get(LAST_COMPLETED)
    const parsed = raw === undefined ? undefined : parseLifecycleDate(fromUtf8(raw))
    this.#lastCompleted = parsed === undefined ? undefined : dayOfDateString(parsed)
  }

  /** `YYYY-MM-DD` of the last completed pass, or `never`. */
  get lastCompleted(): string {
    return this.#lastCompleted === undefined ? 'never' : dayString(this.#lastCompleted)
  }

  async work(_signal: AbortSignal): Promise<WorkerState> {
    if (this.#pass === undefined) {
      const today = this.#days.day(this.#d.clock())
      if (this.#lastCompleted !== undefined && this.#lastCompleted >= today) return 'idle'
      this.#pass = { day: today, pos: new Uint8Array(0), examined: 0, expired: 0, aborted: 0, purged: 0 }
    }
    const pass = this.#pass
    const store = this.#d.objects.data.store
    const codec = this.#d.objects.schema.codec
    let n = 0
    for (const [key, raw] of store.range({ start: pass.pos, limit: ROWS_PER_STEP })) {
      n++
      pass.examined++
      const object = codec.decode(raw)
      const skipBucket = await this.#processObject(pass, object)
      if (skipBucket) {
        const end = prefixEnd(object.bucketId)
        if (end === undefined) break
        pass.pos = end
        return 'busy'
      }
      pass.pos = successor(key)
    }
    if (n === ROWS_PER_STEP) return 'busy'
    this.#finish(pass)
    return 'idle'
  }

  async waitForWork(signal: AbortSignal): Promise<void> {
    if (this.#pass !== undefined) return
    const now = this.#d.clock()
    const next = this.#days.midnight(this.#days.day(now) + 1)
    await sleep(Math.max(1, Math.min(next - now, POLL_MSEC)), signal)
  }

  info(): Record<string, string | number> {
    const out: Record<string, string | number> = {
      'lifecycle-last-completed': this.lastCompleted,
      objectsExpired: this.#totals.expired,
      uploadsAborted: this.#totals.aborted,
      versionsPurged: this.#totals.purged,
    }
    if (this.#pass !== undefined) {
      out.running = dayString(this.#pass.day)
      out.examined = this.#pass.examined
    }
    return out
  }

  #finish(pass: Pass): void {
    const date = dayString(pass.day)
    this.#d.db.transaction((tx) => tx.insert(this.#tree, LAST_COMPLETED, utf8(date)))
    this.#lastCompleted = pass.day
    this.#pass = undefined
    this.#totals.expired += pass.expired
    this.#totals.aborted += pass.aborted
    this.#totals.purged += pass.purged
    this.#d.log.info(
      `lifecycle pass of ${date} done: ${pass.expired} object(s) expired, ${pass.aborted} upload(s) aborted, ${pass.purged} version(s) purged`,
    )
  }

  /** Applies the rules of the object's bucket; true when the bucket has none (skip it). */
  async #processObject(pass: Pass, object: ObjectEntry): Promise<boolean> {
    let bucket = pass.bucket
    if (bucket === undefined || !bytesEqual(bucket.id, object.bucketId)) {
      const entry = this.#d.buckets.data.read(new Uint8Array(0), object.bucketId)
      const rules = entry === undefined || entry.state.deleted ? [] : storedLifecycleRules(entry.state.value.lifecycle.v)
      const versioning = entry === undefined || entry.state.deleted ? null : (entry.state.value.versioning?.v ?? null)
      bucket = { id: object.bucketId, rules: rules.filter((r) => r.enabled), versioning }
      pass.bucket = bucket
    }
    if (bucket.rules.length === 0) return true

    for (const rule of bucket.rules) {
      if (rule.filter.prefix !== null && !object.key.startsWith(rule.filter.prefix)) continue
      if (rule.expiration !== null) await this.#expire(pass, object, rule, bucket.versioning === 'Enabled')
      if (rule.abortIncompleteMpuDays !== null) await this.#abortUploads(pass, object, rule.abortIncompleteMpuDays)
      const noncurrent = rule.noncurrentExpiration ?? null
      if (noncurrent !== null) await this.#expireNoncurrent(pass, object, rule, noncurrent)
      if (rule.expiredObjectDeleteMarker === true) await this.#purgeLoneMarker(pass, object)
    }
    return false
  }

  /**
   * Purges the versions noncurrent for `days` days (counted from the midnight after a newer
   * version replaced them), keeping the `newer` newest noncurrent ones and any version object
   * lock protects, as AWS does.
   */
  async #expireNoncurrent(
    pass: Pass,
    object: ObjectEntry,
    rule: LifecycleRule,
    n: { days: number; newer: number | null },
  ): Promise<void> {
    const complete = object.versions.filter((v) => v.state.t === 'complete').reverse()
    const now = this.#d.clock()
    const purge: ObjectVersion[] = []
    for (let i = 1; i < complete.length; i++) {
      const v = complete[i] as ObjectVersion
      const since = (complete[i - 1] as ObjectVersion).ts
      if (n.newer !== null && i <= n.newer) continue
      if (pass.day - (this.#days.day(since) + 1) < n.days) continue
      if (!sizeMatches(rule.filter, v)) continue
      if (isLocked(v, now)) continue
      purge.push(purged(v))
    }
    if (purge.length === 0) return
    await this.#d.objects.insert({ bucketId: object.bucketId, key: object.key, versions: purge })
    pass.purged += purge.length
  }

  /** Purges a kept delete marker that is the only version left (AWS's expired object delete marker). */
  async #purgeLoneMarker(pass: Pass, object: ObjectEntry): Promise<void> {
    const complete = object.versions.filter((v) => v.state.t === 'complete')
    const only = complete[0]
    if (complete.length !== 1 || only === undefined || only.keep !== true) return
    if (only.state.t !== 'complete' || only.state.data.t !== 'delete') return
    await this.#d.objects.insert({ bucketId: object.bucketId, key: object.key, versions: [purged(only)] })
    pass.purged++
  }

  async #expire(pass: Pass, object: ObjectEntry, rule: LifecycleRule, versioned: boolean): Promise<void> {
    const current = lastDataVersion(object)
    if (current === undefined || current.state.t !== 'complete' || current.state.data.t === 'delete') return
    const size = current.state.data.meta.size
    if (rule.filter.sizeGt !== null && !(size > rule.filter.sizeGt)) return
    if (rule.filter.sizeLt !== null && !(size < rule.filter.sizeLt)) return
    const has = current.state.tagging?.tags ?? []
    if (!(rule.filter.tags ?? []).every(([k, v]) => has.some(([hk, hv]) => hk === k && hv === v))) return
    const exp = rule.expiration as LifecycleExpiration
    // As on AWS: the age counts from the midnight following the object's creation.
    const expired =
      exp.t === 'days' ? pass.day - (this.#days.day(current.ts) + 1) >= exp.days : pass.day >= dayOfDateString(exp.date)
    if (!expired) return
    const marker: ObjectVersion = {
      uuid: genUuid(),
      ts: this.#d.timestamp?.(current.ts) ?? Math.max(Date.now(), current.ts + 1),
      state: { t: 'complete', data: { t: 'delete' } },
    }
    // In a versioned bucket the marker is a version of its own; the expired data stays noncurrent.
    if (versioned) marker.keep = true
    // A newer version written meanwhile wins over the marker (its timestamp is higher).
    await this.#d.objects.insert({ bucketId: object.bucketId, key: object.key, versions: [marker] })
    pass.expired++
  }

  async #abortUploads(pass: Pass, object: ObjectEntry, days: number): Promise<void> {
    const old = object.versions.filter(
      (v) => v.state.t === 'uploading' && v.state.multipart && pass.day - (this.#days.day(v.ts) + 1) >= days,
    )
    if (old.length === 0) return
    await this.#d.objects.insert({
      bucketId: object.bucketId,
      key: object.key,
      versions: old.map((v) => ({ uuid: v.uuid, ts: v.ts, state: { t: 'aborted' } })),
    })
    // The object table's hook deletes the uploads too; doing it here does not wait for its queue.
    for (const v of old) {
      const mpu = await this.#d.mpus.get(v.uuid, new Uint8Array(0))
      await this.#d.mpus.insert(deletedMpu(v.uuid, mpu?.ts ?? v.ts, object.bucketId, object.key))
    }
    pass.aborted += old.length
  }
}

function lastDataVersion(o: ObjectEntry): ObjectVersion | undefined {
  for (let i = o.versions.length - 1; i >= 0; i--) {
    const v = o.versions[i] as ObjectVersion
    if (v.state.t === 'complete') return v
  }
  return undefined
}

/** The size conditions of a rule's filter, on a version with data (delete markers have no size). */
function sizeMatches(f: LifecycleFilter, v: ObjectVersion): boolean {
  if (f.sizeGt === null && f.sizeLt === null) return true
  if (v.state.t !== 'complete' || v.state.data.t === 'delete') return false
  const size = v.state.data.meta.size
  if (f.sizeGt !== null && !(size > f.sizeGt)) return false
  if (f.sizeLt !== null && !(size < f.sizeLt)) return false
  return true
}

/** Object lock keeps a version from lifecycle deletion, as from any other. */
function isLocked(v: ObjectVersion, now: number): boolean {
  if (v.lock?.legalHold?.v === true) return true
  const r = v.lock?.retention?.v ?? null
  return r !== null && r.until > now
}

/** The purge of a version (a delete by version id). */
function purged(v: ObjectVersion): ObjectVersion {
  const out: ObjectVersion = { uuid: v.uuid, ts: v.ts, state: { t: 'purged' } }
  if (v.keep === true) out.keep = true
  return out
}

function successor(key: Uint8Array): Uint8Array {
  const out = new Uint8Array(key.length + 1)
  out.set(key)
  return out
}
