// The first policy: the first available upstream in declared order, for active / standby.
import type { IncomingMessage } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { Pool } from '../upstreams/pool.js'
import type { Upstream } from '../upstreams/upstream.js'
import type { Policy } from './policy.js'

/** The first available upstream in declared order, for active / standby setups (Caddy `first`). */
export class First implements Policy {
  readonly name = 'first'

  select(pool: Pool, _req: IncomingMessage, tried: ReadonlySet<Upstream>): Upstream | undefined {
    return pool.candidates(tried, performance.now())[0]
  }
}
