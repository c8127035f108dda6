/** Shared setup of the lib/net tests: in-memory node keys and listening transports on port 0. */
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto'
import type { TestContext } from 'node:test'
import { createNetApp, type NetApp, type NetAppOptions } from '../../lib/net/netapp.ts'
import type { NodeKey } from '../../lib/net/node-key.ts'
import type { Logger } from '../../lib/util/logger.ts'

export function memoryNodeKey(): NodeKey {
  const { privateKey } = generateKeyPairSync('ed25519')
  const pub = createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).subarray(-32)
  return { publicKey: new Uint8Array(pub), privateKey, id: pub.toString('hex') }
}

export const newSecret = (): string => randomBytes(32).toString('hex')

/** A logger recording warnings, for "logged once" checks. */
export function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = []
  const noop = (): void => {}
  const log = {
    warnings,
    debug: noop,
    info: noop,
    error: noop,
    warn: (m: unknown) => void warnings.push(String(m)),
    withTag: () => log,
  }
  return log
}

export async function startNode(
  t: TestContext,
  secret: string,
  extra: Partial<NetAppOptions> = {},
): Promise<{ net: NetApp; key: NodeKey; addr: { host: string; port: number } }> {
  const key = extra.nodeKey ?? memoryNodeKey()
  const net = createNetApp({ nodeKey: key, rpcSecret: secret, bindAddr: { host: '127.0.0.1', port: 0 }, ...extra })
  t.after(() => net.close())
  const addr = await net.listen()
  return { net, key, addr }
}

/** `count` bytes of a deterministic pattern, produced in chunks of `chunk` bytes. */
export async function* pattern(count: number, chunk = 100_000): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < count; o += chunk) {
    const n = Math.min(chunk, count - o)
    const b = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i++) b[i] = ((o + i) * 31 + 7) & 0xff
    yield b
  }
}
