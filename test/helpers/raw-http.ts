/**
 * Raw HTTP/1.1 for the fuzzer and the bad-input tables: an HTTP/1.1 request as plain data (so any byte of it can be mutated,
 * including ones node:http would refuse to send), written on a raw socket with a chosen framing,
 * and the answer read back as far as it goes.
 */
import { connect } from 'node:net'

/** How the request's bytes are delivered. */
export type Framing =
  /** All at once; the client then waits for the answer (the request says `connection: close`). */
  | { kind: 'whole' }
  /** The head and the first `at` bytes of the body, then the client half-closes its side. */
  | { kind: 'truncate'; at: number }
  /** The head and the first `at` bytes of the body, then the connection is reset. */
  | { kind: 'reset'; at: number }
  /** The whole request in `pieces` writes, `delayMs` apart (a slow client). */
  | { kind: 'slow'; pieces: number; delayMs: number }
  /** The whole request, then the client half-closes at once (before any answer). */
  | { kind: 'half-close' }
  /** The same request `copies` times back to back on one connection (pipelining). */
  | { kind: 'pipelined'; copies: number }

export interface RawHttp {
  method: string
  /** The request target exactly as sent (path and query, already encoded, or not). */
  target: string
  /** In order; repeats allowed; values may hold any bytes. */
  headers: Array<[string, string | Buffer]>
  body: Buffer
  framing: Framing
}

export interface Outcome {
  /** The first answer's status, 0 if none came. */
  status: number
  /** The S3 (`<Code>`) or admin (`"code"`) error code, if any. */
  code: string | undefined
  /** How many status lines came back (pipelining). */
  answers: number
  /** The client gave up waiting (no close within the time limit). */
  timedOut: boolean
  /** The beginning of the answer, for reports. */
  excerpt: string
  /** The first answer's header block. */
  head: string
}

export function header(r: RawHttp, name: string): string | undefined {
  const h = r.headers.find(([n]) => n.toLowerCase() === name)
  return h === undefined ? undefined : h[1].toString('latin1')
}

export function setHeader(r: RawHttp, name: string, value: string | Buffer): void {
  const i = r.headers.findIndex(([n]) => n.toLowerCase() === name)
  if (i < 0) r.headers.push([name, value])
  else r.headers[i] = [name, value]
}

export function serialize(r: RawHttp): { head: Buffer; body: Buffer } {
  const parts: Buffer[] = [Buffer.from(`${r.method} ${r.target} HTTP/1.1\r\n`, 'latin1')]
  for (const [name, value] of r.headers) {
    parts.push(
      Buffer.from(`${name}: `, 'latin1'),
      typeof value === 'string' ? Buffer.from(value, 'latin1') : value,
      Buffer.from('\r\n'),
    )
  }
  parts.push(Buffer.from('\r\n'))
  return { head: Buffer.concat(parts), body: r.body }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Sends `r` to `host:port` and collects the answer until the server closes (or `timeoutMs`). */
export function send(host: string, port: number, r: RawHttp, timeoutMs: number): Promise<Outcome> {
  const { head, body } = serialize(r)
  return new Promise<Outcome>((resolve) => {
    const socket = connect({ host, port, allowHalfOpen: true })
    const chunks: Buffer[] = []
    let timedOut = false
    let settled = false
    const timer = setTimeout(() => {
      timedOut = true
      socket.destroy()
    }, timeoutMs)
    const finish = (): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      const text = Buffer.concat(chunks).toString('utf8')
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0)
      const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? /"code"\s*:\s*"([^"]*)"/.exec(text)?.[1]
      const answers = text.match(/(^|\r\n)HTTP\/1\.[01] \d{3}/g)?.length ?? 0
      const end = text.indexOf('\r\n\r\n')
      resolve({ status, code, answers, timedOut, excerpt: text.slice(0, 600), head: end < 0 ? text : text.slice(0, end) })
    }
    // Answers expected before the client may hang up itself (the server keeps the connection open
    // when a mutation dropped `connection: close`).
    const expected = r.framing.kind === 'pipelined' ? r.framing.copies : 1
    socket.on('data', (c: Buffer) => {
      chunks.push(c)
      if (completeAnswers(Buffer.concat(chunks), r.method === 'HEAD') >= expected) socket.destroy()
    })
    socket.on('end', () => socket.end())
    socket.on('error', () => undefined) // ECONNRESET / EPIPE: whatever arrived is the answer
    socket.on('close', finish)
    socket.on('connect', () => {
      void (async () => {
        const f = r.framing
        switch (f.kind) {
          case 'whole':
            socket.write(Buffer.concat([head, body]))
            break
          case 'half-close':
            socket.end(Buffer.concat([head, body]))
            break
          case 'truncate':
            socket.end(Buffer.concat([head, body.subarray(0, f.at)]))
            break
          case 'reset':
            socket.write(Buffer.concat([head, body.subarray(0, f.at)]), () => socket.resetAndDestroy())
            break
          case 'pipelined': {
            // Every copy but the last keeps the connection open, so each gets an answer.
            const keep = serialize({
              ...r,
              headers: r.headers.map(([n, v]): [string, string | Buffer] =>
                n.toLowerCase() === 'connection' ? [n, 'keep-alive'] : [n, v],
              ),
            })
            const first = Buffer.concat([keep.head, keep.body])
            socket.write(Buffer.concat([...Array.from({ length: f.copies - 1 }, () => first), head, body]))
            break
          }
          case 'slow': {
            const all = Buffer.concat([head, body])
            const step = Math.max(1, Math.ceil(all.length / f.pieces))
            for (let o = 0; o < all.length && !socket.destroyed; o += step) {
              socket.write(all.subarray(o, o + step))
              await sleep(f.delayMs)
            }
            break
          }
        }
      })()
    })
  })
}

/** How many complete HTTP/1.1 answers `buf` holds (bodies framed by content-length or chunked). */
export function completeAnswers(buf: Buffer, head: boolean): number {
  let n = 0
  let at = 0
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', at)
    if (end < 0) return n
    const headText = buf.subarray(at, end).toString('latin1')
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(headText)?.[1] ?? 0)
    let next = end + 4
    if (!head && status !== 204 && status !== 304 && status >= 200) {
      const length = /^content-length: *(\d+)/im.exec(headText)?.[1]
      if (length !== undefined) next += Number(length)
      else if (/^transfer-encoding: *chunked/im.test(headText)) {
        const last = buf.indexOf('\r\n0\r\n\r\n', end)
        if (last < 0) return n
        next = last + 7
      } else return n // delimited by the close
    }
    if (next > buf.length) return n
    n++
    at = next
  }
}
