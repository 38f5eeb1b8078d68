// The cache lock (nginx `proxy_cache_lock`): one fetch per key at a time, the others waiting for it; and the memory of keys whose fetch could not be stored (Varnish's hit-for-miss).

/**
 * How a fetch others waited on ended:
 * - `stored`: its response is in the store: serve it;
 * - `uncacheable`: its response may not be stored: go upstream at once, each on its own;
 * - `failed`: it got no whole response (an error, a cut body, its client left): go upstream.
 */
export type FillOutcome = 'stored' | 'uncacheable' | 'failed'

/** One request waiting on a fill: told the outcome, or `timeout` once it waited too long. */
type Waiter = (outcome: FillOutcome | 'timeout') => void

/**
 * One upstream fetch of a key that other requests for the key wait on. Waiters are told once,
 * each: the outcome, or `timeout` after `timeout` ms (nginx's `proxy_cache_lock_timeout`; past it
 * a request goes upstream itself and its response is not stored).
 */
export class Fill {
  readonly key: string
  /** Set by a purge while the fetch runs: what it brings is not stored. */
  purged = false
  #outcome: FillOutcome | undefined
  readonly #waiters = new Map<Waiter, NodeJS.Timeout>()
  readonly #locks: Locks

  constructor(locks: Locks, key: string) {
    this.#locks = locks
    this.key = key
  }

  /** How it ended; undefined while it runs. */
  get outcome(): FillOutcome | undefined {
    return this.#outcome
  }

  /** Requests waiting now. */
  get waiting(): number {
    return this.#waiters.size
  }

  /** Waits for the outcome, at most `timeout` ms. Returns a function that stops waiting, untold. */
  wait(waiter: Waiter, timeout: number): () => void {
    const timer = setTimeout(() => {
      this.#waiters.delete(waiter)
      waiter('timeout')
    }, timeout)
    this.#waiters.set(waiter, timer)
    return () => {
      clearTimeout(timer)
      this.#waiters.delete(waiter)
    }
  }

  /** Ends the fill: the key is free again, and every waiter is told. Later calls do nothing. */
  settle(outcome: FillOutcome): void {
    if (this.#outcome !== undefined) return
    this.#outcome = outcome
    this.#locks.release(this)
    const waiters = [...this.#waiters]
    this.#waiters.clear()
    for (const [waiter, timer] of waiters) {
      clearTimeout(timer)
      waiter(outcome)
    }
  }
}

/** The fills running, by key. */
export class Locks {
  readonly #fills = new Map<string, Fill>()

  /** The fill running for `key`, if any. */
  get(key: string): Fill | undefined {
    return this.#fills.get(key)
  }

  /** Starts a fill for `key`; the caller must have found none running. */
  acquire(key: string): Fill {
    const fill = new Fill(this, key)
    this.#fills.set(key, fill)
    return fill
  }

  release(fill: Fill): void {
    if (this.#fills.get(fill.key) === fill) this.#fills.delete(fill.key)
  }

  /** Marks the running fills whose key `matches` as purged: what they fetch is not stored. */
  purge(matches: (key: string) => boolean): void {
    for (const fill of this.#fills.values()) if (matches(fill.key)) fill.purged = true
  }
}

/**
 * Keys whose last fetch could not be stored, remembered for `ttl` ms (Varnish's hit-for-miss,
 * 120 s in its builtin.vcl): their requests go upstream at once, each on its own, instead of
 * queueing behind a lock whose outcome is known. At most `max` keys; the oldest is forgotten first.
 */
export class HitForMiss {
  readonly #until = new Map<string, number>()
  readonly #ttl: number
  readonly #max: number

  constructor(ttl: number, max = 10_000) {
    this.#ttl = ttl
    this.#max = max
  }

  get size(): number {
    return this.#until.size
  }

  add(key: string, now: number): void {
    this.#until.delete(key)
    this.#until.set(key, now + this.#ttl)
    if (this.#until.size > this.#max) this.#until.delete(this.#until.keys().next().value as string)
  }

  /** Whether `key` is remembered as uncacheable at `now`; a memory past its time is forgotten. */
  has(key: string, now: number): boolean {
    const until = this.#until.get(key)
    if (until === undefined) return false
    if (now < until) return true
    this.#until.delete(key)
    return false
  }

  delete(key: string): void {
    this.#until.delete(key)
  }

  /** Forgets the keys that `matches`. */
  purge(matches: (key: string) => boolean): void {
    for (const key of [...this.#until.keys()]) if (matches(key)) this.#until.delete(key)
  }
}
