import { Server, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { BodyBudget } from './body-budget.js'
import type { CacheLayer } from './cache/rules.js'
import { resolveOptions, type BackendOptions, type ResolvedOptions } from './config.js'
import { pathOf, type BufferedResponse } from './response.js'
import { Router } from './routes.js'
import { createState, type BackendState } from './state.js'
import { RequestStats } from './stats.js'
import { WebSocketEcho } from './websocket.js'

/**
 * Most time a client gets to send the request headers, in ms. Node's default is 60 s; a
 * backend behind a balancer on the same network has no use for slow clients (slowloris).
 */
const HEADERS_TIMEOUT_MS = 10_000
/**
 * Most time a client gets to send a whole request, body included, in ms (Node's default: 300 s).
 * Room for the largest `/echo` body on a slow link, not for a client that stalls.
 */
const REQUEST_TIMEOUT_MS = 30_000
// keepAliveTimeout stays Node's default, 5 s: the balancer keeps its idle upstream
// connections for 4 s, so it lets one go before this server closes it under a request.

/** The `http://host:port` a server listens on, with an IPv6 address in brackets. */
export function listeningUrl(address: AddressInfo): string {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return `http://${host}:${address.port}`
}

/**
 * The app server: a node:http server with the routes of `routes.ts` behind the response
 * cache of `cache.ts`. It is returned not listening; call `listen()`, and `close()` when done.
 */
export class Backend extends Server {
  /** The response cache: in memory, or in Redis with `redis`. */
  readonly cache: CacheLayer
  readonly stats = new RequestStats()
  /** The `/ws` echo endpoint. */
  readonly websockets: WebSocketEcho
  /** Request-body bytes held by all requests at once, bounded by `maxBodyBytesTotal`. */
  readonly bodies: BodyBudget
  readonly #options: ResolvedOptions
  readonly #router: Router
  readonly #state: BackendState
  #closing = false
  #handlerRuns = 0
  /** The port last listened on, kept so the id outlives `close()`. */
  #port: number | undefined

  constructor(options: BackendOptions = {}) {
    super({ headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS })
    this.#options = resolveOptions(options)
    const { clock, maxBodyBytes, maxBodyBytesTotal, exposeStats, jobTypes } = this.#options
    this.#state = createState(this.#options, () => this.id)
    this.cache = this.#state.cache
    this.websockets = new WebSocketEcho({ maxMessage: this.#options.wsMaxMessage })
    this.bodies = new BodyBudget(maxBodyBytesTotal)
    const { sessions, jobs, redis } = this.#state
    this.#router = new Router({
      id: () => this.id,
      clock,
      stats: this.stats,
      maxBodyBytes,
      maxBodyBytesTotal,
      exposeStats,
      sessions,
      jobs,
      jobTypes,
      redis,
    })
    this.on('request', this.#onRequest)
    this.on('upgrade', this.websockets.upgrade)
    this.on('listening', () => {
      this.#port = (this.address() as AddressInfo).port
      this.#closing = false
    })
  }

  /**
   * Route handler runs so far: the requests the response cache did not answer. Tests count
   * them to see that concurrent misses, even on several backends, ran the handler once.
   */
  get handlerRuns(): number {
    return this.#handlerRuns
  }

  /** The id in `X-Served-By`: the one given, else `backend-<port>` once listening. */
  get id(): string {
    return this.#options.id ?? (this.#port === undefined ? 'backend' : `backend-${this.#port}`)
  }

  /**
   * Stops accepting connections and closes idle keep-alive ones at once; requests in flight
   * finish, their responses carry `Connection: close`, and `callback` runs when the last
   * connection is gone. (Without that header a client could keep a finished connection
   * open until `keepAliveTimeout`, and `close()` would wait for it.) Then the state lets go:
   * a worker inside the backend finishes its jobs in progress, and the Redis connections
   * close; `callback` runs after that, while the 'close' event comes with the last connection.
   */
  override close(callback?: (err?: Error) => void): this {
    this.#closing = true
    super.close(err => void this.#state.close().then(() => callback?.(err)))
    // Node ≥ 19 does this in close() too; done here so the behaviour does not rest on that.
    this.closeIdleConnections()
    this.websockets.close()
    return this
  }

  #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const start = this.#options.clock()
    this.stats.count(req.method as string, pathOf(req.url as string))
    const match = this.#router.route(req, () => {
      const account = this.bodies.open()
      // 'close' comes once the response is sent or the connection is gone, whichever the end.
      res.once('close', account.release)
      return account
    })
    const handle = (): Promise<BufferedResponse> => {
      this.#handlerRuns++
      return match.handle()
    }
    const pending = match.cached ? this.cache.serve(req, handle, match.variant) : handle()
    void pending.then(response => this.#send(req, res, response, start))
  }

  #send(req: IncomingMessage, res: ServerResponse, response: BufferedResponse, start: number): void {
    const headers: Record<string, string> = {
      ...response.headers,
      'content-length': String(response.body.length),
      // On every answer, not just the text ones: /echo sends back whatever type the client
      // named, and no browser should guess a script out of it (issue 11).
      'x-content-type-options': 'nosniff',
      'x-served-by': this.id,
    }
    if (this.#closing) headers.connection = 'close'
    // For HEAD, Node sends the headers (Content-Length included) and leaves out the body.
    res.writeHead(response.status, headers)
    res.end(response.body)
    const { accessLog, logHealthChecks } = this.#options
    if (accessLog === undefined || (!logHealthChecks && isHealthCheck(req.url as string))) return
    const ms = (this.#options.clock() - start).toFixed(1)
    accessLog(`${req.method} ${req.url} ${response.status} ${response.headers['x-cache'] ?? '-'} ${ms}ms`)
  }
}

/** Whether a request is for the health route, with or without a query. */
function isHealthCheck(url: string): boolean {
  return url === '/healthz' || url.startsWith('/healthz?')
}

/** Creates a backend, not listening yet. Throws `ConfigError` for a bad option. */
export function createBackend(options: BackendOptions = {}): Backend {
  return new Backend(options)
}
