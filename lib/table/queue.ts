/**
 * Drains a table's persistent insert queue (port of garage_table::queue). Cross-table effects are
 * written to the queue in the transaction that causes them, so a crash between two steps loses
 * nothing: the worker inserts them through the normal write path, then removes them.
 */
import { Notify, type Worker, type WorkerState } from '../util/background/worker.ts'
import type { Table } from './table.ts'

const BATCH_SIZE = 1024

export class InsertQueueWorker<E> implements Worker {
  readonly name: string
  readonly #table: Table<E>
  readonly #notify = new Notify()
  constructor(table: Table<E>) {
    this.#table = table
    this.name = `${table.name} queue`
    table.onQueued = () => this.#notify.notify()
  }
  async work(): Promise<WorkerState> {
    const items = this.#table.data.peekQueue(BATCH_SIZE)
    if (items.length === 0) return 'idle'
    await this.#table.insertMany(items.map((i) => i.entry))
    this.#table.data.dequeue(items)
    return 'busy'
  }
  waitForWork(signal: AbortSignal): Promise<void> {
    return this.#notify.wait(signal, 10_000)
  }
  info(): Record<string, number> {
    return { queueLength: this.#table.data.insertQueue.count() }
  }
}
