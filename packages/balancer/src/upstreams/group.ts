// An upstream group (nginx's word): the pool, what a reload changes in it, the active checks, and its health news.
import { EventEmitter } from 'node:events'
import { DEFAULTS, type BalancerOptions } from '../options.js'
import { HealthChecker } from './health-check.js'
import { Pool } from './pool.js'
import { reconcile } from './reconcile.js'
import type { HealthChange, Upstream } from './upstream.js'

/** What a group takes from the options. */
export type GroupOptions = Pick<BalancerOptions, 'upstreams' | 'maxFails' | 'failTimeout' | 'health' | 'log'>

/**
 * The upstreams behind a balancer, and all that keeps their state: a balancer forwards to its
 * group's pool, and a cluster's primary holds a group alone, to run the active checks once for
 * every worker. Empty until `configure()`. Emits `health` with each HealthChange, flip or not (the cluster passes them on);
 * logs each flip of availability once, with its reason.
 */
export class UpstreamGroup extends EventEmitter {
  readonly pool = new Pool([])
  /** Receives one line per flip of an upstream's availability. */
  log: ((line: string) => void) | undefined
  /** Upstreams a change removed while requests were in flight to them: shown as draining. */
  #retired: Upstream[] = []
  #checker: HealthChecker | undefined
  /** The active-check settings in force, to tell whether a reload changed them. */
  #checkerKey = 'null'
  /** Whether active checks were started: new settings restart them. */
  #checking = false

  /** Upstreams a reload removed that still have requests in flight. */
  get retired(): readonly Upstream[] {
    this.#retired = this.#retired.filter(u => u.inFlight > 0)
    return this.#retired
  }

  /** The active health checker, when checks are configured. */
  get checker(): HealthChecker | undefined {
    return this.#checker
  }

  /** The upstream `id` (`host:port`), while it is in the pool. */
  find(id: string): Upstream | undefined {
    return this.pool.upstreams.find(u => u.id === id)
  }

  /**
   * Applies a configuration, at start and on reload, without dropping a request: an upstream
   * kept by address keeps its state; requests in flight finish where they are.
   * @throws ConfigError for active-check settings that cannot be checked with.
   */
  configure(options: GroupOptions): void {
    this.log = options.log
    const defaults = { maxFails: options.maxFails ?? DEFAULTS.maxFails, failTimeout: options.failTimeout ?? DEFAULTS.failTimeout }
    const next = reconcile(this.pool.upstreams, this.#retired, options.upstreams, defaults)
    this.pool.upstreams = next.upstreams
    this.#retired = next.retired
    // New check settings start a new checker (counters from zero); upstreams keep their state.
    const checkerKey = JSON.stringify(options.health ?? null)
    if (checkerKey !== this.#checkerKey) {
      this.#checker?.stop()
      this.#checker = options.health && new HealthChecker(this.pool, options.health, this.report)
      this.#checkerKey = checkerKey
      if (this.#checking) this.#checker?.start()
    }
  }

  /** Starts the active checks, when configured: a balancer once it listens, a primary at once. */
  startChecks(): void {
    this.#checker?.start()
    this.#checking = true
  }

  /** Stops the active checks; no timer or socket of theirs is left. */
  stopChecks(): void {
    this.#checking = false
    this.#checker?.stop()
  }

  /** Passes every health change on; logs a flip of availability once, with its reason. */
  report = (change: HealthChange | undefined): void => {
    if (change === undefined) return
    this.emit('health', change)
    if (!change.flipped) return
    const { upstream, up, reason } = change
    this.log?.(up ? `upstream ${upstream.id} is up again: ${reason}` : `upstream ${upstream.id} marked down: ${reason}`)
  }
}
