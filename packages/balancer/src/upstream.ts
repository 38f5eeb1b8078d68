import { performance } from 'node:perf_hooks'

/** One upstream as configured: where it is and how its passive health is judged. */
export interface UpstreamSpec {
  /** Host name or IP address (IPv6 without brackets). */
  host: string
  /** TCP port, 1–65535. */
  port: number
  /**
   * Failures within `failTimeout` that mark the upstream down; 0 never marks it down.
   * Default: the pool's `maxFails` (1), as nginx `max_fails`.
   */
  maxFails?: number
  /**
   * How long failures are counted, and how long a failed upstream is skipped, in ms.
   * Default: the pool's `failTimeout` (10 000), as nginx `fail_timeout`.
   */
  failTimeout?: number
}

/** A health flip, reported once per change of state (Caddy `hosts.go` `setHealthy`). */
export interface HealthChange {
  upstream: Upstream
  up: boolean
  reason: string
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
  /** Active health: set by health checks, up until they say otherwise. */
  healthy = true
  /** The target handed to http-proxy, prepared once instead of parsed per request. */
  readonly target: { protocol: 'http:'; host: string; hostname: string; port: number }
  /** Smooth weighted round-robin state (nginx `current_weight`). */
  currentWeight = 0
  /** Requests being proxied to this upstream now. */
  inFlight = 0
  #fails = 0
  #lastFailure = 0
  #downUntil = 0
  #down = false

  constructor(spec: UpstreamSpec, defaults: { maxFails: number; failTimeout: number }) {
    this.host = spec.host
    this.port = spec.port
    this.id = upstreamId(spec)
    this.configure(spec, defaults)
    this.target = { protocol: 'http:', host: spec.host, hostname: spec.host, port: spec.port }
  }

  /** Applies the passive-health settings of `spec` (at start, and again on reload). */
  configure(spec: UpstreamSpec, defaults: { maxFails: number; failTimeout: number }): void {
    this.maxFails = spec.maxFails ?? defaults.maxFails
    this.failTimeout = spec.failTimeout ?? defaults.failTimeout
  }

  /** Whether passive health lets this upstream take a request at `now` (ms, monotonic). */
  passiveUp(now: number): boolean {
    return now >= this.#downUntil
  }

  /**
   * Records an active check's verdict. Returns the change of state when it flips, so that
   * it is logged once (Caddy `hosts.go` `setHealthy`).
   */
  setHealthy(healthy: boolean, reason: string): HealthChange | undefined {
    if (this.healthy === healthy) return undefined
    this.healthy = healthy
    return { upstream: this, up: healthy, reason }
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
    if (this.#down) return undefined
    this.#down = true
    return { upstream: this, up: false, reason: `${this.#fails} failure(s) in ${this.failTimeout / 1000}s, last: ${reason}; skipped for ${this.failTimeout / 1000}s` }
  }

  /** Counts a success. Returns the change of state if the upstream was down and is now up. */
  recordSuccess(): HealthChange | undefined {
    this.#fails = 0
    if (!this.#down) return undefined
    this.#down = false
    this.#downUntil = 0
    return { upstream: this, up: true, reason: 'a request succeeded' }
  }
}

/** `host:port`, IPv6 in brackets. */
export function upstreamId(spec: UpstreamSpec): string {
  return `${spec.host.includes(':') ? `[${spec.host}]` : spec.host}:${spec.port}`
}

/** The upstreams behind one listener, in declared order. */
export class Pool {
  /** Replaced as a whole on reload; a request in flight keeps the upstream it has. */
  upstreams: readonly Upstream[]

  constructor(upstreams: readonly Upstream[]) {
    this.upstreams = upstreams
  }

  /**
   * Whether `u` may be chosen now: its active checks pass, and passive health lets it. As in
   * nginx, passive health never marks down the only upstream of a pool: there is nowhere
   * else to send the request, so refusing it helps no one. Failed active checks do.
   */
  isAvailable(u: Upstream, now: number): boolean {
    return u.healthy && (this.upstreams.length === 1 || u.passiveUp(now))
  }
}
