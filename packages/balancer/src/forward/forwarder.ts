// The forwarding side of the balancer: the settings and parts every request shares, and one Exchange per request.
import { Agent, IncomingMessage, ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { CacheStatus, CacheUpstreams, ResponseTap } from '../cache/types.js'
import type { Outcome, RequestRecorder } from '../observe/recorder.js'
import { DEFAULTS, type BalancerOptions, type PolicyName } from '../options.js'
import { createPolicy } from '../select/policies.js'
import { WaitQueue } from '../select/queue.js'
import { Sticky } from '../select/sticky.js'
import type { Pool } from '../upstreams/pool.js'
import type { HealthChange, Upstream } from '../upstreams/upstream.js'
import { KeepAliveAgent } from '../upstreams/keep-alive.js'
import type { ForwardContext, ForwardSettings } from './context.js'
import { hstsValue } from '../server/https-redirect.js'
import { createEngine } from './engine.js'
import { Exchange } from './exchange.js'
import { clientNoteOf, peerOf } from './headers.js'

/**
 * Sends requests to upstreams, one `Exchange` per client request, through the engine. The
 * engine builds the upstream request (target, method, headers, agent); the exchange owns the
 * rest: the path, hop-by-hop headers, when the body is read, timeouts, retries and the response.
 */
export class Forwarder implements ForwardContext, CacheUpstreams {
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
      agent = new KeepAliveAgent(idle)
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
      hsts: options.hsts === undefined ? undefined : hstsValue(options.hsts),
    }
  }

  /** Forwards a request that passed the checks (server/requests.ts); `tap`: the edge cache watching it. */
  forward(req: IncomingMessage, res: ServerResponse, tap?: ResponseTap): void {
    new Exchange(this, req, res, tap).next()
  }

  /**
   * A background refresh for the edge cache: a GET like `req`, sent as any request is (choice,
   * retries, timeouts, health), on behalf of no client. Its request and response objects are
   * detached from the client's connection: the client leaving does not stop it, and the tap takes
   * every answer, so nothing is written to them. It is not logged, as nginx does not log the
   * subrequest of `proxy_cache_background_update`; its upstream's counters and health see it.
   */
  refresh(req: IncomingMessage, tap: ResponseTap): void {
    const get = new IncomingMessage(req.socket)
    get.method = 'GET'
    get.url = req.url as string
    get.httpVersionMajor = 1
    get.httpVersionMinor = 1
    get.httpVersion = '1.1'
    const headers = { ...req.headers }
    delete headers['content-length']
    delete headers['transfer-encoding']
    get.headers = headers
    new Exchange(this, get, new ServerResponse(get), tap).next()
  }

  /** The edge cache answered `req` itself: counted and logged like any request, with no upstream. */
  answered(req: IncomingMessage, res: ServerResponse, status: CacheStatus, bytes: number): void {
    // A hit is answered within the turn its request came in: now is when it came.
    this.#recorder.record(req, res.headersSent ? res.statusCode : 499, undefined, {
      client: clientNoteOf(req)?.peer ?? peerOf(req.socket),
      time: Date.now(),
      start: performance.now(),
      upstreamMs: undefined,
      bytes,
      retries: 0,
      cache: undefined,
      edgeCache: status,
      fromCache: true,
    })
  }

  /** Answers a request itself with `status` and one line of text, closing the connection; it is counted and logged like any other. */
  refuse(req: IncomingMessage, res: ServerResponse, status: number, message: string): void {
    new Exchange(this, req, res).answer(status, message, true)
  }

  /** Answers 308 to `location` (--redirect-https), counted and logged like any other answer. */
  redirect(req: IncomingMessage, res: ServerResponse, location: string): void {
    res.setHeader('location', location)
    new Exchange(this, req, res).answer(308, `308 Permanent Redirect: ${location}`, false)
  }

  reportHealth(change: HealthChange | undefined): void {
    this.#reportHealth(change)
  }

  finished(req: IncomingMessage, status: number, upstream: Upstream | undefined, outcome: Outcome): void {
    this.#recorder.record(req, status, upstream, outcome)
  }
}
