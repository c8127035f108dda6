/**
 * The bare Node.js baseline of `npm run bench`: a plain node:http server that streams each PUT body
 * to one file per key and serves it back with fs.createReadStream. No auth, no hashing, no
 * metadata: what Node.js itself costs for the same requests. Run as a child process:
 * `node --import tsx bench/bare-server.ts <dir> [--hashed]`; prints `listening on http://127.0.0.1:<port>`.
 *
 * `--hashed` adds the hashing no S3 store built like Garage can skip, and nothing else: a PUT
 * computes the MD5 of its body (the ETag, sent back) and the BLAKE2b of each 1 MiB block (a
 * block's name), as the bytes arrive; a GET computes the BLAKE2b of each 1 MiB block it sends
 * (every block read is verified). On the main thread, as garage does. The bench reports garage
 * against both, so that what the protocol and the block format cost is told apart from our own
 * overhead.
 */

import { createHash, type Hash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { Transform, type TransformCallback } from 'node:stream'
import { pipeline } from 'node:stream/promises'

const dir = process.argv[2]
if (dir === undefined) throw new Error('usage: bare-server.ts <dir> [--hashed]')
const HASHED = process.argv[3] === '--hashed'
const BLOCK = 1024 * 1024

/** BLAKE2b of every BLOCK bytes that pass (and MD5 of them all, for a PUT). */
class Hashing extends Transform {
  readonly md5: Hash | undefined
  #block = createHash('blake2b512')
  #inBlock = 0
  constructor(md5: boolean) {
    super()
    this.md5 = md5 ? createHash('md5') : undefined
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.md5?.update(chunk)
    let at = 0
    while (at < chunk.length) {
      const take = Math.min(chunk.length - at, BLOCK - this.#inBlock)
      this.#block.update(at === 0 && take === chunk.length ? chunk : chunk.subarray(at, at + take))
      at += take
      this.#inBlock += take
      if (this.#inBlock === BLOCK) this.#nextBlock()
    }
    cb(null, chunk)
  }
  override _flush(cb: TransformCallback): void {
    if (this.#inBlock > 0) this.#nextBlock()
    cb()
  }
  #nextBlock(): void {
    this.#block.digest()
    this.#block = createHash('blake2b512')
    this.#inBlock = 0
  }
}

async function handle(req: IncomingMessage, res: ServerResponse, file: string): Promise<void> {
  if (req.method === 'PUT') {
    if (HASHED) {
      const hashing = new Hashing(true)
      await pipeline(req, hashing, createWriteStream(file))
      res.setHeader('etag', `"${hashing.md5?.digest('hex')}"`)
    } else await pipeline(req, createWriteStream(file))
    res.end()
  } else if (req.method === 'GET') {
    const st = await stat(file)
    res.setHeader('content-length', st.size)
    // garage reads a block whole before it verifies and sends it: the same reads here.
    if (HASHED) await pipeline(createReadStream(file, { highWaterMark: BLOCK }), new Hashing(false), res)
    else await pipeline(createReadStream(file), res)
  } else {
    res.statusCode = 405
    res.end()
  }
}

// Same timeouts as lib/api/common/server.ts.
const server = createServer({ requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 30_000 }, (req, res) => {
  const file = join(dir, encodeURIComponent((req.url ?? '/').split('?')[0] ?? '/'))
  handle(req, res, file).catch((err: unknown) => {
    process.stderr.write(`bare server: ${req.method} ${req.url}: ${String(err)}\n`)
    if (res.headersSent) res.destroy()
    else {
      res.statusCode = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 404 : 500
      res.end()
    }
  })
})
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  process.stdout.write(`listening on http://127.0.0.1:${port}\n`)
})
process.once('SIGTERM', () => server.close(() => process.exit(0)))
