// What may be stored, and for how long it may be served: RFC 9111 through http-cache-semantics, with the rules nginx and this project add on top.
import type { IncomingHttpHeaders } from 'node:http'
import CachePolicy from 'http-cache-semantics'
import { varyNames } from './vary.js'

/**
 * The statuses stored: the ones RFC 9110 §15.1 calls heuristically cacheable, less 206 (a part
 * is never stored; a range on a hit is cut from the whole). http-cache-semantics also
 * "understands" 302, 303 and 307, which nginx stores only when told to; they pass here.
 */
export const STORED_STATUSES: ReadonlySet<number> = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501])

/** Statuses `--cache-default-ttl` gives freshness to when the response states none (nginx's `proxy_cache_valid` codes). */
const DEFAULT_TTL_STATUSES: ReadonlySet<number> = new Set([200, 301])

/** The request as the policy sees it. */
export interface PolicyRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
}

/** How long a stored response may be served, and how it may be served past that. Seconds. */
export interface Freshness {
  /** Freshness lifetime: the response's `s-maxage`, `max-age` or `Expires`, else `--cache-default-ttl`. */
  lifetime: number
  /** `stale-while-revalidate` (RFC 5861 §3): served stale this long past freshness while one refresh runs. 0: none. */
  staleWhileRevalidate: number
  /** `stale-if-error` (RFC 5861 §4), else `--cache-stale-if-error`: served this long past freshness when upstreams fail. */
  staleIfError: number
  /**
   * False when the response forbids serving it stale at all: `must-revalidate`,
   * `proxy-revalidate` and `s-maxage` do for a shared cache (RFC 9111 §4.2.4, §5.2.2.2,
   * §5.2.2.8, §5.2.2.10).
   */
  mayServeStale: boolean
}

/** Whether a response may be stored, and if so its policy and freshness; else why not. */
export type Verdict = { store: true; policy: CachePolicy; freshness: Freshness } | { store: false; reason: string }

/** Settings the rules take from the options, in seconds. */
export interface RuleSettings {
  defaultTtl: number
  staleIfError: number
}

/**
 * `Cache-Control` directives by lower-case name, value unquoted (`true` for a bare one). The
 * same reading http-cache-semantics does, for the few directives its API does not expose.
 */
export function directives(value: string | string[] | undefined): Map<string, string | true> {
  const out = new Map<string, string | true>()
  const text = Array.isArray(value) ? value.join(',') : value
  if (text === undefined) return out
  for (const part of text.split(',')) {
    const eq = part.indexOf('=')
    const name = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase()
    if (name !== '')
      out.set(
        name,
        eq < 0
          ? true
          : part
              .slice(eq + 1)
              .trim()
              .replace(/^"|"$/g, ''),
      )
  }
  return out
}

/** A directive's value in whole seconds; 0 when absent or not a number. */
function seconds(cc: Map<string, string | true>, name: string): number {
  const v = cc.get(name)
  const n = typeof v === 'string' ? Number.parseInt(v, 10) : 0
  return Number.isFinite(n) && n > 0 ? n : 0
}

/** The policy for a response, as a shared cache with no heuristic freshness (the rule). */
function policyOf(req: PolicyRequest, status: number, headers: IncomingHttpHeaders): CachePolicy {
  return new CachePolicy(req, { status, headers }, { shared: true, cacheHeuristic: 0 })
}

/**
 * Decides whether a response to `req` may be stored: the library's RFC 9111 §3 rules (method,
 * status, `no-store`, `private`, `Authorization` unless `public` / `s-maxage` / `must-revalidate`
 * as §3.5 allows), and then what this cache adds, each for a reason named in the issue:
 * - never a `Set-Cookie` (nginx's default: it belongs to one client; sites that overrode it leaked
 *   sessions), even with `public`, where the library would store it;
 * - never `no-cache`, which the library stores as always stale; nginx does not store it either;
 * - never `Vary: *`, which no request can match;
 * - only the statuses in STORED_STATUSES;
 * - only with a freshness lifetime: stated, or `defaultTtl` for a 200 or 301 that states none
 *   (no heuristic from `Last-Modified`: `cacheHeuristic` 0).
 */
export function judge(req: PolicyRequest, status: number, headers: IncomingHttpHeaders, settings: RuleSettings): Verdict {
  if (!STORED_STATUSES.has(status)) return { store: false, reason: `status ${status} is not stored` }
  if (headers['set-cookie'] !== undefined) return { store: false, reason: 'the response sets a cookie' }
  const cc = directives(headers['cache-control'])
  for (const d of ['no-store', 'private', 'no-cache']) {
    if (cc.has(d)) return { store: false, reason: `Cache-Control: ${d}` }
  }
  // RFC 9111 §5.4: Pragma: no-cache counts as Cache-Control: no-cache when that is absent.
  if (headers['cache-control'] === undefined && /no-cache/i.test(String(headers.pragma ?? '')))
    return { store: false, reason: 'Pragma: no-cache' }
  if (varyNames(headers.vary).includes('*')) return { store: false, reason: 'Vary: *' }
  const policy = policyOf(req, status, headers)
  if (!policy.storable()) {
    const why =
      req.headers.authorization === undefined
        ? 'not storable (RFC 9111 §3)'
        : 'a response to a request with Authorization that says neither public, s-maxage nor must-revalidate (RFC 9111 §3.5)'
    return { store: false, reason: why }
  }
  const stated = cc.has('s-maxage') || cc.has('max-age') || headers.expires !== undefined
  let lifetime = 0
  if (stated) lifetime = statedLifetime(req, status, headers, cc, policy)
  else if (DEFAULT_TTL_STATUSES.has(status)) lifetime = settings.defaultTtl
  if (!(lifetime > 0))
    return {
      store: false,
      reason: stated
        ? 'the response is stale already (max-age=0 or Expires in the past)'
        : 'the response states no freshness, and --cache-default-ttl is 0',
    }
  const freshness: Freshness = {
    lifetime,
    staleWhileRevalidate: seconds(cc, 'stale-while-revalidate'),
    staleIfError: cc.has('stale-if-error') ? seconds(cc, 'stale-if-error') : settings.staleIfError,
    mayServeStale: !(cc.has('must-revalidate') || cc.has('proxy-revalidate') || cc.has('s-maxage')),
  }
  return { store: true, policy, freshness }
}

/**
 * The freshness lifetime the response states, from the library (`s-maxage` over `max-age` over
 * `Expires` less `Date`, RFC 9111 §4.2.1). http-cache-semantics 4.3 reads `proxy-revalidate` as
 * "never fresh" in a shared cache, where RFC 9111 §5.2.2.8 only forbids serving it stale (the
 * same mistake as its `must-revalidate` quirk in evaluateRequest): the lifetime is then read with
 * that directive left out, and `mayServeStale` keeps its meaning.
 */
function statedLifetime(
  req: PolicyRequest,
  status: number,
  headers: IncomingHttpHeaders,
  cc: Map<string, string | true>,
  policy: CachePolicy,
): number {
  if (!cc.has('proxy-revalidate')) return policy.maxAge()
  const without = [...cc].filter(([name]) => name !== 'proxy-revalidate').map(([name, v]) => (v === true ? name : `${name}=${v}`))
  return policyOf(req, status, { ...headers, 'cache-control': without.join(', ') }).maxAge()
}

/** Where a stored response stands at `age` seconds. */
export type Standing = 'fresh' | 'stale-while-revalidate' | 'stale'

export function standing(f: Freshness, age: number): Standing {
  if (age < f.lifetime) return 'fresh'
  if (f.mayServeStale && age < f.lifetime + f.staleWhileRevalidate) return 'stale-while-revalidate'
  return 'stale'
}

/** Whether a response `age` seconds old may be served because the upstreams failed (stale-if-error). */
export function servableOnError(f: Freshness, age: number): boolean {
  return f.mayServeStale && age < f.lifetime + f.staleIfError
}
