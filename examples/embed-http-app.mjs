// Embed a Garage node in an HTTP application: the app stores uploads in a bucket of its own
// node through any S3 client, and serves them back. Run: node embed-http-app.mjs
// (it uploads a file to itself, downloads it, prints what it got and stops; remove the
// self-check at the bottom to keep it running).
import { createServer } from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { createGarageNode } from 'garage-ts'

const dir = process.env.DATA_DIR ?? (await mkdtemp(join(tmpdir(), 'garage-app-')))
const node = createGarageNode({
  metadata_dir: join(dir, 'meta'),
  data_dir: join(dir, 'data'),
  s3_api: { api_bind_addr: '127.0.0.1:0', s3_region: 'garage' },
})
await node.start()

// The app's own key and bucket (kept across restarts when DATA_DIR is set).
const key = (await node.keys.list()).find((k) => k.name === 'app') ?? (await node.keys.create({ name: 'app' }))
if ((await node.buckets.list()).every((b) => !b.globalAliases.includes('uploads'))) {
  await node.buckets.create('uploads')
  await node.buckets.allowKey('uploads', key.accessKeyId, { read: true, write: true })
}
const s3 = new S3Client({
  endpoint: node.s3Endpoint,
  region: 'garage',
  forcePathStyle: true,
  credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey },
})

// PUT /files/<name> stores the body; GET /files/<name> streams it back.
const app = createServer(async (req, res) => {
  const name = decodeURIComponent(new URL(req.url, 'http://x').pathname.replace(/^\/files\//, ''))
  try {
    if (req.method === 'PUT') {
      const length = Number(req.headers['content-length'])
      await s3.send(new PutObjectCommand({ Bucket: 'uploads', Key: name, Body: req, ContentLength: length }))
      res.writeHead(201).end('stored\n')
    } else {
      const obj = await s3.send(new GetObjectCommand({ Bucket: 'uploads', Key: name }))
      res.writeHead(200, { 'content-type': obj.ContentType ?? 'application/octet-stream' })
      obj.Body.pipe(res)
    }
  } catch (err) {
    res.writeHead(err.$metadata?.httpStatusCode ?? 500).end(`${err.name}\n`)
  }
})
await new Promise((resolve) => app.listen(0, '127.0.0.1', resolve))
const url = `http://127.0.0.1:${app.address().port}`
console.log(`app on ${url}, its object store on ${node.s3Endpoint}`)

// Self-check: upload through the app, read it back, stop.
const body = 'hello from the embedded store'
const put = await fetch(`${url}/files/greeting.txt`, { method: 'PUT', body })
const got = await (await fetch(`${url}/files/greeting.txt`)).text()
console.log(JSON.stringify({ put: put.status, got }))
app.close()
s3.destroy()
await node.stop()
if (process.env.DATA_DIR === undefined) await rm(dir, { recursive: true, force: true })
