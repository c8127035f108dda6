import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { parseCausalContext, serializeCausalContext, type VectorClock } from '../../../lib/model/k2v/causality.ts'
import {
  causalContextOf,
  countK2vItem,
  isK2vTombstone,
  type K2vItem,
  k2vItemCodec,
  k2vValues,
  mergeK2vItems,
  newK2vItem,
  updateK2vItem,
} from '../../../lib/model/k2v/item-table.ts'
import { counterIsZero, filteredCounterValues, mergeCounterEntries } from '../../../lib/model/index-counter.ts'
import { int, rng } from '../../helpers/random.ts'

const r = rng(20261205)
/** A random integer in [lo, hi]. */
const randomInt = (lo: number, hi: number): number => lo + int(r, hi - lo + 1)

const A = '00000000000000aa'
const B = '00000000000000bb'
const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s))
const str = (v: Uint8Array | null): string | null => (v === null ? null : Buffer.from(v).toString())

describe('causality tokens', () => {
  test('encode as Garage does (checksum, u64 pairs, URL-safe base64 without padding)', () => {
    assert.equal(serializeCausalContext(new Map([['0000000000000004', 42]])), 'AAAAAAAAAC4AAAAAAAAABAAAAAAAAAAq')
    // Garage's own test vector (causality.rs), nodes in ascending order.
    const vc: VectorClock = new Map([
      ['efc0c1c47f9de433', 2],
      ['0000000000000004', 42],
    ])
    assert.equal(serializeCausalContext(vc), '78DBxH-d5B8AAAAAAAAABAAAAAAAAAAq78DBxH-d5DMAAAAAAAAAAg')
    assert.deepEqual(parseCausalContext(serializeCausalContext(vc)), vc)
    assert.deepEqual(parseCausalContext('AAAAAAAAAAA'), new Map())
  })
  test('refuses what is not a token', () => {
    for (const bad of [
      '',
      'AAAA',
      'AAAAAAAAAC5AAAAAAAAABAAAAAAAAAAq',
      'AAAAAAAAAC4AAAAAAAAABAAAAAAAAAA',
      'AAAAAAAAAC4+AAAAAAAABAAAAAAAAAAq',
      '!!',
    ]) {
      assert.equal(parseCausalContext(bad), undefined, bad)
    }
  })
})

describe('DVVS items', () => {
  const bucket = new Uint8Array(32)
  const base = newK2vItem(bucket, 'p', 's')

  test('writes without a context are siblings; a write with the context replaces them', () => {
    const x1 = updateK2vItem(base, A, undefined, bytes('x'), 100).item
    const x2 = updateK2vItem(x1, B, undefined, bytes('y'), 100).item
    assert.deepEqual(k2vValues(x2).map(str), ['x', 'y'])
    const ct = causalContextOf(x2)
    const x3 = updateK2vItem(x2, A, ct, bytes('z'), 100).item
    assert.deepEqual(k2vValues(x3).map(str), ['z'])
    // A delete with the token leaves a tombstone.
    const x4 = updateK2vItem(x3, B, causalContextOf(x3), null, 100).item
    assert.equal(isK2vTombstone(x4), true)
    assert.deepEqual(k2vValues(x4), [null])
    assert.deepEqual(countK2vItem(x4), [
      ['entries', 0],
      ['conflicts', 0],
      ['values', 0],
      ['bytes', 0],
    ])
  })

  test('a write with an old context keeps what it did not see', () => {
    const x1 = updateK2vItem(base, A, undefined, bytes('v1'), 100).item
    const old = causalContextOf(x1)
    const x2 = updateK2vItem(x1, A, old, bytes('v2'), 100).item
    const x3 = updateK2vItem(x2, A, old, bytes('v3'), 100).item
    assert.deepEqual(k2vValues(x3).map(str), ['v2', 'v3'])
  })

  test('times grow past the node clock and the writer last time', () => {
    const { item, time } = updateK2vItem(base, A, undefined, bytes('a'), 1000)
    assert.equal(time, 1001)
    assert.equal(updateK2vItem(item, A, undefined, bytes('b'), 10).time, 1002)
  })

  test('merge is commutative, associative and idempotent on random histories', () => {
    const enc = (i: K2vItem): string => Buffer.from(k2vItemCodec.encode(i)).toString('hex')
    for (let round = 0; round < 200; round++) {
      // Three replicas that each saw a prefix of the same writes, plus local writes.
      let shared = base
      const replicas: K2vItem[] = []
      for (let k = 0; k < 3; k++) {
        let x = shared
        for (let i = 0; i < randomInt(0, 3); i++) {
          const w = [A, B][randomInt(0, 1)] as string
          const ctx = randomInt(0, 1) === 0 ? undefined : causalContextOf(x)
          x = updateK2vItem(x, w, ctx, randomInt(0, 3) === 0 ? null : bytes(`v${round}.${k}.${i}`), 100 + i).item
        }
        replicas.push(x)
        shared = x
      }
      const [a, b, c] = replicas as [K2vItem, K2vItem, K2vItem]
      assert.equal(enc(mergeK2vItems(a, b)), enc(mergeK2vItems(b, a)))
      assert.equal(enc(mergeK2vItems(mergeK2vItems(a, b), c)), enc(mergeK2vItems(a, mergeK2vItems(b, c))))
      assert.equal(enc(mergeK2vItems(a, a)), enc(a))
    }
  })
})

describe('index counter entries', () => {
  test('merge keeps each node latest figure; readers take the max over current nodes', () => {
    const e1 = { pk: new Uint8Array(32), sk: 'p', values: { entries: { n1: [5, 3] as [number, number] } } }
    const e2 = {
      pk: new Uint8Array(32),
      sk: 'p',
      values: { entries: { n1: [4, 9] as [number, number], n2: [1, 2] as [number, number] } },
    }
    const m = mergeCounterEntries(e1, e2)
    assert.deepEqual(m.values.entries, { n1: [5, 3], n2: [1, 2] })
    assert.deepEqual(mergeCounterEntries(e2, e1), m)
    assert.deepEqual(filteredCounterValues(m, ['n1', 'n2']), { entries: 3 })
    assert.deepEqual(filteredCounterValues(m, ['n2']), { entries: 2 })
    assert.equal(counterIsZero(m, ['n3']), true)
  })
})
