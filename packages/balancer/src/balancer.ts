// The composition root: a balancer wires its listeners, its upstream group and its forwarding together; reload and drain.
import { EventEmitter } from 'node:events'
import type { Agent, IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Forwarder } from './forward/forwarder.js'
import { WebSocketProxy } from './forward/websocket.js'
import { RequestRecorder } from './observe/recorder.js'
import type { Stats } from './observe/stats.js'
import type { BalancerView } from './observe/view.js'
import { DEFAULTS, type BalancerOptions, type PolicyName } from './options.js'
import { Connections, applyTimeouts, createListener, type Handlers, type ListenerTimeouts } from './server/listener.js'
import { Reclaimer, type Reclaimed } from './server/reclaim.js'
import { closing, refusal } from './server/requests.js'
import type { CheckResult } from './upstreams/health-check.js'
import { UpstreamGroup } from './upstreams/group.js'
import type { Pool } from './upstreams/pool.js'
import type { Upstream } from './upstreams/upstream.js'

/**
 * A load balancer: it spreads the requests its listeners accept over `upstreams`. It is
 * returned not listening; `listen()` opens a listener, `drain()` or `close()` ends them all.
 *
 * Events: `health` (HealthChange) for each change of an upstream's health; `reload` once a
 * reload is applied; `reclaimed` (Reclaimed) after memory was given back.
 */
export class Balancer extends EventEmitter implements BalancerView {
  /** When the balancer was made, ms since the epoch. */
  readonly startedAt = Date.now()
  /** The upstreams, their health and the active checks. */
  readonly upstreams: UpstreamGroup
  /** Its listeners: node:http servers, in the order `listen()` opened them. */
  readonly servers: Server[] = []
  readonly #recorder = new RequestRecorder()
  readonly #forwarder: Forwarder
  readonly #websockets: WebSocketProxy
  readonly #reclaimer = new Reclaimer(DEFAULTS.reclaimAfter)
  readonly #connections = new Connections(open => this.#reclaimer.count(open))
  /** The balancer's handlers, handed to every listener. */
  readonly #handlers: Handlers
  #timeouts: ListenerTimeouts
  #log: ((line: string) => void) | undefined
  #stopped = false

  constructor(options: BalancerOptions) {
    super()
    this.upstreams = new UpstreamGroup()
    this.upstreams.configure(options)
    this.upstreams.on('health', change => this.emit('health', change))
    this.#forwarder = new Forwarder(options, this.upstreams.pool, this.#recorder, this.upstreams.report)
    this.#websockets = new WebSocketProxy(this.#forwarder)
    this.#handlers = { request: this.#onRequest, upgrade: this.#websockets.upgrade }
    this.#timeouts = this.#apply(options)
    this.#reclaimer.on('reclaimed', this.#onReclaimed)
  }

  get pool(): Pool {
    return this.upstreams.pool
  }

  get retired(): readonly Upstream[] {
    return this.upstreams.retired
  }

  lastCheck(id: string): CheckResult | undefined {
    return this.upstreams.checker?.lastResult(id)
  }

  /** The name of the balancing policy in force. */
  get policyName(): PolicyName {
    return this.#forwarder.policyName
  }

  /** Whether `drain()` was called. */
  get draining(): boolean {
    return this.#forwarder.draining
  }

  get totals(): Stats {
    return this.#recorder.totals
  }

  get unrouted(): Stats {
    return this.#recorder.unrouted
  }

  /** Client connections open now, across every listener. */
  get connectionsOpen(): number {
    return this.#connections.open
  }

  /** Client connections accepted since start. */
  get connectionsTotal(): number {
    return this.#connections.total
  }

  /** Requests waiting for a slot because every candidate is at max_conns. */
  get waiting(): number {
    return this.#forwarder.queue.length
  }

  /** The keep-alive agent for upstream connections. */
  get agent(): Agent {
    return this.#forwarder.agent
  }

  /** Whether a listener is listening. */
  get listening(): boolean {
    return this.servers.some(s => s.listening)
  }

  /** The address of the first listener, once it listens. */
  address(): AddressInfo | undefined {
    return (this.servers[0]?.address() ?? undefined) as AddressInfo | undefined
  }

  /**
   * Opens a plain-HTTP listener on `port` (0 picks a free one) and `host`, and starts the active
   * health checks with the first. Resolves with its address; rejects with the listen error
   * (EADDRINUSE, EACCES), and the balancer stays as it was.
   */
  listen(port: number, host?: string): Promise<AddressInfo> {
    const server = createListener(this.#handlers, this.#connections, this.#timeouts)
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        this.servers.push(server)
        this.upstreams.startChecks()
        resolve(server.address() as AddressInfo)
      })
    })
  }

  /**
   * Applies a new configuration without dropping a connection or a request (SIGHUP). An
   * upstream kept by address keeps its state; requests in flight finish where they are.
   */
  reload(options: BalancerOptions): void {
    this.upstreams.configure(options)
    this.#forwarder.configure(options)
    this.#timeouts = this.#apply(options)
    for (const server of this.servers) applyTimeouts(server, this.#timeouts)
    this.emit('reload')
  }

  /** Applies what the upstream group and the forwarder do not hold; returns the listeners' timeouts. */
  #apply(options: BalancerOptions): ListenerTimeouts {
    this.#log = options.log
    this.#recorder.accessLog = options.accessLog
    this.#reclaimer.min = options.reclaimAfter ?? DEFAULTS.reclaimAfter
    return {
      clientHeaderTimeout: options.clientHeaderTimeout ?? DEFAULTS.clientHeaderTimeout,
      keepAliveTimeout: options.keepAliveTimeout ?? DEFAULTS.keepAliveTimeout,
    }
  }

  /**
   * Stops accepting, answers requests in flight with `Connection: close`, closes idle
   * keep-alive connections, and resolves once every connection is gone; what is still open
   * after `timeout` ms is cut. Open WebSockets are left to finish too (nginx's
   * worker_shutdown_timeout): Node no longer counts an upgraded socket as an HTTP
   * connection, so closeAllConnections() would leave them open, and they are cut apart.
   */
  drain(timeout: number): Promise<void> {
    this.#forwarder.draining = true
    const cut = setTimeout(() => this.#cutAll(), timeout)
    const closed = Promise.all(this.servers.map(server => new Promise<void>(resolve => server.close(() => resolve()))))
    for (const server of this.servers) server.closeIdleConnections()
    // Once no HTTP connection is left, nothing needs the checks or the upstream agent.
    void closed.then(() => this.#stop())
    return Promise.all([closed, this.#websockets.drained()]).then(() => clearTimeout(cut))
  }

  /**
   * Stops at once: stops accepting, cuts every connection (requests in flight and WebSockets
   * alike), stops the active checks, and resolves once every listener is closed.
   */
  close(): Promise<void> {
    const closed = this.servers.map(server => new Promise<void>(resolve => server.close(() => resolve())))
    this.#cutAll()
    this.#stop()
    return Promise.all(closed).then(() => undefined)
  }

  #cutAll(): void {
    for (const server of this.servers) server.closeAllConnections()
    this.#websockets.closeAll()
  }

  /** What closing ends besides the listeners: the reclaimer, the checks, the upstream connections. */
  #stop(): void {
    if (this.#stopped) return
    this.#stopped = true
    this.#reclaimer.stop()
    this.upstreams.stopChecks()
    this.agent.destroy()
  }

  #onReclaimed = (r: Reclaimed): void => {
    const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MB`
    this.#log?.(
      `${r.peak} connections fell to ${this.connectionsOpen}: memory reclaimed, RSS ${mb(r.rssBefore)} -> ${mb(r.rssAfter)}, heap ${mb(r.heapBefore)} -> ${mb(r.heapAfter)}`,
    )
    this.emit('reclaimed', r)
  }

  /**
   * Every request a listener accepts: the checks (server/requests.ts), then forwarding. An edge
   * cache goes between the two: it answers from memory, or hands the request on.
   */
  #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // Pipelined behind a response that ends the connection: never forwarded. Node closes the
    // connection once that response is written, which ends this request too.
    if (closing(req.socket)) return
    // A malformed request ends its connection, as in nginx.
    const refused = refusal(req)
    if (refused === undefined) this.#forwarder.forward(req, res)
    else this.#forwarder.refuse(req, res, refused.status, refused.message)
  }
}

/** Creates a balancer, not listening yet. */
export function createBalancer(options: BalancerOptions): Balancer {
  return new Balancer(options)
}
