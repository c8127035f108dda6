/**
 * Crash safety: the server process is killed (SIGKILL) in the middle of a large upload that
 * overwrites an object. After a restart the previous object is intact, no partial object is
 * visible, and the blocks the interrupted upload had written are released.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { sendSigned, startServerProcess } from '../helpers/server-process.ts'

async function blockFiles(dir: string): Promise<string[]> {
  const all = await readdir(join(dir, 'data'), { recursive: true }).catch(() => [] as string[])
  return all.filter((f) => /(^|\/)[0-9a-f]{64}$/.test(f))
}

async function readBody(res: import('node:http').IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of res as AsyncIterable<Buffer>) chunks.push(c)
  return Buffer.concat(chunks)
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const CONFIG = ['block_gc_delay_msec = 300']

test('SIGKILL during an upload leaves the previous object and releases the partial one', async (t) => {
  const first = await startServerProcess({ configLines: CONFIG })
  t.after(() => first.kill())
  const path = `/${first.bucket}/photos/big.bin`
  const original = randomBytes(3 * 1024 * 1024 + 17)
  const put = await sendSigned(first, 'PUT', path, { body: original, headers: { 'content-length': String(original.length) } })
  assert.equal(put.statusCode, 200, 'the first version is stored')
  await readBody(put)
  const before = await blockFiles(first.dir)
  assert.equal(before.length, 4, 'three full blocks and a short one')

  // Overwrite with a 64 MiB body sent slowly, and kill the server once part of it is on disk.
  const total = 64 * 1024 * 1024
  let sent = 0
  async function* slowBody(): AsyncGenerator<Uint8Array> {
    while (sent < total) {
      const chunk = randomBytes(256 * 1024)
      sent += chunk.length
      yield chunk
      if (sent > 8 * 1024 * 1024) await new Promise((r) => setTimeout(r, 20))
    }
  }
  const overwrite = sendSigned(first, 'PUT', path, { body: slowBody(), headers: { 'content-length': String(total) } }).then(
    (res) => ({ status: res.statusCode }),
    (err: unknown) => ({ error: err }),
  )
  const deadline = Date.now() + 20_000
  while ((await blockFiles(first.dir)).length < before.length + 4) {
    assert.ok(Date.now() < deadline, 'the overwrite writes blocks')
    await new Promise((r) => setTimeout(r, 25))
  }
  await first.kill({ keepDir: true })
  const outcome = await overwrite
  assert.ok(!('status' in outcome) || outcome.status !== 200, 'the interrupted upload was not acknowledged')
  assert.ok(sent < total, 'the kill happened mid-upload')

  const second = await startServerProcess({ configLines: CONFIG, reuse: { dir: first.dir, credentials: first.credentials } })
  t.after(() => second.kill())
  const get = await sendSigned(second, 'GET', path)
  assert.equal(get.statusCode, 200)
  const back = await readBody(get)
  assert.equal(back.length, original.length, 'the previous object is served whole')
  assert.equal(sha(back), sha(original), 'with its exact content')
  const list = await sendSigned(second, 'GET', `/${second.bucket}`)
  const xml = (await readBody(list)).toString()
  assert.equal((xml.match(/<Key>/g) ?? []).length, 1, 'a single object is listed')
  assert.match(xml, new RegExp(`<Size>${original.length}</Size>`), 'with the size of the previous version')
  assert.match(second.output(), /aborted 1 upload/, 'the interrupted upload is aborted at start')

  const gcDeadline = Date.now() + 15_000
  for (;;) {
    const files = await blockFiles(second.dir)
    if (files.length === before.length && files.every((f) => before.includes(f))) break
    assert.ok(Date.now() < gcDeadline, `the partial upload's blocks are deleted (${files.length} files left)`)
    await new Promise((r) => setTimeout(r, 50))
  }
  await second.stop()
})
