/** A layout source for tests that build LayoutHelpers without a layout manager. */
import type { LayoutSource } from '../../lib/rpc/layout/helper.ts'
import type { LayoutHistory } from '../../lib/rpc/layout/history.ts'

/** A layout history the test sets (every listening LayoutHelper follows); records the versions marked synced. */
export class TestLayoutSource implements LayoutSource {
  #h: LayoutHistory
  readonly #listeners: Array<(h: LayoutHistory) => void> = []
  readonly synced: number[] = []
  constructor(h: LayoutHistory) {
    this.#h = h
  }
  history(): LayoutHistory {
    return this.#h
  }
  onChange(cb: (h: LayoutHistory) => void): void {
    this.#listeners.push(cb)
  }
  async markSynced(version: number): Promise<void> {
    this.synced.push(version)
  }
  set(h: LayoutHistory): void {
    this.#h = h
    for (const cb of this.#listeners) cb(h)
  }
}
