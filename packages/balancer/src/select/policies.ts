import type { IncomingMessage } from 'node:http'
import { performance } from 'node:perf_hooks'
import { HashPolicy, type HashKey } from './hash.js'
import type { Pool, Upstream } from '../upstreams/upstream.js'

/** The names of the balancing policies. */
export type PolicyName = 'round-robin' | 'least-requests' | 'random-two' | 'hash' | 'first'

export const POLICY_NAMES: readonly PolicyName[] = ['round-robin', 'least-requests', 'random-two', 'hash', 'first']

/**
 * A balancing policy, Caddy's `Selector`: it returns the upstream for this request, or
 * `undefined` when none can take it. Every policy chooses from `pool.candidates()`, which has
 * already dropped upstreams that are down, full, or already tried by this request, and keeps
 * backups out while a primary is available.
 */
export interface Policy {
  readonly name: PolicyName
  select(pool: Pool, req: IncomingMessage, tried: ReadonlySet<Upstream>): Upstream | undefined
}

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

/** The first available upstream in declared order, for active / standby setups (Caddy `first`). */
export class First implements Policy {
  readonly name = 'first'

  select(pool: Pool, _req: IncomingMessage, tried: ReadonlySet<Upstream>): Upstream | undefined {
    return pool.candidates(tried, performance.now())[0]
  }
}

/** Makes the policy `name`; `hashKey` is used by `hash` only. */
export function createPolicy(name: PolicyName, hashKey: HashKey = { kind: 'ip' }): Policy {
  switch (name) {
    case 'least-requests':
      return new LeastRequests()
    case 'random-two':
      return new RandomTwo()
    case 'hash':
      return new HashPolicy(hashKey, new RoundRobin())
    case 'first':
      return new First()
    default:
      return new RoundRobin()
  }
}
