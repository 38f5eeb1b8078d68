// The bounded wait for a free upstream when every candidate is at max_conns.
/** A request waiting for a slot. */
export interface Waiter {
  /** Offered a slot: returns whether it took it (false: it still cannot go, and keeps its place). */
  onSlot: () => boolean
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
   * Queues a request: `onSlot` is offered each slot freed by a request in flight, in queue
   * order, `onTimeout` runs if it has not taken one `timeout` ms after it queued. Returns
   * undefined when the queue is full.
   */
  wait(onSlot: () => boolean, onTimeout: () => void): Waiter | undefined {
    if (this.#waiters.length >= this.size) return undefined
    const waiter: Waiter = { onSlot, onTimeout, timer: setTimeout(() => this.#expire(waiter), this.timeout) }
    this.#waiters.push(waiter)
    return waiter
  }

  /** Removes a waiter whose client went away. */
  cancel(waiter: Waiter): void {
    clearTimeout(waiter.timer)
    const i = this.#waiters.indexOf(waiter)
    if (i >= 0) this.#waiters.splice(i, 1)
  }

  /**
   * A request in flight finished: offer its slot to the waiters in order until one takes it.
   * One that cannot use it (its sticky upstream is still full, say) keeps its place and its
   * deadline, and the next is asked, so no request waits while an upstream it could use is free.
   */
  release(): void {
    // onSlot either starts a try (asynchronous from here on) or declines; neither changes the
    // queue before it returns, so the live array can be walked.
    for (const waiter of this.#waiters) {
      if (waiter.onSlot()) {
        this.cancel(waiter)
        return
      }
    }
  }

  #expire(waiter: Waiter): void {
    this.cancel(waiter)
    waiter.onTimeout()
  }
}
