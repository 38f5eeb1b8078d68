// The edge cache's contract with the balancer around it, in a leaf file: the cache imports nothing of the forwarder's, and the forwarder nothing of the cache but these shapes.
import type { IncomingMessage, ServerResponse } from 'node:http'

/**
 * How a response relates to the cache, sent as `X-Cache-Status` with nginx's
 * `$upstream_cache_status` values:
 * - `HIT`: a fresh stored response, and no upstream saw the request;
 * - `MISS`: nothing usable was stored; the request went upstream (its response may be stored);
 * - `EXPIRED`: the stored response was past freshness; a full response came from upstream;
 * - `STALE`: a stored response past freshness, served because the upstreams failed (stale-if-error)
 *   or while this request started its refresh (stale-while-revalidate);
 * - `UPDATING`: a stored response past freshness, served while another request refreshes it;
 * - `REVALIDATED`: the stored response was past freshness and the upstream confirmed it (304);
 * - `BYPASS`: the cache did not look (a method other than GET and HEAD, or `Authorization`).
 */
export const CACHE_STATUSES = ['HIT', 'MISS', 'EXPIRED', 'STALE', 'UPDATING', 'REVALIDATED', 'BYPASS'] as const
export type CacheStatus = (typeof CACHE_STATUSES)[number]

/** What a tap's `head` returns when the cache answers the client itself from this response. */
export const TAKE = Symbol('switchyard.cache.take')

/**
 * Watches one upstream request that the cache sent on (a miss, a revalidation, a refresh) or let
 * pass (a POST, a request the cache bypasses).
 */
export interface ResponseTap {
  /** The `X-Cache-Status` of this response as it stands now, for the access log and the balancer's own answers. */
  readonly status: CacheStatus
  /**
   * Request headers to send upstream in place of the client's: a string replaces a header,
   * `undefined` removes it. `undefined` as a whole: the client's headers as they are.
   */
  readonly requestHeaders: Readonly<Record<string, string | undefined>> | undefined
  /** Body bytes of a stored response the cache sent the client instead of the upstream's (a revalidated or a stale one). */
  readonly bytes: number | undefined
  /**
   * The upstream response's head, before anything of it reaches the client. Returns the header
   * pairs to add to the client's response (`X-Cache-Status`), having added its own listeners to
   * `res` if it keeps a copy of the body; or `TAKE` when the cache answers the client itself (a
   * 304 that revalidated a stored response, a 5xx it has a stale copy for): the forwarder then
   * writes nothing to the client, and the tap reads `res` to its end.
   */
  head(res: IncomingMessage): readonly string[] | typeof TAKE
  /**
   * Every try failed, or no upstream could be tried, and the balancer is about to answer
   * `status` (502, 503 or 504). Returns true when the cache answered instead (a stale copy).
   */
  failed(status: number): boolean
}

/** What the cache needs from the balancer: a way upstream, the same one every request takes. */
export interface CacheUpstreams {
  /** Forwards a client's request as any other (choice, retries, timeouts, health), with `tap` watching. */
  forward(req: IncomingMessage, res: ServerResponse, tap: ResponseTap): void
  /**
   * Sends a GET like `req` upstream for the cache alone, with `tap.requestHeaders` applied: a
   * background refresh, which no client waits for and no client's leaving stops. `tap.head`
   * must return `TAKE`, and `tap.failed` true.
   */
  refresh(req: IncomingMessage, tap: ResponseTap): void
  /** The cache answered `req` from a stored response without going upstream: count and log it. */
  answered(req: IncomingMessage, res: ServerResponse, status: CacheStatus, bytes: number): void
}

/** Options of the edge cache. Sizes in bytes, durations in ms. */
export interface EdgeCacheOptions {
  /** Memory budget for stored responses, headers included (`--cache`). Required. */
  maxBytes: number
  /** Larger responses stream through and are not stored (`--cache-max-object`). Default 8 MiB. */
  maxObject?: number
  /**
   * Freshness for a 200 or 301 that says none (no `max-age`, `s-maxage` or `Expires`), as nginx's
   * `proxy_cache_valid` (`--cache-default-ttl`). Default 0: such responses are not stored.
   */
  defaultTtl?: number
  /**
   * How long a request waits for another request's fetch of the same key before it goes upstream
   * itself, without storing (nginx `proxy_cache_lock_timeout`). Default 5 000.
   */
  lockTimeout?: number
  /**
   * How long past freshness a stored response may be served when the upstreams fail, for a
   * response with no `stale-if-error` of its own (`--cache-stale-if-error`). Default 3 600 000.
   */
  staleIfError?: number
  /** Variants stored per URL (one per distinct `Vary` selection); the oldest goes first. Default 16. */
  maxVariants?: number
  /** How long a key whose fetch could not be stored skips the lock (Varnish's hit-for-miss). Default 120 000. */
  hitForMiss?: number
}
