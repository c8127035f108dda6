/**
 * Bucket policies, the public-read ACL and anonymous access, through the AWS SDK and raw
 * unsigned requests on one node.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  DeleteBucketPolicyCommand,
  DeleteObjectCommand,
  GetBucketAclCommand,
  GetBucketOwnershipControlsCommand,
  GetBucketPolicyCommand,
  GetBucketPolicyStatusCommand,
  GetObjectAclCommand,
  PutBucketAclCommand,
  PutBucketPolicyCommand,
  PutObjectAclCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import type { TestNode } from '../../../lib/testing.ts'
import { getBytes, rawRequest, type RawResponse, s3Client, s3Error, useTestNode, xmlField } from '../../helpers/s3.ts'

let node: TestNode
let s3: S3Client

const BUCKET = 'policy-bucket'
useTestNode({ bucket: BUCKET }, (n, c) => {
  node = n
  s3 = c
})

const arn = (rest = ''): string => `arn:aws:s3:::${BUCKET}${rest}`
const putPolicy = (policy: unknown): Promise<unknown> =>
  s3.send(
    new PutBucketPolicyCommand({ Bucket: node.bucket, Policy: typeof policy === 'string' ? policy : JSON.stringify(policy) }),
  )
const deletePolicy = () => s3.send(new DeleteBucketPolicyCommand({ Bucket: node.bucket }))
const put = (key: string, body = key) => s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: key, Body: body }))

/** An unsigned request. */
const anon = (method: string, path: string, query?: Record<string, string>, body?: string): Promise<RawResponse> =>
  rawRequest(node, {
    method,
    path,
    credentials: null,
    ...(query === undefined ? {} : { query }),
    ...(body === undefined ? {} : { body }),
  })

const assertDenied = (r: RawResponse, what: string): void => {
  assert.equal(r.status, 403, `${what}: ${r.text}`)
  // A HEAD answer has no body to name the code.
  if (r.text !== '') assert.equal(xmlField(r.text, 'Code'), 'AccessDenied', what)
}

describe('PutBucketPolicy validation', () => {
  const stmt = (s: Record<string, unknown>) => ({
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: arn('/*'), ...s }],
  })
  const cases: Array<[string, unknown]> = [
    ['not JSON', '{"Version": '],
    ['not an object', '[]'],
    ['an unknown version', { ...stmt({}), Version: '2020-01-01' }],
    ['no statement', { Version: '2012-10-17' }],
    ['no principal', stmt({ Principal: undefined })],
    ['a bad effect', stmt({ Effect: 'Maybe' })],
    ['an unknown action', stmt({ Action: 's3:FlyToTheMoon' })],
    ['a non-s3 action', stmt({ Action: 'ec2:RunInstances' })],
    ['another bucket as resource', stmt({ Resource: 'arn:aws:s3:::someone-else/*' })],
    ['a resource that is no S3 ARN', stmt({ Resource: '*x' })],
    ['an object action on the bucket resource only', stmt({ Resource: arn() })],
    ['an unknown condition operator', stmt({ Condition: { NumericLessThan: { 's3:max-keys': '10' } } })],
    ['an unknown condition key', stmt({ Condition: { StringEquals: { 'aws:PrincipalOrgID': 'o-1' } } })],
    ['a bad IP range', stmt({ Condition: { IpAddress: { 'aws:SourceIp': '10.0.0.0/99' } } })],
    ['an unknown field', stmt({ Colour: 'blue' })],
    ['NotPrincipal', stmt({ NotPrincipal: '*' })],
  ]
  for (const [what, policy] of cases) {
    test(`${what} is 400 MalformedPolicy and stores nothing`, async () => {
      await assert.rejects(putPolicy(policy), s3Error('MalformedPolicy', 400))
      await assert.rejects(s3.send(new GetBucketPolicyCommand({ Bucket: node.bucket })), s3Error('NoSuchBucketPolicy', 404))
    })
  }

  test('a valid policy reads back as written; GetBucketPolicyStatus says whether it is public', async () => {
    const text = JSON.stringify(stmt({}))
    await putPolicy(text)
    const got = await s3.send(new GetBucketPolicyCommand({ Bucket: node.bucket }))
    assert.equal(got.Policy, text)
    const status = await s3.send(new GetBucketPolicyStatusCommand({ Bucket: node.bucket }))
    assert.equal(status.PolicyStatus?.IsPublic, true)
    await putPolicy(stmt({ Principal: { AWS: [node.key.accessKeyId] } }))
    const status2 = await s3.send(new GetBucketPolicyStatusCommand({ Bucket: node.bucket }))
    assert.equal(status2.PolicyStatus?.IsPublic, false)
    await deletePolicy()
    await assert.rejects(s3.send(new GetBucketPolicyCommand({ Bucket: node.bucket })), s3Error('NoSuchBucketPolicy', 404))
    // Deleting what is not there is 204, as on AWS.
    await deletePolicy()
  })
})

describe('anonymous access', () => {
  test('without a policy or ACL every anonymous request is AccessDenied, on known and unknown buckets', async () => {
    await put('anon/x')
    assertDenied(await anon('GET', `/${node.bucket}/anon/x`), 'GetObject')
    assertDenied(await anon('HEAD', `/${node.bucket}/anon/x`), 'HeadObject')
    assertDenied(await anon('GET', `/${node.bucket}`), 'ListObjects')
    assertDenied(await anon('PUT', `/${node.bucket}/anon/y`, undefined, 'y'), 'PutObject')
    assertDenied(await anon('GET', '/no-such-bucket-here/x'), 'an unknown bucket')
    assertDenied(await anon('GET', '/'), 'ListBuckets')
    assertDenied(await anon('PUT', '/anon-created-bucket'), 'CreateBucket')
  })

  test('an Allow to * opens the listed actions on the matching resources, and nothing else', async () => {
    await put('public/a', 'public a')
    await put('private/b', 'private b')
    await putPolicy({
      Version: '2012-10-17',
      Statement: [
        { Sid: 'read', Effect: 'Allow', Principal: '*', Action: ['s3:GetObject'], Resource: [arn('/public/*')] },
        {
          Sid: 'list',
          Effect: 'Allow',
          Principal: { AWS: '*' },
          Action: 's3:ListBucket',
          Resource: arn(),
          Condition: { StringLike: { 's3:prefix': 'public/*' } },
        },
      ],
    })
    try {
      const r = await anon('GET', `/${node.bucket}/public/a`)
      assert.equal(r.status, 200)
      assert.equal(r.text, 'public a')
      assert.equal((await anon('HEAD', `/${node.bucket}/public/a`)).status, 200)
      assertDenied(await anon('GET', `/${node.bucket}/private/b`), 'outside the resource')
      assertDenied(await anon('PUT', `/${node.bucket}/public/new`, undefined, 'new'), 'PutObject is not granted')
      assertDenied(await anon('DELETE', `/${node.bucket}/public/a`), 'DeleteObject is not granted')
      const list = await anon('GET', `/${node.bucket}`, { 'list-type': '2', prefix: 'public/' })
      assert.equal(list.status, 200, list.text)
      assert.match(list.text, /<Key>public\/a<\/Key>/)
      assertDenied(await anon('GET', `/${node.bucket}`, { 'list-type': '2' }), 'a listing without the prefix')
      assertDenied(await anon('GET', `/${node.bucket}`, { 'list-type': '2', prefix: 'private/' }), 'another prefix')
      assertDenied(await anon('GET', `/${node.bucket}`, { policy: '' }), 'GetBucketPolicy')
      assertDenied(await anon('PUT', `/${node.bucket}`, { policy: '' }, '{}'), 'PutBucketPolicy')
    } finally {
      await deletePolicy()
    }
    assertDenied(await anon('GET', `/${node.bucket}/public/a`), 'after DeleteBucketPolicy')
  })

  test('an Allow of s3:PutObject to * lets anonymous clients write, checked by Content-MD5 only', async () => {
    await putPolicy({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:PutObject', Resource: arn('/dropbox/*') }],
    })
    try {
      const r = await anon('PUT', `/${node.bucket}/dropbox/file`, undefined, 'dropped')
      assert.equal(r.status, 200, r.text)
      assert.equal((await getBytes(s3, node.bucket, 'dropbox/file')).toString(), 'dropped')
      assertDenied(await anon('GET', `/${node.bucket}/dropbox/file`), 'GetObject is not granted')
    } finally {
      await deletePolicy()
    }
  })

  test('the public-read ACL opens reads and listings; private closes them; public-read-write is refused', async () => {
    await put('acl/x', 'acl x')
    await s3.send(new PutBucketAclCommand({ Bucket: node.bucket, ACL: 'public-read' }))
    try {
      const r = await anon('GET', `/${node.bucket}/acl/x`)
      assert.equal(r.status, 200)
      assert.equal(r.text, 'acl x')
      assert.equal((await anon('GET', `/${node.bucket}`, { 'list-type': '2' })).status, 200)
      assertDenied(await anon('PUT', `/${node.bucket}/acl/y`, undefined, 'y'), 'PutObject')
      const acl = await s3.send(new GetBucketAclCommand({ Bucket: node.bucket }))
      assert.ok(
        acl.Grants?.some((g) => g.Grantee?.URI === 'http://acs.amazonaws.com/groups/global/AllUsers' && g.Permission === 'READ'),
        'GetBucketAcl shows AllUsers READ',
      )
      const objAcl = await s3.send(new GetObjectAclCommand({ Bucket: node.bucket, Key: 'acl/x' }))
      assert.equal(objAcl.Owner?.ID, node.key.accessKeyId)
    } finally {
      await s3.send(new PutBucketAclCommand({ Bucket: node.bucket, ACL: 'private' }))
    }
    assertDenied(await anon('GET', `/${node.bucket}/acl/x`), 'after private')
    await assert.rejects(
      s3.send(new PutBucketAclCommand({ Bucket: node.bucket, ACL: 'public-read-write' })),
      s3Error('AccessControlListNotSupported', 400),
    )
    await assert.rejects(
      s3.send(
        new PutBucketAclCommand({ Bucket: node.bucket, GrantRead: 'uri="http://acs.amazonaws.com/groups/global/AllUsers"' }),
      ),
      s3Error('AccessControlListNotSupported', 400),
    )
    await assert.rejects(
      s3.send(new PutObjectAclCommand({ Bucket: node.bucket, Key: 'acl/x', ACL: 'public-read' })),
      s3Error('AccessControlListNotSupported', 400),
    )
    await s3.send(new PutObjectAclCommand({ Bucket: node.bucket, Key: 'acl/x', ACL: 'private' }))
    await assert.rejects(
      s3.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'acl/z', Body: 'z', ACL: 'public-read-write' })),
      s3Error('AccessControlListNotSupported', 400),
    )
    const own = await s3.send(new GetBucketOwnershipControlsCommand({ Bucket: node.bucket }))
    assert.equal(own.OwnershipControls?.Rules?.[0]?.ObjectOwnership, 'BucketOwnerEnforced')
  })
})

describe('policies and keys', () => {
  test('an explicit Deny wins over the key permissions; the owner can still manage the policy', async () => {
    await put('deny/keep', 'kept')
    await putPolicy({
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Deny', Principal: { AWS: [node.key.accessKeyId] }, Action: 's3:DeleteObject', Resource: arn('/deny/*') },
        {
          Effect: 'Deny',
          Principal: '*',
          Action: 's3:*',
          Resource: [arn(), arn('/*')],
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        },
      ],
    })
    try {
      // Every request here is plain HTTP: the second statement denies them all …
      await assert.rejects(
        s3.send(new DeleteObjectCommand({ Bucket: node.bucket, Key: 'deny/keep' })),
        s3Error('AccessDenied', 403),
      )
      await assert.rejects(getBytes(s3, node.bucket, 'deny/keep'), s3Error('AccessDenied', 403))
      // … except the owner's policy management (AWS's lockout protection).
      const got = await s3.send(new GetBucketPolicyCommand({ Bucket: node.bucket }))
      assert.match(got.Policy ?? '', /SecureTransport/)
    } finally {
      await deletePolicy()
    }
    assert.equal((await getBytes(s3, node.bucket, 'deny/keep')).toString(), 'kept', 'the denied delete changed nothing')
  })

  test('a Deny by source IP range, and an Allow for another key without bucket permissions', async () => {
    await put('ip/x', 'ip x')
    const other = await node.node.keys.create({ name: 'policy-reader' })
    const reader = s3Client(node, { credentials: { accessKeyId: other.accessKeyId, secretAccessKey: other.secretAccessKey } })
    try {
      await assert.rejects(getBytes(reader, node.bucket, 'ip/x'), s3Error('AccessDenied', 403))
      await putPolicy({
        Version: '2012-10-17',
        Statement: [
          { Effect: 'Allow', Principal: { AWS: other.accessKeyId }, Action: 's3:GetObject', Resource: arn('/ip/*') },
          {
            Effect: 'Deny',
            Principal: '*',
            Action: 's3:PutObject',
            Resource: arn('/*'),
            Condition: { NotIpAddress: { 'aws:SourceIp': ['10.0.0.0/8', '192.168.0.0/16'] } },
          },
        ],
      })
      assert.equal((await getBytes(reader, node.bucket, 'ip/x')).toString(), 'ip x')
      await assert.rejects(
        reader.send(new PutObjectCommand({ Bucket: node.bucket, Key: 'ip/y', Body: 'y' })),
        s3Error('AccessDenied', 403),
      )
      // 127.0.0.1 is outside both ranges: the owner's writes are denied too.
      await assert.rejects(put('ip/z'), s3Error('AccessDenied', 403))
      await putPolicy({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Deny',
            Principal: '*',
            Action: 's3:PutObject',
            Resource: arn('/*'),
            Condition: { NotIpAddress: { 'aws:SourceIp': ['127.0.0.0/8', '::1/128'] } },
          },
        ],
      })
      await put('ip/z')
    } finally {
      reader.destroy()
      await deletePolicy()
    }
  })
})
