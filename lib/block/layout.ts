/**
 * Where block files live among the data directories (port of garage_block::layout). The block
 * manager asks this for the path to write a new block to and the paths to look for an existing
 * one; it never builds block paths itself.
 *
 * Today a single directory: `<dir>/<hex hash[0]>/<hex hash[1]>/<64-hex hash>`. Several
 * directories with capacities (Garage's 1024 drive partitions) plug in behind the same interface.
 */
import { join } from 'node:path'
import type { Hash } from '../util/data.ts'
import { toHex } from '../util/data.ts'

export interface BlockPaths {
  /** Path a new copy of `hash` is written to (its primary directory). */
  primaryPath(hash: Hash): string
  /** Every path where `hash` may already be stored, primary first. */
  candidatePaths(hash: Hash): string[]
  /** Every data directory, to scan (scrub, repair blocks). */
  readonly dirs: readonly string[]
}

/** The path of a block file inside one data directory. */
export function blockPathIn(dir: string, hash: Hash): string {
  const hex = toHex(hash)
  return join(dir, hex.slice(0, 2), hex.slice(2, 4), hex)
}

/** One data directory. */
export class SingleDirPaths implements BlockPaths {
  readonly dirs: readonly string[]
  constructor(dir: string) {
    this.dirs = [dir]
  }
  primaryPath(hash: Hash): string {
    return blockPathIn(this.dirs[0] as string, hash)
  }
  candidatePaths(hash: Hash): string[] {
    return [this.primaryPath(hash)]
  }
}
