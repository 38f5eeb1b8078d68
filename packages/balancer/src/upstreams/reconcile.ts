// What a reload changes in the upstreams: which are kept with their state, which are new, and which drain.
import type { UpstreamSpec } from '../options.js'
import { Upstream, upstreamId } from './upstream.js'

/** The upstreams after a change of the list, and those removed that still have requests in flight. */
export interface Reconciled {
  upstreams: Upstream[]
  retired: Upstream[]
}

/**
 * Applies a new list of upstreams to the current ones. An upstream kept by address keeps its
 * state (health, counts, round-robin weight) with the new settings; an address not seen before
 * is a new upstream. One removed while requests are in flight to it is retired: it drains them
 * (HAProxy's DRAIN state), and one that a later list adds back is the same upstream again.
 */
export function reconcile(
  current: readonly Upstream[],
  retired: readonly Upstream[],
  specs: readonly UpstreamSpec[],
  defaults: { maxFails: number; failTimeout: number },
): Reconciled {
  // Draining upstreams count too: one a reload adds back is the same upstream, state and all.
  const byId = new Map([...retired, ...current].map(u => [u.id, u]))
  const upstreams = specs.map(spec => {
    const kept = byId.get(upstreamId(spec))
    if (kept === undefined) return new Upstream(spec, defaults)
    byId.delete(kept.id)
    kept.configure(spec, defaults)
    return kept
  })
  // What is left was removed: it drains the requests it has.
  return { upstreams, retired: [...byId.values()].filter(u => u.inFlight > 0) }
}
