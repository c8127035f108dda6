/**
 * The cluster clock (lib/net/clock.ts): version timestamps follow the latest clock of the
 * cluster, aged by the monotonic clock, never go behind the node's own clock, and ignore a peer
 * too far ahead.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ClusterClock, MAX_ADOPTED_SKEW_MS } from '../../lib/net/clock.ts'
import type { Logger } from '../../lib/util/logger.ts'

/** A logger that keeps its lines. */
function recorder(): Logger & { lines: string[] } {
  const lines: string[] = []
  const log = {
    lines,
    debug: (m: string) => lines.push(`debug ${m}`),
    info: (m: string) => lines.push(`info ${m}`),
    warn: (m: string) => lines.push(`warn ${m}`),
    error: (m: string) => lines.push(`error ${m}`),
    withTag: () => log,
  }
  return log
}

/** A clock whose wall and monotonic times the test moves. */
function manual(wall: number) {
  const t = { wall, mono: 0 }
  return { t, clocks: { wall: () => t.wall, mono: () => t.mono } }
}

test('alone, the cluster clock is the own clock', () => {
  const { t, clocks } = manual(1_000_000)
  const c = new ClusterClock(recorder(), clocks)
  assert.equal(c.now(), 1_000_000)
  t.wall += 5
  assert.equal(c.now(), 1_000_005)
  assert.equal(c.aheadMs(), 0)
})

test('a node 2 minutes behind follows the peer ahead of it, aged by its monotonic clock', () => {
  const { t, clocks } = manual(1_000_000)
  const log = recorder()
  const c = new ClusterClock(log, clocks)
  c.observe('a'.repeat(64), 1_120_000)
  assert.equal(c.now(), 1_120_000)
  t.wall += 1_000
  t.mono += 1_000
  assert.equal(c.now(), 1_121_000, 'the peer time ages with the monotonic clock')
  assert.equal(c.aheadMs(), 120_000)
  // A later, lower sample (another peer on time, or the same one behind a slow link) changes nothing.
  c.observe('b'.repeat(64), 1_100_000)
  assert.equal(c.now(), 1_121_000)
  assert.equal(log.lines.filter((l) => l.startsWith('info following')).length, 1, 'logged once')
})

test('a peer behind is not followed, and the own clock is a floor', () => {
  const { t, clocks } = manual(1_000_000)
  const c = new ClusterClock(recorder(), clocks)
  c.observe('a'.repeat(64), 880_000)
  assert.equal(c.now(), 1_000_000)
  c.observe('a'.repeat(64), 1_000_500)
  t.wall += 10_000 // the own clock jumps forward past the peer time
  assert.equal(c.now(), 1_010_000)
})

test('a peer more than 15 minutes ahead is ignored and warned about once', () => {
  const { clocks } = manual(1_000_000)
  const log = recorder()
  const c = new ClusterClock(log, clocks)
  c.observe('a'.repeat(64), 1_000_000 + MAX_ADOPTED_SKEW_MS + 1)
  c.observe('a'.repeat(64), 1_000_000 + MAX_ADOPTED_SKEW_MS + 2)
  assert.equal(c.now(), 1_000_000)
  assert.equal(log.lines.filter((l) => l.startsWith('warn')).length, 1)
  c.observe('a'.repeat(64), Number.NaN)
  assert.equal(c.now(), 1_000_000)
})
