// An upstream group (nginx's word): the pool, what a reload changes in it, the active checks, and its health news.
import { EventEmitter } from 'node:events'
import { parseUpstream } from '../config/parse.js'
import { ConfigError } from '../errors.js'
import { DEFAULTS, type BalancerOptions, type UpstreamSpec } from '../options.js'
import type { AdminState } from './admin-state.js'
import { nameOf, type Found } from './dns-lookup.js'
import type { Discovery } from './discovery.js'
import { HealthChecker } from './health-check.js'
import { Pool } from './pool.js'
import { reconcile } from './reconcile.js'
import { desiredSpecs, dnsNameOf, type RuntimeSnapshot } from './runtime.js'
import { emptyState, type RuntimeState } from './state-file.js'
import { upstreamId, type HealthChange, type Upstream, type UpstreamDefaults } from './upstream.js'

/** Why a runtime change was refused: the status the admin API answers, and one line. */
export class RuntimeError extends Error {
  constructor(
    readonly status: 400 | 404 | 409,
    message: string,
  ) {
    super(message)
  }
}

/** What a group takes from the options. */
export type GroupOptions = Pick<
  BalancerOptions,
  'upstreams' | 'maxFails' | 'failTimeout' | 'health' | 'log' | 'upstreamCa' | 'upstreamIdleTimeout'
>

/**
 * The upstreams behind a balancer, and all that keeps their state: a balancer forwards to its
 * group's pool, and a cluster's primary holds a group alone, to run the active checks once for
 * every worker. Empty until `configure()`. Emits `health` with each HealthChange, flip or not (the cluster passes them on);
 * logs each flip of availability once, with its reason.
 *
 * At run time the admin API sets admin states and adds and removes upstreams, and DNS discovery
 * hands in the addresses of `resolve` lines: each change rebuilds the list with `reconcile()`, as
 * a reload does, and emits `runtime` (the state file is saved, a primary tells its workers).
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
  /** The upstreams as configured (lines with `resolve` included), from the last `configure()`. */
  #configured: UpstreamSpec[] = []
  #defaults: UpstreamDefaults = { maxFails: DEFAULTS.maxFails, failTimeout: DEFAULTS.failTimeout }
  /** What the admin API changed; a reload clears what it added and removed, and keeps the states. */
  #runtime: RuntimeState = emptyState()
  /** Each `resolve` line's addresses, by label. */
  readonly #found = new Map<string, Found[]>()
  #discovery: Discovery | undefined
  #configuredOnce = false

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
    this.#defaults = {
      maxFails: options.maxFails ?? DEFAULTS.maxFails,
      failTimeout: options.failTimeout ?? DEFAULTS.failTimeout,
      upstreamCa: options.upstreamCa,
      idle: options.upstreamIdleTimeout ?? DEFAULTS.upstreamIdleTimeout,
    }
    this.#configured = options.upstreams
    // A reload makes the file's list the truth again: what the admin API added or removed goes
    // (added upstreams drain away, removed ones come back); the admin states of those that stay are kept.
    if (this.#configuredOnce) this.#runtime = { ...this.#runtime, added: [], removed: [] }
    this.#configuredOnce = true
    this.#rebuild()
    // New or removed `resolve` lines: looked up, or no longer.
    if (this.#discovery !== undefined) void this.#watch()
    // New check settings start a new checker (counters from zero); upstreams keep their state.
    const checkerKey = JSON.stringify(options.health ?? null)
    if (checkerKey !== this.#checkerKey) {
      this.#checker?.stop()
      this.#checker = options.health && new HealthChecker(this.pool, options.health, this.report)
      this.#checkerKey = checkerKey
      if (this.#checking) this.#checker?.start()
    }
  }

  /** The runtime state: what the admin API changed, for the state file. */
  get runtime(): RuntimeState {
    return this.#runtime
  }

  /** The runtime state and DNS's answers, for a cluster's workers. */
  snapshot(): RuntimeSnapshot {
    return { ...this.#runtime, found: Object.fromEntries(this.#found) }
  }

  /** Takes a snapshot a primary sent, or a state file's state (with nothing found), silently. */
  restore(state: RuntimeState | RuntimeSnapshot): void {
    this.#runtime = { added: state.added, removed: state.removed, adminStates: state.adminStates }
    if ('found' in state) {
      this.#found.clear()
      for (const [label, found] of Object.entries(state.found)) this.#found.set(label, found)
    }
    this.#rebuild()
  }

  /**
   * Has `discovery` look up every `resolve` line, now and after each change, and takes its answers.
   * Resolves once every name had its first lookup. A cluster's workers have none: their primary sends what it found.
   */
  async discover(discovery: Discovery): Promise<void> {
    this.#discovery = discovery
    discovery.on('change', (label, found) => {
      this.#found.set(label, found)
      this.#rebuild()
      this.emit('runtime')
    })
    await this.#watch()
  }

  /** Watches the names of the lines in force, and stops watching those no longer listed. */
  async #watch(): Promise<void> {
    const discovery = this.#discovery
    if (discovery === undefined) return
    const names = [...this.#configured, ...this.#added()].flatMap(spec => dnsNameOf(spec) ?? [])
    const labels = new Set(names.map(nameOf))
    for (const label of discovery.labels) {
      if (labels.has(label)) continue
      discovery.unwatch(label)
      this.#found.delete(label)
    }
    await Promise.all(names.map(name => discovery.watch(name)))
  }

  /** Sets an upstream's admin state. @throws RuntimeError 404 for an id not in the pool. */
  setAdminState(id: string, state: AdminState): Upstream {
    const u = this.find(id)
    if (u === undefined) throw new RuntimeError(404, `404 Not Found: no upstream ${id}`)
    const change = u.setAdminState(state)
    const states = { ...this.#runtime.adminStates }
    if (state === 'ready') delete states[id]
    else states[id] = state
    this.#runtime = { ...this.#runtime, adminStates: states }
    if (change.changed)
      this.log?.(
        `upstream ${id}: admin state ${state}${change.slowStart && u.slowStart > 0 ? `, slow start over ${u.slowStart / 1000}s` : ''}`,
      )
    this.emit('runtime')
    return u
  }

  /**
   * Adds an upstream from an `--upstream` line or a config-file object; a `resolve` line is looked
   * up before this resolves. Returns the upstreams it added.
   * @throws RuntimeError 400 for a bad spec, 409 for one the pool has.
   */
  async add(raw: unknown): Promise<Upstream[]> {
    let spec: UpstreamSpec
    try {
      spec = parseUpstream(raw)
    } catch (err) {
      throw new RuntimeError(400, `400 Bad Request: ${(err as ConfigError).message}`)
    }
    const id = upstreamId(spec)
    const listed = [...this.#configured.filter(s => !this.#runtime.removed.includes(upstreamId(s))), ...this.#added()]
    if (this.find(id) !== undefined || listed.some(s => upstreamId(s) === id))
      throw new RuntimeError(409, `409 Conflict: upstream ${id} exists`)
    const removed = this.#runtime.removed.filter(r => r !== id)
    // One a reload configured and the API removed comes back as it was; another is added.
    const configured = removed.length !== this.#runtime.removed.length
    this.#runtime = { ...this.#runtime, removed, added: configured ? this.#runtime.added : [...this.#runtime.added, raw] }
    await this.#watch()
    this.#rebuild()
    this.emit('runtime')
    const name = dnsNameOf(spec)
    return this.pool.upstreams.filter(u => (name === undefined ? u.id === id : u.from === nameOf(name)))
  }

  /**
   * Drains an upstream and removes it once its requests finish, as a reload does.
   * @throws RuntimeError 404 for an id not in the pool; 409 for an address DNS found (remove its line).
   */
  async remove(id: string): Promise<Upstream> {
    const u = this.find(id)
    if (u === undefined) throw new RuntimeError(404, `404 Not Found: no upstream ${id}`)
    if (u.from !== undefined) throw new RuntimeError(409, `409 Conflict: ${id} comes from the DNS name ${u.from}; remove that line instead`)
    const added = this.#runtime.added.filter(raw => upstreamId(parseUpstream(raw)) !== id)
    const ours = added.length !== this.#runtime.added.length
    this.#runtime = { ...this.#runtime, added, removed: ours ? this.#runtime.removed : [...this.#runtime.removed, id] }
    await this.#watch()
    this.#rebuild()
    this.emit('runtime')
    return u
  }

  /** The specs the admin API added, parsed (they were checked when added, or when the state file was read). */
  #added(): UpstreamSpec[] {
    return this.#runtime.added.map(raw => parseUpstream(raw))
  }

  /** Rebuilds the pool from the configuration, the runtime state and DNS's answers. */
  #rebuild(): void {
    const specs = desiredSpecs(this.#configured, this.#added(), this.#runtime.removed, this.#found)
    const next = reconcile(this.pool.upstreams, this.#retired, specs, this.#defaults)
    this.pool.upstreams = next.upstreams
    this.#retired = next.retired
    const states: RuntimeState['adminStates'] = {}
    for (const u of next.upstreams) {
      const state = this.#runtime.adminStates[u.id]
      if (state !== undefined) states[u.id] = state
      if ((state ?? 'ready') !== u.adminState) u.setAdminState(state ?? 'ready')
    }
    // An upstream that left takes its state with it.
    this.#runtime = { ...this.#runtime, adminStates: states }
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
