import { Agent, STATUS_CODES, type ClientRequest, type IncomingMessage } from 'node:http'
import { connect, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import type { Duplex } from 'node:stream'
import httpProxy from 'http-proxy'
import { InvalidResponseError, NoUpstreamError, UpstreamConnectTimeoutError, UpstreamFailedError, UpstreamTimeoutError, errorCode, ignoreError, statusForUpstreamError } from '../errors.js'
import { hasBody, peerOf, prepareRequestHeaders, reasonPhrase, responseHeaders } from './headers.js'
import { answerDue, refusal } from '../server/requests.js'
import type { Forwarder } from './forwarder.js'
import { failureKind } from '../observe/stats.js'
import type { Upstream } from '../upstreams/upstream.js'

/** Writes a whole short text/plain response on a raw client socket, then ends it. */
function answer(socket: Duplex, status: string, message: string): void {
  const body = `${message}\n`
  socket.end(
    `HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  )
}

/**
 * An agent that hands its one request the upstream connection the tunnel already opened.
 * The tunnel connects first because http-proxy's ws pass ends the client socket on any
 * upstream error: a refused or timed-out connection must be retried before http-proxy sees
 * the request. Not keep-alive: after a non-101 answer the agent destroys the connection.
 */
class OpenedAgent extends Agent {
  readonly #socket: Socket
  constructor(socket: Socket) {
    super()
    this.#socket = socket
  }
  override createConnection(): Duplex {
    return this.#socket
  }
}

/**
 * Proxies WebSocket upgrades (the balancer's 'upgrade' listener). http-proxy's ws pass does
 * the handshake and pipes the frames; this adds what it lacks: failover on a refused or
 * timed-out connection, 502 / 503 / 504 on the raw socket, passive health, the in-flight
 * count, and closing each side when the other goes, which http-proxy leaves undone on a
 * reset (node-http-proxy #559, #1510: one leaked descriptor per dropped WebSocket).
 */
export class WebSocketProxy {
  readonly fw: Forwarder
  /** Its own instance, so that its events are only ever about upgrades. */
  readonly proxy = httpProxy.createProxyServer({ toProxy: true, prependPath: false })
  /** Every upgraded client socket not closed yet, handshake or open tunnel. */
  readonly tunnels = new Set<Tunnel>()
  readonly byRequest = new WeakMap<IncomingMessage, Tunnel>()
  #waiters: (() => void)[] = []

  constructor(fw: Forwarder) {
    this.fw = fw
    // Every call passes a callback, so http-proxy emits no 'error'; this is in case it ever does.
    this.proxy.on('error', ignoreError)
    // Fires inside proxy.ws(), before the request head is written: the last moment to fix it.
    this.proxy.on('proxyReqWs', (out, req) => (this.byRequest.get(req) as Tunnel).onRequest(out))
  }

  upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // Node removes its own listeners from an upgraded socket, its error listener included.
    socket.on('error', ignoreError)
    // Once the balancer has written all it will (an error answered, or the upstream's end
    // passed on), close the socket: left to allowHalfOpen, a client that never closes its
    // side would hold the descriptor forever.
    socket.once('finish', () => socket.destroy())
    // Pipelined behind a response not written yet: nothing written now could be read in order,
    // so a client that pipelines an upgrade is cut off.
    if (answerDue(socket)) {
      socket.destroy()
      return
    }
    const refused = refusal(req)
    if (refused !== undefined) {
      answer(socket, `${refused.status} ${STATUS_CODES[refused.status]}`, refused.message)
      return
    }
    // RFC 6455 §4.1: the handshake is a GET without a body. One with a body would reach the
    // upstream with its framing but without its bytes, which go to the tunnel after the 101.
    if (hasBody(req)) {
      answer(socket, '400 Bad Request', '400 Bad Request: an upgrade request cannot carry a body')
      return
    }
    // A tunnel opened now would hold the shutdown up for as long as it lasts; the client is
    // told to go elsewhere, as a request is told with Connection: close.
    if (this.fw.draining) {
      answer(socket, '503 Service Unavailable', '503 Service Unavailable: the balancer is shutting down')
      return
    }
    // Node 20 hands every Upgrade to this listener (there is no way to decline one and serve
    // the request as plain HTTP), and http-proxy's ws pass drops anything but a WebSocket.
    if (req.method !== 'GET' || String(req.headers.upgrade).toLowerCase() !== 'websocket') {
      answer(socket, '501 Not Implemented', '501 Not Implemented: only WebSocket upgrades (GET, Upgrade: websocket) are proxied')
      return
    }
    const tunnel = new Tunnel(this, req, socket, head)
    this.tunnels.add(tunnel)
    this.byRequest.set(req, tunnel)
    tunnel.next()
  }

  /** Resolves once no tunnel is open. */
  drained(): Promise<void> {
    if (this.tunnels.size === 0) return Promise.resolve()
    return new Promise(resolve => this.#waiters.push(resolve))
  }

  /** Cuts every open tunnel (at the drain timeout). */
  closeAll(): void {
    for (const tunnel of this.tunnels) tunnel.client.destroy()
  }

  /** Called by a tunnel once its client socket is closed. */
  closed(tunnel: Tunnel): void {
    this.tunnels.delete(tunnel)
    if (this.tunnels.size > 0) return
    for (const resolve of this.#waiters.splice(0)) resolve()
  }
}

/** One upgrade request: its tries, then the tunnel between the client and one upstream. */
class Tunnel {
  readonly ws: WebSocketProxy
  readonly req: IncomingMessage
  readonly client: Duplex
  /** What the client sent before the upstream accepted the upgrade, its `head` first. */
  readonly early: Buffer[] = []
  readonly tried = new Set<Upstream>()
  readonly start = performance.now()
  readonly time = Date.now()
  /** The upstream a valid sticky cookie names, if any. */
  readonly pinnedId: string | undefined
  /** The client's address, read at once: once its socket closes, it has none. */
  readonly peer: string
  upstream: Upstream | undefined
  conn: Socket | undefined
  /** The upstream request, once http-proxy built it. */
  out: ClientRequest | undefined
  /** Whether `upstream.inFlight` counts this tunnel now. */
  counted = false
  /** The status the client got, for the access log; 0 until it gets one. */
  status = 0
  lastError: Error | undefined
  /** The client socket closed: nothing that fails afterwards is the upstream's fault. */
  done = false
  timer: NodeJS.Timeout | undefined

  constructor(ws: WebSocketProxy, req: IncomingMessage, client: Duplex, head: Buffer) {
    this.ws = ws
    this.req = req
    this.client = client
    // Until the upgrade is accepted the client is read here, so that a client that leaves
    // is seen (nginx checks for one too while it waits on the upstream): a socket nobody
    // reads never reports its end. What it sends is held for the upstream; the RFC 6455
    // §4.1 client sends nothing before the 101, so one chunk is enough and then it waits.
    client.unshift(head)
    client.on('data', this.#onEarlyData)
    // A client that ends its side is gone, before the upgrade or after: nginx closes an
    // upgraded connection once either side has closed (ngx_http_upstream_process_upgraded).
    client.once('end', () => client.destroy())
    // A WebSocket that follows long polling (socket.io, SockJS) must reach the upstream that
    // holds its session: the sticky cookie counts as it does for a request.
    this.pinnedId = ws.fw.options.sticky?.idFrom(req)
    this.peer = peerOf(req.socket)
    client.once('close', this.#onClientClose)
  }

  /**
   * Connects to the next upstream, chosen as for a request, within the same retry budget
   * (nginx proxy_next_upstream_tries / _timeout), or gives up when none is left.
   */
  next(): void {
    const { pool, policy, retries, retryTimeout, connectTimeout } = this.ws.fw.options
    const now = performance.now()
    if (this.tried.size > retries || (retryTimeout > 0 && now - this.start >= retryTimeout)) {
      this.#giveUp(false)
      return
    }
    const upstream = this.#pinned(now) ?? policy.select(pool, this.req, this.tried)
    if (upstream === undefined) {
      // Every upstream at max_conns: unlike a request, an upgrade does not queue. Tunnels
      // last minutes, so a slot seldom frees within the queue timeout, and the client is
      // better told at once (a WebSocket client reconnects) than left to take queue places.
      this.#giveUp(pool.tier(this.tried, now).length > 0)
      return
    }
    // Counted on the upstream that failed, as for a request.
    if (this.upstream !== undefined) this.upstream.stats.retries++
    this.tried.add(upstream)
    this.upstream = upstream
    upstream.inFlight++
    this.counted = true
    const conn = connect({ host: upstream.host, port: upstream.port })
    this.conn = conn
    // Its errors while connecting are the next upstream's cue; later ones belong to the
    // upstream request, and this keeps any left over from throwing.
    conn.on('error', ignoreError)
    conn.on('error', this.#onConnectError)
    conn.once('connect', this.#onConnect)
    this.timer = setTimeout(() => conn.destroy(new UpstreamConnectTimeoutError()), connectTimeout)
  }

  /** The upstream the sticky cookie names, while it can take the tunnel and was not tried. */
  #pinned(now: number): Upstream | undefined {
    const { pool } = this.ws.fw.options
    const u = pool.upstreams.find(x => x.id === this.pinnedId)
    return u !== undefined && !u.full && !this.tried.has(u) && pool.isAvailable(u, now) ? u : undefined
  }

  /** Connection refused, reset or timed out: nothing was sent, so the next upstream may have it. */
  #onConnectError = (err: Error): void => {
    clearTimeout(this.timer)
    const upstream = this.upstream as Upstream
    upstream.stats.failures.connect++
    this.ws.fw.reportHealth(upstream.recordFailure(errorCode(err)))
    this.lastError = err
    this.#release()
    this.next()
  }

  #onConnect = (): void => {
    clearTimeout(this.timer)
    const conn = this.conn as Socket
    conn.removeListener('error', this.#onConnectError)
    const options = { target: (this.upstream as Upstream).target, agent: new OpenedAgent(conn) }
    this.ws.proxy.ws(this.req, this.client, Buffer.alloc(0), options, this.#onProxyError)
    // http-proxy has built the request and added its listeners by now (proxy.ws() runs its
    // passes synchronously): its 'response' listener is replaced by #onResponse.
    ;(this.out as ClientRequest).removeAllListeners('response').once('response', this.#onResponse)
  }

  /** The upstream request http-proxy built, before its head is written. */
  onRequest(out: ClientRequest): void {
    // Byte-identical path and query: http-proxy's urlJoin collapses `//`.
    out.path = this.req.url as string
    // Same X-Forwarded-* and hop-by-hop rules as any request, except the two headers that
    // ask for the upgrade, which are hop-by-hop but must reach the upstream (as in nginx's
    // `proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade"`).
    prepareRequestHeaders(out, this.req, this.peer)
    out.setHeader('connection', 'Upgrade')
    out.setHeader('upgrade', this.req.headers.upgrade as string)
    this.out = out
    // Registered before http-proxy's own listener, so this runs first.
    out.once('upgrade', this.#onUpgrade)
    // Waiting for the answer to the handshake is nginx's proxy_read_timeout.
    this.timer = setTimeout(() => out.destroy(new UpstreamTimeoutError()), this.ws.fw.options.timeout)
  }

  #onEarlyData = (chunk: Buffer): void => {
    this.early.push(chunk)
    this.client.pause()
  }

  /** 101: http-proxy writes it to the client and pipes both ways; the tunnel is open. */
  #onUpgrade = (): void => {
    clearTimeout(this.timer)
    this.status = 101
    // Hand back what the client sent early, in order, for http-proxy's pipe to forward.
    this.client.removeListener('data', this.#onEarlyData)
    this.client.pause()
    this.client.unshift(Buffer.concat(this.early))
    // http-proxy writes the 101's head as a string: latin1 keeps its bytes as the upstream sent them.
    this.client.setDefaultEncoding('latin1')
    this.ws.fw.reportHealth((this.upstream as Upstream).recordSuccess())
    const conn = this.conn as Socket
    // The pipe passes a clean end on, and http-proxy ends the client on an upstream error;
    // but an end waits for the client to take what is still queued for it. Once the upstream
    // is gone there is no reason to wait. (The other way round, #onClientClose does it.)
    conn.once('close', () => this.client.destroy())
    // A tunnel nothing passes through either way for tunnelTimeout is closed (HAProxy's
    // `timeout tunnel`); the client socket sees both directions, reads and writes.
    const idle = this.ws.fw.options.tunnelTimeout
    if (idle > 0) {
      // The server hands 'upgrade' a net.Socket (a TLS one would be one too).
      const client = this.client as Socket
      client.setTimeout(idle)
      client.once('timeout', () => client.destroy())
    }
  }

  /**
   * Any other answer goes to the client, and then the connection closes. The balancer writes
   * it itself, in place of http-proxy's listener (see #onConnect): http-proxy passes on any status, reason phrase and version, writes the header
   * bytes as UTF-8, copies `Transfer-Encoding: chunked` over the de-chunked body it pipes, and
   * leaves the client waiting when the upstream stalls mid-body. Here, as for a request: a
   * status outside 200–599 is an invalid response (502), a reason phrase that may not be sent
   * on is replaced, and the body is read under `timeout` between reads.
   */
  #onResponse = (res: IncomingMessage): void => {
    clearTimeout(this.timer)
    const status = res.statusCode as number
    const upstream = this.upstream as Upstream
    if (status < 200 || status > 599) {
      res.destroy()
      upstream.stats.failures.invalid++
      this.ws.fw.reportHealth(upstream.recordFailure('SWITCHYARD_INVALID_RESPONSE'))
      this.lastError = new InvalidResponseError(`status ${status} is not a final HTTP status`)
      this.#giveUp(false)
      return
    }
    this.status = status
    this.ws.fw.reportHealth(upstream.recordSuccess())
    const headers = responseHeaders(res)
    let head = `HTTP/1.1 ${status} ${reasonPhrase(status, res.statusMessage as string)}\r\n`
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`
    this.client.write(`${head}Connection: close\r\n\r\n`, 'latin1')
    const timer = setTimeout(() => this.client.destroy(), this.ws.fw.options.timeout)
    res.on('data', () => timer.refresh())
    res.pipe(this.client)
    // A response cut short ends nothing through the pipe: close the client.
    res.once('close', () => {
      clearTimeout(timer)
      if (!res.complete) this.client.destroy()
    })
  }

  /**
   * http-proxy's callback for any error of the upstream request or, once open, of the
   * upstream socket; it ends the client socket right after. The upstream had the request,
   * so a failure is answered, not retried (nginx does not retry once the request is sent
   * unless asked to, and a second upstream would get the handshake again).
   */
  #onProxyError = (err: Error): void => {
    // Once the client has its answer (a 101 or another status), a broken upstream connection
    // leaves nothing to tell it: the close listeners end the client's side. Like nginx, only
    // failures up to the response header count against the upstream's health.
    if (this.done || this.status !== 0) return
    clearTimeout(this.timer)
    const upstream = this.upstream as Upstream
    upstream.stats.failures[failureKind(errorCode(err), true)]++
    this.ws.fw.reportHealth(upstream.recordFailure(errorCode(err)))
    this.lastError = err
    this.#giveUp(false)
  }

  /**
   * Answers 503 when no upstream could be tried (every one down, or with `full` every one
   * at max_conns), else 502 or 504 as for a request.
   */
  #giveUp(full: boolean): void {
    this.#release()
    const err = this.lastError
    if (err === undefined) {
      this.status = 503
      const why = full ? 'every upstream is at max_conns' : new NoUpstreamError().message
      answer(this.client, '503 Service Unavailable', `503 Service Unavailable: ${why}`)
      return
    }
    this.status = statusForUpstreamError(err)
    const what = this.status === 504 ? '504 Gateway Timeout' : '502 Bad Gateway'
    answer(this.client, what, `${what}: ${new UpstreamFailedError().message} (last: ${(this.upstream as Upstream).id} ${errorCode(err)})`)
  }

  /** Stops counting this tunnel against its upstream; safe to call twice. */
  #release(): void {
    if (!this.counted) return
    this.counted = false
    ;(this.upstream as Upstream).inFlight--
    // A request waiting for a slot (max_conns) may take this one.
    this.ws.fw.options.queue.release()
  }

  /** The client socket is gone, cleanly or not: close the upstream side and log. */
  #onClientClose = (): void => {
    this.done = true
    clearTimeout(this.timer)
    this.conn?.removeListener('error', this.#onConnectError)
    this.conn?.destroy()
    this.#release()
    this.ws.closed(this)
    // 499 is nginx's status for "client closed the request" in its logs. A tunnel's time
    // upstream is not a response time: it is left out of the latency figures.
    const status = this.status === 0 ? 499 : this.status
    this.ws.fw.finished(this.req, status, this.upstream, {
      client: this.peer,
      time: this.time,
      start: this.start,
      upstreamMs: undefined,
      bytes: 0,
      retries: Math.max(0, this.tried.size - 1),
      cache: undefined,
    })
  }
}
