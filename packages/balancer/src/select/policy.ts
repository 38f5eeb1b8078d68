// The balancing policy interface: one method that picks an upstream for a request, or none.
import type { IncomingMessage } from 'node:http'
import type { PolicyName } from '../options.js'
import type { Pool } from '../upstreams/pool.js'
import type { Upstream } from '../upstreams/upstream.js'

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
