// The cache's side of an upstream request: `FetchTap` for one whose response may be stored (a miss, a revalidation, a background refresh), `PassTap` for one that stores nothing.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { createEntry, refreshEntry, type Entry } from './entry.js'
import type { Fill, FillOutcome } from './lock.js'
import { judge, servableOnError, type PolicyRequest, type RuleSettings } from './rules.js'
import type { CacheStore } from './store.js'
import { TAKE, type CacheStatus, type ResponseTap } from './types.js'
import { variantKey, varyNames } from './vary.js'

/** What a tap needs of the cache that made it (EdgeCache implements it). */
export interface TapOwner {
  readonly store: CacheStore
  readonly rules: RuleSettings
  readonly maxObject: number
  /** Takes `bytes` from the budget for copies being collected; false when it has no room. */
  reserveCopy(bytes: number): boolean
  releaseCopy(bytes: number): void
  /** Remembers `key` as uncacheable (hit-for-miss). */
  uncacheable(key: string): void
  /** Counts a response by its status. */
  record(status: CacheStatus): void
  /** Removes what an unsafe request that succeeded made stale (RFC 9111 §4.4). */
  invalidate(req: IncomingMessage, res: IncomingMessage): void
}

/** Client conditionals the cache replaces with its own validators, as nginx's proxy_cache does (ngx_http_proxy_cache_headers). */
const CONDITIONALS = ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range'] as const

/** Upstream statuses after which a stored response may be served instead (nginx `proxy_cache_use_stale http_500 http_502 http_503 http_504`). */
const FAILED_STATUSES: ReadonlySet<number> = new Set([500, 502, 503, 504])

/** Sends a stored response to a client that is still there; returns the body bytes sent. */
export type Deliver = (entry: Entry, status: CacheStatus) => number

/**
 * The request headers a fetch sends in place of the client's: none of the client's conditionals
 * (the cache needs a whole response, and answers conditionals itself), and the stored response's
 * validators when there is one to revalidate (RFC 9111 §4.3.1), as the library makes them.
 */
export function fetchHeaders(req: IncomingMessage, stale: Entry | undefined): Record<string, string | undefined> | undefined {
  let out: Record<string, string | undefined> | undefined
  let plain: IncomingHttpHeaders = req.headers
  for (const name of CONDITIONALS) {
    if (req.headers[name] === undefined) continue
    out ??= {}
    out[name] = undefined
    if (plain === req.headers) plain = { ...req.headers }
    delete plain[name]
  }
  if (stale === undefined || (stale.etag === undefined && stale.lastModified === undefined)) return out
  // The library compares Vary headers byte for byte; the variant was chosen by normalized values,
  // so it is shown the ones it stored.
  const stored = stale.varyNames.length === 0 ? null : stale.policy.toObject().reqh
  if (stored !== null) {
    plain = { ...plain }
    for (const name of stale.varyNames) plain[name] = stored[name]
  }
  const validators = stale.policy.revalidationHeaders({ method: 'GET', url: req.url as string, headers: plain })
  out ??= {}
  for (const name of ['if-none-match', 'if-modified-since'] as const) {
    const v = validators[name]
    if (typeof v === 'string') out[name] = v
  }
  return out
}

/** A flat header list as an object, lower-case names, repeats joined as Node joins them. */
function headersOf(raw: readonly string[]): IncomingHttpHeaders {
  const out: Record<string, string> = {}
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase()
    const value = raw[i + 1] as string
    out[name] = out[name] === undefined ? value : `${out[name]}, ${value}`
  }
  return out
}

/**
 * A fetch whose response may be stored under `key`: a client's miss, the revalidation of an
 * expired response (`stale`), or, with no `client`, a background refresh. A 304 refreshes the
 * stored response; a storable response is copied as it streams and stored once it completed; a
 * failure serves `stale` within stale-if-error. `fill` (the lock, when one is held) is settled
 * with how it went.
 */
export class FetchTap implements ResponseTap {
  status: CacheStatus
  bytes: number | undefined
  readonly requestHeaders: Readonly<Record<string, string | undefined>> | undefined
  readonly #owner: TapOwner
  readonly #req: PolicyRequest
  readonly #key: string
  readonly #stale: Entry | undefined
  readonly #fill: Fill | undefined
  readonly #deliver: Deliver | undefined
  #counted = false

  constructor(
    owner: TapOwner,
    req: IncomingMessage,
    key: string,
    stale: Entry | undefined,
    status: CacheStatus,
    fill: Fill | undefined,
    deliver: Deliver | undefined,
  ) {
    this.#owner = owner
    this.#req = { method: 'GET', url: req.url as string, headers: req.headers }
    this.#key = key
    this.#stale = stale
    this.status = status
    this.#fill = fill
    this.#deliver = deliver
    this.requestHeaders = fetchHeaders(req, stale)
  }

  /** Settles the lock, if this fetch holds one; counts the response once. */
  #end(outcome: FillOutcome): void {
    this.#fill?.settle(outcome)
    if (this.#counted) return
    this.#counted = true
    this.#owner.record(this.status)
  }

  /** Serves the stale copy within stale-if-error, when there is one: true if it did. */
  #serveStale(): boolean {
    const stale = this.#stale
    if (stale === undefined || !servableOnError(stale.freshness, stale.policy.age())) return false
    this.status = 'STALE'
    this.bytes = this.#deliver?.(stale, 'STALE')
    return true
  }

  head(res: IncomingMessage): readonly string[] | typeof TAKE {
    const status = res.statusCode as number
    const stale = this.#stale
    if (stale !== undefined && status === 304) {
      this.#revalidated(res, stale)
      return TAKE
    }
    if (FAILED_STATUSES.has(status) && this.#serveStale()) {
      res.resume()
      this.#end('failed')
      return TAKE
    }
    const verdict = judge(this.#req, status, res.headers, this.#owner.rules)
    const length = Number(res.headers['content-length'])
    if (!verdict.store || length > this.#owner.maxObject) {
      // An error status says nothing of what the URL will answer next: it does not mark the key.
      if (status < 500) this.#owner.uncacheable(this.#key)
      if (stale !== undefined && status < 500) this.#owner.store.remove(this.#key, stale)
      this.#end(status < 500 ? 'uncacheable' : 'failed')
      return this.#pass(res)
    }
    new BodyCopy(this.#owner, res, body => {
      if (body === 'too large') {
        this.#owner.uncacheable(this.#key)
        this.#end('uncacheable')
        return
      }
      if (body !== undefined && this.#fill?.purged !== true) {
        const names = varyNames(res.headers.vary)
        const entry = createEntry({
          status,
          reason: res.statusMessage as string,
          rawHeaders: res.rawHeaders,
          body,
          policy: verdict.policy,
          freshness: verdict.freshness,
          varyNames: names,
          variantKey: variantKey(names, this.#req.headers),
        })
        if (this.#owner.store.put(this.#key, entry)) {
          this.#end('stored')
          return
        }
      }
      this.#end('failed')
    })
    return this.#pass(res)
  }

  /** The response goes on to the client with its status, or, in the background, is read and dropped. */
  #pass(res: IncomingMessage): readonly string[] | typeof TAKE {
    if (this.#deliver !== undefined) return ['X-Cache-Status', this.status]
    res.resume()
    return TAKE
  }

  /** A 304: the stored response is fresh again (RFC 9111 §4.3.4), and the client gets it whole. */
  #revalidated(res: IncomingMessage, stale: Entry): void {
    res.resume()
    const merged = refreshEntry(stale, res.rawHeaders, stale.policy, stale.freshness)
    const verdict = judge(this.#req, stale.status, headersOf(merged.head), this.#owner.rules)
    let entry = merged
    if (verdict.store) {
      entry = refreshEntry(stale, res.rawHeaders, verdict.policy, verdict.freshness)
      if (this.#fill?.purged !== true) this.#owner.store.put(this.#key, entry)
    } else {
      // The 304 says the response may no longer be stored: serve it this once, and drop it.
      this.#owner.store.remove(this.#key, stale)
    }
    this.status = 'REVALIDATED'
    this.bytes = this.#deliver?.(entry, 'REVALIDATED')
    this.#end(verdict.store ? 'stored' : 'uncacheable')
  }

  /** The client went away: if nothing came yet, the lock is let go (the forwarder stops the upstream request). */
  clientGone = (): void => {
    this.#end('failed')
  }

  failed(): boolean {
    const served = this.#serveStale()
    this.#end('failed')
    return served || this.#deliver === undefined
  }
}

/**
 * Copies a response body as it streams past, within `maxObject` and the owner's copy budget, and
 * hands over the whole of it once the response completed: undefined when it did not (cut short,
 * or no room to copy), 'too large' past `maxObject`.
 */
class BodyCopy {
  readonly #owner: TapOwner
  readonly #res: IncomingMessage
  readonly #done: (body: Buffer | undefined | 'too large') => void
  #chunks: Buffer[] | undefined = []
  #bytes = 0

  constructor(owner: TapOwner, res: IncomingMessage, done: (body: Buffer | undefined | 'too large') => void) {
    this.#owner = owner
    this.#res = res
    this.#done = done
    res.on('data', this.#onData)
    res.on('end', this.#onEnd)
    res.on('close', this.#onClose)
  }

  #onData = (chunk: Buffer): void => {
    if (this.#chunks === undefined) return
    if (this.#bytes + chunk.length > this.#owner.maxObject) {
      this.#stop('too large')
      return
    }
    if (!this.#owner.reserveCopy(chunk.length)) {
      this.#stop(undefined)
      return
    }
    this.#bytes += chunk.length
    this.#chunks.push(chunk)
  }

  #onEnd = (): void => {
    const chunks = this.#chunks
    if (chunks === undefined) return
    this.#chunks = undefined
    // One buffer of its own: the chunks are slices of the socket's reads, which would keep
    // whole read buffers alive for a few bytes each.
    const body = Buffer.concat(chunks, this.#bytes)
    this.#owner.releaseCopy(this.#bytes)
    this.#done(body)
  }

  #onClose = (): void => {
    // After 'end' there is nothing left to do; before it, the body was cut short (RFC 9111 §3.3:
    // an incomplete response is not stored as if it were whole).
    if (this.#chunks !== undefined && !this.#res.complete) this.#stop(undefined)
  }

  #stop(why: undefined | 'too large'): void {
    this.#chunks = undefined
    this.#owner.releaseCopy(this.#bytes)
    this.#done(why)
  }
}

/**
 * A request the cache lets pass without storing: another method (invalidating on success when it
 * is unsafe), a HEAD or a Range request that found nothing fresh, a key known to be uncacheable,
 * a request that waited for a lock too long. `stale`, when given, is served if the upstreams fail.
 */
export class PassTap implements ResponseTap {
  status: CacheStatus
  bytes: number | undefined
  readonly requestHeaders = undefined
  readonly #owner: TapOwner
  readonly #req: IncomingMessage
  readonly #stale: Entry | undefined
  readonly #invalidates: boolean
  readonly #deliver: Deliver

  constructor(
    owner: TapOwner,
    req: IncomingMessage,
    status: CacheStatus,
    stale: Entry | undefined,
    invalidates: boolean,
    deliver: Deliver,
  ) {
    this.#owner = owner
    this.#req = req
    this.status = status
    this.#stale = stale
    this.#invalidates = invalidates
    this.#deliver = deliver
  }

  head(res: IncomingMessage): readonly string[] | typeof TAKE {
    const status = res.statusCode as number
    // RFC 9111 §4.4: an unsafe method's non-error response invalidates what the cache holds.
    if (this.#invalidates && status < 400) this.#owner.invalidate(this.#req, res)
    if (FAILED_STATUSES.has(status) && this.#serveStale()) {
      res.resume()
      return TAKE
    }
    this.#owner.record(this.status)
    return ['X-Cache-Status', this.status]
  }

  #serveStale(): boolean {
    const stale = this.#stale
    if (stale === undefined || !servableOnError(stale.freshness, stale.policy.age())) return false
    this.status = 'STALE'
    this.#owner.record('STALE')
    this.bytes = this.#deliver(stale, 'STALE')
    return true
  }

  failed(): boolean {
    if (this.#serveStale()) return true
    this.#owner.record(this.status)
    return false
  }
}
