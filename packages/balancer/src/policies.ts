import type { IncomingMessage } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { Pool, Upstream } from './upstream.js'

/** The names of the balancing policies. */
export type PolicyName = 'round-robin'

/**
 * A balancing policy, Caddy's `Selector`: it returns the upstream for this request, or
 * `undefined` when none is available. It skips unavailable upstreams and those in `tried`
 * (the ones this request already failed on).
 */
export interface Policy {
  readonly name: PolicyName
  select(pool: Pool, req: IncomingMessage, tried: ReadonlySet<Upstream>): Upstream | undefined
}

/**
 * nginx's smooth weighted round-robin (`ngx_http_upstream_get_peer`). Each pick adds the
 * weight to every candidate's current weight, takes the highest (the first declared on a tie)
 * and subtracts the total from it. With equal weights this alternates strictly: a b a b.
 * Every upstream has weight 1 until weights are configurable.
 */
export class RoundRobin implements Policy {
  readonly name = 'round-robin'

  select(pool: Pool, _req: IncomingMessage, tried: ReadonlySet<Upstream>): Upstream | undefined {
    const now = performance.now()
    let best: Upstream | undefined
    let total = 0
    for (const u of pool.upstreams) {
      if (tried.has(u) || !pool.isAvailable(u, now)) continue
      u.currentWeight += 1
      total += 1
      if (best === undefined || u.currentWeight > best.currentWeight) best = u
    }
    if (best !== undefined) best.currentWeight -= total
    return best
  }
}
