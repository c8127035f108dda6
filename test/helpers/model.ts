/** A Garage model (tables + block manager + workers) on a temp dir, without any server. */
import { setMaxListeners } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { openLmdb } from '../../lib/db/lmdb.ts'
import { Garage } from '../../lib/model/garage.ts'
import { LocalReplication } from '../../lib/table/replication.ts'
import { BackgroundRunner } from '../../lib/util/background/worker.ts'
import { silentLogger } from '../../lib/util/logger.ts'

export async function startModel(
  t: TestContext,
  options: { gcDelayMsec?: number; blockSize?: number; blockWritesPerRequest?: number } = {},
): Promise<{ garage: Garage; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'garage-model-'))
  const db = await openLmdb(join(dir, 'meta'), { fsync: false })
  const local = new LocalReplication('self')
  const garage = new Garage({
    db,
    self: 'self',
    dataDir: join(dir, 'data'),
    dataFsync: false,
    blockSize: options.blockSize ?? 1024 * 1024,
    ...(options.blockWritesPerRequest === undefined ? {} : { blockWritesPerRequest: options.blockWritesPerRequest }),
    blockGcDelayMsec: options.gcDelayMsec ?? 50,
    allowPunycode: false,
    sharded: local,
    fullCopy: local,
    log: silentLogger,
  })
  const stop = new AbortController()
  // Every worker (up to eight resync workers among them) waits on this signal.
  setMaxListeners(0, stop.signal)
  const runner = new BackgroundRunner(silentLogger, stop.signal)
  garage.spawnWorkers(runner)
  t.after(async () => {
    stop.abort()
    await runner.join()
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })
  return { garage, dir }
}
