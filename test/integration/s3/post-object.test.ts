/**
 * PostObject (browser form uploads): forms built and policies signed here (SigV4 HMAC chain
 * written in the test, not our signer), sent over raw HTTP; the results read back with the SDK.
 */
import assert from 'node:assert/strict'
import { createHash, createHmac, randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { describe, test } from 'node:test'
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3'
import type { TestNode } from '../../../lib/testing.ts'
import type { Logger } from '../../../lib/util/logger.ts'
import { eventually } from '../../helpers/eventually.ts'
import { getBytes, md5Hex, objectExists, xmlField, useTestNode } from '../../helpers/s3.ts'

let node: TestNode
let s3: S3Client

/** What the node logs: debug lines (request outcomes) and error lines (none expected). */
const logged: { debug: string[]; error: string[] } = { debug: [], error: [] }
const line = (m: unknown, args: unknown[]) => [m, ...args].map(String).join(' ')
const logger: Logger = {
  debug: (m: unknown, ...args: unknown[]) => logged.debug.push(line(m, args)),
  info: () => {},
  warn: () => {},
  error: (m: unknown, ...args: unknown[]) => logged.error.push(line(m, args)),
  withTag: () => logger,
}

useTestNode({ block_gc_delay_msec: 200, logger }, (n, c) => {
  node = n
  s3 = c
})

const hmac = (key: string | Buffer, data: string): Buffer => createHmac('sha256', key).update(data).digest()

interface FormOptions {
  /** Policy conditions added to the standard credential ones. */
  conditions: unknown[]
  /** Fields before the file (credential fields are added). */
  fields: Record<string, string>
  file: Buffer
  filename?: string
  expiration?: Date
  secret?: string
  /** Fields after the file. */
  trailing?: Record<string, string>
  /** Replace the computed signature. */
  signature?: string
}

function amzDate(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '')
}

/** A multipart/form-data body with a signed policy. */
function buildForm(o: FormOptions): { body: Buffer; contentType: string } {
  const now = new Date()
  const date = amzDate(now)
  const day = date.slice(0, 8)
  const { accessKeyId, secretAccessKey } = node.s3Config.credentials
  const credential = `${accessKeyId}/${day}/${node.region}/s3/aws4_request`
  const policy = Buffer.from(
    JSON.stringify({
      expiration: (o.expiration ?? new Date(Date.now() + 600_000)).toISOString(),
      conditions: [
        ...o.conditions,
        { 'x-amz-credential': credential },
        ['eq', '$x-amz-algorithm', 'AWS4-HMAC-SHA256'],
        ['starts-with', '$x-amz-date', day],
      ],
    }),
  ).toString('base64')
  const key = hmac(hmac(hmac(hmac(`AWS4${o.secret ?? secretAccessKey}`, day), node.region), 's3'), 'aws4_request')
  const signature = o.signature ?? hmac(key, policy).toString('hex')
  const boundary = `----form${randomBytes(8).toString('hex')}`
  const parts: Buffer[] = []
  const field = (name: string, value: string) =>
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`))
  for (const [k, v] of Object.entries(o.fields)) field(k, v)
  field('X-Amz-Credential', credential)
  field('X-Amz-Algorithm', 'AWS4-HMAC-SHA256')
  field('X-Amz-Date', date)
  field('Policy', policy)
  field('X-Amz-Signature', signature)
  const filename = o.filename === undefined ? '' : `; filename="${o.filename}"`
  parts.push(
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"${filename}\r\nContent-Type: application/octet-stream\r\n\r\n`,
    ),
    o.file,
    Buffer.from('\r\n'),
  )
  for (const [k, v] of Object.entries(o.trailing ?? {})) field(k, v)
  parts.push(Buffer.from(`--${boundary}--\r\n`))
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` }
}

async function post(form: { body: Buffer; contentType: string }, bucket = node.bucket) {
  const url = new URL(`${node.endpoint}/${bucket}`)
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }>(
    (resolve, reject) => {
      const req = httpRequest(
        url,
        { method: 'POST', headers: { 'content-type': form.contentType, 'content-length': form.body.length } },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }),
          )
          res.on('error', reject)
        },
      )
      req.on('error', reject)
      req.end(form.body)
    },
  )
}

const bucketCond = () => ({ bucket: node.bucket })

function expectPost(r: { status: number; text: string }, status: number, code?: string): void {
  assert.equal(r.status, status, r.text.slice(0, 300))
  if (code !== undefined) assert.equal(xmlField(r.text, 'Code'), code, r.text.slice(0, 300))
}

describe('PostObject', () => {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: S3's literal ${filename} placeholder
  test('uploads a file with ${filename}, metadata and a 201 PostResponse', async () => {
    const file = Buffer.from('hello from a browser form')
    const r = await post(
      buildForm({
        conditions: [
          bucketCond(),
          ['starts-with', '$key', 'uploads/'],
          ['eq', '$Content-Type', 'text/plain'],
          ['starts-with', '$x-amz-meta-origin', ''],
          { success_action_status: '201' },
          ['content-length-range', 1, 1000],
        ],
        fields: {
          // biome-ignore lint/suspicious/noTemplateCurlyInString: S3's literal ${filename} placeholder
          key: 'uploads/${filename}',
          'Content-Type': 'text/plain',
          'x-amz-meta-origin': 'form',
          success_action_status: '201',
        },
        file,
        filename: 'hello.txt',
        trailing: { ignored: 'after the file' },
      }),
    )
    assert.equal(r.status, 201, r.text)
    assert.equal(xmlField(r.text, 'Key'), 'uploads/hello.txt')
    assert.equal(xmlField(r.text, 'Bucket'), node.bucket)
    assert.equal(r.headers.etag, `"${md5Hex(file)}"`)
    assert.ok(String(r.headers.location).endsWith(`/${node.bucket}/uploads/hello.txt`), String(r.headers.location))
    assert.deepEqual(await getBytes(s3, node.bucket, 'uploads/hello.txt'), file)
    const head = await s3.send(new HeadObjectCommand({ Bucket: node.bucket, Key: 'uploads/hello.txt' }))
    assert.equal(head.ContentType, 'text/plain')
    assert.deepEqual(head.Metadata, { origin: 'form' })
  })

  test('answers 204 by default, 200 on request, and 303 to success_action_redirect', async () => {
    const file = Buffer.from('x')
    const r204 = await post(buildForm({ conditions: [bucketCond(), { key: 'a' }], fields: { key: 'a' }, file }))
    assert.equal(r204.status, 204, r204.text)
    const r200 = await post(
      buildForm({
        conditions: [bucketCond(), { key: 'b' }, ['eq', '$success_action_status', '200']],
        fields: { key: 'b', success_action_status: '200' },
        file,
      }),
    )
    assert.equal(r200.status, 200, r200.text)
    const r303 = await post(
      buildForm({
        conditions: [['eq', '$bucket', node.bucket], { key: 'c d' }, ['starts-with', '$success_action_redirect', 'https://']],
        fields: { key: 'c d', success_action_redirect: 'https://example.com/done?x=1' },
        file,
      }),
    )
    assert.equal(r303.status, 303, r303.text)
    const loc = new URL(String(r303.headers.location))
    assert.equal(loc.origin + loc.pathname, 'https://example.com/done')
    assert.equal(loc.searchParams.get('x'), '1')
    assert.equal(loc.searchParams.get('bucket'), node.bucket)
    assert.equal(loc.searchParams.get('key'), 'c d')
    assert.equal(loc.searchParams.get('etag'), `"${md5Hex(file)}"`)
    assert.ok(await objectExists(s3, node.bucket, 'c d'), 'the redirected upload is stored')
  })

  test('streams a file of several blocks', async () => {
    const file = randomBytes(2 * 1024 * 1024 + 12345)
    const r = await post(buildForm({ conditions: [bucketCond(), { key: 'big' }], fields: { key: 'big' }, file }))
    assert.equal(r.status, 204, r.text)
    assert.deepEqual(await getBytes(s3, node.bucket, 'big'), file)
  })

  test('encrypts with a customer key given as form fields (SSE-C)', async () => {
    const key = randomBytes(32)
    const sse = {
      'x-amz-server-side-encryption-customer-algorithm': 'AES256',
      'x-amz-server-side-encryption-customer-key': key.toString('base64'),
      'x-amz-server-side-encryption-customer-key-MD5': createHash('md5').update(key).digest('base64'),
    }
    const file = Buffer.from('secret form upload')
    const r = await post(
      buildForm({
        conditions: [bucketCond(), { key: 'enc' }, ...Object.keys(sse).map((k) => ['starts-with', `$${k}`, ''])],
        fields: { key: 'enc', ...sse },
        file,
      }),
    )
    assert.equal(r.status, 204, r.text)
    assert.equal(r.headers['x-amz-server-side-encryption-customer-algorithm'], 'AES256')
    const got = await s3.send(
      new GetObjectCommand({
        Bucket: node.bucket,
        Key: 'enc',
        SSECustomerAlgorithm: 'AES256',
        SSECustomerKey: key.toString('base64'),
      }),
    )
    assert.deepEqual(Buffer.from((await got.Body?.transformToByteArray()) ?? []), file)
    await assert.rejects(getBytes(s3, node.bucket, 'enc'), /object was stored using a form of Server Side Encryption/)
  })

  test('refuses forms that do not match the policy, and stores nothing', async () => {
    const file = Buffer.from('nope')
    const cases: Array<[string, FormOptions, number, string, RegExp?]> = [
      [
        'key outside the allowed prefix',
        { conditions: [bucketCond(), ['starts-with', '$key', 'uploads/']], fields: { key: 'denied/1' }, file },
        403,
        'AccessDenied',
        /Invalid according to Policy: Policy Condition failed/,
      ],
      [
        'field not covered by the policy',
        { conditions: [bucketCond(), { key: 'denied/2' }], fields: { key: 'denied/2', 'x-amz-meta-x': 'y' }, file },
        403,
        'AccessDenied',
        /Extra input fields: x-amz-meta-x/,
      ],
      [
        'condition on a missing field',
        {
          conditions: [bucketCond(), { key: 'denied/3' }, ['eq', '$Content-Type', 'image/png']],
          fields: { key: 'denied/3' },
          file,
        },
        403,
        'AccessDenied',
      ],
      [
        'another bucket',
        { conditions: [{ bucket: 'other' }, { key: 'denied/4' }], fields: { key: 'denied/4' }, file },
        403,
        'AccessDenied',
      ],
      [
        'expired policy',
        {
          conditions: [bucketCond(), { key: 'denied/5' }],
          fields: { key: 'denied/5' },
          file,
          expiration: new Date(Date.now() - 1000),
        },
        403,
        'AccessDenied',
        /Policy expired/,
      ],
      [
        'wrong secret',
        { conditions: [bucketCond(), { key: 'denied/6' }], fields: { key: 'denied/6' }, file, secret: 'not-the-secret' },
        403,
        'SignatureDoesNotMatch',
      ],
      [
        'malformed signature',
        { conditions: [bucketCond(), { key: 'denied/7' }], fields: { key: 'denied/7' }, file, signature: 'abc' },
        403,
        'SignatureDoesNotMatch',
      ],
      [
        'file too large for content-length-range',
        {
          conditions: [bucketCond(), { key: 'denied/8' }, ['content-length-range', 0, 3]],
          fields: { key: 'denied/8' },
          file,
        },
        400,
        'EntityTooLarge',
      ],
      [
        'file too small for content-length-range',
        {
          conditions: [bucketCond(), { key: 'denied/9' }, ['content-length-range', 10, 100]],
          fields: { key: 'denied/9' },
          file,
        },
        400,
        'EntityTooSmall',
      ],
      ['missing key field', { conditions: [bucketCond()], fields: {}, file }, 400, 'InvalidArgument'],
    ]
    for (const [what, form, status, code, message] of cases) {
      const r = await post(buildForm(form))
      assert.equal(r.status, status, `${what}: ${r.text}`)
      assert.equal(xmlField(r.text, 'Code'), code, what)
      if (message !== undefined) assert.match(xmlField(r.text, 'Message') ?? '', message, what)
    }
    for (let i = 1; i <= 9; i++) {
      assert.equal(await objectExists(s3, node.bucket, `denied/${i}`), false, `denied/${i} must not exist`)
    }
  })

  test('a key field over 1024 bytes is KeyTooLongError, a bucket over 63 InvalidBucketName; nothing is stored', async () => {
    const file = Buffer.from('x')
    expectPost(
      await post(buildForm({ conditions: [bucketCond(), { key: 'k'.repeat(1024) }], fields: { key: 'k'.repeat(1024) }, file })),
      204,
    )
    assert.ok(await objectExists(s3, node.bucket, 'k'.repeat(1024)), 'a key of 1024 bytes is stored')
    for (const n of [1025, 2000, 9000]) {
      const key = `long/${'k'.repeat(n - 5)}`
      const r = await post(buildForm({ conditions: [bucketCond(), { key }], fields: { key }, file }))
      expectPost(r, 400, 'KeyTooLongError')
    }
    // ${filename} can make the key too long after substitution.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: S3's literal ${filename} placeholder
    const templated = { key: 'long/${filename}' }
    const viaName = await post(
      buildForm({
        conditions: [bucketCond(), ['starts-with', '$key', 'long/']],
        fields: templated,
        file,
        filename: 'n'.repeat(1100),
      }),
    )
    expectPost(viaName, 400, 'KeyTooLongError')
    for (const bucket of ['b'.repeat(64), 'b'.repeat(9000)]) {
      const r = await post(buildForm({ conditions: [{ bucket }, { key: 'k' }], fields: { key: 'k' }, file }), bucket)
      expectPost(r, 400, 'InvalidBucketName')
    }
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: node.bucket, Prefix: 'long/' }))
    assert.equal(listed.KeyCount, 0, 'nothing was stored')
  })

  test('metadata fields that are not valid header values are InvalidArgument, and nothing is stored', async () => {
    const file = Buffer.from('x')
    const cases: Array<[string, string]> = [
      ['x-amz-meta-note', 'line\nbreak'],
      ['x-amz-meta-note', 'euro €'],
      ['Content-Type', 'text/plain\r\nx-injected: yes'],
      ['Cache-Control', 'nul\0'],
    ]
    for (const [field, value] of cases) {
      const key = 'bad-meta'
      const r = await post(
        buildForm({
          conditions: [bucketCond(), { key }, ['starts-with', `$${field}`, '']],
          fields: { key, [field]: value },
          file,
        }),
      )
      expectPost(r, 400, 'InvalidArgument')
      assert.equal(await objectExists(s3, node.bucket, key), false, `${field}=${JSON.stringify(value)}`)
    }
  })

  test('a client that goes away in the middle of the file gets IncompleteBody; nothing is stored', async () => {
    const form = buildForm({
      conditions: [bucketCond(), { key: 'gone' }],
      fields: { key: 'gone' },
      file: randomBytes(3 * 1024 * 1024),
    })
    const errorsBefore = logged.error.length
    const url = new URL(`${node.endpoint}/${node.bucket}`)
    await new Promise<void>((resolve) => {
      const req = httpRequest(url, {
        method: 'POST',
        headers: { 'content-type': form.contentType, 'content-length': form.body.length },
      })
      req.on('error', () => resolve())
      req.on('response', (res) => res.resume().on('end', resolve))
      // Well into the file (past its first block), then the connection drops.
      req.write(form.body.subarray(0, 1536 * 1024))
      setTimeout(() => {
        req.destroy()
        resolve()
      }, 300)
    })
    await eventually('the abort is logged', () => logged.debug.some((l) => /POST .*IncompleteBody/.test(l)))
    assert.deepEqual(logged.error.slice(errorsBefore), [], 'nothing is logged as an error')
    assert.equal(await objectExists(s3, node.bucket, 'gone'), false)
  })

  test('refuses a body that is not multipart/form-data', async () => {
    const r = await post({ body: Buffer.from('key=x'), contentType: 'application/x-www-form-urlencoded' })
    assert.equal(r.status, 400, r.text)
    assert.equal(xmlField(r.text, 'Code'), 'MalformedPOSTRequest')
    const truncated = buildForm({ conditions: [bucketCond(), { key: 't' }], fields: { key: 't' }, file: Buffer.from('abc') })
    const cut = { ...truncated, body: truncated.body.subarray(0, truncated.body.length - 30) }
    const r2 = await post(cut)
    assert.equal(r2.status, 400, r2.text)
    assert.equal(xmlField(r2.text, 'Code'), 'MalformedPOSTRequest')
    assert.equal(await objectExists(s3, node.bucket, 't'), false, 'a truncated form stores nothing')
  })
})

/** A form signed the Signature V2 way: `AWSAccessKeyId`, `policy`, `signature` (HMAC-SHA1). */
function buildFormV2(o: {
  conditions: unknown[]
  fields: Record<string, string>
  file: Buffer
  accessKeyId?: string
  secret?: string
  omitSignature?: boolean
}): { body: Buffer; contentType: string } {
  const { accessKeyId, secretAccessKey } = node.s3Config.credentials
  const policy = Buffer.from(
    JSON.stringify({ expiration: new Date(Date.now() + 600_000).toISOString(), conditions: o.conditions }),
  ).toString('base64')
  const signature = createHmac('sha1', o.secret ?? secretAccessKey)
    .update(policy)
    .digest('base64')
  const boundary = `----form${randomBytes(8).toString('hex')}`
  const parts: Buffer[] = []
  const field = (name: string, value: string) =>
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`))
  for (const [k, v] of Object.entries(o.fields)) field(k, v)
  field('AWSAccessKeyId', o.accessKeyId ?? accessKeyId)
  field('policy', policy)
  if (!o.omitSignature) field('signature', signature)
  parts.push(
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    o.file,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  )
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` }
}

describe('PostObject signed with Signature V2', () => {
  test('uploads a file; AWSAccessKeyId and signature need no policy condition', async () => {
    const file = Buffer.from('a V2 form')
    const r = await post(
      buildFormV2({
        conditions: [bucketCond(), ['starts-with', '$key', 'v2/'], { success_action_status: '201' }],
        fields: { key: 'v2/form.txt', success_action_status: '201' },
        file,
      }),
    )
    expectPost(r, 201)
    assert.equal(xmlField(r.text, 'Key'), 'v2/form.txt')
    assert.deepEqual(await getBytes(s3, node.bucket, 'v2/form.txt'), file)
  })

  test('a wrong secret is SignatureDoesNotMatch, an unknown key InvalidAccessKeyId, no signature InvalidArgument', async () => {
    const base = { conditions: [bucketCond(), { key: 'v2/bad' }], fields: { key: 'v2/bad' }, file: Buffer.from('x') }
    expectPost(await post(buildFormV2({ ...base, secret: 'not the secret' })), 403, 'SignatureDoesNotMatch')
    expectPost(await post(buildFormV2({ ...base, accessKeyId: 'GK00000000000000000000dead' })), 403, 'InvalidAccessKeyId')
    expectPost(await post(buildFormV2({ ...base, omitSignature: true })), 400, 'InvalidArgument')
    assert.equal(await objectExists(s3, node.bucket, 'v2/bad'), false)
  })

  test('the policy still applies: a key outside it is AccessDenied', async () => {
    const r = await post(
      buildFormV2({
        conditions: [bucketCond(), ['starts-with', '$key', 'v2/allowed/']],
        fields: { key: 'v2/elsewhere' },
        file: Buffer.from('x'),
      }),
    )
    expectPost(r, 403, 'AccessDenied')
    assert.equal(await objectExists(s3, node.bucket, 'v2/elsewhere'), false)
  })
})
