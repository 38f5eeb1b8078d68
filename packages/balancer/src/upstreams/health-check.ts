// Active health checks: a GET on each upstream every interval, with rise and fall thresholds.
import { request } from 'node:http'
import { request as tlsRequest } from 'node:https'
import { performance } from 'node:perf_hooks'
import { ConfigError, errorCode } from '../errors.js'
import type { HealthCheckOptions } from '../options.js'
import type { Pool } from './pool.js'
import { isChecked } from './admin-state.js'
import { describeTlsFailure } from './tls.js'
import type { HealthChange, Upstream } from './upstream.js'

/** The outcome of one active check, as kept for tests and the dashboard. */
export interface CheckResult {
  /** Whether the check passed. */
  ok: boolean
  /** What happened, e.g. `GET /healthz -> 200`, `GET /healthz -> ECONNREFUSED`. */
  detail: string
  /** When the check ended, in ms since the epoch (`Date.now()`), for display. */
  at: number
}

/** What the checker keeps per upstream between rounds. */
interface Probe {
  /** Consecutive passes; reset by a failure (Envoy `healthy_threshold` counting). */
  passes: number
  /** Consecutive failures; reset by a pass (Envoy `unhealthy_threshold` counting). */
  fails: number
  /** Ends the check in flight without a verdict; `undefined` while none is. */
  cancel: (() => void) | undefined
  /** The last check that reached a verdict. */
  last: CheckResult | undefined
  /** Whether checks were stopped for maint: they start again from fresh counts. */
  paused: boolean
}

/**
 * A request target Node sends as is: origin-form, visible ASCII. Anything else makes
 * `http.request` throw synchronously, in a timer callback, so it is refused up front.
 */
const ORIGIN_FORM = /^\/[\x21-\x7e]*$/

/**
 * Active health checks, the HAProxy / Envoy model: every `interval` (HAProxy `inter`) each
 * upstream gets a `GET path`; `unhealthyThreshold` consecutive failures (HAProxy `fall`, Envoy
 * `unhealthy_threshold`) take an up upstream down and `healthyThreshold` consecutive passes
 * (HAProxy `rise`, Envoy `healthy_threshold`) bring a down one back. A pass is a status inside
 * the inclusive `status` range (HAProxy `http-check expect status 200-399`, whose default,
 * 2xx and 3xx, is ours too). Anything else fails: another status, a refused or reset
 * connection, a malformed response, or no complete response within `timeout`.
 *
 * Upstreams start up, as HAProxy servers do: a balancer that has just started (or reloaded)
 * serves at once instead of waiting `healthyThreshold` rounds. Unlike HAProxy, which starts a
 * server one failure from down ("up, but will fall down at first failure", `server.c`), a new
 * upstream needs the full `unhealthyThreshold`, so one slow first check cannot remove it.
 *
 * A passing check also lifts a passive mark-down (max_fails / fail_timeout) made before the
 * check started, as HAProxy's checks bring back a server that `observe` took out: a backend
 * that was restarted is back within one interval of listening, not at the end of
 * fail_timeout. Its active state still needs `healthyThreshold` passes, so an upstream the
 * checks themselves took out comes back only then.
 *
 * The verdict goes to `Upstream.setHealthy` (and `checkPassed`), which return a change only
 * when a state changes; each change is handed to `report` once. `report` must not throw: it
 * runs in socket callbacks.
 */
export class HealthChecker {
  readonly #pool: Pool
  readonly #options: HealthCheckOptions
  readonly #report: (change: HealthChange) => void
  /**
   * Per upstream object, so an upstream kept across a reload keeps its counters (the balancer
   * keeps the object by address) and one replaced by a new object starts afresh.
   */
  readonly #probes = new Map<Upstream, Probe>()
  /** The next round; `undefined` while stopped. */
  #timer: NodeJS.Timeout | undefined

  /**
   * @param pool read afresh each round: `pool.upstreams` is replaced as a whole on reload.
   * @param options the checks to run; `path` must be origin-form, `interval` and `timeout` above 0.
   * @param report receives each flip of an upstream's active health, once.
   * @throws ConfigError when `options` cannot be checked with.
   */
  constructor(pool: Pool, options: HealthCheckOptions, report: (change: HealthChange) => void) {
    if (!ORIGIN_FORM.test(options.path)) {
      throw new ConfigError(
        `health-path: ${JSON.stringify(options.path)} is not a path like /healthz (a /, then no spaces or control characters)`,
      )
    }
    // 0 would start a round on every turn of the event loop, and time out every check at once.
    for (const key of ['interval', 'timeout'] as const) {
      if (!(options[key] > 0)) throw new ConfigError(`health-${key}: ${options[key]} ms is not above 0`)
    }
    this.#pool = pool
    this.#options = options
    this.#report = report
  }

  /** Checks every upstream now, then every `interval`. Calling it while running does nothing. */
  start(): void {
    if (this.#timer !== undefined) return
    this.#round()
  }

  /**
   * Stops the rounds and ends the checks in flight; they count neither way. Idempotent. No timer
   * or socket of the checker is left to keep the event loop alive. `start()` resumes, with the
   * counters and last results as they were.
   */
  stop(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    for (const probe of this.#probes.values()) probe.cancel?.()
  }

  /** The last verdict for the upstream `id` (`host:port`), while it is in the pool. */
  lastResult(id: string): CheckResult | undefined {
    for (const [upstream, probe] of this.#probes) {
      if (upstream.id === id) return probe.last
    }
    return undefined
  }

  /**
   * One round. Rounds start `interval` apart however long checks take: HAProxy and Envoy time
   * the next check from the end of the last one, but then a check that hangs for `timeout`
   * stretches every period, and the time to take a dead upstream down is no longer bounded by
   * `unhealthyThreshold` × `interval` (+ `timeout` for the last check). Piling up is prevented
   * per upstream instead: one whose check is still out is skipped this round. The chained,
   * unref'd setTimeout (not setInterval) lets `stop()` end the chain and never holds the
   * process open.
   */
  #round = (): void => {
    const upstreams = this.#pool.upstreams
    const current = new Set(upstreams)
    for (const [upstream, probe] of this.#probes) {
      if (current.has(upstream)) continue
      // Removed on reload: its verdict no longer matters, and its state goes with it.
      probe.cancel?.()
      this.#probes.delete(upstream)
    }
    for (const upstream of upstreams) {
      let probe = this.#probes.get(upstream)
      if (probe === undefined) {
        probe = { passes: 0, fails: 0, cancel: undefined, last: undefined, paused: false }
        this.#probes.set(upstream, probe)
      }
      if (!isChecked(upstream.adminState)) {
        // HAProxy stops checking a server in maintenance; a check out when it began counts neither way.
        probe.cancel?.()
        probe.paused = true
        continue
      }
      if (probe.paused) {
        // Out of maint: the counts start afresh, as HAProxy checks a server leaving maintenance anew.
        probe.paused = false
        probe.passes = 0
        probe.fails = 0
      }
      if (probe.cancel === undefined) this.#check(upstream, probe)
    }
    this.#timer = setTimeout(this.#round, this.#options.interval).unref()
  }

  /**
   * One check on a fresh connection (`agent: false`, `Connection: close`), as HAProxy does: a
   * pooled connection could pass while the upstream no longer accepts new ones, and a check
   * must not hold a connection the upstream would count against its limits. `timeout` covers
   * connecting and the whole response (Envoy `timeout`; HAProxy splits it into
   * `timeout connect` and `timeout check`).
   */
  #check(upstream: Upstream, probe: Probe): void {
    const { path, timeout, status } = this.#options
    const what = `GET ${path}`
    const started = performance.now()
    let done = false
    // Ends the check once: with a verdict, or without one when cancelled (stop, removal).
    const settle = (ok: boolean | undefined, detail = ''): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      probe.cancel = undefined
      req.destroy()
      if (ok !== undefined) this.#record(upstream, probe, { ok, detail, at: Date.now() }, started)
    }
    // Errors after the verdict (from the destroy above, or a late reset) are ignored by settle.
    const fail = (err: Error): void => settle(false, `${what} -> ${describeTlsFailure(err) ?? errorCode(err)}`)
    const timer = setTimeout(() => settle(false, `${what} -> timed out after ${timeout}ms`), timeout).unref()
    // A TLS upstream is checked over TLS, verified as its requests are, on a connection of its own.
    const req = (upstream.tls === undefined ? request : tlsRequest)(
      {
        host: upstream.host,
        port: upstream.port,
        path,
        agent: upstream.tls?.fresh ?? false,
        headers: { host: upstream.id, 'user-agent': 'switchyard-health-check', connection: 'close' },
      },
      res => {
        const code = res.statusCode as number
        // The verdict waits for the whole body, read and dropped: an upstream that sends a
        // 200 head and then stalls or cuts the body is not healthy. A cut body errors only
        // here when the upstream closed cleanly, so both emitters get the listener.
        res.on('error', fail)
        res.on('end', () => settle(code >= status[0] && code <= status[1], `${what} -> ${code}`))
        res.resume()
      },
    )
    req.on('error', fail)
    req.end()
    probe.cancel = () => settle(undefined)
  }

  /**
   * Counts a verdict and changes the upstream's active state when a threshold is reached; a
   * pass first lifts a passive mark-down made before the check started (`started`).
   */
  #record(upstream: Upstream, probe: Probe, result: CheckResult, started: number): void {
    probe.last = result
    // A result resets the opposite count, so only consecutive results move an upstream
    // (Envoy; HAProxy documents `rise` and `fall` as consecutive checks too).
    if (result.ok) {
      probe.passes++
      probe.fails = 0
      // Lifted first: when the same pass also reaches healthyThreshold, the flip up that is
      // logged is the active one, with its count.
      this.#changed(upstream.checkPassed(started, `active check passed: ${result.detail}`))
      if (probe.passes >= this.#options.healthyThreshold) {
        this.#changed(upstream.setHealthy(true, `active check passed ${times(probe.passes)}: ${result.detail}`))
      }
    } else {
      probe.fails++
      probe.passes = 0
      if (probe.fails >= this.#options.unhealthyThreshold) {
        this.#changed(upstream.setHealthy(false, `active check failed ${times(probe.fails)}: ${result.detail}`))
      }
    }
  }

  #changed(change: HealthChange | undefined): void {
    if (change !== undefined) this.#report(change)
  }
}

function times(n: number): string {
  return n === 1 ? '1 time' : `${n} times`
}
