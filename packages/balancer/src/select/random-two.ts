// The random-two policy: the power of two random choices.
import type { IncomingMessage } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { Pool } from '../upstreams/pool.js'
import type { Upstream } from '../upstreams/upstream.js'
import type { Policy } from './policy.js'

/**
 * The power of two random choices (Mitzenmacher; Envoy's least-request default, HAProxy
 * `random(2)`): sample two candidates and take the one with fewer requests in flight
 * relative to weight. Nearly as good as least-requests, with no herding when several
 * balancers share upstreams.
 */
export class RandomTwo implements Policy {
  readonly name = 'random-two'
  readonly #random: () => number

  /** @param random A uniform [0, 1) source; tests pass a seeded one. */
  constructor(random: () => number = Math.random) {
    this.#random = random
  }

  select(pool: Pool, _req: IncomingMessage, tried: ReadonlySet<Upstream>): Upstream | undefined {
    const now = performance.now()
    const candidates = pool.candidates(tried, now)
    const n = candidates.length
    if (n < 2) return candidates[0]
    const i = Math.floor(this.#random() * n)
    const j = (i + 1 + Math.floor(this.#random() * (n - 1))) % n
    const a = candidates[i] as Upstream
    const b = candidates[j] as Upstream
    return b.inFlight / b.weightAt(now) < a.inFlight / a.weightAt(now) ? b : a
  }
}
