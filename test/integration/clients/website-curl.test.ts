/**
 * The website endpoint seen by the real `curl` binary: the index document for `/`, the error
 * document with 404 for a missing page, HEAD, and no bucket listing.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { after, before, describe, test } from 'node:test'
import { PutBucketWebsiteCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { startTestNode, type TestNode } from '../../../lib/testing.ts'
import { binary } from '../../helpers/clients.ts'
import { s3Client } from '../../helpers/s3.ts'

const CURL = binary('curl')
const ROOT = '.web.localhost'
const INDEX = '<h1>home</h1>'
const ERROR = '<h1>not here</h1>'

interface CurlResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/** Runs curl with `-i` (or `-I` for HEAD) and parses the last response it printed. */
function curl(args: string[]): Promise<CurlResponse> {
  return new Promise((resolve, reject) => {
    execFile(CURL as string, ['-sS', '--max-time', '10', ...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err !== null) {
        reject(new Error(`curl failed: ${stderr}`, { cause: err }))
        return
      }
      const split = stdout.indexOf('\r\n\r\n')
      const head = split < 0 ? stdout : stdout.slice(0, split)
      const body = split < 0 ? '' : stdout.slice(split + 4)
      const [statusLine = '', ...lines] = head.split('\r\n')
      const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(statusLine)?.[1] ?? 0)
      const headers: Record<string, string> = {}
      for (const line of lines) {
        const colon = line.indexOf(':')
        if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
      }
      resolve({ status, headers, body })
    })
  })
}

describe('website endpoint with curl', { skip: CURL === undefined ? 'curl is not installed' : false }, () => {
  let node: TestNode
  let s3: S3Client
  let base: string
  let host: string

  before(async () => {
    node = await startTestNode({ s3_web: { bind_addr: '127.0.0.1:0', root_domain: ROOT } })
    s3 = s3Client(node)
    for (const [Key, Body] of [
      ['index.html', INDEX],
      ['error.html', ERROR],
      ['sub/page.html', '<p>page</p>'],
    ] as const) {
      await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key, Body, ContentType: 'text/html' }))
    }
    await s3.send(
      new PutBucketWebsiteCommand({
        Bucket: node.bucket,
        WebsiteConfiguration: { IndexDocument: { Suffix: 'index.html' }, ErrorDocument: { Key: 'error.html' } },
      }),
    )
    base = node.webEndpoint as string
    host = `Host: ${node.bucket}${ROOT}`
  })
  after(async () => {
    s3?.destroy()
    await node?.close()
  })

  test('GET / serves the index document', async () => {
    const r = await curl(['-i', '-H', host, `${base}/`])
    assert.equal(r.status, 200)
    assert.equal(r.body, INDEX)
    assert.match(r.headers['content-type'] ?? '', /text\/html/)
  })

  test('a missing page is the error document with 404', async () => {
    const r = await curl(['-i', '-H', host, `${base}/no/such/page.html`])
    assert.equal(r.status, 404)
    assert.equal(r.body, ERROR)
  })

  test('an existing page is served', async () => {
    const r = await curl(['-i', '-H', host, `${base}/sub/page.html`])
    assert.equal(r.status, 200)
    assert.equal(r.body, '<p>page</p>')
  })

  test('HEAD answers with the headers and no body', async () => {
    const r = await curl(['-I', '-H', host, `${base}/index.html`])
    assert.equal(r.status, 200)
    assert.equal(r.headers['content-length'], String(Buffer.byteLength(INDEX)))
    assert.ok(r.headers.etag !== undefined, 'HEAD carries an ETag')
    assert.equal(r.body, '')
  })

  test('HEAD of a missing page is 404', async () => {
    const r = await curl(['-I', '-H', host, `${base}/missing.html`])
    assert.equal(r.status, 404)
  })

  test('no bucket listing: a directory without index and ?list-type=2 do not list keys', async () => {
    const dir = await curl(['-i', '-H', host, `${base}/sub/`])
    assert.equal(dir.status, 404)
    assert.equal(dir.body, ERROR)
    const list = await curl(['-i', '-H', host, `${base}/?list-type=2`])
    assert.ok(!list.body.includes('ListBucketResult'), `no listing expected: ${list.body.slice(0, 200)}`)
    assert.ok(!list.body.includes('sub/page.html'), 'no key names in the answer')
  })

  test('an unknown bucket host is 404', async () => {
    const r = await curl(['-i', '-H', `Host: nope${ROOT}`, `${base}/`])
    assert.equal(r.status, 404)
  })
})
