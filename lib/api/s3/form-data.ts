/**
 * Reads a PostObject `multipart/form-data` body (RFC 7578) with busboy: the fields before the
 * part named `file` whole, each within a size limit, then that part as a stream whose chunks are
 * passed on as they arrive (busboy holds the body back while the file is not read), so an upload
 * of gigabytes never sits in memory. What follows the file is read and ignored, up to a limit.
 * (Garage uses the `multer` crate.) The only user of busboy.
 */
import type { Readable } from 'node:stream'
import busboy from 'busboy'
import { ApiError } from '../common/errors.ts'

/** The boundary of a `multipart/form-data` Content-Type, if it is one. */
export function parseBoundary(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined
  const [type = '', ...params] = splitParams(contentType)
  if (type.trim().toLowerCase() !== 'multipart/form-data') return undefined
  for (const p of params) {
    const { name, value } = p
    if (name === 'boundary' && value.length >= 1 && value.length <= 70) return value
  }
  return undefined
}

interface Param {
  name: string
  value: string
}

/** Splits `type; a=b; c="d;e"` into its first item and its parameters (names lowercase). */
function splitParams(header: string): [string, ...Param[]] {
  const items: string[] = []
  let cur = ''
  let quoted = false
  for (let i = 0; i < header.length; i++) {
    const c = header[i] as string
    if (quoted && c === '\\' && i + 1 < header.length) {
      cur += c + (header[i + 1] as string)
      i++
    } else if (c === '"') {
      quoted = !quoted
      cur += c
    } else if (c === ';' && !quoted) {
      items.push(cur)
      cur = ''
    } else {
      cur += c
    }
  }
  items.push(cur)
  const [first = '', ...rest] = items
  const params = rest.map((item) => {
    const eq = item.indexOf('=')
    const name = (eq < 0 ? item : item.slice(0, eq)).trim().toLowerCase()
    let value = eq < 0 ? '' : item.slice(eq + 1).trim()
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) {
      value = value.slice(1, -1).replace(/\\(.)/g, '$1')
    }
    return { name, value }
  })
  return [first, ...params]
}

function malformed(message: string, cause?: unknown): ApiError {
  return new ApiError(
    'MalformedPOSTRequest',
    `The body of your POST request is not well-formed multipart/form-data: ${message}`,
    {
      cause,
    },
  )
}

export interface PostFormLimits {
  /** Largest value of a field before the file, in bytes. */
  maxFieldSize: number
  /** Most fields before the file. */
  maxFields: number
}

/** A form read up to its file. */
export interface PostForm {
  /** The fields before the file: lowercase name → value (UTF-8, unless the part names a charset). */
  fields: Map<string, string>
  /** The file part's file name, as the client sent it; undefined if it gave none. */
  filename: string | undefined
  /**
   * The file's content, chunk by chunk. Throws MalformedPOSTRequest if the body ends before the
   * file's closing boundary, and the body's own error if the client goes away.
   */
  file: AsyncIterable<Buffer>
  /**
   * Reads and discards the rest of the body (fields after the file, the closing boundary), at
   * most `limit` bytes, so that the connection can serve another request. False if more is left.
   */
  drain(limit: number): Promise<boolean>
  /** Stops reading the body (after a failure): what is left stays unread. Idempotent. */
  close(): void
}

/**
 * Reads the fields of `body` up to the part named `file` (case-insensitive), which must come
 * last; fields after it are ignored. Fails with MalformedPOSTRequest (not a form, malformed
 * parts, body cut short), MaxPostPreDataLengthExceededError (a field over `maxFieldSize` bytes,
 * more than `maxFields` fields), InvalidArgument (no file, a field given twice), or the body's
 * error when the client goes away (so it is reported as an incomplete body).
 */
export function readPostForm(
  body: AsyncIterable<Buffer>,
  contentType: string | undefined,
  limits: PostFormLimits,
): Promise<PostForm> {
  const boundary = parseBoundary(contentType)
  if (boundary === undefined) {
    return Promise.reject(
      new ApiError('MalformedPOSTRequest', 'The body of your POST request is not well-formed multipart/form-data.'),
    )
  }
  return new PostFormReader(body, boundary, limits).form
}

/** Where reading the body stands. */
type Mode = 'fields' | 'file' | 'drain' | 'stopped'

class PostFormReader {
  readonly form: Promise<PostForm>
  readonly #bb: busboy.Busboy
  readonly #it: AsyncIterator<Buffer>
  readonly #limits: PostFormLimits
  readonly #fields = new Map<string, string>()
  /** Field parts seen before the file (the limit counts parts, not distinct names). */
  #count = 0
  /** Commits the fields in the order of their parts, though a part read as a stream ends later. */
  #chain: Promise<void> = Promise.resolve()
  #mode: Mode = 'fields'
  /** The error the body itself failed with (the client went away): reported as it is. */
  #bodyError: unknown
  #bodyEnded = false
  #resolve!: (form: PostForm) => void
  #reject!: (err: unknown) => void
  #settled = false
  /** The file's content was read to its end, or a part after it began. */
  #fileDone = false
  /** Drain budget, in bytes of body still to read. */
  #budget = 0
  /** Wakes the pump when it waits for busboy while the reader stops. */
  #wake: (() => void) | undefined
  readonly #pumped: Promise<void>

  constructor(body: AsyncIterable<Buffer>, boundary: string, limits: PostFormLimits) {
    this.#limits = limits
    this.form = new Promise<PostForm>((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
    // The boundary as parseBoundary read it, quoted, so that busboy cannot read another one.
    const quoted = `"${boundary.replace(/(["\\])/g, '\\$1')}"`
    this.#bb = busboy({
      headers: { 'content-type': `multipart/form-data; boundary=${quoted}` },
      // One more than allowed, so that going over is seen (busboy truncates or skips silently).
      limits: { fieldSize: limits.maxFieldSize + 1, fields: limits.maxFields + 1 },
      defParamCharset: 'utf8',
      preservePath: true,
    })
    this.#bb.on('field', (name, value, info) => this.#onField(name, value, info.valueTruncated))
    this.#bb.on('file', (name, stream, info) => this.#onFile(name, stream, info.filename))
    this.#bb.on('error', (err) => this.#fail(err))
    this.#bb.on('close', () => {
      void this.#chain.then(() => {
        if (this.#mode === 'fields')
          this.#fail(new ApiError('InvalidArgument', 'POST requires exactly one file upload per request.'))
      })
    })
    // Never `for await`: leaving that loop would destroy the request, and with it the socket
    // the answer goes out on. The rest of the body stays unread once reading stops.
    this.#it = body[Symbol.asyncIterator]()
    this.#pumped = this.#pump()
  }

  /** Feeds the body to busboy, a chunk at a time, as fast as busboy takes it. */
  async #pump(): Promise<void> {
    for (;;) {
      if (this.#mode === 'stopped') return
      let r: IteratorResult<Buffer>
      try {
        r = await this.#it.next()
      } catch (err) {
        this.#bodyError = err
        this.#mode = 'stopped'
        this.#bb.destroy(err as Error)
        this.#fail(err)
        return
      }
      if (r.done === true) {
        this.#bodyEnded = true
        if (!this.#bb.destroyed) this.#bb.end()
        return
      }
      const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value)
      // Past the file (read whole, or busboy refused what follows it): nothing more is read
      // until the handler drains the rest or stops.
      if (this.#mode === 'file' && (this.#fileDone || this.#bb.destroyed)) await this.#waitFor(() => {})
      if (this.#isStopped()) return
      if (this.#mode === 'drain') {
        this.#budget -= chunk.length
        if (this.#budget < 0) {
          this.#stop()
          return
        }
        // What follows the file is only drained, whatever busboy thinks of it.
        if (this.#bb.destroyed) continue
      }
      // Before the file, busboy is destroyed only by a failure, already reported.
      if (this.#bb.destroyed) return
      if (!this.#bb.write(chunk)) await this.#waitFor((done) => this.#bb.on('drain', done).on('close', done))
    }
  }

  #isStopped(): boolean {
    return this.#mode === 'stopped'
  }

  /** Waits until `arm`'s callback is called, or the reader drains or stops. */
  #waitFor(arm: (done: () => void) => void): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        this.#bb.off('drain', done)
        this.#bb.off('close', done)
        this.#wake = undefined
        resolve()
      }
      this.#wake = done
      arm(done)
    })
  }

  #stop(): void {
    if (this.#mode === 'stopped') return
    this.#mode = 'stopped'
    this.#wake?.()
    // Busboy's file stream, if any, ends with an error; nobody reads it any more.
    if (!this.#bb.destroyed) this.#bb.destroy()
  }

  #fail(err: unknown): void {
    if (this.#settled) return
    this.#settled = true
    this.#stop()
    this.#reject(this.#toApiError(err))
  }

  /** The body's own error as it is; our ApiErrors as they are; busboy's parse errors as malformed. */
  #toApiError(err: unknown): unknown {
    if (this.#bodyError !== undefined) return this.#bodyError
    if (err instanceof ApiError) return err
    const message = err instanceof Error ? err.message : String(err)
    return malformed(message.charAt(0).toLowerCase() + message.slice(1), err)
  }

  #commit(name: string, value: Promise<string>): void {
    // A value that fails fails the form at once, even while earlier parts are still pending.
    value.catch((err: unknown) => this.#fail(err))
    // The chain itself never rejects: a failure is the form's, reported by #fail.
    this.#chain = this.#chain
      .then(async () => {
        const v = await value
        if (this.#fields.has(name)) throw new ApiError('InvalidArgument', `Field '${name}' provided more than once`)
        this.#fields.set(name, v)
      })
      .catch((err: unknown) => this.#fail(err))
  }

  #tooLarge(name: string): ApiError {
    return new ApiError(
      'MaxPostPreDataLengthExceededError',
      `The form field '${name}' is larger than ${this.#limits.maxFieldSize} bytes`,
    )
  }

  /** Counts a field part before the file; false (and the form fails) over the limit. */
  #countField(): boolean {
    if (this.#count >= this.#limits.maxFields) {
      this.#fail(new ApiError('MaxPostPreDataLengthExceededError', 'Too many form fields'))
      return false
    }
    this.#count++
    return true
  }

  #onField(rawName: string | undefined, value: string | undefined, truncated: boolean): void {
    if (this.#mode !== 'fields') {
      this.#fileDone = true // a part after the file: ignored
      return
    }
    const name = rawName?.toLowerCase()
    if (name === undefined) this.#fail(malformed('a part has no name'))
    else if (name !== 'file' && !this.#countField()) return
    else if (truncated) this.#fail(this.#tooLarge(name))
    else if (value === undefined) this.#fail(malformed(`the charset of field '${name}' is not supported`))
    // A text part named `file` (no file name, not application/octet-stream) is the file.
    else if (name === 'file') this.#startFile(undefined, this.#textFile(value))
    else this.#commit(name, Promise.resolve(value))
  }

  #onFile(rawName: string | undefined, stream: Readable, filename: string | undefined): void {
    // Whoever reads the stream sees its error (the body cut short, or reading stopped) through
    // the stream's state; a stream nobody reads must not turn it into an uncaught 'error' event.
    stream.on('error', () => {})
    if (this.#mode !== 'fields') {
      this.#fileDone = true // a part after the file: ignored
      stream.resume()
      return
    }
    const name = rawName?.toLowerCase()
    if (name === undefined) this.#fail(malformed('a part has no name'))
    else if (name === 'file') this.#startFile(filename, this.#fileContent(stream))
    // A file part before the file is a field like any other (its file name is ignored).
    else if (this.#countField()) this.#commit(name, this.#readText(stream, name))
  }

  /** A part's content as text, at most `maxFieldSize` bytes. */
  #readText(stream: Readable, name: string): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = []
      let len = 0
      stream.on('data', (c: Buffer) => {
        len += c.length
        if (len > this.#limits.maxFieldSize) {
          stream.destroy()
          reject(this.#tooLarge(name))
        } else chunks.push(c)
      })
      stream.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
      stream.on('error', (err) => reject(this.#toApiError(err)))
    })
  }

  #startFile(filename: string | undefined, file: AsyncIterable<Buffer>): void {
    this.#mode = 'file'
    const form: PostForm = {
      fields: this.#fields,
      filename,
      file,
      drain: (limit) => this.#drain(limit),
      close: () => this.#stop(),
    }
    void this.#chain.then(() => {
      if (this.#settled) return
      this.#settled = true
      this.#resolve(form)
    })
  }

  async *#fileContent(stream: Readable): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of stream) yield chunk as Buffer
      this.#fileDone = true
    } catch (err) {
      throw this.#toApiError(err)
    }
  }

  async *#textFile(value: string): AsyncGenerator<Buffer> {
    yield Buffer.from(value, 'utf8')
    this.#fileDone = true
  }

  async #drain(limit: number): Promise<boolean> {
    if (this.#mode === 'file') {
      this.#mode = 'drain'
      this.#budget = limit
      this.#wake?.()
    }
    await this.#pumped
    return this.#bodyEnded
  }
}
