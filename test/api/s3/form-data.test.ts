/** The streaming multipart/form-data reader, fed in chunks of every size (boundaries split anywhere). */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import { MultipartFormReader, parseBoundary } from '../../../lib/api/s3/form-data.ts'

async function* chunks(body: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < body.length; i += size) yield body.subarray(i, i + size)
}

const boundary = 'XyZ--boundary'
const file = Buffer.concat([randomBytes(5000), Buffer.from(`\r\n--${boundary.slice(0, 5)}`), randomBytes(3000)])
const body = Buffer.concat([
  Buffer.from(`preamble\r\n--${boundary}\r\nContent-Disposition: form-data; name="key"\r\n\r\na/\${filename}\r\n`),
  Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="empty"\r\n\r\n\r\n`),
  Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="x \\"y\\".bin"\r\n`),
  Buffer.from('Content-Type: application/octet-stream\r\n\r\n'),
  file,
  Buffer.from(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="after"\r\n\r\nz\r\n--${boundary}--\r\n`),
])

describe('MultipartFormReader', () => {
  for (const size of [1, 2, 3, 7, 16, 17, 100, 4096, body.length]) {
    test(`reads fields and a file from chunks of ${size} bytes`, async () => {
      const form = new MultipartFormReader(chunks(body, size), boundary)
      assert.deepEqual(await form.nextPart(), { name: 'key' })
      // biome-ignore lint/suspicious/noTemplateCurlyInString: S3's literal ${filename} placeholder
      assert.equal(await form.readText(100, 'key'), 'a/${filename}')
      assert.deepEqual(await form.nextPart(), { name: 'empty' })
      assert.equal(await form.readText(100, 'empty'), '')
      assert.deepEqual(await form.nextPart(), { name: 'file', filename: 'x "y".bin', contentType: 'application/octet-stream' })
      const got: Buffer[] = []
      for await (const c of form.content()) got.push(c)
      assert.ok(Buffer.concat(got).equals(file), 'the file content is intact')
      assert.deepEqual(await form.nextPart(), { name: 'after' })
      assert.equal(await form.nextPart(), undefined)
    })
  }

  test('a body cut short is MalformedPOSTRequest', async () => {
    const form = new MultipartFormReader(chunks(body.subarray(0, body.length - 100), 64), boundary)
    await form.nextPart()
    await form.nextPart()
    await form.nextPart()
    await assert.rejects(async () => {
      for await (const _ of form.content()) {
        // read
      }
    }, /MalformedPOSTRequest|not well-formed/)
  })

  test('parseBoundary accepts only multipart/form-data', () => {
    assert.equal(parseBoundary('multipart/form-data; boundary="a b"'), 'a b')
    assert.equal(parseBoundary('Multipart/Form-Data;boundary=abc'), 'abc')
    assert.equal(parseBoundary('multipart/mixed; boundary=abc'), undefined)
    assert.equal(parseBoundary(undefined), undefined)
  })
})
