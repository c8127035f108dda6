/** Small request bodies (XML documents) read whole, with a size limit. */
import type { Readable } from 'node:stream'
import { ApiError } from '../common/errors.ts'

export async function readBody(body: Readable, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = []
  let len = 0
  for await (const chunk of body as AsyncIterable<Buffer>) {
    len += chunk.length
    if (len > maxBytes) {
      body.destroy()
      throw new ApiError('EntityTooLarge', `request body larger than ${maxBytes} bytes`)
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}
