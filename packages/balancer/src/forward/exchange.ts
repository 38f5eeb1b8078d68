import type { Agent, ClientRequest, IncomingMessage, ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import httpIncoming, { type StreamOptions } from 'http-proxy/lib/http-proxy/passes/web-incoming.js'
import { Attempt } from './attempt.js'
import { RequestBody } from './replay-body.js'
import { NoUpstreamError, UpstreamFailedError, UpstreamTimeoutError, errorCode, ignoreError, statusForUpstreamError } from '../errors.js'
import { forwardedHeaders, hasBody, peerOf, type Headers } from './headers.js'
import { sendError, type Forwarder } from './forwarder.js'
import type { Waiter } from '../select/queue.js'
import type { Upstream } from '../upstreams/upstream.js'

/**
 * Methods that may be sent again after the upstream got them (RFC 9110 §9.2.2), as nginx's
 * proxy_next_upstream: POST and PATCH are never sent twice.
 */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'])

/** The exchange a client response belongs to, for the listeners below. */
const kExchange = Symbol('switchyard.exchange')
type Tagged<T> = T & { [kExchange]: Exchange }

/**
 * http-proxy's own pass that builds the upstream request, sends it and reports the response:
 * the engine. Called directly rather than through `proxy.web()`, which per request copies its
 * options, looks for string targets to parse, and runs three passes that do nothing here
 * (no `xfwd`, no `timeout`; deleteLength's rewrite is the one forwardedHeaders undoes).
 *
 * What this and the other changes of that commit bought (shared listeners instead of closures
 * in Attempt and Exchange, headers built once per request, the cached Connection split), with
 * `npm run bench:instructions` (callgrind, 20,000 warm-up requests, median of the last three
 * counts of 2,000, 2026-11-28): 304k -> 285k user-space instructions per request, where stock
 * http-proxy with a keep-alive agent takes 316k in the same run. In CPU time the change is
 * below this shared machine's noise (±15% between rounds).
 */
const stream = httpIncoming.stream

/** One client request and its tries, each on a different upstream. */
export class Exchange {
  readonly fw: Forwarder
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly tried = new Set<Upstream>()
  readonly chunked: boolean
  /** The client's address (peerOf). */
  readonly peer: string
  /** What every try sends upstream (forwardedHeaders). */
  readonly headers: Headers
  readonly body: RequestBody | undefined
  readonly start = performance.now()
  readonly time = Date.now()
  attempt: Attempt | undefined
  lastError: Error | undefined
  /** The client went away or stalled: nothing that fails now is the upstream's fault. */
  clientGone = false
  /** The upstream a valid sticky cookie names, if the request has one. */
  readonly pinnedId: string | undefined
  waiter: Waiter | undefined
  /** Tries after the first. */
  retries = 0
  /** Body bytes of an answer the balancer made itself. */
  #answered = 0

  constructor(fw: Forwarder, req: IncomingMessage, res: ServerResponse) {
    this.fw = fw
    this.req = req
    this.res = res
    this.chunked = req.headers['transfer-encoding'] !== undefined
    this.body = hasBody(req) ? new RequestBody(req, fw.options.clientBodyTimeout, () => this.#bodyTimedOut()) : undefined
    this.pinnedId = fw.options.sticky?.idFrom(req)
    this.peer = peerOf(req.socket)
    this.headers = forwardedHeaders(req, this.chunked, this.peer)
    ;(res as Tagged<ServerResponse>)[kExchange] = this
    // `on`, not `once`: 'close' comes once, and once() wraps the listener in a new closure.
    res.on('close', onClose)
  }

  /**
   * Tries the next upstream; waits in the queue when every candidate is full; gives up when
   * none is left or the retry budget is spent.
   */
  next(): void {
    const { pool, policy, retries, retryTimeout } = this.fw.options
    const now = performance.now()
    if (this.tried.size > retries || (retryTimeout > 0 && now - this.start >= retryTimeout)) {
      this.giveUp()
      return
    }
    const upstream = this.#pinned(now) ?? policy.select(pool, this.req, this.tried)
    if (upstream === undefined || upstream.full) {
      // Full is not down: a sticky request waits for its own upstream, and one whose tier is
      // all at max_conns waits for a slot rather than spilling onto backups.
      if (upstream !== undefined || pool.tier(this.tried, now).length > 0) this.#wait()
      else this.giveUp()
      return
    }
    if (this.attempt !== undefined) {
      // HAProxy's per-server `retries` counter: counted on the upstream that failed.
      this.retries++
      this.attempt.upstream.stats.retries++
    }
    this.tried.add(upstream)
    this.#send(upstream, this.fw.options.agent)
  }

  /**
   * Whether a try that failed on a reused keep-alive connection before any response may be
   * sent again to the same upstream on a new one: only when the request could be replayed
   * anyway (an idempotent method, and a body that is empty or held in full). It happens once
   * per upstream: the new connection is never a reused one.
   */
  mayResend(): boolean {
    return IDEMPOTENT.has(this.req.method as string) && (this.body === undefined || this.body.replayable)
  }

  /** Sends the request to `upstream` again, on a connection of its own (the keep-alive race). */
  resend(upstream: Upstream): void {
    this.#send(upstream, this.fw.fresh)
  }

  #send(upstream: Upstream, agent: Agent): void {
    const attempt = new Attempt(this, upstream)
    this.attempt = attempt
    const options: StreamOptions = {
      target: upstream.target,
      agent,
      buffer: attempt,
      selfHandleResponse: true,
      // The attempt sets the path as the client sent it; http-proxy would join and re-parse it.
      ignorePath: true,
      prependPath: false,
    }
    // http-proxy copies `req.headers` into the upstream request: hand it the forwarded ones
    // for that moment only, and the client's stay as they came (hash keys, access log).
    // Errors reach each attempt through its own listener on the upstream request; the
    // callback keeps http-proxy from rethrowing them (its best-known crash).
    const { req } = this
    const own = req.headers
    req.headers = this.headers as IncomingMessage['headers']
    try {
      stream(req, this.res, options, undefined, this.fw.proxy, ignoreError)
    } finally {
      req.headers = own
    }
  }

  /**
   * The upstream answered before the whole body was sent: stop sending it, and read and drop
   * what the client still sends, so that its connection can close cleanly after the response
   * (closing with unread bytes would reset it, and the client could lose the response).
   */
  dropBody(): void {
    this.body?.detach()
    this.req.resume()
  }

  /** Passes the client's 'drain' on to the attempt that is sending the response. */
  watchDrain(): void {
    this.res.on('drain', onClientDrain)
  }

  /** The upstream the sticky cookie names, while it is available and not yet tried. */
  #pinned(now: number): Upstream | undefined {
    if (this.pinnedId === undefined) return undefined
    const { pool } = this.fw.options
    const u = pool.upstreams.find(x => x.id === this.pinnedId)
    return u !== undefined && !this.tried.has(u) && pool.isAvailable(u, now) ? u : undefined
  }

  /** The Set-Cookie that pins the client to `u`, unless its cookie already does. */
  stickyCookie(u: Upstream): string | undefined {
    const { sticky } = this.fw.options
    if (sticky === undefined || this.pinnedId === u.id) return undefined
    return sticky.setCookie(u.id, 'encrypted' in this.req.socket)
  }

  /** Set while this request is offered a slot: then it must not queue again, only decline. */
  #offered = false
  #declined = false

  #wait(): void {
    if (this.#offered) {
      this.#declined = true
      return
    }
    const { queue } = this.fw.options
    // Closures only for a request that waits, rather than two for every request.
    this.waiter = queue.wait(
      () => this.#onSlot(),
      () => this.#onQueueTimeout(),
    )
    if (this.waiter === undefined) {
      this.answer(503, `503 Service Unavailable: every upstream is at max_conns and ${queue.size} requests are already waiting`, this.fw.draining)
    }
  }

  /** Offered a freed slot: go if an upstream can take the request now, else keep waiting. */
  #onSlot(): boolean {
    this.#offered = true
    this.#declined = false
    this.next()
    this.#offered = false
    if (this.#declined) return false
    this.waiter = undefined
    return true
  }

  #onQueueTimeout(): void {
    this.waiter = undefined
    const secs = this.fw.options.queue.timeout / 1000
    this.answer(503, `503 Service Unavailable: no upstream had a free slot within ${secs}s`, this.fw.draining)
  }

  /** Answers the request itself, with a short text body. */
  answer(status: number, message: string, close: boolean): void {
    this.#answered = sendError(this.req, this.res, status, message, close)
  }

  /** Answers 503 when no upstream could be tried, or 502 / 504 when every try failed. */
  giveUp(): void {
    const err = this.lastError
    const close = this.fw.draining
    if (err === undefined) {
      this.answer(503, `503 Service Unavailable: ${new NoUpstreamError().message}`, close)
      return
    }
    const status = statusForUpstreamError(err)
    const what = status === 504 ? '504 Gateway Timeout' : '502 Bad Gateway'
    const last = `${this.attempt?.upstream.id} ${errorCode(err)}`
    this.answer(status, `${what}: ${new UpstreamFailedError().message} (last: ${last})`, close)
  }

  /**
   * Whether a failed attempt may be tried on another upstream (Caddy's `tryAgain`, with
   * nginx's rules): a request that never reached the upstream always may, a connect timeout
   * included; one that did only if its method is idempotent and its body is empty or held in
   * full, and not after a response timeout unless `retryOnTimeout` says so.
   */
  mayRetry(attempt: Attempt, err: Error): boolean {
    if (!attempt.connected) return true
    // A 504 should come after one timeout, not after one per upstream.
    if (err instanceof UpstreamTimeoutError && !this.fw.options.retryOnTimeout) return false
    return IDEMPOTENT.has(this.req.method as string) && (this.body === undefined || this.body.replayable)
  }

  /** The client stopped sending its body for `clientBodyTimeout`: 408, as nginx does. */
  #bodyTimedOut(): void {
    this.clientGone = true
    this.attempt?.abort()
    if (this.res.headersSent) this.res.destroy()
    else this.answer(408, '408 Request Timeout: the request body stalled', true)
  }

  /** Logs the request once its response is over (nginx's access log, in short). */
  closed(): void {
    const { res, req } = this
    this.body?.stop()
    if (this.waiter !== undefined) this.fw.options.queue.cancel(this.waiter)
    if (!res.writableFinished) {
      // The client went away (or the response was cut short): stop the upstream request,
      // and do not hold it against the upstream.
      this.clientGone = true
      this.attempt?.abort()
    } else if (this.attempt?.early) {
      // No upstream socket outlives its request: one the body was still being written to
      // cannot go back to the pool (the upstream would read the rest as a new request).
      ;(this.attempt.out as ClientRequest).destroy()
    }
    // 499 is nginx's status for "client closed the request" in its logs.
    const status = this.clientGone && !res.headersSent ? 499 : res.statusCode
    const attempt = this.attempt
    const upstreamRes = attempt?.upstreamRes
    if (attempt !== undefined && this.body !== undefined) attempt.upstream.stats.bytesOut += this.body.bytes
    this.fw.finished(req, status, attempt?.upstream, {
      client: this.peer,
      time: this.time,
      start: this.start,
      // The response has just ended: this is nginx's $upstream_response_time.
      upstreamMs: upstreamRes === undefined ? undefined : performance.now() - attempt!.startedAt,
      bytes: upstreamRes === undefined ? this.#answered : attempt!.bytesIn,
      retries: this.retries,
      cache: upstreamRes?.headers['x-cache'] as string | undefined,
    })
  }
}

function onClose(this: Tagged<ServerResponse>): void {
  this[kExchange].closed()
}

function onClientDrain(this: Tagged<ServerResponse>): void {
  this[kExchange].attempt?.drained()
}
