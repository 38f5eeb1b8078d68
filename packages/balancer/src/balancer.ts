import { Agent, Server, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { ignoreError } from './errors.js'
import { countHeader } from './headers.js'
import { RoundRobin, type Policy } from './policies.js'
import { Forwarder, sendError } from './proxy.js'
import { Pool, Upstream, type UpstreamSpec } from './upstream.js'

/** Options of `createBalancer`. */
export interface BalancerOptions {
  /** The upstreams, in declared order. Required, at least one. */
  upstreams: UpstreamSpec[]
  /** Failures within `failTimeout` that mark an upstream down (nginx `max_fails`). Default 1; 0 never does. */
  maxFails?: number
  /** Failure window and down time, in ms (nginx `fail_timeout`). Default 10 000. */
  failTimeout?: number
  /** How long to wait for an upstream's response headers once the request is sent, in ms. Default 60 000. */
  timeout?: number
  /**
   * How long an idle upstream connection is kept for reuse, in ms. Default 4 000: shorter than
   * Node's default server `keepAliveTimeout` (5 s), so the balancer does not reuse a
   * connection the backend is closing.
   */
  upstreamIdleTimeout?: number
  /** Receives one line per health change and notice. Default: none. */
  log?: (line: string) => void
  /** Receives one access-log line per request. Default: none. */
  accessLog?: (line: string) => void
}

/** The methods the balancer forwards, as listed in its 405 for CONNECT. */
const ALLOW = 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH'

/**
 * Answers CONNECT with 405: a reverse proxy is not a tunnel. Without a 'connect' listener
 * Node drops the socket without a word.
 */
function refuseConnect(_req: IncomingMessage, socket: Duplex): void {
  const body = 'CONNECT is not supported: this is a reverse proxy, not a forward proxy\n'
  socket.on('error', ignoreError)
  socket.end(
    'HTTP/1.1 405 Method Not Allowed\r\n' +
      `Allow: ${ALLOW}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  )
}

/**
 * A load balancer: a node:http server that spreads requests over `upstreams` with
 * http-proxy. It is returned not listening; call `listen()`, and `close()` when done.
 */
export class Balancer extends Server {
  readonly pool: Pool
  readonly policy: Policy
  readonly agent: Agent
  readonly #forwarder: Forwarder

  constructor(options: BalancerOptions) {
    super()
    const defaults = { maxFails: options.maxFails ?? 1, failTimeout: options.failTimeout ?? 10_000 }
    this.pool = new Pool(options.upstreams.map(spec => new Upstream(spec, defaults)))
    this.policy = new RoundRobin()
    // http-proxy opens a connection per request unless it is given a keep-alive agent.
    // LIFO reuses the warmest socket and lets the others idle out.
    this.agent = new Agent({
      keepAlive: true,
      scheduling: 'lifo',
      timeout: options.upstreamIdleTimeout ?? 4_000,
    })
    this.#forwarder = new Forwarder({
      pool: this.pool,
      policy: this.policy,
      agent: this.agent,
      timeout: options.timeout ?? 60_000,
      log: options.log,
      accessLog: options.accessLog,
    })
    this.on('request', this.#onRequest)
    this.on('connect', refuseConnect)
    this.on('close', () => this.agent.destroy())
  }

  #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // Node keeps the first of two Host headers silently; which one is meant is unknowable.
    if (countHeader(req, 'host') > 1) {
      sendError(req, res, 400, '400 Bad Request: more than one Host header')
      return
    }
    this.#forwarder.forward(req, res)
  }
}

/** Creates a balancer, not listening yet. */
export function createBalancer(options: BalancerOptions): Balancer {
  return new Balancer(options)
}
