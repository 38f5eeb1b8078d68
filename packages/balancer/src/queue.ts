/** A request waiting for a slot. */
export interface Waiter {
  onSlot: () => void
  onTimeout: () => void
  timer: NodeJS.Timeout
}

/**
 * The bounded wait for a free upstream when every candidate is at `max_conns` (nginx Plus
 * `queue`, HAProxy's per-backend queue): first come, first served, at most `size` waiting,
 * each for at most `timeout` ms. One queue per pool.
 */
export class WaitQueue {
  size: number
  timeout: number
  readonly #waiters: Waiter[] = []

  constructor(size: number, timeout: number) {
    this.size = size
    this.timeout = timeout
  }

  get length(): number {
    return this.#waiters.length
  }

  /**
   * Queues a request: `onSlot` runs when a request in flight finishes, `onTimeout` if none
   * does in time. Returns undefined when the queue is full. `front` puts back a request that
   * was woken but found every upstream full again, so that it keeps its place.
   */
  wait(onSlot: () => void, onTimeout: () => void, front = false): Waiter | undefined {
    if (!front && this.#waiters.length >= this.size) return undefined
    const waiter: Waiter = { onSlot, onTimeout, timer: setTimeout(() => this.#expire(waiter), this.timeout) }
    if (front) this.#waiters.unshift(waiter)
    else this.#waiters.push(waiter)
    return waiter
  }

  /** Removes a waiter whose client went away. */
  cancel(waiter: Waiter): void {
    clearTimeout(waiter.timer)
    const i = this.#waiters.indexOf(waiter)
    if (i >= 0) this.#waiters.splice(i, 1)
  }

  /** A request in flight finished: wake the first waiter, if any. */
  release(): void {
    const waiter = this.#waiters.shift()
    if (waiter === undefined) return
    clearTimeout(waiter.timer)
    waiter.onSlot()
  }

  #expire(waiter: Waiter): void {
    this.cancel(waiter)
    waiter.onTimeout()
  }
}
