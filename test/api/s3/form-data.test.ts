/**
 * The PostObject form reader (busboy underneath), fed in chunks of every size (boundaries split
 * anywhere): fields, the file as a stream, the limits and the errors an S3 client gets.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import { type PostForm, type PostFormLimits, parseBoundary, readPostForm } from '../../../lib/api/s3/form-data.ts'
import { ApiError } from '../../../lib/api/common/errors.ts'

async function* chunks(body: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < body.length; i += size) yield body.subarray(i, i + size)
}

const LIMITS: PostFormLimits = { maxFieldSize: 100, maxFields: 10 }
const boundary = 'XyZ--boundary'
const contentType = `multipart/form-data; boundary=${boundary}`

const field = (name: string, value: string | Buffer, b = boundary) =>
  Buffer.concat([
    Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n`),
    Buffer.from(value),
    Buffer.from('\r\n'),
  ])
const filePart = (content: Buffer, head = 'name="file"; filename="f.bin"', b = boundary) =>
  Buffer.concat([
    Buffer.from(`--${b}\r\nContent-Disposition: form-data; ${head}\r\nContent-Type: application/octet-stream\r\n\r\n`),
    content,
    Buffer.from('\r\n'),
  ])
const end = (b = boundary) => Buffer.from(`--${b}--\r\n`)

async function readAll(file: AsyncIterable<Buffer>): Promise<Buffer> {
  const got: Buffer[] = []
  for await (const c of file) got.push(c)
  return Buffer.concat(got)
}

async function expectCode(p: Promise<unknown>, code: string, what: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ApiError, `${what}: ${String(err)}`)
    assert.equal(err.code, code, `${what}: ${err.message}`)
    return true
  })
}

/** Reads the form and its file whole. */
async function readForm(body: Buffer, size = 64, type = contentType): Promise<{ form: PostForm; file: Buffer }> {
  const form = await readPostForm(chunks(body, size), type, LIMITS)
  return { form, file: await readAll(form.file) }
}

// A file holding a partial delimiter, so that a boundary split across chunks is exercised.
const file = Buffer.concat([randomBytes(5000), Buffer.from(`\r\n--${boundary.slice(0, 5)}`), randomBytes(3000)])
const body = Buffer.concat([
  Buffer.from(`preamble\r\n--${boundary}\r\nContent-Disposition: form-data; name="Key"\r\n\r\na/\${filename}\r\n`),
  Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="empty"\r\n\r\n\r\n`),
  Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="dir/x \\"y\\".bin"\r\n`),
  Buffer.from('Content-Type: application/octet-stream\r\n\r\n'),
  file,
  Buffer.from(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="after"\r\n\r\nz\r\n--${boundary}--\r\nepilogue`),
])

describe('readPostForm', () => {
  for (const size of [1, 2, 3, 7, 16, 17, 100, 4096, body.length]) {
    test(`reads fields and a file from chunks of ${size} bytes`, async () => {
      const { form, file: got } = await readForm(body, size)
      // biome-ignore lint/suspicious/noTemplateCurlyInString: S3's literal ${filename} placeholder
      const key = 'a/${filename}'
      assert.deepEqual(
        [...form.fields],
        [
          ['key', key],
          ['empty', ''],
        ],
        'names lowercased, in order',
      )
      assert.equal(form.filename, 'dir/x "y".bin', 'the file name as sent, path included')
      assert.ok(got.equals(file), 'the file content is intact')
      assert.equal(await form.drain(1000), true, 'the rest of the body is read')
      assert.equal(form.fields.has('after'), false, 'fields after the file are ignored')
    })
  }

  test('a quoted boundary, with a space and escapes, is the one used', async () => {
    const b = 'a b"c'
    const data = Buffer.concat([field('k', 'v', b), filePart(Buffer.from('data'), undefined, b), end(b)])
    const { form, file: got } = await readForm(data, 5, 'Multipart/Form-Data; boundary="a b\\"c"; charset=utf-8')
    assert.deepEqual([...form.fields], [['k', 'v']])
    assert.equal(got.toString(), 'data')
  })

  test('UTF-8 in field values and file names', async () => {
    const data = Buffer.concat([
      field('x-amz-meta-note', 'euro €'),
      filePart(Buffer.from('x'), 'name="file"; filename="été.txt"'),
      end(),
    ])
    const { form } = await readForm(data)
    assert.equal(form.fields.get('x-amz-meta-note'), 'euro €')
    assert.equal(form.filename, 'été.txt')
  })

  test('a file part without a file name is the file; a text part named file too', async () => {
    const bare = await readForm(Buffer.concat([field('k', 'v'), filePart(Buffer.from('abc'), 'name="File"'), end()]))
    assert.equal(bare.form.filename, undefined)
    assert.equal(bare.file.toString(), 'abc')
    const text = await readForm(Buffer.concat([field('k', 'v'), field('file', 'plain text'), end()]))
    assert.equal(text.file.toString(), 'plain text')
  })

  test('a file part named otherwise before the file is a field', async () => {
    const data = Buffer.concat([
      filePart(Buffer.from('value'), 'name="note"; filename="n.txt"'),
      filePart(Buffer.from('f')),
      end(),
    ])
    const { form, file: got } = await readForm(data, 3)
    assert.deepEqual([...form.fields], [['note', 'value']])
    assert.equal(got.toString(), 'f')
  })

  test('a body whose closing boundary is missing after the file is still read whole', async () => {
    const data = Buffer.concat([field('k', 'v'), filePart(Buffer.from('abc')), Buffer.from(`--${boundary}`)])
    const { form, file: got } = await readForm(data)
    assert.equal(got.toString(), 'abc')
    assert.equal(await form.drain(1000), true)
  })

  test('drain reads at most its limit after the file', async () => {
    const trailing = Buffer.concat(Array.from({ length: 5000 }, (_, i) => field(`t${i}`, 'x'.repeat(90))))
    const data = Buffer.concat([filePart(Buffer.from('abc')), trailing, end()])
    const { form } = await readForm(data, 256)
    assert.equal(await form.drain(1024), false, 'more than the limit is left')
  })

  describe('refused forms', () => {
    const cases: Array<[string, Buffer, string, string?]> = [
      ['no file part', Buffer.concat([field('k', 'v'), end()]), 'InvalidArgument'],
      ['an empty body', Buffer.alloc(0), 'MalformedPOSTRequest'],
      [
        'cut inside the fields',
        Buffer.concat([field('k', 'v'), Buffer.from(`--${boundary}\r\nContent-Dispo`)]),
        'MalformedPOSTRequest',
      ],
      ['cut after a field, no closing boundary', field('k', 'v'), 'MalformedPOSTRequest'],
      [
        'LF line ends instead of CRLF',
        Buffer.from(`--${boundary}\nContent-Disposition: form-data; name="file"\n\nabc\n--${boundary}--\n`),
        'MalformedPOSTRequest',
      ],
      [
        'a malformed part header',
        Buffer.concat([Buffer.from(`--${boundary}\r\nno colon here\r\n\r\nv\r\n`), filePart(Buffer.from('x')), end()]),
        'MalformedPOSTRequest',
      ],
      [
        'a part without a name',
        Buffer.concat([
          Buffer.from(`--${boundary}\r\nContent-Disposition: form-data\r\n\r\nv\r\n`),
          filePart(Buffer.from('x')),
          end(),
        ]),
        'MalformedPOSTRequest',
      ],
      [
        'a field given twice',
        Buffer.concat([field('k', 'a'), field('K', 'b'), filePart(Buffer.from('x')), end()]),
        'InvalidArgument',
      ],
      [
        'a field over the size limit',
        Buffer.concat([field('k', 'x'.repeat(101)), filePart(Buffer.from('x')), end()]),
        'MaxPostPreDataLengthExceededError',
      ],
      [
        'a file part before the file over the size limit',
        Buffer.concat([filePart(randomBytes(5000), 'name="other"; filename="o"'), filePart(Buffer.from('x')), end()]),
        'MaxPostPreDataLengthExceededError',
      ],
      [
        'a text file part over the field size limit',
        Buffer.concat([field('file', 'x'.repeat(101)), end()]),
        'MaxPostPreDataLengthExceededError',
      ],
      [
        'too many fields',
        Buffer.concat([...Array.from({ length: 11 }, (_, i) => field(`f${i}`, 'v')), filePart(Buffer.from('x')), end()]),
        'MaxPostPreDataLengthExceededError',
        'Too many form fields',
      ],
    ]
    for (const [what, data, code, message] of cases) {
      test(`${what}: ${code}`, async () => {
        for (const size of [1, 7, 4096]) {
          const p = readForm(data, size)
          await expectCode(p, code, `${what} (chunks of ${size})`)
          if (message !== undefined) await assert.rejects(p, { message })
        }
      })
    }

    test('a field of exactly the size limit and exactly the maximum number of fields are accepted', async () => {
      const fields = Array.from({ length: 10 }, (_, i) => field(`f${i}`, 'x'.repeat(100)))
      const { form } = await readForm(Buffer.concat([...fields, filePart(Buffer.from('x')), end()]))
      assert.equal(form.fields.size, 10)
    })

    test('a body cut inside the file fails the file with MalformedPOSTRequest', async () => {
      const data = Buffer.concat([field('k', 'v'), filePart(randomBytes(3000))]).subarray(0, 2000)
      const form = await readPostForm(chunks(data, 100), contentType, LIMITS)
      await expectCode(readAll(form.file), 'MalformedPOSTRequest', 'cut in the file')
    })

    test('a Content-Type that is not multipart/form-data with a boundary', async () => {
      for (const type of [
        undefined,
        'application/x-www-form-urlencoded',
        'multipart/mixed; boundary=abc',
        'multipart/form-data',
      ]) {
        await expectCode(readPostForm(chunks(body, 10), type, LIMITS), 'MalformedPOSTRequest', String(type))
      }
    })
  })

  describe('a client that goes away', () => {
    const abort = Object.assign(new Error('aborted'), { code: 'ECONNRESET' })
    async function* cutOff(data: Buffer): AsyncGenerator<Buffer> {
      yield data
      await new Promise((r) => setTimeout(r, 20))
      throw abort
    }

    test('while the fields are read: the body error itself, so it is reported as IncompleteBody', async () => {
      await assert.rejects(readPostForm(cutOff(field('k', 'v')), contentType, LIMITS), (err) => err === abort)
    })

    test('while the file is read: the body error itself, from the file', async () => {
      const form = await readPostForm(
        cutOff(Buffer.concat([field('k', 'v'), filePart(randomBytes(1000)).subarray(0, 500)])),
        contentType,
        LIMITS,
      )
      await assert.rejects(readAll(form.file), (err) => err === abort)
    })
  })

  test('the file streams: the body is read only as far as the file is consumed', async () => {
    let produced = 0
    const total = 16 * 1024 * 1024
    async function* big(): AsyncGenerator<Buffer> {
      yield Buffer.concat([
        field('k', 'v'),
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big"\r\n\r\n`),
      ])
      for (let i = 0; i < total; i += 65536) {
        produced += 65536
        yield Buffer.alloc(65536, 1)
      }
      yield Buffer.concat([Buffer.from('\r\n'), end()])
    }
    const form = await readPostForm(big(), contentType, LIMITS)
    await new Promise((r) => setTimeout(r, 50))
    assert.ok(produced < 1024 * 1024, `the body waits for the file to be read (${produced} bytes read ahead)`)
    let size = 0
    let maxAhead = 0
    for await (const c of form.file) {
      size += c.length
      maxAhead = Math.max(maxAhead, produced - size)
    }
    assert.equal(size, total)
    assert.ok(maxAhead < 1024 * 1024, `read-ahead stays bounded (${maxAhead} bytes)`)
    assert.equal(await form.drain(1000), true)
  })

  test('close() stops reading: the rest of the body stays unread', async () => {
    let produced = 0
    async function* big(): AsyncGenerator<Buffer> {
      yield filePart(Buffer.alloc(0)).subarray(0, -2)
      for (;;) {
        produced++
        yield Buffer.alloc(65536, 1)
      }
    }
    const form = await readPostForm(big(), contentType, LIMITS)
    form.close()
    const before = produced
    await new Promise((r) => setTimeout(r, 50))
    assert.ok(produced - before <= 1, 'nothing more is read')
    await assert.rejects(readAll(form.file))
  })
})

describe('parseBoundary', () => {
  test('accepts only multipart/form-data, with a boundary of 1 to 70 characters', () => {
    assert.equal(parseBoundary('multipart/form-data; boundary="a b"'), 'a b')
    assert.equal(parseBoundary('multipart/form-data; boundary="a\\"b"'), 'a"b')
    assert.equal(parseBoundary('Multipart/Form-Data;boundary=abc'), 'abc')
    assert.equal(parseBoundary('multipart/form-data; charset=x; boundary=abc'), 'abc')
    assert.equal(parseBoundary(`multipart/form-data; boundary=${'b'.repeat(70)}`), 'b'.repeat(70))
    assert.equal(parseBoundary(`multipart/form-data; boundary=${'b'.repeat(71)}`), undefined)
    assert.equal(parseBoundary('multipart/form-data; boundary='), undefined)
    assert.equal(parseBoundary('multipart/mixed; boundary=abc'), undefined)
    assert.equal(parseBoundary(undefined), undefined)
  })
})
