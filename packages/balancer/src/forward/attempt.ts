// One try of a request on one upstream: connect and read timeouts, the response passed to the client, the failure reported to its owner.
import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { TAKE, type ResponseTap } from '../cache/types.js'
import { InvalidResponseError, UpstreamConnectTimeoutError, UpstreamTimeoutError, errorCode } from '../errors.js'
import { failureKind } from '../observe/stats.js'
import { closeAfterResponse } from '../server/requests.js'
import { describeTlsFailure } from '../upstreams/tls.js'
import type { HealthChange, Upstream } from '../upstreams/upstream.js'
import type { RequestSink } from './engine.js'
import { reasonPhrase, responseHeaders } from './headers.js'
import type { ReplayBody } from './replay-body.js'

/** What an attempt needs from the request it is a try of: the Exchange implements it. */
export interface AttemptOwner {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly body: ReplayBody | undefined
  /** The edge cache, when it watches this request: told the response head before the client is. */
  readonly tap: ResponseTap | undefined
  /** The client went away or stalled: nothing that fails now is the upstream's fault. */
  clientGone: boolean
  /** Wait for an upstream connection, in ms. */
  readonly connectTimeout: number
  /** Wait for the response head, and between two reads of the body, in ms. */
  readonly timeout: number
  /** Whether the balancer drains: every response then says `Connection: close`. */
  readonly draining: boolean
  /** `Strict-Transport-Security` for a response to this request: over HTTPS with `--hsts`, else undefined. */
  readonly hsts: string | undefined
  /** The Set-Cookie that pins the client to `upstream`, if one is due. */
  stickyCookie(upstream: Upstream): string | undefined
  reportHealth(change: HealthChange | undefined): void
  /** The attempt no longer holds a slot of its upstream (max_conns): a waiting request may take it. */
  released(): void
  /**
   * The try failed before any response: `stale` when the upstream closed a reused keep-alive
   * connection as it was reused. The owner resends, retries elsewhere, or gives up.
   */
  tryFailed(attempt: Attempt, err: Error, stale: boolean): void
  /** The response is being passed on: pass the client's 'drain' on to the attempt. */
  watchDrain(): void
  /** The upstream answered before the whole body was sent: read and drop the rest. */
  dropBody(): void
}

/** The attempt an upstream request or response belongs to, for the listeners below. */
const kAttempt = Symbol('switchyard.attempt')
type Tagged<T> = T & { [kAttempt]: Attempt }

/**
 * One try of a request on one upstream. The engine hands it the upstream request it built
 * (`requestBuilt`), and the attempt owns the rest: the body, the timeouts, the response.
 *
 * Its listeners are shared functions that find the attempt on the object they listen to,
 * rather than closures made for each try: ten fewer closures per request, and no
 * EventEmitter of its own. Measured with the other hot-path changes of the same commit (see
 * `stream` in engine.ts).
 */
export class Attempt implements RequestSink {
  readonly owner: AttemptOwner
  readonly upstream: Upstream
  out: Tagged<ClientRequest> | undefined
  upstreamRes: Tagged<IncomingMessage> | undefined
  /** Whether the connection to the upstream was open, so the request may have reached it. */
  connected = false
  done = false
  /** Why the response was cut short, when the balancer cut it. */
  cutReason = 'truncated response'
  connectTimer: NodeJS.Timeout | undefined
  /** Response-header and read timer, re-armed with refresh(). */
  readTimer: NodeJS.Timeout | undefined
  /**
   * Moves on at each sign of life (connected, a read, the end): a timeout that finds it moved
   * between its timer and its verdict was overtaken by the event it waited for (onTimeout).
   */
  progress = 0
  /** When the try started (`performance.now()`). */
  readonly startedAt = performance.now()
  /** Response body bytes received. */
  bytesIn = 0
  /**
   * The response head came while the request body was still being sent (a 401 or 413 to an
   * upload, say): the client connection closes after the response, and the rest of the body
   * is not sent, since the upstream connection cannot be reused half-written.
   */
  answeredEarly = false
  /** The edge cache took the response (a 304 it revalidated with, a 5xx it answered stale for, a refresh): nothing of it goes to the client. */
  taken = false

  constructor(owner: AttemptOwner, upstream: Upstream) {
    this.owner = owner
    this.upstream = upstream
    upstream.inFlight++
  }

  requestBuilt(built: ClientRequest): void {
    const out = built as Tagged<ClientRequest>
    out[kAttempt] = this
    this.out = out
    out.on('error', onRequestError)
    out.on('response', onResponse)
    out.on('socket', onSocket)
    // Every try ends here if nothing else ended it: a 101 to a plain request, say, makes Node
    // destroy the socket with neither 'error' nor 'response', and the client would wait forever.
    out.on('close', onRequestClose)
    const body = this.owner.body
    // The response timeout runs from the moment the whole request is sent, as nginx's
    // proxy_read_timeout: a slow upload is the client's time, not the upstream's. A request
    // without a body is sent once connected (connect() arms it then), with no 'finish' to wait for.
    if (body !== undefined) out.on('finish', onRequestFinish)
    if (body === undefined) out.end()
    // A body an earlier try read is held in full by now (mayRetry), so replay it at once;
    // a body not read yet waits for the connection (connect()).
    else if (body.started) body.sendTo(out)
  }

  /** Stops this try because the client went away. */
  abort(): void {
    this.out?.destroy()
    this.#finish()
  }

  /** The upstream connection is open. */
  connect(): void {
    clearTimeout(this.connectTimer)
    this.connected = true
    this.progress++
    const body = this.owner.body
    if (body === undefined) this.armRead()
    else if (!body.started) body.sendTo(this.out as ClientRequest)
  }

  armRead(): void {
    this.progress++
    if (this.readTimer === undefined) this.readTimer = setTimeout(onTimeout, this.owner.timeout, this, 'read')
    else this.readTimer.refresh()
  }

  #finish(): boolean {
    if (this.done) return false
    this.done = true
    this.progress++
    clearTimeout(this.connectTimer)
    clearTimeout(this.readTimer)
    this.upstream.inFlight--
    this.owner.released()
    return true
  }

  failed(err: Error): void {
    const { owner, upstream, out } = this
    // The client's connection is gone (http-proxy aborts the upstream request then, and that
    // reset must not read as the keep-alive race): nothing that fails now is the upstream's fault.
    if (owner.req.socket.destroyed) owner.clientGone = true
    // Once the response head is in, a socket error also ends the upstream response, whose
    // close handler reports it (upstreamClosed): counting it here too would count it twice.
    if (this.upstreamRes !== undefined || !this.#finish() || owner.clientGone) return
    // A kept-alive connection the upstream closed just as it was reused (Node reports a reset,
    // and a close before any response, as ECONNRESET) is the keep-alive race, not a sign the
    // upstream is failing: it counts as no failure (the owner sends the request again).
    const code = errorCode(err)
    const stale = (out as ClientRequest).reusedSocket && code === 'ECONNRESET'
    if (!stale) {
      upstream.stats.failures[failureKind(code, this.connected)]++
      owner.reportHealth(upstream.recordFailure(describeTlsFailure(err) ?? code))
    }
    owner.tryFailed(this, err, stale)
  }

  /** The upstream's response is one the balancer cannot pass on: fail the try as invalid. */
  invalid(message: string): void {
    ;(this.out as ClientRequest).destroy()
    this.failed(new InvalidResponseError(message))
  }

  respond(upstreamRes: Tagged<IncomingMessage>): void {
    const { owner } = this
    const status = upstreamRes.statusCode as number
    // Node sends any status up to 999; HTTP has none past 599 (RFC 9110 §15).
    if (status > 599) {
      this.invalid(`status ${status} is not an HTTP status`)
      return
    }
    let added: readonly string[] | undefined
    if (owner.tap !== undefined) {
      const action = owner.tap.head(upstreamRes)
      if (action === TAKE) {
        this.#take(upstreamRes)
        return
      }
      added = action
    }
    const headers = responseHeaders(upstreamRes)
    if (added !== undefined) headers.push(...added)
    const draining = owner.draining
    if (draining) headers.push('Connection', 'close')
    const out = this.out as ClientRequest
    if (owner.body !== undefined && !out.writableFinished) {
      this.answeredEarly = true
      if (!draining) headers.push('Connection', 'close')
      closeAfterResponse(owner.req.socket)
    }
    const cookie = owner.stickyCookie(this.upstream)
    if (cookie !== undefined) headers.push('Set-Cookie', cookie)
    // The upstream's own, if it sends one, is its word on the matter.
    const hsts = owner.hsts
    if (hsts !== undefined && upstreamRes.headers['strict-transport-security'] === undefined)
      headers.push('Strict-Transport-Security', hsts)
    const reason = reasonPhrase(status, upstreamRes.statusMessage as string)
    try {
      owner.res.writeHead(status, reason, headers)
    } catch (err) {
      // Whatever else Node refuses to send (a status below 100, say) is an invalid response,
      // not a crash: a guard, so that no upstream can throw out of this handler.
      this.invalid(`the response head cannot be passed on (${errorCode(err as Error)}: ${(err as Error).message})`)
      return
    }
    this.upstreamRes = upstreamRes
    upstreamRes[kAttempt] = this
    owner.reportHealth(this.upstream.recordSuccess())
    this.armRead()
    // By hand rather than pipe(): pipe() adds seven listeners and as many closures per
    // response, to handle cases the attempt handles already (the client going away aborts it).
    // Measured: balancer CPU per request, median of 6 interleaved wrk -c50 runs on a loaded
    // 2-vCPU box, 305 -> 258 us (2026-11-28); Node's HTTP internals are most of what is left.
    // `on` rather than `once`: each fires once anyway, and once() wraps every listener.
    upstreamRes.on('data', onUpstreamData)
    upstreamRes.on('end', onUpstreamEnd)
    upstreamRes.on('close', onUpstreamClose)
    owner.watchDrain()
  }

  /**
   * The edge cache answers the client itself, and reads this response to its end: the attempt
   * still counts it, times its reads, and finishes when it closes.
   */
  #take(upstreamRes: Tagged<IncomingMessage>): void {
    this.taken = true
    this.upstreamRes = upstreamRes
    upstreamRes[kAttempt] = this
    this.owner.reportHealth(this.upstream.recordSuccess())
    this.armRead()
    upstreamRes.on('data', onTakenData)
    upstreamRes.on('close', onUpstreamClose)
  }

  /** The client took what was queued for it: read on. */
  drained(): void {
    ;(this.upstreamRes as IncomingMessage).resume()
    this.armRead()
  }

  upstreamClosed(): void {
    this.#finish()
    // A response the upstream cut short must end the client's connection now; http-proxy
    // would leave the client waiting for bytes that will never come.
    if ((this.upstreamRes as IncomingMessage).complete) return
    if (!this.owner.clientGone) {
      this.upstream.stats.failures[this.cutReason === 'response timeout' ? 'timeout' : 'reset']++
      this.owner.reportHealth(this.upstream.recordFailure(this.cutReason))
    }
    // A response the cache took was never the client's: the cache answered it already.
    if (!this.taken) this.owner.res.destroy()
  }
}

function onRequestError(this: Tagged<ClientRequest>, err: Error): void {
  this[kAttempt].failed(err)
}

function onResponse(this: Tagged<ClientRequest>, upstreamRes: IncomingMessage): void {
  this[kAttempt].respond(upstreamRes as Tagged<IncomingMessage>)
}

function onRequestClose(this: Tagged<ClientRequest>): void {
  const attempt = this[kAttempt]
  if (attempt.done || attempt.upstreamRes !== undefined) return
  // Node's one path here: a 101 Switching Protocols to a request that asked for no upgrade.
  attempt.failed(new InvalidResponseError('the upstream switched protocols (101) on a request that asked for no upgrade'))
}

function onRequestFinish(this: Tagged<ClientRequest>): void {
  this[kAttempt].armRead()
}

function onSocket(this: Tagged<ClientRequest>, socket: Socket): void {
  const attempt = this[kAttempt]
  if (!socket.connecting) {
    attempt.connect()
    return
  }
  // A new connection, so not once per request: a closure is fine here. A TLS upstream is
  // connected once its handshake is done (nginx's proxy_connect_timeout covers it too): a
  // certificate it fails on was sent nothing, so any request may go on to the next upstream.
  attempt.connectTimer = setTimeout(onTimeout, attempt.owner.connectTimeout, attempt, 'connect')
  socket.once('encrypted' in socket ? 'secureConnect' : 'connect', () => attempt.connect())
}

/**
 * A connect or read timer ran out. Node runs the timers that are due before it polls for I/O,
 * so after the event loop stalled (a long collection, a starved process on a busy machine) a
 * timer can run out while the upstream's connect or bytes already wait in the kernel, and a
 * healthy upstream would be cut and counted as timed out. nginx handles I/O events before it
 * expires timers (ngx_process_events_and_timers); the same here: the verdict waits until this
 * turn's poll is done (setImmediate runs right after it), and an event in that poll re-armed
 * the timer instead, or ended the try.
 */
function onTimeout(attempt: Attempt, kind: 'connect' | 'read'): void {
  setImmediate(confirmTimeout, attempt, kind, attempt.progress)
}

function confirmTimeout(attempt: Attempt, kind: 'connect' | 'read', seen: number): void {
  if (attempt.progress !== seen) return
  if (kind === 'connect') (attempt.out as ClientRequest).destroy(new UpstreamConnectTimeoutError())
  // Waiting on a slow client is not the upstream's fault: 'drain' re-arms the timer.
  else if (!attempt.owner.res.writableNeedDrain) {
    attempt.cutReason = 'response timeout'
    ;(attempt.out as ClientRequest).destroy(new UpstreamTimeoutError())
  }
}

function onUpstreamData(this: Tagged<IncomingMessage>, chunk: Buffer): void {
  const attempt = this[kAttempt]
  attempt.bytesIn += chunk.length
  attempt.upstream.stats.bytesIn += chunk.length
  attempt.armRead()
  // A slow client slows the upstream read: backpressure, as pipe() would apply it.
  if (!attempt.owner.res.write(chunk)) this.pause()
}

function onTakenData(this: Tagged<IncomingMessage>, chunk: Buffer): void {
  const attempt = this[kAttempt]
  attempt.bytesIn += chunk.length
  attempt.upstream.stats.bytesIn += chunk.length
  attempt.armRead()
}

function onUpstreamEnd(this: Tagged<IncomingMessage>): void {
  const { owner, answeredEarly } = this[kAttempt]
  // The upstream answered without reading the whole body: what is left is read and dropped
  // (the client connection closes after this response), and Exchange.closed() ends the
  // half-written upstream request.
  if (answeredEarly) owner.dropBody()
  owner.res.end()
}

function onUpstreamClose(this: Tagged<IncomingMessage>): void {
  this[kAttempt].upstreamClosed()
}
