// The composition root: a balancer wires its listeners, its upstream group and its forwarding together; reload and drain.
import { EventEmitter } from 'node:events'
import type { Agent, IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { EdgeCache, type PurgeTarget } from './cache/edge-cache.js'
import type { CacheCounts } from './cache/counters.js'
import { Forwarder } from './forward/forwarder.js'
import { WebSocketProxy } from './forward/websocket.js'
import { RequestRecorder } from './observe/recorder.js'
import type { Stats } from './observe/stats.js'
import type { BalancerView, ListenerConnections } from './observe/view.js'
import { DEFAULTS, type BalancerOptions, type PolicyName } from './options.js'
import { answerRaw } from './server/answers.js'
import type { CertificateStore } from './server/certificate-store.js'
import type { TlsVersion } from './server/certificates.js'
import type { H2Request, H2Response } from './server/h2-messages.js'
import { httpsRedirect } from './server/https-redirect.js'
import { Connections, applyTimeouts, createListener, serveHttp, type Handlers, type ListenerTimeouts } from './server/listener.js'
import { TlsListener, type TlsProtocol } from './server/tls-listener.js'
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
  readonly #servers: Server[] = []
  /** Its HTTPS listeners, in the order `listenHttps()` opened them. */
  readonly httpsListeners: TlsListener[] = []
  /** Connections open on the plain listeners. */
  #plainOpen = 0
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
  /** The edge cache, when `cache` is set; and the options it was made with, to tell whether a reload changed them. */
  #cache: EdgeCache | undefined
  #cacheKey = 'null'

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

  /** Its plain listeners: node:http servers, in the order `listen()` opened them. */
  get servers(): readonly Server[] {
    return this.#servers
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

  /** The edge cache, when it is on. */
  get cache(): EdgeCache | undefined {
    return this.#cache
  }

  /** The edge cache's figures; null when it is off. */
  cacheCounts(): CacheCounts | null {
    return this.#cache?.counts() ?? null
  }

  /**
   * Removes what `target` names from the edge cache; returns how many responses went, or
   * undefined when the cache is off.
   */
  purgeCache(target: PurgeTarget): number | undefined {
    return this.#cache?.purge(target)
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
    return this.servers.some(s => s.listening) || this.httpsListeners.some(l => l.https.listening)
  }

  /**
   * Client connections open now, by listener and protocol: `http` (plain HTTP/1.1) and `https`
   * (`h2` or `http/1.1`, counted once the TLS handshake chose one).
   */
  get listenerConnections(): ListenerConnections[] {
    const out: ListenerConnections[] = []
    if (this.servers.length > 0) out.push({ listener: 'http', protocol: 'http/1.1', open: this.#plainOpen })
    if (this.httpsListeners.length > 0) {
      for (const protocol of ['h2', 'http/1.1'] as TlsProtocol[]) {
        out.push({ listener: 'https', protocol, open: this.httpsListeners.reduce((n, l) => n + l.open[protocol], 0) })
      }
    }
    return out
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
  listen(port: number, host?: string, options: PlainListenOptions = {}): Promise<AddressInfo> {
    const to = options.redirectHttpsTo
    const handlers = to === undefined ? this.#handlers : this.#redirecting(to)
    const server = createListener(handlers, this.#connections, this.#timeouts)
    server.on('connection', this.#countPlain)
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        this.#servers.push(server)
        this.upstreams.startChecks()
        resolve(server.address() as AddressInfo)
      })
    })
  }

  /**
   * Opens an HTTPS listener on `port` and `host`: TLS with the certificates of `options`, then
   * HTTP/2 or HTTP/1.1 by ALPN, every request handed to the same handlers as the plain
   * listener's. Resolves with its address; rejects with the listen error.
   */
  listenHttps(port: number, host: string | undefined, options: HttpsListenOptions): Promise<AddressInfo> {
    const listener = new TlsListener(
      {
        setupHttp1: server => serveHttp(server, this.#handlers, this.#connections, this.#timeouts),
        // The HTTP/2 messages have what the forward path reads of an IncomingMessage and a
        // ServerResponse (h2-messages.ts), which the types cannot tell.
        // The edge cache answers HTTP/2 as it answers HTTP/1.1: H2Response takes a flat header list.
        request: (req, res) => this.#afterChecks(req as unknown as IncomingMessage, res as unknown as ServerResponse),
        refuse: (req: H2Request, res: H2Response, status, message) =>
          this.#forwarder.refuse(req as unknown as IncomingMessage, res as unknown as ServerResponse, status, message),
        log: line => this.#log?.(line),
      },
      {
        certificates: options.certificates,
        http2: options.http2,
        minVersion: options.minVersion,
        // nginx's client_header_timeout bounded the handshake too before ssl_handshake_timeout.
        handshakeTimeout: this.#timeouts.clientHeaderTimeout,
        h2: {
          maxStreams: options.maxStreams ?? 128,
          firstRequestTimeout: this.#timeouts.clientHeaderTimeout,
          idleTimeout: this.#timeouts.keepAliveTimeout,
        },
        maxHeaderListSize: 16 * 1024,
      },
    )
    return new Promise((resolve, reject) => {
      listener.https.once('error', reject)
      listener.listen(port, host, () => {
        listener.https.off('error', reject)
        this.httpsListeners.push(listener)
        this.upstreams.startChecks()
        resolve(listener.address())
      })
    })
  }

  /**
   * Reads every HTTPS listener's certificate files again and swaps them in for new handshakes
   * (SIGHUP); undefined when there is none. One line for the log.
   */
  reloadCertificates(): { ok: boolean; line: string } | undefined {
    const results = this.httpsListeners.map(l => l.reloadCertificates())
    if (results.length === 0) return undefined
    return { ok: results.every(r => r.ok), line: results.map(r => r.line).join('; ') }
  }

  #countPlain = (socket: Duplex): void => {
    this.#plainOpen++
    socket.once('close', () => this.#plainOpen--)
  }

  /**
   * The plain listener's handlers under --redirect-https: 308 to the same URL on HTTPS port
   * `to`, for requests and upgrades alike, but ACME challenges, which are forwarded.
   */
  #redirecting(to: number): Handlers {
    return {
      request: (req, res) => {
        const r = httpsRedirect(req.url as string, req.headers.host, req.socket.localAddress, to)
        if ('forward' in r) this.#onRequest(req, res)
        else if ('refuse' in r) this.#forwarder.refuse(req, res, 400, r.refuse)
        else this.#forwarder.redirect(req, res, r.location)
      },
      upgrade: (req, socket, head) => {
        const r = httpsRedirect(req.url as string, req.headers.host, req.socket.localAddress, to)
        if ('forward' in r) this.#handlers.upgrade(req, socket, head)
        else if ('refuse' in r) answerRaw(socket, '400 Bad Request', r.refuse)
        else answerRaw(socket, '308 Permanent Redirect', `308 Permanent Redirect: ${r.location}`, `Location: ${r.location}\r\n`)
      },
    }
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
    // New cache options start an empty cache (a new budget, say); the same keep what is stored.
    const cacheKey = JSON.stringify(options.cache ?? null)
    if (cacheKey !== this.#cacheKey) {
      this.#cache = options.cache && new EdgeCache(options.cache, this.#forwarder)
      this.#cacheKey = cacheKey
    }
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
    const closed = Promise.all([
      ...this.servers.map(server => new Promise<void>(resolve => server.close(() => resolve()))),
      // HTTP/2 connections get GOAWAY: what `Connection: close` is to the others.
      ...this.httpsListeners.map(l => l.close()),
    ])
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
    const closed = [
      ...this.servers.map(server => new Promise<void>(resolve => server.close(() => resolve()))),
      ...this.httpsListeners.map(l => l.close()),
    ]
    this.#cutAll()
    this.#stop()
    return Promise.all(closed).then(() => undefined)
  }

  #cutAll(): void {
    for (const server of this.servers) server.closeAllConnections()
    for (const listener of this.httpsListeners) listener.closeAll()
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
   * Every request a listener accepts: the checks (server/requests.ts), then the edge cache when
   * it is on (it answers from memory, or hands the request on with a tap), then forwarding.
   */
  #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // Pipelined behind a response that ends the connection: never forwarded. Node closes the
    // connection once that response is written, which ends this request too.
    if (closing(req.socket)) return
    // A malformed request ends its connection, as in nginx.
    const refused = refusal(req)
    if (refused !== undefined) this.#forwarder.refuse(req, res, refused.status, refused.message)
    else this.#afterChecks(req, res)
  }

  /** A request that passed its listener's checks: the edge cache when it is on, else forwarding. */
  #afterChecks(req: IncomingMessage, res: ServerResponse): void {
    if (this.#cache !== undefined) this.#cache.handle(req, res)
    else this.#forwarder.forward(req, res)
  }
}

/** Options of `listen()`. */
export interface PlainListenOptions {
  /** Answer 308 to the same URL on this HTTPS port (`--redirect-https`). Default: forward. */
  redirectHttpsTo?: number | undefined
}

/** Options of `listenHttps()`. */
export interface HttpsListenOptions {
  /** The certificates, chosen by SNI; read again by `reloadCertificates()`. */
  certificates: CertificateStore
  /** Offer h2 by ALPN, HTTP/1.1 as the fallback. */
  http2: boolean
  minVersion: TlsVersion
  /** Streams open at once on an HTTP/2 connection (nginx `http2_max_concurrent_streams`). Default 128. */
  maxStreams?: number
}

/** Creates a balancer, not listening yet. */
export function createBalancer(options: BalancerOptions): Balancer {
  return new Balancer(options)
}
