import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TableData } from '../../lib/table/data.ts'
import { utf8 } from '../../lib/util/data.ts'
import { openDb, type Reg, regCodec, regSchema } from './ae-fixtures.ts'

test('readShared hands out one decoded entry while the stored bytes stay the same, and a fresh one after any change', async (t) => {
  const data = new TableData(regSchema('shared'), await openDb(t))
  const pk = utf8('bucket')
  const sk = utf8('row')
  assert.equal(data.readShared(pk, sk), undefined)

  data.update({ pk: 'bucket', sk: 'row', v: 1, deleted: false })
  const first = data.readShared(pk, sk)
  assert.deepEqual(first, { pk: 'bucket', sk: 'row', v: 1, deleted: false })
  assert.equal(data.readShared(pk, sk), first, 'the same object while the row is unchanged')
  assert.notEqual(data.read(pk, sk), first, 'read still decodes a copy of its own')

  data.update({ pk: 'bucket', sk: 'row', v: 2, deleted: false })
  const second = data.readShared(pk, sk) as Reg
  assert.notEqual(second, first)
  assert.equal(second.v, 2, 'a change is seen at the next read')
  assert.equal(first.v, 1, 'an entry handed out earlier is left as it was')

  const key = data.treeKey(pk, sk)
  assert.ok(data.deleteIfEqual(key, regCodec.encode(second)))
  assert.equal(data.readShared(pk, sk), undefined, 'a deleted row is gone at the next read')
})

test('readShared keeps a bounded number of entries and stays right past the bound', async (t) => {
  const data = new TableData(regSchema('bounded'), await openDb(t))
  for (let i = 0; i < 600; i++) data.update({ pk: 'p', sk: `k${i}`, v: i, deleted: false })
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 600; i++) assert.equal(data.readShared(utf8('p'), utf8(`k${i}`))?.v, i)
  }
})
