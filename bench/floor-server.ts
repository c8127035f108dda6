/**
 * The design floor of `npm run bench`: the least a store built like Garage does per request,
 * with none of the rest (no auth, no RPC, no tables, no Merkle trees, no checksums other than
 * the two below, no upload guard). A PUT computes the MD5 of its body (the ETag, sent back) and
 * the BLAKE2b of each 1 MiB block as the bytes arrive, writes each block to its own file
 * `xx/yy/<hash>` (a temporary file renamed into place, the directory created the first time,
 * up to 3 blocks written at once while the body is read), then commits the object's row (its
 * blocks) in one lmdb transaction; a GET reads that row, then reads each block whole, verifies
 * its BLAKE2b and sends it. On the main thread, with the thread pool, as garage does.
 *
 * Run as a child process: `node --import tsx bench/floor-server.ts <dir>`; prints
 * `listening on http://127.0.0.1:<port>`. The bench reports garage against it (`floor`,
 * `ratio_floor`, `floor_cpu`) beside the bare server: what the protocol and the block layout
 * cost on this machine, told apart from our own overhead.
 *
 * Three copies (the floor of the bench's 3-node cluster): with `FLOOR_PEERS=<url>,<url>`, a PUT
 * also sends the object's blocks, their hashes and its row to each peer in one plain HTTP request
 * (`POST /_replica/<key>`, what a one-round write sends each node, without the encryption), the
 * peer writing the blocks under the hashes it is given (no second hashing) and committing the row;
 * the answer goes once this node and one peer hold it (a write quorum of 2 of 3, this node's
 * copy among them), the third copy finishing after. A GET is served by the node asked, from its own copy.
 */

import { createHash } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { Agent, createServer, type IncomingMessage, request, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { open } from 'lmdb'

const dir = process.argv[2]
if (dir === undefined) throw new Error('usage: floor-server.ts <dir>')
const BLOCK = 1024 * 1024
const MAX_WRITES = 3
const db = open<Buffer, string>({ path: join(dir, 'meta'), noSync: true, compression: false, encoding: 'binary' })
const made = new Set<string>()
let tmpSeq = 0
const peers = (process.env.FLOOR_PEERS ?? '').split(',').filter((p) => p !== '')
const peerAgent = new Agent({ keepAlive: true, maxSockets: 16 })

async function writeBlock(hash: Buffer, data: Buffer[]): Promise<void> {
  const hex = hash.toString('hex')
  const sub = join(dir as string, hex.slice(0, 2), hex.slice(2, 4))
  if (!made.has(sub)) {
    await mkdir(sub, { recursive: true })
    made.add(sub)
  }
  const tmp = join(sub, `${hex}.tmp${++tmpSeq}`)
  await writeFile(tmp, data.length === 1 ? (data[0] as Buffer) : Buffer.concat(data))
  await rename(tmp, join(sub, hex))
}

async function put(req: IncomingMessage, res: ServerResponse, key: string): Promise<void> {
  const md5 = createHash('md5')
  let blake = createHash('blake2b512')
  let pieces: Buffer[] = []
  let fill = 0
  let size = 0
  const hashes: Buffer[] = []
  const writing = new Set<Promise<void>>()
  // The first block write that failed: the request fails with it once the body is read.
  let failed: { err: unknown } | undefined
  const endBlock = async (): Promise<void> => {
    const hash = blake.digest().subarray(0, 32)
    hashes.push(hash)
    const w = writeBlock(hash, pieces).then(
      () => {
        writing.delete(w)
      },
      (err: unknown) => {
        writing.delete(w)
        failed ??= { err }
      },
    )
    writing.add(w)
    blake = createHash('blake2b512')
    pieces = []
    fill = 0
    while (writing.size >= MAX_WRITES) await Promise.race(writing)
  }
  const body: Buffer[] = [] // the whole body, to send to the peers
  for await (const chunk of req as AsyncIterable<Buffer>) {
    md5.update(chunk)
    if (peers.length > 0) body.push(chunk)
    size += chunk.length
    for (let at = 0; at < chunk.length; ) {
      const take = Math.min(chunk.length - at, BLOCK - fill)
      const piece = at === 0 && take === chunk.length ? chunk : chunk.subarray(at, at + take)
      blake.update(piece)
      pieces.push(piece)
      fill += take
      at += take
      if (fill === BLOCK) await endBlock()
    }
  }
  if (fill > 0) await endBlock()
  const etag = md5.digest('hex')
  const head = Buffer.alloc(24)
  head.write(etag, 'hex')
  head.writeUIntBE(size, 16, 6)
  // The row: ETag, size, block hashes.
  const row = Buffer.concat([head, ...hashes])
  const local = (async () => {
    await Promise.all(writing)
    if (failed !== undefined) throw failed.err
    db.transactionSync(() => db.putSync(key, row))
  })()
  // This node's copy and one peer's: a GET to this node then finds the row.
  if (peers.length > 0) await Promise.all([local, Promise.any(peers.map((p) => replicate(p, key, row, body)))])
  else await local
  res.setHeader('etag', `"${etag}"`)
  res.end()
}

/** Sends an object's row and data to a peer (`POST /_replica/<key>`). */
function replicate(peer: string, key: string, row: Buffer, body: Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const length = body.reduce((n, b) => n + b.length, 0)
    const req = request(`${peer}/_replica${key}`, {
      method: 'POST',
      agent: peerAgent,
      headers: { 'content-length': String(length), 'x-floor-row': row.toString('base64') },
    })
    req.once('error', reject)
    req.once('response', (res) => {
      res.resume()
      res.once('error', reject)
      res.once('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`peer ${peer}: ${res.statusCode}`))))
      // An answer cut short ends without 'end'; a settled promise ignores the later calls.
      res.once('close', () => reject(new Error(`peer ${peer}: answer cut short`)))
    })
    for (const b of body) req.write(b)
    req.end()
  })
}

/** A copy sent by the node a client wrote to: the blocks under the given hashes, then the row. */
async function receiveReplica(req: IncomingMessage, res: ServerResponse, key: string): Promise<void> {
  const row = Buffer.from(String(req.headers['x-floor-row']), 'base64')
  const chunks: Buffer[] = []
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk)
  const data = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)
  const writes: Array<Promise<void>> = []
  for (let at = 24, off = 0; at < row.length; at += 32, off += BLOCK) {
    writes.push(writeBlock(row.subarray(at, at + 32), [data.subarray(off, Math.min(off + BLOCK, data.length))]))
  }
  await Promise.all(writes)
  db.transactionSync(() => db.putSync(key, row))
  res.end()
}

async function get(res: ServerResponse, key: string): Promise<void> {
  const row = db.get(key)
  if (row === undefined) {
    res.statusCode = 404
    res.end()
    return
  }
  res.setHeader('content-length', row.readUIntBE(16, 6))
  for (let at = 24; at < row.length; at += 32) {
    const hash = row.subarray(at, at + 32)
    const hex = hash.toString('hex')
    const data = await readFile(join(dir as string, hex.slice(0, 2), hex.slice(2, 4), hex))
    if (!createHash('blake2b512').update(data).digest().subarray(0, 32).equals(hash)) throw new Error(`corrupt block ${hex}`)
    if (!res.write(data)) await new Promise((resolve) => res.once('drain', resolve))
  }
  res.end()
}

// Same timeouts as lib/api/common/server.ts.
const server = createServer({ requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 30_000 }, (req, res) => {
  const key = (req.url ?? '/').split('?')[0] ?? '/'
  const done =
    req.method === 'PUT'
      ? put(req, res, key)
      : req.method === 'GET'
        ? get(res, key)
        : req.method === 'POST' && key.startsWith('/_replica/')
          ? receiveReplica(req, res, key.slice('/_replica'.length))
          : undefined
  if (done === undefined) {
    res.statusCode = 405
    res.end()
    return
  }
  done.catch((err: unknown) => {
    process.stderr.write(`floor server: ${req.method} ${req.url}: ${String(err)}\n`)
    if (res.headersSent) res.destroy()
    else {
      res.statusCode = 500
      res.end()
    }
  })
})
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  process.stdout.write(`listening on http://127.0.0.1:${port}\n`)
})
process.once('SIGTERM', () => server.close(() => process.exit(0)))
