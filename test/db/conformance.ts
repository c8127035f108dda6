/** The behaviour every metadata engine must have (run against each engine). */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type Db, MAX_KEY_BYTES, prefixEnd } from '../../lib/db/db.ts'
import { isGarageError } from '../../lib/util/errors.ts'

const k = (...b: number[]) => new Uint8Array(b)
const keys = (it: Iterable<[Uint8Array, Uint8Array]>) => [...it].map(([key]) => [...key])

export function dbConformance(name: string, open: () => Promise<{ db: Db; cleanup: () => Promise<void> }>): void {
  describe(`Db conformance: ${name}`, () => {
    test('keys up to MAX_KEY_BYTES work; a longer one is a typed error and changes nothing', async (t) => {
      const { db, cleanup } = await open()
      t.after(cleanup)
      const a = db.openTree('a')
      const at = new Uint8Array(MAX_KEY_BYTES).fill(7)
      db.transaction((tx) => tx.insert(a, at, k(1)))
      assert.deepEqual(a.get(at), k(1))
      assert.equal(keys(a.range({ start: at })).length, 1)
      const tooLong = (err: unknown) => isGarageError(err) && err.code === 'GARAGE_ERR_KEY_TOO_LONG'
      for (const n of [MAX_KEY_BYTES + 1, 2000, 9000]) {
        const long = new Uint8Array(n).fill(7)
        assert.throws(() => db.transaction((tx) => tx.insert(a, long, k(2))), tooLong, `insert ${n}`)
        assert.throws(() => a.get(long), tooLong, `get ${n}`)
        assert.throws(() => a.range({ start: long }), tooLong, `range start ${n}`)
        assert.throws(() => a.range({ start: k(0), end: long }), tooLong, `range end ${n}`)
        assert.throws(() => db.transaction((tx) => tx.remove(a, long)), tooLong, `remove ${n}`)
      }
      assert.equal(a.count(), 1, 'nothing was written')
    })

    test('a committed transaction is visible, in every tree it wrote', async (t) => {
      const { db, cleanup } = await open()
      t.after(cleanup)
      const a = db.openTree('a')
      const b = db.openTree('b')
      db.transaction((tx) => {
        tx.insert(a, k(1), k(10))
        tx.insert(b, k(1), k(20))
      })
      assert.deepEqual(a.get(k(1)), k(10))
      assert.deepEqual(b.get(k(1)), k(20))
      assert.equal(a.get(k(2)), undefined)
    })

    test('an aborted transaction leaves no trace and rethrows', async (t) => {
      const { db, cleanup } = await open()
      t.after(cleanup)
      const a = db.openTree('a')
      db.transaction((tx) => tx.insert(a, k(1), k(1)))
      assert.throws(
        () =>
          db.transaction((tx) => {
            tx.insert(a, k(2), k(2))
            tx.remove(a, k(1))
            assert.deepEqual(tx.get(a, k(2)), k(2), 'a transaction reads its own writes')
            throw new Error('abort')
          }),
        /abort/,
      )
      assert.equal(a.get(k(2)), undefined)
      assert.deepEqual(a.get(k(1)), k(1))
    })

    test('range: bounds, reverse, limit and byte order', async (t) => {
      const { db, cleanup } = await open()
      t.after(cleanup)
      const a = db.openTree('a')
      db.transaction((tx) => {
        for (const key of [k(1), k(1, 0), k(1, 255), k(2), k(255), k(0)]) tx.insert(a, key, k(0))
      })
      assert.deepEqual(keys(a.range()), [[0], [1], [1, 0], [1, 255], [2], [255]])
      assert.deepEqual(keys(a.range({ start: k(1), end: k(2) })), [[1], [1, 0], [1, 255]])
      assert.deepEqual(keys(a.range({ start: k(1), end: prefixEnd(k(1)) })), [[1], [1, 0], [1, 255]])
      assert.deepEqual(keys(a.range({ start: k(2), reverse: true })), [[2], [1, 255], [1, 0], [1], [0]])
      assert.deepEqual(keys(a.range({ limit: 2 })), [[0], [1]])
      assert.equal(a.count(), 6)
    })

    test('trees are independent namespaces', async (t) => {
      const { db, cleanup } = await open()
      t.after(cleanup)
      const a = db.openTree('a')
      const b = db.openTree('b')
      db.transaction((tx) => tx.insert(a, k(1), k(1)))
      assert.equal(b.get(k(1)), undefined)
      assert.equal(b.count(), 0)
    })
  })
}
