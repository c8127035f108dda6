/** The start-stage helper of lib/node.ts: undo in reverse, every step runs, failures undo what was opened. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { runInReverse, stage, TeardownErrors } from '../../lib/_node/teardown.ts'

test('a stage returns its result and one teardown that undoes it last-first', async () => {
  const log: string[] = []
  const s = await stage(async (defer) => {
    defer(async () => void log.push('a'))
    defer(async () => void log.push('b'))
    return { value: 42 }
  })
  assert.equal(s.value, 42)
  assert.deepEqual(log, [])
  await s.teardown()
  assert.deepEqual(log, ['b', 'a'])
  await s.teardown() // nothing left to undo
  assert.deepEqual(log, ['b', 'a'])
})

test('a stage that fails partway undoes what it opened, then rethrows its error', async () => {
  const log: string[] = []
  const boom = new Error('boom')
  await assert.rejects(
    stage(async (defer) => {
      defer(async () => void log.push('a'))
      defer(async () => void log.push('b'))
      throw boom
    }),
    (err) => err === boom,
  )
  assert.deepEqual(log, ['b', 'a'])
})

test('every teardown step runs even when one fails; the errors come back flattened', async () => {
  const log: string[] = []
  const s = await stage(async (defer) => {
    defer(async () => void log.push('a'))
    defer(async () => {
      throw new Error('b failed')
    })
    defer(async () => void log.push('c'))
    return {}
  })
  await assert.rejects(s.teardown(), (err) => err instanceof TeardownErrors && err.errors.length === 1)
  assert.deepEqual(log, ['c', 'a'])
  const errors = await runInReverse([
    async () => {
      throw new Error('x')
    },
    s.teardown,
    async () => {
      await s.teardown()
      throw new TeardownErrors([new Error('y'), new Error('z')], 'inner')
    },
  ])
  assert.deepEqual(
    errors.map((e) => (e as Error).message),
    ['y', 'z', 'x'],
  )
})
