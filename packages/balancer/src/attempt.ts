import type { ClientRequest, IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { Stream } from 'node:stream'
import { UpstreamConnectTimeoutError, UpstreamTimeoutError, errorCode } from './errors.js'
import type { Exchange } from './exchange.js'
import { prepareRequestHeaders, responseHeaders } from './headers.js'
import { failureKind } from './stats.js'
import type { Upstream } from './upstream.js'

/**
 * One try of a request on one upstream. It is also the `buffer` stream handed to http-proxy,
 * which calls `buffer.pipe(upstreamRequest)` right after it builds the request: that call
 * hands the balancer the request synchronously, for every request (http-proxy's `proxyReq`
 * event waits for a socket and never fires when the request carries `Expect`), and lets the
 * balancer read the body only once the upstream connection is open.
 */
export class Attempt extends Stream {
  readonly ex: Exchange
  readonly upstream: Upstream
  out: ClientRequest | undefined
  upstreamRes: IncomingMessage | undefined
  /** Whether the connection to the upstream was open, so the request may have reached it. */
  connected = false
  done = false
  /** Why the response was cut short, when the balancer cut it. */
  cutReason = 'truncated response'
  connectTimer: NodeJS.Timeout | undefined
  /** Response-header and read timer, re-armed with refresh(). */
  readTimer: NodeJS.Timeout | undefined
  /** When the try started (`performance.now()`). */
  readonly startedAt = performance.now()
  /** Response body bytes received. */
  bytesIn = 0

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
    // The response timeout runs from the moment the whole request is sent, as nginx's
    // proxy_read_timeout: a slow upload is the client's time, not the upstream's.
    out.on('finish', this.#armRead)
    const body = this.ex.body
    if (body === undefined) out.end()
    // A body an earlier try read is held in full by now (mayRetry), so replay it at once;
    // a body not read yet waits for the connection (#onConnect).
    else if (body.started) body.sendTo(out)
    return destination
  }

  /** Stops this try because the client went away. */
  abort(): void {
    this.out?.destroy()
    this.#finish()
  }

  #onSocket = (socket: Socket): void => {
    if (!socket.connecting) {
      this.#onConnect()
      return
    }
    this.connectTimer = setTimeout(this.#onConnectTimeout, this.ex.fw.options.connectTimeout)
    socket.once('connect', this.#onConnect)
  }

  #onConnect = (): void => {
    clearTimeout(this.connectTimer)
    this.connected = true
    const body = this.ex.body
    if (body !== undefined && !body.started) body.sendTo(this.out as ClientRequest)
  }

  #onConnectTimeout = (): void => {
    ;(this.out as ClientRequest).destroy(new UpstreamConnectTimeoutError())
  }

  #armRead = (): void => {
    if (this.readTimer === undefined) this.readTimer = setTimeout(this.#onReadTimeout, this.ex.fw.options.timeout)
    else this.readTimer.refresh()
  }

  #onReadTimeout = (): void => {
    // Waiting on a slow client is not the upstream's fault: 'drain' re-arms the timer.
    if (this.ex.res.writableNeedDrain) return
    this.cutReason = 'response timeout'
    ;(this.out as ClientRequest).destroy(new UpstreamTimeoutError())
  }

  #finish(): boolean {
    if (this.done) return false
    this.done = true
    clearTimeout(this.connectTimer)
    clearTimeout(this.readTimer)
    this.upstream.inFlight--
    this.ex.fw.options.queue.release()
    return true
  }

  #onError = (err: Error): void => {
    // Once the response head is in, a socket error also ends the upstream response, whose
    // close handler reports it (#onUpstreamClose): counting it here too would count it twice.
    if (this.upstreamRes !== undefined || !this.#finish() || this.ex.clientGone) return
    const { ex, upstream, out } = this
    // A kept-alive connection the upstream closed just as it was reused is the keep-alive
    // race, not a sign the upstream is failing; it is retried like any other failure.
    const code = errorCode(err)
    if (!((out as ClientRequest).reusedSocket && code === 'ECONNRESET')) {
      upstream.stats.failures[failureKind(code, this.connected)]++
      ex.fw.reportHealth(upstream.recordFailure(code))
    }
    ex.lastError = err
    ex.body?.detach()
    if (ex.mayRetry(this, err)) ex.next()
    else ex.giveUp()
  }

  #onResponse = (upstreamRes: IncomingMessage): void => {
    const { res } = this.ex
    this.upstreamRes = upstreamRes
    this.ex.fw.reportHealth(this.upstream.recordSuccess())
    const headers = responseHeaders(upstreamRes)
    if (this.ex.fw.draining) headers.push('Connection', 'close')
    const cookie = this.ex.stickyCookie(this.upstream)
    if (cookie !== undefined) headers.push('Set-Cookie', cookie)
    res.writeHead(upstreamRes.statusCode as number, upstreamRes.statusMessage, headers)
    this.#armRead()
    // By hand rather than pipe(): pipe() adds seven listeners and as many closures per
    // response, to handle cases the attempt handles already (the client going away aborts it).
    // Measured: balancer CPU per request, median of 6 interleaved wrk -c50 runs on a loaded
    // 2-vCPU box, 305 -> 258 us (2026-11-28); Node's HTTP internals are most of what is left.
    upstreamRes.on('data', this.#onData)
    upstreamRes.once('end', this.#onEnd)
    res.on('drain', this.#onDrain)
    upstreamRes.once('close', this.#onUpstreamClose)
  }

  #onData = (chunk: Buffer): void => {
    this.bytesIn += chunk.length
    this.upstream.stats.bytesIn += chunk.length
    this.#armRead()
    // A slow client slows the upstream read: backpressure, as pipe() would apply it.
    if (!this.ex.res.write(chunk)) (this.upstreamRes as IncomingMessage).pause()
  }

  #onDrain = (): void => {
    ;(this.upstreamRes as IncomingMessage).resume()
    this.#armRead()
  }

  #onEnd = (): void => {
    this.ex.res.end()
  }

  #onUpstreamClose = (): void => {
    this.#finish()
    // A response the upstream cut short must end the client's connection now; http-proxy
    // would leave the client waiting for bytes that will never come.
    if ((this.upstreamRes as IncomingMessage).complete) return
    if (!this.ex.clientGone) {
      this.upstream.stats.failures[this.cutReason === 'response timeout' ? 'timeout' : 'reset']++
      this.ex.fw.reportHealth(this.upstream.recordFailure(this.cutReason))
    }
    this.ex.res.destroy()
  }
}
