// The primary of --workers N: it forks and replaces workers, holds the one view of upstream health, and adds their counts up.
import cluster, { type Worker } from 'node:cluster'
import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import { AggregatorRegistry } from 'prom-client'
import type { AdminSource } from '../admin/server.js'
import type { PurgeTarget } from '../cache/edge-cache.js'
import { buildStatus, mergeCounts, type ProcessCounts } from '../observe/status.js'
import type { StateView } from '../observe/view.js'
import { DEFAULTS, type BalancerOptions, type PolicyName } from '../options.js'
import type { CheckResult } from '../upstreams/health-check.js'
import { UpstreamGroup } from '../upstreams/group.js'
import type { Pool } from '../upstreams/pool.js'
import type { HealthChange, Upstream } from '../upstreams/upstream.js'
import {
  applyNews,
  isOurs,
  newsOf,
  type CountsAsk,
  type HealthNews,
  type PurgeAsk,
  type RuntimeNews,
  type ToPrimary,
  type Welcome,
} from './messages.js'

/** A primary's configuration: the workers', with the policy named (the status shows it). */
export type PrimaryOptions = BalancerOptions & { policy: PolicyName }

/** How long the primary waits for the workers' counts before answering with those it has. */
const COUNTS_WAIT_MS = 1000
/** How long a purge waits for every worker to say it purged; one that has not by then is left out of the count. */
const PURGE_WAIT_MS = 10_000

/**
 * The primary of `--workers N`: it forks the workers, which share the listening port
 * (node:cluster hands connections round-robin), replaces one that dies, keeps one view of
 * health for all of them, and adds their counts up for the admin listener.
 *
 * It serves no request: it holds an upstream group, the upstreams' state as every worker sees
 * it, and runs the active checks once, instead of once per worker.
 *
 * Events: `listening` (address) once every worker listens; `worker` (line) for each worker
 * that exits and is replaced; `failed` (line) when a worker exits on its own before it ever
 * listened, which a new one would repeat (a taken port): the primary stops then.
 */
export class Primary extends EventEmitter implements StateView {
  readonly upstreams = new UpstreamGroup()
  readonly startedAt = Date.now()
  /** The primary never drains: it signals its workers to. */
  readonly draining = false
  #policyName: PolicyName = DEFAULTS.policy
  readonly #count: number
  readonly #env: Record<string, string>
  readonly #listened = new WeakSet<Worker>()
  readonly #aggregator = new AggregatorRegistry()
  /** Requests for counts, by sequence number: each takes the replies until all came or time is up. */
  readonly #waiting = new Map<number, (counts: ProcessCounts) => void>()
  /** Purges under way, by sequence number: each takes the replies until all came or time is up. */
  readonly #purging = new Map<number, (purged: number | null) => void>()
  #seq = 0
  /** Runtime snapshots sent and not yet applied, by `seq worker-id`. */
  readonly #applied = new Map<string, () => void>()
  #stopping = false
  #started = false

  /**
   * @param options the workers' configuration, for the upstreams' state (the workers read their own).
   * @param count how many workers to run.
   * @param env what each worker gets in its environment besides the primary's.
   */
  constructor(options: PrimaryOptions, count: number, env: Record<string, string> = {}) {
    super()
    this.reload(options)
    this.#count = count
    this.#env = env
  }

  get pool(): Pool {
    return this.upstreams.pool
  }

  get retired(): readonly Upstream[] {
    return this.upstreams.retired
  }

  get policyName(): PolicyName {
    return this.#policyName
  }

  lastCheck(id: string): CheckResult | undefined {
    return this.upstreams.checker?.lastResult(id)
  }

  /** Applies the configuration again, as the workers do on the SIGHUP it passes on. */
  reload(options: PrimaryOptions): void {
    this.upstreams.configure(options)
    this.#policyName = options.policy
  }

  /** The workers running now and reachable (a dying one is not). */
  get workers(): Worker[] {
    // Defined in a primary (only a worker's is undefined), and holding no holes.
    return Object.values(cluster.workers as Record<string, Worker>).filter(w => w.isConnected())
  }

  start(): void {
    cluster.on('message', this.#onMessage)
    cluster.on('listening', this.#onListening)
    cluster.on('exit', this.#onExit)
    // Active checks run here, once; their changes go to every worker.
    this.upstreams.on('health', (change: HealthChange) => this.#broadcast(newsOf(change)))
    // So do DNS's answers and the admin API's changes.
    this.upstreams.on('runtime', () => void this.share())
    this.upstreams.startChecks()
    for (let i = 0; i < this.#count; i++) cluster.fork(this.#env)
  }

  /** Signals every worker to drain (SIGTERM), and resolves once all have exited. */
  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    this.#stopping = true
    this.upstreams.stopChecks()
    const workers = this.workers
    for (const w of workers) w.process.kill(signal)
    return Promise.all(workers.map(w => new Promise(resolve => w.once('exit', resolve)))).then(() => undefined)
  }

  /** Passes a signal on to every worker (SIGHUP: each reads its configuration again). */
  signal(signal: NodeJS.Signals): void {
    for (const w of this.workers) w.process.kill(signal)
  }

  /** Every worker's counts, added up; a worker that does not answer in time is left out. */
  counts(): Promise<ProcessCounts> {
    const workers = this.workers
    const seq = ++this.#seq
    const replies: ProcessCounts[] = []
    return new Promise(resolve => {
      const finish = () => {
        clearTimeout(timer)
        this.#waiting.delete(seq)
        resolve(mergeCounts(replies))
      }
      const timer = setTimeout(finish, COUNTS_WAIT_MS)
      this.#waiting.set(seq, counts => {
        if (replies.push(counts) === workers.length) finish()
      })
      for (const w of workers) w.send({ switchyard: 'counts?', seq } satisfies CountsAsk)
    })
  }

  /**
   * Purges every worker's edge cache, and resolves once each has (or PURGE_WAIT_MS passed): the
   * responses removed in all, or undefined when no worker has a cache.
   */
  purge(target: PurgeTarget): Promise<number | undefined> {
    const workers = this.workers
    const seq = ++this.#seq
    const replies: (number | null)[] = []
    return new Promise(resolve => {
      const finish = () => {
        clearTimeout(timer)
        this.#purging.delete(seq)
        const counted = replies.filter((n): n is number => n !== null)
        resolve(counted.length === 0 ? undefined : counted.reduce((a, b) => a + b, 0))
      }
      const timer = setTimeout(finish, PURGE_WAIT_MS)
      this.#purging.set(seq, purged => {
        if (replies.push(purged) === workers.length) finish()
      })
      for (const w of workers) w.send({ switchyard: 'purge?', seq, target } satisfies PurgeAsk)
    })
  }

  /** What the admin listener shows: the primary's view of health, with every worker's counts. */
  source(): AdminSource {
    return {
      status: async () => buildStatus(this, await this.counts(), this.workers.length),
      metrics: () => this.#aggregator.clusterMetrics(),
      contentType: this.#aggregator.contentType,
      purge: target => this.purge(target),
    }
  }

  /**
   * Sends every worker the upstreams' runtime state, and resolves once each has applied it (a
   * worker that exits meanwhile is not waited for): an admin call is answered only then.
   */
  share(): Promise<void> {
    const seq = ++this.#seq
    const snapshot = this.upstreams.snapshot()
    const applied = this.workers.map(
      w =>
        new Promise<void>(resolve => {
          const key = `${seq} ${w.id}`
          // Acknowledged, or the worker is gone (its replacement gets the state in its welcome).
          const done = (): void => {
            w.off('exit', done)
            this.#applied.delete(key)
            resolve()
          }
          this.#applied.set(key, done)
          w.once('exit', done)
          w.send({ switchyard: 'runtime', seq, snapshot } satisfies RuntimeNews)
        }),
    )
    return Promise.all(applied).then(() => undefined)
  }

  #broadcast(news: HealthNews, except?: Worker): void {
    for (const w of this.workers) if (w !== except) w.send(news)
  }

  #onMessage = (worker: Worker, m: unknown): void => {
    if (!isOurs<ToPrimary>(m)) return
    if (m.switchyard === 'health') {
      applyNews(this.upstreams, m)
      this.#broadcast(m, worker)
    } else if (m.switchyard === 'hello') {
      this.#welcome(worker)
    } else if (m.switchyard === 'purged') {
      this.#purging.get(m.seq)?.(m.purged)
    } else if (m.switchyard === 'applied') {
      this.#applied.get(`${m.seq} ${worker.id}`)?.()
    } else {
      // A reply that comes after its request timed out has nowhere to go.
      this.#waiting.get(m.seq)?.(m.counts)
    }
  }

  /** A new worker (or a replacement) starts with the health every other worker has. */
  #welcome(worker: Worker): void {
    const now = performance.now()
    for (const u of this.pool.upstreams) {
      // A down upstream always has its last change: the one that took it down.
      const reason = u.lastChange?.reason as string
      if (!u.healthy) worker.send(newsOf({ upstream: u, up: false, reason, source: 'active' }))
      const left = u.passiveDownFor(now)
      if (left > 0) worker.send(newsOf({ upstream: u, up: false, reason, source: 'passive' }, left))
    }
    worker.send({ switchyard: 'runtime', seq: 0, snapshot: this.upstreams.snapshot() } satisfies RuntimeNews)
    worker.send({ switchyard: 'welcome' } satisfies Welcome)
  }

  /** Once every worker of the first batch listens, the balancer is up. */
  #onListening = (worker: Worker, address: { address: string; port: number }): void => {
    this.#listened.add(worker)
    if (this.#started || this.workers.some(w => !this.#listened.has(w))) return
    this.#started = true
    this.emit('listening', address)
  }

  #onExit = (worker: Worker, code: number | null, signal: string | null): void => {
    if (this.#stopping) return
    const how = signal === null ? `code ${code}` : `signal ${signal}`
    // Exiting on its own before listening is a start-up error (a taken port, say), which a
    // new worker would repeat; killed, it is replaced like any other.
    if (!this.#listened.has(worker) && signal === null) {
      this.emit('failed', `worker ${worker.process.pid} exited with ${how} before it listened`)
      return
    }
    this.emit('worker', `worker ${worker.process.pid} exited with ${how}; starting another`)
    cluster.fork(this.#env)
  }
}
