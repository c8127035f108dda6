/** What every S3 handler receives (Garage's ReqCtx). */
import type { IncomingMessage } from 'node:http'
import type { Readable } from 'node:stream'
import type { BucketParams } from '../../model/bucket-table.ts'
import type { Garage } from '../../model/garage.ts'
import type { ExistingKey } from '../../model/helper/key.ts'
import type { Uuid } from '../../util/data.ts'
import type { Logger } from '../../util/logger.ts'
import type { RequestContext } from '../common/server.ts'
import type { MasterKeyring } from './sse-s3.ts'
import type { ChecksumResult, RequestChecksums } from '../common/signature/body.ts'

export interface S3Settings {
  region: string
  rootDomain?: string
  /** SSE-S3 master keys (sse-s3.ts); undefined: SSE-S3 objects can be neither written nor read. */
  sseKeyring?: MasterKeyring | undefined
  /** Smallest size of every part but the last (`s3_api.min_part_size`); default 5 MiB. */
  minPartSize?: number
}

/** A request authenticated and resolved to a bucket the key may use. */
export interface BucketCtx {
  garage: Garage
  settings: S3Settings
  req: IncomingMessage
  request: RequestContext
  log: Logger
  /**
   * The request's key; undefined for an anonymous request, which only reaches the operations a
   * bucket policy or public-read ACL opens to anyone (policy.ts POLICY_GRANTABLE, PUBLIC_READ).
   */
  apiKey: ExistingKey | undefined
  bucketId: Uuid
  bucketName: string
  bucketParams: BucketParams
  /** The request payload, after signature and checksum verification layers. */
  body: Readable
  /** Digests, checksums and trailers of `body`, once it has been fully read and verified. */
  bodyResult: Promise<ChecksumResult>
  /** The request's checksum headers (`x-amz-checksum-*`, trailer, algorithm), parsed once. */
  checksums: RequestChecksums
  /** The request's Content-Encoding without the `aws-chunked` transfer token. */
  contentEncoding: string | undefined
}
