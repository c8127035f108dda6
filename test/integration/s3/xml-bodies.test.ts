/**
 * XML request bodies over real sockets, written the way Go clients (rclone, restic, aws-sdk-go)
 * and .NET write them, and the bodies a node must refuse.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  CreateMultipartUploadCommand,
  GetBucketCorsCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import type { TestNode } from '../../../lib/testing.ts'
import {
  encodeKey,
  getBytes,
  md5Base64,
  md5Hex,
  objectExists,
  randomBuffer,
  rawRequest,
  useTestNode,
  xmlField,
} from '../../helpers/s3.ts'

/** Go's encoding/xml text escaping (EscapeText). */
const goEscape = (s: string) =>
  s.replace(
    /[&<>"'\t\n\r]/g,
    (c) =>
      ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;', '\t': '&#x9;', '\n': '&#xA;', '\r': '&#xD;' })[
        c
      ] as string,
  )

describe('XML request bodies', () => {
  let node: TestNode
  let s3: S3Client
  useTestNode({}, (n, c) => {
    node = n
    s3 = c
  })

  test('CompleteMultipartUpload with ETags quoted as &#34; (rclone, aws-sdk-go) completes', async () => {
    const key = 'xml/go-complete.bin'
    const parts = [randomBuffer(5 * 1024 * 1024), randomBuffer(1024)]
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: node.bucket, Key: key }))
    const etags: string[] = []
    for (const [i, Body] of parts.entries()) {
      const r = await s3.send(new UploadPartCommand({ Bucket: node.bucket, Key: key, UploadId, PartNumber: i + 1, Body }))
      etags.push(r.ETag as string)
    }
    const body = `<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${etags
      .map((e, i) => `<Part><ETag>${goEscape(e)}</ETag><PartNumber>${i + 1}</PartNumber></Part>`)
      .join('')}</CompleteMultipartUpload>`
    assert.match(body, /&#34;[0-9a-f]{32}&#34;/)
    const res = await rawRequest(node, {
      method: 'POST',
      path: `/${node.bucket}/${encodeKey(key)}`,
      query: { uploadId: UploadId as string },
      body,
    })
    assert.equal(res.status, 200, res.text)
    assert.match(xmlField(res.text, 'ETag') ?? '', /^(&quot;|")[0-9a-f]{32}-2(&quot;|")$/)
    assert.equal(md5Hex(await getBytes(s3, node.bucket, key)), md5Hex(Buffer.concat(parts)))
  })

  test('DeleteObjects with keys escaped the Go way deletes exactly those keys', async () => {
    const keys = ['xml/it\'s "quoted".txt', 'xml/tab\there.txt', 'xml/cr\rlf\n.txt', 'xml/a&b<c>.txt']
    for (const Key of keys) await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key, Body: Key }))
    const body = `<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${keys
      .map((k) => `<Object><Key>${goEscape(k)}</Key></Object>`)
      .join('')}<Quiet>false</Quiet></Delete>`
    const res = await rawRequest(node, {
      method: 'POST',
      path: `/${node.bucket}`,
      query: { delete: '' },
      headers: { 'content-md5': md5Base64(body) },
      body,
    })
    assert.equal(res.status, 200, res.text)
    assert.doesNotMatch(res.text, /<Error>/)
    for (const Key of keys) assert.equal(await objectExists(s3, node.bucket, Key), false, `${JSON.stringify(Key)} is gone`)
  })

  test('PutBucketCors from .NET (BOM, declaration, &quot;) is stored', async () => {
    const body = `\uFEFF<?xml version="1.0" encoding="utf-8"?>\r\n<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><CORSRule><ID>&quot;net&quot;</ID><AllowedMethod>GET</AllowedMethod><AllowedOrigin>https://example.com</AllowedOrigin></CORSRule></CORSConfiguration>`
    const res = await rawRequest(node, {
      method: 'PUT',
      path: `/${node.bucket}`,
      query: { cors: '' },
      headers: { 'content-md5': md5Base64(body) },
      body,
    })
    assert.equal(res.status, 200, res.text)
    const got = await s3.send(new GetBucketCorsCommand({ Bucket: node.bucket }))
    assert.equal(got.CORSRules?.[0]?.ID, '"net"')
  })

  const refused: Array<[name: string, body: string | Uint8Array, code: string]> = [
    [
      'a DOCTYPE with an external entity',
      '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&x;</Key></Object></Delete>',
      'MalformedXML',
    ],
    [
      'invalid UTF-8',
      Buffer.concat([Buffer.from('<Delete><Object><Key>'), Buffer.from([0xff]), Buffer.from('</Key></Object></Delete>')]),
      'MalformedXML',
    ],
    ['an unknown element', '<Delete><Object><Key>k</Key></Object><Unknown/></Delete>', 'MalformedXML'],
    ['an empty body', '', 'MalformedXML'],
    ['a body over the cap', `<Delete>${'<Object><Key>k</Key></Object>'.repeat(300_000)}</Delete>`, 'MaxMessageLengthExceeded'],
  ]
  for (const [name, body, code] of refused) {
    test(`DeleteObjects with ${name} is ${code}, and deletes nothing`, async () => {
      await s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'k', Body: 'stays' }))
      const res = await rawRequest(node, {
        method: 'POST',
        path: `/${node.bucket}`,
        query: { delete: '' },
        headers: { 'content-md5': md5Base64(body) },
        body,
      })
      assert.equal(res.status, 400, res.text)
      assert.equal(xmlField(res.text, 'Code'), code)
      assert.equal(await objectExists(s3, node.bucket, 'k'), true)
    })
  }
})
