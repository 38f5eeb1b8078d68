// Choosing the upstream for the next try, the same for requests and WebSocket upgrades: pinned, else the policy, within one retry budget.
import type { IncomingMessage } from 'node:http'
import type { Pool } from '../upstreams/pool.js'
import type { Upstream } from '../upstreams/upstream.js'
import type { Policy } from './policy.js'

/** What choosing reads of the settings in force. */
export interface Choosing {
  pool: Pool
  policy: Policy
  /** Most further tries after the first; Infinity: each upstream once. */
  retries: number
  /** No new try this long after the request came, in ms; 0: no cap. */
  retryTimeout: number
}

/** One request's tries so far, as choosing reads and updates them: the Exchange and the Tunnel hold them. */
export interface Tries {
  readonly req: IncomingMessage
  /** Upstreams tried, the one of the latest try included. */
  readonly tried: Set<Upstream>
  /** The upstream a valid sticky cookie names, if the request has one. */
  readonly pinnedId: string | undefined
  /** When the request came (`performance.now()`). */
  readonly start: number
  /** The upstream of the latest try. */
  upstream: Upstream | undefined
  /** Tries after the first. */
  retries: number
}

/** Every candidate is at max_conns: the request may wait for a slot (an upgrade gives up). */
export const FULL = 'full'
/** No upstream is left: every one is down or tried, or the retry budget is spent. */
export const NONE = 'none'

/**
 * The upstream for the next try of `tries`, or why there is none. The pinned upstream (sticky
 * cookie) comes first while it is available and not yet tried; else the policy chooses. A
 * caller that `canWait` (a request: it queues) gets FULL for a pinned upstream that is full, so
 * that it waits for its own; one that cannot (an upgrade: tunnels last minutes, so a slot
 * seldom frees within the queue timeout) has the policy choose another. Full is not down: a
 * tier all at max_conns is FULL, never a spill onto backups.
 *
 * The chosen upstream is added to `tries`; a try after the first is counted on the upstream
 * that failed (HAProxy's per-server `retries` counter).
 */
export function choose(settings: Choosing, tries: Tries, canWait: boolean, now: number): Upstream | typeof FULL | typeof NONE {
  const { pool, policy, retries, retryTimeout } = settings
  if (tries.tried.size > retries || (retryTimeout > 0 && now - tries.start >= retryTimeout)) return NONE
  const upstream = pinned(pool, tries, canWait, now) ?? policy.select(pool, tries.req, tries.tried)
  if (upstream === undefined || upstream.full) return upstream !== undefined || pool.tier(tries.tried, now).length > 0 ? FULL : NONE
  if (tries.upstream !== undefined) {
    tries.retries++
    tries.upstream.stats.retries++
  }
  tries.tried.add(upstream)
  tries.upstream = upstream
  return upstream
}

/** The upstream the sticky cookie names, while it takes pinned clients (ready, or draining) and is not yet tried (and not full, for a caller that cannot wait). */
function pinned(pool: Pool, tries: Tries, canWait: boolean, now: number): Upstream | undefined {
  if (tries.pinnedId === undefined) return undefined
  const u = pool.upstreams.find(x => x.id === tries.pinnedId)
  return u !== undefined && (canWait || !u.full) && !tries.tried.has(u) && pool.takesPinned(u, now) ? u : undefined
}
