// The round-robin policy: nginx's smooth weighted round-robin.
import type { IncomingMessage } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { Pool } from '../upstreams/pool.js'
import type { Upstream } from '../upstreams/upstream.js'
import type { Policy } from './policy.js'

/**
 * nginx's smooth weighted round-robin (`ngx_http_upstream_get_peer`): each pick adds every
 * candidate's weight to its current weight, takes the highest (the first declared on a tie)
 * and subtracts the total from it. Weights 5,1,1 give a a b a c a a, not five a's in a row
 * (Caddy's weighted_round_robin is that bursty). Equal weights alternate strictly. Weights
 * ramp during slow start.
 */
export class RoundRobin implements Policy {
  readonly name = 'round-robin'

  select(pool: Pool, _req: IncomingMessage, tried: ReadonlySet<Upstream>): Upstream | undefined {
    const now = performance.now()
    return this.pick(pool.candidates(tried, now), now)
  }

  /** The smooth weighted round-robin step over `candidates`. */
  pick(candidates: readonly Upstream[], now: number): Upstream | undefined {
    let best: Upstream | undefined
    let total = 0
    for (const u of candidates) {
      const weight = u.weightAt(now)
      u.currentWeight += weight
      total += weight
      if (best === undefined || u.currentWeight > best.currentWeight) best = u
    }
    if (best !== undefined) best.currentWeight -= total
    return best
  }
}
