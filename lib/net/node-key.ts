/**
 * The node's Ed25519 identity, created at first start in `metadata_dir` (files `node_key`, the
 * 64-byte secret in libsodium's layout seed ‖ public key, and `node_key.pub`). The node id is the
 * public key. Port of garage_rpc::system::gen_node_key.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CorruptDataError } from '../util/errors.ts'

export interface NodeKey {
  /** 32-byte Ed25519 public key. */
  publicKey: Uint8Array
  privateKey: KeyObject
  /** The public key in hex: the node id. */
  id: string
}

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

export async function loadOrCreateNodeKey(metadataDir: string): Promise<NodeKey> {
  const path = join(metadataDir, 'node_key')
  let raw: Buffer | undefined
  try {
    raw = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  if (raw === undefined) {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519')
    const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_ED25519_PREFIX.length)
    const pub = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)
    await mkdir(metadataDir, { recursive: true })
    await writeFile(path, Buffer.concat([seed, pub]), { mode: 0o600 })
    await writeFile(join(metadataDir, 'node_key.pub'), pub, { mode: 0o644 })
    raw = Buffer.concat([seed, pub])
  }
  if (raw.length !== 64) throw new CorruptDataError(`${path} is not a 64-byte Ed25519 secret key`)
  const privateKey = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519_PREFIX, raw.subarray(0, 32)]),
    format: 'der',
    type: 'pkcs8',
  })
  const pub = createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).subarray(-32)
  if (!pub.equals(raw.subarray(32))) throw new CorruptDataError(`${path}: public half does not match the secret`)
  return { publicKey: new Uint8Array(pub), privateKey, id: pub.toString('hex') }
}
