import { Agent, Server, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { ignoreError } from './errors.js'
import type { BalancerOptions, PolicyName } from './options.js'
import { createPolicy } from './select/policies.js'
import type { Policy } from './select/policy.js'
import { WaitQueue } from './select/queue.js'
import { Sticky } from './select/sticky.js'
import { Exchange } from './forward/exchange.js'
import { Forwarder, type ForwarderOptions } from './forward/forwarder.js'
import { HealthChecker } from './upstreams/health-check.js'
import { Reclaimer, type Reclaimed } from './server/reclaim.js'
import { answerDue, closing, refusal } from './server/requests.js'
import { Pool } from './upstreams/pool.js'
import { Upstream, upstreamId, type HealthChange } from './upstreams/upstream.js'
import { WebSocketProxy } from './forward/websocket.js'

/** The methods the balancer forwards, as listed in its 405 for CONNECT. */
const ALLOW = 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH'

/**
 * Answers CONNECT with 405: a reverse proxy is not a tunnel. Without a 'connect' listener
 * Node drops the socket without a word.
 */
function refuseConnect(_req: IncomingMessage, socket: Duplex): void {
  const body = 'CONNECT is not supported: this is a reverse proxy, not a forward proxy\n'
  socket.on('error', ignoreError)
  // Pipelined behind a response not written yet: an answer now would be read as that one's.
  if (answerDue(socket)) {
    socket.destroy()
    return
  }
  // The server's sockets allow half-open connections: once the answer is written, destroy
  // the socket, or a client that never closes its side would hold it.
  socket.end(
    'HTTP/1.1 405 Method Not Allowed\r\n' +
      `Allow: ${ALLOW}\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    () => socket.destroy(),
  )
}

/** Node's own refusals, by its error code: with a text body like the balancer's other answers. */
const CLIENT_ERRORS: Record<string, [string, string]> = {
  HPE_HEADER_OVERFLOW: ['431 Request Header Fields Too Large', 'the request headers are larger than 16 KB'],
  ERR_HTTP_REQUEST_TIMEOUT: ['408 Request Timeout', 'the request headers did not arrive in time'],
}

/**
 * Answers a request Node's parser refused (its `clientError`): the status Node would send
 * (400, or 431 and 408), but with a one-line text body naming the problem, as the balancer's
 * other answers have, and then the connection closes. Nothing is written once a response is
 * under way on the connection (pipelining), and a socket the client reset is just closed.
 */
function refuseMalformed(err: NodeJS.ErrnoException, socket: Duplex): void {
  // Node's own test for the same (`_httpMessage` is the response being written, if any).
  const busy = (socket as Duplex & { _httpMessage?: { headersSent: boolean } | null })._httpMessage?.headersSent === true
  if (socket.writable && !busy) {
    const [status, why] = CLIENT_ERRORS[String(err.code)] ?? ['400 Bad Request', `the request is malformed (${String(err.code)})`]
    const body = `${status}: ${why}\n`
    // The answer to a HEAD has no body, and the parser stopped before it could say whether
    // this was one: any HEAD in the bytes it was reading, and the body is left out.
    const packet = (err as NodeJS.ErrnoException & { rawPacket?: Buffer }).rawPacket
    const head = packet === undefined || /(^|\n)HEAD /.test(packet.toString('latin1'))
    socket.write(
      `HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${head ? '' : body}`,
    )
  }
  socket.destroy()
}

/**
 * A load balancer: a node:http server that spreads requests over `upstreams` with
 * http-proxy. It is returned not listening; call `listen()`, and `close()` or `drain()`
 * when done.
 */
export class Balancer extends Server {
  readonly pool = new Pool([])
  #policy: Policy | undefined
  #policyKey = ''
  #policyName: PolicyName = 'round-robin'
  readonly #queue = new WaitQueue(1000, 30_000)
  readonly #forwarder: Forwarder
  readonly #websockets: WebSocketProxy
  readonly #reclaimer = new Reclaimer(1000)
  #agent: Agent | undefined
  #idle = 0
  #checker: HealthChecker | undefined
  /** The active-check settings in force, to tell whether a reload changed them. */
  #checkerKey = 'null'
  /** Whether active checks were started: a reload with new settings restarts them. */
  #checking = false
  /** Upstreams a reload removed while requests were in flight to them: shown as draining. */
  #retired: Upstream[] = []
  /** When the balancer was made, ms since the epoch. */
  readonly startedAt = Date.now()
  /** Client connections open now, and accepted since start. */
  connectionsOpen = 0
  connectionsTotal = 0

  constructor(options: BalancerOptions) {
    // requestTimeout 0: no cap on a whole request, so a slow 1 GB upload still works; the
    // body is bounded between reads instead (clientBodyTimeout). Node checks these timeouts
    // every connectionsCheckingInterval (30 s by default), so check every second for them
    // to hold to within a second. (On Node 20.20 headersTimeout holds with requestTimeout 0.)
    // requireHostHeader off: refusal() checks the Host itself, and closes the connection.
    super({ requestTimeout: 0, connectionsCheckingInterval: 1000, requireHostHeader: false })
    this.#forwarder = new Forwarder(this.#apply(options))
    this.#forwarder.onHealth = change => this.emit('health', change)
    this.#websockets = new WebSocketProxy(this.#forwarder)
    this.on('request', this.#onRequest)
    this.on('connection', this.#onConnection)
    this.on('upgrade', this.#websockets.upgrade)
    this.on('connect', refuseConnect)
    this.on('clientError', refuseMalformed)
    this.on('listening', () => this.checkHealth())
    this.#reclaimer.on('reclaimed', this.#onReclaimed)
    this.on('close', () => {
      this.#reclaimer.stop()
      this.#checking = false
      this.#checker?.stop()
      this.agent.destroy()
    })
  }

  /** The name of the balancing policy in force. */
  get policyName(): PolicyName {
    return this.#policyName
  }

  /** The balancing policy in force. */
  get policy(): Policy {
    return this.#policy as Policy
  }

  /** The active health checker, when `health` is set. */
  get healthChecker(): HealthChecker | undefined {
    return this.#checker
  }

  /** Counts of requests, with the pool's state, read by the admin listener. */
  get forwarder(): Forwarder {
    return this.#forwarder
  }

  /** Whether `drain()` was called. */
  get draining(): boolean {
    return this.#forwarder.draining
  }

  /** Upstreams a reload removed that still have requests in flight. */
  get retired(): readonly Upstream[] {
    this.#retired = this.#retired.filter(u => u.inFlight > 0)
    return this.#retired
  }

  /**
   * Starts the active health checks, when configured; listening starts them too. A cluster's
   * primary, which does not listen, runs them this way, once for every worker.
   */
  checkHealth(): void {
    this.#checker?.start()
    this.#checking = true
  }

  /** The keep-alive agent for upstream connections. */
  get agent(): Agent {
    return this.#agent as Agent
  }

  /**
   * Applies a new configuration without dropping a connection or a request (SIGHUP). An
   * upstream kept by address keeps its state; requests in flight finish where they are.
   */
  reload(options: BalancerOptions): void {
    this.#forwarder.options = this.#apply(options)
    this.emit('reload')
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
    const cut = setTimeout(() => {
      this.closeAllConnections()
      this.#websockets.closeAll()
    }, timeout)
    const closed = new Promise<void>(resolve => this.close(() => resolve()))
    this.closeIdleConnections()
    return Promise.all([closed, this.#websockets.drained()]).then(() => clearTimeout(cut))
  }

  #apply(options: BalancerOptions): ForwarderOptions {
    const defaults = { maxFails: options.maxFails ?? 1, failTimeout: options.failTimeout ?? 10_000 }
    // Draining upstreams count too: one a reload adds back is the same upstream, state and all.
    const byId = new Map([...this.#retired, ...this.pool.upstreams].map(u => [u.id, u]))
    this.pool.upstreams = options.upstreams.map(spec => {
      const kept = byId.get(upstreamId(spec))
      if (kept === undefined) return new Upstream(spec, defaults)
      byId.delete(kept.id)
      kept.configure(spec, defaults)
      return kept
    })
    // What is left was removed: it drains the requests it has (HAProxy's DRAIN state).
    this.#retired = [...byId.values()].filter(u => u.inFlight > 0)
    // New check settings start a new checker (counters from zero); upstreams keep their state.
    const checkerKey = JSON.stringify(options.health ?? null)
    if (checkerKey !== this.#checkerKey) {
      this.#checker?.stop()
      this.#checker = options.health && new HealthChecker(this.pool, options.health, this.#reportHealth)
      this.#checkerKey = checkerKey
      if (this.#checking) this.#checker?.start()
    }
    // A changed policy starts afresh; an unchanged one keeps its state (round-robin position).
    const policyKey = JSON.stringify([options.policy, options.hashKey])
    if (policyKey !== this.#policyKey) {
      this.#policyName = options.policy ?? 'round-robin'
      this.#policy = createPolicy(this.#policyName, options.hashKey)
      this.#policyKey = policyKey
    }
    this.#reclaimer.min = options.reclaimAfter ?? 1000
    this.#queue.size = options.queueSize ?? 1000
    this.#queue.timeout = options.queueTimeout ?? 30_000
    this.headersTimeout = options.clientHeaderTimeout ?? 20_000
    this.keepAliveTimeout = options.keepAliveTimeout ?? 75_000
    const idle = options.upstreamIdleTimeout ?? 4_000
    // http-proxy opens a connection per request unless it is given a keep-alive agent. LIFO
    // reuses the warmest socket and lets the others idle out. A new idle time needs a new
    // agent; the old one's idle sockets time out on their own, and its busy ones finish.
    if (this.#agent === undefined || idle !== this.#idle) {
      this.#agent = new Agent({ keepAlive: true, scheduling: 'lifo', timeout: idle })
      this.#idle = idle
    }
    return {
      pool: this.pool,
      policy: this.policy,
      queue: this.#queue,
      sticky: options.sticky && new Sticky(options.sticky),
      agent: this.agent,
      connectTimeout: options.connectTimeout ?? 5_000,
      timeout: options.timeout ?? 60_000,
      retryOnTimeout: options.retryOnTimeout ?? false,
      retries: options.retries ?? Number.POSITIVE_INFINITY,
      retryTimeout: options.retryTimeout ?? 0,
      clientBodyTimeout: options.clientBodyTimeout ?? 60_000,
      tunnelTimeout: options.tunnelTimeout ?? 3_600_000,
      log: options.log,
      accessLog: options.accessLog,
    }
  }

  #onConnection = (socket: Duplex): void => {
    this.connectionsOpen++
    this.connectionsTotal++
    this.#reclaimer.count(this.connectionsOpen)
    socket.once('close', this.#onConnectionClose)
  }

  #onConnectionClose = (): void => {
    this.connectionsOpen--
    this.#reclaimer.count(this.connectionsOpen)
  }

  #onReclaimed = (r: Reclaimed): void => {
    const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MB`
    this.#forwarder.options.log?.(
      `${r.peak} connections fell to ${this.connectionsOpen}: memory reclaimed, RSS ${mb(r.rssBefore)} -> ${mb(r.rssAfter)}, heap ${mb(r.heapBefore)} -> ${mb(r.heapAfter)}`,
    )
    this.emit('reclaimed', r)
  }

  #reportHealth = (change: HealthChange): void => {
    this.#forwarder.reportHealth(change)
  }

  #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // Pipelined behind a response that ends the connection: never forwarded. Node closes the
    // connection once that response is written, which ends this request too.
    if (closing(req.socket)) return
    // A malformed request ends its connection, as in nginx.
    const refused = refusal(req)
    if (refused === undefined) this.#forwarder.forward(req, res)
    else new Exchange(this.#forwarder, req, res).answer(refused.status, refused.message, true)
  }
}

/** Creates a balancer, not listening yet. */
export function createBalancer(options: BalancerOptions): Balancer {
  return new Balancer(options)
}
