// The edge cache, the step before choosing an upstream: answers from what it stored, one fetch per key, refreshes, stale pages through an outage.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { CacheCounter, type CacheCounts } from './counters.js'
import { deliver } from './deliver.js'
import type { Entry } from './entry.js'
import { HitForMiss, Locks, type Fill } from './lock.js'
import { standing, type RuleSettings } from './rules.js'

import { CacheStore, primaryKey } from './store.js'
import { FetchTap, PassTap, type Deliver, type TapOwner } from './taps.js'
import type { CacheStatus, CacheUpstreams, EdgeCacheOptions } from './types.js'

/** Methods whose success invalidates what is stored for their URL (RFC 9111 §4.4; RFC 9110 §9.2.1 calls them unsafe). */
const UNSAFE: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** What `purge` removes: one URL (path and query) under every Host, everything under a path prefix, or all. */
export type PurgeTarget = { url: string } | { prefix: string } | { all: true }

/**
 * nginx's proxy_cache semantics on RFC 9111, with a lock that also covers expired entries and a
 * purge, which nginx has only in its commercial build. It answers from what it stored, sends one
 * request upstream per key while the others wait, refreshes in the background, and keeps pages
 * served through an outage.
 */
export class EdgeCache implements TapOwner {
  readonly store: CacheStore
  readonly rules: RuleSettings
  readonly maxObject: number
  readonly lockTimeout: number
  readonly #counter = new CacheCounter()
  readonly #locks = new Locks()
  readonly #hitForMiss: HitForMiss
  readonly #upstreams: CacheUpstreams
  /** Bytes of response copies being collected now: they stay within the budget too. */
  #copying = 0

  constructor(options: EdgeCacheOptions, upstreams: CacheUpstreams) {
    this.store = new CacheStore(options.maxBytes, options.maxVariants ?? 16)
    this.maxObject = options.maxObject ?? 8 * 1024 * 1024
    this.lockTimeout = options.lockTimeout ?? 5_000
    this.rules = { defaultTtl: (options.defaultTtl ?? 0) / 1000, staleIfError: (options.staleIfError ?? 3_600_000) / 1000 }
    this.#hitForMiss = new HitForMiss(options.hitForMiss ?? 120_000)
    this.#upstreams = upstreams
  }

  /**
   * Answers `req` from the cache, or sends it upstream through the balancer with a tap that
   * stores what may be stored. Every response it touches carries `X-Cache-Status`.
   */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const method = req.method as string
    if (method !== 'GET' && method !== 'HEAD') {
      this.#pass(req, res, 'BYPASS', undefined, UNSAFE.has(method))
      return
    }
    const key = primaryKey(req.headers.host, req.url as string)
    if (req.headers.authorization !== undefined) {
      // Never answered from what another client's request stored (RFC 9111 §3.5), nor made to
      // wait for it; its response is stored only if it says it may be shared.
      if (method === 'HEAD') this.#pass(req, res, 'BYPASS', undefined, false)
      else this.#fetch(req, res, key, undefined, 'BYPASS', undefined)
      return
    }
    // A client's `Cache-Control: no-cache` or `Pragma` is not read: as in nginx and Varnish, a
    // client cannot make every request go upstream; the operator's tool is purge.
    const entry = this.store.find(key, req.headers)
    if (entry !== undefined) {
      const age = entry.policy.age()
      const where = standing(entry.freshness, age)
      if (where === 'fresh') {
        this.#answer(req, res, entry, 'HIT', age)
        return
      }
      if (where === 'stale-while-revalidate') {
        // RFC 5861 §3, nginx's `proxy_cache_background_update` with `proxy_cache_use_stale
        // updating`: served at once, and one request not tied to any client refreshes it.
        const running = this.#locks.get(key)
        if (running === undefined) this.#refresh(req, key, entry)
        this.#answer(req, res, entry, running === undefined ? 'STALE' : 'UPDATING', age)
        return
      }
    }
    const expired = entry === undefined ? 'MISS' : 'EXPIRED'
    if (this.#hitForMiss.has(key, Date.now())) {
      this.#pass(req, res, 'MISS', entry, false)
      return
    }
    const fill = this.#locks.get(key)
    if (fill !== undefined) {
      this.#wait(req, res, key, fill)
      return
    }
    // A HEAD or a Range request that finds nothing fresh goes upstream as it is, and nothing of
    // its answer is stored: neither is a whole response.
    if (method === 'HEAD' || req.headers.range !== undefined) {
      this.#pass(req, res, expired, entry, false)
      return
    }
    this.#fetch(req, res, key, entry, expired, this.#locks.acquire(key))
  }

  /** Removes what `target` names, from every variant and Host; returns how many responses went. */
  purge(target: PurgeTarget): number {
    const matches =
      'url' in target ? (t: string) => t === target.url : 'prefix' in target ? (t: string) => t.startsWith(target.prefix) : () => true
    const byKey = (key: string) => matches(key.slice(key.indexOf('\n') + 1))
    // A fetch running for a purged key brings what may be older than the purge: it is not stored.
    this.#locks.purge(byKey)
    this.#hitForMiss.purge(byKey)
    return 'all' in target ? this.store.clear() : this.store.purge(matches)
  }

  /** The figures of this cache, for `/status.json` and the metrics. */
  counts(now = Date.now()): CacheCounts {
    return {
      requests: { ...this.#counter.total },
      lastMinute: this.#counter.lastMinute(now),
      bytes: this.store.bytes,
      maxBytes: this.store.maxBytes,
      entries: this.store.entries,
      evictions: this.store.evictions,
    }
  }

  // --- TapOwner --------------------------------------------------------------------------------

  reserveCopy(bytes: number): boolean {
    if (this.#copying + bytes > this.store.maxBytes) return false
    this.#copying += bytes
    return true
  }

  releaseCopy(bytes: number): void {
    this.#copying -= bytes
  }

  uncacheable(key: string): void {
    this.#hitForMiss.add(key, Date.now())
  }

  record(status: CacheStatus): void {
    this.#counter.record(status)
  }

  /**
   * RFC 9111 §4.4: the target URI, and the `Location` and `Content-Location` of the response when
   * they name the same host, under the request's Host.
   */
  invalidate(req: IncomingMessage, res: IncomingMessage): void {
    const host = req.headers.host
    const targets = [req.url as string]
    for (const value of [res.headers.location, res.headers['content-location']]) {
      if (value === undefined || host === undefined || !URL.canParse(value, `http://${host}`)) continue
      const url = new URL(value, `http://${host}`)
      if (url.host === host) targets.push(url.pathname + url.search)
    }
    for (const target of targets) {
      const key = primaryKey(host, target)
      this.store.delete(key)
      this.#locks.purge(k => k === key)
    }
  }

  // --- the steps -------------------------------------------------------------------------------

  /** Serves a stored response the cache found for `req` itself, and has the balancer count it. */
  #answer(req: IncomingMessage, res: ServerResponse, entry: Entry, status: CacheStatus, age: number): void {
    const bytes = deliver(req, res, entry, status, age)
    this.#counter.record(status)
    this.#upstreams.answered(req, res, status, bytes)
  }

  /** A deliverer for a tap: a stored response to a client that may have left since (then nothing is sent). */
  #deliverer(req: IncomingMessage, res: ServerResponse): Deliver {
    return (entry, status) => (res.headersSent || res.destroyed ? 0 : deliver(req, res, entry, status, entry.policy.age()))
  }

  #pass(req: IncomingMessage, res: ServerResponse, status: CacheStatus, stale: Entry | undefined, invalidates: boolean): void {
    this.#upstreams.forward(req, res, new PassTap(this, req, status, stale, invalidates, this.#deliverer(req, res)))
  }

  #fetch(
    req: IncomingMessage,
    res: ServerResponse,
    key: string,
    stale: Entry | undefined,
    status: CacheStatus,
    fill: Fill | undefined,
  ): void {
    const tap = new FetchTap(this, req, key, stale, status, fill, this.#deliverer(req, res))
    // A client that leaves before the response came lets the lock go at once.
    if (fill !== undefined) res.once('close', tap.clientGone)
    this.#upstreams.forward(req, res, tap)
  }

  #refresh(req: IncomingMessage, key: string, stale: Entry): void {
    this.#upstreams.refresh(req, new FetchTap(this, req, key, stale, 'UPDATING', this.#locks.acquire(key), undefined))
  }

  /**
   * Waits for the fetch running for `key` (nginx `proxy_cache_lock`, extended to expired entries),
   * then serves what it stored; or, when it stored nothing or took longer than the lock timeout,
   * goes upstream itself, storing nothing (nginx `proxy_cache_lock_timeout`).
   */
  #wait(req: IncomingMessage, res: ServerResponse, key: string, fill: Fill): void {
    const onClose = (): void => {
      stop()
      this.#upstreams.answered(req, res, 'MISS', 0)
    }
    const stop = fill.wait(outcome => {
      res.off('close', onClose)
      const entry = this.store.find(key, req.headers)
      const age = entry?.policy.age() ?? 0
      if (outcome === 'stored' && entry !== undefined && standing(entry.freshness, age) === 'fresh')
        this.#answer(req, res, entry, 'HIT', age)
      else this.#pass(req, res, 'MISS', entry, false)
    }, this.lockTimeout)
    res.once('close', onClose)
  }
}
