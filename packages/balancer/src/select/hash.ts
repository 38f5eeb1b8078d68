// The hash policy: consistent hashing of a request key (client IP, path, a header, cookie or query parameter).
import type { IncomingMessage } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { HashKey } from '../options.js'
import type { Pool } from '../upstreams/pool.js'
import type { Upstream } from '../upstreams/upstream.js'
import { cookieValue } from '../util/cookies.js'
import type { Policy } from './policy.js'
import type { RoundRobin } from './round-robin.js'

/** The request's key, or undefined when it has none (no such header, cookie or parameter). */
export function keyOf(key: HashKey, req: IncomingMessage): string | undefined {
  const url = req.url as string
  switch (key.kind) {
    case 'ip':
      return req.socket.remoteAddress
    case 'path': {
      const q = url.indexOf('?')
      return q < 0 ? url : url.slice(0, q)
    }
    case 'header': {
      const v = req.headers[key.name]
      return Array.isArray(v) ? v.join(',') : v
    }
    case 'cookie':
      return cookieValue(req.headers.cookie, key.name)
    default: {
      const q = url.indexOf('?')
      return q < 0 ? undefined : (new URLSearchParams(url.slice(q + 1)).get(key.name) ?? undefined)
    }
  }
}

/** FNV-1a, 32-bit, then a murmur3 finaliser so that similar strings spread well. */
function hash32(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/**
 * Consistent hashing by rendezvous (highest random weight): each candidate scores
 * `weight / -ln(h(key, upstream))` and the highest wins. Removing one of N upstreams moves
 * only the keys that were on it (about 1/N); one that is down sends its keys to their second
 * choice, and they come back when it does. No ring to rebuild, unlike nginx `hash consistent`.
 * A request without the key falls back to round-robin.
 */
export class HashPolicy implements Policy {
  readonly name = 'hash'
  readonly key: HashKey
  readonly #fallback: RoundRobin

  constructor(key: HashKey, fallback: RoundRobin) {
    // Node lower-cases header names; a key given as `X-User` must still match.
    this.key = key.kind === 'header' ? { kind: 'header', name: key.name.toLowerCase() } : key
    this.#fallback = fallback
  }

  select(pool: Pool, req: IncomingMessage, tried: ReadonlySet<Upstream>): Upstream | undefined {
    const now = performance.now()
    const candidates = pool.candidates(tried, now)
    const value = keyOf(this.key, req)
    if (value === undefined) return this.#fallback.pick(candidates, now)
    let best: Upstream | undefined
    let bestScore = Number.NEGATIVE_INFINITY
    for (const u of candidates) {
      // h in (0, 1): +0.5 keeps it off both ends.
      const h = (hash32(`${value}\u0000${u.id}`) + 0.5) / 4294967296
      const score = u.weightAt(now) / -Math.log(h)
      if (score > bestScore) {
        best = u
        bestScore = score
      }
    }
    return best
  }
}
