// A real S3 backend in Jest's default CommonJS mode: `npx jest testing/jest.test.cjs`.
const { GetObjectCommand, PutObjectCommand, S3Client } = require('@aws-sdk/client-s3')
const { startTestNode } = require('garage-ts/testing')

let store
let s3
beforeAll(async () => {
  store = await startTestNode({ bucket: 'jest-bucket' })
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
