/**
 * The read policy of the access resolver (lib/model/helper/access.ts): the local copy first, a
 * quorum read only on a local miss in a cluster, unknown names and key ids remembered; and the
 * permission check. The tables are stand-ins that tell a local read from a quorum read.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { BucketAliasEntry } from '../../lib/model/bucket-alias-table.ts'
import { type BucketEntry, newBucketParams } from '../../lib/model/bucket-table.ts'
import { AccessResolver, type AccessTables } from '../../lib/model/helper/access.ts'
import type { ExistingKey } from '../../lib/model/helper/key.ts'
import { type KeyEntry, newKeyParams } from '../../lib/model/key-table.ts'
import { fromUtf8, genUuid, toHex } from '../../lib/util/data.ts'
import { ModelError } from '../../lib/util/errors.ts'

/** A table whose local copy and cluster-wide copy are two maps; counts quorum reads. */
function fakeTable<E>(keyOf: (sortKey: Uint8Array) => string) {
  const local = new Map<string, E>()
  const remote = new Map<string, E>()
  const t = {
    local,
    remote,
    quorumReads: 0,
    // The resolver reads its rows with readShared (decoded once while unchanged): the same answer as read.
    data: { readShared: (_p: Uint8Array, s: Uint8Array) => local.get(keyOf(s)) },
    get: async (_p: Uint8Array, s: Uint8Array) => {
      t.quorumReads++
      return remote.get(keyOf(s)) ?? local.get(keyOf(s))
    },
  }
  return t
}

function setup(cluster: boolean) {
  const bucket = fakeTable<BucketEntry>((s) => toHex(s))
  const alias = fakeTable<BucketAliasEntry>((s) => fromUtf8(s))
  const key = fakeTable<KeyEntry>((s) => fromUtf8(s))
  const tables = { bucket, alias, key } as unknown as AccessTables
  return { bucket, alias, key, access: new AccessResolver(tables, { cluster }) }
}

function makeKey(id: string): ExistingKey {
  return { id, state: { deleted: false, value: newKeyParams('k', 'secret', 1) } } as ExistingKey
}

const live = (id: Uint8Array): BucketEntry => ({ id, state: { deleted: false, value: newBucketParams(1) } })

describe('AccessResolver', () => {
  test('a bucket in the local copy is resolved without a quorum read', async () => {
    const s = setup(true)
    const id = genUuid()
    s.alias.local.set('photos', { name: 'photos', state: { ts: 1, v: id } })
    s.bucket.local.set(toHex(id), live(id))
    const b = await s.access.resolveBucket('photos')
    assert.equal(toHex(b.id), toHex(id))
    assert.equal(s.alias.quorumReads + s.bucket.quorumReads, 0)
  })

  test('in a cluster, a local miss is read at quorum; an unknown name is remembered', async () => {
    const s = setup(true)
    const id = genUuid()
    s.alias.remote.set('fresh', { name: 'fresh', state: { ts: 1, v: id } })
    s.bucket.remote.set(toHex(id), live(id))
    assert.equal(toHex((await s.access.resolveBucket('fresh')).id), toHex(id))
    assert.equal(s.alias.quorumReads, 1)
    assert.equal(s.bucket.quorumReads, 1)

    await assert.rejects(s.access.resolveBucket('missing'), (e) => e instanceof ModelError && e.modelCode === 'NoSuchBucket')
    assert.equal(await s.access.findBucket('missing'), undefined)
    assert.equal(s.alias.quorumReads, 2, 'the second lookup of an unknown name is answered from the negative cache')
    // A row that reaches the local copy is used at once, cache or not.
    const later = genUuid()
    s.alias.local.set('missing', { name: 'missing', state: { ts: 2, v: later } })
    s.bucket.local.set(toHex(later), live(later))
    assert.equal(toHex((await s.access.resolveBucket('missing')).id), toHex(later))
  })

  test('on a lone node the local copy is the only one: a miss reads nothing more', async () => {
    const s = setup(false)
    assert.equal(await s.access.findBucket('nothing'), undefined)
    assert.equal(await s.access.resolveKey('GK000000000000000000000000'), undefined)
    assert.equal(s.alias.quorumReads + s.key.quorumReads, 0)
  })

  test('a name no bucket can have reads no table', async () => {
    const s = setup(true)
    assert.equal(await s.access.findBucket('x'.repeat(300)), undefined)
    assert.equal(await s.access.findBucket('Not_A_Bucket'), undefined)
    assert.equal(s.alias.quorumReads, 0)
  })

  test("a key's local alias wins over a global alias; a deleted bucket is no bucket", async () => {
    const s = setup(true)
    const mine = genUuid()
    const global = genUuid()
    const k = makeKey('GK111111111111111111111111')
    k.state.value.localAliases = [['shared', 1, toHex(mine)]]
    s.alias.local.set('shared', { name: 'shared', state: { ts: 1, v: global } })
    s.bucket.local.set(toHex(mine), live(mine))
    s.bucket.local.set(toHex(global), { id: global, state: { deleted: true } })
    assert.equal(toHex((await s.access.resolveBucket('shared', k)).id), toHex(mine))
    assert.equal(await s.access.findBucket('shared'), undefined)
  })

  test('keys: local first, quorum on a miss, unknown ids remembered', async () => {
    const s = setup(true)
    const a = makeKey('GKaaaaaaaaaaaaaaaaaaaaaaaa')
    const b = makeKey('GKbbbbbbbbbbbbbbbbbbbbbbbb')
    s.key.local.set(a.id, a)
    s.key.remote.set(b.id, b)
    assert.equal((await s.access.resolveKey(a.id))?.id, a.id)
    assert.equal(s.key.quorumReads, 0)
    assert.equal((await s.access.resolveKey(b.id))?.id, b.id)
    assert.equal(s.key.quorumReads, 1)
    assert.equal(await s.access.resolveKey('GKcccccccccccccccccccccccc'), undefined)
    assert.equal(await s.access.resolveKey('GKcccccccccccccccccccccccc'), undefined)
    assert.equal(s.key.quorumReads, 2, 'an unknown id is read at quorum once')
    assert.equal(s.access.localKey(b.id), undefined, 'localKey reads the local copy only')
  })

  test('checkBucketPermission throws Forbidden unless the key holds the permission', () => {
    const s = setup(false)
    const id = genUuid()
    const k = makeKey('GK222222222222222222222222')
    k.state.value.authorizedBuckets = [[toHex(id), { ts: 1, read: true, write: false, owner: false }]]
    s.access.checkBucketPermission(k, id, 'read')
    for (const needed of ['write', 'owner'] as const) {
      assert.throws(
        () => s.access.checkBucketPermission(k, id, needed, 'no'),
        (e) => e instanceof ModelError && e.modelCode === 'Forbidden' && e.message === 'no',
      )
    }
    assert.equal(s.access.hasBucketPermission(k, genUuid(), 'read'), false)
  })
})
