// A real S3 backend for your tests with node:test: `node --test testing/node-test.test.mjs`.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { startTestNode } from 'garage-ts/testing'

let store
let s3
before(async () => {
  store = await startTestNode() // temp dir, free port, a key and a bucket
  s3 = new S3Client(store.s3Config)
})
after(async () => {
  s3?.destroy()
  await store?.close() // stops the node, removes its files
})

test('what is put can be read back', async () => {
  await s3.send(new PutObjectCommand({ Bucket: store.bucket, Key: 'a.txt', Body: 'hello' }))
  const obj = await s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: 'a.txt' }))
  assert.equal(await obj.Body.transformToString(), 'hello')
})
