// The forwarding side of the balancer: the settings and parts every request shares, and one Exchange per request.
import { Agent, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Outcome, RequestRecorder } from '../observe/recorder.js'
import { DEFAULTS, type BalancerOptions, type PolicyName } from '../options.js'
import { createPolicy } from '../select/policies.js'
import { WaitQueue } from '../select/queue.js'
import { Sticky } from '../select/sticky.js'
import type { Pool } from '../upstreams/pool.js'
import type { HealthChange, Upstream } from '../upstreams/upstream.js'
import type { ForwardContext, ForwardSettings } from './context.js'
import { createEngine } from './engine.js'
import { Exchange } from './exchange.js'

/**
 * Sends requests to upstreams, one `Exchange` per client request, through the engine. The
 * engine builds the upstream request (target, method, headers, agent); the exchange owns the
 * rest: the path, hop-by-hop headers, when the body is read, timeouts, retries and the response.
 */
export class Forwarder implements ForwardContext {
  readonly engine = createEngine()
  readonly fresh = new Agent()
  /** Where requests wait when every candidate is at max_conns: one queue, kept across reloads. */
  readonly queue = new WaitQueue(DEFAULTS.queueSize, DEFAULTS.queueTimeout)
  settings: ForwardSettings
  draining = false
  readonly #recorder: RequestRecorder
  readonly #reportHealth: (change: HealthChange | undefined) => void
  #policyName: PolicyName = DEFAULTS.policy
  #policyKey = ''
  #idle = 0

  /**
   * @param pool the upstreams requests are spread over (kept, and changed in place on reload).
   * @param recorder counts each finished request and writes its access-log entry.
   * @param reportHealth told each change of an upstream's health that a request saw.
   */
  constructor(options: BalancerOptions, pool: Pool, recorder: RequestRecorder, reportHealth: (change: HealthChange | undefined) => void) {
    this.#recorder = recorder
    this.#reportHealth = reportHealth
    this.settings = this.#settings(options, pool, undefined)
  }

  /** The name of the balancing policy in force. */
  get policyName(): PolicyName {
    return this.#policyName
  }

  /** The keep-alive agent for upstream connections. */
  get agent(): Agent {
    return this.settings.agent
  }

  /** Applies new settings (a reload); requests in flight read them from their next step on. */
  configure(options: BalancerOptions): void {
    this.settings = this.#settings(options, this.settings.pool, this.settings)
  }

  #settings(options: BalancerOptions, pool: Pool, previous: ForwardSettings | undefined): ForwardSettings {
    // A changed policy starts afresh; an unchanged one keeps its state (round-robin position).
    let policy = previous?.policy
    const policyKey = JSON.stringify([options.policy, options.hashKey])
    if (policy === undefined || policyKey !== this.#policyKey) {
      this.#policyName = options.policy ?? DEFAULTS.policy
      policy = createPolicy(this.#policyName, options.hashKey)
      this.#policyKey = policyKey
    }
    this.queue.size = options.queueSize ?? DEFAULTS.queueSize
    this.queue.timeout = options.queueTimeout ?? DEFAULTS.queueTimeout
    // http-proxy opens a connection per request unless it is given a keep-alive agent. LIFO
    // reuses the warmest socket and lets the others idle out. A new idle time needs a new
    // agent; the old one's idle sockets time out on their own, and its busy ones finish.
    const idle = options.upstreamIdleTimeout ?? DEFAULTS.upstreamIdleTimeout
    let agent = previous?.agent
    if (agent === undefined || idle !== this.#idle) {
      agent = new Agent({ keepAlive: true, scheduling: 'lifo', timeout: idle })
      this.#idle = idle
    }
    return {
      pool,
      policy,
      queue: this.queue,
      sticky: options.sticky && new Sticky(options.sticky),
      agent,
      connectTimeout: options.connectTimeout ?? DEFAULTS.connectTimeout,
      timeout: options.timeout ?? DEFAULTS.timeout,
      retryOnTimeout: options.retryOnTimeout ?? DEFAULTS.retryOnTimeout,
      retries: options.retries ?? DEFAULTS.retries,
      retryTimeout: options.retryTimeout ?? DEFAULTS.retryTimeout,
      clientBodyTimeout: options.clientBodyTimeout ?? DEFAULTS.clientBodyTimeout,
      tunnelTimeout: options.tunnelTimeout ?? DEFAULTS.tunnelTimeout,
    }
  }

  /** Forwards a request that passed the checks (server/requests.ts). */
  forward(req: IncomingMessage, res: ServerResponse): void {
    new Exchange(this, req, res).next()
  }

  /** Answers a request itself with `status` and one line of text, closing the connection; it is counted and logged like any other. */
  refuse(req: IncomingMessage, res: ServerResponse, status: number, message: string): void {
    new Exchange(this, req, res).answer(status, message, true)
  }

  reportHealth(change: HealthChange | undefined): void {
    this.#reportHealth(change)
  }

  finished(req: IncomingMessage, status: number, upstream: Upstream | undefined, outcome: Outcome): void {
    this.#recorder.record(req, status, upstream, outcome)
  }
}
