// The small read-only views of a balancer that status, metrics, the admin listener and the cluster read, instead of the class.
import type { PolicyName } from '../options.js'
import type { CheckResult } from '../upstreams/health-check.js'
import type { Pool } from '../upstreams/pool.js'
import type { Upstream } from '../upstreams/upstream.js'
import type { Stats } from './stats.js'

/**
 * The upstreams' state and what describes the balancer as a whole: what `/status.json` is built
 * from, with counts taken separately. A balancer is one; so is a cluster's primary, which holds
 * the upstreams' state for all its workers.
 */
export interface StateView {
  /** When the balancer started, ms since the epoch. */
  readonly startedAt: number
  readonly policyName: PolicyName
  /** Whether it is draining (SIGTERM / SIGINT). */
  readonly draining: boolean
  readonly pool: Pool
  /** Upstreams a reload removed that still have requests in flight. */
  readonly retired: readonly Upstream[]
  /** The last active check of the upstream `id`, when checks are on and one has finished. */
  lastCheck(id: string): CheckResult | undefined
}

/** One balancer process, as its counts and metrics read it. */
export interface BalancerView extends StateView {
  /** Every request answered. */
  readonly totals: Stats
  /** Requests the balancer answered itself, without an upstream. */
  readonly unrouted: Stats
  /** Client connections open now, and accepted since start. */
  readonly connectionsOpen: number
  readonly connectionsTotal: number
  /** `reload`: the upstreams may have changed. */
  on(event: 'reload', listener: () => void): unknown
}
