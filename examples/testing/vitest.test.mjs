// A real S3 backend with Vitest: `npx vitest run testing/vitest.test.mjs`.
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { startTestNode } from 'garage-ts/testing'
import { afterAll, beforeAll, expect, test } from 'vitest'

let store
let s3
beforeAll(async () => {
  store = await startTestNode({ bucket: 'vitest-bucket' })
  s3 = new S3Client(store.s3Config)
}, 30_000)
afterAll(async () => {
  s3?.destroy()
  await store?.close()
})

test('what is put can be read back', async () => {
  await s3.send(new PutObjectCommand({ Bucket: store.bucket, Key: 'a.txt', Body: 'hello' }))
  const obj = await s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: 'a.txt' }))
  expect(await obj.Body.transformToString()).toBe('hello')
})
