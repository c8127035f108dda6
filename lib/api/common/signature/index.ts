/**
 * AWS Signature V4 (and, for S3, V2) verification and request-body checks, shared by the S3 and K2V APIs.
 * Port of garage_api_common::signature.
 * @internal
 */
export {
  type Authenticated,
  canonicalHeaders,
  canonicalQueryString,
  canonicalRequest,
  canonicalUri,
  type RequestHead,
  SigningKeyCache,
  signingKey,
  stringToSign,
  type VerifyOptions,
  verifyRequest,
} from './sigv4.ts'
export {
  type AuthenticatedV2,
  canonicalAmzHeaders,
  canonicalResourceV2,
  isSignatureV2,
  type RequestHeadV2,
  signatureMatchesV2,
  signV2,
  stringToSignV2,
  type VerifyV2Options,
  verifyRequestV2,
} from './sigv2.ts'
export {
  type ChecksumCheck,
  type ChecksumCheckOptions,
  type ChecksumResult,
  checksumCheck,
  type RequestBodyOptions,
  type RequestBodyStages,
  requestBodyStages,
  sha256Check,
} from './body.ts'
export {
  type ChecksumAlgorithm,
  Checksummer,
  checksumHeaderName,
  parseChecksumHeaders,
  type RequestChecksums,
} from './checksum.ts'
export { type AwsChunkedDecoder, type AwsChunkedMode, type AwsChunkedOptions, awsChunkedDecoder } from './streaming.ts'
