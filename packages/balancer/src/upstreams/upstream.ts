// One upstream and its live state: passive health, active health, slow start, what it served.
import { performance } from 'node:perf_hooks'
import { Stats } from '../observe/stats.js'
import { DEFAULTS, type UpstreamSpec } from '../options.js'
import { transition, type AdminState } from './admin-state.js'
import { tlsAgents, type TlsAgents } from './tls.js'

/** What an upstream takes from the balancer's options besides its own line. */
export interface UpstreamDefaults {
  maxFails: number
  failTimeout: number
  /** `--upstream-ca`, for TLS upstreams. */
  upstreamCa?: Buffer | undefined
  /** ms an idle upstream connection is kept, for a TLS upstream's agent. Default 4 000, as for plain ones. */
  idle?: number
}

/**
 * A change of one kind of health: passive (max_fails, from requests) or active (checks). Every
 * change is passed on to the other workers; only a change that flips the upstream's
 * availability is logged, once, with its reason (Caddy `hosts.go` `setHealthy`).
 */
export interface HealthChange {
  upstream: Upstream
  /** The new state of the health named by `source`. */
  up: boolean
  reason: string
  /** Which health changed: passive (max_fails, from requests) or active (checks). */
  source: 'passive' | 'active'
  /**
   * Whether this change flipped the upstream's availability, which needs both kinds of health
   * up. One outage is one flip down and one flip up, however many kinds of health saw it: the
   * checks failing for an upstream that passive health already took out are no new flip.
   */
  flipped: boolean
}

/** A state with its reason and when it began (ms since the epoch), as the dashboard shows it. */
export interface HealthNote {
  up: boolean
  reason: string
  at: number
}

/**
 * An upstream and its live state. Passive health follows nginx's max_fails / fail_timeout
 * (`ngx_http_upstream_round_robin.c`): failures inside a fail_timeout window are counted; at
 * max_fails the upstream is skipped for fail_timeout. When that ends, one more failure takes
 * it down again at once, and one success clears the count.
 */
export class Upstream {
  /** `host:port`, as logged and as later labelled in metrics. */
  readonly id: string
  readonly host: string
  readonly port: number
  maxFails = 1
  failTimeout = 10_000
  weight = 1
  backup = false
  /** Marked down in the configuration (nginx `down`). */
  adminDown = false
  /** Set at run time through the admin API (HAProxy `set server state`): ready, drain or maint. */
  adminState: AdminState = 'ready'
  /** The DNS name (`app.internal:5000`) this address was found under, for an upstream line with `resolve`. */
  from: string | undefined
  maxConns = 0
  slowStart = 0
  /** When the upstream last came back up (ms, monotonic), for slow start; -Infinity: never down. */
  upSince = Number.NEGATIVE_INFINITY
  /** Active health: set by health checks, up until they say otherwise. */
  healthy = true
  /** The target handed to http-proxy, prepared once instead of parsed per request; `https:` for a TLS upstream. */
  readonly target: { protocol: 'http:' | 'https:'; host: string; hostname: string; port: number }
  /** The agents of a TLS upstream (its server line's `tls`); undefined for plain HTTP. */
  tls: TlsAgents | undefined
  /** What `tls` was made from, to tell whether a reload changed it. */
  #tlsKey = 'null'
  /** Smooth weighted round-robin state (nginx `current_weight`). */
  currentWeight = 0
  /** Requests being proxied to this upstream now. */
  inFlight = 0
  /** What it served and how, for the admin listener. Kept across reloads with the upstream. */
  readonly stats = new Stats()
  /**
   * Why the upstream is in its state, for the dashboard: the reason of the last flip, or of a
   * later change that keeps it out (the checks failing too, after a failed request took it out).
   */
  lastChange: HealthNote | undefined
  #fails = 0
  #lastFailure = 0
  #downUntil = 0
  #down = false
  /** When passive health last (re)marked it down (ms, monotonic): checks started before prove nothing. */
  #markedAt = 0
  /** Each kind of health that has the upstream out now, with its reason. */
  readonly #outBy = new Map<HealthChange['source'], HealthNote>()

  constructor(spec: UpstreamSpec, defaults: UpstreamDefaults) {
    this.host = spec.host
    this.port = spec.port
    this.id = upstreamId(spec)
    this.target = { protocol: 'http:', host: spec.host, hostname: spec.host, port: spec.port }
    this.configure(spec, defaults)
  }

  /** Applies the settings of `spec`: passive health, weight, TLS (at start, and again on reload). */
  configure(spec: UpstreamSpec, defaults: UpstreamDefaults): void {
    // New TLS settings, CA or idle time need new agents; the old ones' connections finish their requests.
    const tlsKey = JSON.stringify(spec.tls === undefined ? null : [spec.tls, defaults.upstreamCa?.toString('base64'), defaults.idle])
    if (tlsKey !== this.#tlsKey) {
      this.tls?.agent.destroy()
      this.tls = spec.tls && tlsAgents(spec.host, spec.tls, defaults.upstreamCa, defaults.idle ?? DEFAULTS.upstreamIdleTimeout)
      this.#tlsKey = tlsKey
    }
    this.target.protocol = spec.tls === undefined ? 'http:' : 'https:'
    this.maxFails = spec.maxFails ?? defaults.maxFails
    this.failTimeout = spec.failTimeout ?? defaults.failTimeout
    this.weight = spec.weight ?? 1
    this.backup = spec.backup ?? false
    this.adminDown = spec.down ?? false
    this.maxConns = spec.maxConns ?? 0
    this.slowStart = spec.slowStart ?? 0
    this.from = spec.from
  }

  /**
   * Sets the admin state. Back to ready, the weight ramps up over `slowStart` again, as HAProxy's
   * `slowstart` applies when a server leaves maintenance or drain. Returns what the change means.
   */
  setAdminState(state: AdminState, now: number = performance.now()): ReturnType<typeof transition> {
    const change = transition(this.adminState, state)
    this.adminState = state
    if (change.slowStart) this.upSince = now
    return change
  }

  /** Whether `maxConns` requests are in flight: skipped, but not down. */
  get full(): boolean {
    return this.maxConns > 0 && this.inFlight >= this.maxConns
  }

  /**
   * The weight a policy uses at `now`: the configured weight, ramped from 10% to 100% over
   * `slowStart` after the upstream came back up (HAProxy `slowstart`), so a cold backend is
   * not handed its full share at once. Unlike nginx, whose slow_start is commercial-only.
   */
  weightAt(now: number): number {
    const elapsed = now - this.upSince
    if (elapsed >= this.slowStart) return this.weight
    return this.weight * (0.1 + (0.9 * elapsed) / this.slowStart)
  }

  /** How much longer passive health keeps this upstream out, in ms from `now`; 0 when it does not. */
  passiveDownFor(now: number): number {
    return Math.max(0, this.#downUntil - now)
  }

  /** Whether passive health lets this upstream take a request at `now` (ms, monotonic). */
  passiveUp(now: number): boolean {
    return now >= this.#downUntil
  }

  /**
   * Records an active check's verdict. Returns the change when the active state changes, so
   * that it is reported once (Caddy `hosts.go` `setHealthy`).
   */
  setHealthy(healthy: boolean, reason: string): HealthChange | undefined {
    if (this.healthy === healthy) return undefined
    this.healthy = healthy
    return this.#changed(healthy, reason, 'active', performance.now())
  }

  /**
   * An active check passed: it lifts a passive mark-down, as HAProxy lets checks bring back a
   * server that `observe` took out, instead of leaving it out for the rest of fail_timeout. A
   * check is evidence only if it started after the failure that marked the upstream down:
   * `startedAt` (ms, monotonic) is when it did. Returns the change, if any.
   */
  checkPassed(startedAt: number, reason: string): HealthChange | undefined {
    if (!this.#down || startedAt < this.#markedAt) return undefined
    return this.#cleared(performance.now(), reason)
  }

  /**
   * Notes a change of one kind of health and whether it flipped availability. A flip up starts
   * the slow start. The dashboard's "why" follows the flip, then any later reason to be out;
   * when one kind of health comes back and the other still has the upstream out, the other's.
   */
  #changed(up: boolean, reason: string, source: HealthChange['source'], now: number): HealthChange {
    const note = { up: false, reason, at: Date.now() }
    const wasAvailable = this.#outBy.size === 0
    if (up) this.#outBy.delete(source)
    else this.#outBy.set(source, note)
    const available = this.#outBy.size === 0
    const flipped = available !== wasAvailable
    if (flipped && available) this.upSince = now
    if (flipped || !up) this.lastChange = { ...note, up: available }
    else this.lastChange = [...this.#outBy.values()][0]
    return { upstream: this, up, reason, source, flipped }
  }

  /** Counts a failure. Returns the change of state if this failure took the upstream down. */
  recordFailure(reason: string, now: number = performance.now()): HealthChange | undefined {
    if (this.maxFails === 0) return undefined
    // Failures older than fail_timeout are forgotten, except while down: then the count
    // stands until a success, so a failed trial after the down time re-marks it at once.
    if (!this.#down && now - this.#lastFailure > this.failTimeout) this.#fails = 0
    this.#fails++
    this.#lastFailure = now
    if (this.#fails < this.maxFails) return undefined
    this.#downUntil = now + this.failTimeout
    this.#markedAt = now
    if (this.#down) return undefined
    this.#down = true
    return this.#changed(
      false,
      `${this.#fails} failure(s) in ${this.failTimeout / 1000}s, last: ${reason}; skipped for ${this.failTimeout / 1000}s`,
      'passive',
      now,
    )
  }

  /** Counts a success. Returns the change of state if the upstream was down and is now up. */
  recordSuccess(now: number = performance.now()): HealthChange | undefined {
    return this.#cleared(now, 'a request succeeded')
  }

  /**
   * Applies a passive verdict another worker reached, so that every worker has one view (a
   * failure seen by one takes the upstream out of all, which nginx has only with `zone`):
   * down for `ms` from `now`, or up again. Returns the change when the state flips here.
   */
  applyPassive(up: boolean, ms: number, reason: string, now: number = performance.now()): HealthChange | undefined {
    if (up) return this.#cleared(now, reason)
    this.#downUntil = now + ms
    this.#markedAt = now
    if (this.#down) return undefined
    this.#down = true
    return this.#changed(false, reason, 'passive', now)
  }

  #cleared(now: number, reason: string): HealthChange | undefined {
    this.#fails = 0
    if (!this.#down) return undefined
    this.#down = false
    this.#downUntil = 0
    return this.#changed(true, reason, 'passive', now)
  }
}

/** `host:port`, IPv6 in brackets. */
export function upstreamId(spec: UpstreamSpec): string {
  return `${spec.host.includes(':') ? `[${spec.host}]` : spec.host}:${spec.port}`
}
