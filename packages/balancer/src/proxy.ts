import type { Agent, ClientRequest, IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { Stream } from 'node:stream'
import httpProxy from 'http-proxy'
import { RequestBody } from './body.js'
import {
  NoUpstreamError,
  UpstreamFailedError,
  UpstreamTimeoutError,
  errorCode,
  ignoreError,
  statusForUpstreamError,
} from './errors.js'
import { hasBody, prepareRequestHeaders, responseHeaders } from './headers.js'
import type { Policy } from './policies.js'
import type { HealthChange, Pool, Upstream } from './upstream.js'

/**
 * Methods that may be sent again after the upstream got them (RFC 9110 §9.2.2), as nginx's
 * proxy_next_upstream: POST and PATCH are never sent twice.
 */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'])

/** What the forwarder needs from the balancer around it. */
export interface ForwarderOptions {
  pool: Pool
  policy: Policy
  /** The keep-alive agent for upstream connections. */
  agent: Agent
  /** How long to wait for an upstream's response headers once the request is sent, in ms. */
  timeout: number
  /** Receives one line per health change; nothing when undefined. */
  log: ((line: string) => void) | undefined
  /** Receives one line per request; nothing when undefined. */
  accessLog: ((line: string) => void) | undefined
}

/** Answers a request with a short text/plain error. */
export function sendError(req: IncomingMessage, res: ServerResponse, status: number, message: string): void {
  const body = `${message}\n`
  const headers: Record<string, string | number> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  }
  // A body the client is still sending would have to be read to the end to keep the
  // connection; closing it is cheaper (nginx does the same on an early error).
  if (hasBody(req) && !req.complete) headers.connection = 'close'
  res.writeHead(status, headers)
  res.end(req.method === 'HEAD' ? undefined : body)
}

/**
 * Sends requests to upstreams through http-proxy, one `Exchange` per client request.
 * http-proxy builds the upstream request (target, method, headers, agent); the balancer then
 * owns the rest: the path, hop-by-hop headers, when the body is read, retries and the response.
 */
export class Forwarder {
  readonly proxy: httpProxy
  readonly options: ForwarderOptions

  constructor(options: ForwarderOptions) {
    this.options = options
    // toProxy skips http-proxy's per-request url.parse; the path is set on the request anyway.
    this.proxy = httpProxy.createProxyServer({
      agent: options.agent,
      selfHandleResponse: true,
      toProxy: true,
      prependPath: false,
    })
  }

  forward(req: IncomingMessage, res: ServerResponse): void {
    new Exchange(this, req, res).next()
  }

  /** Logs a health flip once, with its reason. */
  reportHealth(change: HealthChange | undefined): void {
    if (change === undefined) return
    const { upstream, up, reason } = change
    this.options.log?.(
      up
        ? `upstream ${upstream.id} is up again: ${reason}`
        : `upstream ${upstream.id} marked down for ${upstream.failTimeout / 1000}s after ${reason}`,
    )
  }
}

/** One client request and its tries, each on a different upstream. */
class Exchange {
  readonly fw: Forwarder
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly tried = new Set<Upstream>()
  /** Decided before http-proxy's deleteLength pass rewrites a chunked DELETE's headers. */
  readonly chunked: boolean
  readonly body: RequestBody | undefined
  readonly start = performance.now()
  attempt: Attempt | undefined
  lastError: Error | undefined
  clientGone = false

  constructor(fw: Forwarder, req: IncomingMessage, res: ServerResponse) {
    this.fw = fw
    this.req = req
    this.res = res
    this.chunked = req.headers['transfer-encoding'] !== undefined
    this.body = hasBody(req) ? new RequestBody(req) : undefined
    // Node has already answered the client's Expect with 100 Continue. Left in, it would make
    // the upstream request send its headers the moment http-proxy creates it, before the
    // balancer can fix them (and http-proxy would skip its proxyReq event).
    delete req.headers.expect
    res.once('close', this.#onClose)
  }

  /** Tries the next upstream, or gives up when none is left. */
  next(): void {
    const { pool, policy } = this.fw.options
    const upstream = policy.select(pool, this.req, this.tried)
    if (upstream === undefined) {
      this.giveUp()
      return
    }
    this.tried.add(upstream)
    // Errors reach each attempt through its own listener on the upstream request; the
    // callback keeps http-proxy from rethrowing them (its best-known crash).
    const attempt = new Attempt(this, upstream)
    this.attempt = attempt
    this.fw.proxy.web(this.req, this.res, { target: upstream.target, buffer: attempt }, ignoreError)
  }

  /** Answers 503 when no upstream could be tried, or 502 / 504 when every try failed. */
  giveUp(): void {
    const err = this.lastError
    if (err === undefined) {
      sendError(this.req, this.res, 503, `503 Service Unavailable: ${new NoUpstreamError().message}`)
      return
    }
    const status = statusForUpstreamError(err)
    const what = status === 504 ? '504 Gateway Timeout' : '502 Bad Gateway'
    const last = `${this.attempt?.upstream.id} ${errorCode(err)}`
    sendError(this.req, this.res, status, `${what}: ${new UpstreamFailedError().message} (last: ${last})`)
  }

  /**
   * Whether a failed attempt may be tried on another upstream (Caddy's `tryAgain`, with
   * nginx's rules): a request that never reached the upstream always may; one that did only
   * if its method is idempotent and its body is empty or held in full.
   */
  mayRetry(attempt: Attempt): boolean {
    if (!attempt.connected) return true
    // A 504 should come after one timeout, not after one per upstream.
    if (this.lastError instanceof UpstreamTimeoutError) return false
    return IDEMPOTENT.has(this.req.method as string) && (this.body === undefined || this.body.replayable)
  }

  /** Logs the request once its response is over (nginx's access log, in short). */
  #onClose = (): void => {
    const { res, req } = this
    if (!res.writableFinished) {
      // The client went away (or the response was cut short): stop the upstream request,
      // and do not hold it against the upstream.
      this.clientGone = true
      this.attempt?.abort()
    }
    const ms = (performance.now() - this.start).toFixed(1)
    // 499 is nginx's status for "client closed the request" in its logs.
    const status = this.clientGone && !res.headersSent ? 499 : res.statusCode
    this.fw.options.accessLog?.(`${req.method} ${req.url} ${status} ${this.attempt?.upstream.id ?? '-'} ${ms}ms`)
  }
}

/**
 * One try of a request on one upstream. It is also the `buffer` stream handed to http-proxy,
 * which calls `buffer.pipe(upstreamRequest)` right after it builds the request: that call
 * hands the balancer the request synchronously, for every request (http-proxy's `proxyReq`
 * event waits for a socket and never fires when the request carries `Expect`), and lets the
 * balancer read the body only once the upstream connection is open.
 */
class Attempt extends Stream {
  readonly ex: Exchange
  readonly upstream: Upstream
  out: ClientRequest | undefined
  upstreamRes: IncomingMessage | undefined
  /** Whether the connection to the upstream was open, so the request may have reached it. */
  connected = false
  done = false
  timer: NodeJS.Timeout | undefined

  constructor(ex: Exchange, upstream: Upstream) {
    super()
    this.ex = ex
    this.upstream = upstream
    upstream.inFlight++
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T): T {
    // http-proxy only ever pipes its buffer into the upstream ClientRequest.
    const out = destination as unknown as ClientRequest
    const { req } = this.ex
    this.out = out
    // Byte-identical path and query: http-proxy's urlJoin collapses `//`.
    out.path = req.url as string
    prepareRequestHeaders(out, req, this.ex.chunked)
    out.on('error', this.#onError)
    out.on('response', this.#onResponse)
    out.on('socket', this.#onSocket)
    const body = this.ex.body
    if (body === undefined) out.end()
    // A body an earlier try read is held in full by now (mayRetry), so replay it at once;
    // a body not read yet waits for the connection (#onConnect).
    else if (body.started) body.sendTo(out)
    return destination
  }

  /** Stops this try because the client went away. */
  abort(): void {
    clearTimeout(this.timer)
    this.out?.destroy()
    this.#finish()
  }

  #onSocket = (socket: Socket): void => {
    if (socket.connecting) socket.once('connect', this.#onConnect)
    else this.#onConnect()
  }

  #onConnect = (): void => {
    this.connected = true
    this.timer = setTimeout(this.#onTimeout, this.ex.fw.options.timeout)
    const body = this.ex.body
    if (body !== undefined && !body.started) body.sendTo(this.out as ClientRequest)
  }

  #onTimeout = (): void => {
    ;(this.out as ClientRequest).destroy(new UpstreamTimeoutError())
  }

  #finish(): boolean {
    if (this.done) return false
    this.done = true
    this.upstream.inFlight--
    return true
  }

  #onError = (err: Error): void => {
    clearTimeout(this.timer)
    // Once the response head is in, a socket error also ends the upstream response, whose
    // close handler reports it (#onUpstreamClose): counting it here too would count it twice.
    if (this.upstreamRes !== undefined || !this.#finish() || this.ex.clientGone) return
    const { ex, upstream } = this
    this.ex.fw.reportHealth(upstream.recordFailure(errorCode(err)))
    ex.lastError = err
    ex.body?.detach()
    if (ex.mayRetry(this)) ex.next()
    else ex.giveUp()
  }

  #onResponse = (upstreamRes: IncomingMessage): void => {
    const { res } = this.ex
    this.upstreamRes = upstreamRes
    clearTimeout(this.timer)
    this.ex.fw.reportHealth(this.upstream.recordSuccess())
    res.writeHead(upstreamRes.statusCode as number, upstreamRes.statusMessage, responseHeaders(upstreamRes))
    upstreamRes.pipe(res)
    upstreamRes.once('close', this.#onUpstreamClose)
  }

  #onUpstreamClose = (): void => {
    this.#finish()
    // A response the upstream cut short must end the client's connection now; http-proxy
    // would leave the client waiting for bytes that will never come.
    if ((this.upstreamRes as IncomingMessage).complete) return
    if (!this.ex.clientGone) this.ex.fw.reportHealth(this.upstream.recordFailure('truncated response'))
    this.ex.res.destroy()
  }
}
