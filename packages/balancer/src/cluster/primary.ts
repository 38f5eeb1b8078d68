import cluster, { type Worker } from 'node:cluster'
import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import { AggregatorRegistry } from 'prom-client'
import type { AdminSource } from '../admin/server.js'
import type { Balancer } from '../balancer.js'
import { createMetrics } from '../observe/metrics.js'
import { buildStatus, mergeCounts, processCounts, type ProcessCounts } from '../observe/status.js'
import type { HealthChange } from '../upstreams/upstream.js'

/**
 * A health flip one process saw, for the others to apply: passive ones come from the worker
 * whose request failed, active ones from the primary, which runs the checks once for all.
 */
export interface HealthNews {
  sy: 'health'
  id: string
  up: boolean
  source: HealthChange['source']
  reason: string
  /** For passive news of a failure: how long the upstream stays out, in ms. */
  ms: number
}

/** After the news a hello asked for: the worker may listen. */
interface Welcome {
  sy: 'welcome'
}

interface CountsAsk {
  sy: 'counts?'
  seq: number
}

/** A worker is ready for news: the primary sends it the health every other worker has. */
interface Hello {
  sy: 'hello'
}

interface CountsReply {
  sy: 'counts'
  seq: number
  counts: ProcessCounts
}

type ToWorker = HealthNews | CountsAsk | Welcome
type ToPrimary = HealthNews | CountsReply | Hello

/** Our messages carry `sy`; prom-client's own (cluster metrics) share the channel. */
function isOurs<T>(m: unknown): m is T {
  return typeof m === 'object' && m !== null && 'sy' in m
}

/**
 * Applies news to a pool, silently: the process that saw the change has logged it if it was a
 * flip. Every change travels, flip or not, so that each process holds both kinds of health as
 * they are: the checks taking out an upstream that a failed request already took out flip
 * nothing, but the workers must still keep it out once fail_timeout ends.
 */
function apply(balancer: Balancer, news: HealthNews): void {
  const u = balancer.pool.upstreams.find(x => x.id === news.id)
  if (u === undefined) return
  if (news.source === 'active') u.setHealthy(news.up, news.reason)
  else u.applyPassive(news.up, news.ms, news.reason)
}

/** News of a change, for the other processes; whether it flipped availability is for each to tell. */
function newsOf(change: Omit<HealthChange, 'flipped'>, ms = change.upstream.failTimeout): HealthNews {
  return { sy: 'health', id: change.upstream.id, up: change.up, source: change.source, reason: change.reason, ms }
}

/** A worker's link to its primary: `process`, in the CLI. */
export interface Channel {
  send(message: unknown): unknown
  on(event: 'message', listener: (message: unknown) => void): unknown
}

/**
 * The worker's side of the cluster: it sends the primary each passive flip it sees, applies
 * the flips others saw, answers requests for its counts, and lets prom-client's
 * AggregatorRegistry read its metrics. Resolves once the primary has told it the health
 * every other worker has: only then may it listen, so a replacement never serves with a
 * stale view.
 */
export function joinCluster(balancer: Balancer, channel: Channel): Promise<void> {
  // prom-client answers the primary's requests for metrics only once an AggregatorRegistry
  // exists in the worker too (its listeners are added by the constructor).
  new AggregatorRegistry()
  AggregatorRegistry.setRegistries([createMetrics(balancer)])
  balancer.on('health', (change: HealthChange) => channel.send(newsOf(change)))
  return new Promise<void>(welcomed => {
    channel.on('message', m => {
      if (!isOurs<ToWorker>(m)) return
      if (m.sy === 'health') apply(balancer, m)
      else if (m.sy === 'welcome') welcomed()
      else channel.send({ sy: 'counts', seq: m.seq, counts: processCounts(balancer) } satisfies CountsReply)
    })
    // Not at 'online': node:cluster says that before this code runs, and news sent then is lost.
    channel.send({ sy: 'hello' } satisfies Hello)
  })
}

/** How long the primary waits for the workers' counts before answering with those it has. */
const COUNTS_WAIT_MS = 1000

/**
 * The primary of `--workers N`: it forks the workers, which share the listening port
 * (node:cluster hands connections round-robin), replaces one that dies, keeps one view of
 * health for all of them, and adds their counts up for the admin listener.
 *
 * Its own `balancer` never listens: it holds the upstreams' state as every worker sees it,
 * and runs the active checks once, instead of once per worker.
 *
 * Events: `listening` (address) once every worker listens; `worker` (line) for each worker
 * that exits and is replaced; `failed` (line) when a worker exits on its own before it ever
 * listened, which a new one would repeat (a taken port): the primary stops then.
 */
export class Primary extends EventEmitter {
  readonly balancer: Balancer
  readonly #count: number
  readonly #env: Record<string, string>
  readonly #listened = new WeakSet<Worker>()
  readonly #aggregator = new AggregatorRegistry()
  /** Requests for counts, by sequence number: each takes the replies until all came or time is up. */
  readonly #waiting = new Map<number, (counts: ProcessCounts) => void>()
  #seq = 0
  #stopping = false
  #started = false

  constructor(balancer: Balancer, count: number, env: Record<string, string> = {}) {
    super()
    this.balancer = balancer
    this.#count = count
    this.#env = env
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
    // Active checks run here, once; their flips go to every worker.
    this.balancer.on('health', (change: HealthChange) => this.#broadcast(newsOf(change)))
    this.balancer.checkHealth()
    for (let i = 0; i < this.#count; i++) cluster.fork(this.#env)
  }

  /** Signals every worker to drain (SIGTERM), and resolves once all have exited. */
  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    this.#stopping = true
    this.balancer.healthChecker?.stop()
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
      for (const w of workers) w.send({ sy: 'counts?', seq } satisfies CountsAsk)
    })
  }

  /** What the admin listener shows: the primary's view of health, with every worker's counts. */
  source(): AdminSource {
    return {
      status: async () => buildStatus(this.balancer, await this.counts(), this.workers.length),
      metrics: () => this.#aggregator.clusterMetrics(),
      contentType: this.#aggregator.contentType,
    }
  }

  #broadcast(news: HealthNews, except?: Worker): void {
    for (const w of this.workers) if (w !== except) w.send(news)
  }

  #onMessage = (worker: Worker, m: unknown): void => {
    if (!isOurs<ToPrimary>(m)) return
    if (m.sy === 'health') {
      apply(this.balancer, m)
      this.#broadcast(m, worker)
    } else if (m.sy === 'hello') {
      this.#welcome(worker)
    } else {
      // A reply that comes after its request timed out has nowhere to go.
      this.#waiting.get(m.seq)?.(m.counts)
    }
  }

  /** A new worker (or a replacement) starts with the health every other worker has. */
  #welcome(worker: Worker): void {
    const now = performance.now()
    for (const u of this.balancer.pool.upstreams) {
      // A down upstream always has its last change: the one that took it down.
      const reason = u.lastChange?.reason as string
      if (!u.healthy) worker.send(newsOf({ upstream: u, up: false, reason, source: 'active' }))
      const left = u.passiveDownFor(now)
      if (left > 0) worker.send(newsOf({ upstream: u, up: false, reason, source: 'passive' }, left))
    }
    worker.send({ sy: 'welcome' } satisfies Welcome)
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
