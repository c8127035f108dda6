/**
 * What a K2V handler receives: the model, the request, the bucket the key may use, and its body.
 * @internal
 */
import type { IncomingMessage } from 'node:http'
import type { Garage } from '../../model/garage.ts'
import type { Uuid } from '../../util/data.ts'

/** @internal */
export interface K2vCtx {
  garage: Garage
  req: IncomingMessage
  bucketId: Uuid
  /** The whole body, its signature and checksums verified. */
  readBody(): Promise<Uint8Array>
  /** Aborted when the client goes away (ends polls early). */
  signal: AbortSignal
}
