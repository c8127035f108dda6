/**
 * Reading a range of a table sorted by string keys with K2V's parameters (prefix, start, end,
 * limit, reverse), for ReadIndex, ReadBatch and DeleteBatch (port of garage_api_k2v::range).
 * @internal
 */
import type { Table } from '../../table/table.ts'
import { utf8 } from '../../util/data.ts'
import { ApiError } from '../common/errors.ts'

/** Compares strings as Garage does (Rust `String` order: UTF-8 bytes). @internal */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

/** @internal */
export interface RangeParams {
  prefix: string | undefined
  start: string | undefined
  end: string | undefined
  limit: number | undefined
  reverse: boolean
}

/**
 * Entries of one partition of `table` (Garage's `read_range`); `more` and `nextStart` say where
 * a limited read stopped.
 * @throws ApiError InvalidRequest when `start` does not begin with `prefix`
 */
export async function readRange<E>(
  table: Table<E>,
  partition: Uint8Array,
  sortKeyOf: (e: E) => string,
  p: RangeParams,
  filter: ((e: E) => boolean) | undefined,
): Promise<{ entries: E[]; more: boolean; nextStart: string | undefined }> {
  let start: string | undefined
  let startIgnore = false
  if (p.prefix === undefined) start = p.start
  else if (p.start !== undefined) {
    if (!p.start.startsWith(p.prefix)) {
      throw new ApiError('InvalidRequest', `Start key '${p.start}' does not start with prefix '${p.prefix}'`)
    }
    start = p.start
  } else if (p.reverse) {
    const after = keyAfterPrefix(p.prefix)
    if (after === undefined) throw new ApiError('InternalError', "Sorry, can't list this prefix in reverse order")
    start = after
    startIgnore = true
  } else start = p.prefix

  const entries: E[] = []
  for (;;) {
    const remaining = p.limit === undefined ? Number.MAX_SAFE_INTEGER : p.limit - entries.length + 2
    const nGet = Math.min(1000, remaining)
    const got = await table.getRange(partition, {
      ...(start === undefined ? {} : { start: utf8(start) }),
      ...(filter === undefined ? {} : { filter }),
      limit: nGet,
      reverse: p.reverse,
    })
    for (const e of got) {
      const sk = sortKeyOf(e)
      if (startIgnore && sk === start) continue
      if (p.prefix !== undefined && !sk.startsWith(p.prefix)) return { entries, more: false, nextStart: undefined }
      if (p.end !== undefined) {
        const c = compareKeys(sk, p.end)
        if (p.reverse ? c <= 0 : c >= 0) return { entries, more: false, nextStart: undefined }
      }
      if (p.limit !== undefined && entries.length >= p.limit) return { entries, more: true, nextStart: sk }
      entries.push(e)
    }
    if (got.length < nGet) return { entries, more: false, nextStart: undefined }
    const last = entries[entries.length - 1]
    if (last === undefined) return { entries, more: false, nextStart: undefined }
    start = sortKeyOf(last)
    startIgnore = true
  }
}

/**
 * The smallest string after every string starting with `prefix` (Garage's `key_after_prefix`):
 * the last character incremented, dropping trailing U+10FFFF; undefined when nothing is left.
 * @internal
 */
export function keyAfterPrefix(prefix: string): string | undefined {
  const chars = [...prefix]
  while (chars.length > 0) {
    const tail = (chars.pop() as string).codePointAt(0) as number
    if (tail >= 0x10ffff) continue
    const next = tail === 0xd7ff ? 0xe000 : tail + 1
    chars.push(String.fromCodePoint(next))
    return chars.join('')
  }
  return undefined
}
