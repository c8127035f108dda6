import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { encodeMsgpack } from '../../../lib/util/codec.ts'
import {
  type CrdtMap,
  type Deletable,
  type Lww,
  type LwwMap,
  type Merge,
  mergeBool,
  mergeCrdtMap,
  mergeDeletable,
  mergeLww,
  mergeLwwMap,
  mergeMax,
  lwwMapGet,
  lwwMapSet,
  updateLww,
} from '../../../lib/util/crdt/crdt.ts'
import { mergeObjects, type ObjectEntry, type ObjectVersion } from '../../../lib/model/s3/object-table.ts'
import { type BucketKeyPerm, mergePerm } from '../../../lib/model/permission.ts'
import { int, pick, rng } from '../../helpers/random.ts'

/** Checks commutativity, associativity and idempotence of `merge` on random triples. */
function checkCrdtLaws<T>(name: string, gen: (r: () => number) => T, merge: Merge<T>, runs = 300): void {
  test(`${name}: merge is commutative, associative and idempotent`, () => {
    const r = rng(0xc0ffee ^ name.length)
    const same = (a: T, b: T, what: string) =>
      assert.deepEqual(Buffer.from(encodeMsgpack(a)), Buffer.from(encodeMsgpack(b)), `${name}: ${what}`)
    for (let i = 0; i < runs; i++) {
      const a = gen(r)
      const b = gen(r)
      const c = gen(r)
      same(merge(a, b), merge(b, a), 'a+b = b+a')
      same(merge(merge(a, b), c), merge(a, merge(b, c)), '(a+b)+c = a+(b+c)')
      same(merge(a, a), a, 'a+a = a')
      same(merge(merge(a, b), b), merge(a, b), '(a+b)+b = a+b')
    }
  })
}

const genLww = (r: () => number): Lww<string> => ({ ts: int(r, 4), v: pick(r, ['x', 'y', 'z']) })
const genLwwMap = (r: () => number): LwwMap<number> => {
  const m: LwwMap<number> = []
  for (const k of ['a', 'b', 'c', 'd']) if (r() < 0.5) m.push([k, int(r, 4), int(r, 3)])
  return m
}
const genPerm = (r: () => number): BucketKeyPerm => ({ ts: int(r, 3), read: r() < 0.5, write: r() < 0.5, owner: r() < 0.5 })
const genCrdtMap = (r: () => number): CrdtMap<BucketKeyPerm> => {
  const m: CrdtMap<BucketKeyPerm> = []
  for (const k of ['k1', 'k2', 'k3']) if (r() < 0.6) m.push([k, genPerm(r)])
  return m
}
const genDeletable = (r: () => number): Deletable<number> =>
  r() < 0.2 ? { deleted: true } : { deleted: false, value: int(r, 10) }

const uuids = [1, 2, 3, 4].map((n) => new Uint8Array(32).fill(n))
const genObject = (r: () => number): ObjectEntry => {
  const versions: ObjectVersion[] = []
  for (let i = 0; i < 4; i++) {
    if (r() < 0.5) continue
    const state = pick(r, [
      { t: 'uploading' as const, multipart: false, headers: [] },
      // A conditional write's claim (conditional.ts).
      { t: 'uploading' as const, multipart: false, headers: [], claim: true as const },
      { t: 'aborted' as const },
      { t: 'complete' as const, data: { t: 'delete' as const } },
      // Tagged versions: the tags are a register of their own (PutObjectTagging, tagging.ts).
      {
        t: 'complete' as const,
        data: { t: 'delete' as const },
        tagging: { ts: 5, tags: [['a', '1']] as Array<[string, string]> },
      },
      { t: 'complete' as const, data: { t: 'delete' as const }, tagging: { ts: 7, tags: [] as Array<[string, string]> } },
      {
        t: 'complete' as const,
        data: { t: 'delete' as const },
        tagging: { ts: 7, tags: [['b', '2']] as Array<[string, string]> },
      },
    ])
    versions.push({ uuid: uuids[i] as Uint8Array, ts: 10 + i * 10, state })
  }
  // A random object is the merge of its versions, as any stored object is.
  return mergeObjects(
    { bucketId: uuids[0] as Uint8Array, key: 'k', versions: [] },
    {
      bucketId: uuids[0] as Uint8Array,
      key: 'k',
      versions,
    },
  )
}

/**
 * Versioned rows: versions 1 and 3 are kept (their flag is fixed per version, as every write of a
 * version carries it), states include purges, and versions carry lock registers.
 */
const genVersionedObject = (r: () => number): ObjectEntry => {
  const versions: ObjectVersion[] = []
  for (let i = 0; i < 5; i++) {
    if (r() < 0.4) continue
    const state = pick(r, [
      { t: 'uploading' as const, multipart: false, headers: [] },
      { t: 'aborted' as const },
      { t: 'complete' as const, data: { t: 'delete' as const } },
      {
        t: 'complete' as const,
        data: { t: 'inline' as const, meta: { size: 1, etag: 'e', headers: [] }, bytes: new Uint8Array([i]) },
      },
      { t: 'purged' as const },
    ])
    const v: ObjectVersion = { uuid: new Uint8Array(32).fill(i + 1), ts: 10 + i * 10, state }
    if (i % 2 === 1) v.keep = true
    // Fields in the order the code writes them (retention, then legal hold).
    const lock: NonNullable<ObjectVersion['lock']> = {}
    if (r() < 0.3) lock.retention = { ts: int(r, 3), v: r() < 0.3 ? null : { mode: 'GOVERNANCE', until: int(r, 3) } }
    if (r() < 0.3) lock.legalHold = { ts: int(r, 3), v: r() < 0.5 }
    if (lock.retention !== undefined || lock.legalHold !== undefined) v.lock = lock
    versions.push(v)
  }
  return mergeObjects(
    { bucketId: uuids[0] as Uint8Array, key: 'k', versions: [] },
    { bucketId: uuids[0] as Uint8Array, key: 'k', versions },
  )
}

describe('CRDT laws', () => {
  checkCrdtLaws('Object (versioned: kept, purged, locked versions)', genVersionedObject, mergeObjects, 1000)
  checkCrdtLaws('Lww', genLww, (a, b) => mergeLww(a, b))
  checkCrdtLaws('LwwMap', genLwwMap, (a, b) => mergeLwwMap(a, b))
  checkCrdtLaws('CrdtMap<BucketKeyPerm>', genCrdtMap, (a, b) => mergeCrdtMap(a, b, mergePerm))
  checkCrdtLaws('Deletable<max>', genDeletable, (a, b) => mergeDeletable(a, b, mergeMax))
  checkCrdtLaws('Bool', (r) => r() < 0.5, mergeBool)
  checkCrdtLaws('Object', genObject, mergeObjects)
})

describe('CRDT behaviour', () => {
  test('Lww: the newest timestamp wins, whatever the order', () => {
    const old = { ts: 1, v: 'old' }
    const neu = { ts: 2, v: 'new' }
    assert.equal(mergeLww(old, neu).v, 'new')
    assert.equal(mergeLww(neu, old).v, 'new')
  })
  test('updateLww moves past a timestamp from the future', () => {
    const future = { ts: Date.now() + 60_000, v: 'a' }
    const u = updateLww(future, 'b')
    assert.equal(u.ts, future.ts + 1)
    assert.equal(mergeLww(future, u).v, 'b')
  })
  test('LwwMap keeps keys sorted and per-key newest values', () => {
    let m: LwwMap<string> = []
    m = lwwMapSet(m, 'b', '1', 5)
    m = lwwMapSet(m, 'a', '2', 5)
    m = lwwMapSet(m, 'b', '3', 1) // older clock: still moves past ts 5
    assert.deepEqual(
      m.map(([k]) => k),
      ['a', 'b'],
    )
    assert.equal(lwwMapGet(m, 'b'), '3')
  })
  test('Deletable: deletion wins over any update', () => {
    assert.deepEqual(mergeDeletable({ deleted: false, value: 3 }, { deleted: true }, mergeMax), { deleted: true })
  })
  test('Object merge drops versions older than the last complete one', () => {
    const o = mergeObjects(
      {
        bucketId: uuids[0] as Uint8Array,
        key: 'k',
        versions: [{ uuid: uuids[0] as Uint8Array, ts: 1, state: { t: 'uploading', multipart: false, headers: [] } }],
      },
      {
        bucketId: uuids[0] as Uint8Array,
        key: 'k',
        versions: [{ uuid: uuids[1] as Uint8Array, ts: 2, state: { t: 'complete', data: { t: 'delete' } } }],
      },
    )
    assert.equal(o.versions.length, 1)
    assert.equal(o.versions[0]?.ts, 2)
  })
  test('Object merge keeps kept versions under a newer one, and drops a purged one only as a tombstone', () => {
    const at = (i: number, state: ObjectVersion['state'], keep: boolean): ObjectEntry => ({
      bucketId: uuids[0] as Uint8Array,
      key: 'k',
      versions: [{ uuid: uuids[i] as Uint8Array, ts: i, state, ...(keep ? { keep: true as const } : {}) }],
    })
    const data = {
      t: 'complete' as const,
      data: { t: 'inline' as const, meta: { size: 0, etag: '', headers: [] }, bytes: new Uint8Array() },
    }
    // Null version 0, kept version 1, null version 2: version 0 is replaced, version 1 stays.
    let o = mergeObjects(mergeObjects(at(0, data, false), at(1, data, true)), at(2, data, false))
    assert.deepEqual(
      o.versions.map((v) => v.ts),
      [1, 2],
    )
    // Purging version 1 keeps its tombstone: a stale copy of it cannot come back.
    o = mergeObjects(o, at(1, { t: 'purged' }, true))
    o = mergeObjects(o, at(1, data, true))
    assert.equal(o.versions[0]?.state.t, 'purged')
  })
  test('Object merge: an aborted state wins over uploading for the same version', () => {
    const v = (state: ObjectVersion['state']): ObjectEntry => ({
      bucketId: uuids[0] as Uint8Array,
      key: 'k',
      versions: [{ uuid: uuids[2] as Uint8Array, ts: 7, state }],
    })
    const merged = mergeObjects(v({ t: 'uploading', multipart: true, headers: [] }), v({ t: 'aborted' }))
    assert.equal(merged.versions[0]?.state.t, 'aborted')
  })
})
