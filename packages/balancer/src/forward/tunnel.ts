// One WebSocket upgrade: its tries on upstreams, then the tunnel between the client and one of them, and its log line.
import { STATUS_CODES, type ClientRequest, type IncomingMessage } from 'node:http'
import { connect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { performance } from 'node:perf_hooks'
import type { Duplex } from 'node:stream'
import { InvalidResponseError, UpstreamConnectTimeoutError, UpstreamTimeoutError, errorCode, ignoreError } from '../errors.js'
import { failureKind } from '../observe/stats.js'
import { FULL, NONE, choose, type Tries } from '../select/choose.js'
import { answerRaw } from '../server/answers.js'
import { describeTlsFailure } from '../upstreams/tls.js'
import type { Upstream } from '../upstreams/upstream.js'
import type { ForwardContext } from './context.js'
import type { UpgradeSink } from './engine.js'
import { peerOf, prepareRequestHeaders, tlsVersionOf, reasonPhrase, responseHeaders } from './headers.js'
import { giveUpAnswer } from './retry.js'

/** What a tunnel needs from the upgrade handler that made it: the WebSocketProxy implements it. */
export interface TunnelOwner {
  readonly forwarder: ForwardContext
  /** The tunnel's client socket is closed. */
  closed(tunnel: Tunnel): void
}

/** One upgrade request: its tries, then the tunnel between the client and one upstream. */
export class Tunnel implements UpgradeSink, Tries {
  readonly owner: TunnelOwner
  readonly forwarder: ForwardContext
  readonly req: IncomingMessage
  readonly client: Duplex
  /** What the client sent before the upstream accepted the upgrade, its `head` first. */
  readonly sentBeforeUpgrade: Buffer[] = []
  readonly tried = new Set<Upstream>()
  readonly start = performance.now()
  readonly time = Date.now()
  /** The upstream a valid sticky cookie names, if any. */
  readonly pinnedId: string | undefined
  /** The client's address, read at once: once its socket closes, it has none. */
  readonly peer: string
  /** The TLS version of the client's connection (tlsVersionOf), for the access log. */
  readonly tlsVersion: string | undefined
  upstream: Upstream | undefined
  /** Tries after the first. */
  retries = 0
  conn: Socket | undefined
  /** The upstream request, once the engine built it. */
  out: ClientRequest | undefined
  /** Whether `upstream.inFlight` counts this tunnel now. */
  counted = false
  /** The status the client got, for the access log; 0 until it gets one. */
  status = 0
  lastError: Error | undefined
  /** The client socket closed: nothing that fails afterwards is the upstream's fault. */
  done = false
  timer: NodeJS.Timeout | undefined

  constructor(owner: TunnelOwner, req: IncomingMessage, client: Duplex, head: Buffer) {
    this.owner = owner
    this.forwarder = owner.forwarder
    this.req = req
    this.client = client
    // Until the upgrade is accepted the client is read here, so that a client that leaves
    // is seen (nginx checks for one too while it waits on the upstream): a socket nobody
    // reads never reports its end. What it sends is held for the upstream; the RFC 6455
    // §4.1 client sends nothing before the 101, so one chunk is enough and then it waits.
    client.unshift(head)
    client.on('data', this.#onDataBeforeUpgrade)
    // A client that ends its side is gone, before the upgrade or after: nginx closes an
    // upgraded connection once either side has closed (ngx_http_upstream_process_upgraded).
    client.once('end', () => client.destroy())
    // A WebSocket that follows long polling (socket.io, SockJS) must reach the upstream that
    // holds its session: the sticky cookie counts as it does for a request.
    this.pinnedId = this.forwarder.settings.sticky?.idFrom(req)
    this.peer = peerOf(req.socket)
    this.tlsVersion = tlsVersionOf(req.socket)
    client.once('close', this.#onClientClose)
  }

  /**
   * Connects to the next upstream, chosen as for a request, within the same retry budget
   * (nginx proxy_next_upstream_tries / _timeout), or gives up when none is left.
   */
  next(): void {
    const settings = this.forwarder.settings
    const upstream = choose(settings, this, false, performance.now())
    // Every upstream at max_conns: unlike a request, an upgrade does not queue. Tunnels
    // last minutes, so a slot seldom frees within the queue timeout, and the client is
    // better told at once (a WebSocket client reconnects) than left to take queue places.
    if (upstream === FULL || upstream === NONE) {
      this.#giveUp(upstream === FULL)
      return
    }
    upstream.inFlight++
    this.counted = true
    // wss:// to a TLS upstream: verified as its requests are, and connected once the handshake is done.
    const tls = upstream.tls
    const conn =
      tls === undefined
        ? connect({ host: upstream.host, port: upstream.port })
        : tlsConnect({ host: upstream.host, port: upstream.port, ...tls.options })
    this.conn = conn
    // Its errors while connecting are the next upstream's cue; later ones belong to the
    // upstream request, and this keeps any left over from throwing.
    conn.on('error', ignoreError)
    conn.on('error', this.#onConnectError)
    conn.once(tls === undefined ? 'connect' : 'secureConnect', this.#onConnect)
    this.timer = setTimeout(() => conn.destroy(new UpstreamConnectTimeoutError()), settings.connectTimeout)
  }

  /** Connection refused, reset or timed out: nothing was sent, so the next upstream may have it. */
  #onConnectError = (err: Error): void => {
    clearTimeout(this.timer)
    const upstream = this.upstream as Upstream
    upstream.stats.failures.connect++
    this.forwarder.reportHealth(upstream.recordFailure(describeTlsFailure(err) ?? errorCode(err)))
    this.lastError = err
    this.#release()
    this.next()
  }

  #onConnect = (): void => {
    clearTimeout(this.timer)
    const conn = this.conn as Socket
    conn.removeListener('error', this.#onConnectError)
    this.forwarder.engine.upgrade(this.req, this.client, (this.upstream as Upstream).target, conn, this)
  }

  /** The upstream request the engine built, before its head is written. */
  requestBuilt(out: ClientRequest): void {
    // Same X-Forwarded-* and hop-by-hop rules as any request, except the two headers that
    // ask for the upgrade, which are hop-by-hop but must reach the upstream (as in nginx's
    // `proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade"`).
    prepareRequestHeaders(out, this.req, this.peer)
    out.setHeader('connection', 'Upgrade')
    out.setHeader('upgrade', this.req.headers.upgrade as string)
    this.out = out
    // Waiting for the answer to the handshake is nginx's proxy_read_timeout.
    this.timer = setTimeout(() => out.destroy(new UpstreamTimeoutError()), this.forwarder.settings.timeout)
  }

  #onDataBeforeUpgrade = (chunk: Buffer): void => {
    this.sentBeforeUpgrade.push(chunk)
    this.client.pause()
  }

  /** 101: the engine writes it to the client and pipes both ways; the tunnel is open. */
  upgraded(): void {
    clearTimeout(this.timer)
    this.status = 101
    // Hand back what the client sent early, in order, for the engine's pipe to forward.
    this.client.removeListener('data', this.#onDataBeforeUpgrade)
    this.client.pause()
    this.client.unshift(Buffer.concat(this.sentBeforeUpgrade))
    // http-proxy writes the 101's head as a string: latin1 keeps its bytes as the upstream sent them.
    this.client.setDefaultEncoding('latin1')
    this.forwarder.reportHealth((this.upstream as Upstream).recordSuccess())
    const conn = this.conn as Socket
    // The pipe passes a clean end on, and the engine ends the client on an upstream error;
    // but an end waits for the client to take what is still queued for it. Once the upstream
    // is gone there is no reason to wait. (The other way round, #onClientClose does it.)
    conn.once('close', () => this.client.destroy())
    // A tunnel nothing passes through either way for tunnelTimeout is closed (HAProxy's
    // `timeout tunnel`); the client socket sees both directions, reads and writes.
    const idle = this.forwarder.settings.tunnelTimeout
    if (idle > 0) {
      // The server hands 'upgrade' a net.Socket (a TLS one would be one too).
      const client = this.client as Socket
      client.setTimeout(idle)
      client.once('timeout', () => client.destroy())
    }
  }

  /**
   * Any other answer goes to the client, and then the connection closes. The balancer writes it
   * itself, as for a request: a status outside 200–599 is an invalid response (502), a reason
   * phrase that may not be sent on is replaced, and the body is read under `timeout` between
   * reads (http-proxy would leave the client waiting when the upstream stalls mid-body).
   */
  answered(res: IncomingMessage): void {
    clearTimeout(this.timer)
    const status = res.statusCode as number
    const upstream = this.upstream as Upstream
    if (status < 200 || status > 599) {
      res.destroy()
      upstream.stats.failures.invalid++
      this.forwarder.reportHealth(upstream.recordFailure('SWITCHYARD_INVALID_RESPONSE'))
      this.lastError = new InvalidResponseError(`status ${status} is not a final HTTP status`)
      this.#giveUp(false)
      return
    }
    this.status = status
    this.forwarder.reportHealth(upstream.recordSuccess())
    const headers = responseHeaders(res)
    let head = `HTTP/1.1 ${status} ${reasonPhrase(status, res.statusMessage as string)}\r\n`
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`
    this.client.write(`${head}Connection: close\r\n\r\n`, 'latin1')
    const timer = setTimeout(() => this.client.destroy(), this.forwarder.settings.timeout)
    res.on('data', () => timer.refresh())
    res.pipe(this.client)
    // A response cut short ends nothing through the pipe: close the client.
    res.once('close', () => {
      clearTimeout(timer)
      if (!res.complete) this.client.destroy()
    })
  }

  /**
   * The engine's report of any error of the upstream request or, once open, of the upstream
   * socket; it ends the client socket right after. The upstream had the request, so a failure
   * is answered, not retried (nginx does not retry once the request is sent unless asked to,
   * and a second upstream would get the handshake again).
   */
  failed(err: Error): void {
    // Once the client has its answer (a 101 or another status), a broken upstream connection
    // leaves nothing to tell it: the close listeners end the client's side. Like nginx, only
    // failures up to the response header count against the upstream's health.
    if (this.done || this.status !== 0) return
    clearTimeout(this.timer)
    const upstream = this.upstream as Upstream
    upstream.stats.failures[failureKind(errorCode(err), true)]++
    this.forwarder.reportHealth(upstream.recordFailure(errorCode(err)))
    this.lastError = err
    this.#giveUp(false)
  }

  /**
   * Answers 503 when no upstream could be tried (every one down, or with `full` every one
   * at max_conns), else 502 or 504 as for a request.
   */
  #giveUp(full: boolean): void {
    this.#release()
    const { status, message } = giveUpAnswer(this.lastError, this.upstream, {
      full,
      tries: this.retries + 1,
      timeouts: this.forwarder.settings,
    })
    this.status = status
    answerRaw(this.client, `${status} ${STATUS_CODES[status]}`, message)
  }

  /** Stops counting this tunnel against its upstream; safe to call twice. */
  #release(): void {
    if (!this.counted) return
    this.counted = false
    ;(this.upstream as Upstream).inFlight--
    // A request waiting for a slot (max_conns) may take this one.
    this.forwarder.settings.queue.release()
  }

  /** The client socket is gone, cleanly or not: close the upstream side and log. */
  #onClientClose = (): void => {
    this.done = true
    clearTimeout(this.timer)
    this.conn?.removeListener('error', this.#onConnectError)
    this.conn?.destroy()
    this.#release()
    this.owner.closed(this)
    // 499 is nginx's status for "client closed the request" in its logs. A tunnel's time
    // upstream is not a response time: it is left out of the latency figures.
    const status = this.status === 0 ? 499 : this.status
    this.forwarder.finished(this.req, status, this.upstream, {
      client: this.peer,
      tls: this.tlsVersion,
      time: this.time,
      start: this.start,
      upstreamMs: undefined,
      bytes: 0,
      retries: this.retries,
      cache: undefined,
    })
  }
}
