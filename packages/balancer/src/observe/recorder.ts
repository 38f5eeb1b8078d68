// Counts each finished request (in all, by upstream, and those the balancer answered itself) and writes its access-log entry.
import type { IncomingMessage } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { Upstream } from '../upstreams/upstream.js'
import type { AccessLog } from './access-log.js'
import { Stats } from './stats.js'

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

/** Where every finished request and WebSocket tunnel is counted and logged. */
export class RequestRecorder {
  /** Every request answered. */
  readonly totals = new Stats()
  /** Requests the balancer answered itself, without an upstream (503, 400, 408). */
  readonly unrouted = new Stats()
  /** Receives one entry per request; nothing when undefined. */
  accessLog: AccessLog | undefined

  /** Counts a finished request and writes its access-log entry. */
  record(req: IncomingMessage, status: number, upstream: Upstream | undefined, o: Outcome): void {
    const now = Date.now()
    const method = req.method as string
    this.totals.record(method, status, undefined, now)
    ;(upstream?.stats ?? this.unrouted).record(method, status, o.upstreamMs, now)
    this.accessLog?.write({
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
}
