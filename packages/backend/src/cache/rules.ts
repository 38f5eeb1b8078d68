/**
 * What both response caches share: which requests and responses they may take, how an entry
 * is keyed and sized, and the headers a MISS, a HIT and a BYPASS carry.
 */
import type { IncomingMessage } from 'node:http'
import type { BufferedResponse, Handler } from '../response.js'

/**
 * How a response relates to the cache, sent as `X-Cache`:
 * - `HIT`: served from the cache (or from the one handler run a concurrent miss waited for);
 * - `MISS`: the handler ran and the response could be cached;
 * - `BYPASS`: the request or the response may not be cached, or the cache could not be
 *   reached (Redis down), so the cache played no part. A separate value rather than `MISS`
 *   so a reader can tell "not cached yet" from "never cached" (nginx's
 *   `$upstream_cache_status` also says BYPASS; Varnish says "pass").
 */
export type CacheStatus = 'HIT' | 'MISS' | 'BYPASS'

/** What the server needs of a response cache, in memory or in Redis. */
export interface CacheLayer {
  /** Seconds an entry stays fresh; 0: the cache is off. */
  readonly ttl: number
  /**
   * Answers `req` from the cache, or runs `handler` and maybe stores its response, which
   * then carries `X-Cache`, and `Cache-Control`/`Age` when it came from or went into the
   * cache. `variant` names the representation the route chose (see `cacheKey`). Never rejects.
   */
  serve(req: IncomingMessage, handler: Handler, variant?: string): Promise<BufferedResponse>
}

/** A stored response. */
export interface Entry extends BufferedResponse {
  /** `clock()` when the response was stored (or would have been, for one stored elsewhere). */
  storedAt: number
}

/** Passed to lru-cache's fetch: the handler to run on a miss, and what it answered. */
export interface FetchContext {
  handler: Handler
  /** Set when this request's own handler run produced the response. */
  response?: BufferedResponse
  /** Set when that response was not stored because the store could not be reached. */
  unstored?: boolean
  /** `Cache-Control: no-cache` from the client: fetch anew, and store what comes back. */
  refresh?: boolean
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
export function hasDirective(value: string | undefined, directives: RegExp): boolean {
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

/**
 * Whether `req` may use the cache at all: GET and HEAD only, and never a request with
 * credentials, which may get a response meant for that user alone (RFC 9111 §3.5, same as
 * Flask-Caching's `unless`).
 */
export function mayUseCache(req: IncomingMessage): boolean {
  return (req.method === 'GET' || req.method === 'HEAD') && req.headers.authorization === undefined
}

/** Whether the client asked for a fresh answer (`Cache-Control: no-cache`). */
export function wantsRefresh(req: IncomingMessage): boolean {
  return hasDirective(req.headers['cache-control'], /^no-cache$/i)
}

/**
 * The key of a request target in the chosen representation: the target (path plus query)
 * alone when the route has one representation, else the target, a space and the variant
 * (`/ html`). A request target holds no space (RFC 9112 §3.2; Node refuses one), so no plain
 * target can equal a variant's key. Keying by the route's choice, not the raw `Accept`, keeps
 * one entry per representation however many `Accept` strings there are (Varnish's advice:
 * normalize before you vary).
 */
export function cacheKey(target: string, variant: string): string {
  return variant === '' ? target : `${target} ${variant}`
}

/** A copy of `response` with `headers` added. */
export function withHeaders(response: BufferedResponse, headers: Record<string, string>): BufferedResponse {
  return { ...response, headers: { ...response.headers, ...headers } }
}

/** A response that went around the cache. */
export function bypass(response: BufferedResponse): BufferedResponse {
  return withHeaders(response, { 'x-cache': 'BYPASS' })
}

/** A response the handler just produced: MISS if it could be stored, else BYPASS. */
export function fresh(response: BufferedResponse, ttl: number): BufferedResponse {
  if (!isStorable(response)) return bypass(response)
  return withHeaders(response, { 'x-cache': 'MISS', 'cache-control': `public, max-age=${ttl}` })
}

/**
 * A response from the cache. `max-age` counts the seconds left (the issue asks for that)
 * rather than the full TTL; with `Age` alongside, a downstream cache then keeps the
 * response a little less long than it could, never longer.
 */
export function hit(entry: Entry, now: number, ttl: number): BufferedResponse {
  const { storedAt, ...response } = entry
  const age = Math.floor((now - storedAt) / 1000)
  return withHeaders(response, { 'x-cache': 'HIT', age: String(age), 'cache-control': `public, max-age=${ttl - age}` })
}
