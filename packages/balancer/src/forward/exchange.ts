// One client request and its tries: choosing the upstream, waiting for a slot, retrying, giving up, and the log line at the end.
import type { Agent, ClientRequest, IncomingMessage, ServerResponse } from 'node:http'
import type { ResponseTap } from '../cache/types.js'
import { performance } from 'node:perf_hooks'
import { answer } from '../server/answers.js'
import { hasBody } from '../server/requests.js'
import { FULL, NONE, choose, type Tries } from '../select/choose.js'
import type { Waiter } from '../select/queue.js'
import type { HealthChange, Upstream } from '../upstreams/upstream.js'
import { Attempt, type AttemptOwner } from './attempt.js'
import type { ForwardContext } from './context.js'
import { clientNoteOf, forwardedHeaders, peerOf, tlsVersionOf, type Headers } from './headers.js'
import { ReplayBody } from './replay-body.js'
import { giveUpAnswer, mayResend, mayRetry } from './retry.js'

/** The exchange a client response belongs to, for the listeners below. */
const kExchange = Symbol('switchyard.exchange')
type Tagged<T> = T & { [kExchange]: Exchange }

/** One client request and its tries, each on a different upstream. */
export class Exchange implements AttemptOwner, Tries {
  readonly forwarder: ForwardContext
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly tried = new Set<Upstream>()
  readonly chunked: boolean
  /** The client's address (peerOf). */
  readonly peer: string
  /** The TLS version of the client's connection (tlsVersionOf), for the access log. */
  readonly tlsVersion: string | undefined
  /** What every try sends upstream (forwardedHeaders). */
  readonly headers: Headers
  readonly body: ReplayBody | undefined
  readonly start = performance.now()
  readonly time = Date.now()
  attempt: Attempt | undefined
  /** The upstream of the latest try. */
  upstream: Upstream | undefined
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
  /** The edge cache, when it watches this request (cache/taps.ts). */
  readonly tap: ResponseTap | undefined

  constructor(forwarder: ForwardContext, req: IncomingMessage, res: ServerResponse, tap?: ResponseTap) {
    this.forwarder = forwarder
    this.req = req
    this.res = res
    this.tap = tap
    this.chunked = req.headers['transfer-encoding'] !== undefined
    const settings = forwarder.settings
    this.body = hasBody(req) ? new ReplayBody(req, settings.clientBodyTimeout, () => this.#bodyTimedOut()) : undefined
    this.pinnedId = settings.sticky?.idFrom(req)
    const note = clientNoteOf(req)
    this.peer = note === undefined ? peerOf(req.socket) : note.peer
    this.tlsVersion = note === undefined ? tlsVersionOf(req.socket) : note.tlsVersion
    this.headers = forwardedHeaders(req, this.chunked, this.peer, this.tlsVersion !== undefined)
    // The edge cache's own validators in place of the client's conditionals (cache/taps.ts).
    const replace = tap?.requestHeaders
    if (replace !== undefined) {
      for (const name in replace) {
        const value = replace[name]
        if (value === undefined) delete this.headers[name]
        else this.headers[name] = value
      }
    }
    ;(res as Tagged<ServerResponse>)[kExchange] = this
    // `on`, not `once`: 'close' comes once, and once() wraps the listener in a new closure.
    res.on('close', onClose)
  }

  get connectTimeout(): number {
    return this.forwarder.settings.connectTimeout
  }

  get timeout(): number {
    return this.forwarder.settings.timeout
  }

  get draining(): boolean {
    return this.forwarder.draining
  }

  get hsts(): string | undefined {
    const hsts = this.forwarder.settings.hsts
    return hsts !== undefined && this.tls ? hsts : undefined
  }

  /** Whether the request came over TLS (HTTPS, HTTP/2 included). */
  get tls(): boolean {
    return this.tlsVersion !== undefined
  }

  /**
   * Tries the next upstream; waits in the queue when every candidate is full; gives up when
   * none is left or the retry budget is spent.
   */
  next(): void {
    const settings = this.forwarder.settings
    const upstream = choose(settings, this, true, performance.now())
    // Full is not down: a sticky request waits for its own upstream, and one whose tier is
    // all at max_conns waits for a slot rather than spilling onto backups.
    if (upstream === FULL) this.#wait()
    else if (upstream === NONE) this.giveUp()
    else this.#send(upstream, upstream.tls?.agent ?? settings.agent)
  }

  #send(upstream: Upstream, agent: Agent): void {
    const attempt = new Attempt(this, upstream)
    this.attempt = attempt
    this.forwarder.engine.send(this.req, this.res, upstream.target, agent, this.headers, attempt)
  }

  tryFailed(attempt: Attempt, err: Error, stale: boolean): void {
    this.body?.detach()
    // The keep-alive race: nginx sends such a request again on a new connection, and so does
    // this, to the same upstream, without counting a failure or using up --retries.
    if (stale && mayResend(this.req.method as string, this.body)) {
      this.#send(attempt.upstream, attempt.upstream.tls?.fresh ?? this.forwarder.fresh)
      return
    }
    this.lastError = err
    if (mayRetry(attempt.connected, err, this.req.method as string, this.body, this.forwarder.settings.retryOnTimeout)) this.next()
    else this.giveUp()
  }

  released(): void {
    this.forwarder.settings.queue.release()
  }

  reportHealth(change: HealthChange | undefined): void {
    this.forwarder.reportHealth(change)
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

  /** The Set-Cookie that pins the client to `u`, unless its cookie already does. */
  stickyCookie(u: Upstream): string | undefined {
    const { sticky } = this.forwarder.settings
    if (sticky === undefined || this.pinnedId === u.id) return undefined
    return sticky.setCookie(u.id, this.tls)
  }

  /** Set while this request is offered a slot: then it must not queue again, only decline. */
  #offered = false
  #declined = false

  #wait(): void {
    if (this.#offered) {
      this.#declined = true
      return
    }
    const { queue } = this.forwarder.settings
    // Closures only for a request that waits, rather than two for every request.
    this.waiter = queue.wait(
      () => this.#onSlot(),
      () => this.#onQueueTimeout(),
    )
    if (this.waiter === undefined) {
      this.#fail(503, `503 Service Unavailable: every upstream is at max_conns and ${queue.size} requests are already waiting`)
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
    const secs = this.forwarder.settings.queue.timeout / 1000
    this.#fail(503, `503 Service Unavailable: no upstream had a free slot within ${secs}s`)
  }

  /** Answers the request itself, with a short text body (and the edge cache's status, on its routes). */
  answer(status: number, message: string, close: boolean): void {
    const tap = this.tap
    this.#answered = answer(this.req, this.res, status, message, close, tap === undefined ? undefined : { 'x-cache-status': tap.status })
  }

  /**
   * No upstream gave an answer: the edge cache may serve a stored one (stale-if-error, nginx's
   * `proxy_cache_use_stale error timeout`), else the balancer answers `status`.
   */
  #fail(status: number, message: string): void {
    if (this.tap?.failed(status) === true) return
    this.answer(status, message, this.forwarder.draining)
  }

  /** Answers 503 when no upstream could be tried, or 502 / 504 when every try failed. */
  giveUp(): void {
    const { status, message } = giveUpAnswer(this.lastError, this.upstream, { tries: this.retries + 1, timeouts: this.forwarder.settings })
    this.#fail(status, message)
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
    if (this.waiter !== undefined) this.forwarder.settings.queue.cancel(this.waiter)
    if (!res.writableFinished) {
      // The client went away (or the response was cut short): stop the upstream request,
      // and do not hold it against the upstream.
      this.clientGone = true
      this.attempt?.abort()
    } else if (this.attempt?.answeredEarly) {
      // No upstream socket outlives its request: one the body was still being written to
      // cannot go back to the pool (the upstream would read the rest as a new request).
      ;(this.attempt.out as ClientRequest).destroy()
    }
    // 499 is nginx's status for "client closed the request" in its logs.
    const status = this.clientGone && !res.headersSent ? 499 : res.statusCode
    const attempt = this.attempt
    const upstreamRes = attempt?.upstreamRes
    if (attempt !== undefined && this.body !== undefined) attempt.upstream.stats.bytesOut += this.body.bytes
    this.forwarder.finished(req, status, attempt?.upstream, {
      client: this.peer,
      tls: this.tlsVersion,
      time: this.time,
      start: this.start,
      // The response has just ended: this is nginx's $upstream_response_time.
      upstreamMs: upstreamRes === undefined ? undefined : performance.now() - attempt!.startedAt,
      bytes: this.tap?.bytes ?? (upstreamRes === undefined ? this.#answered : attempt!.bytesIn),
      retries: this.retries,
      cache: upstreamRes?.headers['x-cache'] as string | undefined,
      edgeCache: this.tap?.status,
    })
  }
}

function onClose(this: Tagged<ServerResponse>): void {
  this[kExchange].closed()
}

function onClientDrain(this: Tagged<ServerResponse>): void {
  this[kExchange].attempt?.drained()
}
