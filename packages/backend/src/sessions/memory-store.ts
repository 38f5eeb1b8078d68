/** Sessions in process memory: the embedded default, one store per backend. */
import { LRUCache } from 'lru-cache'
import { parseWholeNumber } from '../config.js'
import { newSessionId, type SessionStore, type Visit } from './store.js'

/** Options of `MemorySessionStore`. */
export interface MemorySessionStoreOptions {
  /**
   * Most sessions kept; past it the least recently visited one is dropped, so a stream of
   * cookieless clients cannot grow the store without bound. Default 10,000.
   */
  max?: number
  /**
   * Seconds a session lives after its last visit (an idle timeout, like a PHP or Express
   * session's). Default 1800, 30 minutes.
   */
  ttl?: number
  /**
   * Milliseconds on a monotonic clock, for the idle timeout.
   * Default `performance.now()`. Tests pass their own to move time without waiting.
   */
  clock?: () => number
}

/**
 * lru-cache preallocates arrays of `max` slots, so an absurd bound would cost memory up front.
 * A million sessions of a few dozen bytes each is far more than a demo backend needs.
 */
const MAX_SESSIONS = 1_000_000
/** A year, like the response cache's TTL bound. */
export const MAX_SESSION_TTL = 31_536_000

/**
 * Visit counters by session id, in memory, bounded by count and by idle time. Each backend
 * holds its own: a session id one backend issued means nothing to another. That is the
 * point of the `/session` demo — behind round-robin the count starts over at every switch
 * of backend, and sticky sessions (or the Redis store, `--redis`) fix it.
 */
export class MemorySessionStore implements SessionStore {
  /** Values are boxes so a visit counts in place; `get` alone refreshes the idle timeout. */
  readonly #lru: LRUCache<string, { visits: number }>

  constructor(options: MemorySessionStoreOptions = {}) {
    const max = parseWholeNumber(options.max ?? 10_000, 'sessions max', 1, MAX_SESSIONS)
    const ttl = parseWholeNumber(options.ttl ?? 1800, 'sessions ttl', 1, MAX_SESSION_TTL)
    const clock = options.clock ?? (() => performance.now())
    this.#lru = new LRUCache({
      max,
      ttl: ttl * 1000,
      // The timeout counts from the last visit, not from the first.
      updateAgeOnGet: true,
      // lru-cache reuses a clock reading for `ttlResolution` ms; read it every time so an
      // injected clock takes effect at once (as in the response cache).
      ttlResolution: 0,
      perf: { now: clock },
    })
  }

  /** Sessions held (expired ones may linger until looked up or pushed out). */
  get size(): number {
    return this.#lru.size
  }

  async visit(sid: string | undefined): Promise<Visit> {
    const session = sid === undefined ? undefined : this.#lru.get(sid)
    if (sid !== undefined && session !== undefined) {
      session.visits += 1
      return { sid, visits: session.visits, created: false }
    }
    const fresh = newSessionId()
    this.#lru.set(fresh, { visits: 1 })
    return { sid: fresh, visits: 1, created: true }
  }

  async peek(sid: string): Promise<number | undefined> {
    return this.#lru.peek(sid)?.visits
  }
}
