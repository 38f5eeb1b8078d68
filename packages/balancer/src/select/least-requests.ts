// The least-requests policy: fewest requests in flight relative to weight.
import type { IncomingMessage } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { Pool } from '../upstreams/pool.js'
import type { Upstream } from '../upstreams/upstream.js'
import type { Policy } from './policy.js'

/**
 * Fewest requests in flight relative to weight (Envoy `LEAST_REQUEST`, HAProxy `leastconn`);
 * ties go to the higher weight, then round-robin among the tied, so an idle pool still
 * spreads its requests.
 */
export class LeastRequests implements Policy {
  readonly name = 'least-requests'
  #turn = 0

  select(pool: Pool, _req: IncomingMessage, tried: ReadonlySet<Upstream>): Upstream | undefined {
    const now = performance.now()
    let tied: Upstream[] = []
    let bestLoad = Number.POSITIVE_INFINITY
    let bestWeight = 0
    for (const u of pool.candidates(tried, now)) {
      const weight = u.weightAt(now)
      const load = u.inFlight / weight
      if (load < bestLoad || (load === bestLoad && weight > bestWeight)) {
        tied = [u]
        bestLoad = load
        bestWeight = weight
      } else if (load === bestLoad && weight === bestWeight) {
        tied.push(u)
      }
    }
    return tied[this.#turn++ % tied.length]
  }
}
