import type { IncomingMessage } from 'node:http'
import { LRUCache } from 'lru-cache'
import type { BufferedResponse, Handler } from './response.js'

/**
 * How a response relates to the cache, sent as `X-Cache`:
 * - `HIT`: served from the cache (or from the one handler run a concurrent miss waited for);
 * - `MISS`: the handler ran and the response could be cached;
 * - `BYPASS`: the request or the response may not be cached, so the cache played no part.
 *   A separate value rather than `MISS` so a reader can tell "not cached yet" from
 *   "never cached" (nginx's `$upstream_cache_status` also says BYPASS; Varnish says "pass").
 */
export type CacheStatus = 'HIT' | 'MISS' | 'BYPASS'

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

interface Entry extends BufferedResponse {
  /** `clock()` when the response was stored. */
  storedAt: number
}

/** Passed to lru-cache's fetch: the handler to run on a miss, and what it answered. */
interface FetchContext {
  handler: Handler
  response?: BufferedResponse
}

/** Roughly what a status line costs, so an entry with no headers and no body still has a size. */
const STATUS_LINE_BYTES = 17

/** Bytes an entry takes: status line, headers (`name: value\r\n`) and body, as on the wire. */
export function entrySize(response: BufferedResponse): number {
  let size = STATUS_LINE_BYTES + response.body.length
  for (const [name, value] of Object.entries(response.headers)) {
    size += Buffer.byteLength(name) + Buffer.byteLength(value) + 4
  }
  return size
}

/** Whether a `Cache-Control` value holds one of `directives`. */
function hasDirective(value: string | undefined, directives: RegExp): boolean {
  return (value ?? '').split(',').some(d => directives.test(d.trim()))
}

/**
 * Whether a response may be stored and shared: a 200 without `Set-Cookie` (it belongs to one
 * client) and without `Cache-Control: private` or `no-store` (RFC 9111 §5.2.2).
 */
export function isStorable(response: BufferedResponse): boolean {
  return (
    response.status === 200 &&
    !('set-cookie' in response.headers) &&
    !hasDirective(response.headers['cache-control'], /^(private|no-store)\b/i)
  )
}

/** A copy of `response` with `headers` added. */
function withHeaders(response: BufferedResponse, headers: Record<string, string>): BufferedResponse {
  return { ...response, headers: { ...response.headers, ...headers } }
}

/**
 * A response cache in front of the routes, like Flask-Caching's `@cache.cached(timeout=60)`:
 * GET and HEAD responses keyed by the request target (path plus query) and the representation
 * the route chose (its `Vary`), bounded by bytes, and concurrent misses for one key run the
 * handler once (lru-cache's `fetch` coalesces them).
 */
export class ResponseCache {
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
   * The result carries `X-Cache`, and `Cache-Control`/`Age` when it came from or went into the cache.
   *
   * `variant` names the representation the route chose from the request's headers, for a
   * response that says `Vary`: each is stored under a key of its own, so a browser never
   * gets the text stored for curl. Keying by the choice, not the raw header, keeps one entry
   * per representation however many `Accept` strings there are (Varnish's advice: normalize
   * before you vary). Default '': one representation.
   */
  async serve(req: IncomingMessage, handler: Handler, variant = ''): Promise<BufferedResponse> {
    const lru = this.#lru
    const method = req.method as string
    // A request with credentials may get a response meant for that user alone: it neither
    // reads nor fills the cache (RFC 9111 §3.5, same as Flask-Caching's `unless`).
    if (lru === undefined || (method !== 'GET' && method !== 'HEAD') || req.headers.authorization !== undefined) {
      return withHeaders(await handler(), { 'x-cache': 'BYPASS' })
    }
    // A request target holds no space (RFC 9112 §3.2; Node refuses one), so no plain target
    // can equal a variant's key.
    const key = variant === '' ? (req.url as string) : `${variant} ${req.url as string}`
    // `Cache-Control: no-cache` from the client: fetch anew, and store what comes back.
    const refresh = hasDirective(req.headers['cache-control'], /^no-cache$/i)
    if (method === 'HEAD') {
      // A HEAD response has no body to store; it may be answered from a GET's entry.
      const entry = refresh ? undefined : lru.get(key)
      return entry === undefined ? this.#fresh(await handler()) : this.#hit(entry)
    }
    const context: FetchContext = { handler }
    const entry = await lru.fetch(key, { context, forceRefresh: refresh })
    if (context.response !== undefined) return this.#fresh(context.response)
    if (entry !== undefined) return this.#hit(entry)
    // This request waited on another's handler run whose response may not be shared
    // (it sets a cookie, say): run the handler for this request too.
    return withHeaders(await handler(), { 'x-cache': 'BYPASS' })
  }

  /** A response the handler just produced. */
  #fresh(response: BufferedResponse): BufferedResponse {
    if (!isStorable(response)) return withHeaders(response, { 'x-cache': 'BYPASS' })
    return withHeaders(response, { 'x-cache': 'MISS', 'cache-control': `public, max-age=${this.ttl}` })
  }

  /**
   * A response from the cache. `max-age` counts the seconds left (the issue asks for that)
   * rather than the full TTL; with `Age` alongside, a downstream cache then keeps the
   * response a little less long than it could, never longer.
   */
  #hit(entry: Entry): BufferedResponse {
    const { storedAt, ...response } = entry
    const age = Math.floor((this.#clock() - storedAt) / 1000)
    return withHeaders(response, {
      'x-cache': 'HIT',
      age: String(age),
      'cache-control': `public, max-age=${this.ttl - age}`,
    })
  }
}
