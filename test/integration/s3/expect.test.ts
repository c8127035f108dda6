/**
 * `Expect` headers on the S3 API: an expectation other than `100-continue` is ignored (AWS's
 * behaviour; node:http alone would answer 417), `100-continue` still gets its interim answer.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { S3Client } from '@aws-sdk/client-s3'
import type { TestNode } from '../../../lib/testing.ts'
import { getBytes, rawRequest, useTestNode } from '../../helpers/s3.ts'

let node: TestNode
let s3: S3Client

useTestNode({}, (n, c) => {
  node = n
  s3 = c
})

test('PutObject with "Expect: something-else" is served normally', async () => {
  const r = await rawRequest(node, {
    method: 'PUT',
    path: `/${node.bucket}/expect/odd`,
    body: 'odd expectation',
    headers: { expect: 'something-else' },
  })
  assert.equal(r.status, 200, r.text)
  assert.equal((await getBytes(s3, node.bucket, 'expect/odd')).toString(), 'odd expectation')
})

test('CreateBucket with "Expect: 200-ok" is served normally', async () => {
  const r = await rawRequest(node, { method: 'PUT', path: '/expect-bucket', headers: { expect: '200-ok' } })
  assert.equal(r.status, 200, r.text)
  const head = await rawRequest(node, { method: 'HEAD', path: '/expect-bucket' })
  assert.equal(head.status, 200)
})
