/**
 * Block endpoints (port of garage_api_admin::block): ListBlockErrors, GetBlockInfo,
 * RetryBlockResync and PurgeBlocks. Node-scoped: each runs on the nodes `?node=` names, against
 * that node's block manager and its local block_ref rows.
 */
import type { Garage } from '../../model/garage.ts'
import type { ObjectEntry } from '../../model/s3/object-table.ts'
import { deletedVersion, type VersionEntry } from '../../model/s3/version-table.ts'
import { prefixEnd } from '../../db/db.ts'
import { compareBytes, fromHex, genUuid, type Hash, toHex, utf8 } from '../../util/data.ts'
import type { NodeAdminContext } from './context.ts'
import { AdminError, badRequest } from './errors.ts'
import { localEndpoint } from './node-rpc.ts'
import { Fields } from './request.ts'

const EMPTY = new Uint8Array(0)
/** Most block references looked at per block (Garage's 10000). */
const MAX_REFS = 10_000

function parseHash(s: string): Hash {
  if (!/^[0-9a-fA-F]{64}$/.test(s)) throw badRequest(`invalid block hash '${s}': expected 64 hexadecimal digits`)
  return fromHex(s.toLowerCase())
}

/** ListBlockErrors: blocks whose resync failed, with their retry schedule. */
export const listBlockErrors = localEndpoint({
  parse: () => null,
  run(ctx: NodeAdminContext) {
    const now = Date.now()
    return ctx.garage.blockManager.listErrors().map((e) => ({
      blockHash: toHex(e.hash),
      refcount: e.refcount,
      errorCount: e.errors,
      lastTrySecsAgo: Math.max(0, Math.floor((now - e.lastTry) / 1000)),
      nextTryInSecs: Math.max(0, Math.floor((e.nextTry - now) / 1000)),
    }))
  },
})

/** The hash of the one block whose references start with `prefix` (at least 4 hex digits). */
function findBlockByPrefix(g: Garage, prefix: string): Hash {
  if (prefix.length < 4) throw badRequest('Please specify at least 4 characters of the block hash')
  if (!/^[0-9a-fA-F]+$/.test(prefix) || prefix.length > 64) throw badRequest(`invalid block hash prefix '${prefix}'`)
  const lower = prefix.toLowerCase()
  const bin = fromHex(lower.slice(0, lower.length & ~1))
  const end = prefixEnd(bin)
  let found: Hash | undefined
  for (const [k] of g.blockRefTable.data.store.range({ start: bin, ...(end === undefined ? {} : { end }) })) {
    const hash = k.subarray(0, 32)
    if (!toHex(hash).startsWith(lower)) continue
    if (found === undefined) found = Uint8Array.from(hash)
    else if (compareBytes(found, hash) !== 0) throw badRequest(`Several blocks match prefix \`${prefix}\``)
  }
  if (found === undefined) throw new AdminError('NoSuchBlock', `No block found matching ${prefix}`)
  return found
}

/** GetBlockInfo: `{ blockHash }` (a prefix of at least 4 hex digits). */
export const getBlockInfo = localEndpoint({
  parse: (body) => {
    const blockHash = new Fields(body).string('blockHash')
    if (blockHash.length < 4) throw badRequest('Please specify at least 4 characters of the block hash')
    return { blockHash }
  },
  async run(ctx: NodeAdminContext, req: { blockHash: string }) {
    const g = ctx.garage
    const hash = findBlockByPrefix(g, req.blockHash)
    const refs = await g.blockRefTable.getRange(hash, { limit: MAX_REFS })
    const versions = []
    for (const br of refs) {
      const v = await g.versionTable.get(br.version, EMPTY)
      if (v === undefined) {
        versions.push({
          versionId: toHex(br.version),
          refDeleted: br.deleted,
          versionDeleted: true,
          garbageCollected: true,
          backlink: null,
        })
        continue
      }
      versions.push({
        versionId: toHex(br.version),
        refDeleted: br.deleted,
        versionDeleted: v.deleted,
        garbageCollected: false,
        backlink: await backlinkOf(g, v),
      })
    }
    return { blockHash: toHex(hash), refcount: g.blockManager.rc.get(hash), versions }
  },
})

async function backlinkOf(g: Garage, v: VersionEntry) {
  const b = v.backlink
  if (b.t === 'object') return { object: { bucketId: toHex(b.bucketId), key: b.key } }
  const u = await g.mpuTable.get(b.uploadId, EMPTY)
  return {
    upload: {
      uploadId: toHex(b.uploadId),
      uploadDeleted: u === undefined ? true : u.deleted,
      uploadGarbageCollected: u === undefined,
      bucketId: u === undefined ? null : toHex(u.bucketId),
      key: u === undefined ? null : u.key,
    },
  }
}

type RetryRequest = { all: true } | { blockHashes: string[] }

/** RetryBlockResync: `{ all: true }` or `{ blockHashes: [...] }`. */
export const retryBlockResync = localEndpoint({
  parse(body): RetryRequest {
    const f = new Fields(body)
    const all = f.optBool('all')
    const hashes = f.optStringArray('blockHashes')
    if (all !== undefined && hashes !== undefined) throw badRequest("give either 'all' or 'blockHashes', not both")
    if (all === true) return { all: true }
    if (all === false) throw badRequest("'all' must be true (or give 'blockHashes')")
    if (hashes === undefined) throw badRequest('expected { all: true } or { blockHashes: [...] }')
    for (const h of hashes) parseHash(h)
    return { blockHashes: hashes }
  },
  run(ctx: NodeAdminContext, req: RetryRequest) {
    const bm = ctx.garage.blockManager
    return { count: bm.retryNow('all' in req ? 'all' : req.blockHashes.map(parseHash)) }
  },
})

/** PurgeBlocks: `[hash, …]`: deletes every object, upload and version that uses these blocks. */
export const purgeBlocks = localEndpoint({
  parse(body): string[] {
    if (!Array.isArray(body) || !body.every((x) => typeof x === 'string')) {
      throw badRequest('expected a JSON list of block hashes')
    }
    for (const h of body as string[]) parseHash(h)
    return body as string[]
  },
  async run(ctx: NodeAdminContext, hashes: string[]) {
    const g = ctx.garage
    const counts = { objects: 0, uploads: 0, versions: 0 }
    for (const s of hashes) {
      const hash = parseHash(s)
      const refs = await g.blockRefTable.getRange(hash, { limit: MAX_REFS })
      for (const br of refs) {
        const v = await g.versionTable.get(br.version, EMPTY)
        if (v === undefined) continue
        await purgeBacklink(g, v, counts)
        if (!v.deleted) {
          await g.versionTable.insert(deletedVersion(v.uuid, v.backlink))
          counts.versions++
        }
      }
      // Nothing references it any more: stop retrying its resync.
      g.blockManager.clearError(hash)
    }
    return {
      blocksPurged: hashes.length,
      versionsDeleted: counts.versions,
      objectsDeleted: counts.objects,
      uploadsDeleted: counts.uploads,
    }
  },
})

/**
 * Deletes what makes a version visible: its upload (marked deleted), and the object if this
 * version is its current one (a delete marker just after it).
 */
async function purgeBacklink(g: Garage, v: VersionEntry, counts: { objects: number; uploads: number }): Promise<void> {
  let bucketId: Uint8Array
  let key: string
  let versionId: Uint8Array
  if (v.backlink.t === 'object') {
    bucketId = v.backlink.bucketId
    key = v.backlink.key
    versionId = v.uuid
  } else {
    const u = await g.mpuTable.get(v.backlink.uploadId, EMPTY)
    if (u === undefined) return
    if (!u.deleted) {
      await g.mpuTable.insert({ ...u, deleted: true, parts: [] })
      counts.uploads++
    }
    bucketId = u.bucketId
    key = u.key
    versionId = v.backlink.uploadId
  }
  const o = await g.objectTable.get(bucketId, utf8(key))
  if (o === undefined) return
  const current = [...o.versions].reverse().find((x) => x.state.t === 'complete')
  if (current === undefined || compareBytes(current.uuid, versionId) !== 0) return
  const marker: ObjectEntry = {
    bucketId,
    key,
    versions: [{ uuid: genUuid(), ts: current.ts + 1, state: { t: 'complete', data: { t: 'delete' } } }],
  }
  await g.objectTable.insert(marker)
  counts.objects++
}
