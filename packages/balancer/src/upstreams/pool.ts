// The upstreams a policy chooses from: which are available, and the tier a request may use.
import type { Upstream } from './upstream.js'

function isFull(u: Upstream): boolean {
  return u.full
}

/** The upstreams a balancer spreads requests over, in declared order, backups included. */
export class Pool {
  /** Replaced as a whole on reload; a request in flight keeps the upstream it has. */
  upstreams: readonly Upstream[]

  constructor(upstreams: readonly Upstream[]) {
    this.upstreams = upstreams
  }

  /**
   * Whether `u` may be chosen now: ready (not drained nor in maint through the admin API), not
   * marked down in the configuration, its active checks pass,
   * and passive health lets it. As in nginx, passive health never marks down the only
   * upstream of a pool, backups included: there is nowhere else to send the request.
   */
  isAvailable(u: Upstream, now: number): boolean {
    return u.adminState === 'ready' && this.isHealthy(u, now)
  }

  /**
   * Whether `u` may take a client a sticky cookie pins to it: as `isAvailable`, but in drain too,
   * since HAProxy keeps persistent sessions on a draining server.
   */
  takesPinned(u: Upstream, now: number): boolean {
    return u.adminState !== 'maint' && this.isHealthy(u, now)
  }

  /** Whether health and the configuration's `down` allow `u`, whatever its admin state. */
  isHealthy(u: Upstream, now: number): boolean {
    return !u.adminDown && u.healthy && (this.upstreams.length === 1 || u.passiveUp(now))
  }

  /**
   * The tier a request may use: the available primaries it has not tried yet or, when there
   * are none, the available backups not tried (nginx `backup`). Full upstreams stay in their
   * tier: being full is not being down, so full primaries keep the backups out.
   */
  tier(tried: ReadonlySet<Upstream>, now: number): Upstream[] {
    const primaries = this.#open(false, tried, now)
    return primaries.length > 0 ? primaries : this.#open(true, tried, now)
  }

  /** The available upstreams of one tier not tried yet. A loop: this runs once per request. */
  #open(backup: boolean, tried: ReadonlySet<Upstream>, now: number): Upstream[] {
    const open: Upstream[] = []
    for (const u of this.upstreams) if (u.backup === backup && !tried.has(u) && this.isAvailable(u, now)) open.push(u)
    return open
  }

  /** What a policy chooses from: the tier, less the full upstreams. */
  candidates(tried: ReadonlySet<Upstream>, now: number): Upstream[] {
    const tier = this.tier(tried, now)
    // Most pools have no max_conns: then the tier is the answer, with no second array.
    return tier.some(isFull) ? tier.filter(u => !u.full) : tier
  }
}
