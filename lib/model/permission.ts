/** Per key and bucket permissions (port of garage_model::permission). */
import type { Merge } from '../util/crdt/crdt.ts'

export interface BucketKeyPerm {
  /** When these flags were set; the newest setting wins. */
  ts: number
  read: boolean
  write: boolean
  owner: boolean
}

export const NO_PERMISSIONS = { read: false, write: false, owner: false } as const
export const ALL_PERMISSIONS = { read: true, write: true, owner: true } as const

/** Newest wins; on equal timestamps a permission is kept only if both sides grant it. */
export const mergePerm: Merge<BucketKeyPerm> = (a, b) => {
  if (a.ts > b.ts) return a
  if (b.ts > a.ts) return b
  return { ts: a.ts, read: a.read && b.read, write: a.write && b.write, owner: a.owner && b.owner }
}

export const permIsAny = (p: BucketKeyPerm): boolean => p.read || p.write || p.owner
