/**
 * The bare Node.js baseline of `npm run bench`: a plain node:http server that streams each PUT body
 * to one file per key and serves it back with fs.createReadStream. No auth, no hashing, no
 * metadata: what Node.js itself costs for the same requests. Run as a child process:
 * `node --import tsx bench/bare-server.ts <dir>`; prints `listening on http://127.0.0.1:<port>`.
 */

import { createReadStream, createWriteStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'

const dir = process.argv[2]
if (dir === undefined) throw new Error('usage: bare-server.ts <dir>')

async function handle(req: IncomingMessage, res: ServerResponse, file: string): Promise<void> {
  if (req.method === 'PUT') {
    await pipeline(req, createWriteStream(file))
    res.end()
  } else if (req.method === 'GET') {
    const st = await stat(file)
    res.setHeader('content-length', st.size)
    await pipeline(createReadStream(file), res)
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
