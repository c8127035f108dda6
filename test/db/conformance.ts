/** The behaviour every metadata engine must have (run against each engine). */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type Db, MAX_KEY_BYTES, prefixEnd } from '../../lib/db/db.ts'
import { isGarageError } from '../../lib/util/errors.ts'
import { bytes, int, pick, rng } from '../helpers/random.ts'

const k = (...b: number[]) => new Uint8Array(b)
const keys = (it: Iterable<[Uint8Array, Uint8Array]>) => [...it].map(([key]) => [...key])
const byteOrder = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b)
const hasCode = (code: string) => (err: unknown) => isGarageError(err) && err.code === code

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

    test('values: the values of range, with the same bounds, order and limit', async (t) => {
      const { db, cleanup } = await open()
      t.after(cleanup)
      const a = db.openTree('a')
      // Values of 1 byte (kept inside the JS heap) and 300 bytes (outside it).
      const value = (key: Uint8Array): Uint8Array => (key[0] === 2 ? new Uint8Array(300).fill(7) : Uint8Array.from([...key, 9]))
      db.transaction((tx) => {
        for (const key of [k(1), k(1, 0), k(1, 255), k(2), k(255), k(0)]) tx.insert(a, key, value(key))
      })
      for (const o of [{}, { start: k(1), end: k(2) }, { start: k(2), reverse: true }, { limit: 2 }, { start: k(1, 1) }]) {
        const want = [...a.range(o)].map(([, v]) => [...v])
        assert.ok(want.length > 0, JSON.stringify(o))
        assert.deepEqual(
          [...a.values(o)].map((v) => [...v]),
          want,
          JSON.stringify(o),
        )
      }
      const long = new Uint8Array(MAX_KEY_BYTES + 1)
      assert.throws(() => a.values({ start: long }), /range start/)
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

    test('byte order: 0xff sorts last, a prefix before its extensions, never as text or signed bytes', async (t) => {
      const { db, cleanup } = await open()
      t.after(cleanup)
      const a = db.openTree('a')
      const all = [
        k(0xff),
        k(0xff, 0xff),
        k(0xff, 0),
        k(0xfe, 0xff, 0xff),
        k(0),
        k(0, 0xff),
        k(0x7f),
        k(0x80),
        k(0xff, 0xff, 0xff),
      ]
      db.transaction((tx) => {
        for (const key of all) tx.insert(a, key, key)
      })
      const want = [[0], [0, 0xff], [0x7f], [0x80], [0xfe, 0xff, 0xff], [0xff], [0xff, 0], [0xff, 0xff], [0xff, 0xff, 0xff]]
      assert.deepEqual(keys(a.range()), want)
      assert.deepEqual(keys(a.range({ reverse: true })), [...want].reverse())
      assert.deepEqual(keys(a.range({ start: k(0xff) })), want.slice(5))
      assert.equal(prefixEnd(k(0xff, 0xff)), undefined, 'no key ends the 0xff 0xff prefix')
      assert.deepEqual(keys(a.range({ start: k(0xff, 0xff), end: prefixEnd(k(0xff, 0xff)) })), [
        [0xff, 0xff],
        [0xff, 0xff, 0xff],
      ])
      assert.deepEqual(keys(a.range({ start: k(0xff), end: prefixEnd(k(0xff)) })), want.slice(5))
      assert.deepEqual(keys(a.range({ start: k(0x7f), end: prefixEnd(k(0x7f)) })), [[0x7f]])
      for (const key of all) assert.deepEqual(a.get(key), key, `get ${[...key]}`)
    })

    test('reverse ranges: start is the inclusive top, end the exclusive bottom, limit counts from the top', async (t) => {
      const { db, cleanup } = await open()
      t.after(cleanup)
      const a = db.openTree('a')
      db.transaction((tx) => {
        for (const i of [1, 3, 5, 7]) tx.insert(a, k(i), k(i))
      })
      assert.deepEqual(keys(a.range({ reverse: true })), [[7], [5], [3], [1]])
      assert.deepEqual(keys(a.range({ start: k(5), reverse: true })), [[5], [3], [1]], 'start present')
      assert.deepEqual(keys(a.range({ start: k(6), reverse: true })), [[5], [3], [1]], 'start absent')
      assert.deepEqual(keys(a.range({ start: k(6), end: k(1), reverse: true })), [[5], [3]], 'end excluded')
      assert.deepEqual(keys(a.range({ start: k(6), end: k(2), reverse: true })), [[5], [3]], 'end absent')
      assert.deepEqual(keys(a.range({ end: k(3), reverse: true })), [[7], [5]], 'end only')
      assert.deepEqual(keys(a.range({ start: k(9), reverse: true, limit: 2 })), [[7], [5]], 'start past the end')
      assert.deepEqual(keys(a.range({ start: k(0), reverse: true })), [], 'start before the first key')
      assert.deepEqual(keys(a.range({ start: k(5, 0), reverse: true, limit: 1 })), [[5]], 'start just after a key')
      assert.deepEqual(keys(a.range({ start: k(1), end: k(5), reverse: true })), [], 'start below end')
      assert.deepEqual(keys(a.range({ start: k(5), end: k(1) })), [], 'forward with start above end')
      assert.deepEqual(keys(a.range({ limit: 0 })), [])
      assert.deepEqual(keys(a.range({ reverse: true, limit: 0 })), [])
      assert.deepEqual(keys(a.range({ start: k(4), limit: 1 })), [[5]])
    })

    test('empty trees: nothing to get, count or iterate, in either direction, before and after writes', async (t) => {
      const { db, cleanup } = await open()
      t.after(cleanup)
      const a = db.openTree('a')
      const check = (when: string) => {
        assert.equal(a.count(), 0, when)
        assert.equal(a.get(k(1)), undefined, when)
        assert.deepEqual(keys(a.range()), [], when)
        assert.deepEqual(keys(a.range({ reverse: true })), [], when)
        assert.deepEqual(keys(a.range({ start: k(1), end: k(2) })), [], when)
        assert.deepEqual(keys(a.range({ start: k(0xff), reverse: true })), [], when)
      }
      check('never written')
      db.transaction((tx) => tx.remove(a, k(1))) // removing an absent key is fine
      check('after removing an absent key')
      db.transaction((tx) => {
        tx.insert(a, k(1), k(1))
        tx.insert(a, k(2), k(2))
      })
      db.transaction((tx) => {
        tx.remove(a, k(1))
        tx.remove(a, k(2))
      })
      check('emptied')
      assert.equal(db.openTree('a'), a, 'opening a tree twice gives the same tree')
    })

    test('values: empty and large ones round-trip, overwrites replace, buffers are copied in and out', async (t) => {
      const { db, cleanup } = await open()
      t.after(cleanup)
      const a = db.openTree('a')
      const big = bytes(rng(7), 4 * 1024 * 1024)
      db.transaction((tx) => {
        tx.insert(a, k(1), big)
        tx.insert(a, k(2), k())
      })
      assert.deepEqual(a.get(k(1)), big)
      assert.deepEqual(a.get(k(2)), k())
      assert.equal(a.get(k(2))?.length, 0, 'an empty value is not an absent one')
      db.transaction((tx) => tx.insert(a, k(1), k(9)))
      assert.deepEqual(a.get(k(1)), k(9))
      assert.equal(a.count(), 2, 'an overwrite adds no entry')

      const key = k(3)
      const value = k(1, 2, 3)
      db.transaction((tx) => tx.insert(a, key, value))
      key[0] = 4
      value[0] = 99
      assert.deepEqual(a.get(k(3)), k(1, 2, 3), 'changing the inserted buffers changes nothing')
      assert.equal(a.get(k(4)), undefined)
      const got = a.get(k(3)) as Uint8Array
      got[0] = 99
      const [entry] = [...a.range({ start: k(3), limit: 1 })]
      ;(entry as [Uint8Array, Uint8Array])[1][1] = 99
      ;(entry as [Uint8Array, Uint8Array])[0][0] = 9
      assert.deepEqual(a.get(k(3)), k(1, 2, 3), 'changing what was read changes nothing')
    })

    test('an empty key is refused', async (t) => {
      const { db, cleanup } = await open()
      t.after(cleanup)
      const a = db.openTree('a')
      assert.throws(() => db.transaction((tx) => tx.insert(a, k(), k(1))))
      assert.throws(() => a.get(k()))
      assert.throws(() => db.transaction((tx) => tx.remove(a, k())))
      assert.equal(a.count(), 0)
      db.transaction((tx) => tx.insert(a, k(0), k(1)))
      assert.deepEqual(keys(a.range({ start: k() })), [[0]], 'an empty range start is the lowest key')
    })

    test('inside a transaction every read sees its writes; the value it returns is returned', async (t) => {
      const { db, cleanup } = await open()
      t.after(cleanup)
      const a = db.openTree('a')
      db.transaction((tx) => tx.insert(a, k(1), k(1)))
      const out = db.transaction((tx) => {
        tx.insert(a, k(2), k(2))
        tx.remove(a, k(1))
        assert.equal(tx.get(a, k(1)), undefined)
        assert.deepEqual(tx.get(a, k(2)), k(2))
        assert.deepEqual(a.get(k(2)), k(2), 'through the tree too')
        assert.deepEqual(keys(tx.range(a)), [[2]])
        assert.deepEqual(keys(a.range()), [[2]])
        assert.equal(a.count(), 1)
        return 'done'
      })
      assert.equal(out, 'done')
      assert.deepEqual(keys(a.range()), [[2]])
    })

    test('an aborted transaction restores overwritten and removed entries in every tree, and rethrows the same error', async (t) => {
      const { db, cleanup } = await open()
      t.after(cleanup)
      const a = db.openTree('a')
      const b = db.openTree('b')
      db.transaction((tx) => {
        for (const i of [1, 2, 3]) {
          tx.insert(a, k(i), k(i))
          tx.insert(b, k(i), k(i))
        }
      })
      const boom = new Error('boom')
      assert.throws(
        () =>
          db.transaction((tx) => {
            tx.insert(a, k(1), k(10)) // overwrite
            tx.insert(a, k(1), k(11)) // twice
            tx.remove(a, k(2))
            tx.insert(a, k(4), k(4))
            tx.remove(a, k(4)) // inserted then removed
            tx.remove(b, k(3))
            tx.insert(b, k(3), k(30)) // removed then inserted
            tx.insert(b, k(0xff), k(1))
            tx.remove(b, k(9)) // absent
            throw boom
          }),
        (err) => err === boom,
      )
      for (const tree of [a, b]) {
        assert.deepEqual(
          [...tree.range()].map(([key, value]) => [[...key], [...value]]),
          [
            [[1], [1]],
            [[2], [2]],
            [[3], [3]],
          ],
          tree.name,
        )
        assert.equal(tree.count(), 3)
      }
    })

    test('a nested transaction that throws undoes only its own writes; the outer one can still commit', async (t) => {
      const { db, cleanup } = await open()
      t.after(cleanup)
      const a = db.openTree('a')
      db.transaction((tx) => {
        tx.insert(a, k(1), k(1))
        assert.throws(
          () =>
            db.transaction((inner) => {
              inner.insert(a, k(2), k(2))
              inner.remove(a, k(1))
              throw new Error('inner')
            }),
          /inner/,
        )
        assert.deepEqual(tx.get(a, k(1)), k(1))
        assert.equal(tx.get(a, k(2)), undefined)
        db.transaction((inner) => inner.insert(a, k(3), k(3)))
      })
      assert.deepEqual(keys(a.range()), [[1], [3]])
      assert.throws(() =>
        db.transaction((tx) => {
          tx.insert(a, k(4), k(4))
          db.transaction((inner) => inner.insert(a, k(5), k(5)))
          throw new Error('outer')
        }),
      )
      assert.deepEqual(keys(a.range()), [[1], [3]], 'the outer abort undoes the committed inner one')
    })

    test('a range iterated inside a transaction follows its writes, as a cursor does', async (t) => {
      const { db, cleanup } = await open()
      t.after(cleanup)
      const a = db.openTree('a')
      db.transaction((tx) => {
        for (const i of [1, 3, 5, 7]) tx.insert(a, k(i), k(i))
      })
      const forward: number[][] = []
      const backward: number[][] = []
      assert.throws(() =>
        db.transaction((tx) => {
          for (const [key] of tx.range(a)) {
            forward.push([...key])
            if (key[0] === 3) {
              tx.insert(a, k(4), k(4)) // ahead: seen
              tx.remove(a, k(5)) // ahead: not seen
              tx.insert(a, k(9), k(9))
              tx.insert(a, k(0), k(0)) // behind: not seen
              tx.remove(a, k(3)) // the current key: the cursor still moves on from it
            }
          }
          for (const [key] of tx.range(a, { reverse: true })) {
            backward.push([...key])
            if (key[0] === 7) {
              tx.remove(a, k(7))
              tx.insert(a, k(6), k(6))
              tx.remove(a, k(4))
            }
          }
          throw new Error('abort')
        }),
      )
      assert.deepEqual(forward, [[1], [3], [4], [7], [9]])
      assert.deepEqual(backward, [[9], [7], [6], [1], [0]])
      assert.deepEqual(keys(a.range()), [[1], [3], [5], [7]], 'all of it undone')
    })

    test('a range iterated outside a transaction reads the tree as it was at its first step', async (t) => {
      const { db, cleanup } = await open()
      t.after(cleanup)
      const a = db.openTree('a')
      db.transaction((tx) => {
        for (const i of [1, 3, 5, 7]) tx.insert(a, k(i), k(i))
      })
      const lazy = a.range()
      db.transaction((tx) => tx.insert(a, k(2), k(2)))
      const it = lazy[Symbol.iterator]()
      assert.deepEqual([...(it.next().value?.[0] ?? [])], [1], 'created before the write, started after it')
      db.transaction((tx) => {
        tx.insert(a, k(4), k(4))
        tx.remove(a, k(5))
        tx.insert(a, k(1), k(42))
      })
      const rest: number[][] = []
      for (let r = it.next(); r.done !== true; r = it.next()) rest.push([...r.value[0]])
      assert.deepEqual(rest, [[2], [3], [5], [7]], 'writes after its first step are not seen')
      assert.deepEqual(keys(a.range()), [[1], [2], [3], [4], [7]])
      assert.deepEqual(a.get(k(1)), k(42))
    })

    test('random operations agree with a sorted model', async (t) => {
      const { db, cleanup } = await open()
      t.after(cleanup)
      const trees = [db.openTree('x'), db.openTree('y')]
      const models = trees.map(() => new Map<string, Uint8Array>())
      const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
      const r = rng(42)
      // Few distinct bytes so that keys collide and share prefixes.
      const randomKey = () => Uint8Array.from({ length: 1 + int(r, 4) }, () => pick(r, [0, 1, 0x7f, 0x80, 0xfe, 0xff]))
      const sorted = (m: Map<string, Uint8Array>) =>
        [...m.keys()].map((h) => Uint8Array.from(Buffer.from(h, 'hex'))).sort(byteOrder)
      for (let round = 0; round < 200; round++) {
        const ops = Array.from({ length: 1 + int(r, 8) }, () => ({
          tree: int(r, 2),
          key: randomKey(),
          value: r() < 0.3 ? undefined : bytes(r, int(r, 5)),
        }))
        const abort = r() < 0.25
        try {
          db.transaction((tx) => {
            for (const op of ops) {
              const tree = trees[op.tree] as (typeof trees)[number]
              if (op.value === undefined) tx.remove(tree, op.key)
              else tx.insert(tree, op.key, op.value)
            }
            if (abort) throw new Error('abort')
          })
        } catch (err) {
          if (!abort) throw err
        }
        if (!abort) {
          for (const op of ops) {
            const m = models[op.tree] as Map<string, Uint8Array>
            if (op.value === undefined) m.delete(hex(op.key))
            else m.set(hex(op.key), op.value)
          }
        }
        for (const [i, tree] of trees.entries()) {
          const m = models[i] as Map<string, Uint8Array>
          const all = sorted(m)
          assert.equal(tree.count(), all.length)
          const start = r() < 0.3 ? undefined : randomKey()
          const end = r() < 0.3 ? undefined : randomKey()
          const reverse = r() < 0.5
          const limit = r() < 0.3 ? int(r, 4) : undefined
          let want = all.filter((key) =>
            reverse
              ? (start === undefined || byteOrder(key, start) <= 0) && (end === undefined || byteOrder(key, end) > 0)
              : (start === undefined || byteOrder(key, start) >= 0) && (end === undefined || byteOrder(key, end) < 0),
          )
          if (reverse) want.reverse()
          if (limit !== undefined) want = want.slice(0, limit)
          const got = [...tree.range({ start, end, reverse, limit })]
          assert.deepEqual(
            got.map(([key]) => [...key]),
            want.map((key) => [...key]),
            `round ${round} tree ${i} ${JSON.stringify({ start, end, reverse, limit })}`,
          )
          for (const [key, value] of got) assert.deepEqual(value, m.get(hex(key)))
          const probe = randomKey()
          assert.deepEqual(tree.get(probe), m.get(hex(probe)))
        }
      }
    })

    test('after close, a transaction is a GARAGE_ERR_CLOSED error; closing twice is harmless', async (t) => {
      const { db, cleanup } = await open()
      t.after(cleanup)
      db.openTree('a')
      await db.flush()
      await db.close()
      await db.close()
      assert.throws(() => db.transaction(() => 1), hasCode('GARAGE_ERR_CLOSED'))
    })
  })
}
