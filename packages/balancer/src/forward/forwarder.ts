import { Agent, type IncomingMessage, type ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import httpProxy from 'http-proxy'
import type { AccessLog } from '../observe/access-log.js'
import { Exchange } from './exchange.js'
import { hasBody } from './headers.js'
import { closeAfterResponse } from '../server/requests.js'
import type { Policy } from '../select/policy.js'
import type { WaitQueue } from '../select/queue.js'
import { Stats } from '../observe/stats.js'
import type { Sticky } from '../select/sticky.js'
import type { Pool } from '../upstreams/pool.js'
import type { HealthChange, Upstream } from '../upstreams/upstream.js'

/** What the forwarder needs from the balancer around it. Durations are in ms. */
export interface ForwarderOptions {
  pool: Pool
  policy: Policy
  /** The keep-alive agent for upstream connections. */
  agent: Agent
  connectTimeout: number
  timeout: number
  retryOnTimeout: boolean
  /** Most further tries after the first; Infinity: each upstream once. */
  retries: number
  /** 0: no cap. */
  retryTimeout: number
  clientBodyTimeout: number
  /** Idle time after which an open WebSocket tunnel is closed; 0: never. */
  tunnelTimeout: number
  /** Where requests wait when every candidate is at max_conns. */
  queue: WaitQueue
  /** Sticky sessions by cookie, when on. */
  sticky: Sticky | undefined
  /** Receives one line per health change; nothing when undefined. */
  log: ((line: string) => void) | undefined
  /** Receives one entry per request; nothing when undefined. */
  accessLog: AccessLog | undefined
}

/** How a finished request went, beyond its status and upstream. */
export interface Outcome {
  /** The client's address, read when the request came. */
  client: string
  /** When the request came: ms since the epoch, and `performance.now()`. */
  time: number
  start: number
  /** From sending the request upstream to the end of its response, when a response came. */
  upstreamMs: number | undefined
  /** Response body bytes sent to the client. */
  bytes: number
  /** Tries after the first. */
  retries: number
  /** The upstream's X-Cache. */
  cache: string | undefined
}

/** Answers a request with a short text/plain error. Returns the body's length in bytes. */
export function sendError(req: IncomingMessage, res: ServerResponse, status: number, message: string, close = false): number {
  const body = `${message}\n`
  const headers: Record<string, string | number> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    // The body may echo what a client sent (a transfer coding, say): never sniffed as HTML.
    'x-content-type-options': 'nosniff',
  }
  // A body the client is still sending would have to be read to the end to keep the
  // connection; closing it is cheaper (nginx does the same on an early error).
  if (close || (hasBody(req) && !req.complete)) {
    headers.connection = 'close'
    closeAfterResponse(req.socket)
  }
  res.writeHead(status, headers)
  if (req.method === 'HEAD') {
    res.end()
    return 0
  }
  res.end(body)
  return headers['content-length'] as number
}

/**
 * Sends requests to upstreams through http-proxy, one `Exchange` per client request.
 * http-proxy builds the upstream request (target, method, headers, agent); the balancer then
 * owns the rest: the path, hop-by-hop headers, when the body is read, timeouts, retries and
 * the response.
 */
export class Forwarder {
  readonly proxy: httpProxy
  /**
   * Opens a new connection for each request: for the one resend of a request whose kept-alive
   * connection the upstream closed as it was reused (nginx does the same).
   */
  readonly fresh = new Agent()
  options: ForwarderOptions
  /** Set while the balancer drains: every response then carries `Connection: close`. */
  draining = false
  /** Every request answered. */
  readonly totals = new Stats()
  /** Requests the balancer answered itself, without an upstream (503, 400, 408). */
  readonly unrouted = new Stats()

  constructor(options: ForwarderOptions) {
    this.options = options
    // The server whose events http-proxy's stream pass emits ('start', 'proxyReq', 'proxyRes',
    // 'end'); its options are unused, since each try passes its own (Exchange.next()).
    this.proxy = httpProxy.createProxyServer({})
  }

  forward(req: IncomingMessage, res: ServerResponse): void {
    new Exchange(this, req, res).next()
  }

  /** Counts a finished request and writes its access-log entry. */
  finished(req: IncomingMessage, status: number, upstream: Upstream | undefined, o: Outcome): void {
    const now = Date.now()
    const method = req.method as string
    this.totals.record(method, status, undefined, now)
    ;(upstream?.stats ?? this.unrouted).record(method, status, o.upstreamMs, now)
    this.options.accessLog?.write({
      time: o.time,
      client: o.client,
      method,
      path: req.url as string,
      httpVersion: req.httpVersion,
      status,
      bytes: o.bytes,
      upstream: upstream?.id,
      upstreamMs: o.upstreamMs,
      totalMs: performance.now() - o.start,
      retries: o.retries,
      cache: o.cache,
      referer: req.headers.referer,
      userAgent: req.headers['user-agent'],
    })
  }

  /** Told each health flip this process saw (the balancer passes them on to other workers). */
  onHealth: ((change: HealthChange) => void) | undefined

  /** Passes every health change on; logs a flip of availability once, with its reason. */
  reportHealth(change: HealthChange | undefined): void {
    if (change === undefined) return
    this.onHealth?.(change)
    if (!change.flipped) return
    const { upstream, up, reason } = change
    this.options.log?.(up ? `upstream ${upstream.id} is up again: ${reason}` : `upstream ${upstream.id} marked down: ${reason}`)
  }
}
