/**
 * The access key behind a signed request, shared by the S3 and K2V servers.
 *
 * The signature check is synchronous and first runs on the local copy of the key table (the hot
 * path). When it fails because the key is not there, the key is resolved with the model's policy
 * (`garage.access`: quorum on a local miss in a cluster, unknown ids cached) and the check runs
 * again.
 */
import type { AccessResolver } from '../../model/helper/access.ts'
import type { ExistingKey } from '../../model/helper/key.ts'
import { ApiError } from './errors.ts'
import type { RequestContext } from './server.ts'

/** The secret of an access key id, or undefined when the key is unknown. */
export type SecretLookup = (accessKeyId: string) => string | undefined

export interface Authentication<A> {
  /** What the signature check returned; undefined: an anonymous request (no signature at all). */
  auth: A | undefined
  /** The request's key, checked active; undefined for an anonymous request. */
  key: ExistingKey | undefined
}

/**
 * Runs `verify` with a secret lookup over the local key table, then once more after resolving a
 * key that was missing there. Sets `request.accessKeyId` for the access log. Throws the check's
 * error, `InvalidAccessKeyId` for a key that exists nowhere, or the key's own refusal (expired).
 */
export async function authenticate<A extends { accessKeyId: string }>(
  access: AccessResolver,
  request: RequestContext,
  verify: (lookupSecret: SecretLookup) => A | undefined,
): Promise<Authentication<A>> {
  let fetched: ExistingKey | undefined
  let missing: string | undefined
  // The key the signature was checked with, kept so that its row is read and decoded once.
  let looked: ExistingKey | undefined
  const lookupSecret: SecretLookup = (id) => {
    const k = fetched?.id === id ? fetched : access.localKey(id)
    if (k === undefined) missing = id
    looked = k
    return k?.state.value.secret
  }
  let auth: A | undefined
  try {
    auth = verify(lookupSecret)
  } catch (err) {
    if (missing === undefined) throw err
    fetched = await access.resolveKey(missing)
    if (fetched === undefined) throw err
    auth = verify(lookupSecret)
  }
  if (auth === undefined) return { auth, key: undefined }
  request.accessKeyId = auth.accessKeyId
  const key =
    fetched?.id === auth.accessKeyId ? fetched : looked?.id === auth.accessKeyId ? looked : access.localKey(auth.accessKeyId)
  if (key === undefined) throw new ApiError('InvalidAccessKeyId', 'The access key ID you provided does not exist in our records.')
  access.checkKeyActive(key)
  return { auth, key }
}
