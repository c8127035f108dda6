/** The listing's partial read of object rows gives what decoding the whole row gives. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { listingOfEntry, listingOfRaw } from '../../../lib/model/s3/object-listing.ts'
import {
  type ObjectData,
  type ObjectEntry,
  type ObjectVersion,
  type ObjectVersionState,
  objectCodec,
} from '../../../lib/model/s3/object-table.ts'
import { currentVersion } from '../../../lib/api/s3/get.ts'

let seed = 7
const rand = (n: number): number => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31
  return seed % n
}
const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => rand(256))
const pick = <T>(xs: readonly T[]): T => xs[rand(xs.length)] as T

const KEYS = ['a', 'dir/file.txt', 'é/ü', '\u{1F600}', 'x'.repeat(300), `${'y'.repeat(40)}é`, '', 'k&<>"\'']
const SIZES = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, 5 * 2 ** 40, 2 ** 53 - 1]
const TIMESTAMPS = [0, 1, 200, 70_000, 1_796_495_027_974, 2 ** 32 + 5, 1.5]

function meta(): Extract<ObjectData, { t: 'inline' }>['meta'] {
  return {
    size: pick(SIZES),
    etag: pick(['d41d8cd98f00b204e9800998ecf8427e', 'abc-12', 'é"tag', 'e'.repeat(64)]),
    headers: Array.from({ length: rand(4) }, (_, i) => [`x-amz-meta-h${i}`, 'v'.repeat(rand(300))] as [string, string]),
    ...(rand(3) === 0 ? { checksum: { algorithm: 'CRC32' as const, value: 'AAAAAA==', type: 'FULL_OBJECT' as const } } : {}),
    ...(rand(4) === 0 ? { encryption: { alg: 'AES256' as const, keyMd5: bytes(16), inner: bytes(rand(200)) } } : {}),
  }
}

function state(): ObjectVersionState {
  switch (rand(6)) {
    case 0:
      return { t: 'uploading', multipart: rand(2) === 0, headers: [['content-type', 'text/plain']] }
    case 1:
      return { t: 'aborted' }
    case 2:
      return { t: 'purged' }
    case 3:
      return { t: 'complete', data: { t: 'delete' } }
    case 4:
      return {
        t: 'complete',
        data: { t: 'firstBlock', meta: meta(), hash: bytes(32) },
        ...(rand(2) === 0 ? { tagging: { ts: 5, tags: [['k', 'v']] } } : {}),
      }
    default:
      return { t: 'complete', data: { t: 'inline', meta: meta(), bytes: bytes(rand(3000)) } }
  }
}

function version(): ObjectVersion {
  return {
    uuid: bytes(32),
    ts: pick(TIMESTAMPS),
    state: state(),
    ...(rand(3) === 0 ? { keep: true as const } : {}),
    ...(rand(4) === 0
      ? { lock: { retention: { ts: 3, v: { mode: 'GOVERNANCE' as const, until: 9e12 } }, legalHold: { ts: 4, v: true } } }
      : {}),
  }
}

/** The same object with its fields in reverse insertion order (another encoder's map order). */
function reordered<T>(v: T): T {
  if (v instanceof Uint8Array || v === null || typeof v !== 'object') return v
  if (Array.isArray(v)) return v.map(reordered) as T
  return Object.fromEntries(
    Object.entries(v as Record<string, unknown>)
      .reverse()
      .map(([k, x]) => [k, reordered(x)]),
  ) as T
}

test('the partial read of a row agrees with decoding it whole, over random rows', () => {
  for (let i = 0; i < 3000; i++) {
    const entry: ObjectEntry = { bucketId: bytes(32), key: pick(KEYS), versions: Array.from({ length: rand(5) }, version) }
    for (const e of [entry, reordered(entry)]) {
      const raw = objectCodec.encode(e)
      const whole = objectCodec.decode(raw)
      const got = listingOfRaw(raw)
      assert.deepEqual(got, listingOfEntry(whole), `row ${i}`)
      // And both agree with GET's idea of the current version.
      const cur = currentVersion(whole)
      assert.equal(got.current === undefined, cur === undefined, `row ${i}: listed iff GET finds it`)
      if (cur !== undefined) {
        assert.deepEqual(got.current, { ts: cur.ts, size: cur.state.data.meta.size, etag: cur.state.data.meta.etag })
      }
    }
  }
})

test('rows of the earlier marker, and bytes of another shape, are read by decoding them whole', () => {
  const entry: ObjectEntry = {
    bucketId: bytes(32),
    key: 'old',
    versions: [{ uuid: bytes(32), ts: 10, state: { t: 'complete', data: { t: 'inline', meta: meta(), bytes: bytes(3) } } }],
  }
  const raw = objectCodec.encode(entry)
  const v1 = Uint8Array.from(raw)
  v1[5] = 0x31 // GTobj1
  assert.deepEqual(listingOfRaw(v1), listingOfEntry(entry))
  // A truncated row: the partial read gives up and the whole decode reports the corruption.
  assert.throws(() => listingOfRaw(raw.subarray(0, raw.length - 10)))
  // A value of the right marker but not a map.
  const odd = Uint8Array.from([...raw.subarray(0, 6), 0x93, 1, 2, 3])
  assert.throws(() => listingOfRaw(odd))
})
