/** The response cache in process memory: the embedded default, one per backend. */
import type { IncomingMessage } from 'node:http'
import { LRUCache } from 'lru-cache'
import type { BufferedResponse, Handler } from '../response.js'
import {
  bypass,
  cacheKey,
  entrySize,
  fresh,
  hit,
  isStorable,
  mayUseCache,
  wantsRefresh,
  type CacheLayer,
  type Entry,
  type FetchContext,
} from './rules.js'

/**
 * Options of `ResponseCache`. All are required: the defaults live in `BackendOptions`
 * (`cacheTtl` 60, `cacheMaxBytes` 64 MiB, `clock` `performance.now()`).
 */
export interface ResponseCacheOptions {
  /** Seconds an entry stays fresh; 0 turns the cache off. No default. */
  ttl: number
  /** Bound on the total size of the entries, in bytes; a larger entry is not stored. No default. */
  maxBytes: number
  /** Milliseconds on a monotonic clock. No default. */
  clock: () => number
}

/**
 * A response cache in front of the routes, like Flask-Caching's `@cache.cached(timeout=60)`:
 * GET and HEAD responses keyed by the request target (path plus query) and the representation
 * the route chose (its `Vary`), bounded by bytes, and concurrent misses for one key run the
 * handler once (lru-cache's `fetch` coalesces them).
 */
export class ResponseCache implements CacheLayer {
  readonly ttl: number
  readonly #clock: () => number
  /** Absent when the TTL is 0: everything bypasses. */
  readonly #lru: LRUCache<string, Entry, FetchContext> | undefined

  constructor(options: ResponseCacheOptions) {
    this.ttl = options.ttl
    this.#clock = options.clock
    this.#lru =
      options.ttl === 0
        ? undefined
        : new LRUCache<string, Entry, FetchContext>({
            ttl: options.ttl * 1000,
            // lru-cache reuses a clock reading for `ttlResolution` ms; read it every time so
            // an injected clock takes effect at once.
            ttlResolution: 0,
            perf: { now: options.clock },
            maxSize: options.maxBytes,
            maxEntrySize: options.maxBytes,
            sizeCalculation: entrySize,
            fetchMethod: async (_key, _stale, { context }) => {
              const response = await context.handler()
              context.response = response
              // Returning undefined stores nothing (and keeps an entry being refreshed).
              return isStorable(response) ? { ...response, storedAt: this.#clock() } : undefined
            },
          })
  }

  /** Entries stored. */
  get size(): number {
    return this.#lru?.size ?? 0
  }

  /** Bytes stored, as `entrySize` counts them. */
  get bytes(): number {
    return this.#lru?.calculatedSize ?? 0
  }

  /**
   * Answers `req` from the cache, or runs `handler` and maybe stores its response.
   * `variant` names the representation the route chose from the request's headers, for a
   * response that says `Vary`: each is stored under a key of its own (`cacheKey`), so a
   * browser never gets the text stored for curl. Default '': one representation.
   */
  async serve(req: IncomingMessage, handler: Handler, variant = ''): Promise<BufferedResponse> {
    const lru = this.#lru
    if (lru === undefined || !mayUseCache(req)) return bypass(await handler())
    const key = cacheKey(req.url as string, variant)
    const refresh = wantsRefresh(req)
    if (req.method === 'HEAD') {
      // A HEAD response has no body to store; it may be answered from a GET's entry.
      const entry = refresh ? undefined : lru.get(key)
      return entry === undefined ? fresh(await handler(), this.ttl) : hit(entry, this.#clock(), this.ttl)
    }
    const context: FetchContext = { handler }
    const entry = await lru.fetch(key, { context, forceRefresh: refresh })
    if (context.response !== undefined) return fresh(context.response, this.ttl)
    if (entry !== undefined) return hit(entry, this.#clock(), this.ttl)
    // This request waited on another's handler run whose response may not be shared
    // (it sets a cookie, say): run the handler for this request too.
    return bypass(await handler())
  }
}
