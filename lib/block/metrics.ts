/**
 * Counters of the block layer (the part of garage_block::metrics this port keeps): bytes
 * written to and read from disk or peers, and corrupt files found. One instance is shared by the
 * local store and the replicated I/O of a block manager; `BlockManager.stats()` reads it.
 * @internal
 */

/** @internal */
export class BlockMetrics {
  #bytesWritten = 0
  #bytesRead = 0
  #corruptions = 0

  /** Bytes of block files written by this process. */
  get bytesWritten(): number {
    return this.#bytesWritten
  }
  /** Bytes of blocks read, from local files or from other nodes. */
  get bytesRead(): number {
    return this.#bytesRead
  }
  /** Corrupt block files found by reads and the scrub. */
  get corruptions(): number {
    return this.#corruptions
  }

  wrote(bytes: number): void {
    this.#bytesWritten += bytes
  }
  read(bytes: number): void {
    this.#bytesRead += bytes
  }
  corruption(): void {
    this.#corruptions++
  }
}
