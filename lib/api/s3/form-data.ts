/**
 * A streaming reader of `multipart/form-data` bodies (RFC 7578), for PostObject. Parts are read
 * in order: small fields whole, with a size limit, and the file part as a stream whose chunks
 * are passed on as they arrive, so an upload of gigabytes never sits in memory. Only the bytes
 * that might begin a boundary are held back between chunks. (Garage uses the `multer` crate.)
 */
import { ApiError } from '../common/errors.ts'

/** The head of one part: its field name, and the file name of a file part. */
export interface FormPartHead {
  name: string
  filename?: string
  contentType?: string
}

/** Part headers larger than this are refused. */
const MAX_PART_HEAD = 8 * 1024

function malformed(message: string): ApiError {
  return new ApiError('MalformedPOSTRequest', `The body of your POST request is not well-formed multipart/form-data: ${message}`)
}

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

type State = 'preamble' | 'body' | 'afterDelimiter' | 'end'

export class MultipartFormReader {
  readonly #it: AsyncIterator<Buffer>
  readonly #delimiter: Buffer
  /** Starts with CRLF so that the first boundary has the same form as the others. */
  #buf: Buffer = Buffer.from('\r\n')
  #eof = false
  #state: State = 'preamble'

  constructor(body: AsyncIterable<Buffer>, boundary: string) {
    this.#it = body[Symbol.asyncIterator]()
    this.#delimiter = Buffer.from(`\r\n--${boundary}`)
  }

  /** Appends the next chunk of the body to the buffer; false at the end of the body. */
  async #fill(): Promise<boolean> {
    if (this.#eof) return false
    const r = await this.#it.next()
    if (r.done === true) {
      this.#eof = true
      return false
    }
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value)
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk])
    return true
  }

  /**
   * Moves to the next part and returns its head, or undefined after the last one. Whatever was
   * left of the current part is skipped.
   */
  async nextPart(): Promise<FormPartHead | undefined> {
    if (this.#state === 'preamble' || this.#state === 'body') {
      for await (const _ of this.content()) {
        // skipped
      }
    }
    if (this.#state === 'end') return undefined
    // Right after a delimiter: `--` ends the body, otherwise optional blanks then CRLF.
    while (this.#buf.length < 2) {
      if (!(await this.#fill())) throw malformed('unexpected end of the body after a boundary')
    }
    if (this.#buf[0] === 0x2d && this.#buf[1] === 0x2d) {
      this.#state = 'end'
      return undefined
    }
    for (;;) {
      const eol = this.#buf.indexOf('\r\n')
      if (eol >= 0) {
        if (this.#buf.subarray(0, eol).toString('latin1').trim() !== '') throw malformed('garbage after a boundary')
        this.#buf = this.#buf.subarray(eol + 2)
        break
      }
      if (this.#buf.length > MAX_PART_HEAD) throw malformed('garbage after a boundary')
      if (!(await this.#fill())) throw malformed('unexpected end of the body after a boundary')
    }
    // Part headers, up to an empty line.
    let headEnd: number
    for (;;) {
      if (this.#buf.length >= 2 && this.#buf[0] === 0x0d && this.#buf[1] === 0x0a) {
        headEnd = 0
        break
      }
      headEnd = this.#buf.indexOf('\r\n\r\n')
      if (headEnd >= 0) {
        headEnd += 2
        break
      }
      if (this.#buf.length > MAX_PART_HEAD) throw malformed('part headers too large')
      if (!(await this.#fill())) throw malformed('unexpected end of the body in part headers')
    }
    const head = this.#buf.subarray(0, headEnd).toString('utf8')
    this.#buf = this.#buf.subarray(headEnd + 2)
    this.#state = 'body'
    return parsePartHead(head)
  }

  /** The content of the current part, chunk by chunk, up to the next boundary. */
  async *content(): AsyncGenerator<Buffer> {
    if (this.#state !== 'body' && this.#state !== 'preamble') return
    const delim = this.#delimiter
    for (;;) {
      const at = this.#buf.indexOf(delim)
      if (at >= 0) {
        const data = this.#buf.subarray(0, at)
        this.#buf = this.#buf.subarray(at + delim.length)
        this.#state = 'afterDelimiter'
        if (data.length > 0) yield data
        return
      }
      // Everything but a possible start of the delimiter can be passed on.
      const safe = this.#buf.length - (delim.length - 1)
      if (safe > 0) {
        const data = this.#buf.subarray(0, safe)
        this.#buf = this.#buf.subarray(safe)
        yield data
      }
      if (!(await this.#fill())) throw malformed('unexpected end of the body (missing closing boundary)')
    }
  }

  /**
   * Reads and discards the rest of the body, at most `limit` bytes (fields after the file, the
   * closing boundary), so that the connection can serve another request. False if more is left.
   */
  async drain(limit: number): Promise<boolean> {
    let read = 0
    this.#buf = Buffer.alloc(0)
    while (read <= limit) {
      const r = await this.#it.next()
      if (r.done === true) return true
      read += r.value.length
    }
    return false
  }

  /** The content of the current part as text; longer than `limit` bytes is an error. */
  async readText(limit: number, name: string): Promise<string> {
    const chunks: Buffer[] = []
    let len = 0
    for await (const c of this.content()) {
      len += c.length
      if (len > limit) {
        throw new ApiError('MaxPostPreDataLengthExceededError', `The form field '${name}' is larger than ${limit} bytes`)
      }
      chunks.push(c)
    }
    return Buffer.concat(chunks).toString('utf8')
  }
}

function parsePartHead(head: string): FormPartHead {
  let disposition: string | undefined
  let contentType: string | undefined
  for (const line of head.split('\r\n')) {
    if (line === '') continue
    const colon = line.indexOf(':')
    if (colon <= 0) throw malformed('invalid part header')
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (name === 'content-disposition') disposition = value
    else if (name === 'content-type') contentType = value
  }
  if (disposition === undefined) throw malformed('a part has no Content-Disposition')
  const [type = '', ...params] = splitParams(disposition)
  if (type.trim().toLowerCase() !== 'form-data') throw malformed('a part is not form-data')
  const out: FormPartHead = { name: '' }
  let hasName = false
  for (const p of params) {
    if (p.name === 'name') {
      out.name = p.value
      hasName = true
    } else if (p.name === 'filename') out.filename = p.value
  }
  if (!hasName) throw malformed('a part has no name')
  if (contentType !== undefined) out.contentType = contentType
  return out
}
