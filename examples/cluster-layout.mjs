// Manage a 3-node cluster layout from code: three nodes in one process (as three machines would
// be, one per zone), joined by a shared rpc_secret, a layout staged and applied through
// `node.layout`, then an object written through one node and read through another.
// Run: node cluster-layout.mjs
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { createGarageNode } from 'garage-ts'

const root = await mkdtemp(join(tmpdir(), 'garage-cluster-'))
const rpcSecret = randomBytes(32).toString('hex')
const nodes = []
for (const zone of ['paris', 'berlin', 'lisbon']) {
  const node = createGarageNode({
    metadata_dir: join(root, zone, 'meta'),
    data_dir: join(root, zone, 'data'),
    replication_factor: 3,
    rpc_secret: rpcSecret,
    rpc_bind_addr: '127.0.0.1:0',
    // Every node after the first finds the cluster through the first one.
    bootstrap_peers: nodes.length === 0 ? [] : [nodes[0].node.rpcAddress],
    s3_api: { api_bind_addr: '127.0.0.1:0', s3_region: 'garage' },
  })
  await node.start()
  nodes.push({ zone, node })
}

// Stage one role per node (zone and capacity), then apply it as the next layout version.
const first = nodes[0].node
const version = first.layout.get().version + 1
await first.layout.stage({
  roles: nodes.map(({ zone, node }) => ({ id: node.nodeId, zone, capacity: 100 * 1024 ** 3, tags: [zone] })),
})
const applied = await first.layout.apply(version)
console.log(applied.messages.join('\n'))
const until = async (what, check) => {
  for (const deadline = Date.now() + 30_000; !(await check()); ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
await until('the layout on every node', () => nodes.every(({ node }) => node.layout.get().version >= version))

const key = await first.keys.create({ name: 'app' })
await first.buckets.create('shared')
await first.buckets.allowKey('shared', key.accessKeyId, { read: true, write: true })
const client = (node) =>
  new S3Client({
    endpoint: node.s3Endpoint,
    region: 'garage',
    forcePathStyle: true,
    credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey },
  })
const paris = client(nodes[0].node)
const lisbon = client(nodes[2].node)
await paris.send(new PutObjectCommand({ Bucket: 'shared', Key: 'hello.txt', Body: 'written in paris' }))
// The key reached lisbon's copy of the key table once a quorum wrote it; retry until it is there.
let text
await until('the object through lisbon', async () => {
  try {
    const obj = await lisbon.send(new GetObjectCommand({ Bucket: 'shared', Key: 'hello.txt' }))
    text = await obj.Body.transformToString()
    return true
  } catch {
    return false
  }
})
console.log(
  JSON.stringify({ layoutVersion: first.layout.get().version, roles: first.layout.get().roles.length, readInLisbon: text }),
)
paris.destroy()
lisbon.destroy()
for (const { node } of nodes.reverse()) await node.stop()
await rm(root, { recursive: true, force: true })
