/**
 * Crash safety (issue 10): the server process is killed (SIGKILL) in the middle of a large upload
 * that overwrites an object: after a restart the previous object is intact, no partial object is
 * visible, and the blocks the interrupted upload had written are released. Then under load: eight
 * concurrent writers, a kill at a random moment, three rounds; every acknowledged object reads
 * back byte for byte, every listed object reads whole, no referenced block is missing and no
 * temporary block file survives the restart.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { blockHashes } from '../helpers/blocks.ts'
import { eventually } from '../helpers/eventually.ts'
import { rng } from '../helpers/random.ts'
import { type ServerProcess, sendSigned, startServerProcess } from '../helpers/server-process.ts'

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

// ---------------------------------------------------------------------------------------------
// Concurrent writers, SIGKILL at a random moment, three rounds.

const MiB = 1024 * 1024
const WRITERS = 8
const ROUNDS = 3

/** The body of one PUT: `size` bytes from mulberry32(`seed`), so it can be derived again. */
function content(seed: number, size: number): Buffer {
  const r = rng(seed)
  const words = new Uint32Array(Math.ceil(size / 4))
  for (let i = 0; i < words.length; i++) words[i] = Math.floor(r() * 0x1_0000_0000)
  return Buffer.from(words.buffer, 0, size)
}

interface Body {
  seed: number
  size: number
  sha: string
}

/**
 * What a key may hold after a crash: its last acknowledged body, or any body sent after it whose
 * PUT got no 200 (it may have been committed just before the kill).
 */
interface KeyState {
  acked: Body | undefined
  pending: Body[]
}

interface Listed {
  key: string
  size: number
}

function parseListing(xml: string): Listed[] {
  assert.doesNotMatch(xml, /<IsTruncated>true<\/IsTruncated>/, 'the listing fits in one page')
  return [...xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)].map((m) => {
    const body = m[1] as string
    return { key: /<Key>([^<]*)<\/Key>/.exec(body)?.[1] as string, size: Number(/<Size>(\d+)<\/Size>/.exec(body)?.[1]) }
  })
}

async function admin(server: ServerProcess, method: 'GET' | 'POST', name: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${server.adminEndpoint}/v2/${name}?node=self`, {
    method,
    headers: {
      authorization: `Bearer ${server.adminToken}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await res.text()
  assert.equal(res.status, 200, `${name}: ${text}`)
  const multi = JSON.parse(text) as { success: Record<string, unknown>; error: Record<string, string> }
  assert.deepEqual(multi.error, {}, `${name} failed on the node`)
  const answers = Object.values(multi.success)
  assert.equal(answers.length, 1)
  return answers[0]
}

async function tmpFiles(dir: string): Promise<string[]> {
  const all = await readdir(join(dir, 'data'), { recursive: true }).catch(() => [] as string[])
  return all.filter((f) => /\.tmp/.test(f))
}

/**
 * `garage repair blocks` (every referenced or stored block is checked by the resync), then the
 * blocks whose check failed: on a lone node, a referenced block with no file.
 */
async function repairAndListBlockErrors(server: ServerProcess): Promise<Array<{ blockHash: string; refcount: number }>> {
  await admin(server, 'POST', 'LaunchRepairOperation', { repairType: 'blocks' })
  const deadline = Date.now() + 15_000
  for (;;) {
    await sleep(100)
    const workers = (await admin(server, 'POST', 'ListWorkers', {})) as Array<{ name: string; state: string }>
    const repairing = workers.some((w) => /Block repair/.test(w.name) && w.state !== 'done')
    const stats = (await admin(server, 'GET', 'GetNodeStatistics')) as { freeform: string }
    const queued = Number(/resync queue length: (\d+)/.exec(stats.freeform)?.[1])
    const errors = (await admin(server, 'GET', 'ListBlockErrors')) as Array<{ blockHash: string; refcount: number }>
    // Done when every block was checked: only the failed ones stay queued, for their retry.
    if (!repairing && queued === errors.length) return errors
    assert.ok(Date.now() < deadline, `the block repair finishes (${queued} queued, ${errors.length} failed)`)
  }
}

test('SIGKILL under 8 concurrent writers, 3 rounds: every acknowledged object survives whole', async (t) => {
  const seed = Number(process.env.GARAGE_TEST_SEED ?? Math.floor(Math.random() * 0x7fff_ffff))
  t.diagnostic(`seed ${seed} (set GARAGE_TEST_SEED to replay the same bodies)`)
  const r = rng(seed)
  const options = {
    configLines: ['block_gc_delay_msec = 300'],
    admin: true,
    // Blocks referenced at a write are checked 200 ms later (not 3 min), failed checks retried soon.
    env: { GARAGE_TS_TEST_RESYNC_DELAY_MSEC: '200', GARAGE_TS_TEST_RESYNC_RETRY_MSEC: '200' },
  }
  let server = await startServerProcess(options)
  const dir = server.dir
  const credentials = server.credentials
  t.after(async () => {
    await server.kill({ keepDir: true })
    await rm(dir, { recursive: true, force: true })
  })
  const restart = async (): Promise<ServerProcess> => startServerProcess({ ...options, reuse: { dir, credentials } })

  const keys = new Map<string, KeyState>()
  let acks = 0
  let tmpSeen = 0

  /** Lists the bucket and reads every object back: each must be whole and one of its allowed bodies. */
  async function verify(s: ServerProcess, round: number): Promise<void> {
    const listRes = await sendSigned(s, 'GET', `/${s.bucket}`)
    assert.equal(listRes.statusCode, 200)
    const listed = parseListing((await readBody(listRes)).toString())
    const listedKeys = new Set(listed.map((l) => l.key))
    for (const [key, st] of keys) {
      if (st.acked !== undefined) assert.ok(listedKeys.has(key), `round ${round}: acknowledged ${key} is listed`)
    }
    const queue = [...listed]
    const reader = async (): Promise<void> => {
      for (let l = queue.shift(); l !== undefined; l = queue.shift()) {
        const st = keys.get(l.key)
        assert.ok(st !== undefined, `round ${round}: ${l.key} was never written`)
        const res = await sendSigned(s, 'GET', `/${s.bucket}/${l.key}`).catch((err: unknown) => {
          assert.fail(`round ${round}: ${l.key} is listed, so it can be read, but: ${(err as Error).message}`)
        })
        assert.equal(res.statusCode, 200, `round ${round}: ${l.key} is listed, so it can be read`)
        const back = await readBody(res).catch((err: unknown) => {
          assert.fail(`round ${round}: ${l.key} is read whole, but its body was cut short: ${(err as Error).message}`)
        })
        assert.equal(back.length, l.size, `round ${round}: ${l.key} is read whole (${back.length} of ${l.size} bytes)`)
        const candidates = [...(st.acked === undefined ? [] : [st.acked]), ...st.pending]
        const match = candidates.find((c) => c.size === back.length && c.sha === sha(back))
        assert.ok(
          match !== undefined,
          `round ${round}: ${l.key} holds ${st.acked === undefined ? 'one of its unacknowledged bodies' : 'its acknowledged body or a later one'}`,
        )
        // What survived a restart is now the object's state.
        keys.set(l.key, { acked: match, pending: [] })
      }
    }
    await Promise.all(Array.from({ length: 4 }, reader))
    for (const key of keys.keys()) if (!listedKeys.has(key)) keys.set(key, { acked: undefined, pending: [] })
  }

  for (let round = 0; round < ROUNDS; round++) {
    let stopping = false
    let roundAcks = 0
    const target = server
    const writer = async (w: number): Promise<void> => {
      let n = 0
      while (!stopping) {
        const own = [...keys.keys()].filter((k) => k.startsWith(`w${w}/`))
        // A quarter of the writes overwrite an earlier object of this writer.
        const key = own.length > 0 && r() < 0.25 ? (own[Math.floor(r() * own.length)] as string) : `w${w}/r${round}-${n++}`
        const bodySeed = Math.floor(r() * 0x7fff_ffff)
        const size = MiB + Math.floor(r() * 7 * MiB)
        const data = content(bodySeed, size)
        const body: Body = { seed: bodySeed, size, sha: sha(data) }
        const st = keys.get(key) ?? { acked: undefined, pending: [] }
        keys.set(key, st)
        st.pending.push(body)
        try {
          const res = await sendSigned(target, 'PUT', `/${target.bucket}/${key}`, {
            body: data,
            headers: { 'content-length': String(size) },
          })
          await readBody(res)
          if (res.statusCode === 200) {
            // Acknowledged: this body, or a later one, must be there after any crash.
            keys.set(key, { acked: body, pending: [] })
            acks++
            roundAcks++
          }
        } catch (err) {
          // The node was killed while this PUT was in flight: its body stays pending. Before the
          // kill, a failed PUT is the node's fault and fails the test.
          if (stopping) return
          throw err
        }
      }
    }
    const writers = Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)))
    writers.catch(() => {}) // awaited below, after the kill; a failure then fails the test
    // Kill at a random moment once writes are being acknowledged.
    const started = Date.now()
    while (roundAcks === 0) {
      assert.ok(Date.now() - started < 15_000, `round ${round}: writes are acknowledged`)
      await sleep(10)
    }
    await sleep(Math.floor(r() * 1500))
    stopping = true
    await server.kill({ keepDir: true })
    await writers
    const leftovers = await tmpFiles(dir)
    tmpSeen += leftovers.length
    t.diagnostic(`round ${round}: ${roundAcks} PUT(s) acknowledged, ${leftovers.length} temporary block file(s) left by the kill`)

    server = await restart()
    await verify(server, round)
    // The start-up check (a background worker) removes what the killed writes left.
    const deadline = Date.now() + 10_000
    for (let left = await tmpFiles(dir); left.length > 0; left = await tmpFiles(dir)) {
      assert.ok(Date.now() < deadline, `round ${round}: temporary block files are swept at start: ${left.join(', ')}`)
      await sleep(50)
    }
    // The walk reports them once it has gone through the whole store (it also checks each file
    // nothing references), which may be after the last temporary file went.
    if (leftovers.length > 0) {
      await eventually(
        'the sweep to report the temporary files it removed',
        () => /removed \d+ temporary block file/.test(server.output()),
        { timeoutMs: 10_000 },
      )
    }
  }
  t.diagnostic(`${acks} PUT(s) acknowledged in all, ${tmpSeen} temporary file(s) swept`)
  assert.ok(acks >= ROUNDS, 'each round had acknowledged writes')

  // No object row without its blocks: a block check finds nothing missing...
  assert.deepEqual(await repairAndListBlockErrors(server), [], 'no referenced block is missing')
  // ...and would: remove the first block of one acknowledged object, and the check reports it.
  const [victimKey, victim] = [...keys].find(([, st]) => st.acked !== undefined) as [string, KeyState]
  const first = content((victim.acked as Body).seed, (victim.acked as Body).size).subarray(0, MiB)
  const hash = blockHashes(first)[0] as string
  await rm(join(dir, 'data', hash.slice(0, 2), hash.slice(2, 4), hash))
  const errors = await repairAndListBlockErrors(server)
  assert.deepEqual(
    errors.map((e) => e.blockHash),
    [hash],
    `the missing first block of ${victimKey} is found`,
  )
  assert.ok((errors[0]?.refcount ?? 0) > 0)
})

// A one-block PUT into a bucket never versioned takes the one-round path (put.ts
// saveOneBlockOneRound: the block, then the version row, its reference and the object row in one
// transaction, on this node): a kill between the two leaves a block file nothing references,
// which the next start queues for deletion. With versioning, the two-round path (saveOneBlock:
// version row, reference and block while the key's row is read, then the object row): a kill
// between the two leaves a version no object lists, which the next start must delete.
for (const mode of ['one round (bucket never versioned)', 'two rounds (versioning enabled)'] as const) {
  test(`SIGKILL under writers of one-block objects, ${mode}: acknowledged ones survive, the blocks of the others are released`, async (t) => {
    const seed = Number(process.env.GARAGE_TEST_SEED ?? Math.floor(Math.random() * 0x7fff_ffff))
    t.diagnostic(`seed ${seed} (set GARAGE_TEST_SEED to replay the same bodies)`)
    const r = rng(seed)
    let server = await startServerProcess({ configLines: CONFIG })
    const dir = server.dir
    const credentials = server.credentials
    t.after(async () => {
      await server.kill({ keepDir: true })
      await rm(dir, { recursive: true, force: true })
    })
    if (mode.startsWith('two')) {
      const xml = Buffer.from('<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>')
      const res = await sendSigned(server, 'PUT', `/${server.bucket}`, { query: { versioning: '' }, body: xml })
      await readBody(res)
      assert.equal(res.statusCode, 200, 'versioning enabled')
    }
    const sent = new Map<string, Body>()
    const acked = new Set<string>()
    let stopping = false
    const writer = async (w: number): Promise<void> => {
      for (let n = 0; !stopping; n++) {
        const key = `one/w${w}-${n}`
        const body: Body = { seed: Math.floor(r() * 0x7fff_ffff), size: 4096 + Math.floor(r() * (MiB - 4096)), sha: '' }
        const data = content(body.seed, body.size)
        body.sha = sha(data)
        sent.set(key, body)
        try {
          const res = await sendSigned(server, 'PUT', `/${server.bucket}/${key}`, {
            body: data,
            headers: { 'content-length': String(body.size) },
          })
          await readBody(res)
          if (res.statusCode === 200) acked.add(key)
        } catch (err) {
          if (stopping) return
          throw err
        }
      }
    }
    const writers = Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)))
    writers.catch(() => {})
    const started = Date.now()
    while (acked.size === 0) {
      assert.ok(Date.now() - started < 15_000, 'writes are acknowledged')
      await sleep(10)
    }
    await sleep(Math.floor(r() * 1000))
    stopping = true
    await server.kill({ keepDir: true })
    await writers
    server = await startServerProcess({ configLines: CONFIG, reuse: { dir, credentials } })
    t.diagnostic(`${acked.size} PUT(s) acknowledged; ${/aborted (\d+) upload/.exec(server.output())?.[1] ?? 0} aborted at start`)

    const listRes = await sendSigned(server, 'GET', `/${server.bucket}`)
    const listed = parseListing((await readBody(listRes)).toString())
    const listedKeys = new Set(listed.map((l) => l.key))
    for (const key of acked) assert.ok(listedKeys.has(key), `acknowledged ${key} is listed`)
    const expected = new Set<string>()
    for (const l of listed) {
      const body = sent.get(l.key) as Body
      const back = await readBody(await sendSigned(server, 'GET', `/${server.bucket}/${l.key}`))
      assert.equal(sha(back), body.sha, `${l.key} reads back whole`)
      for (const h of blockHashes(back)) expected.add(h)
    }
    // Every block file left belongs to a listed object: those of the interrupted PUTs are released.
    const deadline = Date.now() + 15_000
    for (;;) {
      const files = (await blockFiles(dir)).map((f) => f.split('/').pop() as string)
      const extra = files.filter((f) => !expected.has(f))
      if (extra.length === 0 && files.length === expected.size) break
      assert.ok(Date.now() < deadline, `only the listed objects' blocks stay (${extra.length} other file(s) left)`)
      await sleep(50)
    }
  })
}
